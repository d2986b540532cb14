//! PostgreSQL queries, each served by an index (see the migration).

use std::collections::{BTreeMap, HashMap};

use costtrace_core::{Timestamp, nanos_to_usd};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::PgStore;
use crate::common::{self, Extent, GroupCost, UsageLine};
use crate::{CostView, GroupBy, RequestFilter, RequestView, StoreError, SummaryRow, TenantScope};

/// Columns 0–11 are what [`request_row`] reads; 12–14 (`env`, ingest
/// position) are for following the store.
pub(crate) const REQUEST_SELECT: &str = "SELECT request_id, ts, task_id, doc_id, entity_id,
    operation_type, task_type, endpoint, method, status_code, processing_time_ms, error_message,
    env, ingest_xid::text, ingest_seq FROM requests";

pub(crate) fn request_row(r: &Row) -> RequestView {
    RequestView {
        request_id: r.get(0),
        timestamp: Timestamp(r.get(1)),
        task_id: r.get(2),
        doc_id: r.get(3),
        entity_id: r.get(4),
        operation_type: r.get(5),
        task_type: r.get(6),
        endpoint: r.get(7),
        method: r.get(8),
        status_code: r
            .get::<_, Option<i32>>(9)
            .and_then(|s| u16::try_from(s).ok()),
        processing_time_ms: r.get(10),
        error_message: r.get(11),
        services_used: Vec::new(),
        total_cost_usd: 0.0,
        total_cost_nanos: 0,
        unpriced_count: 0,
    }
}

/// Fills `services_used` and the totals of each request from its usage.
async fn attach_usage(
    c: &tokio_postgres::Client,
    views: &mut [RequestView],
    tenant: Option<&str>,
) -> Result<(), StoreError> {
    if views.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = views.iter().map(|v| v.request_id.as_str()).collect();
    let rows = c
        .query(
            "SELECT request_id, COALESCE(service_type, 'llm:' || model, 'unknown'), cost_nanos,
                    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                    reasoning_tokens, units::text
             FROM usage
             WHERE request_id = ANY($1) AND ($2::text IS NULL OR entity_id = $2)",
            &[&ids, &tenant],
        )
        .await?;
    let mut by_request: HashMap<String, Vec<UsageLine>> = HashMap::new();
    for r in &rows {
        by_request.entry(r.get(0)).or_default().push(UsageLine {
            service: r.get::<_, String>(1).into(),
            cost_nanos: r.get(2),
            tokens: [r.get(3), r.get(4), r.get(5), r.get(6), r.get(7)],
            units: r.get(8),
        });
    }
    for v in views.iter_mut() {
        let lines = by_request.remove(&v.request_id).unwrap_or_default();
        let (services, total, unpriced) = common::services_used(&lines)?;
        v.services_used = services;
        v.total_cost_nanos = total;
        v.total_cost_usd = nanos_to_usd(total);
        v.unpriced_count = unpriced;
    }
    Ok(())
}

pub(crate) async fn get_request(
    store: &PgStore,
    id: &str,
    scope: &TenantScope,
) -> Result<Option<RequestView>, StoreError> {
    let c = store.conn().await?;
    let tenant = scope.tenant();
    let sql =
        format!("{REQUEST_SELECT} WHERE request_id = $1 AND ($2::text IS NULL OR entity_id = $2)");
    let Some(row) = c.query_opt(&sql, &[&id, &tenant]).await? else {
        return Ok(None);
    };
    let mut views = [request_row(&row)];
    attach_usage(&c, &mut views, tenant).await?;
    let [view] = views;
    Ok(Some(view))
}

pub(crate) async fn list_requests(
    store: &PgStore,
    f: &RequestFilter,
    limit: i64,
    offset: i64,
    scope: &TenantScope,
) -> Result<(Vec<RequestView>, u64), StoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut push = |col: &str, v: Box<dyn ToSql + Sync + Send>, op: &str| {
        args.push(v);
        clauses.push(format!("{col} {op} ${}", args.len()));
    };
    let named = [
        ("task_id", &f.task_id),
        ("doc_id", &f.doc_id),
        ("entity_id", &f.entity_id),
        ("task_type", &f.task_type),
        ("operation_type", &f.operation_type),
    ];
    for (col, value) in named {
        if let Some(v) = value {
            push(col, Box::new(v.clone()), "=");
        }
    }
    if let Some(t) = scope.tenant() {
        push("entity_id", Box::new(t.to_owned()), "=");
    }
    if let Some(s) = f.status_code {
        push("status_code", Box::new(i32::from(s)), "=");
    }
    if let Some(t) = f.from {
        push("ts", Box::new(t.0), ">=");
    }
    if let Some(t) = f.to {
        push("ts", Box::new(t.0), "<");
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let c = store.conn().await?;
    let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
    let total: i64 = c
        .query_one(&format!("SELECT COUNT(*) FROM requests{filter}"), &refs)
        .await?
        .get(0);
    let n = refs.len();
    let sql = format!(
        "{REQUEST_SELECT}{filter} ORDER BY ts DESC, request_id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut page_args = refs;
    page_args.push(&limit);
    page_args.push(&offset);
    let rows = c.query(&sql, &page_args).await?;
    let mut views: Vec<RequestView> = rows.iter().map(request_row).collect();
    attach_usage(&c, &mut views, scope.tenant()).await?;
    Ok((views, u64::try_from(total).unwrap_or(0)))
}

/// What a cost query aggregates.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CostOf {
    Task,
    Doc,
    Entity,
}

pub(crate) async fn cost(
    store: &PgStore,
    of: CostOf,
    id: &str,
    scope: &TenantScope,
) -> Result<Option<CostView>, StoreError> {
    let (usage_cond, req_cond) = match of {
        CostOf::Task => ("task_id = $1", "task_id = $1"),
        // A doc id learned at the end is on the request, not on its usage.
        CostOf::Doc => (
            "(doc_id = $1 OR request_id IN (SELECT request_id FROM requests WHERE doc_id = $1))",
            "doc_id = $1",
        ),
        CostOf::Entity => ("entity_id = $1", "entity_id = $1"),
    };
    let tenant = scope.tenant();
    let args: Vec<&(dyn ToSql + Sync)> = match &tenant {
        Some(t) => vec![&id, t],
        None => vec![&id],
    };
    let tenant_cond = if tenant.is_some() {
        "AND entity_id = $2"
    } else {
        ""
    };
    // One round trip: per-service groups, usage extent and request extent.
    let sql = format!(
        "WITH u AS (SELECT service_type, model, cost_nanos, ts, request_id FROM usage
                    WHERE {usage_cond} {tenant_cond}),
              g AS (SELECT COALESCE(service_type, 'llm:' || model, 'unknown') AS k,
                           SUM(cost_nanos)::int8 AS priced,
                           (COUNT(*) - COUNT(cost_nanos))::int8 AS unpriced
                    FROM u GROUP BY 1),
              e AS (SELECT COUNT(*) AS n, COUNT(DISTINCT request_id) AS nr, MIN(ts) AS lo,
                           MAX(ts) AS hi FROM u),
              r AS (SELECT COUNT(*) AS n, MIN(ts) AS lo,
                           MAX(ts + (COALESCE(processing_time_ms, 0) * 1000)::int8) AS hi
                    FROM requests WHERE {req_cond} {tenant_cond})
         SELECT 0 AS kind, g.k, g.priced, g.unpriced, NULL::int8, NULL::int8 FROM g
         UNION ALL SELECT 1, NULL, e.n, e.nr, e.lo, e.hi FROM e
         UNION ALL SELECT 2, NULL, r.n, 0, r.lo, r.hi FROM r"
    );
    let c = store.conn().await?;
    let rows = c.query(&sql, &args).await?;
    let mut groups = Vec::new();
    let mut e = Extent::default();
    for r in &rows {
        let count = |i| u64::try_from(r.get::<_, Option<i64>>(i).unwrap_or(0)).unwrap_or(0);
        match r.get::<_, i32>(0) {
            0 => groups.push(GroupCost {
                key: r.get(1),
                priced_nanos: r.get::<_, Option<i64>>(2).unwrap_or(0),
                unpriced: count(3),
            }),
            1 => {
                e.usage_count = count(2);
                e.usage_requests = count(3);
                e.usage_min = r.get(4);
                e.usage_max = r.get(5);
            }
            _ => {
                e.request_count = count(2);
                e.request_min = r.get(4);
                e.request_max_end = r.get(5);
            }
        }
    }
    Ok(common::cost_view(id, groups, e))
}

pub(crate) async fn usage_summary(
    store: &PgStore,
    group_by: GroupBy,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    scope: &TenantScope,
) -> Result<Vec<SummaryRow>, StoreError> {
    let key = match group_by {
        GroupBy::Model => "model",
        GroupBy::Provider => "provider",
        GroupBy::ServiceType => {
            "COALESCE(service_type, CASE WHEN model IS NOT NULL THEN 'llm' END)"
        }
        GroupBy::EntityId => "entity_id",
        GroupBy::Day => "(ts / 86400000000)::text",
        GroupBy::Hour => "(ts / 3600000000)::text",
        GroupBy::TaskId => "task_id",
        GroupBy::DocId => "doc_id",
    };
    let sql = format!(
        "SELECT {key} AS k, SUM(cost_nanos)::int8, (COUNT(*) - COUNT(cost_nanos))::int8, COUNT(*)
         FROM usage
         WHERE ts >= $1 AND ts < $2 AND ($3::text IS NULL OR entity_id = $3)
         GROUP BY 1"
    );
    let from = from.map_or(i64::MIN, Timestamp::as_micros);
    let to = to.map_or(i64::MAX, Timestamp::as_micros);
    let c = store.conn().await?;
    let rows = c.query(&sql, &[&from, &to, &scope.tenant()]).await?;
    let mut merged: BTreeMap<String, (i64, u64, u64)> = BTreeMap::new();
    for r in &rows {
        let k: Option<String> = r.get(0);
        let key = match (group_by, k) {
            (GroupBy::Day | GroupBy::Hour, Some(d)) => d
                .parse::<i64>()
                .ok()
                .and_then(|n| common::time_key(group_by, n))
                .ok_or_else(|| StoreError::Corrupt(format!("time bucket {d:?}")))?,
            (_, Some(k)) => k,
            (_, None) => "(none)".to_owned(),
        };
        let m = merged.entry(key).or_default();
        m.0 = m.0.saturating_add(r.get::<_, Option<i64>>(1).unwrap_or(0));
        m.1 += u64::try_from(r.get::<_, i64>(2)).unwrap_or(0);
        m.2 += u64::try_from(r.get::<_, i64>(3)).unwrap_or(0);
    }
    Ok(common::summary_rows(merged))
}
