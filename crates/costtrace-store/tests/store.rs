//! One behavioural suite, run against SQLite always and against PostgreSQL
//! when `COSTTRACE_TEST_POSTGRES_URL` is set (each test in a fresh schema).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "store/costs.rs"]
mod costs;
#[path = "store/maintenance.rs"]
mod maintenance;
#[path = "store/requests.rs"]
mod requests;
#[path = "store/tail.rs"]
mod tail;

use common::*;
use costs::*;
use maintenance::*;
use requests::*;
use tail::*;

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _dir) = super::sqlite_store().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = super::pg_store().await else { return };
                    super::$name(&store).await;
                }
            )*
        }
    };
}

suite!(
    idempotent_insert,
    request_start_end_and_services,
    multi_request_task_aggregates,
    running_task_has_cost_so_far,
    doc_and_entity_cost,
    filters_pagination_and_total,
    usage_summary_groups_with_unpriced,
    tenant_scoping_hides_other_tenants,
    archive_moves_without_losing,
    reprice_fixes_wrong_costs_and_keeps_reported,
    time_ranges_find_late_records,
    api_keys_crud,
    unknown_ids_are_none,
    records_after_follows_what_is_stored,
    names_stored_after_reads_resolve,
    replays_inside_large_batches_count_once,
    totals_past_i64_saturate,
    doc_of_another_tenant_stays_hidden,
    requests_of_other_tenants_are_not_merged,
    tenant_id_names_the_entity_when_entity_id_is_absent,
);

/// PostgreSQL sequences are not commit-ordered: a transaction that took an
/// earlier sequence number but commits later must still be followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_late_commits_are_not_missed() {
    use costtrace_store::Store;
    let Some((store, url)) = pg_store_with_url().await else {
        return;
    };
    let connect = || async {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    };
    let (early, late) = (connect().await, connect().await);
    // One stored record first, for a `dims` row the raw inserts can use.
    let first = usage_records(vec![service(t(0), "x", &[], Some(1), &[])]);
    store.insert_records(&first).await.unwrap();
    // The cursor's end must lie past it: wait until it is settled (other
    // tests may hold an older transaction open for a moment).
    settled(&store, &first[0].key(), 1).await;
    let end = store.record_cursor_end().await.unwrap();
    let insert = |id: &str| {
        format!("INSERT INTO usage (id, ts, dims_k) VALUES ('{id}', 0, (SELECT min(id) FROM dims))")
    };
    let (a, b) = (
        "0194e0a0-0000-7000-8000-00000000000a",
        "0194e0a0-0000-7000-8000-00000000000b",
    );
    // `early` takes its sequence number first but commits last.
    early
        .batch_execute(&format!("BEGIN; {}", insert(a)))
        .await
        .unwrap();
    late.batch_execute(&format!("BEGIN; {}; COMMIT", insert(b)))
        .await
        .unwrap();
    let (seen, cursor) = store.records_after(end, 100).await.unwrap();
    assert!(seen.is_empty(), "read past a running transaction: {seen:?}");
    assert_eq!(cursor, end);
    early.batch_execute("COMMIT").await.unwrap();
    // Rows count as settled once no transaction anywhere in the cluster is
    // older than theirs; other tests running beside this one may hold one
    // open for a moment, so wait (bounded) for both to appear — in order.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (seen, cursor) = loop {
        let (seen, cursor) = store.records_after(end, 100).await.unwrap();
        if seen.len() >= 2 || std::time::Instant::now() > deadline {
            break (seen, cursor);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let ids: Vec<String> = seen.iter().map(costtrace_core::Record::key).collect();
    assert_eq!(ids, [a, b]);
    assert!(store.records_after(cursor, 100).await.unwrap().0.is_empty());
}

/// The records from the start of the store once the one keyed `key` and at
/// least `n` in all are settled (bounded wait).
async fn settled(
    store: &costtrace_store::AnyStore,
    key: &str,
    n: usize,
) -> Vec<costtrace_core::Record> {
    use costtrace_store::{RecordCursor, Store};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (seen, _) = store
            .records_after(RecordCursor::default(), 1000)
            .await
            .unwrap();
        let found = seen.iter().any(|r| r.key() == key) && seen.len() >= n;
        if found || std::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[test]
fn postgres_suite_status() {
    report_pg_skipped();
}

/// A reopened SQLite store starts with an empty writer name cache: names
/// stored before (the task, the tenant, the service) must map to the same
/// ids, not to new rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reopened_store_reuses_stored_names() {
    use costtrace_store::{AnyStore, Store, TenantScope};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("reopen.db").display());
    let links = [("task_id", "tk_r"), ("entity_id", "e_r")];
    let batch = |from: i64| {
        usage_records(
            (from..from + 40)
                .map(|i| service(t(i), "x", &[], Some(1), &links))
                .collect(),
        )
    };
    let store = AnyStore::open(&url).await.unwrap();
    assert_eq!(store.insert_records(&batch(0)).await.unwrap(), 40);
    drop(store);
    let store = AnyStore::open(&url).await.unwrap();
    assert_eq!(store.insert_records(&batch(100)).await.unwrap(), 40);
    let all = &TenantScope::All;
    let cost = store.task_cost("tk_r", all).await.unwrap().unwrap();
    assert_eq!(cost.total_cost_nanos, 80);
    let tenant = store.entity_cost("e_r", all).await.unwrap().unwrap();
    assert_eq!(tenant.total_cost_nanos, 80);
}

/// Migration 5 (compact usage rows) keeps every row of a version-4 store:
/// hot and archived usage, their links, dims and ingest positions, and the
/// answers computed from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_5_keeps_version_4_rows() {
    use costtrace_store::{AnyStore, Store, TenantScope};
    let Ok(url) = std::env::var("COSTTRACE_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = format!("m_{}", uuid::Uuid::now_v7().simple());
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(&format!(
        "CREATE SCHEMA {schema}; SET search_path = {schema};
         CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL);"
    ))
    .await
    .unwrap();
    let v4 = [
        include_str!("../src/postgres/migrations/001_init.sql"),
        include_str!("../src/postgres/migrations/002_ingest_order.sql"),
        include_str!("../src/postgres/migrations/003_entity_task_type.sql"),
        include_str!("../src/postgres/migrations/004_ingest_seq_cache.sql"),
    ];
    for (i, sql) in v4.iter().enumerate() {
        c.batch_execute(sql).await.unwrap();
        c.execute(
            "INSERT INTO schema_migrations VALUES ($1, 0)",
            &[&(i as i32 + 1)],
        )
        .await
        .unwrap();
    }
    // Rows as version 4 stored them: two usages of one request of task
    // tk_m (one LLM call, one service), one archived usage, one usage with
    // no links at all.
    let (t0, t1) = (t(0).as_micros(), t(1).as_micros());
    c.batch_execute(&format!(
        "INSERT INTO usage (id, ts, cost_nanos, input_tokens, output_tokens, env, tier, partial,
                            request_id, task_id, doc_id, entity_id, provider, model, operation,
                            price_version)
         VALUES ('0194e0a0-0000-7000-8000-000000000001', {t0}, 1500, 100, 20, 0, 1, false,
                 'r_m', 'tk_m', 'd_m', 'e_m', 'openai', 'gpt-4o', 'chat', 'v1');
         INSERT INTO usage (id, ts, cost_nanos, env, tier, partial, request_id, task_id,
                            entity_id, service_type, units, attrs)
         VALUES ('0194e0a0-0000-7000-8000-000000000002', {t1}, NULL, 0, 0, false, 'r_m', 'tk_m',
                 'e_m', 'file_processor', '{{\"pages\": 3}}', '{{\"job_id\": \"j1\"}}');
         INSERT INTO usage (id, ts, cost_nanos, env, tier, partial, service_type)
         VALUES ('0194e0a0-0000-7000-8000-000000000003', {t1}, 7, 3, 0, true, 'transformer');
         INSERT INTO usage_archive (id, ts, cost_nanos, env, tier, partial, task_id, entity_id,
                                    service_type)
         VALUES ('0194e0a0-0000-7000-8000-000000000004', 5, 9, 0, 0, false, 'tk_old', 'e_m',
                 'transformer');
         INSERT INTO requests (request_id, ts, task_id, doc_id, entity_id, env)
         VALUES ('r_m', {t0}, 'tk_m', 'd_m', 'e_m', 0);"
    ))
    .await
    .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = AnyStore::open(&format!("{url}{sep}options=-csearch_path%3D{schema}"))
        .await
        .unwrap();

    let cost = store
        .task_cost("tk_m", &TenantScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cost.request_count, 1);
    assert_eq!(cost.total_cost_nanos, 1500);
    let services: Vec<&str> = cost
        .breakdown_by_service
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(services, ["file_processor", "llm:gpt-4o"]);
    let scoped = TenantScope::Tenant("e_m".into());
    assert!(store.task_cost("tk_m", &scoped).await.unwrap().is_some());
    let other = TenantScope::Tenant("e_other".into());
    assert!(store.task_cost("tk_m", &other).await.unwrap().is_none());
    assert_eq!(store.archive_counts().await.unwrap().usage, 1);

    // Every hot usage comes back whole, in its version-4 ingest order (once
    // settled: other tests may hold an older transaction open).
    let records = settled(&store, "0194e0a0-0000-7000-8000-000000000003", 3).await;
    let usage: Vec<&costtrace_core::UsageRecord> =
        records.iter().filter_map(|r| r.as_usage()).collect();
    assert_eq!(usage.len(), 3);
    let llm = usage[0];
    assert_eq!(llm.model.as_deref(), Some("gpt-4o"));
    assert_eq!(llm.provider.as_deref(), Some("openai"));
    assert_eq!(llm.price_version.as_deref(), Some("v1"));
    assert_eq!(llm.pricing_tier, costtrace_core::PricingTier::Batch);
    assert_eq!((llm.input_tokens, llm.output_tokens), (Some(100), Some(20)));
    assert_eq!(llm.attrs.get("doc_id").map(String::as_str), Some("d_m"));
    assert_eq!(llm.attrs.get("request_id").map(String::as_str), Some("r_m"));
    let svc = usage[1];
    assert_eq!(svc.cost_nanos, None);
    assert_eq!(svc.units.get("pages"), Some(&3));
    assert_eq!(svc.attrs.get("job_id").map(String::as_str), Some("j1"));
    assert_eq!(svc.attrs.get("entity_id").map(String::as_str), Some("e_m"));
    let bare = usage[2];
    assert!(bare.partial);
    assert!(bare.attrs.is_empty());
    assert_eq!(bare.environment, costtrace_core::Environment::Development);

    // New records still go in, and a replay of a migrated one counts once.
    let again = usage_records(vec![service(
        t(2),
        "transformer",
        &[],
        Some(5),
        &[("task_id", "tk_m"), ("entity_id", "e_m")],
    )]);
    assert_eq!(store.insert_records(&again).await.unwrap(), 1);
    assert_eq!(store.insert_records(&again).await.unwrap(), 0);
    let cost = store
        .task_cost("tk_m", &TenantScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cost.total_cost_nanos, 1505);
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Two writers that do not share a cache (two processes) store usage of the
/// same request and task: each may add its own `links` row for the tuple,
/// and every answer still counts each usage once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_writers_same_request_count_once() {
    use costtrace_store::{AnyStore, Page, RequestFilter, Store, TenantScope};
    let Some((one, url)) = pg_store_with_url().await else {
        return;
    };
    let two = AnyStore::open(&url).await.unwrap();
    let links = [
        ("request_id", "r_w"),
        ("task_id", "tk_w"),
        ("entity_id", "e_w"),
    ];
    let a = usage_records(vec![service(t(0), "x", &[], Some(7), &links)]);
    let b = usage_records(vec![service(t(1), "x", &[], Some(8), &links)]);
    assert_eq!(one.insert_records(&a).await.unwrap(), 1);
    assert_eq!(two.insert_records(&b).await.unwrap(), 1);
    // Replays through the other writer count nothing.
    assert_eq!(two.insert_records(&a).await.unwrap(), 0);
    assert_eq!(one.insert_records(&b).await.unwrap(), 0);
    let req = vec![costtrace_core::Record::Request(request(
        "r_w",
        t(0),
        &[("task_id", "tk_w"), ("entity_id", "e_w")],
    ))];
    one.insert_records(&req).await.unwrap();
    let all = TenantScope::All;
    for s in [&one, &two] {
        let cost = s.task_cost("tk_w", &all).await.unwrap().unwrap();
        assert_eq!(cost.total_cost_nanos, 15);
        assert_eq!(cost.request_count, 1);
        let tenant = TenantScope::Tenant("e_w".into());
        let cost = s.entity_cost("e_w", &tenant).await.unwrap().unwrap();
        assert_eq!(cost.total_cost_nanos, 15);
        let filter = RequestFilter {
            task_id: Some("tk_w".into()),
            ..RequestFilter::default()
        };
        let (page, total) = s
            .list_requests(
                &filter,
                Page {
                    page: 1,
                    page_size: 10,
                },
                &all,
            )
            .await
            .unwrap();
        assert_eq!(total, 1);
        assert_eq!(page[0].total_cost_nanos, 15);
    }
}

/// The WAL is checkpointed by the store's checkpointer thread, not by the
/// writer: after enough writes to pass SQLite's 1,000-page threshold the
/// database file grows with no explicit checkpoint, the WAL stays bounded,
/// and nothing is lost, before or after the store is closed and reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_is_checkpointed_beside_the_writer() {
    use costtrace_store::{AnyStore, Store, TenantScope};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ckpt.db");
    let wal = dir.path().join("ckpt.db-wal");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let store = AnyStore::open(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    let empty = size(&db);
    let mut stored = 0;
    for b in 0..40 {
        let links = [
            ("task_id", format!("tk_{b}")),
            ("entity_id", "e_ckpt".to_owned()),
        ];
        let links: Vec<(&str, &str)> = links.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let batch = usage_records(
            (0..1_000)
                .map(|i| {
                    let mut u = service(t(i), "x", &[("pages", 3)], Some(1), &links);
                    u.error_message = Some("e".repeat(200));
                    u
                })
                .collect(),
        );
        stored += store.insert_records(&batch).await.unwrap();
    }
    assert_eq!(stored, 40_000);
    // The checkpointer copies the WAL into the database file on its own.
    let t0 = std::time::Instant::now();
    while size(&db) <= empty + (4 << 20) && t0.elapsed() < std::time::Duration::from_secs(20) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        size(&db) > empty + (4 << 20),
        "database file {} bytes, WAL {} bytes: no checkpoint ran",
        size(&db),
        size(&wal)
    );
    // Bounded: far below the ~20 MB the 40 batches wrote to the WAL.
    assert!(size(&wal) < 12 << 20, "WAL {} bytes", size(&wal));
    let tenant = store
        .entity_cost("e_ckpt", &TenantScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tenant.total_cost_nanos, 40_000);
    drop(store);
    let store = AnyStore::open(&format!("sqlite:{}", db.display()))
        .await
        .unwrap();
    let tenant = store
        .entity_cost("e_ckpt", &TenantScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tenant.total_cost_nanos, 40_000);
}

/// A new links tuple that comes back later in the same batch (not in a row)
/// gets one `links` row, and all of its usage counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_new_link_repeated_in_a_batch_gets_one_row() {
    use costtrace_store::{Store, TenantScope};
    let Some((store, url)) = pg_store_with_url().await else {
        return;
    };
    let a = [("request_id", "r_a"), ("task_id", "tk_rep")];
    let b = [("request_id", "r_b"), ("task_id", "tk_rep")];
    let batch = usage_records(vec![
        service(t(0), "x", &[], Some(1), &a),
        service(t(1), "x", &[], Some(2), &b),
        service(t(2), "x", &[], Some(4), &a),
    ]);
    assert_eq!(store.insert_records(&batch).await.unwrap(), 3);
    let cost = store
        .task_cost("tk_rep", &TenantScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cost.total_cost_nanos, 7);
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n: i64 = c
        .query_one("SELECT COUNT(*) FROM links WHERE task_id = 'tk_rep'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}
