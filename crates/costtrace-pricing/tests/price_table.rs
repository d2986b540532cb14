//! Hand-computed costs against the bundled genai-prices data (commit 47df840a).
//!
//! Arithmetic convention used in every comment: a price of $R per million
//! tokens is R × 1000 nano-USD per token, so `tokens × (R × 1000)` is the cost
//! in nano-USD. `input` is the whole prompt; cached tokens are a part of it.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

use costtrace_pricing::{Catalogue, PriceQuery, PricingTier, Timestamp};

struct Case {
    name: &'static str,
    provider: Option<&'static str>,
    model: &'static str,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    batch: bool,
    at: &'static str,
    expected_nanos: i64,
    expected_provider: &'static str,
    expected_model: &'static str,
}

const BASE: Case = Case {
    name: "",
    provider: None,
    model: "",
    input: 0,
    output: 0,
    cache_read: 0,
    cache_write: 0,
    batch: false,
    at: "2025-08-01T12:00:00Z",
    expected_nanos: 0,
    expected_provider: "",
    expected_model: "",
};

const CASES: &[Case] = &[
    // ---------------------------------------------------------------- OpenAI
    // gpt-4o: input $2.5/M, cache read $1.25/M, output $10/M.
    Case {
        name: "openai gpt-4o plain",
        provider: Some("openai"),
        model: "gpt-4o",
        input: 1_000,
        output: 200,
        expected_nanos: 1_000 * 2_500 + 200 * 10_000, // 4_500_000
        expected_provider: "openai",
        expected_model: "gpt-4o",
        ..BASE
    },
    Case {
        name: "openai gpt-4o cache read is a part of input",
        provider: Some("openai"),
        model: "gpt-4o",
        input: 10_000,
        cache_read: 4_000,
        output: 500,
        // 6_000 uncached × 2_500 + 4_000 cached × 1_250 + 500 × 10_000
        expected_nanos: 6_000 * 2_500 + 4_000 * 1_250 + 500 * 10_000, // 25_000_000
        expected_provider: "openai",
        expected_model: "gpt-4o",
        ..BASE
    },
    Case {
        name: "openai gpt-4o batch is 50% (no batch prices in the data)",
        provider: Some("openai"),
        model: "gpt-4o",
        input: 1_000,
        output: 200,
        batch: true,
        expected_nanos: (1_000 * 2_500 + 200 * 10_000) / 2, // 2_250_000
        expected_provider: "openai",
        expected_model: "gpt-4o",
        ..BASE
    },
    Case {
        name: "openai gpt-4o-mini one million each",
        provider: Some("openai"),
        model: "gpt-4o-mini",
        input: 1_000_000,
        output: 1_000_000,
        // $0.15/M in, $0.60/M out
        expected_nanos: 1_000_000 * 150 + 1_000_000 * 600, // 750_000_000 = $0.75
        expected_provider: "openai",
        expected_model: "gpt-4o-mini",
        ..BASE
    },
    Case {
        name: "openai dated model id matches gpt-4o",
        provider: Some("openai"),
        model: "gpt-4o-2024-08-06",
        input: 100,
        output: 100,
        expected_nanos: 100 * 2_500 + 100 * 10_000, // 1_250_000
        expected_provider: "openai",
        expected_model: "gpt-4o",
        ..BASE
    },
    Case {
        name: "openai o3 before the 2025-06-10 price cut",
        provider: Some("openai"),
        model: "o3",
        input: 1_000,
        output: 1_000,
        at: "2025-06-01T00:00:00Z",
        // $10/M in, $40/M out
        expected_nanos: 1_000 * 10_000 + 1_000 * 40_000, // 50_000_000
        expected_provider: "openai",
        expected_model: "o3",
        ..BASE
    },
    Case {
        name: "openai o3 on the day of the price cut",
        provider: Some("openai"),
        model: "o3",
        input: 1_000,
        output: 1_000,
        at: "2025-06-10T00:00:00Z",
        // $2/M in, $8/M out
        expected_nanos: 1_000 * 2_000 + 1_000 * 8_000, // 10_000_000
        expected_provider: "openai",
        expected_model: "o3",
        ..BASE
    },
    Case {
        name: "openai o3 one second before the cut",
        provider: Some("openai"),
        model: "o3-2025-04-16",
        input: 1_000,
        output: 1_000,
        at: "2025-06-09T23:59:59Z",
        expected_nanos: 1_000 * 10_000 + 1_000 * 40_000, // 50_000_000
        expected_provider: "openai",
        expected_model: "o3",
        ..BASE
    },
    Case {
        name: "openai gpt-5.4 at the tier threshold stays base",
        provider: Some("openai"),
        model: "gpt-5.4",
        input: 272_000,
        output: 1_000,
        // not above 272_000: $2.5/M in, $15/M out
        expected_nanos: 272_000 * 2_500 + 1_000 * 15_000, // 695_000_000
        expected_provider: "openai",
        expected_model: "gpt-5.4",
        ..BASE
    },
    Case {
        name: "openai gpt-5.4 one token over the tier prices everything at the tier",
        provider: Some("openai"),
        model: "gpt-5.4",
        input: 272_001,
        output: 1_000,
        // above 272_000: $5/M in, $22.5/M out, for all tokens
        expected_nanos: 272_001 * 5_000 + 1_000 * 22_500, // 1_382_505_000
        expected_provider: "openai",
        expected_model: "gpt-5.4",
        ..BASE
    },
    Case {
        name: "openai gpt-5.4 tier counts cached tokens as input",
        provider: Some("openai"),
        model: "gpt-5.4",
        input: 300_000,
        cache_read: 100_000,
        // tier from the whole 300_000 prompt: $5/M uncached, $0.5/M cached
        expected_nanos: 200_000 * 5_000 + 100_000 * 500, // 1_050_000_000
        expected_provider: "openai",
        expected_model: "gpt-5.4",
        ..BASE
    },
    Case {
        name: "no provider: openai found by its model_match",
        provider: None,
        model: "gpt-4o",
        input: 1_000,
        output: 200,
        expected_nanos: 1_000 * 2_500 + 200 * 10_000,
        expected_provider: "openai",
        expected_model: "gpt-4o",
        ..BASE
    },
    Case {
        name: "provider given by display name, model in upper case",
        provider: Some("OpenAI"),
        model: "GPT-4o",
        input: 1_000,
        output: 200,
        expected_nanos: 1_000 * 2_500 + 200 * 10_000,
        expected_provider: "openai",
        expected_model: "gpt-4o",
        ..BASE
    },
    Case {
        name: "azure falls back to openai's gpt-4o prices",
        provider: Some("azure"),
        model: "gpt-4o",
        input: 1_000,
        output: 200,
        expected_nanos: 1_000 * 2_500 + 200 * 10_000,
        expected_provider: "azure",
        expected_model: "gpt-4o",
        ..BASE
    },
    Case {
        name: "unknown provider string falls back to model matching",
        provider: Some("my-gateway"),
        model: "gpt-4o-mini",
        input: 1_000,
        output: 1_000,
        expected_nanos: 1_000 * 150 + 1_000 * 600, // 750_000
        expected_provider: "openai",
        expected_model: "gpt-4o-mini",
        ..BASE
    },
    // ------------------------------------------------------------- Anthropic
    // claude-3-5-haiku: in $0.8/M, cache write $1/M, cache read $0.08/M, out $4/M.
    Case {
        name: "anthropic haiku 3.5 with cache read and write",
        provider: Some("anthropic"),
        model: "claude-3-5-haiku-latest",
        input: 2_000,
        cache_read: 1_000,
        cache_write: 500,
        output: 300,
        // uncached 2_000 − 1_000 − 500 = 500
        expected_nanos: 500 * 800 + 1_000 * 80 + 500 * 1_000 + 300 * 4_000, // 2_180_000
        expected_provider: "anthropic",
        expected_model: "claude-3-5-haiku-latest",
        ..BASE
    },
    Case {
        name: "anthropic dated id by starts_with",
        provider: Some("anthropic"),
        model: "claude-3-5-haiku-20241022",
        input: 1_000,
        output: 1_000,
        expected_nanos: 1_000 * 800 + 1_000 * 4_000, // 4_800_000
        expected_provider: "anthropic",
        expected_model: "claude-3-5-haiku-latest",
        ..BASE
    },
    Case {
        name: "anthropic sonnet 4.5 at 200k stays base",
        provider: Some("anthropic"),
        model: "claude-sonnet-4-5",
        input: 200_000,
        output: 1_000,
        // $3/M in, $15/M out
        expected_nanos: 200_000 * 3_000 + 1_000 * 15_000, // 615_000_000
        expected_provider: "anthropic",
        expected_model: "claude-sonnet-4-5",
        ..BASE
    },
    Case {
        name: "anthropic sonnet 4.5 long context with cache, all at tier",
        provider: Some("anthropic"),
        model: "claude-sonnet-4-5-20250929",
        input: 250_000,
        cache_read: 50_000,
        cache_write: 20_000,
        output: 2_000,
        // >200k: in $6, cache read $0.6, cache write $7.5, out $22.5 per M
        expected_nanos: 180_000 * 6_000 + 50_000 * 600 + 20_000 * 7_500 + 2_000 * 22_500, // 1_305_000_000
        expected_provider: "anthropic",
        expected_model: "claude-sonnet-4-5",
        ..BASE
    },
    Case {
        name: "anthropic sonnet 4.5 batch",
        provider: Some("anthropic"),
        model: "claude-sonnet-4-5",
        input: 200_000,
        output: 1_000,
        batch: true,
        expected_nanos: (200_000 * 3_000 + 1_000 * 15_000) / 2, // 307_500_000
        expected_provider: "anthropic",
        expected_model: "claude-sonnet-4-5",
        ..BASE
    },
    Case {
        name: "anthropic opus 4.6 long context before 2026-03-13 is tiered",
        provider: Some("anthropic"),
        model: "claude-opus-4-6",
        input: 300_000,
        output: 1_000,
        at: "2026-03-01T00:00:00Z",
        // >200k: $10/M in, $37.5/M out
        expected_nanos: 300_000 * 10_000 + 1_000 * 37_500, // 3_037_500_000
        expected_provider: "anthropic",
        expected_model: "claude-opus-4-6",
        ..BASE
    },
    Case {
        name: "anthropic opus 4.6 long context from 2026-03-13 is flat",
        provider: Some("anthropic"),
        model: "claude-opus-4-6",
        input: 300_000,
        output: 1_000,
        at: "2026-03-13T08:00:00Z",
        // $5/M in, $25/M out
        expected_nanos: 300_000 * 5_000 + 1_000 * 25_000, // 1_525_000_000
        expected_provider: "anthropic",
        expected_model: "claude-opus-4-6",
        ..BASE
    },
    Case {
        name: "provider alias via provider_match (contains anthropic)",
        provider: Some("anthropic-proxy"),
        model: "claude-haiku-4-5",
        input: 1_000,
        output: 100,
        // $1/M in, $5/M out
        expected_nanos: 1_000 * 1_000 + 100 * 5_000, // 1_500_000
        expected_provider: "anthropic",
        expected_model: "claude-haiku-4-5",
        ..BASE
    },
    // ---------------------------------------------------------------- Google
    Case {
        name: "google gemini-2.5-pro at 200k stays base",
        provider: Some("google"),
        model: "gemini-2.5-pro",
        input: 200_000,
        output: 10_000,
        // $1.25/M in, $10/M out
        expected_nanos: 200_000 * 1_250 + 10_000 * 10_000, // 350_000_000
        expected_provider: "google",
        expected_model: "gemini-2.5-pro",
        ..BASE
    },
    Case {
        name: "google gemini-2.5-pro above 200k",
        provider: Some("google"),
        model: "gemini-2.5-pro",
        input: 200_001,
        output: 10_000,
        // $2.5/M in, $15/M out
        expected_nanos: 200_001 * 2_500 + 10_000 * 15_000, // 650_002_500
        expected_provider: "google",
        expected_model: "gemini-2.5-pro",
        ..BASE
    },
    Case {
        name: "google gemini-1.5-flash with cache (fractional rate)",
        provider: Some("google"),
        model: "gemini-1.5-flash",
        input: 100_000,
        cache_read: 40_000,
        output: 1_000,
        // $0.075/M = 75 n/tok; cache $0.01875/M = 18.75 n/tok; out $0.3/M = 300 n/tok
        expected_nanos: 60_000 * 75 + 40_000 * 1875 / 100 + 1_000 * 300, // 5_550_000
        expected_provider: "google",
        expected_model: "gemini-1.5-flash",
        ..BASE
    },
    Case {
        name: "one rounding step: 18.75 nanos rounds to 19",
        provider: Some("google"),
        model: "gemini-1.5-flash",
        input: 1,
        cache_read: 1,
        expected_nanos: 19, // 1 × 18.75 = 18.75 → 19
        expected_provider: "google",
        expected_model: "gemini-1.5-flash",
        ..BASE
    },
    Case {
        name: "one rounding step: batch halves before rounding",
        provider: Some("google"),
        model: "gemini-1.5-flash",
        input: 1,
        cache_read: 1,
        batch: true,
        // 18.75 × 0.5 = 9.375 → 9 (rounding first would give 19 / 2 = 9.5 → 10)
        expected_nanos: 9,
        expected_provider: "google",
        expected_model: "gemini-1.5-flash",
        ..BASE
    },
    Case {
        name: "provider vertex matches google",
        provider: Some("vertex_ai"),
        model: "gemini-2.5-flash",
        input: 1_000,
        output: 1_000,
        // $0.3/M in, $2.5/M out
        expected_nanos: 1_000 * 300 + 1_000 * 2_500, // 2_800_000
        expected_provider: "google",
        expected_model: "gemini-2.5-flash",
        ..BASE
    },
    Case {
        name: "google's own claude-opus-4-6 listing",
        provider: Some("google"),
        model: "claude-opus-4-6",
        input: 1_000,
        output: 1_000,
        expected_nanos: 1_000 * 5_000 + 1_000 * 25_000, // 30_000_000
        expected_provider: "google",
        expected_model: "claude-opus-4-6",
        ..BASE
    },
    // -------------------------------------------------------------- DeepSeek
    // deepseek-chat: standard 00:30–16:30 UTC ($0.27 / cache $0.07 / out $1.1),
    // off-peak otherwise ($0.135 / $0.035 / $0.55).
    Case {
        name: "deepseek standard hours",
        provider: Some("deepseek"),
        model: "deepseek-chat",
        input: 1_000_000,
        cache_read: 200_000,
        output: 100_000,
        at: "2025-03-01T10:00:00Z",
        expected_nanos: 800_000 * 270 + 200_000 * 70 + 100_000 * 1_100, // 340_000_000
        expected_provider: "deepseek",
        expected_model: "deepseek-chat",
        ..BASE
    },
    Case {
        name: "deepseek off-peak",
        provider: Some("deepseek"),
        model: "deepseek-chat",
        input: 1_000_000,
        cache_read: 200_000,
        output: 100_000,
        at: "2025-03-01T20:00:00Z",
        expected_nanos: 800_000 * 135 + 200_000 * 35 + 100_000 * 550, // 170_000_000
        expected_provider: "deepseek",
        expected_model: "deepseek-chat",
        ..BASE
    },
    Case {
        name: "deepseek off-peak starts at 16:30 exactly",
        provider: None,
        model: "deepseek-chat",
        input: 1_000_000,
        cache_read: 200_000,
        output: 100_000,
        at: "2025-03-01T16:30:00Z",
        expected_nanos: 800_000 * 135 + 200_000 * 35 + 100_000 * 550, // 170_000_000
        expected_provider: "deepseek",
        expected_model: "deepseek-chat",
        ..BASE
    },
    // ------------------------------------------------------------ Perplexity
    Case {
        name: "perplexity sonar adds $12 per thousand requests",
        provider: Some("perplexity"),
        model: "sonar",
        input: 1_000,
        output: 1_000,
        // $1/M in, $1/M out, one request at $12/1000 = $0.012 = 12_000_000 n
        expected_nanos: 1_000 * 1_000 + 1_000 * 1_000 + 12_000_000, // 14_000_000
        expected_provider: "perplexity",
        expected_model: "sonar",
        ..BASE
    },
    Case {
        name: "perplexity sonar-pro batch discounts the request fee too",
        provider: Some("perplexity"),
        model: "sonar-pro",
        input: 1_000,
        output: 1_000,
        batch: true,
        expected_nanos: (1_000 * 3_000 + 1_000 * 15_000 + 14_000_000) / 2, // 16_000_000
        expected_provider: "perplexity",
        expected_model: "sonar-pro",
        ..BASE
    },
    // ------------------------------------------------------------------ x-ai
    Case {
        name: "x-ai grok-3 with cache",
        provider: Some("x-ai"),
        model: "grok-3",
        input: 10_000,
        cache_read: 2_000,
        output: 1_000,
        // $3/M in, $0.75/M cache, $15/M out
        expected_nanos: 8_000 * 3_000 + 2_000 * 750 + 1_000 * 15_000, // 40_500_000
        expected_provider: "x-ai",
        expected_model: "grok-3",
        ..BASE
    },
    Case {
        name: "x-ai by provider_match 'xai'",
        provider: Some("xai"),
        model: "grok-3-latest",
        input: 100,
        output: 100,
        expected_nanos: 100 * 3_000 + 100 * 15_000, // 1_800_000
        expected_provider: "x-ai",
        expected_model: "grok-3",
        ..BASE
    },
    // ------------------------------------------------------------------ Groq
    Case {
        name: "groq llama 3.3 70b",
        provider: Some("groq"),
        model: "llama-3.3-70b-versatile",
        input: 1_000,
        output: 1_000,
        // $0.59/M in, $0.79/M out
        expected_nanos: 1_000 * 590 + 1_000 * 790, // 1_380_000
        expected_provider: "groq",
        expected_model: "llama-3.3-70b-versatile",
        ..BASE
    },
    Case {
        name: "groq: cached tokens without a cache price are priced as input",
        provider: Some("groq"),
        model: "llama-3.3-70b-versatile",
        input: 1_000,
        cache_read: 500,
        expected_nanos: 500 * 590 + 500 * 590, // 590_000
        expected_provider: "groq",
        expected_model: "llama-3.3-70b-versatile",
        ..BASE
    },
    // ---------------------------------------------- Mistral, Cohere, Voyage, AWS
    Case {
        name: "mistral small",
        provider: Some("mistral"),
        model: "mistral-small-latest",
        input: 10_000,
        output: 5_000,
        // $0.1/M in, $0.3/M out
        expected_nanos: 10_000 * 100 + 5_000 * 300, // 2_500_000
        expected_provider: "mistral",
        expected_model: "mistral-small-latest",
        ..BASE
    },
    Case {
        name: "cohere found by model_match without a provider",
        provider: None,
        model: "command-r-plus",
        input: 1_000,
        output: 1_000,
        // $2.5/M in, $10/M out
        expected_nanos: 1_000 * 2_500 + 1_000 * 10_000, // 12_500_000
        expected_provider: "cohere",
        expected_model: "command-r-plus",
        ..BASE
    },
    Case {
        name: "voyage embeddings, input only",
        provider: Some("voyageai"),
        model: "voyage-3",
        input: 1_000_000,
        // $0.06/M
        expected_nanos: 1_000_000 * 60, // 60_000_000
        expected_provider: "voyageai",
        expected_model: "voyage-3",
        ..BASE
    },
    Case {
        name: "aws bedrock haiku 3.5 via provider_match 'bedrock'",
        provider: Some("bedrock"),
        model: "us.anthropic.claude-3-5-haiku-20241022-v1:0",
        input: 1_000,
        output: 1_000,
        expected_nanos: 1_000 * 800 + 1_000 * 4_000, // 4_800_000
        expected_provider: "aws",
        expected_model: "regional.anthropic.claude-3-5-haiku-20241022-v1:0",
        ..BASE
    },
];

fn query(c: &Case) -> PriceQuery<'static> {
    PriceQuery {
        provider: c.provider,
        model: Some(c.model),
        input_tokens: c.input,
        output_tokens: c.output,
        cache_read_tokens: c.cache_read,
        cache_write_tokens: c.cache_write,
        tier: if c.batch {
            PricingTier::Batch
        } else {
            PricingTier::Standard
        },
        at: Timestamp::parse(c.at).unwrap(),
        ..PriceQuery::default()
    }
}

#[test]
fn table_of_hand_computed_costs() {
    let catalogue = Catalogue::bundled();
    let mut failures = Vec::new();
    for c in CASES {
        match catalogue.price(&query(c)) {
            Ok(p) => {
                if (p.nanos, p.provider_id.as_str(), p.model_id.as_str())
                    != (c.expected_nanos, c.expected_provider, c.expected_model)
                {
                    failures.push(format!(
                        "{}: got {} {}/{}, expected {} {}/{}",
                        c.name,
                        p.nanos,
                        p.provider_id,
                        p.model_id,
                        c.expected_nanos,
                        c.expected_provider,
                        c.expected_model
                    ));
                }
                assert_eq!(&*p.catalogue_version, "genai-prices@47df840a");
            }
            Err(e) => failures.push(format!("{}: {e}", c.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    let providers: std::collections::BTreeSet<_> =
        CASES.iter().map(|c| c.expected_provider).collect();
    assert!(
        CASES.len() >= 40 && providers.len() >= 6,
        "{} cases, {providers:?}",
        CASES.len()
    );
}

#[test]
fn one_hour_cache_writes_cost_twice_the_input_price() {
    // claude-haiku-4-5: $1/M in, $1.25/M 5-minute write; the 1-hour write is
    // not in the data and is derived as 2 × $1/M.
    let q = PriceQuery {
        provider: Some("anthropic"),
        model: Some("claude-haiku-4-5"),
        input_tokens: 10_000,
        cache_write_tokens: 4_000,
        cache_write_1h_tokens: 1_000,
        ..PriceQuery::default()
    };
    let p = Catalogue::bundled().price(&q).unwrap();
    assert_eq!(p.nanos, 6_000 * 1_000 + 3_000 * 1_250 + 1_000 * 2_000); // 11_750_000
}

#[test]
fn audio_tokens_use_audio_prices() {
    // gemini-2.0-flash: text $0.1/M, audio $0.7/M, cached audio $0.175/M.
    // 1_000 input of which 500 audio, 200 of those read from the cache.
    let q = PriceQuery {
        provider: Some("google"),
        model: Some("gemini-2.0-flash"),
        input_tokens: 1_000,
        cache_read_tokens: 200,
        input_audio_tokens: 500,
        cache_audio_read_tokens: 200,
        ..PriceQuery::default()
    };
    let p = Catalogue::bundled().price(&q).unwrap();
    // text 1_000 − 200 − 300 = 500 × 100; audio 300 × 700; cached audio 200 × 175
    assert_eq!(p.nanos, 500 * 100 + 300 * 700 + 200 * 175); // 295_000
}

#[test]
fn paid_services_use_the_shipped_unit_prices() {
    let c = Catalogue::bundled();
    let units = [("pages", 10)];
    let q = PriceQuery {
        service_type: Some("file_processor"),
        units: &units,
        ..PriceQuery::default()
    };
    let p = c.price(&q).unwrap();
    // 10 pages × $0.02 = $0.20
    assert_eq!(p.nanos, 10 * 20_000_000);
    assert_eq!(
        (p.provider_id.as_str(), p.model_id.as_str()),
        ("service", "file_processor")
    );
    assert_eq!(p.usd(), 0.2);

    let units = [("chunks", 45)];
    let q = PriceQuery {
        service_type: Some("transformer"),
        units: &units,
        ..PriceQuery::default()
    };
    // 45 chunks × $0.003 = $0.135 (seed 004's 0.15 total shows 50 chunks)
    assert_eq!(c.price(&q).unwrap().nanos, 45 * 3_000_000);

    let units = [("pages", 10)];
    let q = PriceQuery {
        service_type: Some("file_processor"),
        units: &units,
        tier: PricingTier::Batch,
        ..PriceQuery::default()
    };
    // services have no batch price list: the batch tier changes nothing
    assert_eq!(c.price(&q).unwrap().nanos, 200_000_000);
}

#[test]
fn unpriced_usages_say_why_and_are_never_zero() {
    let c = Catalogue::bundled();
    let cases: Vec<(PriceQuery<'_>, &str)> = vec![
        (
            PriceQuery {
                provider: Some("openai"),
                model: Some("nope-model"),
                input_tokens: 5,
                ..PriceQuery::default()
            },
            "unpriced: no price for provider openai model nope-model",
        ),
        (
            PriceQuery {
                provider: Some("acme"),
                model: Some("foo-1"),
                ..PriceQuery::default()
            },
            "unpriced: no price for provider acme model foo-1",
        ),
        (
            PriceQuery {
                model: Some("mystery-model"),
                ..PriceQuery::default()
            },
            "unpriced: no price for model mystery-model (no provider given)",
        ),
        (
            PriceQuery {
                service_type: Some("file_processor"),
                units: &[("bytes", 10)],
                ..PriceQuery::default()
            },
            "unpriced: no price for service file_processor unit bytes",
        ),
        (
            PriceQuery {
                service_type: Some("ocr"),
                units: &[("pages", 1)],
                ..PriceQuery::default()
            },
            "unpriced: no price for service ocr",
        ),
        (
            PriceQuery {
                provider: Some("voyageai"),
                model: Some("voyage-3"),
                output_tokens: 10,
                ..PriceQuery::default()
            },
            "unpriced: 10 output tokens but no output price for provider voyageai model voyage-3",
        ),
        (
            PriceQuery::default(),
            "unpriced: the usage names neither a model nor a service_type",
        ),
    ];
    for (q, reason) in cases {
        assert_eq!(c.price(&q).unwrap_err().reason, reason);
    }
}

#[test]
fn aggregates_keep_priced_and_unpriced_apart() {
    let c = Catalogue::bundled();
    let mut sum = costtrace_pricing::CostSummary::default();
    for model in ["gpt-4o", "nope", "gpt-4o"] {
        let q = PriceQuery {
            provider: Some("openai"),
            model: Some(model),
            input_tokens: 1_000,
            ..PriceQuery::default()
        };
        sum.add(&c.price(&q));
    }
    assert_eq!(sum.priced_nanos, 2 * 1_000 * 2_500);
    assert_eq!((sum.priced_count, sum.unpriced_count), (2, 1));
}

#[test]
fn show_finds_the_model_and_its_prices() {
    let c = Catalogue::bundled();
    let m = c.find_model("azure", "gpt-4o").unwrap();
    assert_eq!(
        (m.provider_id.as_str(), m.prices_from_provider_id.as_str()),
        ("azure", "openai")
    );
    assert_eq!(m.prices.len(), 1);
    let o3 = c.find_model("openai", "o3").unwrap();
    assert_eq!(o3.prices.len(), 2);
    assert_eq!(o3.prices[1].constraint.to_string(), "from 2025-06-10");
    assert!(c.find_model("openai", "nope").is_none());
}
