//! Following the SQLite store: usage by rowid, requests by revision (see
//! `crate::cursor` for why both are in commit order here).

use costtrace_core::Record;
use rusqlite::{Connection, params};

use super::names::Reader;
use super::read::{REQUEST_SELECT, request_row};
use crate::StoreError;
use crate::cursor::{RecordCursor, UsageRow, request_record};

pub(crate) fn cursor_end(c: &Connection) -> Result<RecordCursor, StoreError> {
    let a: i64 = c.query_row("SELECT COALESCE(MAX(seq), 0) FROM usage", [], |r| r.get(0))?;
    let b: i64 = c.query_row(
        "SELECT value FROM meta WHERE key = 'request_rev'",
        [],
        |r| r.get(0),
    )?;
    Ok(RecordCursor { a, b, c: 0 })
}

pub(crate) fn records_after(
    c: &Reader<'_>,
    cursor: RecordCursor,
    limit: i64,
) -> Result<(Vec<Record>, RecordCursor), StoreError> {
    let mut next = cursor;
    let mut out = Vec::new();
    let mut st = c.prepare_cached(
        "SELECT u.seq, u.id, u.ts, rq.name, t.name, d.name, e.name, p.name, m.name, s.name,
                o.name, u.cost_nanos, v.name, u.input_tokens, u.output_tokens,
                u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens, u.env, u.tier,
                u.partial, u.scope_id, u.duration_ms, u.units, u.unpriced_reason,
                u.error_message, u.attrs
         FROM usage u
         LEFT JOIN names rq ON rq.id = u.request_k
         LEFT JOIN names t ON t.id = u.task_k
         LEFT JOIN names d ON d.id = u.doc_k
         LEFT JOIN names e ON e.id = u.entity_k
         LEFT JOIN names p ON p.id = u.provider_k
         LEFT JOIN names m ON m.id = u.model_k
         LEFT JOIN names s ON s.id = u.service_k
         LEFT JOIN names o ON o.id = u.operation_k
         LEFT JOIN names v ON v.id = u.price_version_k
         WHERE u.seq > ?1 ORDER BY u.seq LIMIT ?2",
    )?;
    let rows = st.query_map(params![cursor.a, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            UsageRow {
                id: r.get(1)?,
                ts: r.get(2)?,
                links: [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
                dims: [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
                cost_nanos: r.get(11)?,
                price_version: r.get(12)?,
                tokens: [r.get(13)?, r.get(14)?, r.get(15)?, r.get(16)?, r.get(17)?],
                env: r.get(18)?,
                tier: r.get(19)?,
                partial: r.get(20)?,
                scope_id: r.get(21)?,
                duration_ms: r.get(22)?,
                units: r.get(23)?,
                unpriced_reason: r.get(24)?,
                error_message: r.get(25)?,
                attrs: r.get(26)?,
            },
        ))
    })?;
    for row in rows {
        let (seq, u) = row?;
        next.a = seq;
        out.push(Record::Usage(u.into_record()?));
    }
    let sql = format!("{REQUEST_SELECT} WHERE r.rev > ?1 ORDER BY r.rev LIMIT ?2");
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params![cursor.b, limit], |r| {
        let (_, view) = request_row(c, r)?;
        Ok((r.get::<_, i64>(14)?, request_record(view, r.get(13)?)))
    })?;
    for row in rows {
        let (rev, q) = row?;
        next.b = rev;
        out.push(Record::Request(q));
    }
    Ok((out, next))
}
