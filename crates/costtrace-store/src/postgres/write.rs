//! PostgreSQL writes: COPY-based batch insert, request start/end, archive,
//! re-pricing.

use std::pin::pin;

use costtrace_core::{Record, RequestRecord, ScopeRecord, Timestamp, UsageRecord};
use deadpool_postgres::GenericClient;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql, Type};
use uuid::Uuid;

use super::PgStore;
use super::dict::{self, DimsKey};
use crate::common::{self, RawUsage};
use crate::{ArchiveStats, RequestEnd, StoreError};

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

const USAGE_COLUMNS: &str = "id, scope_id, ts, cost_nanos, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, reasoning_tokens, duration_ms, link_k, dims_k, units,
    unpriced_reason, error_message, attrs";

const USAGE_TYPES: [Type; 16] = [
    Type::UUID,
    Type::UUID,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::FLOAT8,
    Type::INT8,
    Type::INT4,
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

/// A usage record's dictionary keys: links (request, task, doc, entity)
/// and dims name lookups.
struct Keyed<'a> {
    u: &'a UsageRecord,
    links: common::Links<'a>,
}

impl<'a> Keyed<'a> {
    fn link_names(&self) -> [Option<&'a str>; 4] {
        let l = &self.links;
        [l.request_id, l.task_id, l.doc_id, l.entity_id]
    }

    fn dim_names(&self) -> [Option<&str>; 5] {
        let u = self.u;
        [
            u.provider.as_deref(),
            u.model.as_deref(),
            u.service_type.as_deref(),
            u.operation.as_deref(),
            u.price_version.as_deref(),
        ]
    }
}

/// Dictionary ids (links, dims) of each usage record, in order; the new
/// dictionary entries are committed before this returns (see `dict`).
/// The links tuples of a batch not known to be stored, with their new ids
/// (see `dict::store_links`).
type NewLinks<'a> = Vec<([&'a str; 4], i64)>;

async fn usage_keys<'a>(
    store: &PgStore,
    c: &impl GenericClient,
    usage: &[Keyed<'a>],
) -> Result<(Vec<(Option<i64>, i32)>, NewLinks<'a>), StoreError> {
    let dict = &store.dict;
    // Consecutive records mostly share their links (one request) and dims
    // (one model): each run is looked up once. `link_run[i]` / `dims_run[i]`
    // index record i's run.
    let mut links_wanted: Vec<[&'a str; 4]> = Vec::new();
    let mut link_run: Vec<Option<usize>> = Vec::with_capacity(usage.len());
    let mut dims_first: Vec<usize> = Vec::new();
    let mut dims_run: Vec<usize> = Vec::with_capacity(usage.len());
    for (i, k) in usage.iter().enumerate() {
        let names = k.link_names();
        if names == [None; 4] {
            link_run.push(None);
        } else {
            // '' for an absent id.
            let ids = names.map(|v| v.unwrap_or(""));
            if links_wanted.last() != Some(&ids) {
                links_wanted.push(ids);
            }
            link_run.push(Some(links_wanted.len() - 1));
        }
        if dims_first.last().is_none_or(|&j| !same_dims(&usage[j], k)) {
            dims_first.push(i);
        }
        dims_run.push(dims_first.len() - 1);
    }
    // Links: a stored tuple's id is cached; new ones get reserved ids and
    // are stored beside the usage COPY (see `dict::store_links`).
    let mut link_ids: Vec<i64> = Vec::with_capacity(links_wanted.len());
    // The runs of the distinct new tuples, and for each run that is new, the
    // index of its tuple among them (a new tuple can come back later in the
    // batch, not in a row).
    let mut fresh: Vec<usize> = Vec::new();
    let mut fresh_of: Vec<(usize, usize)> = Vec::new();
    {
        let mut seen: Map<Box<str>, usize> = Map::default();
        for (r, ids) in links_wanted.iter().enumerate() {
            let key = dict::link_key(ids);
            match dict.cached_link(&key) {
                Some(id) => link_ids.push(id),
                None => {
                    let f = *seen.entry(key).or_insert_with(|| {
                        fresh.push(r);
                        fresh.len() - 1
                    });
                    fresh_of.push((r, f));
                    link_ids.push(0);
                }
            }
        }
    }
    let mut new_links: NewLinks<'a> = Vec::with_capacity(fresh.len());
    if !fresh.is_empty() {
        let ids = dict.new_link_ids(c, fresh.len()).await?;
        for &(r, f) in &fresh_of {
            link_ids[r] = ids[f];
        }
        new_links.extend(
            fresh
                .iter()
                .zip(&ids)
                .map(|(&r, &id)| (links_wanted[r], id)),
        );
    }
    // Dims: by their text first, by name ids for the few that are new.
    let texts: Vec<Box<str>> = dims_first.iter().map(|&i| dims_text(&usage[i])).collect();
    let mut dims = dict.dims_by_text(&texts);
    let new: Vec<usize> = (0..texts.len())
        .filter(|&r| !dims.contains_key(&texts[r]))
        .collect();
    if !new.is_empty() {
        let wanted: Vec<&str> = new
            .iter()
            .flat_map(|&r| usage[dims_first[r]].dim_names())
            .flatten()
            .collect();
        let names = dict.names(c, &wanted).await?;
        let id = |n: Option<&str>| n.and_then(|n| names.get(n).copied()).unwrap_or(0);
        let keys: Vec<DimsKey> = new
            .iter()
            .map(|&r| {
                let k = &usage[dims_first[r]];
                (
                    k.dim_names().map(id),
                    common::env_code(k.u.environment),
                    common::tier_code(k.u.pricing_tier),
                    k.u.partial,
                )
            })
            .collect();
        let ids = dict.dims(c, &keys).await?;
        let mut learned = Vec::with_capacity(new.len());
        for (&r, key) in new.iter().zip(&keys) {
            let d = *ids
                .get(key)
                .ok_or_else(|| StoreError::Corrupt("dims id missing".into()))?;
            dims.insert(texts[r].clone(), d);
            learned.push((texts[r].clone(), d));
        }
        dict.remember_dims_text(learned);
    }
    let dims_ids = texts
        .iter()
        .map(|t| {
            dims.get(t)
                .copied()
                .ok_or_else(|| StoreError::Corrupt("dims id missing".into()))
        })
        .collect::<Result<Vec<i32>, _>>()?;
    let keys = link_run
        .iter()
        .zip(&dims_run)
        .map(|(l, &d)| (l.map(|r| link_ids[r]), dims_ids[d]))
        .collect();
    Ok((keys, new_links))
}

/// Whether two usage records have the same dims.
fn same_dims(a: &Keyed<'_>, b: &Keyed<'_>) -> bool {
    a.dim_names() == b.dim_names()
        && a.u.environment == b.u.environment
        && a.u.pricing_tier == b.u.pricing_tier
        && a.u.partial == b.u.partial
}

/// A usage record's dims as one string (the key of the writer's dims-by-text
/// cache): the five names, each tagged so that absent differs from empty,
/// then environment, tier and partial.
fn dims_text(k: &Keyed<'_>) -> Box<str> {
    let u = k.u;
    let mut s = String::with_capacity(64);
    for n in k.dim_names() {
        match n {
            Some(n) => {
                s.push('\u{1}');
                s.push_str(n);
            }
            None => s.push('\u{2}'),
        }
    }
    s.push('\u{3}');
    s.push(char::from(b'0' + common::env_code(u.environment) as u8));
    s.push(char::from(b'0' + common::tier_code(u.pricing_tier) as u8));
    s.push(if u.partial { 'p' } else { 'c' });
    s.into_boxed_str()
}

/// A usage record with its `(link_k, dims_k)`.
type UsageRow<'r, 'a> = (&'r Keyed<'a>, &'r (Option<i64>, i32));

/// `COPY table (USAGE_COLUMNS) FROM STDIN BINARY` of `rows`; how many.
async fn copy_usage(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    rows: &[UsageRow<'_, '_>],
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx
        .copy_in(&format!("COPY {table} ({USAGE_COLUMNS}) FROM STDIN BINARY"))
        .await?;
    let mut w = pin!(BinaryCopyInWriter::new(sink, &USAGE_TYPES));
    for (k, (link, dims)) in rows {
        let u = k.u;
        let units = (!u.units.is_empty()).then_some(Json(&u.units));
        let attrs = k.links.rest.as_ref().map(Json);
        let tokens = [
            common::count(u.input_tokens),
            common::count(u.output_tokens),
            common::count(u.cache_read_tokens),
            common::count(u.cache_write_tokens),
            common::count(u.reasoning_tokens),
        ];
        let row: [&(dyn ToSql + Sync); 16] = [
            &u.id,
            &u.scope_id,
            &u.timestamp.0,
            &u.cost_nanos,
            &tokens[0],
            &tokens[1],
            &tokens[2],
            &tokens[3],
            &tokens[4],
            &u.duration_ms,
            link,
            dims,
            &units,
            &u.unpriced_reason,
            &u.error_message,
            &attrs,
        ];
        w.as_mut().write(&row).await?;
    }
    w.finish().await
}

/// The slow path of a usage batch that holds records stored before: COPY
/// into a staging table, then `INSERT … ON CONFLICT (id) DO NOTHING`.
async fn insert_staged(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[UsageRow<'_, '_>],
    any_cold: bool,
    any_hot: bool,
    watermark: i64,
) -> Result<u64, StoreError> {
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS usage_stage5 (LIKE usage) ON COMMIT DELETE ROWS",
    )
    .await?;
    copy_usage(tx, "usage_stage5", rows).await?;
    let mut new = 0;
    // Each INSERT … SELECT reads the whole staging table: skip the one with
    // nothing to move. Columns named: the staging table has no defaults for
    // the ingest order columns (migration 2).
    if any_hot {
        new += tx
            .execute(
                &format!(
                    "INSERT INTO usage ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS}
                     FROM usage_stage5 WHERE ts >= $1 ON CONFLICT (id) DO NOTHING"
                ),
                &[&watermark],
            )
            .await?;
    }
    if any_cold {
        new += tx
            .execute(
                &format!(
                    "INSERT INTO usage_archive ({USAGE_COLUMNS}) SELECT {USAGE_COLUMNS}
                     FROM usage_stage5 WHERE ts < $1 ON CONFLICT (id) DO NOTHING"
                ),
                &[&watermark],
            )
            .await?;
    }
    Ok(new)
}

pub(crate) async fn insert_records(store: &PgStore, records: &[Record]) -> Result<u64, StoreError> {
    let usage: Vec<Keyed<'_>> = records
        .iter()
        .filter_map(Record::as_usage)
        .map(|u| Keyed {
            u,
            links: common::links(&u.attrs),
        })
        .collect();
    // Dictionary ids first (see `dict`): new dims and new links are stored
    // outside the batch's transaction, on a second connection, the links
    // while the usage is copied.
    let (keys, new_links, dict_conn) = if usage.is_empty() {
        (Vec::new(), Vec::new(), None)
    } else {
        let c = store.conn().await?;
        let (keys, new_links) = usage_keys(store, &c, &usage).await?;
        (keys, new_links, Some(c))
    };
    let store_links = async {
        match &dict_conn {
            Some(c) if !new_links.is_empty() => store.dict.store_links(c, &new_links).await,
            _ => Ok(()),
        }
    };
    let mut c = store.conn().await?;
    let tx = c.transaction().await?;
    let (new, stored) =
        futures_util::future::join(write_batch(&tx, &usage, &keys, records), store_links).await;
    stored?;
    let new = new?;
    tx.commit().await?;
    Ok(new)
}

/// Writes `usage` (with its dictionary `keys`) and the scope and request
/// records of `records` in transaction `tx`; returns how many were new.
///
/// (Splitting a large batch over two connections and transactions was
/// measured and dropped: on two cores the second server process mostly
/// waited for the first one's index pages, 70–95k against 83–88k usage
/// records/s.)
async fn write_batch(
    tx: &deadpool_postgres::Transaction<'_>,
    usage: &[Keyed<'_>],
    keys: &[(Option<i64>, i32)],
    records: &[Record],
) -> Result<u64, StoreError> {
    let watermark = archived_before(tx).await?;
    let mut new = 0u64;

    if !usage.is_empty() {
        let rows: Vec<UsageRow<'_, '_>> = usage.iter().zip(keys).collect();
        let (cold, hot): (Vec<UsageRow<'_, '_>>, Vec<UsageRow<'_, '_>>) =
            rows.iter().partition(|(k, _)| k.u.timestamp.0 < watermark);
        // Fast path: COPY straight into the tables (no staging table, no
        // speculative insertion per row). A record stored before — a replay,
        // or a repeat inside the batch — fails it with a unique violation;
        // then the batch goes through staging and ON CONFLICT DO NOTHING.
        tx.batch_execute("SAVEPOINT usage_copy").await?;
        let direct = async {
            let mut n = 0;
            if !hot.is_empty() {
                n += copy_usage(tx, "usage", &hot).await?;
            }
            if !cold.is_empty() {
                n += copy_usage(tx, "usage_archive", &cold).await?;
            }
            Ok::<u64, tokio_postgres::Error>(n)
        };
        match direct.await {
            Ok(n) => {
                tx.batch_execute("RELEASE SAVEPOINT usage_copy").await?;
                new += n;
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT usage_copy").await?;
                new += insert_staged(
                    tx,
                    &rows,
                    hot.len() < rows.len(),
                    !hot.is_empty(),
                    watermark,
                )
                .await?;
            }
            Err(e) => return Err(e.into()),
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
    new += upsert_requests(tx, &firsts, watermark).await?;
    for r in repeats {
        if upsert_request(tx, r, watermark).await? {
            new += 1;
        }
    }
    Ok(new)
}

/// The `ON CONFLICT` clause shared by the request upserts: fill in what is
/// still empty, take the newer status / time / error — unless the two name
/// different tenants (one tenant never changes another's request).
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
    WHERE r.entity_id IS NULL OR EXCLUDED.entity_id IS NULL OR r.entity_id = EXCLUDED.entity_id
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

/// Changed rows written per re-pricing update.
const REPRICE_CHUNK: usize = 5_000;

/// One changed row of a re-pricing pass.
struct Repriced {
    id: Uuid,
    cost: Option<i64>,
    version: Option<String>,
    reason: Option<String>,
    dims: DimsKey,
}

pub(crate) async fn reprice(
    store: &PgStore,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    catalogue: &costtrace_pricing::Catalogue,
) -> Result<u64, StoreError> {
    // One streamed scan (its snapshot does not see the updated versions, so
    // nothing is priced twice) and the updates on a second connection.
    let reader = store.conn().await?;
    let writer = store.conn().await?;
    let from = from.map_or(i64::MIN, Timestamp::as_micros);
    let to = to.map_or(i64::MAX, Timestamp::as_micros);
    let params: [&(dyn ToSql + Sync); 2] = [&from, &to];
    let rows = reader
        .query_raw(
            "SELECT u.id, u.ts, pn.name, mn.name, sn.name, d.tier, u.input_tokens,
                    u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
                    u.reasoning_tokens, u.units::text, u.cost_nanos, vn.name, u.unpriced_reason,
                    d.provider_k, d.model_k, d.service_k, d.operation_k, d.env, d.partial
             FROM usage u
             JOIN dims d ON d.id = u.dims_k
             LEFT JOIN names pn ON pn.id = d.provider_k
             LEFT JOIN names mn ON mn.id = d.model_k
             LEFT JOIN names sn ON sn.id = d.service_k
             LEFT JOIN names vn ON vn.id = d.price_version_k
             WHERE u.ts >= $1 AND u.ts < $2 AND vn.name IS DISTINCT FROM 'reported'",
            params,
        )
        .await?;
    let mut rows = pin!(rows);
    let mut changed = 0u64;
    let mut batch: Vec<Repriced> = Vec::new();
    while let Some(r) = futures_util::TryStreamExt::try_next(&mut rows).await? {
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
            batch.push(Repriced {
                id: r.get(0),
                cost: new.0,
                version: new.1,
                reason: new.2,
                dims: (
                    [r.get(15), r.get(16), r.get(17), r.get(18), 0],
                    r.get(19),
                    r.get::<_, i16>(5),
                    r.get(20),
                ),
            });
        }
        if batch.len() >= REPRICE_CHUNK {
            changed += write_repriced(store, &writer, std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        changed += write_repriced(store, &writer, batch).await?;
    }
    Ok(changed)
}

/// Stores re-priced costs; the new price version goes into the row's dims.
async fn write_repriced(
    store: &PgStore,
    c: &impl GenericClient,
    mut batch: Vec<Repriced>,
) -> Result<u64, StoreError> {
    let versions: Vec<&str> = batch.iter().filter_map(|b| b.version.as_deref()).collect();
    let names = store.dict.names(c, &versions).await?;
    let version_ids: Vec<i64> = batch
        .iter()
        .map(|b| {
            b.version
                .as_deref()
                .and_then(|v| names.get(v).copied())
                .unwrap_or(0)
        })
        .collect();
    drop(names);
    drop(versions);
    for (b, v) in batch.iter_mut().zip(version_ids) {
        b.dims.0[4] = v;
    }
    let wanted: Vec<DimsKey> = batch.iter().map(|b| b.dims).collect();
    let dims = store.dict.dims(c, &wanted).await?;
    let ids: Vec<Uuid> = batch.iter().map(|b| b.id).collect();
    let costs: Vec<Option<i64>> = batch.iter().map(|b| b.cost).collect();
    let reasons: Vec<Option<&str>> = batch.iter().map(|b| b.reason.as_deref()).collect();
    let dims_ids = batch
        .iter()
        .map(|b| {
            dims.get(&b.dims)
                .copied()
                .ok_or_else(|| StoreError::Corrupt("dims id missing".into()))
        })
        .collect::<Result<Vec<i32>, _>>()?;
    Ok(c.execute(
        "UPDATE usage u SET cost_nanos = v.c, dims_k = v.d, unpriced_reason = v.r
         FROM unnest($1::uuid[], $2::int8[], $3::int4[], $4::text[]) AS v(id, c, d, r)
         WHERE u.id = v.id",
        &[&ids, &costs, &dims_ids, &reasons],
    )
    .await?)
}
