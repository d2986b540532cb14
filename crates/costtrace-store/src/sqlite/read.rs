//! SQLite queries. Every query starts from an index: names are resolved to
//! their ids first (an unknown name means "nothing matches"), then the
//! `(x, ts)` indexes of `requests` and the partial indexes of `usage` are used.

use std::collections::{BTreeMap, HashMap};

use costtrace_core::{Timestamp, nanos_to_usd};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::blocks;
use super::names::{Reader, lookup};
use crate::common::{self, Extent, GroupCost, UsageLine};
use crate::{CostView, GroupBy, RequestFilter, RequestView, StoreError, SummaryRow, TenantScope};

/// `Ok(Some(None))` for all tenants, `Ok(Some(Some(k)))` for a known
/// tenant, `Ok(None)` for a tenant that owns nothing.
fn tenant_key(c: &Connection, scope: &TenantScope) -> Result<Option<Option<i64>>, StoreError> {
    match scope.tenant() {
        None => Ok(Some(None)),
        Some(t) => Ok(lookup(c, t)?.map(Some)),
    }
}

/// A non-negative count column.
fn get_u64(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
}

/// Columns 0–12 are what [`request_row`] reads; 13 and 14 (`env`, `rev`)
/// are for following the store. Request, task and document names are joined
/// (as many as the rows); tenant, operation and task type are dictionary ids
/// resolved through the reader's [`NameCache`](super::names::NameCache).
pub(crate) const REQUEST_SELECT: &str = "SELECT r.request_k, rn.name, r.ts, t.name, d.name,
        r.entity_k, r.operation_k, r.task_type_k, r.endpoint, r.method, r.status_code,
        r.processing_time_ms, r.error_message, r.env, r.rev
    FROM requests r
    JOIN names rn ON rn.id = r.request_k
    LEFT JOIN names t ON t.id = r.task_k
    LEFT JOIN names d ON d.id = r.doc_k";

/// [`REQUEST_SELECT`] for a list filtered by task and/or document: a name
/// the filter already gives is selected as NULL (and filled in from the
/// filter by the caller) instead of joined, one b-tree seek less per row.
fn list_select(task_known: bool, doc_known: bool) -> String {
    let mut sql = REQUEST_SELECT.to_owned();
    for (known, column, join) in [
        (
            task_known,
            "t.name",
            "\n    LEFT JOIN names t ON t.id = r.task_k",
        ),
        (
            doc_known,
            "d.name",
            "\n    LEFT JOIN names d ON d.id = r.doc_k",
        ),
    ] {
        if known {
            sql = sql.replacen(column, "NULL", 1).replacen(join, "", 1);
        }
    }
    sql
}

pub(crate) fn request_row(
    c: &Reader<'_>,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(i64, RequestView)> {
    Ok((
        r.get(0)?,
        RequestView {
            request_id: r.get(1)?,
            timestamp: Timestamp(r.get(2)?),
            task_id: r.get(3)?,
            doc_id: r.get(4)?,
            entity_id: c.name_of(r.get(5)?)?,
            operation_type: c.name_of(r.get(6)?)?,
            task_type: c.name_of(r.get(7)?)?,
            endpoint: r.get(8)?,
            method: r.get(9)?,
            status_code: r.get(10)?,
            processing_time_ms: r.get(11)?,
            error_message: r.get(12)?,
            services_used: Vec::new(),
            total_cost_usd: 0.0,
            total_cost_nanos: 0,
            unpriced_count: 0,
        },
    ))
}

/// Fills `services_used` and the totals of each request from its usage.
fn attach_usage(
    c: &Reader<'_>,
    views: &mut [(i64, RequestView)],
    tenant: Option<i64>,
) -> Result<(), StoreError> {
    if views.is_empty() {
        return Ok(());
    }
    let marks = vec!["?"; views.len()].join(", ");
    let mut sql = format!(
        "SELECT u.request_k, {USAGE_LINE_COLUMNS} FROM usage u WHERE u.request_k IN ({marks})"
    );
    let mut args: Vec<i64> = views.iter().map(|(k, _)| *k).collect();
    if let Some(t) = tenant {
        sql.push_str(" AND u.entity_k = ?");
        args.push(t);
    }
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(args), |r| {
        Ok((r.get::<_, i64>(0)?, usage_line(c, r, 1)?))
    })?;
    let mut lines: Vec<(i64, UsageLine)> = Vec::with_capacity(views.len() * 4);
    for row in rows {
        lines.push(row?);
    }
    fill_services(views, lines)
}

/// Columns of a usage row as [`usage_line`] reads them, from `u`.
const USAGE_LINE_COLUMNS: &str = "u.service_k, u.model_k, u.cost_nanos, u.input_tokens,
    u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens, u.units";

/// A usage row from [`USAGE_LINE_COLUMNS`] starting at column `at`.
fn usage_line(c: &Reader<'_>, r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<UsageLine> {
    Ok(UsageLine {
        service: c.service_key(r.get(at)?, r.get(at + 1)?)?,
        cost_nanos: r.get(at + 2)?,
        tokens: [
            r.get(at + 3)?,
            r.get(at + 4)?,
            r.get(at + 5)?,
            r.get(at + 6)?,
            r.get(at + 7)?,
        ],
        units: r.get(at + 8)?,
    })
}

/// Sets `services_used` and the totals of each request from its usage
/// lines (request key, line), in any order.
fn fill_services(
    views: &mut [(i64, RequestView)],
    mut lines: Vec<(i64, UsageLine)>,
) -> Result<(), StoreError> {
    // Grouped by request: one sorted vector instead of a map of vectors.
    lines.sort_by_key(|(k, _)| *k);
    for (k, v) in views.iter_mut() {
        let start = lines.partition_point(|(x, _)| x < k);
        let len = lines[start..].partition_point(|(x, _)| x == k);
        let (services, total, unpriced) =
            common::services_used(lines[start..start + len].iter().map(|(_, l)| l))?;
        v.services_used = services;
        v.total_cost_nanos = total;
        v.total_cost_usd = nanos_to_usd(total);
        v.unpriced_count = unpriced;
    }
    Ok(())
}

pub(crate) fn get_request(
    c: &Reader<'_>,
    id: &str,
    scope: &TenantScope,
) -> Result<Option<RequestView>, StoreError> {
    let (Some(key), Some(tenant)) = (lookup(c, id)?, tenant_key(c, scope)?) else {
        return Ok(None);
    };
    let sql =
        format!("{REQUEST_SELECT} WHERE r.request_k = ?1 AND (?2 IS NULL OR r.entity_k = ?2)");
    let Some(row) = c
        .prepare_cached(&sql)?
        .query_row(rusqlite::params![key, tenant], |r| request_row(c, r))
        .optional()?
    else {
        return Ok(None);
    };
    let mut views = [row];
    attach_usage(c, &mut views, tenant)?;
    let [(_, view)] = views;
    Ok(Some(view))
}

pub(crate) fn list_requests(
    c: &Reader<'_>,
    f: &RequestFilter,
    limit: i64,
    offset: i64,
    scope: &TenantScope,
) -> Result<(Vec<RequestView>, u64), StoreError> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let named = [
        ("r.task_k = ?", &f.task_id),
        ("r.doc_k = ?", &f.doc_id),
        ("r.entity_k = ?", &f.entity_id),
        ("r.task_type_k = ?", &f.task_type),
        ("r.operation_k = ?", &f.operation_type),
    ];
    for (clause, value) in named {
        if let Some(v) = value {
            let Some(k) = lookup(c, v)? else {
                return Ok((Vec::new(), 0));
            };
            clauses.push(clause);
            args.push(Value::Integer(k));
        }
    }
    let Some(tenant) = tenant_key(c, scope)? else {
        return Ok((Vec::new(), 0));
    };
    if let Some(t) = tenant {
        clauses.push("r.entity_k = ?");
        args.push(Value::Integer(t));
    }
    if let Some(s) = f.status_code {
        clauses.push("r.status_code = ?");
        args.push(Value::Integer(i64::from(s)));
    }
    if let Some(t) = f.from {
        clauses.push("r.ts >= ?");
        args.push(Value::Integer(t.as_micros()));
    }
    if let Some(t) = f.to {
        clauses.push("r.ts < ?");
        args.push(Value::Integer(t.as_micros()));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    // One statement: the page (a subquery) and, joined to each of its
    // requests, their usage rows (`p.*` is REQUEST_SELECT's 15 columns).
    let select = list_select(f.task_id.is_some(), f.doc_id.is_some());
    let usage_tenant = if tenant.is_some() {
        " AND u.entity_k = ?"
    } else {
        ""
    };
    let sql = format!(
        "SELECT p.*, u.seq, {USAGE_LINE_COLUMNS}
         FROM ({select}{filter} ORDER BY r.ts DESC, r.request_k DESC LIMIT ? OFFSET ?) p
         LEFT JOIN usage u ON u.request_k = p.request_k{usage_tenant}"
    );
    let count_args = args.len();
    args.push(Value::Integer(limit));
    args.push(Value::Integer(offset));
    args.extend(tenant.map(Value::Integer));
    let mut views: Vec<(i64, RequestView)> = Vec::new();
    let mut lines: Vec<(i64, UsageLine)> = Vec::new();
    {
        let mut st = c.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            let k: i64 = r.get(0)?;
            // A request's usage rows follow it; a new key is a new request.
            if views.last().is_none_or(|(last, _)| *last != k) {
                let (k, mut v) = request_row(c, r)?;
                // Every row has the filter's task and document.
                if f.task_id.is_some() {
                    v.task_id.clone_from(&f.task_id);
                }
                if f.doc_id.is_some() {
                    v.doc_id.clone_from(&f.doc_id);
                }
                views.push((k, v));
            }
            if r.get::<_, Option<i64>>(15)?.is_some() {
                lines.push((k, usage_line(c, r, 16)?));
            }
        }
    }
    // The page's order, whatever order the join produced its rows in.
    views.sort_by(|(ka, a), (kb, b)| (b.timestamp, kb).cmp(&(a.timestamp, ka)));
    views.dedup_by_key(|(k, _)| *k);
    // A short first page is the whole answer: no need to count.
    let total = if offset == 0 && (views.len() as i64) < limit {
        views.len() as i64
    } else {
        c.prepare_cached(&format!("SELECT COUNT(*) FROM requests r{filter}"))?
            .query_row(params_from_iter(args[..count_args].iter()), |r| r.get(0))?
    };
    fill_services(&mut views, lines)?;
    Ok((
        views.into_iter().map(|(_, v)| v).collect(),
        u64::try_from(total).unwrap_or(0),
    ))
}

/// What a cost query aggregates.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CostOf {
    Task,
    Doc,
    Entity,
}

pub(crate) fn cost(
    c: &Reader<'_>,
    of: CostOf,
    id: &str,
    scope: &TenantScope,
) -> Result<Option<CostView>, StoreError> {
    let (Some(key), Some(tenant)) = (lookup(c, id)?, tenant_key(c, scope)?) else {
        return Ok(None);
    };
    let (usage_cond, req_cond) = match of {
        CostOf::Task => ("u.task_k = ?1", "task_k = ?1"),
        // A doc id learned at the end is on the request, not on its usage.
        // For a tenant, only its own requests count: usage may name any
        // request id, and another tenant's request must not make its
        // document visible.
        CostOf::Doc if tenant.is_some() => (
            "(u.doc_k = ?1 OR u.request_k IN
                (SELECT request_k FROM requests WHERE doc_k = ?1 AND entity_k = ?2))",
            "doc_k = ?1",
        ),
        CostOf::Doc => (
            "(u.doc_k = ?1 OR u.request_k IN (SELECT request_k FROM requests WHERE doc_k = ?1))",
            "doc_k = ?1",
        ),
        CostOf::Entity => ("u.entity_k = ?1", "entity_k = ?1"),
    };
    let mut args = vec![key];
    let tenant_sql = if let Some(t) = tenant {
        args.push(t);
        ("AND u.entity_k = ?2", "AND entity_k = ?2")
    } else {
        ("", "")
    };
    // One pass over the rows (one index range), summed here: cheaper than
    // a GROUP BY and a second aggregate query over the same rows.
    let usage_sql = format!(
        "SELECT u.service_k, u.model_k, u.cost_nanos, u.ts, u.request_k
         FROM usage u WHERE {usage_cond} {}",
        tenant_sql.0
    );
    let mut sums: HashMap<(Option<i64>, Option<i64>), (i64, u64)> = HashMap::new();
    let mut requests: std::collections::HashSet<i64> = std::collections::HashSet::new();
    let mut e = Extent::default();
    {
        let mut st = c.prepare_cached(&usage_sql)?;
        let mut rows = st.query(params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            let cost: Option<i64> = r.get(2)?;
            let ts: i64 = r.get(3)?;
            let sum = sums.entry((r.get(0)?, r.get(1)?)).or_default();
            match cost {
                Some(n) => sum.0 = sum.0.saturating_add(n),
                None => sum.1 += 1,
            }
            if let Some(k) = r.get::<_, Option<i64>>(4)? {
                requests.insert(k);
            }
            e.usage_count += 1;
            e.usage_min = Some(e.usage_min.map_or(ts, |m| m.min(ts)));
            e.usage_max = Some(e.usage_max.map_or(ts, |m| m.max(ts)));
        }
    }
    e.usage_requests = requests.len() as u64;
    let mut merged: BTreeMap<String, (i64, u64)> = BTreeMap::new();
    for ((service, model), (priced, unpriced)) in sums {
        let m = merged
            .entry(c.service_key(service, model)?.as_ref().to_owned())
            .or_default();
        m.0 = m.0.saturating_add(priced);
        m.1 += unpriced;
    }
    let groups: Vec<GroupCost> = merged
        .into_iter()
        .map(|(key, (priced_nanos, unpriced))| GroupCost {
            key,
            priced_nanos,
            unpriced,
        })
        .collect();
    let req_sql = format!(
        "SELECT COUNT(*), MIN(ts),
                MAX(ts + CAST(COALESCE(processing_time_ms, 0) * 1000 AS INTEGER))
         FROM requests WHERE {req_cond} {}",
        tenant_sql.1
    );
    c.prepare_cached(&req_sql)?
        .query_row(params_from_iter(args.iter()), |r| {
            e.request_count = get_u64(r, 0)?;
            e.request_min = r.get(1)?;
            e.request_max_end = r.get(2)?;
            Ok(())
        })?;
    Ok(common::cost_view(id, groups, e))
}

/// The priced total of a group as two sums that cannot overflow: SQLite's
/// `SUM` fails on an integer overflow (a total past 9.2 billion USD in
/// nano-USD, which a tenant could post on purpose), so the costs are summed
/// as their high bits (`>> 24`, arithmetic) and their low 24 bits, and
/// [`common::join_split_sum`] joins them, saturating.
const PRICED_SUM_SPLIT: &str =
    "SUM(u.cost_nanos >> 24) AS priced_hi, SUM(u.cost_nanos & 16777215) AS priced_lo";

pub(crate) fn usage_summary(
    c: &Connection,
    group_by: GroupBy,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    scope: &TenantScope,
) -> Result<Vec<SummaryRow>, StoreError> {
    let Some(tenant) = tenant_key(c, scope)? else {
        return Ok(Vec::new());
    };
    let (k, x) = match group_by {
        GroupBy::Model => ("u.model_k", "0"),
        GroupBy::Provider => ("u.provider_k", "0"),
        GroupBy::ServiceType => ("u.service_k", "u.model_k IS NOT NULL"),
        GroupBy::EntityId => ("u.entity_k", "0"),
        GroupBy::Day => ("u.ts / 86400000000", "0"),
        GroupBy::Hour => ("u.ts / 3600000000", "0"),
        GroupBy::TaskId => ("u.task_k", "0"),
        GroupBy::DocId => ("u.doc_k", "0"),
    };
    let time_bucket = matches!(group_by, GroupBy::Day | GroupBy::Hour);
    let name = if time_bucket {
        "NULL"
    } else {
        "(SELECT name FROM names WHERE id = g.k)"
    };
    // A tenant's usage is a range of `usage_entity (entity_k, ts)`; all
    // tenants' usage in a time range is found through `usage_blocks`.
    let rows_in_range = match tenant {
        Some(_) => "usage u WHERE u.entity_k = ?3 AND u.ts >= ?1 AND u.ts < ?2",
        None => blocks::USAGE_IN_RANGE,
    };
    let sql = format!(
        "SELECT g.k, g.x, {name}, g.priced_hi, g.priced_lo, g.unpriced, g.cnt
         FROM (SELECT {k} AS k, {x} AS x, {PRICED_SUM_SPLIT},
                      COUNT(*) - COUNT(u.cost_nanos) AS unpriced, COUNT(*) AS cnt
               FROM {rows_in_range}
               GROUP BY 1, 2) g"
    );
    let from = from.map_or(i64::MIN, Timestamp::as_micros);
    let to = to.map_or(i64::MAX, Timestamp::as_micros);
    let mut st = c.prepare_cached(&sql)?;
    let args: Vec<i64> = [from, to].into_iter().chain(tenant).collect();
    let rows = st.query_map(params_from_iter(args), |r| {
        let k: Option<i64> = r.get(0)?;
        let llm: bool = r.get(1)?;
        let name: Option<String> = r.get(2)?;
        let key = match (k.and_then(|k| common::time_key(group_by, k)), name) {
            (Some(t), _) => t,
            (None, Some(n)) => n,
            (None, None) if llm && group_by == GroupBy::ServiceType => "llm".to_owned(),
            (None, None) => "(none)".to_owned(),
        };
        Ok((
            key,
            common::join_split_sum(r.get(3)?, r.get(4)?),
            get_u64(r, 5)?,
            get_u64(r, 6)?,
        ))
    })?;
    let mut merged: BTreeMap<String, (i64, u64, u64)> = BTreeMap::new();
    for row in rows {
        let (key, priced, unpriced, count) = row?;
        let m = merged.entry(key).or_default();
        m.0 = m.0.saturating_add(priced);
        m.1 += unpriced;
        m.2 += count;
    }
    Ok(common::summary_rows(merged))
}
