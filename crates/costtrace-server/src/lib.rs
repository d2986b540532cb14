//! The costtrace HTTP API: [`app`] builds the axum [`Router`] that both the
//! `costtrace serve` command and the tests use.
//!
//! Endpoints (seed 004's shapes; timestamps RFC 3339 UTC with milliseconds;
//! errors are `{"detail": "..."}`):
//!
//! | endpoint | answers |
//! |---|---|
//! | `GET /api/requests` | `{"requests": [...], "total": N}`, filters `task_id doc_id entity_id task_type operation_type status_code from to`, `page` (1-based), `page_size` (≤ 1000) |
//! | `GET /api/requests/{request_id}` | one request with `services_used` and `total_cost_usd` |
//! | `GET /api/tasks/{task_id}/cost` (also `docs`, `entities`) | totals, `breakdown_by_service`, `request_count`, `unpriced_count` |
//! | `GET /api/usage/summary?group_by=model\|provider\|service_type\|entity_id\|task_id\|doc_id\|day\|hour` (also `from`, `to`, `entity_id`, `limit`) | priced totals with unpriced counts per group |
//! | `POST /api/ingest` | `{"accepted": N, "inserted": M, "rejected": [{"index", "reason"}]}` |
//! | `GET /healthz`, `GET /metrics`, `GET /openapi.json` | health, Prometheus text, OpenAPI 3.1 (generated from the handlers) |
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use costtrace_server::{AppState, AuthMode, app};
//! let store = costtrace_store::AnyStore::open("sqlite:./costtrace.db").await?;
//! let state = AppState::new(store, costtrace_pricing::Catalogue::bundled(), AuthMode::Local);
//! let router = app(state);
//! # let _ = router; Ok(()) }
//! ```

mod api;
mod auth;
mod dashboard;
mod error;
mod ingest;
mod metrics;
mod openapi;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use costtrace_pricing::Catalogue;
use costtrace_store::AnyStore;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use api::{DocCost, EntityCost, GroupByParam, RequestList, TaskCost, UsageSummary};
pub use auth::{
    Auth, AuthMode, Caller, KEY_CACHE_TTL, KEY_PREFIX, KEY_PROBE_INTERVAL, generate_key, hash_key,
};
pub use error::{ApiError, ErrorBody};
pub use ingest::{IngestResult, Rejected};
pub use ingest::{MAX_BATCH, MAX_BODY_BYTES, MAX_COST_USD, MAX_COUNT};
pub use metrics::Metrics;
pub use openapi::document as openapi_document;

/// Longest id (request, task, doc, entity) accepted anywhere, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// What every handler shares: the store, the catalogue that prices ingested
/// usage, how callers authenticate, and the metrics.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Where records live.
    pub store: AnyStore,
    /// Prices usage that arrives without a cost.
    pub catalogue: Arc<Catalogue>,
    /// Whether a key is required, and the key cache.
    pub auth: Arc<Auth>,
    /// Counters for `GET /metrics`.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// A state with fresh metrics.
    pub fn new(store: AnyStore, catalogue: Arc<Catalogue>, auth: AuthMode) -> AppState {
        AppState {
            store,
            catalogue,
            auth: Arc::new(Auth::new(auth)),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// The whole API as one router.
pub fn app(state: AppState) -> Router {
    let (router, _) = api_router().split_for_parts();
    router
        .route("/", axum::routing::get(dashboard::index))
        .route("/assets/{*path}", axum::routing::get(dashboard::asset))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Every documented route; [`app`] serves it and [`openapi::document`]
/// describes it.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::list_requests))
        .routes(routes!(api::get_request))
        .routes(routes!(api::task_cost))
        .routes(routes!(api::doc_cost))
        .routes(routes!(api::entity_cost))
        .routes(routes!(api::usage_summary))
        .routes(routes!(ingest::ingest).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .routes(routes!(healthz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi::openapi))
}

/// `GET /healthz`
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// `local` (no keys) or `keys`.
    #[schema(value_type = String, example = "keys")]
    pub auth: &'static str,
    /// Version of the price catalogue.
    pub catalogue_version: String,
}

/// Health
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, description = "The server is up", body = Health)))]
async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        backend: state.store.backend(),
        auth: match state.auth.mode() {
            AuthMode::Local => "local",
            AuthMode::Keys => "keys",
        },
        catalogue_version: state.catalogue.version().to_owned(),
    })
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not found".into())
}
