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
    let end = store.record_cursor_end().await.unwrap();
    let insert = |id: &str| {
        format!(
            "INSERT INTO usage (id, ts, env, tier, partial, service_type)
             VALUES ('{id}', 0, 0, 0, false, 'x')"
        )
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
