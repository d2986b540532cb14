//! Read endpoints: requests, task/doc/entity cost, usage summary.
//!
//! Every handler carries its `#[utoipa::path]` and returns a typed body, so
//! `GET /openapi.json` is generated from these signatures and types.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use costtrace_core::Timestamp;
use costtrace_store::{
    CostView, GroupBy, Page, RequestFilter, RequestView, Store, SummaryRow, TenantScope,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, AppState, Caller, ErrorBody, MAX_ID_LEN};

/// Query parameters of `GET /api/requests`, parsed by hand so every bad value
/// gets a 422 that names it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Requests of this task.
    task_id: Option<String>,
    /// Requests of this document.
    doc_id: Option<String>,
    /// Requests of this entity (tenant).
    entity_id: Option<String>,
    /// E.g. `upload`.
    task_type: Option<String>,
    /// E.g. `file_upload`.
    operation_type: Option<String>,
    /// Final HTTP status of the request.
    #[param(value_type = Option<u16>)]
    status_code: Option<String>,
    /// Requests at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// Requests before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// 1-based page number (default 1).
    #[param(value_type = Option<u32>, minimum = 1)]
    page: Option<String>,
    /// Rows per page (default 50, at most 1000; more is a 422).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    page_size: Option<String>,
}

/// `GET /api/requests`: one page of requests and the number of matches.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestList {
    /// Newest first.
    pub requests: Vec<RequestView>,
    /// All matching requests, over every page.
    pub total: u64,
}

/// A JSON answer serialized straight into one buffer of `capacity` bytes
/// (axum's `Json` starts at 128 bytes and doubles, copying each time; a list
/// of requests is a few KB).
fn json_sized<T: Serialize>(value: &T, capacity: usize) -> Result<Response, ApiError> {
    let mut buf = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut buf, value).map_err(|e| {
        ApiError::Status(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode the answer: {e}"),
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        buf,
    )
        .into_response())
}

/// Bytes of JSON per listed request, about (with its usage): a generous
/// guess, so the buffer rarely grows.
const LISTED_REQUEST_BYTES: usize = 1_024;

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::Invalid(format!("invalid query string: {}", e.body_text())))
}

fn id_param(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.contains('\0') => Err(ApiError::Invalid(format!(
            "{name} contains a NUL character"
        ))),
        Some(s) if s.len() > MAX_ID_LEN => Err(ApiError::Invalid(format!(
            "{name} is {} bytes long; at most {MAX_ID_LEN} are allowed",
            s.len()
        ))),
        Some(s) if s.is_empty() => Ok(None),
        other => Ok(other),
    }
}

fn time_param(name: &str, v: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| Timestamp::parse(s).map_err(|e| ApiError::Invalid(format!("{name}: {e}"))))
        .transpose()
}

fn number<T: std::str::FromStr>(
    name: &str,
    v: Option<&str>,
    what: &str,
) -> Result<Option<T>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| ApiError::Invalid(format!("{name} {s:?} is not {what}")))
        })
        .transpose()
}

fn path_id(name: &str, path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::Invalid(format!("{name}: {}", e.body_text())))?;
    if id.contains('\0') {
        return Err(ApiError::Invalid(format!(
            "{name} contains a NUL character"
        )));
    }
    if id.len() > MAX_ID_LEN {
        return Err(ApiError::Invalid(format!(
            "{name} is {} bytes long; at most {MAX_ID_LEN} are allowed",
            id.len()
        )));
    }
    Ok(id)
}

/// List requests
///
/// Filters combine with AND; newest first, stable pages.
#[utoipa::path(get, path = "/api/requests", tag = "requests", params(ListParams),
    responses(
        (status = 200, description = "One page of requests", body = RequestList),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 422, description = "A bad filter or page value, named in `detail`", body = ErrorBody),
    ))]
pub(crate) async fn list_requests(
    State(state): State<AppState>,
    Caller(scope): Caller,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query(q)?;
    let page = number::<u32>("page", p.page.as_deref(), "a page number (1, 2, …)")?.unwrap_or(1);
    let page_size = number::<u32>(
        "page_size",
        p.page_size.as_deref(),
        "a number between 1 and 1000",
    )?
    .unwrap_or(50);
    if page == 0 {
        return Err(ApiError::Invalid("page starts at 1".into()));
    }
    if page_size == 0 || page_size > Page::MAX_SIZE {
        return Err(ApiError::Invalid(format!(
            "page_size {page_size} is out of range: use 1 to {}",
            Page::MAX_SIZE
        )));
    }
    let status_code = number::<u16>(
        "status_code",
        p.status_code.as_deref(),
        "an HTTP status code",
    )?;
    let filter = RequestFilter {
        task_id: id_param("task_id", p.task_id)?,
        doc_id: id_param("doc_id", p.doc_id)?,
        entity_id: id_param("entity_id", p.entity_id)?,
        task_type: id_param("task_type", p.task_type)?,
        operation_type: id_param("operation_type", p.operation_type)?,
        status_code,
        from: time_param("from", p.from.as_deref())?,
        to: time_param("to", p.to.as_deref())?,
    };
    let (requests, total) = state
        .store
        .list_requests(&filter, Page { page, page_size }, &scope)
        .await?;
    let capacity = 32 + requests.len() * LISTED_REQUEST_BYTES;
    json_sized(&RequestList { requests, total }, capacity)
}

/// One request
///
/// With the services it used and their cost.
#[utoipa::path(get, path = "/api/requests/{request_id}", tag = "requests",
    params(("request_id" = String, Path, max_length = 256, description = "The request id")),
    responses(
        (status = 200, description = "The request", body = RequestView),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "Request X not found (also another tenant's)", body = ErrorBody),
        (status = 422, description = "Id too long", body = ErrorBody),
    ))]
pub(crate) async fn get_request(
    State(state): State<AppState>,
    Caller(scope): Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RequestView>, ApiError> {
    let request_id = path_id("request_id", path)?;
    match state.store.get_request(&request_id, &scope).await? {
        Some(view) => Ok(Json(view)),
        None => Err(ApiError::NotFound(format!(
            "Request {request_id} not found"
        ))),
    }
}

/// Seed 004's cost responses: the id under its own name (`task_id` …), then
/// the totals; `unpriced_count` counts usage that is not in the total.
macro_rules! cost_response {
    ($name:ident, $id:ident, $id_name:literal, $what:literal, $path:literal, $handler:ident, $query:ident, $label:literal) => {
        #[doc = concat!("`GET ", $path, "`: what the ", $what, " has cost so far.")]
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            #[doc = concat!("The ", $what, " id.")]
            pub $id: String,
            /// Priced total in dollars; unpriced usage is not in it.
            pub total_cost_usd: f64,
            /// Priced total in nano-USD (exact).
            pub total_cost_nanos: i64,
            /// Earliest usage or request timestamp.
            pub period_start: Timestamp,
            /// Latest usage timestamp or request end.
            pub period_end: Timestamp,
            /// Priced dollars per service.
            pub breakdown_by_service: BTreeMap<String, f64>,
            /// Requests counted for it.
            pub request_count: u64,
            /// Usage records without a price (not in the totals).
            pub unpriced_count: u64,
        }

        impl From<CostView> for $name {
            fn from(v: CostView) -> Self {
                $name {
                    $id: v.id,
                    total_cost_usd: v.total_cost_usd,
                    total_cost_nanos: v.total_cost_nanos,
                    period_start: v.period_start,
                    period_end: v.period_end,
                    breakdown_by_service: v.breakdown_by_service,
                    request_count: v.request_count,
                    unpriced_count: v.unpriced_count,
                }
            }
        }

        #[doc = concat!("Cost of a ", $what, " so far")]
        #[utoipa::path(get, path = $path, tag = "costs",
            params(($id_name = String, Path, max_length = 256, description = concat!("The ", $what, " id"))),
            responses(
                (status = 200, description = concat!("The ", $what, "'s cost"), body = $name),
                (status = 401, description = "Missing or invalid API key", body = ErrorBody),
                (status = 404, description = concat!($label, " X not found (also another tenant's)"), body = ErrorBody),
                (status = 422, description = "Id too long", body = ErrorBody),
            ))]
        pub(crate) async fn $handler(
            State(state): State<AppState>,
            Caller(scope): Caller,
            path: Result<Path<String>, PathRejection>,
        ) -> Result<Json<$name>, ApiError> {
            let id = path_id($id_name, path)?;
            match state.store.$query(&id, &scope).await? {
                Some(v) => Ok(Json(v.into())),
                None => Err(ApiError::NotFound(format!(concat!($label, " {} not found"), id))),
            }
        }
    };
}

cost_response!(
    TaskCost,
    task_id,
    "task_id",
    "task",
    "/api/tasks/{task_id}/cost",
    task_cost,
    task_cost,
    "Task"
);
cost_response!(
    DocCost,
    doc_id,
    "doc_id",
    "document",
    "/api/docs/{doc_id}/cost",
    doc_cost,
    doc_cost,
    "Doc"
);
cost_response!(
    EntityCost,
    entity_id,
    "entity_id",
    "entity",
    "/api/entities/{entity_id}/cost",
    entity_cost,
    entity_cost,
    "Entity"
);

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SummaryParams {
    /// How to group (default `model`).
    #[param(value_type = Option<GroupByParam>)]
    group_by: Option<String>,
    /// Usage at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// Usage before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// Only this entity's (tenant's) usage. With a tenant key, only the
    /// key's own tenant can be named (any other answers no groups).
    entity_id: Option<String>,
    /// Return only the first (largest) `limit` groups; the totals still
    /// cover every group (1–100000; default all).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    limit: Option<String>,
}

/// Largest `limit` of `GET /api/usage/summary`.
const MAX_SUMMARY_LIMIT: u32 = 100_000;

/// The groupings of `GET /api/usage/summary` (for the schema; parsing is
/// [`GroupBy`]'s, which a test keeps in step with this list).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupByParam {
    /// By model.
    Model,
    /// By provider.
    Provider,
    /// By service type (`llm` for model usage without one).
    ServiceType,
    /// By tenant.
    EntityId,
    /// By task, most expensive first.
    TaskId,
    /// By document, most expensive first.
    DocId,
    /// By UTC day, `YYYY-MM-DD`.
    Day,
    /// By UTC hour, `YYYY-MM-DDTHH:00Z`.
    Hour,
}

/// `GET /api/usage/summary`: spend per group, priced total and unpriced count
/// side by side.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageSummary {
    /// The grouping used.
    #[schema(value_type = GroupByParam)]
    pub group_by: String,
    /// Start of the range, if given.
    pub from: Option<Timestamp>,
    /// End of the range, if given.
    pub to: Option<Timestamp>,
    /// Largest priced total first (at most `limit` of them).
    pub groups: Vec<SummaryRow>,
    /// How many groups there are in all, before `limit`.
    pub group_count: u64,
    /// Priced total over all groups, in dollars.
    pub total_cost_usd: f64,
    /// Priced total in nano-USD (exact).
    pub total_cost_nanos: i64,
    /// Usage records without a price (not in the totals).
    pub unpriced_count: u64,
    /// All usage records counted.
    pub record_count: u64,
}

/// Spend summary
///
/// Usage spend grouped by model, provider, service type, entity, task,
/// document, day or hour, in `[from, to)`.
#[utoipa::path(get, path = "/api/usage/summary", tag = "costs", params(SummaryParams),
    responses(
        (status = 200, description = "Spend per group", body = UsageSummary),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 422, description = "Unknown group_by or bad time", body = ErrorBody),
    ))]
pub(crate) async fn usage_summary(
    State(state): State<AppState>,
    Caller(scope): Caller,
    q: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<Json<UsageSummary>, ApiError> {
    let p = query(q)?;
    let group_by: GroupBy = p
        .group_by
        .as_deref()
        .unwrap_or("model")
        .parse()
        .map_err(|e: costtrace_store::StoreError| ApiError::Invalid(e.to_string()))?;
    let from = time_param("from", p.from.as_deref())?;
    let to = time_param("to", p.to.as_deref())?;
    let limit = number::<u32>("limit", p.limit.as_deref(), "a number between 1 and 100000")?;
    if limit.is_some_and(|l| l == 0 || l > MAX_SUMMARY_LIMIT) {
        return Err(ApiError::Invalid(format!(
            "limit is out of range: use 1 to {MAX_SUMMARY_LIMIT}"
        )));
    }
    // One entity's usage is exactly what a key scoped to it may see.
    let scope = match (id_param("entity_id", p.entity_id)?, scope) {
        (None, scope) => Some(scope),
        (Some(e), TenantScope::All) => Some(TenantScope::Tenant(e)),
        (Some(e), TenantScope::Tenant(own)) if e == own => Some(TenantScope::Tenant(own)),
        // Another tenant's entity: as if it had no usage.
        (Some(_), TenantScope::Tenant(_)) => None,
    };
    let mut rows = match scope {
        Some(scope) => {
            state
                .store
                .usage_summary(group_by, from, to, &scope)
                .await?
        }
        None => Vec::new(),
    };
    let total_nanos = rows
        .iter()
        .fold(0i64, |acc, r| acc.saturating_add(r.total_cost_nanos));
    let unpriced: u64 = rows.iter().map(|r| r.unpriced_count).sum();
    let records: u64 = rows.iter().map(|r| r.record_count).sum();
    let group_count = rows.len() as u64;
    if let Some(l) = limit {
        rows.truncate(l as usize);
    }
    Ok(Json(UsageSummary {
        group_by: group_by.as_str().to_owned(),
        from,
        to,
        groups: rows,
        group_count,
        total_cost_usd: costtrace_core::nanos_to_usd(total_nanos),
        total_cost_nanos: total_nanos,
        unpriced_count: unpriced,
        record_count: records,
    }))
}
