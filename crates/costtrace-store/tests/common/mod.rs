//! Shared fixtures: stores for each backend and record builders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;

use costtrace_core::{Environment, PricingTier, Record, RequestRecord, Timestamp, UsageRecord};
use costtrace_store::AnyStore;

/// The environment variable that enables the PostgreSQL suite.
pub const PG_ENV: &str = "COSTTRACE_TEST_POSTGRES_URL";

/// A fresh SQLite store in a temp dir (kept alive by the returned guard).
pub async fn sqlite_store() -> (AnyStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let store = AnyStore::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    (store, dir)
}

/// A PostgreSQL store in a fresh schema, or `None` when [`PG_ENV`] is unset.
pub async fn pg_store() -> Option<AnyStore> {
    pg_store_with_url().await.map(|(s, _)| s)
}

/// [`pg_store`] and the URL that reaches its schema.
pub async fn pg_store_with_url() -> Option<(AnyStore, String)> {
    let url = std::env::var(PG_ENV).ok().filter(|u| !u.is_empty())?;
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
    Some((AnyStore::open(&scoped).await.unwrap(), scoped))
}

/// Says (outside the test harness's capture, so CI logs show it) that the
/// PostgreSQL suite did not run. Never prints when the URL is set.
pub fn report_pg_skipped() {
    if std::env::var(PG_ENV).map(|u| u.is_empty()).unwrap_or(true) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: postgres suite (COSTTRACE_TEST_POSTGRES_URL not set)"
        );
    }
}

/// 2025-01-15T10:30:00Z plus `secs` seconds.
pub fn t(secs: i64) -> Timestamp {
    Timestamp(Timestamp::parse("2025-01-15T10:30:00Z").unwrap().0 + secs * 1_000_000)
}

pub fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A service usage (e.g. `file_processor`, 10 pages) with a stored cost.
pub fn service(
    at: Timestamp,
    kind: &str,
    units: &[(&str, u64)],
    cost: Option<i64>,
    links: &[(&str, &str)],
) -> UsageRecord {
    UsageRecord {
        id: costtrace_core::new_id(),
        scope_id: None,
        attrs: attrs(links),
        environment: Environment::Production,
        timestamp: at,
        provider: None,
        model: None,
        service_type: Some(kind.to_owned()),
        operation: None,
        input_tokens: None,
        output_tokens: None,
        cache_read_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        units: units.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        pricing_tier: PricingTier::Standard,
        cost_usd: cost.map(costtrace_core::nanos_to_usd),
        cost_nanos: cost,
        unpriced_reason: cost.is_none().then(|| "unpriced: test".to_owned()),
        price_version: cost.map(|_| "test@1".to_owned()),
        duration_ms: Some(12.5),
        error_message: None,
        partial: false,
    }
}

/// An LLM usage with tokens and a stored cost.
pub fn llm(
    at: Timestamp,
    provider: &str,
    model: &str,
    tokens: (u64, u64),
    cost: Option<i64>,
    links: &[(&str, &str)],
) -> UsageRecord {
    let mut u = service(at, "x", &[], cost, links);
    u.service_type = None;
    u.provider = Some(provider.to_owned());
    u.model = Some(model.to_owned());
    u.input_tokens = Some(tokens.0);
    u.output_tokens = Some(tokens.1);
    u
}

pub fn request(id: &str, at: Timestamp, fields: &[(&str, &str)]) -> RequestRecord {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(f, _)| *f == k)
            .map(|(_, v)| (*v).to_owned())
    };
    RequestRecord {
        request_id: id.to_owned(),
        task_id: get("task_id"),
        doc_id: get("doc_id"),
        entity_id: get("entity_id"),
        operation_type: get("operation_type"),
        task_type: get("task_type"),
        endpoint: get("endpoint"),
        method: get("method"),
        status_code: get("status").map(|s| s.parse().unwrap()),
        timestamp: at,
        processing_time_ms: get("ms").map(|s| s.parse().unwrap()),
        error_message: None,
        environment: Environment::Production,
    }
}

pub fn usage_records(us: Vec<UsageRecord>) -> Vec<Record> {
    us.into_iter().map(Record::Usage).collect()
}
