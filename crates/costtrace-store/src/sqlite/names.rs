//! Read side of the `names` dictionary: id → name, cached for the
//! low-cardinality columns (tenant, operation, task type, service, model)
//! that almost every answer repeats.
//!
//! Why a cache is safe: a `names` row is never updated or deleted, and a
//! read connection only sees committed rows, so once a reader has seen an
//! id's name, that id means that name for the life of the database. (An id
//! taken by a transaction that rolled back may be reused, but no reader ever
//! saw it.)
//!
//! Why only some columns: request, task and document ids are as many as the
//! records; caching them would churn the cache and evict the names worth
//! keeping. Those stay joins in the queries.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, RwLock};

use rusqlite::{Connection, OptionalExtension};

use crate::StoreError;

/// Most ids kept. Beyond this, names are looked up but not remembered: a
/// store with more distinct tenants/models than this is served correctly,
/// just without the cache for the rest.
const LIMIT: usize = 65_536;

/// id → name; foldhash, as a list of requests looks up a few dozen ids.
type IdMap = HashMap<i64, Arc<str>, foldhash::fast::RandomState>;

/// id → name for the dictionary-encoded dimension columns, shared by all
/// read connections of one store.
#[derive(Debug)]
pub(crate) struct NameCache {
    map: RwLock<IdMap>,
    /// model id → `llm:MODEL`, the service key of usage without a service type.
    llm: RwLock<IdMap>,
    unknown: Arc<str>,
}

impl Default for NameCache {
    fn default() -> Self {
        NameCache {
            map: RwLock::default(),
            llm: RwLock::default(),
            unknown: Arc::from("unknown"),
        }
    }
}

impl NameCache {
    /// The `services_used` key of a usage row: its service type, else
    /// `llm:MODEL`, else `unknown`.
    pub(crate) fn service_key(
        &self,
        c: &Connection,
        service: Option<i64>,
        model: Option<i64>,
    ) -> rusqlite::Result<Arc<str>> {
        match (service, model) {
            (Some(s), _) => self.name(c, s),
            (None, Some(m)) => {
                if let Some(k) = self.llm.read().unwrap_or_else(|p| p.into_inner()).get(&m) {
                    return Ok(k.clone());
                }
                let k: Arc<str> = format!("llm:{}", self.name(c, m)?).into();
                let mut map = self.llm.write().unwrap_or_else(|p| p.into_inner());
                if map.len() < LIMIT {
                    map.insert(m, k.clone());
                }
                Ok(k)
            }
            (None, None) => Ok(self.unknown.clone()),
        }
    }

    /// The name of dictionary id `id`, from the cache or the database.
    pub(crate) fn name(&self, c: &Connection, id: i64) -> rusqlite::Result<Arc<str>> {
        // A poisoned lock only means another reader panicked between two
        // map operations; the map itself is always consistent.
        if let Some(n) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(n.clone());
        }
        let n: String = c
            .prepare_cached("SELECT name FROM names WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let n: Arc<str> = n.into();
        let mut m = self.map.write().unwrap_or_else(|p| p.into_inner());
        if m.len() < LIMIT {
            m.insert(id, n.clone());
        }
        Ok(n)
    }
}

/// A read connection with the store's shared name cache.
pub(crate) struct Reader<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) names: &'a NameCache,
}

impl Reader<'_> {
    /// The name of dictionary id `id`, through the shared cache.
    pub(crate) fn name(&self, id: i64) -> rusqlite::Result<Arc<str>> {
        self.names.name(self.conn, id)
    }

    /// The `services_used` key of a usage row (see [`NameCache::service_key`]).
    pub(crate) fn service_key(
        &self,
        service: Option<i64>,
        model: Option<i64>,
    ) -> rusqlite::Result<Arc<str>> {
        self.names.service_key(self.conn, service, model)
    }

    /// The name of an optional dictionary id, as an owned string.
    pub(crate) fn name_of(&self, id: Option<i64>) -> rusqlite::Result<Option<String>> {
        id.map(|id| self.name(id).map(|n| n.as_ref().to_owned()))
            .transpose()
    }
}

impl Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// The `names` id of `s`, if it was ever stored.
pub(crate) fn lookup(c: &Connection, s: &str) -> Result<Option<i64>, StoreError> {
    Ok(c.prepare_cached("SELECT id FROM names WHERE name = ?1")?
        .query_row([s], |r| r.get(0))
        .optional()?)
}
