//! Following the store: [`RecordCursor`] and the rebuilding of stored rows
//! into wire records, shared by both backends.
//!
//! # Why the cursor is safe under concurrent writers
//!
//! SQLite has one writer at a time (the database lock is held from the first
//! write to the commit), so the rowid of `usage` and the request revision
//! counter in `meta` grow in commit order: "after seq N" misses nothing.
//!
//! PostgreSQL sequences are not commit-ordered: a transaction can take seq
//! 10, commit after another one that took seq 11 and was already read.
//! Every row therefore carries the id of the transaction that wrote it
//! (`ingest_xid`, `pg_current_xact_id()`), positions are ordered by
//! transaction first, and a read returns only rows whose transaction is
//! older than the oldest transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`). Within one transaction, its
//! usage rows come first, by record id (usage rows keep no sequence number:
//! 8 bytes each), then its request rows, by `ingest_seq`. The cursor is
//! `(xid, part, key)`: part 0 = usage (key: record id), 1 = requests (key:
//! seq).
//! Such transactions have all finished, so no row can later appear behind
//! the cursor; a row of a transaction that is still open is returned once it
//! commits and every older transaction has finished. The price is latency
//! while a long transaction is open, never a missed or repeated row.

use std::collections::BTreeMap;

use costtrace_core::{Attrs, Environment, RequestRecord, Timestamp, UsageRecord, nanos_to_usd};

use crate::{RequestView, StoreError};

/// A position in the stream of stored usage and request records. The
/// default is the very start; [`crate::Store::record_cursor_end`] gives the
/// current end. Opaque: its meaning depends on the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordCursor {
    /// SQLite: last usage seq; PostgreSQL: last transaction id.
    pub(crate) a: i64,
    /// SQLite: last request revision; PostgreSQL: the part of transaction
    /// `a` reached (0 usage, 1 requests).
    pub(crate) b: i64,
    /// SQLite: unused; PostgreSQL: last key within that part (usage: record
    /// id; requests: ingest seq).
    pub(crate) c: u128,
}

/// The columns of a stored usage row, names resolved.
#[derive(Debug, Default)]
pub(crate) struct UsageRow {
    pub id: Vec<u8>,
    pub ts: i64,
    /// request, task, doc, entity.
    pub links: [Option<String>; 4],
    /// provider, model, service_type, operation.
    pub dims: [Option<String>; 4],
    pub cost_nanos: Option<i64>,
    pub price_version: Option<String>,
    pub tokens: [Option<i64>; 5],
    pub env: i64,
    pub tier: i64,
    pub partial: bool,
    pub scope_id: Option<Vec<u8>>,
    pub duration_ms: Option<f64>,
    pub units: Option<String>,
    pub unpriced_reason: Option<String>,
    pub error_message: Option<String>,
    pub attrs: Option<String>,
}

pub(crate) fn env_from(code: i64) -> Environment {
    match code {
        0 => Environment::Production,
        1 => Environment::Staging,
        2 => Environment::Cicd,
        _ => Environment::Development,
    }
}

/// The request record behind a (usage-less) request view.
pub(crate) fn request_record(v: RequestView, env: i64) -> RequestRecord {
    RequestRecord {
        request_id: v.request_id,
        task_id: v.task_id,
        doc_id: v.doc_id,
        entity_id: v.entity_id,
        operation_type: v.operation_type,
        task_type: v.task_type,
        endpoint: v.endpoint,
        method: v.method,
        status_code: v.status_code,
        timestamp: v.timestamp,
        processing_time_ms: v.processing_time_ms,
        error_message: v.error_message,
        environment: env_from(env),
    }
}

fn uuid(bytes: &[u8]) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("record id: {e}")))
}

impl UsageRow {
    /// The wire record this row was stored from.
    pub(crate) fn into_record(self) -> Result<UsageRecord, StoreError> {
        let mut attrs: Attrs = match &self.attrs {
            Some(a) => serde_json::from_str(a)
                .map_err(|e| StoreError::Corrupt(format!("attrs {a:?}: {e}")))?,
            None => Attrs::new(),
        };
        for (name, v) in crate::common::EXTRACTED_ATTRS.iter().zip(self.links) {
            if let Some(v) = v {
                attrs.insert((*name).to_owned(), v);
            }
        }
        let units: BTreeMap<String, u64> = match &self.units {
            Some(u) => serde_json::from_str(u)
                .map_err(|e| StoreError::Corrupt(format!("units {u:?}: {e}")))?,
            None => BTreeMap::new(),
        };
        let count = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        let [provider, model, service_type, operation] = self.dims;
        Ok(UsageRecord {
            id: uuid(&self.id)?,
            scope_id: self.scope_id.as_deref().map(uuid).transpose()?,
            attrs,
            environment: env_from(self.env),
            timestamp: Timestamp(self.ts),
            provider,
            model,
            service_type,
            operation,
            input_tokens: count(self.tokens[0]),
            output_tokens: count(self.tokens[1]),
            cache_read_tokens: count(self.tokens[2]),
            cache_write_tokens: count(self.tokens[3]),
            reasoning_tokens: count(self.tokens[4]),
            units,
            pricing_tier: crate::common::tier_from(self.tier),
            cost_usd: self.cost_nanos.map(nanos_to_usd),
            cost_nanos: self.cost_nanos,
            unpriced_reason: self.unpriced_reason,
            price_version: self.price_version,
            duration_ms: self.duration_ms,
            error_message: self.error_message,
            partial: self.partial,
        })
    }
}
