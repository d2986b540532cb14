//! Backend-independent pieces: attribute extraction, enum codes and the
//! aggregation of fetched rows into the views.

use std::collections::BTreeMap;

use costtrace_core::{Attrs, Environment, PricingTier, Timestamp, UsageRecord, nanos_to_usd};
use costtrace_pricing::Catalogue;

use crate::{CostView, ServiceUse, StoreError};

/// Locks `m`, ignoring poisoning: a panic while it was held leaves what it
/// guards usable (an open SQLite transaction rolls back when its statement
/// guard drops; the writer's dictionary caches are consistent between any
/// two map operations), so poisoning is not a reason to stop serving.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The attrs that become indexed columns.
pub(crate) const EXTRACTED_ATTRS: [&str; 4] = ["request_id", "task_id", "doc_id", "entity_id"];

/// The `price_version` of a cost the provider reported itself: never re-priced.
pub(crate) const REPORTED: &str = "reported";

/// Microseconds per UTC day.
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;
/// One hour in microseconds.
pub(crate) const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// A usage record's linking attrs, plus the remaining attrs as JSON.
#[derive(Debug, Default)]
pub(crate) struct Links<'a> {
    pub request_id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub doc_id: Option<&'a str>,
    pub entity_id: Option<&'a str>,
    /// The other attrs; `None` when there are none.
    pub rest: Option<BTreeMap<&'a str, &'a str>>,
}

pub(crate) fn links(attrs: &Attrs) -> Links<'_> {
    let get = |k: &str| attrs.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let others: BTreeMap<&str, &str> = attrs
        .iter()
        .filter(|(k, _)| !EXTRACTED_ATTRS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Links {
        request_id: get("request_id"),
        task_id: get("task_id"),
        doc_id: get("doc_id"),
        // Seed 003's multi-tenant services name the tenant `tenant_id`; the
        // cost API's tenant is the entity. `entity_id` wins when both are
        // set (as the request tracker does for requests).
        entity_id: get("entity_id").or_else(|| get("tenant_id")),
        rest: (!others.is_empty()).then_some(others),
    }
}

pub(crate) fn env_code(e: Environment) -> i16 {
    match e {
        Environment::Production => 0,
        Environment::Staging => 1,
        Environment::Cicd => 2,
        Environment::Development => 3,
    }
}

pub(crate) fn tier_code(t: PricingTier) -> i16 {
    match t {
        PricingTier::Standard => 0,
        PricingTier::Batch => 1,
    }
}

pub(crate) fn tier_from(code: i64) -> PricingTier {
    if code == 1 {
        PricingTier::Batch
    } else {
        PricingTier::Standard
    }
}

/// Tokens as a signed column value (counts beyond `i64::MAX` saturate).
pub(crate) fn count(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// `YYYY-MM-DD` of a day number since the epoch.
pub(crate) fn day_key(day: i64) -> String {
    match jiff::Timestamp::from_microsecond(day.saturating_mul(MICROS_PER_DAY)) {
        Ok(t) => t.strftime("%Y-%m-%d").to_string(),
        Err(_) => format!("day {day}"),
    }
}

/// `YYYY-MM-DDTHH:00Z` of an hour number since the epoch.
pub(crate) fn hour_key(hour: i64) -> String {
    match jiff::Timestamp::from_microsecond(hour.saturating_mul(MICROS_PER_HOUR)) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:00Z").to_string(),
        Err(_) => format!("hour {hour}"),
    }
}

/// The key of a time bucket (`Day` or `Hour`) from its number.
pub(crate) fn time_key(group_by: crate::GroupBy, n: i64) -> Option<String> {
    match group_by {
        crate::GroupBy::Day => Some(day_key(n)),
        crate::GroupBy::Hour => Some(hour_key(n)),
        _ => None,
    }
}

/// One usage row as the views need it.
#[derive(Debug, Default)]
pub(crate) struct UsageLine {
    /// The `services_used` key (shared: the SQLite reader caches them).
    pub service: std::sync::Arc<str>,
    pub cost_nanos: Option<i64>,
    /// input, output, cache read, cache write, reasoning.
    pub tokens: [Option<i64>; 5],
    pub units: Option<String>,
}

/// Joins the two halves of a split cost sum (`SUM(x >> 24)`, `SUM(x &
/// 0xFFFFFF)`) into one total, saturating at the bounds of `i64`. `None`
/// (no priced rows) is 0.
pub(crate) fn join_split_sum(hi: Option<i64>, lo: Option<i64>) -> i64 {
    let total = (i128::from(hi.unwrap_or(0)) << 24) + i128::from(lo.unwrap_or(0));
    i64::try_from(total).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX })
}

const TOKEN_NAMES: [&str; 5] = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
];

#[derive(Default)]
struct ServiceAcc {
    priced: i64,
    priced_count: u64,
    unpriced: u64,
    counts: BTreeMap<String, i64>,
}

/// Adds `v` to `counts[k]`, allocating the key only the first time.
fn add_count(counts: &mut BTreeMap<String, i64>, k: &str, v: i64) {
    match counts.get_mut(k) {
        Some(c) => *c = c.saturating_add(v),
        None => {
            counts.insert(k.to_owned(), v);
        }
    }
}

/// Groups a request's usage by service key: `(services, priced nanos, unpriced count)`.
pub(crate) fn services_used<'a>(
    lines: impl IntoIterator<Item = &'a UsageLine>,
) -> Result<(Vec<ServiceUse>, i64, u64), StoreError> {
    let mut acc: BTreeMap<&str, ServiceAcc> = BTreeMap::new();
    for l in lines {
        let a = acc.entry(&l.service).or_default();
        match l.cost_nanos {
            Some(n) => {
                a.priced = a.priced.saturating_add(n);
                a.priced_count += 1;
            }
            None => a.unpriced += 1,
        }
        for (name, v) in TOKEN_NAMES.iter().zip(l.tokens) {
            if let Some(v) = v {
                add_count(&mut a.counts, name, v);
            }
        }
        if let Some(u) = &l.units {
            let units: BTreeMap<String, i64> = serde_json::from_str(u)
                .map_err(|e| StoreError::Corrupt(format!("units {u:?}: {e}")))?;
            for (k, v) in units {
                let c = a.counts.entry(k).or_default();
                *c = c.saturating_add(v);
            }
        }
    }
    let (mut total, mut unpriced) = (0i64, 0u64);
    let services = acc
        .into_iter()
        .map(|(key, a)| {
            total = total.saturating_add(a.priced);
            unpriced += a.unpriced;
            // Inserted one by one, in order: `collect` would buffer and sort.
            let mut breakdown: BTreeMap<String, serde_json::Value> = BTreeMap::new();
            for (k, v) in a.counts {
                breakdown.insert(k, serde_json::Value::from(v));
            }
            if a.unpriced > 0 {
                breakdown.insert("unpriced_count".into(), a.unpriced.into());
            }
            let cost = (a.priced_count > 0).then_some(a.priced);
            ServiceUse {
                service_type: key.to_owned(),
                cost_usd: cost.map(nanos_to_usd),
                cost_nanos: cost,
                breakdown,
            }
        })
        .collect();
    Ok((services, total, unpriced))
}

/// Priced total and unpriced count of one service key.
#[derive(Debug)]
pub(crate) struct GroupCost {
    pub key: String,
    pub priced_nanos: i64,
    pub unpriced: u64,
}

/// Usage and request extent of a task/doc/entity.
#[derive(Debug, Default)]
pub(crate) struct Extent {
    pub usage_count: u64,
    pub usage_requests: u64,
    pub usage_min: Option<i64>,
    pub usage_max: Option<i64>,
    pub request_count: u64,
    pub request_min: Option<i64>,
    pub request_max_end: Option<i64>,
}

/// Builds the cost view; `None` when neither usage nor requests name the id.
pub(crate) fn cost_view(id: &str, groups: Vec<GroupCost>, e: Extent) -> Option<CostView> {
    if e.usage_count == 0 && e.request_count == 0 {
        return None;
    }
    let mut total = 0i64;
    let mut unpriced = 0u64;
    let mut by_service: BTreeMap<String, i64> = BTreeMap::new();
    for g in groups {
        total = total.saturating_add(g.priced_nanos);
        unpriced += g.unpriced;
        let slot = by_service.entry(g.key).or_default();
        *slot = slot.saturating_add(g.priced_nanos);
    }
    let breakdown = by_service
        .into_iter()
        .map(|(k, n)| (k, nanos_to_usd(n)))
        .collect();
    let min = [e.usage_min, e.request_min].into_iter().flatten().min();
    let max = [e.usage_max, e.request_max_end, e.request_min]
        .into_iter()
        .flatten()
        .max();
    Some(CostView {
        id: id.to_owned(),
        total_cost_usd: nanos_to_usd(total),
        total_cost_nanos: total,
        period_start: Timestamp(min.unwrap_or_default()),
        period_end: Timestamp(max.or(min).unwrap_or_default()),
        breakdown_by_service: breakdown,
        request_count: e.request_count.max(e.usage_requests),
        unpriced_count: unpriced,
    })
}

/// The raw counts of a stored usage, for re-pricing.
#[derive(Debug, Default)]
pub(crate) struct RawUsage {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub service_type: Option<String>,
    pub tier: i64,
    pub ts: i64,
    pub tokens: [Option<i64>; 5],
    pub units: Option<String>,
}

/// A usage's stored pricing: `(cost_nanos, price_version, unpriced_reason)`.
pub(crate) type Pricing = (Option<i64>, Option<String>, Option<String>);

/// The pricing of `raw` under `catalogue`.
pub(crate) fn reprice_raw(catalogue: &Catalogue, raw: RawUsage) -> Result<Pricing, StoreError> {
    let units = match &raw.units {
        Some(u) => {
            serde_json::from_str(u).map_err(|e| StoreError::Corrupt(format!("units {u:?}: {e}")))?
        }
        None => BTreeMap::new(),
    };
    let tok = |i: usize| raw.tokens[i].map(|v| u64::try_from(v).unwrap_or(0));
    let mut rec = UsageRecord {
        id: uuid::Uuid::nil(),
        scope_id: None,
        attrs: Attrs::new(),
        environment: Environment::Development,
        timestamp: Timestamp(raw.ts),
        provider: raw.provider,
        model: raw.model,
        service_type: raw.service_type,
        operation: None,
        input_tokens: tok(0),
        output_tokens: tok(1),
        cache_read_tokens: tok(2),
        cache_write_tokens: tok(3),
        reasoning_tokens: tok(4),
        units,
        pricing_tier: tier_from(raw.tier),
        cost_usd: None,
        cost_nanos: None,
        unpriced_reason: None,
        price_version: None,
        duration_ms: None,
        error_message: None,
        partial: false,
    };
    catalogue.price_record(&mut rec);
    Ok((rec.cost_nanos, rec.price_version, rec.unpriced_reason))
}

/// Summary groups, largest priced total first (then by key).
pub(crate) fn summary_rows(merged: BTreeMap<String, (i64, u64, u64)>) -> Vec<crate::SummaryRow> {
    let mut rows: Vec<crate::SummaryRow> = merged
        .into_iter()
        .map(|(key, (nanos, unpriced, count))| crate::SummaryRow {
            key,
            total_cost_usd: nanos_to_usd(nanos),
            total_cost_nanos: nanos,
            unpriced_count: unpriced,
            record_count: count,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.total_cost_nanos
            .cmp(&a.total_cost_nanos)
            .then_with(|| a.key.cmp(&b.key))
    });
    rows
}
