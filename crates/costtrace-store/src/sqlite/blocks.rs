//! The block range summary of `usage.ts` (migration 4): for each block of
//! 4,096 consecutive usage rowids, the smallest and largest `ts` stored in
//! it. Time-range reads that are not scoped to a tenant visit the rowid
//! ranges of the overlapping blocks instead of a `ts` index.

use rusqlite::{Connection, params};

use crate::StoreError;

/// `block = seq >> BLOCK_SHIFT`.
pub(crate) const BLOCK_SHIFT: u32 = 12;

/// The usage rows of the blocks that overlap `[?1, ?2)`, restricted to that
/// range, as a `FROM` clause: `b` is the block, `u` the usage row. `CROSS
/// JOIN` keeps the blocks as the outer loop (each one a rowid range seek).
pub(crate) const USAGE_IN_RANGE: &str = "usage_blocks b CROSS JOIN usage u
    ON u.seq BETWEEN (b.block << 12) AND (b.block << 12) + 4095
    WHERE b.max_ts >= ?1 AND b.min_ts < ?2 AND u.ts >= ?1 AND u.ts < ?2";

/// Ranges of the blocks written by one transaction, merged into
/// `usage_blocks` before it commits.
#[derive(Default)]
pub(crate) struct BlockRanges {
    /// (block, min_ts, max_ts); a batch touches one to a few blocks.
    touched: Vec<(i64, i64, i64)>,
}

impl BlockRanges {
    /// Notes that usage row `seq` with `ts` was inserted.
    pub(crate) fn note(&mut self, seq: i64, ts: i64) {
        let block = seq >> BLOCK_SHIFT;
        match self.touched.iter_mut().find(|(b, _, _)| *b == block) {
            Some((_, lo, hi)) => {
                *lo = (*lo).min(ts);
                *hi = (*hi).max(ts);
            }
            None => self.touched.push((block, ts, ts)),
        }
    }

    /// Widens the stored ranges to cover what was noted.
    pub(crate) fn save(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut st = conn.prepare_cached(
            "INSERT INTO usage_blocks (block, min_ts, max_ts) VALUES (?1, ?2, ?3)
             ON CONFLICT (block) DO UPDATE SET min_ts = MIN(min_ts, excluded.min_ts),
                 max_ts = MAX(max_ts, excluded.max_ts)",
        )?;
        for (block, lo, hi) in &self.touched {
            st.execute(params![block, lo, hi])?;
        }
        Ok(())
    }
}

/// Moves usage older than `cutoff` to `usage_archive`; returns how many
/// rows left the hot table. Blocks left empty are dropped and the others'
/// lower bounds recomputed, so later reads skip what was archived.
pub(crate) fn archive_usage(conn: &Connection, cutoff: i64) -> Result<u64, StoreError> {
    let old = format!("SELECT u.seq FROM {USAGE_IN_RANGE}");
    let range = params![i64::MIN, cutoff];
    conn.execute(
        &format!("INSERT OR IGNORE INTO usage_archive SELECT * FROM usage WHERE seq IN ({old})"),
        range,
    )?;
    let moved = conn.execute(&format!("DELETE FROM usage WHERE seq IN ({old})"), range)?;
    let span = "seq BETWEEN (b.block << 12) AND (b.block << 12) + 4095";
    conn.execute(
        &format!(
            "DELETE FROM usage_blocks AS b WHERE b.min_ts < ?1
             AND NOT EXISTS (SELECT 1 FROM usage WHERE {span})"
        ),
        params![cutoff],
    )?;
    conn.execute(
        &format!(
            "UPDATE usage_blocks AS b SET min_ts = (SELECT MIN(ts) FROM usage WHERE {span})
             WHERE b.min_ts < ?1"
        ),
        params![cutoff],
    )?;
    Ok(moved as u64)
}
