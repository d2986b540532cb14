//! The values the store takes and returns.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use costtrace_core::Timestamp;
use serde::Serialize;

/// Which rows a caller may see.
///
/// `Tenant(t)`: only requests whose `entity_id` is `t` and usage whose
/// `entity_id` attr is `t`; anything else looks nonexistent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TenantScope {
    /// Everything (admin).
    #[default]
    All,
    /// One tenant (entity id).
    Tenant(String),
}

impl TenantScope {
    /// The tenant, if scoped.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            TenantScope::All => None,
            TenantScope::Tenant(t) => Some(t),
        }
    }
}

/// Filters for [`crate::Store::list_requests`]; every `Some` must match.
/// `from`/`to` bound the request timestamp as `[from, to)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// Requests of this task.
    pub task_id: Option<String>,
    /// Requests of this document.
    pub doc_id: Option<String>,
    /// Requests of this entity.
    pub entity_id: Option<String>,
    /// Requests of this task type (`upload` …).
    pub task_type: Option<String>,
    /// Requests of this operation type (`file_upload` …).
    pub operation_type: Option<String>,
    /// Requests that ended with this status.
    pub status_code: Option<u16>,
    /// Requests at or after this time.
    pub from: Option<Timestamp>,
    /// Requests before this time.
    pub to: Option<Timestamp>,
}

/// A page of results: `page` is 1-based; `page_size` is capped at 1,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub page: u32,
    /// Rows per page (1–1,000).
    pub page_size: u32,
}

impl Default for Page {
    /// Page 1 of 50.
    fn default() -> Self {
        Page {
            page: 1,
            page_size: 50,
        }
    }
}

impl Page {
    /// Largest accepted page size.
    pub const MAX_SIZE: u32 = 1_000;

    pub(crate) fn limit_offset(self) -> Result<(i64, i64), crate::StoreError> {
        if self.page == 0 || self.page_size == 0 || self.page_size > Self::MAX_SIZE {
            return Err(crate::StoreError::Invalid(format!(
                "page {} / page_size {}: page starts at 1, page_size is 1..={}",
                self.page,
                self.page_size,
                Self::MAX_SIZE
            )));
        }
        let limit = i64::from(self.page_size);
        Ok((limit, (i64::from(self.page) - 1) * limit))
    }
}

/// One service used inside a request (seed 004's `services_used` entry).
///
/// `service_type` is the usage's `service_type`, else `llm:` + its model,
/// else `unknown`. `cost_usd`/`cost_nanos` sum the priced usage and are
/// `None` when none of it was priced; `breakdown` sums the units and known
/// token counts and holds `unpriced_count` when some usage had no price.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceUse {
    /// Service key (see above).
    pub service_type: String,
    /// Priced cost in dollars.
    pub cost_usd: Option<f64>,
    /// Priced cost in nano-USD.
    pub cost_nanos: Option<i64>,
    /// Units and tokens, summed.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, Object>))]
    pub breakdown: BTreeMap<String, serde_json::Value>,
}

/// A request with the services it used and their cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Request))]
pub struct RequestView {
    /// The request id.
    pub request_id: String,
    /// Its task, for async work.
    pub task_id: Option<String>,
    /// Its document.
    pub doc_id: Option<String>,
    /// Its entity (tenant).
    pub entity_id: Option<String>,
    /// E.g. `file_upload`.
    pub operation_type: Option<String>,
    /// E.g. `upload`.
    pub task_type: Option<String>,
    /// E.g. `/api/entities/{entity_id}/files`.
    pub endpoint: Option<String>,
    /// E.g. `POST`.
    pub method: Option<String>,
    /// `None` while running.
    pub status_code: Option<u16>,
    /// When it started.
    pub timestamp: Timestamp,
    /// How long it took, once ended.
    pub processing_time_ms: Option<f64>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// Usage inside it, grouped by service key.
    pub services_used: Vec<ServiceUse>,
    /// Priced total in dollars.
    pub total_cost_usd: f64,
    /// Priced total in nano-USD.
    pub total_cost_nanos: i64,
    /// Usage inside it that has no price (not counted in the total).
    pub unpriced_count: u64,
}

/// Cost of a task, document or entity (seed 004's task cost response).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostView {
    /// The task, doc or entity id.
    pub id: String,
    /// Priced total in dollars.
    pub total_cost_usd: f64,
    /// Priced total in nano-USD.
    pub total_cost_nanos: i64,
    /// Earliest usage or request timestamp.
    pub period_start: Timestamp,
    /// Latest usage timestamp or request end (start + processing time).
    pub period_end: Timestamp,
    /// Priced dollars per service key.
    pub breakdown_by_service: BTreeMap<String, f64>,
    /// Requests (see the crate docs for how they are counted).
    pub request_count: u64,
    /// Usage without a price (not in the totals).
    pub unpriced_count: u64,
}

/// How [`crate::Store::usage_summary`] groups usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// By model name (`(none)` for services).
    Model,
    /// By provider (`(none)` when unknown).
    Provider,
    /// By `service_type`; model usage without one is `llm`.
    ServiceType,
    /// By the usage's `entity_id` attr (`(none)` when absent).
    EntityId,
    /// By UTC day, `YYYY-MM-DD`.
    Day,
    /// By UTC hour, `YYYY-MM-DDTHH:00Z`.
    Hour,
    /// By the usage's `task_id` attr (`(none)` when absent): the most
    /// expensive tasks first.
    TaskId,
    /// By the usage's `doc_id` attr (`(none)` when absent).
    DocId,
}

impl GroupBy {
    /// The name accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::ServiceType => "service_type",
            GroupBy::EntityId => "entity_id",
            GroupBy::Day => "day",
            GroupBy::Hour => "hour",
            GroupBy::TaskId => "task_id",
            GroupBy::DocId => "doc_id",
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupBy {
    type Err = crate::StoreError;

    /// ```
    /// use costtrace_store::GroupBy;
    /// assert_eq!("day".parse::<GroupBy>().unwrap(), GroupBy::Day);
    /// assert!("week".parse::<GroupBy>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            GroupBy::Model,
            GroupBy::Provider,
            GroupBy::ServiceType,
            GroupBy::EntityId,
            GroupBy::Day,
            GroupBy::Hour,
            GroupBy::TaskId,
            GroupBy::DocId,
        ]
        .into_iter()
        .find(|g| g.as_str() == s.trim())
        .ok_or_else(|| {
            crate::StoreError::Invalid(format!(
                "group_by {s:?}: use model, provider, service_type, entity_id, task_id, doc_id, day or hour"
            ))
        })
    }
}

/// One group of [`crate::Store::usage_summary`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SummaryGroup))]
pub struct SummaryRow {
    /// The group (model, provider, … `YYYY-MM-DD` or `YYYY-MM-DDTHH:00Z`).
    pub key: String,
    /// Priced total in dollars.
    pub total_cost_usd: f64,
    /// Priced total in nano-USD.
    pub total_cost_nanos: i64,
    /// Usage without a price (not in the totals).
    pub unpriced_count: u64,
    /// All usage records in the group.
    pub record_count: u64,
}

/// What [`crate::Store::end_request`] sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestEnd {
    /// Final HTTP status.
    pub status_code: Option<u16>,
    /// Wall time of the request.
    pub processing_time_ms: Option<f64>,
    /// Why it failed.
    pub error_message: Option<String>,
    /// The document, when learned at the end (left unchanged when `None`).
    pub doc_id: Option<String>,
}

/// How many rows [`crate::Store::archive_before`] moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveStats {
    /// Request rows moved.
    pub requests: u64,
    /// Usage rows moved.
    pub usage: u64,
    /// Scope rows moved.
    pub scopes: u64,
}

/// An API key as stored (the key itself is never stored, only its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    /// Key id (UUIDv7).
    pub id: String,
    /// The tenant it is limited to; `None` for an admin key.
    pub tenant: Option<String>,
    /// A human label.
    pub label: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl ApiKeyInfo {
    /// A new, active key record with a fresh id, created now.
    pub(crate) fn new(tenant: Option<&str>, label: &str) -> ApiKeyInfo {
        ApiKeyInfo {
            id: costtrace_core::new_id().to_string(),
            tenant: tenant.map(str::to_owned),
            label: label.to_owned(),
            created_at: Timestamp::now(),
            revoked: false,
        }
    }
}
