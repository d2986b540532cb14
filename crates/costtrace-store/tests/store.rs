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

use common::*;
use costs::*;
use maintenance::*;
use requests::*;

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
    api_keys_crud,
    unknown_ids_are_none,
);

#[test]
fn postgres_suite_status() {
    report_pg_skipped();
}
