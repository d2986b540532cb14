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
//! | `GET /api/usage/summary?group_by=model\|provider\|service_type\|entity_id\|task_id\|doc_id\|day\|hour` | priced totals with unpriced counts per group |
//! | `POST /api/ingest` | `{"accepted": N, "inserted": M, "rejected": [{"index", "reason"}]}` |
//! | `GET /healthz`, `GET /metrics`, `GET /openapi.json` | health, Prometheus text, OpenAPI 3 |
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
mod error;
mod ingest;
mod metrics;
mod openapi;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use costtrace_pricing::Catalogue;
use costtrace_store::AnyStore;
use serde_json::{Value, json};

pub use auth::{AuthMode, Caller, KEY_PREFIX, generate_key, hash_key};
pub use error::ApiError;
pub use ingest::{MAX_BATCH, MAX_BODY_BYTES, MAX_COST_USD, MAX_COUNT};
pub use metrics::Metrics;

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
    /// Whether a key is required.
    pub auth: AuthMode,
    /// Counters for `GET /metrics`.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// A state with fresh metrics.
    pub fn new(store: AnyStore, catalogue: Arc<Catalogue>, auth: AuthMode) -> AppState {
        AppState {
            store,
            catalogue,
            auth,
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// The whole API as one router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/requests", get(api::list_requests))
        .route("/api/requests/{request_id}", get(api::get_request))
        .route("/api/tasks/{task_id}/cost", get(api::task_cost))
        .route("/api/docs/{doc_id}/cost", get(api::doc_cost))
        .route("/api/entities/{entity_id}/cost", get(api::entity_cost))
        .route("/api/usage/summary", get(api::usage_summary))
        .route(
            "/api/ingest",
            post(ingest::ingest).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "backend": state.store.backend(),
        "auth": match state.auth { AuthMode::Local => "local", AuthMode::Keys => "keys" },
        "catalogue_version": state.catalogue.version(),
    }))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not found".into())
}
