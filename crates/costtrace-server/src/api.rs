//! Read endpoints: requests, task/doc/entity cost, usage summary.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use costtrace_core::Timestamp;
use costtrace_store::{CostView, GroupBy, Page, RequestFilter, Store};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Caller, MAX_ID_LEN};

/// Query parameters of `GET /api/requests`, parsed by hand so every bad value
/// gets a 422 that names it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    task_id: Option<String>,
    doc_id: Option<String>,
    entity_id: Option<String>,
    task_type: Option<String>,
    operation_type: Option<String>,
    status_code: Option<String>,
    from: Option<String>,
    to: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
}

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

/// `GET /api/requests`
pub(crate) async fn list_requests(
    State(state): State<AppState>,
    Caller(scope): Caller,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "requests": requests, "total": total })))
}

/// `GET /api/requests/{request_id}`
pub(crate) async fn get_request(
    State(state): State<AppState>,
    Caller(scope): Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let request_id = path_id("request_id", path)?;
    match state.store.get_request(&request_id, &scope).await? {
        Some(view) => Ok(Json(json!(view))),
        None => Err(ApiError::NotFound(format!(
            "Request {request_id} not found"
        ))),
    }
}

/// Seed 004's cost response: the id under its own name (`task_id` …), then
/// the totals; `unpriced_count` counts usage that is not in the total.
pub(crate) fn cost_json(id_field: &str, view: CostView) -> Value {
    json!({
        id_field: view.id,
        "total_cost_usd": view.total_cost_usd,
        "total_cost_nanos": view.total_cost_nanos,
        "period_start": view.period_start,
        "period_end": view.period_end,
        "breakdown_by_service": view.breakdown_by_service,
        "request_count": view.request_count,
        "unpriced_count": view.unpriced_count,
    })
}

/// `GET /api/tasks/{task_id}/cost`
pub(crate) async fn task_cost(
    State(state): State<AppState>,
    Caller(scope): Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id("task_id", path)?;
    match state.store.task_cost(&id, &scope).await? {
        Some(v) => Ok(Json(cost_json("task_id", v))),
        None => Err(ApiError::NotFound(format!("Task {id} not found"))),
    }
}

/// `GET /api/docs/{doc_id}/cost`
pub(crate) async fn doc_cost(
    State(state): State<AppState>,
    Caller(scope): Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id("doc_id", path)?;
    match state.store.doc_cost(&id, &scope).await? {
        Some(v) => Ok(Json(cost_json("doc_id", v))),
        None => Err(ApiError::NotFound(format!("Doc {id} not found"))),
    }
}

/// `GET /api/entities/{entity_id}/cost`
pub(crate) async fn entity_cost(
    State(state): State<AppState>,
    Caller(scope): Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id("entity_id", path)?;
    match state.store.entity_cost(&id, &scope).await? {
        Some(v) => Ok(Json(cost_json("entity_id", v))),
        None => Err(ApiError::NotFound(format!("Entity {id} not found"))),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SummaryParams {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/usage/summary?group_by=…&from=…&to=…`
pub(crate) async fn usage_summary(
    State(state): State<AppState>,
    Caller(scope): Caller,
    q: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(q)?;
    let group_by: GroupBy = p
        .group_by
        .as_deref()
        .unwrap_or("model")
        .parse()
        .map_err(|e: costtrace_store::StoreError| ApiError::Invalid(e.to_string()))?;
    let from = time_param("from", p.from.as_deref())?;
    let to = time_param("to", p.to.as_deref())?;
    let rows = state
        .store
        .usage_summary(group_by, from, to, &scope)
        .await?;
    let total_nanos = rows
        .iter()
        .fold(0i64, |acc, r| acc.saturating_add(r.total_cost_nanos));
    let unpriced: u64 = rows.iter().map(|r| r.unpriced_count).sum();
    let records: u64 = rows.iter().map(|r| r.record_count).sum();
    Ok(Json(json!({
        "group_by": group_by.as_str(),
        "from": from,
        "to": to,
        "groups": rows,
        "total_cost_usd": costtrace_core::nanos_to_usd(total_nanos),
        "total_cost_nanos": total_nanos,
        "unpriced_count": unpriced,
        "record_count": records,
    })))
}
