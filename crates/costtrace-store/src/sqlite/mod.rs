//! SQLite backend: rusqlite, WAL, `synchronous=NORMAL`.
//!
//! One writer connection behind a mutex (all writes run on blocking threads,
//! one transaction per batch, cached prepared statements, `INSERT OR IGNORE`
//! by id) and a few read connections that WAL lets run beside the writer.
//! A `:memory:` database has a single connection for both.

mod blocks;
mod checkpoint;
mod names;
mod read;
mod tail;
mod write;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use costtrace_core::{Record, RequestRecord, Timestamp};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::common::{self, lock};
use crate::{
    ApiKeyInfo, ArchiveStats, CostView, GroupBy, Page, RecordCursor, RequestEnd, RequestFilter,
    RequestView, Store, StoreError, SummaryRow, TenantScope,
};

/// Versioned migrations; `PRAGMA user_version` records the applied one.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/001_init.sql")),
    (2, include_str!("migrations/002_ingest_order.sql")),
    (3, include_str!("migrations/003_entity_task_type.sql")),
    (4, include_str!("migrations/004_usage_blocks.sql")),
];

/// Most read connections open at once. Reads beyond this wait (without
/// holding a thread) for a connection to come back: opening a connection per
/// read under load costs far more than the wait (schema parse, cold page
/// cache, no prepared statements).
const MAX_READERS: usize = 4;

/// Entries of the writer's `names` cache before it is cleared.
const NAMES_CACHE_LIMIT: usize = 500_000;

/// How long a read may take, which decides where it runs.
///
/// Handing a read to tokio's blocking pool costs two thread wake-ups — about
/// 40 µs of CPU per request in the server benchmark, twice the read itself —
/// so reads that use an index to a handful of rows (one request, one task's
/// or document's usage, one key) run on the calling thread. Reads that may
/// scan (an entity's whole history, summaries, unfiltered lists, the tail)
/// go to the blocking pool so they never stall other requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadCost {
    /// An indexed lookup of a few rows: runs in place.
    Point,
    /// May touch many rows: runs on a blocking thread.
    Scan,
}

/// A SQLite-backed [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// WAL checkpoints off the writer's path (`None` for `:memory:`).
    /// First, so its connection closes before the writer's.
    _checkpointer: Option<checkpoint::Checkpointer>,
    path: String,
    memory: bool,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per read connection.
    read_permits: Arc<tokio::sync::Semaphore>,
    /// id → name of the dimension columns, shared by the readers.
    names: names::NameCache,
}

/// name → `names` id, as the writer caches them. foldhash: every usage
/// record looks up about nine names here, and SipHash showed in profiles.
pub(crate) type NameIds = HashMap<String, i64, foldhash::fast::RandomState>;

/// The writer connection and what it caches.
pub(crate) struct Writer {
    pub conn: Connection,
    /// `names` rows seen by this writer (cleared on a failed transaction).
    pub names: NameIds,
    /// Records older than this go straight to the archive tables.
    pub archived_before: i64,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn configure(conn: &Connection, writer: bool) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -32_000)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if writer {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    } else {
        // Readers map the file: page reads without a copy or a syscall each.
        conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    // Plans that do not depend on bound values. Without this, SQLite (3.54)
    // marks statements with ORDER BY / GROUP BY / joins on `col = ?` as
    // "re-prepare when this value changes", and the statement cache's
    // clear-bindings on every reuse then forces a full re-prepare each time
    // (a third of the CPU of a task-cost request). Our tables have no
    // sqlite_stat4 data for value-based plans to use anyway.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Runs `f` in one read transaction: one snapshot for all of its
/// statements, and one round of file and WAL-index locks instead of one per
/// statement (each round is several `fcntl` calls under SQLite's
/// process-wide lock, which the two server workers otherwise contend for).
fn in_read_txn<T>(
    c: &Connection,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    c.prepare_cached("BEGIN")?.execute([])?;
    let out = f();
    if let Err(e) = c.prepare_cached("COMMIT").and_then(|mut s| s.execute([])) {
        // A read transaction has nothing to lose; make sure it is closed
        // so the connection goes back to the pool clean.
        let _ = c.execute_batch("ROLLBACK");
        return out.and(Err(e.into()));
    }
    out
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let fail = |e: rusqlite::Error| StoreError::Migration {
            version: *version,
            message: e.to_string(),
        };
        let tx = conn.transaction().map_err(fail)?;
        tx.execute_batch(sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` (`:memory:` for a
    /// private in-memory database) and runs migrations.
    pub async fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    fn open_blocking(path: &str) -> Result<SqliteStore, StoreError> {
        let memory = path == ":memory:";
        let mut conn = if memory {
            Connection::open_in_memory()?
        } else {
            Connection::open(path)?
        };
        configure(&conn, true)?;
        migrate(&mut conn)?;
        let checkpointer = if memory {
            None
        } else {
            Some(checkpoint::Checkpointer::start(path, &mut conn)?)
        };
        let archived_before = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'archived_before'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(i64::MIN);
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                _checkpointer: checkpointer,
                path: path.to_owned(),
                memory,
                writer: Mutex::new(Writer {
                    conn,
                    names: NameIds::default(),
                    archived_before,
                }),
                readers: Mutex::new(Vec::new()),
                read_permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
                names: names::NameCache::default(),
            }),
        })
    }

    /// Runs `f` with the writer on a blocking thread.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = lock(&inner.writer);
            let out = f(&mut w);
            if out.is_err() || w.names.len() > NAMES_CACHE_LIMIT {
                // Names inserted by a rolled-back transaction are gone.
                w.names.clear();
            }
            out
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Runs `f` with a read connection: a [`ReadCost::Point`] read right
    /// here on the calling (async) thread, a [`ReadCost::Scan`] on a blocking
    /// thread.
    async fn read<T, F>(&self, cost: ReadCost, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&names::Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        // Held until the connection is back in the pool, even when the
        // caller stops waiting.
        let permit = self
            .inner
            .read_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        let run = move || {
            let _permit = permit;
            let names = &inner.names;
            if inner.memory {
                let w = lock(&inner.writer);
                return in_read_txn(&w.conn, || {
                    f(&names::Reader {
                        conn: &w.conn,
                        names,
                    })
                });
            }
            let conn = lock(&inner.readers).pop();
            let conn = match conn {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    configure(&c, false)?;
                    c
                }
            };
            let out = in_read_txn(&conn, || f(&names::Reader { conn: &conn, names }));
            lock(&inner.readers).push(conn);
            out
        };
        match cost {
            ReadCost::Point => run(),
            ReadCost::Scan => tokio::task::spawn_blocking(run)
                .await
                .map_err(|e| StoreError::Worker(e.to_string()))?,
        }
    }

    /// How many rows the archive tables hold.
    pub async fn archive_counts(&self) -> Result<ArchiveStats, StoreError> {
        self.read(ReadCost::Scan, |c| {
            let n = |t: &str| -> Result<u64, StoreError> {
                let v: i64 = c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))?;
                Ok(u64::try_from(v).unwrap_or(0))
            };
            Ok(ArchiveStats {
                requests: n("requests_archive")?,
                usage: n("usage_archive")?,
                scopes: n("scopes_archive")?,
            })
        })
        .await
    }

    /// Runs `VACUUM` and returns the database file size in bytes (for the
    /// bytes-per-record benchmark).
    pub async fn vacuum(&self) -> Result<u64, StoreError> {
        self.write(|w| {
            w.conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?;
            let pages: i64 = w
                .conn
                .pragma_query_value(None, "page_count", |r| r.get(0))?;
            let size: i64 = w.conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            Ok(u64::try_from(pages * size).unwrap_or(0))
        })
        .await
    }

    /// Bytes used by each table and index (`dbstat`), largest first.
    pub async fn table_sizes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.write(|w| {
            let mut st = w
                .conn
                .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| Ok(r.map(|(n, s)| (n, u64::try_from(s).unwrap_or(0)))?))
                .collect()
        })
        .await
    }
}

impl Store for SqliteStore {
    async fn insert_records(&self, records: &[Record]) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        let batch = write::Batch::encode(records)?;
        self.write(move |w| write::insert_batch(w, &batch)).await
    }

    async fn insert_owned_records(&self, records: Vec<Record>) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        // Encoded here, with the requests moved into the batch; the usage
        // records are freed here too: the writer thread, which every write
        // waits for, only writes.
        let batch = write::Batch::encode_owned(records)?;
        self.write(move |w| write::insert_batch(w, &batch)).await
    }

    async fn start_request(&self, req: &RequestRecord) -> Result<(), StoreError> {
        let req = req.clone();
        self.write(move |w| write::start_request(w, &req)).await
    }

    async fn end_request(&self, request_id: &str, end: RequestEnd) -> Result<(), StoreError> {
        let id = request_id.to_owned();
        self.write(move |w| write::end_request(w, &id, &end)).await
    }

    async fn get_request(
        &self,
        request_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<RequestView>, StoreError> {
        let (id, scope) = (request_id.to_owned(), scope.clone());
        self.read(ReadCost::Point, move |c| read::get_request(c, &id, &scope))
            .await
    }

    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: Page,
        scope: &TenantScope,
    ) -> Result<(Vec<RequestView>, u64), StoreError> {
        let (filter, scope) = (filter.clone(), scope.clone());
        let (limit, offset) = page.limit_offset()?;
        // A task's or document's requests are few; anything else may count
        // a tenant's whole history.
        let cost = if filter.task_id.is_some() || filter.doc_id.is_some() {
            ReadCost::Point
        } else {
            ReadCost::Scan
        };
        self.read(cost, move |c| {
            read::list_requests(c, &filter, limit, offset, &scope)
        })
        .await
    }

    async fn task_cost(
        &self,
        task_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        let (id, scope) = (task_id.to_owned(), scope.clone());
        self.read(ReadCost::Point, move |c| {
            read::cost(c, read::CostOf::Task, &id, &scope)
        })
        .await
    }

    async fn doc_cost(
        &self,
        doc_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        let (id, scope) = (doc_id.to_owned(), scope.clone());
        self.read(ReadCost::Point, move |c| {
            read::cost(c, read::CostOf::Doc, &id, &scope)
        })
        .await
    }

    async fn entity_cost(
        &self,
        entity_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        let (id, scope) = (entity_id.to_owned(), scope.clone());
        self.read(ReadCost::Scan, move |c| {
            read::cost(c, read::CostOf::Entity, &id, &scope)
        })
        .await
    }

    async fn usage_summary(
        &self,
        group_by: GroupBy,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        scope: &TenantScope,
    ) -> Result<Vec<SummaryRow>, StoreError> {
        let scope = scope.clone();
        self.read(ReadCost::Scan, move |c| {
            read::usage_summary(c, group_by, from, to, &scope)
        })
        .await
    }

    async fn archive_before(&self, cutoff: Timestamp) -> Result<ArchiveStats, StoreError> {
        self.write(move |w| write::archive_before(w, cutoff.as_micros()))
            .await
    }

    async fn reprice(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        catalogue: &costtrace_pricing::Catalogue,
    ) -> Result<u64, StoreError> {
        // Read a chunk, price it here (the catalogue is borrowed), write
        // back only the rows whose pricing changed.
        let from = from.map_or(i64::MIN, Timestamp::as_micros);
        let to = to.map_or(i64::MAX, Timestamp::as_micros);
        let mut after = 0;
        let mut changed = 0;
        loop {
            let chunk = self
                .read(ReadCost::Scan, move |c| {
                    write::reprice_chunk(c, after, from, to)
                })
                .await?;
            let Some((rows, last)) = chunk else { break };
            after = last;
            let mut updates = Vec::new();
            for r in rows {
                if r.price_version.as_deref() == Some(common::REPORTED) {
                    continue;
                }
                let new = common::reprice_raw(catalogue, r.raw)?;
                if new != (r.cost_nanos, r.price_version, r.unpriced_reason) {
                    updates.push((r.seq, new.0, new.1, new.2));
                }
            }
            if !updates.is_empty() {
                changed += self
                    .write(move |w| write::apply_reprice(w, &updates))
                    .await?;
            }
        }
        Ok(changed)
    }

    async fn record_cursor_end(&self) -> Result<RecordCursor, StoreError> {
        self.read(ReadCost::Point, |c| tail::cursor_end(c)).await
    }

    async fn records_after(
        &self,
        cursor: RecordCursor,
        limit: u32,
    ) -> Result<(Vec<Record>, RecordCursor), StoreError> {
        self.read(ReadCost::Scan, move |c| {
            tail::records_after(c, cursor, i64::from(limit))
        })
        .await
    }

    async fn create_api_key(
        &self,
        key_hash: &str,
        tenant: Option<&str>,
        label: &str,
    ) -> Result<ApiKeyInfo, StoreError> {
        let info = ApiKeyInfo::new(tenant, label);
        let hash = key_hash.to_owned();
        self.write(move |w| {
            w.conn.execute(
                "INSERT INTO api_keys (id, key_hash, tenant, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![info.id, hash, info.tenant, info.label, info.created_at.as_micros()],
            )?;
            Ok(info)
        })
        .await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyInfo>, StoreError> {
        let hash = key_hash.to_owned();
        self.read(ReadCost::Point, move |c| {
            Ok(c.prepare_cached(
                "SELECT id, tenant, label, created_at, revoked_at IS NOT NULL FROM api_keys
                 WHERE key_hash = ?1 AND revoked_at IS NULL",
            )?
            .query_row([hash], api_key_row)
            .optional()?)
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        // A handful of rows.
        self.read(ReadCost::Point, |c| {
            let mut st = c.prepare_cached(
                "SELECT id, tenant, label, created_at, revoked_at IS NOT NULL FROM api_keys
                 ORDER BY created_at, id",
            )?;
            let rows = st.query_map([], api_key_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |w| {
            let n = w.conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, Timestamp::now().as_micros()],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyInfo> {
    Ok(ApiKeyInfo {
        id: r.get(0)?,
        tenant: r.get(1)?,
        label: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
        revoked: r.get(4)?,
    })
}
