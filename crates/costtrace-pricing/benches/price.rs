//! Pricing one usage against the full bundled catalogue (target ≤ 300 ns).
//!
//! Run: `cargo bench -p costtrace-pricing -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use costtrace_pricing::{Catalogue, PriceQuery, PricingTier, Timestamp};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let catalogue = Catalogue::bundled();
    let at = Timestamp::from_micros(1_754_000_000_000_000); // 2025-07-31

    let gpt4o = PriceQuery {
        provider: Some("openai"),
        model: Some("gpt-4o"),
        input_tokens: 1_200,
        output_tokens: 350,
        at,
        ..PriceQuery::default()
    };
    let sonnet_cached = PriceQuery {
        provider: Some("anthropic"),
        model: Some("claude-sonnet-4-5-20250929"),
        input_tokens: 250_000,
        cache_read_tokens: 50_000,
        cache_write_tokens: 20_000,
        output_tokens: 2_000,
        tier: PricingTier::Batch,
        at,
        ..PriceQuery::default()
    };
    let unpriced = PriceQuery {
        provider: Some("acme"),
        model: Some("foo-1"),
        input_tokens: 10,
        at,
        ..PriceQuery::default()
    };
    let units = [("pages", 10)];
    let service = PriceQuery {
        service_type: Some("file_processor"),
        units: &units,
        at,
        ..PriceQuery::default()
    };

    let mut g = c.benchmark_group("price");
    g.bench_function("openai_gpt-4o", |b| {
        b.iter(|| catalogue.price(black_box(&gpt4o)))
    });
    g.bench_function("anthropic_sonnet_cache_tier_batch", |b| {
        b.iter(|| catalogue.price(black_box(&sonnet_cached)))
    });
    g.bench_function("unpriced_unknown_model", |b| {
        b.iter(|| catalogue.price(black_box(&unpriced)))
    });
    g.bench_function("service_file_processor", |b| {
        b.iter(|| catalogue.price(black_box(&service)))
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("parse_bundled_catalogue", |b| {
        b.iter(Catalogue::load_bundled)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
