//! Synthetic, deterministic records for the store and server benchmarks
//! (included by both with `mod`/`#[path]`).
#![allow(dead_code)]

use std::collections::BTreeMap;

use costtrace_core::{Environment, PricingTier, RequestRecord, Timestamp, UsageRecord};

pub const TENANTS: u64 = 20;
pub const USAGE_PER_REQUEST: u64 = 3;
pub const REQUESTS_PER_TASK: u64 = 3;
pub const MODELS: [(&str, &str); 6] = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-flash"),
    ("openai", "text-embedding-3-small"),
];

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub fn base() -> i64 {
    Timestamp::parse("2025-01-01T00:00:00Z").unwrap().0
}

/// Usage record `i`: request `i / 3`, task `i / 9`, doc `i / 18`, tenant
/// `task % 20`; 80 % LLM calls over six models, 20 % services; 2 % unpriced.
pub fn usage(i: u64, rng: &mut Rng) -> UsageRecord {
    let req = i / USAGE_PER_REQUEST;
    let task = req / REQUESTS_PER_TASK;
    let tenant = task % TENANTS;
    let attrs = BTreeMap::from([
        ("request_id".to_owned(), format!("req_{req:012x}")),
        ("task_id".to_owned(), format!("task_{task:010x}")),
        ("doc_id".to_owned(), format!("doc_{:010x}", task / 2)),
        ("entity_id".to_owned(), format!("company_{tenant}")),
    ]);
    let llm = rng.below(10) < 8;
    let (provider, model) = MODELS[rng.below(MODELS.len() as u64) as usize];
    let priced = rng.below(50) != 0;
    let cost = priced.then(|| 1_000 + rng.below(5_000_000) as i64);
    UsageRecord {
        id: costtrace_core::new_id(),
        scope_id: Some(costtrace_core::new_id()),
        attrs,
        environment: Environment::Production,
        // ~100 records per second of wall time over the data set.
        timestamp: Timestamp(base() + (i as i64) * 10_000),
        provider: llm.then(|| provider.to_owned()),
        model: llm.then(|| model.to_owned()),
        service_type: (!llm).then(|| {
            if i.is_multiple_of(2) {
                "file_processor".to_owned()
            } else {
                "transformer".to_owned()
            }
        }),
        operation: Some(if llm { "chat" } else { "process" }.to_owned()),
        input_tokens: llm.then(|| 200 + rng.below(4_000)),
        output_tokens: llm.then(|| 20 + rng.below(800)),
        cache_read_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        units: if llm {
            BTreeMap::new()
        } else {
            BTreeMap::from([("pages".to_owned(), 1 + rng.below(30))])
        },
        pricing_tier: PricingTier::Standard,
        cost_usd: cost.map(costtrace_core::nanos_to_usd),
        cost_nanos: cost,
        unpriced_reason: (!priced).then(|| "unpriced: no price for provider acme".to_owned()),
        price_version: Some("genai-prices@47df840a".to_owned()),
        duration_ms: Some((rng.below(5_000) as f64) / 4.0),
        error_message: None,
        partial: false,
    }
}

pub fn request(r: u64, rng: &mut Rng) -> RequestRecord {
    let task = r / REQUESTS_PER_TASK;
    RequestRecord {
        request_id: format!("req_{r:012x}"),
        task_id: Some(format!("task_{task:010x}")),
        doc_id: Some(format!("doc_{:010x}", task / 2)),
        entity_id: Some(format!("company_{}", task % TENANTS)),
        operation_type: Some(
            if r.is_multiple_of(4) {
                "file_upload"
            } else {
                "query"
            }
            .to_owned(),
        ),
        task_type: Some(
            if r.is_multiple_of(4) {
                "upload"
            } else {
                "search"
            }
            .to_owned(),
        ),
        endpoint: Some("/api/entities/{entity_id}/files".to_owned()),
        method: Some("POST".to_owned()),
        status_code: Some(if rng.below(20) == 0 { 500 } else { 200 }),
        timestamp: Timestamp(base() + (r * USAGE_PER_REQUEST) as i64 * 10_000),
        processing_time_ms: Some(rng.below(4_000) as f64),
        error_message: None,
        environment: Environment::Production,
    }
}
