//! SQLite writes: batch insert, request start/end, archive, re-pricing.
//! Everything here runs on the writer connection, one transaction per call.

use std::borrow::Cow;

use costtrace_core::{Record, RequestRecord};
use rusqlite::{Connection, OptionalExtension, params};

use super::blocks::{self, BlockRanges};
use super::{NameIds, Writer};
use crate::common::{self, RawUsage};
use crate::{ArchiveStats, RequestEnd, StoreError};

/// A usage record encoded for the `usage` table (strings not yet mapped to
/// `names` ids). `S` is `String` when the batch must own its data and
/// `&str` when it can borrow the records.
pub(crate) struct UsageRow<S> {
    id: [u8; 16],
    ts: i64,
    links: [Option<S>; 4],
    /// provider, model, service_type, operation.
    dims: [Option<S>; 4],
    cost_nanos: Option<i64>,
    price_version: Option<S>,
    tokens: [Option<i64>; 5],
    env: i16,
    tier: i16,
    partial: bool,
    scope_id: Option<[u8; 16]>,
    duration_ms: Option<f64>,
    units: Option<String>,
    unpriced_reason: Option<S>,
    error_message: Option<S>,
    attrs: Option<String>,
}

/// One insert batch: owned (`Batch<'static, String>`) to move to the writer
/// thread, or borrowing records that were moved there.
pub(crate) struct Batch<'a, S> {
    usage: Vec<UsageRow<S>>,
    requests: Vec<Cow<'a, RequestRecord>>,
    /// (id, started_at, JSON body).
    scopes: Vec<([u8; 16], i64, String)>,
}

impl<'a, S: AsRef<str>> Batch<'a, S> {
    /// `text` makes a row's string (copy or borrow), `request` a request's.
    pub(crate) fn encode<'r>(
        records: &'r [Record],
        text: impl Fn(&'r str) -> S,
        request: impl Fn(&'r RequestRecord) -> Cow<'a, RequestRecord>,
    ) -> Batch<'a, S> {
        let mut b = Batch {
            usage: Vec::with_capacity(records.len()),
            requests: Vec::new(),
            scopes: Vec::new(),
        };
        let opt = |s: Option<&'r str>| s.map(&text);
        for r in records {
            match r {
                Record::Usage(u) => {
                    let l = common::links(&u.attrs);
                    b.usage.push(UsageRow {
                        id: *u.id.as_bytes(),
                        ts: u.timestamp.as_micros(),
                        links: [
                            opt(l.request_id),
                            opt(l.task_id),
                            opt(l.doc_id),
                            opt(l.entity_id),
                        ],
                        dims: [
                            opt(u.provider.as_deref()),
                            opt(u.model.as_deref()),
                            opt(u.service_type.as_deref()),
                            opt(u.operation.as_deref()),
                        ],
                        cost_nanos: u.cost_nanos,
                        price_version: opt(u.price_version.as_deref()),
                        tokens: [
                            common::count(u.input_tokens),
                            common::count(u.output_tokens),
                            common::count(u.cache_read_tokens),
                            common::count(u.cache_write_tokens),
                            common::count(u.reasoning_tokens),
                        ],
                        env: common::env_code(u.environment),
                        tier: common::tier_code(u.pricing_tier),
                        partial: u.partial,
                        scope_id: u.scope_id.map(|s| *s.as_bytes()),
                        duration_ms: u.duration_ms,
                        units: common::units_json(&u.units),
                        unpriced_reason: opt(u.unpriced_reason.as_deref()),
                        error_message: opt(u.error_message.as_deref()),
                        attrs: l.rest.and_then(|m| serde_json::to_string(&m).ok()),
                    });
                }
                Record::Request(q) => b.requests.push(request(q)),
                Record::Scope(s) => {
                    let body = serde_json::to_string(s).unwrap_or_default();
                    b.scopes
                        .push((*s.id.as_bytes(), s.started_at.as_micros(), body));
                }
            }
        }
        b
    }
}

/// The `names` id of `s`, inserting it when new.
pub(crate) fn name_id(conn: &Connection, cache: &mut NameIds, s: &str) -> Result<i64, StoreError> {
    if let Some(id) = cache.get(s) {
        return Ok(*id);
    }
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM names WHERE name = ?1")?
        .query_row([s], |r| r.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => {
            conn.prepare_cached("INSERT INTO names (name) VALUES (?1)")?
                .execute([s])?;
            conn.last_insert_rowid()
        }
    };
    cache.insert(s.to_owned(), id);
    Ok(id)
}

fn opt_name(
    conn: &Connection,
    cache: &mut NameIds,
    s: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    s.map(|s| name_id(conn, cache, s)).transpose()
}

const USAGE_INSERT: &str = "(id, ts, request_k, task_k, doc_k, entity_k, provider_k, model_k,
    service_k, operation_k, cost_nanos, price_version_k, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, reasoning_tokens, env, tier, partial, scope_id,
    duration_ms, units, unpriced_reason, error_message, attrs)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
    ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

pub(crate) fn insert_batch<S: AsRef<str>>(
    w: &mut Writer,
    b: &Batch<'_, S>,
) -> Result<u64, StoreError> {
    let Writer {
        conn,
        names,
        archived_before,
    } = w;
    let tx = conn.transaction()?;
    let mut new = 0u64;
    let mut ranges = BlockRanges::default();
    {
        let hot_sql = format!("INSERT OR IGNORE INTO usage {USAGE_INSERT}");
        let cold_sql = format!("INSERT OR IGNORE INTO usage_archive {USAGE_INSERT}");
        let mut hot = tx.prepare_cached(&hot_sql)?;
        for u in &b.usage {
            let mut k = [None; 8];
            for (slot, s) in k.iter_mut().zip(u.links.iter().chain(&u.dims)) {
                *slot = opt_name(&tx, names, s.as_ref().map(AsRef::as_ref))?;
            }
            let pv = opt_name(&tx, names, u.price_version.as_ref().map(AsRef::as_ref))?;
            let p = params![
                &u.id[..],
                u.ts,
                k[0],
                k[1],
                k[2],
                k[3],
                k[4],
                k[5],
                k[6],
                k[7],
                u.cost_nanos,
                pv,
                u.tokens[0],
                u.tokens[1],
                u.tokens[2],
                u.tokens[3],
                u.tokens[4],
                u.env,
                u.tier,
                u.partial,
                u.scope_id.as_ref().map(|s| &s[..]),
                u.duration_ms,
                u.units,
                u.unpriced_reason.as_ref().map(AsRef::as_ref),
                u.error_message.as_ref().map(AsRef::as_ref),
                u.attrs,
            ];
            let n = if u.ts < *archived_before {
                tx.prepare_cached(&cold_sql)?.execute(p)?
            } else {
                let n = hot.execute(p)?;
                if n > 0 {
                    ranges.note(tx.last_insert_rowid(), u.ts);
                }
                n
            };
            new += n as u64;
        }
        for (id, started, body) in &b.scopes {
            let table = if *started < *archived_before {
                "scopes_archive"
            } else {
                "scopes"
            };
            let sql =
                format!("INSERT OR IGNORE INTO {table} (id, started_at, body) VALUES (?1, ?2, ?3)");
            new += tx
                .prepare_cached(&sql)?
                .execute(params![&id[..], started, body])? as u64;
        }
        for r in &b.requests {
            if upsert_request(&tx, names, r, *archived_before)? {
                new += 1;
            }
        }
    }
    ranges.save(&tx)?;
    tx.commit()?;
    Ok(new)
}

/// Inserts a request or fills in the fields of an existing one that are
/// still empty. Returns whether it was new.
fn upsert_request(
    conn: &Connection,
    names: &mut NameIds,
    r: &RequestRecord,
    archived_before: i64,
) -> Result<bool, StoreError> {
    let key = name_id(conn, names, &r.request_id)?;
    let ts = r.timestamp.as_micros();
    let table = if ts < archived_before {
        "requests_archive"
    } else {
        "requests"
    };
    let exists: bool = conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM {table} WHERE request_k = ?1)"
        ))?
        .query_row([key], |row| row.get(0))?;
    let rev = next_request_rev(conn)?;
    let task = opt_name(conn, names, r.task_id.as_deref())?;
    let doc = opt_name(conn, names, r.doc_id.as_deref())?;
    let entity = opt_name(conn, names, r.entity_id.as_deref())?;
    let op = opt_name(conn, names, r.operation_type.as_deref())?;
    let task_type = opt_name(conn, names, r.task_type.as_deref())?;
    let p = params![
        key,
        ts,
        task,
        doc,
        entity,
        op,
        task_type,
        r.status_code,
        r.processing_time_ms,
        common::env_code(r.environment),
        r.endpoint,
        r.method,
        r.error_message,
        rev,
    ];
    if exists {
        conn.prepare_cached(&format!(
            "UPDATE {table} SET task_k = COALESCE(task_k, ?3), doc_k = COALESCE(doc_k, ?4),
             entity_k = COALESCE(entity_k, ?5), operation_k = COALESCE(operation_k, ?6),
             task_type_k = COALESCE(task_type_k, ?7), status_code = COALESCE(?8, status_code),
             processing_time_ms = COALESCE(?9, processing_time_ms), env = ?10,
             endpoint = COALESCE(endpoint, ?11), method = COALESCE(method, ?12),
             error_message = COALESCE(?13, error_message), ts = MIN(ts, ?2), rev = ?14
             WHERE request_k = ?1"
        ))?
        .execute(p)?;
    } else {
        conn.prepare_cached(&format!(
            "INSERT INTO {table} (request_k, ts, task_k, doc_k, entity_k, operation_k, task_type_k,
             status_code, processing_time_ms, env, endpoint, method, error_message, rev)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))?
        .execute(p)?;
    }
    Ok(!exists)
}

/// The next request revision (see migration 2): requests are followed by
/// the revision of their last write.
fn next_request_rev(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE meta SET value = value + 1 WHERE key = 'request_rev' RETURNING value",
        )?
        .query_row([], |r| r.get(0))?)
}

pub(crate) fn start_request(w: &mut Writer, r: &RequestRecord) -> Result<(), StoreError> {
    let Writer { conn, names, .. } = w;
    let tx = conn.transaction()?;
    // Live requests always go to the hot table.
    upsert_request(&tx, names, r, i64::MIN)?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn end_request(w: &mut Writer, id: &str, end: &RequestEnd) -> Result<(), StoreError> {
    let Writer { conn, names, .. } = w;
    let tx = conn.transaction()?;
    let key: Option<i64> = tx
        .prepare_cached("SELECT id FROM names WHERE name = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    let Some(key) = key else {
        return Err(StoreError::UnknownRequest(id.to_owned()));
    };
    let doc = opt_name(&tx, names, end.doc_id.as_deref())?;
    let rev = next_request_rev(&tx)?;
    let n = tx
        .prepare_cached(
            "UPDATE requests SET status_code = COALESCE(?2, status_code),
             processing_time_ms = COALESCE(?3, processing_time_ms),
             error_message = COALESCE(?4, error_message), doc_k = COALESCE(?5, doc_k),
             rev = ?6
             WHERE request_k = ?1",
        )?
        .execute(params![
            key,
            end.status_code,
            end.processing_time_ms,
            end.error_message,
            doc,
            rev
        ])?;
    if n == 0 {
        return Err(StoreError::UnknownRequest(id.to_owned()));
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn archive_before(w: &mut Writer, cutoff: i64) -> Result<ArchiveStats, StoreError> {
    let tx = w.conn.transaction()?;
    let mut moved = [0u64; 3];
    moved[1] = blocks::archive_usage(&tx, cutoff)?;
    for ((table, col), i) in [("requests", "ts"), ("scopes", "started_at")]
        .into_iter()
        .zip([0, 2])
    {
        tx.execute(
            &format!(
                "INSERT OR IGNORE INTO {table}_archive SELECT * FROM {table} WHERE {col} < ?1"
            ),
            [cutoff],
        )?;
        moved[i] = tx.execute(&format!("DELETE FROM {table} WHERE {col} < ?1"), [cutoff])? as u64;
    }
    let watermark = cutoff.max(w.archived_before);
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('archived_before', ?1)",
        [watermark],
    )?;
    tx.commit()?;
    w.archived_before = watermark;
    Ok(ArchiveStats {
        requests: moved[0],
        usage: moved[1],
        scopes: moved[2],
    })
}

/// One stored usage's pricing state, for re-pricing.
pub(crate) struct PricedRow {
    pub seq: i64,
    pub raw: RawUsage,
    pub cost_nanos: Option<i64>,
    pub price_version: Option<String>,
    pub unpriced_reason: Option<String>,
}

/// The usage in `[from, to)` of the first block (see `blocks`) past rowid
/// `after` that overlaps that range, in rowid order, and the last rowid of
/// that block (where the next chunk starts); `None` when no block is left.
pub(crate) fn reprice_chunk(
    conn: &Connection,
    after: i64,
    from: i64,
    to: i64,
) -> Result<Option<(Vec<PricedRow>, i64)>, StoreError> {
    let block: Option<i64> = conn
        .prepare_cached(
            "SELECT block FROM usage_blocks WHERE block >= ?1 AND max_ts >= ?2 AND min_ts < ?3
             ORDER BY block LIMIT 1",
        )?
        .query_row(params![(after + 1) >> blocks::BLOCK_SHIFT, from, to], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(block) = block else {
        return Ok(None);
    };
    let last = ((block + 1) << blocks::BLOCK_SHIFT) - 1;
    let mut st = conn.prepare_cached(
        "SELECT u.seq, u.ts, p.name, m.name, s.name, u.tier, u.input_tokens, u.output_tokens,
                u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens, u.units,
                u.cost_nanos, v.name, u.unpriced_reason
         FROM usage u
         LEFT JOIN names p ON p.id = u.provider_k
         LEFT JOIN names m ON m.id = u.model_k
         LEFT JOIN names s ON s.id = u.service_k
         LEFT JOIN names v ON v.id = u.price_version_k
         WHERE u.seq > ?1 AND u.seq <= ?2 AND u.ts >= ?3 AND u.ts < ?4
         ORDER BY u.seq",
    )?;
    let rows = st.query_map(params![after, last, from, to], |r| {
        Ok(PricedRow {
            seq: r.get(0)?,
            raw: RawUsage {
                provider: r.get(2)?,
                model: r.get(3)?,
                service_type: r.get(4)?,
                tier: r.get(5)?,
                ts: r.get(1)?,
                tokens: [r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
                units: r.get(11)?,
            },
            cost_nanos: r.get(12)?,
            price_version: r.get(13)?,
            unpriced_reason: r.get(14)?,
        })
    })?;
    Ok(Some((rows.collect::<Result<_, _>>()?, last)))
}

/// New pricing: (seq, cost_nanos, price_version, unpriced_reason).
pub(crate) type Repriced = (i64, Option<i64>, Option<String>, Option<String>);

pub(crate) fn apply_reprice(w: &mut Writer, updates: &[Repriced]) -> Result<u64, StoreError> {
    let Writer { conn, names, .. } = w;
    let tx = conn.transaction()?;
    {
        let mut st = tx.prepare_cached(
            "UPDATE usage SET cost_nanos = ?2, price_version_k = ?3, unpriced_reason = ?4
             WHERE seq = ?1",
        )?;
        for (seq, cost, version, reason) in updates {
            let v = opt_name(&tx, names, version.as_deref())?;
            st.execute(params![seq, cost, v, reason])?;
        }
    }
    tx.commit()?;
    Ok(updates.len() as u64)
}
