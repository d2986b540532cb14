//! The three record kinds and their JSON wire format.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Environment, Timestamp};

/// Attributes: string keys to string values, sorted for stable output.
pub type Attrs = BTreeMap<String, String>;

/// How many item errors a scope record keeps; `failure_count` still counts all.
pub const MAX_SCOPE_ERRORS: usize = 100;

/// Which price list applies to a usage: batch APIs are typically half price.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PricingTier {
    #[default]
    Standard,
    Batch,
}

impl PricingTier {
    pub fn as_str(self) -> &'static str {
        match self {
            PricingTier::Standard => "standard",
            PricingTier::Batch => "batch",
        }
    }
}

impl fmt::Display for PricingTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record, tagged by `kind` on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Scope(ScopeRecord),
    Usage(UsageRecord),
    Request(RequestRecord),
}

impl Record {
    /// The record's idempotency key (request records use their request id).
    pub fn key(&self) -> String {
        match self {
            Record::Scope(s) => s.id.to_string(),
            Record::Usage(u) => u.id.to_string(),
            Record::Request(r) => r.request_id.clone(),
        }
    }

    pub fn as_scope(&self) -> Option<&ScopeRecord> {
        match self {
            Record::Scope(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_usage(&self) -> Option<&UsageRecord> {
        match self {
            Record::Usage(u) => Some(u),
            _ => None,
        }
    }

    pub fn as_request(&self) -> Option<&RequestRecord> {
        match self {
            Record::Request(r) => Some(r),
            _ => None,
        }
    }
}

/// One failed item of a partial-failure scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemError {
    pub item: String,
    pub error: String,
}

/// A finished scope: who/what/why a stretch of work was for, how long it
/// took, and how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScopeRecord {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    /// Inherited from the enclosing scopes; a child's value overrides its parent's.
    pub attrs: Attrs,
    pub environment: Environment,
    pub started_at: Timestamp,
    pub duration_ms: f64,
    pub error_occurred: bool,
    pub error_message: Option<String>,
    pub success_count: u64,
    pub failure_count: u64,
    /// The first [`MAX_SCOPE_ERRORS`] item errors; `failure_count` counts them all.
    pub errors: Vec<ItemError>,
    pub pricing_tier: PricingTier,
    pub item_count: Option<u64>,
}

/// One AI call or one use of a paid service.
///
/// Token counts are `None` when unknown, which is not the same as zero: an
/// unknown count is never priced as free.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageRecord {
    pub id: Uuid,
    pub scope_id: Option<Uuid>,
    pub attrs: Attrs,
    pub environment: Environment,
    pub timestamp: Timestamp,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub service_type: Option<String>,
    pub operation: Option<String>,
    /// All prompt tokens, cached ones included (the convention of the price
    /// data: cached tokens are a part of the input that is priced at the
    /// cache rate, never counted twice).
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    /// A part of `output_tokens` (providers bill reasoning as output).
    pub reasoning_tokens: Option<u64>,
    /// Named units of a paid non-AI service, e.g. `pages: 10`.
    #[serde(default)]
    pub units: BTreeMap<String, u64>,
    pub pricing_tier: PricingTier,
    /// Dollars, for people; derived from `cost_nanos`.
    pub cost_usd: Option<f64>,
    /// Exact cost in nano-USD; `None` means unpriced, never free.
    pub cost_nanos: Option<i64>,
    /// Why `cost_nanos` is `None`, e.g. `unpriced: no price for provider X model Y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpriced_reason: Option<String>,
    /// Which price list produced `cost_nanos`, so history can be re-priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_version: Option<String>,
    pub duration_ms: Option<f64>,
    pub error_message: Option<String>,
    /// True when the counts are known to be incomplete (a stream cut short).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// A request as seed 004's request tracker defines it. Its `services_used`
/// and `total_cost_usd` are derived from the usage recorded inside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestRecord {
    pub request_id: String,
    pub task_id: Option<String>,
    pub doc_id: Option<String>,
    pub entity_id: Option<String>,
    pub operation_type: Option<String>,
    pub task_type: Option<String>,
    pub endpoint: Option<String>,
    pub method: Option<String>,
    pub status_code: Option<u16>,
    pub timestamp: Timestamp,
    pub processing_time_ms: Option<f64>,
    pub error_message: Option<String>,
    #[serde(default)]
    pub environment: Environment,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage() -> UsageRecord {
        UsageRecord {
            id: crate::new_id(),
            scope_id: None,
            attrs: Attrs::from([("job_id".into(), "job-1".into())]),
            environment: Environment::Staging,
            timestamp: Timestamp::parse("2025-01-15T10:30:45.123Z").unwrap(),
            provider: Some("openai".into()),
            model: Some("gpt-4o".into()),
            service_type: None,
            operation: Some("chat".into()),
            input_tokens: Some(1000),
            output_tokens: Some(200),
            cache_read_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            units: BTreeMap::new(),
            pricing_tier: PricingTier::Batch,
            cost_usd: None,
            cost_nanos: None,
            unpriced_reason: Some("unpriced: test".into()),
            price_version: None,
            duration_ms: Some(12.5),
            error_message: None,
            partial: false,
        }
    }

    #[test]
    fn usage_wire_format_has_the_documented_fields() {
        let v = serde_json::to_value(Record::Usage(usage())).unwrap();
        assert_eq!(v["kind"], "usage");
        assert_eq!(v["environment"], "staging");
        assert_eq!(v["pricing_tier"], "batch");
        assert_eq!(v["timestamp"], "2025-01-15T10:30:45.123Z");
        assert!(v["cost_usd"].is_null());
        assert!(v["cost_nanos"].is_null());
        for field in [
            "id",
            "scope_id",
            "attrs",
            "provider",
            "model",
            "service_type",
            "operation",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "units",
            "duration_ms",
            "error_message",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        let id = v["id"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    }

    #[test]
    fn records_round_trip() {
        let r = Record::Usage(usage());
        let s = serde_json::to_string(&r).unwrap();
        let back: Record = serde_json::from_str(&s).unwrap();
        // Timestamps travel with millisecond precision.
        assert_eq!(back, r);
    }
}
