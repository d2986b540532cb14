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
    c: &deadpool_postgres::ClientWrapper,
    views: &mut [RequestView],
    tenant: Option<&str>,
) -> Result<(), StoreError> {
    if views.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = views.iter().map(|v| v.request_id.as_str()).collect();
    // Prepared once per connection: planning the joins costs more than
    // running them.
    let stmt = c
        .prepare_cached(
            "SELECT l.request_id, COALESCE(sn.name, 'llm:' || mn.name, 'unknown'), u.cost_nanos,
                    u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
                    u.reasoning_tokens, u.units::text
             FROM links l
             CROSS JOIN LATERAL (SELECT * FROM usage WHERE link_k = l.id OFFSET 0) u
             JOIN dims d ON d.id = u.dims_k
             LEFT JOIN names sn ON sn.id = d.service_k
             LEFT JOIN names mn ON mn.id = d.model_k
             WHERE l.request_id = ANY($1) AND l.request_id <> ''
               AND ($2::text IS NULL OR l.entity_id = $2)",
        )
        .await?;
    let rows = c.query(&stmt, &[&ids, &tenant]).await?;
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

/// A group's priced total, clamped to `int8`: `SUM` of `int8` is `numeric`
/// and cannot overflow, but the cast would fail past 9.2 billion USD in
/// nano-USD (a total a tenant could post on purpose); the SQLite store
/// saturates the same way. (`LEAST`/`GREATEST` skip NULLs, so a group with
/// no priced row is NULL by the `CASE`.)
const PRICED_SUM: &str = "(CASE WHEN COUNT(u.cost_nanos) > 0 THEN
    GREATEST(LEAST(SUM(u.cost_nanos), 9223372036854775807), -9223372036854775808) END)::int8";

/// Names the groups of a by-dims aggregate `a` by one dims column.
const DIMS_NAME: &str = "SELECT n.name, a.p, a.un, a.n
    FROM a JOIN dims d ON d.id = a.k LEFT JOIN names n ON n.id = d.{col}";

/// The groups of a by-link-column aggregate `a` (already text; NULL: none).
const LINK_NAME: &str = "SELECT a.k, a.p, a.un, a.n FROM a";

/// Time buckets: the number as text, turned into a key below.
const TIME_NAME: &str = "SELECT a.k::text, a.p, a.un, a.n FROM a";

pub(crate) async fn get_request(
    store: &PgStore,
    id: &str,
    scope: &TenantScope,
) -> Result<Option<RequestView>, StoreError> {
    let c = store.conn().await?;
    let tenant = scope.tenant();
    let sql =
        format!("{REQUEST_SELECT} WHERE request_id = $1 AND ($2::text IS NULL OR entity_id = $2)");
    let stmt = c.prepare_cached(&sql).await?;
    let Some(row) = c.query_opt(&stmt, &[&id, &tenant]).await? else {
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
    let count = c
        .prepare_cached(&format!("SELECT COUNT(*) FROM requests{filter}"))
        .await?;
    let total: i64 = c.query_one(&count, &refs).await?.get(0);
    let n = refs.len();
    let sql = format!(
        "{REQUEST_SELECT}{filter} ORDER BY ts DESC, request_id DESC LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut page_args = refs;
    page_args.push(&limit);
    page_args.push(&offset);
    let page_stmt = c.prepare_cached(&sql).await?;
    let rows = c.query(&page_stmt, &page_args).await?;
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
    // Usage is found through `links` (migration 5): the links of the
    // task / doc / entity, then their usage. Conditions on a `links` column
    // also say `<> ''` (none), which lets the planner use the column's
    // partial index and keeps an empty id from matching "none". The usage
    // of each link is a LATERAL subquery behind `OFFSET 0` (not pulled up
    // into a join): right after a bulk load, before autovacuum has analysed
    // `links`, the planner would otherwise hash-join a scan of all usage.
    let tenant = scope.tenant();
    let (link_cond, req_cond) = match of {
        CostOf::Task => ("l.task_id = $1 AND l.task_id <> ''", "task_id = $1"),
        // A doc id learned at the end is on the request, not on its usage.
        // For a tenant, only its own requests count: usage may name any
        // request id, and another tenant's request must not make its
        // document visible.
        CostOf::Doc if tenant.is_some() => (
            "((l.doc_id = $1 AND l.doc_id <> '')
              OR (l.request_id IN (SELECT request_id FROM requests
                                   WHERE doc_id = $1 AND entity_id = $2)
                  AND l.request_id <> ''))",
            "doc_id = $1",
        ),
        CostOf::Doc => (
            "((l.doc_id = $1 AND l.doc_id <> '')
              OR (l.request_id IN (SELECT request_id FROM requests WHERE doc_id = $1)
                  AND l.request_id <> ''))",
            "doc_id = $1",
        ),
        CostOf::Entity => ("l.entity_id = $1 AND l.entity_id <> ''", "entity_id = $1"),
    };
    let args: Vec<&(dyn ToSql + Sync)> = match &tenant {
        Some(t) => vec![&id, t],
        None => vec![&id],
    };
    let (link_tenant, req_tenant) = if tenant.is_some() {
        ("AND l.entity_id = $2", "AND entity_id = $2")
    } else {
        ("", "")
    };
    // One round trip: per-service groups, usage extent and request extent.
    let sql = format!(
        "WITH u AS (SELECT u.dims_k, u.cost_nanos, u.ts, l.request_id
                    FROM links l
                    CROSS JOIN LATERAL (SELECT dims_k, cost_nanos, ts FROM usage
                                        WHERE link_k = l.id OFFSET 0) u
                    WHERE {link_cond} {link_tenant}),
              g AS (SELECT COALESCE(sn.name, 'llm:' || mn.name, 'unknown') AS k,
                           {PRICED_SUM} AS priced,
                           (COUNT(*) - COUNT(u.cost_nanos))::int8 AS unpriced
                    FROM u JOIN dims d ON d.id = u.dims_k
                    LEFT JOIN names sn ON sn.id = d.service_k
                    LEFT JOIN names mn ON mn.id = d.model_k
                    GROUP BY 1),
              e AS (SELECT COUNT(*) AS n, COUNT(DISTINCT NULLIF(request_id, '')) AS nr,
                           MIN(ts) AS lo, MAX(ts) AS hi FROM u),
              r AS (SELECT COUNT(*) AS n, MIN(ts) AS lo,
                           MAX(ts + (COALESCE(processing_time_ms, 0) * 1000)::int8) AS hi
                    FROM requests WHERE {req_cond} {req_tenant})
         SELECT 0 AS kind, g.k, g.priced, g.unpriced, NULL::int8, NULL::int8 FROM g
         UNION ALL SELECT 1, NULL, e.n, e.nr, e.lo, e.hi FROM e
         UNION ALL SELECT 2, NULL, r.n, 0, r.lo, r.hi FROM r"
    );
    let c = store.conn().await?;
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c.query(&stmt, &args).await?;
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
    // Aggregate by dictionary id (few groups), then name the groups; the
    // merge below adds up groups that end up with the same name.
    let (inner_key, outer) = match group_by {
        GroupBy::Model => ("u.dims_k", DIMS_NAME.replace("{col}", "model_k")),
        GroupBy::Provider => ("u.dims_k", DIMS_NAME.replace("{col}", "provider_k")),
        GroupBy::ServiceType => (
            "u.dims_k",
            "SELECT COALESCE(n.name, CASE WHEN d.model_k <> 0 THEN 'llm' END), a.p, a.un, a.n
             FROM a JOIN dims d ON d.id = a.k LEFT JOIN names n ON n.id = d.service_k"
                .to_owned(),
        ),
        GroupBy::EntityId => ("NULLIF(l.entity_id, '')", LINK_NAME.to_owned()),
        GroupBy::TaskId => ("NULLIF(l.task_id, '')", LINK_NAME.to_owned()),
        GroupBy::DocId => ("NULLIF(l.doc_id, '')", LINK_NAME.to_owned()),
        GroupBy::Day => ("u.ts / 86400000000", TIME_NAME.to_owned()),
        GroupBy::Hour => ("u.ts / 3600000000", TIME_NAME.to_owned()),
    };
    let tenant = scope.tenant();
    let tenant_cond = if tenant.is_some() {
        "AND l.entity_id = $3 AND l.entity_id <> ''"
    } else {
        ""
    };
    let join_links = if inner_key.contains("l.") || tenant.is_some() {
        "LEFT JOIN links l ON l.id = u.link_k"
    } else {
        ""
    };
    let sql = format!(
        "WITH a AS (SELECT {inner_key} AS k, {PRICED_SUM} AS p,
                           (COUNT(*) - COUNT(u.cost_nanos))::int8 AS un, COUNT(*) AS n
                    FROM usage u {join_links}
                    WHERE u.ts >= $1 AND u.ts < $2 {tenant_cond}
                    GROUP BY 1)
         {outer}"
    );
    let from = from.map_or(i64::MIN, Timestamp::as_micros);
    let to = to.map_or(i64::MAX, Timestamp::as_micros);
    let c = store.conn().await?;
    let rows = match tenant {
        Some(t) => c.query(&sql, &[&from, &to, &t]).await?,
        None => c.query(&sql, &[&from, &to]).await?,
    };
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
