//! Following the PostgreSQL store by `(ingest_xid, part, key)`, only over
//! transactions older than every running one (see `crate::cursor`).

use costtrace_core::Record;

use super::PgStore;
use super::read::{REQUEST_SELECT, request_row};
use crate::StoreError;
use crate::cursor::{RecordCursor, UsageRow, request_record};

/// Rows of finished transactions only: nothing can commit behind them.
const SETTLED: &str = "ingest_xid < pg_snapshot_xmin(pg_current_snapshot())";

fn xid(text: &str) -> Result<i64, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("transaction id {text:?}: {e}")))
}

pub(crate) async fn cursor_end(store: &PgStore) -> Result<RecordCursor, StoreError> {
    let c = store.conn().await?;
    let row = c
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await?;
    // Every transaction before the oldest running one is done: past them.
    Ok(RecordCursor {
        a: xid(row.get(0))? - 1,
        b: i64::MAX,
        c: u128::MAX,
    })
}

pub(crate) async fn records_after(
    store: &PgStore,
    cursor: RecordCursor,
    limit: i64,
) -> Result<(Vec<Record>, RecordCursor), StoreError> {
    let mut conn = store.conn().await?;
    // Both reads in one snapshot: read one by one, the usage read could miss
    // a transaction that committed just before the requests read saw it,
    // and the cursor would then move past that transaction's usage.
    let c = conn
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let from = cursor.a.to_string();
    // Within transaction `a`: usage after record id `c` while in part 0,
    // none after; requests all while in part 0, after seq `c` in part 1.
    let (usage_after, seq_after) = match cursor.b {
        0 => (uuid::Uuid::from_u128(cursor.c), i64::MIN),
        _ => (
            uuid::Uuid::max(),
            i64::try_from(cursor.c).unwrap_or(i64::MAX),
        ),
    };
    // The page is cut from `usage` alone (index on `ingest_xid`, rows of one
    // transaction sorted by record id), then its names are joined in.
    let usage = c
        .query(
            &format!(
                "SELECT u.ingest_xid::text, 0::int8, u.id, u.ts, NULLIF(l.request_id, ''),
                        NULLIF(l.task_id, ''), NULLIF(l.doc_id, ''), NULLIF(l.entity_id, ''),
                        pn.name, mn.name, sn.name, opn.name, u.cost_nanos, vn.name,
                        u.input_tokens, u.output_tokens, u.cache_read_tokens,
                        u.cache_write_tokens, u.reasoning_tokens, d.env, d.tier, d.partial,
                        u.scope_id, u.duration_ms, u.units::text, u.unpriced_reason,
                        u.error_message, u.attrs::text
                 FROM (SELECT * FROM usage
                       WHERE ingest_xid >= $1::text::xid8
                         AND (ingest_xid > $1::text::xid8 OR id > $2) AND {SETTLED}
                       ORDER BY ingest_xid, id LIMIT $3) u
                 JOIN dims d ON d.id = u.dims_k
                 LEFT JOIN links l ON l.id = u.link_k
                 LEFT JOIN names pn ON pn.id = d.provider_k
                 LEFT JOIN names mn ON mn.id = d.model_k
                 LEFT JOIN names sn ON sn.id = d.service_k
                 LEFT JOIN names opn ON opn.id = d.operation_k
                 LEFT JOIN names vn ON vn.id = d.price_version_k
                 ORDER BY u.ingest_xid, u.id"
            ),
            &[&from, &usage_after, &limit],
        )
        .await?;
    let requests = c
        .query(
            &format!(
                "{REQUEST_SELECT} WHERE (ingest_xid, ingest_seq) > ($1::text::xid8, $2)
                 AND {SETTLED} ORDER BY ingest_xid, ingest_seq LIMIT $3"
            ),
            &[&from, &seq_after, &limit],
        )
        .await?;
    c.commit().await?;
    // Both kinds share one cursor: merge by position, and when a kind was
    // cut at `limit`, stop at its last row so nothing after it is skipped.
    // Position: (transaction, part, key), see `crate::cursor`.
    let mut items: Vec<((i64, i64, u128), Record)> = Vec::new();
    let mut stop: Option<(i64, i64, u128)> = None;
    let full = |n: usize| i64::try_from(n).unwrap_or(i64::MAX) >= limit;
    for r in &usage {
        let pos = (xid(r.get(0))?, 0, r.get::<_, uuid::Uuid>(2).as_u128());
        let u = UsageRow {
            id: r.get::<_, uuid::Uuid>(2).as_bytes().to_vec(),
            ts: r.get(3),
            links: [r.get(4), r.get(5), r.get(6), r.get(7)],
            dims: [r.get(8), r.get(9), r.get(10), r.get(11)],
            cost_nanos: r.get(12),
            price_version: r.get(13),
            tokens: [r.get(14), r.get(15), r.get(16), r.get(17), r.get(18)],
            env: i64::from(r.get::<_, i16>(19)),
            tier: i64::from(r.get::<_, i16>(20)),
            partial: r.get(21),
            scope_id: r
                .get::<_, Option<uuid::Uuid>>(22)
                .map(|s| s.as_bytes().to_vec()),
            duration_ms: r.get(23),
            units: r.get(24),
            unpriced_reason: r.get(25),
            error_message: r.get(26),
            attrs: r.get(27),
        };
        items.push((pos, Record::Usage(u.into_record()?)));
    }
    if full(usage.len())
        && let Some((pos, _)) = items.last()
    {
        stop = Some(*pos);
    }
    let before_requests = items.len();
    for r in &requests {
        let seq: i64 = r.get(14);
        let pos = (xid(r.get(13))?, 1, u128::try_from(seq).unwrap_or(0));
        let env = i64::from(r.get::<_, i16>(12));
        items.push((pos, Record::Request(request_record(request_row(r), env))));
    }
    if full(requests.len())
        && let Some((pos, _)) = items.last()
        && items.len() > before_requests
    {
        stop = Some(stop.map_or(*pos, |s| s.min(*pos)));
    }
    items.sort_by_key(|(pos, _)| *pos);
    if let Some(stop) = stop {
        items.retain(|(pos, _)| *pos <= stop);
    }
    let next = items.last().map_or(cursor, |((a, b, c), _)| RecordCursor {
        a: *a,
        b: *b,
        c: *c,
    });
    Ok((items.into_iter().map(|(_, r)| r).collect(), next))
}
