//! Store benchmark: ingest throughput, query latency at N stored records,
//! bytes on disk per usage record. SQLite always; PostgreSQL when
//! `COSTTRACE_TEST_POSTGRES_URL` is set.
//!
//! ```sh
//! COSTTRACE_BENCH_N=1000000 CARGO_TARGET_DIR=/work/target-store \
//!   cargo bench -p costtrace-store --bench store
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use costtrace_core::{Environment, PricingTier, Record, RequestRecord, Timestamp, UsageRecord};
use costtrace_store::{AnyStore, Page, RequestFilter, Store, TenantScope};

const BATCH: usize = 10_000;
const TENANTS: u64 = 20;
const USAGE_PER_REQUEST: u64 = 3;
const REQUESTS_PER_TASK: u64 = 3;
const QUERIES: usize = 2_000;
const MODELS: [(&str, &str); 6] = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-flash"),
    ("openai", "text-embedding-3-small"),
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn base() -> i64 {
    Timestamp::parse("2025-01-01T00:00:00Z").unwrap().0
}

/// Usage record `i`: request `i / 3`, task `i / 9`, doc `i / 18`, tenant
/// `task % 20`; 80 % LLM calls over six models, 20 % services; 2 % unpriced.
fn usage(i: u64, rng: &mut Rng) -> UsageRecord {
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

fn request(r: u64, rng: &mut Rng) -> RequestRecord {
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

fn pct(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

async fn bench(name: &str, store: &AnyStore, n: u64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Ingest usage (generation is not timed).
    let mut spent = Duration::ZERO;
    let mut i = 0;
    while i < n {
        let end = (i + BATCH as u64).min(n);
        let batch: Vec<Record> = (i..end)
            .map(|j| Record::Usage(usage(j, &mut rng)))
            .collect();
        let t0 = Instant::now();
        store.insert_records(&batch).await.unwrap();
        spent += t0.elapsed();
        i = end;
    }
    let usage_rate = n as f64 / spent.as_secs_f64();
    let requests = n / USAGE_PER_REQUEST;
    let mut rspent = Duration::ZERO;
    let mut r = 0;
    while r < requests {
        let end = (r + BATCH as u64).min(requests);
        let batch: Vec<Record> = (r..end)
            .map(|j| Record::Request(request(j, &mut rng)))
            .collect();
        let t0 = Instant::now();
        store.insert_records(&batch).await.unwrap();
        rspent += t0.elapsed();
        r = end;
    }
    println!(
        "{name}: ingest {n} usage records in {:.1} s = {usage_rate:.0} records/s; {requests} request records = {:.0} records/s",
        spent.as_secs_f64(),
        requests as f64 / rspent.as_secs_f64()
    );

    let tasks = requests / REQUESTS_PER_TASK;
    let all = TenantScope::All;
    let mut lat = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let id = format!("task_{:010x}", rng.below(tasks));
        let t0 = Instant::now();
        let c = store.task_cost(&id, &all).await.unwrap();
        lat.push(t0.elapsed());
        assert!(c.is_some());
    }
    println!(
        "{name}: task_cost p50 {:.3} ms p99 {:.3} ms",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );
    let mut lat = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let f = RequestFilter {
            task_id: Some(format!("task_{:010x}", rng.below(tasks))),
            ..RequestFilter::default()
        };
        let t0 = Instant::now();
        let (rows, _) = store
            .list_requests(&f, Page::default(), &all)
            .await
            .unwrap();
        lat.push(t0.elapsed());
        assert!(!rows.is_empty());
    }
    println!(
        "{name}: list_requests(task_id) p50 {:.3} ms p99 {:.3} ms",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );
    let mut lat = Vec::with_capacity(QUERIES / 10);
    for _ in 0..QUERIES / 10 {
        let f = RequestFilter {
            entity_id: Some(format!("company_{}", rng.below(TENANTS))),
            task_type: Some("upload".into()),
            ..RequestFilter::default()
        };
        let page = Page {
            page: 1 + rng.below(20) as u32,
            page_size: 50,
        };
        let t0 = Instant::now();
        store.list_requests(&f, page, &all).await.unwrap();
        lat.push(t0.elapsed());
    }
    println!(
        "{name}: list_requests(entity_id, task_type, page 1-20 of 50, with total) p50 {:.3} ms p99 {:.3} ms",
        pct(lat.clone(), 0.5),
        pct(lat, 0.99)
    );

    match store {
        AnyStore::Sqlite(s) => {
            let bytes = s.vacuum().await.unwrap();
            let sizes = s.table_sizes().await.unwrap();
            let usage_bytes: u64 = sizes
                .iter()
                .filter(|(t, _)| t == "usage" || t.starts_with("usage_") && !t.contains("archive"))
                .map(|(_, b)| b)
                .sum();
            println!(
                "{name}: file {bytes} bytes after VACUUM = {:.1} bytes per usage record (all tables); usage table + indexes = {:.1} bytes per usage record",
                bytes as f64 / n as f64,
                usage_bytes as f64 / n as f64
            );
            for (t, b) in sizes.iter().take(16) {
                println!("  {t}: {b} bytes");
            }
        }
        AnyStore::Postgres(p) => {
            let u = p.table_size("usage").await.unwrap();
            let r = p.table_size("requests").await.unwrap();
            println!(
                "{name}: usage table + indexes {u} bytes = {:.1} bytes per usage record; requests {r} bytes",
                u as f64 / n as f64
            );
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let n: u64 = std::env::var("COSTTRACE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let store = AnyStore::open(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        bench("sqlite", &store, n).await;
        if let Ok(url) = std::env::var("COSTTRACE_TEST_POSTGRES_URL") {
            let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            let store = AnyStore::open(&format!("{url}{sep}options=-csearch_path%3D{schema}"))
                .await
                .unwrap();
            bench("postgres", &store, n).await;
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        } else {
            println!("postgres: skipped (COSTTRACE_TEST_POSTGRES_URL not set)");
        }
    });
}
