//! PostgreSQL backend: tokio-postgres behind a deadpool pool.
//!
//! Usage rows are dictionary-encoded (`links`, `dims`, `names`: migration 5
//! and `dict`). A usage batch goes in by `COPY … FROM STDIN BINARY`
//! straight into the hot (or archive) table; a batch holding a record
//! stored before fails that with a unique violation and goes through a
//! per-connection staging table and `INSERT … ON CONFLICT (id) DO NOTHING`
//! instead, so replays are idempotent. Migrations are versioned SQL files
//! in `migrations/`, applied under an advisory lock.

mod dict;
mod read;
mod tail;
mod write;

use std::fmt;
use std::str::FromStr;

use costtrace_core::{Record, RequestRecord, Timestamp};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::{
    ApiKeyInfo, ArchiveStats, CostView, GroupBy, Page, RecordCursor, RequestEnd, RequestFilter,
    RequestView, Store, StoreError, SummaryRow, TenantScope,
};

/// Versioned migrations, recorded in `schema_migrations`.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/001_init.sql")),
    (2, include_str!("migrations/002_ingest_order.sql")),
    (3, include_str!("migrations/003_entity_task_type.sql")),
    (4, include_str!("migrations/004_ingest_seq_cache.sql")),
    (5, include_str!("migrations/005_compact_usage.sql")),
];

/// Connections in the pool.
const POOL_SIZE: usize = 8;

/// A PostgreSQL-backed [`Store`]. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Dictionary id caches of the writer (see `dict`).
    dict: std::sync::Arc<dict::Dict>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`, libpq URL or
    /// key=value form; `?options=-csearch_path%3Dmy_schema` selects a schema)
    /// and runs migrations.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)?;
        // No JIT: every query here is a short index lookup, and with stale
        // statistics (right after a bulk load) the planner's cost estimate
        // crossed `jit_above_cost` and JIT compilation took 0.3–0.5 s of a
        // 0.3 ms task-cost query.
        let options = match config.get_options() {
            Some(o) => format!("{o} -c jit=off"),
            None => "-c jit=off".to_owned(),
        };
        config.options(&options);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = PgStore {
            pool,
            dict: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
            e => StoreError::Pool(e.to_string()),
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // One migrator per schema at a time.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema()))",
            &[],
        )
        .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY, applied_at bigint NOT NULL)",
        )
        .await?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| !applied.contains(v)) {
            let fail = |e: tokio_postgres::Error| StoreError::Migration {
                version: *version,
                message: e.to_string(),
            };
            tx.batch_execute(sql).await.map_err(fail)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[version, &Timestamp::now().as_micros()],
            )
            .await
            .map_err(fail)?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many rows the archive tables hold.
    pub async fn archive_counts(&self) -> Result<ArchiveStats, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "SELECT (SELECT COUNT(*) FROM requests_archive), (SELECT COUNT(*) FROM usage_archive),
                        (SELECT COUNT(*) FROM scopes_archive)",
                &[],
            )
            .await?;
        let n = |i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(ArchiveStats {
            requests: n(0),
            usage: n(1),
            scopes: n(2),
        })
    }

    /// Bytes used by a table with its indexes and TOAST
    /// (`pg_total_relation_size`), after `VACUUM ANALYZE` — for the
    /// bytes-per-record benchmark.
    pub async fn table_size(&self, table: &str) -> Result<u64, StoreError> {
        let c = self.conn().await?;
        let ident = match table {
            "usage" | "requests" | "scopes" => table,
            _ => return Err(StoreError::Invalid(format!("unknown table {table:?}"))),
        };
        c.batch_execute(&format!("VACUUM ANALYZE {ident}")).await?;
        let row = c
            .query_one(
                "SELECT pg_total_relation_size($1::text::regclass)",
                &[&ident],
            )
            .await?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}

impl PgStore {
    /// Bytes of every table and index of the store's schema
    /// (`pg_relation_size`, largest first), after `VACUUM ANALYZE` — for the
    /// bytes-per-record benchmark.
    pub async fn relation_sizes(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let c = self.conn().await?;
        c.batch_execute("VACUUM ANALYZE").await?;
        let rows = c
            .query(
                "SELECT c.relname::text, pg_relation_size(c.oid)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')
                 ORDER BY 2 DESC, 1",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
            .collect())
    }
}

impl Store for PgStore {
    async fn insert_records(&self, records: &[Record]) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        write::insert_records(self, records).await
    }

    async fn start_request(&self, req: &RequestRecord) -> Result<(), StoreError> {
        let c = self.conn().await?;
        write::upsert_request(&c, req, i64::MIN).await.map(|_| ())
    }

    async fn end_request(&self, request_id: &str, end: RequestEnd) -> Result<(), StoreError> {
        write::end_request(self, request_id, &end).await
    }

    async fn get_request(
        &self,
        request_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<RequestView>, StoreError> {
        read::get_request(self, request_id, scope).await
    }

    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: Page,
        scope: &TenantScope,
    ) -> Result<(Vec<RequestView>, u64), StoreError> {
        let (limit, offset) = page.limit_offset()?;
        read::list_requests(self, filter, limit, offset, scope).await
    }

    async fn task_cost(
        &self,
        task_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        read::cost(self, read::CostOf::Task, task_id, scope).await
    }

    async fn doc_cost(
        &self,
        doc_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        read::cost(self, read::CostOf::Doc, doc_id, scope).await
    }

    async fn entity_cost(
        &self,
        entity_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        read::cost(self, read::CostOf::Entity, entity_id, scope).await
    }

    async fn usage_summary(
        &self,
        group_by: GroupBy,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        scope: &TenantScope,
    ) -> Result<Vec<SummaryRow>, StoreError> {
        read::usage_summary(self, group_by, from, to, scope).await
    }

    async fn archive_before(&self, cutoff: Timestamp) -> Result<ArchiveStats, StoreError> {
        write::archive_before(self, cutoff.as_micros()).await
    }

    async fn reprice(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        catalogue: &costtrace_pricing::Catalogue,
    ) -> Result<u64, StoreError> {
        write::reprice(self, from, to, catalogue).await
    }

    async fn record_cursor_end(&self) -> Result<RecordCursor, StoreError> {
        tail::cursor_end(self).await
    }

    async fn records_after(
        &self,
        cursor: RecordCursor,
        limit: u32,
    ) -> Result<(Vec<Record>, RecordCursor), StoreError> {
        tail::records_after(self, cursor, i64::from(limit)).await
    }

    async fn create_api_key(
        &self,
        key_hash: &str,
        tenant: Option<&str>,
        label: &str,
    ) -> Result<ApiKeyInfo, StoreError> {
        let info = ApiKeyInfo::new(tenant, label);
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO api_keys (id, key_hash, tenant, label, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &info.id,
                &key_hash,
                &info.tenant,
                &info.label,
                &info.created_at.as_micros(),
            ],
        )
        .await?;
        Ok(info)
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyInfo>, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT id, tenant, label, created_at, revoked_at IS NOT NULL FROM api_keys
                 WHERE key_hash = $1 AND revoked_at IS NULL",
                &[&key_hash],
            )
            .await?;
        Ok(row.as_ref().map(api_key_row))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT id, tenant, label, created_at, revoked_at IS NOT NULL FROM api_keys
                 ORDER BY created_at, id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(api_key_row).collect())
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &Timestamp::now().as_micros()],
            )
            .await?;
        Ok(n > 0)
    }
}

fn api_key_row(r: &tokio_postgres::Row) -> ApiKeyInfo {
    ApiKeyInfo {
        id: r.get(0),
        tenant: r.get(1),
        label: r.get(2),
        created_at: Timestamp(r.get(3)),
        revoked: r.get(4),
    }
}
