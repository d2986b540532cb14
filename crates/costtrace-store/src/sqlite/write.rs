//! SQLite writes: batch insert, request start/end, archive, re-pricing.
//! Everything here runs on the writer connection, one transaction per call.

use costtrace_core::{Record, RequestRecord};
use rusqlite::{Connection, OptionalExtension, params};

use super::blocks::{self, BlockRanges};
use super::names::lookup;
use super::{NameIds, Writer};
use crate::common::{self, RawUsage};
use crate::{ArchiveStats, RequestEnd, StoreError};

/// A string of a [`Batch`]: a byte range of its `text`.
#[derive(Clone, Copy)]
struct Text {
    start: u32,
    end: u32,
}

/// A usage record encoded for the `usage` table (strings not yet mapped to
/// `names` ids).
pub(crate) struct UsageRow {
    id: [u8; 16],
    ts: i64,
    /// The dictionary-encoded columns: request, task, doc, entity,
    /// provider, model, service_type, operation, price_version.
    names: [Option<Text>; NAME_COLUMNS],
    cost_nanos: Option<i64>,
    tokens: [Option<i64>; 5],
    env: i16,
    tier: i16,
    partial: bool,
    scope_id: Option<[u8; 16]>,
    duration_ms: Option<f64>,
    units: Option<Text>,
    unpriced_reason: Option<Text>,
    error_message: Option<Text>,
    attrs: Option<Text>,
}

const NAME_COLUMNS: usize = 9;

/// One insert batch, owned so it can move to the writer thread.
///
/// Every string of the usage rows is copied into the one `text` buffer:
/// a batch costs a few allocations instead of about ten per usage record
/// (the allocator was ~15 % of the ingest profile when each string was its
/// own `String`, allocated here and freed on the writer thread).
pub(crate) struct Batch {
    text: String,
    usage: Vec<UsageRow>,
    requests: Vec<RequestRecord>,
    /// (id, started_at, JSON body).
    scopes: Vec<([u8; 16], i64, String)>,
}

impl Batch {
    /// Fails only when the batch's strings pass 4 GiB (split it).
    pub(crate) fn encode(records: &[Record]) -> Result<Batch, StoreError> {
        let mut b = Batch::with_capacity(records.len());
        let mut json = Vec::new();
        for r in records {
            match r {
                Record::Request(q) => b.requests.push(q.clone()),
                r => b.push(r, &mut json)?,
            }
        }
        Ok(b)
    }

    /// [`Batch::encode`] for records the caller gives up: requests move
    /// into the batch instead of being cloned.
    pub(crate) fn encode_owned(records: Vec<Record>) -> Result<Batch, StoreError> {
        let mut b = Batch::with_capacity(records.len());
        let mut json = Vec::new();
        for r in records {
            match r {
                Record::Request(q) => b.requests.push(q),
                r => b.push(&r, &mut json)?,
            }
        }
        Ok(b)
    }

    fn with_capacity(records: usize) -> Batch {
        Batch {
            text: String::new(),
            usage: Vec::with_capacity(records),
            requests: Vec::new(),
            scopes: Vec::new(),
        }
    }

    /// Adds a usage or scope record (`json`: scratch space for JSON).
    fn push(&mut self, r: &Record, json: &mut Vec<u8>) -> Result<(), StoreError> {
        match r {
            Record::Usage(u) => {
                let l = common::links(&u.attrs);
                let names = [
                    l.request_id,
                    l.task_id,
                    l.doc_id,
                    l.entity_id,
                    u.provider.as_deref(),
                    u.model.as_deref(),
                    u.service_type.as_deref(),
                    u.operation.as_deref(),
                    u.price_version.as_deref(),
                ];
                let mut row = UsageRow {
                    id: *u.id.as_bytes(),
                    ts: u.timestamp.as_micros(),
                    names: [None; NAME_COLUMNS],
                    cost_nanos: u.cost_nanos,
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
                    units: None,
                    unpriced_reason: self.opt_text(u.unpriced_reason.as_deref())?,
                    error_message: self.opt_text(u.error_message.as_deref())?,
                    attrs: None,
                };
                for (slot, s) in row.names.iter_mut().zip(names) {
                    *slot = self.opt_text(s)?;
                }
                if !u.units.is_empty() {
                    row.units = self.json_text(json, &u.units)?;
                }
                if let Some(rest) = &l.rest {
                    row.attrs = self.json_text(json, rest)?;
                }
                self.usage.push(row);
            }
            Record::Request(q) => self.requests.push(q.clone()),
            Record::Scope(s) => {
                let body = serde_json::to_string(s).unwrap_or_default();
                self.scopes
                    .push((*s.id.as_bytes(), s.started_at.as_micros(), body));
            }
        }
        Ok(())
    }

    fn push_text(&mut self, s: &str) -> Result<Text, StoreError> {
        let too_big = || StoreError::Invalid("a batch's strings pass 4 GiB: split it".into());
        let start = u32::try_from(self.text.len()).map_err(|_| too_big())?;
        self.text.push_str(s);
        let end = u32::try_from(self.text.len()).map_err(|_| too_big())?;
        Ok(Text { start, end })
    }

    fn opt_text(&mut self, s: Option<&str>) -> Result<Option<Text>, StoreError> {
        s.map(|s| self.push_text(s)).transpose()
    }

    /// `v` as JSON in `text` (`None` if it cannot be serialized, as before).
    fn json_text(
        &mut self,
        scratch: &mut Vec<u8>,
        v: &impl serde::Serialize,
    ) -> Result<Option<Text>, StoreError> {
        scratch.clear();
        if serde_json::to_writer(&mut *scratch, v).is_err() {
            return Ok(None);
        }
        match std::str::from_utf8(scratch) {
            Ok(s) => self.push_text(s).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn get(&self, t: Text) -> &str {
        self.text
            .get(t.start as usize..t.end as usize)
            .unwrap_or("")
    }

    fn opt(&self, t: Option<Text>) -> Option<&str> {
        t.map(|t| self.get(t))
    }
}

/// The `names` id of `s`, inserting it when new.
pub(crate) fn name_id(conn: &Connection, cache: &mut NameIds, s: &str) -> Result<i64, StoreError> {
    if let Some(id) = cache.get(s) {
        return Ok(*id);
    }
    // A name the cache does not know is most often new (request, task and
    // document ids), so insert first: one statement for a new name, two
    // for a stored one the cache has dropped.
    let inserted = conn
        .prepare_cached("INSERT OR IGNORE INTO names (name) VALUES (?1)")?
        .execute([s])?;
    let id = if inserted == 1 {
        conn.last_insert_rowid()
    } else {
        lookup(conn, s)?
            .ok_or_else(|| StoreError::Corrupt(format!("name {s:?} neither inserted nor found")))?
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

const USAGE_COLUMNS: &str = "(id, ts, request_k, task_k, doc_k, entity_k, provider_k, model_k,
    service_k, operation_k, cost_nanos, price_version_k, input_tokens, output_tokens,
    cache_read_tokens, cache_write_tokens, reasoning_tokens, env, tier, partial, scope_id,
    duration_ms, units, unpriced_reason, error_message, attrs)";

/// Parameters of one usage row.
const USAGE_PARAMS: usize = 26;

/// Usage rows per multi-row `INSERT`. Each statement execution opens and
/// closes a cursor on the table and each of its indexes and resets the
/// statement; 32 rows share that work (832 parameters, far below SQLite's
/// limit of 32,766).
const ROWS_PER_INSERT: usize = 32;

/// `INSERT OR IGNORE INTO {table} (…) VALUES (?, …)` for `rows` rows.
fn usage_insert_sql(table: &str, rows: usize) -> String {
    let one = format!("({})", vec!["?"; USAGE_PARAMS].join(", "));
    format!(
        "INSERT OR IGNORE INTO {table} {USAGE_COLUMNS} VALUES {}",
        vec![one; rows].join(", ")
    )
}

/// Binds usage row `u` (with its `names` ids `k`) to the parameters of
/// `st` that start at `at` (1-based).
fn bind_usage(
    st: &mut rusqlite::Statement<'_>,
    at: usize,
    b: &Batch,
    u: &UsageRow,
    k: &[Option<i64>; NAME_COLUMNS],
) -> rusqlite::Result<()> {
    st.raw_bind_parameter(at, &u.id[..])?;
    st.raw_bind_parameter(at + 1, u.ts)?;
    for (i, key) in k[..8].iter().enumerate() {
        st.raw_bind_parameter(at + 2 + i, key)?;
    }
    st.raw_bind_parameter(at + 10, u.cost_nanos)?;
    st.raw_bind_parameter(at + 11, k[8])?;
    for (i, n) in u.tokens.iter().enumerate() {
        st.raw_bind_parameter(at + 12 + i, n)?;
    }
    st.raw_bind_parameter(at + 17, u.env)?;
    st.raw_bind_parameter(at + 18, u.tier)?;
    st.raw_bind_parameter(at + 19, u.partial)?;
    st.raw_bind_parameter(at + 20, u.scope_id.as_ref().map(|s| &s[..]))?;
    st.raw_bind_parameter(at + 21, u.duration_ms)?;
    st.raw_bind_parameter(at + 22, b.opt(u.units))?;
    st.raw_bind_parameter(at + 23, b.opt(u.unpriced_reason))?;
    st.raw_bind_parameter(at + 24, b.opt(u.error_message))?;
    st.raw_bind_parameter(at + 25, b.opt(u.attrs))?;
    Ok(())
}

/// Usage rows waiting for a multi-row insert into the hot table.
struct HotRows<'b, 'c> {
    rows: Vec<(&'b UsageRow, [Option<i64>; NAME_COLUMNS])>,
    /// `ROWS_PER_INSERT` rows per execution.
    many: rusqlite::CachedStatement<'c>,
    /// One row per execution, for a batch's last few rows.
    one: rusqlite::CachedStatement<'c>,
    /// The largest `usage.seq` before these rows.
    max_seq: i64,
}

impl HotRows<'_, '_> {
    /// Inserts the waiting rows (`ROWS_PER_INSERT` at a time, fewer one by
    /// one), notes their blocks and returns how many were new.
    fn flush(
        &mut self,
        tx: &Connection,
        b: &Batch,
        ranges: &mut BlockRanges,
    ) -> Result<u64, StoreError> {
        let mut new = 0;
        if self.rows.len() < ROWS_PER_INSERT {
            for (u, k) in &self.rows {
                bind_usage(&mut self.one, 1, b, u, k)?;
                let n = self.one.raw_execute()? as u64;
                if n > 0 {
                    let seq = tx.last_insert_rowid();
                    ranges.note(seq, u.ts);
                    self.max_seq = self.max_seq.max(seq);
                }
                new += n;
            }
            self.rows.clear();
            return Ok(new);
        }
        for (i, (u, k)) in self.rows.iter().enumerate() {
            bind_usage(&mut self.many, 1 + i * USAGE_PARAMS, b, u, k)?;
        }
        let n = self.many.raw_execute()? as u64;
        if n > 0 {
            // Without conflicts the rows took the rowids after the largest
            // one, in order (SQLite's new rowid is max + 1). With a
            // duplicate among them, or if rowids ever stopped being max + 1,
            // each row's place is looked up by id instead.
            let last = tx.last_insert_rowid();
            if n == self.rows.len() as u64 && self.max_seq.checked_add(n as i64) == Some(last) {
                for (i, (u, _)) in self.rows.iter().enumerate() {
                    ranges.note(self.max_seq + 1 + i as i64, u.ts);
                }
                self.max_seq = last;
            } else {
                let mut find = tx.prepare_cached("SELECT seq, ts FROM usage WHERE id = ?1")?;
                for (u, _) in &self.rows {
                    if let Some((seq, ts)) = find
                        .query_row([&u.id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?
                    {
                        ranges.note(seq, ts);
                    }
                }
                self.max_seq = max_usage_seq(tx)?;
            }
        }
        self.rows.clear();
        Ok(n)
    }
}

fn max_usage_seq(tx: &Connection) -> Result<i64, StoreError> {
    Ok(tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM usage")?
        .query_row([], |r| r.get(0))?)
}

pub(crate) fn insert_batch(w: &mut Writer, b: &Batch) -> Result<u64, StoreError> {
    let Writer {
        conn,
        names,
        archived_before,
    } = w;
    let tx = conn.transaction()?;
    let mut new = 0u64;
    let mut ranges = BlockRanges::default();
    {
        let mut hot = HotRows {
            rows: Vec::with_capacity(ROWS_PER_INSERT),
            many: tx.prepare_cached(&usage_insert_sql("usage", ROWS_PER_INSERT))?,
            one: tx.prepare_cached(&usage_insert_sql("usage", 1))?,
            max_seq: max_usage_seq(&tx)?,
        };
        // Consecutive records mostly share their request, task, document
        // and tenant: the last name seen in each column is checked before
        // the cache.
        let mut last: [Option<(&str, i64)>; NAME_COLUMNS] = [None; NAME_COLUMNS];
        for u in &b.usage {
            let mut k = [None; NAME_COLUMNS];
            for ((slot, t), seen) in k.iter_mut().zip(u.names).zip(&mut last) {
                let Some(s) = b.opt(t) else { continue };
                let id = match seen {
                    Some((prev, id)) if *prev == s => *id,
                    _ => name_id(&tx, names, s)?,
                };
                *seen = Some((s, id));
                *slot = Some(id);
            }
            if u.ts < *archived_before {
                let mut st = tx.prepare_cached(&usage_insert_sql("usage_archive", 1))?;
                bind_usage(&mut st, 1, b, u, &k)?;
                new += st.raw_execute()? as u64;
            } else {
                hot.rows.push((u, k));
                if hot.rows.len() == ROWS_PER_INSERT {
                    new += hot.flush(&tx, b, &mut ranges)?;
                }
            }
        }
        new += hot.flush(&tx, b, &mut ranges)?;
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
/// still empty (unless the two name different tenants: one tenant never
/// changes another's request). Returns whether it was new.
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
             WHERE request_k = ?1 AND (entity_k IS NULL OR ?5 IS NULL OR entity_k = ?5)"
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
    let Some(key) = lookup(&tx, id)? else {
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
