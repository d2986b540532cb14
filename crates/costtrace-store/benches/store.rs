//! Store benchmark: ingest throughput, query latency at N stored records,
//! bytes on disk per usage record. SQLite always; PostgreSQL when
//! `COSTTRACE_TEST_POSTGRES_URL` is set.
//!
//! ```sh
//! COSTTRACE_BENCH_N=1000000 CARGO_TARGET_DIR=/work/target-store \
//!   cargo bench -p costtrace-store --bench store
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use costtrace_core::Record;
use costtrace_store::{AnyStore, Page, RequestFilter, Store, TenantScope};

mod synthetic;
use synthetic::*;

const BATCH: usize = 10_000;
const QUERIES: usize = 2_000;

/// This process's user + system CPU seconds (Linux; 0 elsewhere). Ingest
/// CPU per record is steadier than wall-clock rate on a shared machine.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 12th and 13th of them, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Bytes this process has caused to be fetched from storage
/// (`/proc/self/io` `read_bytes`; page-cache hits are not counted).
fn storage_read_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("read_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
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
    let mut cpu = 0.0;
    let mut i = 0;
    while i < n {
        let end = (i + BATCH as u64).min(n);
        let batch: Vec<Record> = (i..end)
            .map(|j| Record::Usage(usage(j, &mut rng)))
            .collect();
        let (t0, c0) = (Instant::now(), cpu_secs());
        store.insert_records(&batch).await.unwrap();
        spent += t0.elapsed();
        cpu += cpu_secs() - c0;
        i = end;
    }
    let usage_rate = n as f64 / spent.as_secs_f64();
    if std::env::var_os("COSTTRACE_BENCH_INGEST_ONLY").is_some() {
        // For profiling the write path alone.
        println!(
            "{name}: ingest {n} usage records in {:.1} s = {usage_rate:.0} records/s ({:.2} µs of this process's CPU per record)",
            spent.as_secs_f64(),
            cpu * 1e6 / n as f64
        );
        return;
    }
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
        "{name}: ingest {n} usage records in {:.1} s = {usage_rate:.0} records/s ({:.2} µs of this process's CPU per record); {requests} request records = {:.0} records/s",
        spent.as_secs_f64(),
        cpu * 1e6 / n as f64,
        requests as f64 / rspent.as_secs_f64()
    );

    let tasks = requests / REQUESTS_PER_TASK;
    let all = TenantScope::All;
    let ids: Vec<String> = (0..QUERIES)
        .map(|_| format!("task_{:010x}", rng.below(tasks)))
        .collect();
    // Twice over the same ids: the first pass finds whatever the OS page
    // cache kept of a file just written (this VM's memory manager reclaims
    // cold file pages), the second the pages those tasks need. Bytes read
    // from storage by this process are reported beside each pass.
    for pass in ["first pass", "second pass, same ids"] {
        let (mut lat, io0) = (Vec::with_capacity(QUERIES), storage_read_bytes());
        for id in &ids {
            let t0 = Instant::now();
            let c = store.task_cost(id, &all).await.unwrap();
            lat.push(t0.elapsed());
            assert!(c.is_some());
        }
        println!(
            "{name}: task_cost ({pass}) p50 {:.3} ms p99 {:.3} ms ({:.1} MB read from storage)",
            pct(lat.clone(), 0.5),
            pct(lat, 0.99),
            (storage_read_bytes() - io0) as f64 / 1e6
        );
    }
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
            let sizes = p.relation_sizes().await.unwrap();
            let all: u64 = sizes.iter().map(|(_, b)| b).sum();
            println!(
                "{name}: all tables and indexes {all} bytes = {:.1} bytes per usage record",
                all as f64 / n as f64
            );
            for (t, b) in sizes.iter().filter(|(_, b)| *b > 8192).take(24) {
                println!(
                    "  {t}: {b} bytes = {:.1} per usage record",
                    *b as f64 / n as f64
                );
            }
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
        // COSTTRACE_BENCH_SKIP_SQLITE=1 measures PostgreSQL alone.
        if std::env::var_os("COSTTRACE_BENCH_SKIP_SQLITE").is_none() {
            bench("sqlite", &store, n).await;
        }
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
            if std::env::var_os("COSTTRACE_BENCH_KEEP").is_some() {
                println!("postgres: schema {schema} kept (COSTTRACE_BENCH_KEEP)");
                return;
            }
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        } else {
            println!("postgres: skipped (COSTTRACE_TEST_POSTGRES_URL not set)");
        }
    });
}
