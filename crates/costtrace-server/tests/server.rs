//! The HTTP API through `tower::ServiceExt::oneshot`, against SQLite always
//! and PostgreSQL when `COSTTRACE_TEST_POSTGRES_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "server/auth.rs"]
mod auth;
#[path = "server/common.rs"]
mod common;
#[path = "server/ingest.rs"]
mod ingest;
#[path = "server/meta.rs"]
mod meta;
#[path = "server/reads.rs"]
mod reads;

use auth::*;
use common::*;
use ingest::*;
use meta::*;
use reads::*;

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let s = super::sqlite_store().await;
                    super::$name(&s.store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(s) = super::pg_store().await else { return };
                    super::$name(&s.store).await;
                }
            )*
        }
    };
}

suite!(
    list_requests_seed_shape,
    get_request_and_not_found,
    task_doc_entity_cost,
    pagination_and_limits,
    usage_summary_groups,
    health_and_fallback,
    ingest_prices_keeps_reported_and_is_idempotent,
    ingest_rejects_invalid_records_one_by_one,
    ingest_body_errors_are_4xx,
    keys_are_required_and_checked,
    key_lookups_are_cached_until_the_ttl,
    local_mode_requires_keys_once_one_is_created,
    tenant_sees_only_its_own_data,
    tenant_writes_only_its_own_data,
    openapi_matches_responses,
    metrics_count_requests_by_route,
    local_mode_answers_only_loopback_hosts,
);

#[test]
fn postgres_suite_status() {
    report_pg_skipped();
}
