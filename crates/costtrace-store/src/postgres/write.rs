//! PostgreSQL writes: COPY-based batch insert, request start/end, archive,
//! re-pricing.

use std::pin::pin;

use costtrace_core::{Record, RequestRecord, ScopeRecord, Timestamp};
use deadpool_postgres::GenericClient;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

use super::PgStore;
use crate::common::{self, RawUsage};
use crate::{ArchiveStats, RequestEnd, StoreError};

const USAGE_COLUMNS: &str = "id, ts, cost_nanos, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, duration_ms, scope_id, env, tier, partial, request_id,
    task_id, doc_id, entity_id, provider, model, service_type, operation, price_version, units,
    unpriced_reason, error_message, attrs";

const USAGE_TYPES: [Type; 26] = [
    Type::UUID,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::FLOAT8,
    Type::UUID,
    Type::INT2,
    Type::INT2,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
];

/// The archive watermark: records older than this go to the archive tables.
async fn archived_before(c: &impl GenericClient) -> Result<i64, StoreError> {
    let row = c
        .query_opt("SELECT value FROM meta WHERE key = 'archived_before'", &[])
        .await?;
    Ok(row.map_or(i64::MIN, |r| r.get(0)))
}

pub(crate) async fn insert_records(store: &PgStore, records: &[Record]) -> Result<u64, StoreError> {
    let mut c = store.conn().await?;
    let tx = c.transaction().await?;
    let watermark = archived_before(&tx).await?;
    let mut new = 0u64;

    let usage: Vec<_> = records.iter().filter_map(Record::as_usage).collect();
    if !usage.is_empty() {
        tx.batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS usage_stage (LIKE usage) ON COMMIT DELETE ROWS",
        )
        .await?;
        let sink = tx
            .copy_in(&format!(
                "COPY usage_stage ({USAGE_COLUMNS}) FROM STDIN BINARY"
            ))
            .await?;
        let mut w = pin!(BinaryCopyInWriter::new(sink, &USAGE_TYPES));
        for u in &usage {
            let l = common::links(&u.attrs);
            let units = (!u.units.is_empty()).then_some(Json(&u.units));
            let attrs = l.rest.as_ref().map(Json);
            let tokens = [
                common::count(u.input_tokens),
                common::count(u.output_tokens),
                common::count(u.cache_read_tokens),
                common::count(u.cache_write_tokens),
                common::count(u.reasoning_tokens),
            ];
            let row: [&(dyn ToSql + Sync); 26] = [
                &u.id,
                &u.timestamp.0,
                &u.cost_nanos,
                &tokens[0],
                &tokens[1],
                &tokens[2],
                &tokens[3],
                &tokens[4],
                &u.duration_ms,
                &u.scope_id,
                &common::env_code(u.environment),
                &common::tier_code(u.pricing_tier),
                &u.partial,
                &l.request_id,
                &l.task_id,
                &l.doc_id,
                &l.entity_id,
                &u.provider,
                &u.model,
                &u.service_type,
                &u.operation,
                &u.price_version,
                &units,
                &u.unpriced_reason,
                &u.error_message,
                &attrs,
            ];
            w.as_mut().write(&row).await?;
        }
        w.finish().await?;
        // Each INSERT … SELECT reads the whole staging table: skip the one
        // with nothing to move (the archive one, almost always).
        let cold = usage.iter().filter(|u| u.timestamp.0 < watermark).count();
        if cold < usage.len() {
            new += tx
                .execute(
                    // Columns named: the staging table has no defaults for the
                    // ingest order columns (migration 2).
                    &format!(
                        "INSERT INTO usage ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS}
                         FROM usage_stage WHERE ts >= $1 ON CONFLICT (id) DO NOTHING"
                    ),
                    &[&watermark],
                )
                .await?;
        }
        if cold > 0 {
            new += tx
                .execute(
                    &format!(
                        "INSERT INTO usage_archive ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS}
                         FROM usage_stage WHERE ts < $1 ON CONFLICT (id) DO NOTHING"
                    ),
                    &[&watermark],
                )
                .await?;
        }
    }

    let scopes: Vec<&ScopeRecord> = records.iter().filter_map(Record::as_scope).collect();
    if !scopes.is_empty() {
        let ids: Vec<Uuid> = scopes.iter().map(|s| s.id).collect();
        let started: Vec<i64> = scopes.iter().map(|s| s.started_at.0).collect();
        let bodies: Vec<Json<&ScopeRecord>> = scopes.iter().map(|s| Json(*s)).collect();
        for (table, cmp) in [("scopes", ">="), ("scopes_archive", "<")] {
            new += tx
                .execute(
                    &format!(
                        "INSERT INTO {table} (id, started_at, body)
                         SELECT * FROM unnest($1::uuid[], $2::int8[], $3::jsonb[]) AS s(id, t, b)
                         WHERE s.t {cmp} $4
                         ON CONFLICT (id) DO NOTHING"
                    ),
                    &[&ids, &started, &bodies, &watermark],
                )
                .await?;
        }
    }

    // First occurrence of each request id in one statement; repeats within
    // the batch (rare) one by one, so each is merged in order.
    let mut seen = std::collections::HashSet::new();
    let (firsts, repeats): (Vec<&RequestRecord>, Vec<&RequestRecord>) = records
        .iter()
        .filter_map(Record::as_request)
        .partition(|r| seen.insert(r.request_id.as_str()));
    new += upsert_requests(&tx, &firsts, watermark).await?;
    for r in repeats {
        if upsert_request(&tx, r, watermark).await? {
            new += 1;
        }
    }
    tx.commit().await?;
    Ok(new)
}

/// The `ON CONFLICT` clause shared by the request upserts: fill in what is
/// still empty, take the newer status / time / error.
const REQUEST_MERGE: &str = "ON CONFLICT (request_id) DO UPDATE SET
    ts = LEAST(r.ts, EXCLUDED.ts),
    task_id = COALESCE(r.task_id, EXCLUDED.task_id),
    doc_id = COALESCE(r.doc_id, EXCLUDED.doc_id),
    entity_id = COALESCE(r.entity_id, EXCLUDED.entity_id),
    operation_type = COALESCE(r.operation_type, EXCLUDED.operation_type),
    task_type = COALESCE(r.task_type, EXCLUDED.task_type),
    status_code = COALESCE(EXCLUDED.status_code, r.status_code),
    processing_time_ms = COALESCE(EXCLUDED.processing_time_ms, r.processing_time_ms),
    env = EXCLUDED.env,
    endpoint = COALESCE(r.endpoint, EXCLUDED.endpoint),
    method = COALESCE(r.method, EXCLUDED.method),
    error_message = COALESCE(EXCLUDED.error_message, r.error_message),
    ingest_xid = pg_current_xact_id(),
    ingest_seq = nextval('record_ingest_seq')
    RETURNING (xmax = 0)";

/// Upserts requests with distinct ids in one statement per table (arrays
/// bound as parameters). Returns how many were new.
async fn upsert_requests(
    c: &impl GenericClient,
    reqs: &[&RequestRecord],
    archived_before: i64,
) -> Result<u64, StoreError> {
    let mut new = 0;
    for (table, cold) in [("requests", false), ("requests_archive", true)] {
        let part: Vec<&RequestRecord> = reqs
            .iter()
            .copied()
            .filter(|r| (r.timestamp.0 < archived_before) == cold)
            .collect();
        if part.is_empty() {
            continue;
        }
        let col = |f: fn(&RequestRecord) -> Option<&str>| -> Vec<Option<&str>> {
            part.iter().map(|r| f(r)).collect()
        };
        let ids: Vec<&str> = part.iter().map(|r| r.request_id.as_str()).collect();
        let ts: Vec<i64> = part.iter().map(|r| r.timestamp.0).collect();
        let status: Vec<Option<i32>> = part.iter().map(|r| r.status_code.map(i32::from)).collect();
        let ms: Vec<Option<f64>> = part.iter().map(|r| r.processing_time_ms).collect();
        let env: Vec<i16> = part
            .iter()
            .map(|r| common::env_code(r.environment))
            .collect();
        let rows = c
            .query(
                &format!(
                    "INSERT INTO {table} AS r (request_id, ts, task_id, doc_id, entity_id,
                         operation_type, task_type, status_code, processing_time_ms, env,
                         endpoint, method, error_message)
                     SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[],
                         $5::text[], $6::text[], $7::text[], $8::int4[], $9::float8[],
                         $10::int2[], $11::text[], $12::text[], $13::text[])
                     {REQUEST_MERGE}"
                ),
                &[
                    &ids,
                    &ts,
                    &col(|r| r.task_id.as_deref()),
                    &col(|r| r.doc_id.as_deref()),
                    &col(|r| r.entity_id.as_deref()),
                    &col(|r| r.operation_type.as_deref()),
                    &col(|r| r.task_type.as_deref()),
                    &status,
                    &ms,
                    &env,
                    &col(|r| r.endpoint.as_deref()),
                    &col(|r| r.method.as_deref()),
                    &col(|r| r.error_message.as_deref()),
                ],
            )
            .await?;
        new += rows.iter().filter(|r| r.get::<_, bool>(0)).count() as u64;
    }
    Ok(new)
}

/// Inserts a request or fills in the fields of an existing one that are
/// still empty. Returns whether it was new.
pub(crate) async fn upsert_request(
    c: &impl GenericClient,
    r: &RequestRecord,
    archived_before: i64,
) -> Result<bool, StoreError> {
    let table = if r.timestamp.0 < archived_before {
        "requests_archive"
    } else {
        "requests"
    };
    let status = r.status_code.map(i32::from);
    let row = c
        .query_one(
            &format!(
                "INSERT INTO {table} AS r (request_id, ts, task_id, doc_id, entity_id,
                     operation_type, task_type, status_code, processing_time_ms, env, endpoint,
                     method, error_message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 {REQUEST_MERGE}"
            ),
            &[
                &r.request_id,
                &r.timestamp.0,
                &r.task_id,
                &r.doc_id,
                &r.entity_id,
                &r.operation_type,
                &r.task_type,
                &status,
                &r.processing_time_ms,
                &common::env_code(r.environment),
                &r.endpoint,
                &r.method,
                &r.error_message,
            ],
        )
        .await?;
    Ok(row.get(0))
}

pub(crate) async fn end_request(
    store: &PgStore,
    id: &str,
    end: &RequestEnd,
) -> Result<(), StoreError> {
    let c = store.conn().await?;
    let status = end.status_code.map(i32::from);
    let n = c
        .execute(
            "UPDATE requests SET status_code = COALESCE($2, status_code),
                 processing_time_ms = COALESCE($3, processing_time_ms),
                 error_message = COALESCE($4, error_message), doc_id = COALESCE($5, doc_id),
                 ingest_xid = pg_current_xact_id(), ingest_seq = nextval('record_ingest_seq')
             WHERE request_id = $1",
            &[
                &id,
                &status,
                &end.processing_time_ms,
                &end.error_message,
                &end.doc_id,
            ],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::UnknownRequest(id.to_owned()));
    }
    Ok(())
}

pub(crate) async fn archive_before(
    store: &PgStore,
    cutoff: i64,
) -> Result<ArchiveStats, StoreError> {
    let mut c = store.conn().await?;
    let tx = c.transaction().await?;
    // Set the watermark first: its row lock orders concurrent archivers.
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('archived_before', $1)
         ON CONFLICT (key) DO UPDATE SET value = GREATEST(meta.value, EXCLUDED.value)",
        &[&cutoff],
    )
    .await?;
    let mut moved = [0u64; 3];
    for (i, (table, col)) in [
        ("requests", "ts"),
        ("usage", "ts"),
        ("scopes", "started_at"),
    ]
    .into_iter()
    .enumerate()
    {
        let row = tx
            .query_one(
                &format!(
                    "WITH moved AS (DELETE FROM {table} WHERE {col} < $1 RETURNING *),
                          kept AS (INSERT INTO {table}_archive SELECT * FROM moved
                                   ON CONFLICT DO NOTHING)
                     SELECT COUNT(*) FROM moved"
                ),
                &[&cutoff],
            )
            .await?;
        moved[i] = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    }
    tx.commit().await?;
    Ok(ArchiveStats {
        requests: moved[0],
        usage: moved[1],
        scopes: moved[2],
    })
}

/// Rows read per re-pricing step.
const REPRICE_CHUNK: i64 = 5_000;

pub(crate) async fn reprice(
    store: &PgStore,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    catalogue: &costtrace_pricing::Catalogue,
) -> Result<u64, StoreError> {
    let c = store.conn().await?;
    let to = to.map_or(i64::MAX, Timestamp::as_micros);
    let mut cursor = (from.map_or(i64::MIN, Timestamp::as_micros), Uuid::nil());
    let mut changed = 0u64;
    loop {
        let rows = c
            .query(
                "SELECT id, ts, provider, model, service_type, tier, input_tokens, output_tokens,
                        cache_read_tokens, cache_write_tokens, reasoning_tokens, units::text,
                        cost_nanos, price_version, unpriced_reason
                 FROM usage
                 WHERE ts >= $1 AND (ts, id) > ($1, $2) AND ts < $3
                   AND price_version IS DISTINCT FROM 'reported'
                 ORDER BY ts, id LIMIT $4",
                &[&cursor.0, &cursor.1, &to, &REPRICE_CHUNK],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        cursor = (last.get(1), last.get(0));
        let (mut ids, mut costs, mut versions, mut reasons) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            let raw = RawUsage {
                provider: r.get(2),
                model: r.get(3),
                service_type: r.get(4),
                tier: i64::from(r.get::<_, i16>(5)),
                ts: r.get(1),
                tokens: [r.get(6), r.get(7), r.get(8), r.get(9), r.get(10)],
                units: r.get(11),
            };
            let old: common::Pricing = (r.get(12), r.get(13), r.get(14));
            let new = common::reprice_raw(catalogue, raw)?;
            if new != old {
                ids.push(r.get::<_, Uuid>(0));
                costs.push(new.0);
                versions.push(new.1);
                reasons.push(new.2);
            }
        }
        if !ids.is_empty() {
            changed += c
                .execute(
                    "UPDATE usage u SET cost_nanos = v.c, price_version = v.p, unpriced_reason = v.r
                     FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::text[]) AS v(id, c, p, r)
                     WHERE u.id = v.id",
                    &[&ids, &costs, &versions, &reasons],
                )
                .await?;
        }
        if (rows.len() as i64) < REPRICE_CHUNK {
            break;
        }
    }
    Ok(changed)
}
