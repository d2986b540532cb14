//! Properties over the whole bundled catalogue.
//!
//! Token counts are generated as disjoint parts (uncached input, cache read,
//! cache write, output); the query's `input_tokens` is their sum, as the
//! convention requires. Adding tokens of any kind must never lower the cost,
//! and batch must never cost more than standard.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use costtrace_pricing::{Catalogue, PriceQuery, PricingTier, Timestamp};
use proptest::prelude::*;

/// (provider, model) pairs spanning flat, tiered, dated, time-of-day and
/// per-request prices.
const MODELS: &[(&str, &str)] = &[
    ("openai", "gpt-4o"),
    ("openai", "gpt-5.4"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-opus-4-6"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-1.5-flash"),
    ("deepseek", "deepseek-chat"),
    ("perplexity", "sonar-pro"),
    ("groq", "llama-3.3-70b-versatile"),
    ("x-ai", "grok-3"),
];

#[derive(Clone, Copy, Debug)]
struct Parts {
    uncached: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
}

fn cost(
    c: &Catalogue,
    (provider, model): (&str, &str),
    p: Parts,
    tier: PricingTier,
    at: i64,
) -> i64 {
    let q = PriceQuery {
        provider: Some(provider),
        model: Some(model),
        input_tokens: p.uncached + p.cache_read + p.cache_write,
        cache_read_tokens: p.cache_read,
        cache_write_tokens: p.cache_write,
        output_tokens: p.output,
        tier,
        at: Timestamp::from_micros(at),
        ..PriceQuery::default()
    };
    c.price(&q).unwrap().nanos
}

fn catalogue() -> &'static Catalogue {
    static C: OnceLock<std::sync::Arc<Catalogue>> = OnceLock::new();
    C.get_or_init(Catalogue::bundled)
}

fn parts() -> impl Strategy<Value = Parts> {
    (0u64..400_000, 0u64..400_000, 0u64..400_000, 0u64..100_000).prop_map(|(a, b, c, d)| Parts {
        uncached: a,
        cache_read: b,
        cache_write: c,
        output: d,
    })
}

// 2024-01-01 .. 2027-01-01 in microseconds.
fn instant() -> impl Strategy<Value = i64> {
    1_704_067_200_000_000i64..1_798_761_600_000_000i64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cost_never_decreases_when_a_token_count_increases(
        m in 0..MODELS.len(),
        p in parts(),
        which in 0..4usize,
        extra in 1u64..300_000,
        batch in any::<bool>(),
        at in instant(),
    ) {
        let c = catalogue();
        let tier = if batch { PricingTier::Batch } else { PricingTier::Standard };
        let mut more = p;
        match which {
            0 => more.uncached += extra,
            1 => more.cache_read += extra,
            2 => more.cache_write += extra,
            _ => more.output += extra,
        }
        let before = cost(c, MODELS[m], p, tier, at);
        let after = cost(c, MODELS[m], more, tier, at);
        prop_assert!(after >= before, "{:?}: {before} -> {after} adding {extra} to part {which}", MODELS[m]);
        prop_assert!(before >= 0);
    }

    #[test]
    fn batch_never_costs_more_than_standard(m in 0..MODELS.len(), p in parts(), at in instant()) {
        let c = catalogue();
        let standard = cost(c, MODELS[m], p, PricingTier::Standard, at);
        let batch = cost(c, MODELS[m], p, PricingTier::Batch, at);
        prop_assert!(batch <= standard, "{:?}: batch {batch} > standard {standard}", MODELS[m]);
    }
}
