//! Storage for costtrace records: the [`Store`] trait and two backends,
//! SQLite ([`SqliteStore`], rusqlite, WAL, one writer thread) and PostgreSQL
//! ([`PgStore`], tokio-postgres, `COPY … FROM STDIN BINARY` for bulk writes).
//! Each backend has its own SQL and migrations.
//!
//! What the store answers is seed 004's request tracker: requests started and
//! ended by id, linked to a task, a document and an entity; the cost of a task,
//! doc or entity (also while the task is still running); filtered, paginated
//! request lists; spend grouped by model, provider, service type, entity or
//! day; archiving old rows; re-pricing history with a newer catalogue.
//!
//! # Semantics
//!
//! - A usage record belongs to the request, task, doc and entity named in its
//!   attrs `request_id`, `task_id`, `doc_id`, `entity_id` (extracted into
//!   indexed columns). A doc's cost also includes the usage of requests whose
//!   `doc_id` was set on the request (it is often learned only at the end).
//! - A request's `services_used` and `total_cost` are the usage rows that name
//!   its `request_id`, grouped by *service key*: the usage's `service_type`,
//!   else `llm:` + its model, else `unknown`.
//! - `request_count` of a task/doc/entity is the larger of the number of
//!   request rows naming it and the number of distinct `request_id`s among its
//!   usage (usage may arrive before or without its request record).
//! - Unpriced usage (`cost_nanos` null) is never summed as zero: every
//!   aggregate carries `unpriced_count` beside the priced total.
//! - Writes are idempotent by record key ([`Record::key`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), costtrace_store::StoreError> {
//! use costtrace_store::{AnyStore, Store, TenantScope};
//! let store = AnyStore::open("sqlite:/tmp/costtrace.db").await?;
//! if let Some(cost) = store.task_cost("task_abc123", &TenantScope::All).await? {
//!     println!("{} USD over {} requests", cost.total_cost_usd, cost.request_count);
//! }
//! # Ok(()) }
//! ```

mod common;
mod cursor;
mod postgres;
mod sqlite;
mod types;

use std::future::Future;

pub use costtrace_core::{Record, RequestRecord, Timestamp};
pub use cursor::RecordCursor;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use types::{
    ApiKeyInfo, ArchiveStats, CostView, GroupBy, Page, RequestEnd, RequestFilter, RequestView,
    ServiceUse, SummaryRow, TenantScope,
};

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one of the supported forms.
    #[error(
        "unsupported store URL {0:?}: use sqlite:PATH, sqlite::memory:, a path ending in .db, or postgres://…"
    )]
    UnsupportedUrl(String),
    /// An SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL error.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be taken from the pool.
    #[error("postgres pool: {0}")]
    Pool(String),
    /// A migration failed; the database is left at the previous version.
    #[error("migration {version} failed: {message}")]
    Migration {
        /// The migration that failed.
        version: i32,
        /// Why.
        message: String,
    },
    /// `end_request` named a request that was never started.
    #[error("request {0:?} was not started (call start_request first)")]
    UnknownRequest(String),
    /// An argument is out of range (e.g. page 0).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Stored data could not be decoded (a bug or a manual edit).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A blocking worker task panicked or was cancelled.
    #[error("store worker failed: {0}")]
    Worker(String),
}

/// The storage interface the runtime, server and CLI use.
///
/// Every method is async; the SQLite backend runs its work on blocking
/// threads, so call these from a tokio runtime.
pub trait Store: Send + Sync {
    /// Inserts scope, usage and request records. Idempotent by
    /// [`Record::key`]: a replayed record is ignored (a replayed request
    /// record fills in fields that are still empty). Returns how many records
    /// were new.
    fn insert_records(
        &self,
        records: &[Record],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// [`Store::insert_records`] for a caller that no longer needs the
    /// records (the ingest endpoint): a backend may then write them without
    /// copying their strings first.
    fn insert_owned_records(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move { self.insert_records(&records).await }
    }

    /// Starts (or re-starts: upserts) a request; `status_code` may be `None`
    /// while it is running.
    fn start_request(
        &self,
        req: &RequestRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends a started request: sets status, processing time, error and (when
    /// given) the doc id learned at the end. [`StoreError::UnknownRequest`]
    /// when it was never started.
    fn end_request(
        &self,
        request_id: &str,
        end: RequestEnd,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One request with its services and cost; `None` when unknown or
    /// outside `scope`.
    fn get_request(
        &self,
        request_id: &str,
        scope: &TenantScope,
    ) -> impl Future<Output = Result<Option<RequestView>, StoreError>> + Send;

    /// Requests matching `filter`, newest first, and the total number of
    /// matches. Ties are broken by a unique key (PostgreSQL: request id
    /// descending; SQLite: the id's internal number, descending), so pages are
    /// stable while no rows are added.
    fn list_requests(
        &self,
        filter: &RequestFilter,
        page: Page,
        scope: &TenantScope,
    ) -> impl Future<Output = Result<(Vec<RequestView>, u64), StoreError>> + Send;

    /// Cost of a task so far; `None` when nothing names it.
    fn task_cost(
        &self,
        task_id: &str,
        scope: &TenantScope,
    ) -> impl Future<Output = Result<Option<CostView>, StoreError>> + Send;

    /// Cost of a document; `None` when nothing names it.
    fn doc_cost(
        &self,
        doc_id: &str,
        scope: &TenantScope,
    ) -> impl Future<Output = Result<Option<CostView>, StoreError>> + Send;

    /// Cost of an entity (tenant); `None` when nothing names it.
    fn entity_cost(
        &self,
        entity_id: &str,
        scope: &TenantScope,
    ) -> impl Future<Output = Result<Option<CostView>, StoreError>> + Send;

    /// Usage spend grouped by `group_by`, in `[from, to)`, largest first.
    fn usage_summary(
        &self,
        group_by: GroupBy,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        scope: &TenantScope,
    ) -> impl Future<Output = Result<Vec<SummaryRow>, StoreError>> + Send;

    /// Moves every record older than `cutoff` into the archive tables (one
    /// transaction; nothing is deleted). Records older than the latest cutoff
    /// that arrive later go straight to the archive, so replays stay
    /// idempotent.
    fn archive_before(
        &self,
        cutoff: Timestamp,
    ) -> impl Future<Output = Result<ArchiveStats, StoreError>> + Send;

    /// Recomputes the cost of hot usage in `[from, to)` from its raw counts
    /// with `catalogue`, skipping provider-reported costs. Returns how many
    /// records changed (cost, price version or unpriced reason).
    fn reprice(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        catalogue: &costtrace_pricing::Catalogue,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The position after every usage and request record stored so far:
    /// [`Store::records_after`] from it returns only what is stored later.
    fn record_cursor_end(&self) -> impl Future<Output = Result<RecordCursor, StoreError>> + Send;

    /// Usage and request records stored after `cursor` (up to `limit` of
    /// each kind, each kind in the order it was stored), and the cursor to
    /// continue from. Start at [`RecordCursor::default`] for everything or
    /// at [`Store::record_cursor_end`] for what comes next. A request comes
    /// again each time it is written (started, ended, replayed). Rows of
    /// transactions that commit late are not skipped (see the `cursor`
    /// module docs); archived rows are not returned.
    fn records_after(
        &self,
        cursor: RecordCursor,
        limit: u32,
    ) -> impl Future<Output = Result<(Vec<Record>, RecordCursor), StoreError>> + Send;

    /// Stores a new API key (only its hash); `tenant` `None` is an admin key.
    fn create_api_key(
        &self,
        key_hash: &str,
        tenant: Option<&str>,
        label: &str,
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send;

    /// The non-revoked key with this hash.
    fn find_api_key(
        &self,
        key_hash: &str,
    ) -> impl Future<Output = Result<Option<ApiKeyInfo>, StoreError>> + Send;

    /// All keys, revoked ones included, oldest first.
    fn list_api_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyInfo>, StoreError>> + Send;

    /// Revokes a key by id; `false` when there is no such (non-revoked) key.
    fn revoke_api_key(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Either backend, chosen by URL at run time.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// SQLite file or memory database.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens a store and runs its migrations. `url` is `sqlite:PATH`,
    /// `sqlite::memory:`, a bare path ending in `.db`, or
    /// `postgres://…` / `postgresql://…`.
    pub async fn open(url: &str) -> Result<AnyStore, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(AnyStore::Postgres(PgStore::open(url).await?));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite:") {
            rest.strip_prefix("//").unwrap_or(rest)
        } else if url.ends_with(".db") || url.ends_with(".sqlite") {
            url
        } else {
            return Err(StoreError::UnsupportedUrl(
                costtrace_core::secrets::redact_url(url),
            ));
        };
        if path.is_empty() {
            return Err(StoreError::UnsupportedUrl(
                costtrace_core::secrets::redact_url(url),
            ));
        }
        Ok(AnyStore::Sqlite(SqliteStore::open(path).await?))
    }

    /// How many rows the archive tables hold (requests, usage, scopes).
    pub async fn archive_counts(&self) -> Result<ArchiveStats, StoreError> {
        match self {
            AnyStore::Sqlite(s) => s.archive_counts().await,
            AnyStore::Postgres(s) => s.archive_counts().await,
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e.await,
            AnyStore::Postgres($s) => $e.await,
        }
    };
}

impl Store for AnyStore {
    async fn insert_records(&self, records: &[Record]) -> Result<u64, StoreError> {
        delegate!(self, s => s.insert_records(records))
    }
    async fn insert_owned_records(&self, records: Vec<Record>) -> Result<u64, StoreError> {
        delegate!(self, s => s.insert_owned_records(records))
    }
    async fn start_request(&self, req: &RequestRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.start_request(req))
    }
    async fn end_request(&self, request_id: &str, end: RequestEnd) -> Result<(), StoreError> {
        delegate!(self, s => s.end_request(request_id, end))
    }
    async fn get_request(
        &self,
        request_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<RequestView>, StoreError> {
        delegate!(self, s => s.get_request(request_id, scope))
    }
    async fn list_requests(
        &self,
        filter: &RequestFilter,
        page: Page,
        scope: &TenantScope,
    ) -> Result<(Vec<RequestView>, u64), StoreError> {
        delegate!(self, s => s.list_requests(filter, page, scope))
    }
    async fn task_cost(
        &self,
        task_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        delegate!(self, s => s.task_cost(task_id, scope))
    }
    async fn doc_cost(
        &self,
        doc_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        delegate!(self, s => s.doc_cost(doc_id, scope))
    }
    async fn entity_cost(
        &self,
        entity_id: &str,
        scope: &TenantScope,
    ) -> Result<Option<CostView>, StoreError> {
        delegate!(self, s => s.entity_cost(entity_id, scope))
    }
    async fn usage_summary(
        &self,
        group_by: GroupBy,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        scope: &TenantScope,
    ) -> Result<Vec<SummaryRow>, StoreError> {
        delegate!(self, s => s.usage_summary(group_by, from, to, scope))
    }
    async fn archive_before(&self, cutoff: Timestamp) -> Result<ArchiveStats, StoreError> {
        delegate!(self, s => s.archive_before(cutoff))
    }
    async fn reprice(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        catalogue: &costtrace_pricing::Catalogue,
    ) -> Result<u64, StoreError> {
        delegate!(self, s => s.reprice(from, to, catalogue))
    }
    async fn record_cursor_end(&self) -> Result<RecordCursor, StoreError> {
        delegate!(self, s => s.record_cursor_end())
    }
    async fn records_after(
        &self,
        cursor: RecordCursor,
        limit: u32,
    ) -> Result<(Vec<Record>, RecordCursor), StoreError> {
        delegate!(self, s => s.records_after(cursor, limit))
    }
    async fn create_api_key(
        &self,
        key_hash: &str,
        tenant: Option<&str>,
        label: &str,
    ) -> Result<ApiKeyInfo, StoreError> {
        delegate!(self, s => s.create_api_key(key_hash, tenant, label))
    }
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyInfo>, StoreError> {
        delegate!(self, s => s.find_api_key(key_hash))
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, StoreError> {
        delegate!(self, s => s.list_api_keys())
    }
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.revoke_api_key(id))
    }
}
