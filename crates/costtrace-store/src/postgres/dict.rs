//! The writer's side of the `names`, `links` and `dims` dictionaries
//! (migration 5): strings and key tuples → ids, with bounded caches.
//!
//! New entries are inserted by their own autocommitted statements, never
//! inside the batch's transaction: a cached id must never belong to a row
//! that a rollback removed. New names and dims go in before the batch's
//! transaction starts, new links beside its usage COPY (committed before
//! the batch commits). Dictionary rows are never updated or deleted, so an
//! id, once seen committed, means the same thing for the life of the
//! database, in every process that shares it.
//!
//! Concurrent writers of names and dims: `INSERT … ON CONFLICT DO NOTHING`
//! waits for a conflicting insert of another transaction to finish, so after
//! it returns every wanted entry is committed (by us or by the other writer)
//! and the follow-up `SELECT` of the ones not returned finds them. Links
//! have no unique key (see [`Dict::store_links`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use deadpool_postgres::GenericClient;

use crate::StoreError;
use crate::common::lock;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Entries kept per cache. When a cache is full it is emptied: request,
/// task and document ids are new all the time, and a bounded cache of the
/// recent ones (a request's usage arrives in one or two batches) is what
/// pays; the few tenants, models and dims come back at the next miss.
const LIMIT: usize = 200_000;

/// `(provider, model, service type, operation, price version)` name ids
/// (0 = none), environment, tier, partial.
pub(crate) type DimsKey = ([i64; 5], i16, i16, bool);

/// Caches of one store (shared by its connections).
#[derive(Debug, Default)]
pub(crate) struct Dict {
    names: Mutex<Map<Box<str>, i64>>,
    links: Mutex<Map<Box<str>, i64>>,
    dims: Mutex<Map<DimsKey, i32>>,
    /// Dims ids by the dims' text (see `write::dims_text`).
    dims_text: Mutex<Map<Box<str>, i32>>,
    /// `[next, end)` of the links ids this store has reserved.
    link_block: Mutex<(i64, i64)>,
}

/// Links ids reserved per round trip (the increment of `links_id_block`).
const LINK_BLOCK: i64 = 4096;

fn remember<K: Hash + Eq, V>(cache: &Mutex<Map<K, V>>, found: impl IntoIterator<Item = (K, V)>) {
    let mut map = lock(cache);
    for (k, v) in found {
        if map.len() >= LIMIT {
            map.clear();
        }
        map.insert(k, v);
    }
}

impl Dict {
    /// The cached dims ids of `texts` (the others are absent).
    pub(crate) fn dims_by_text(&self, texts: &[Box<str>]) -> Map<Box<str>, i32> {
        let cache = lock(&self.dims_text);
        let mut out = Map::default();
        let mut last: Option<&Box<str>> = None;
        for t in texts {
            // Runs of equal dims are common: one lookup per run.
            if last == Some(t) {
                continue;
            }
            last = Some(t);
            if let Some(id) = cache.get(t) {
                out.insert(t.clone(), *id);
            }
        }
        out
    }

    pub(crate) fn remember_dims_text(&self, learned: Vec<(Box<str>, i32)>) {
        remember(&self.dims_text, learned);
    }

    /// Ids of `wanted` names (duplicates allowed), inserting the new ones.
    pub(crate) async fn names<'a>(
        &self,
        c: &impl GenericClient,
        wanted: &[&'a str],
    ) -> Result<Map<&'a str, i64>, StoreError> {
        let mut out: Map<&'a str, i64> = Map::default();
        let mut missing: Vec<&'a str> = Vec::new();
        {
            let cache = lock(&self.names);
            for &w in wanted {
                if out.contains_key(w) {
                    continue;
                }
                match cache.get(w) {
                    Some(id) => {
                        out.insert(w, *id);
                    }
                    None => {
                        out.insert(w, 0);
                        missing.push(w);
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        // Inserted in one order by every writer: two writers inserting the
        // same new entries cannot deadlock.
        missing.sort_unstable();
        let mut found: Vec<(Box<str>, i64)> = Vec::with_capacity(missing.len());
        let rows = c
            .query(
                "INSERT INTO names (name) SELECT unnest($1::text[])
                 ON CONFLICT (name) DO NOTHING RETURNING name, id",
                &[&missing],
            )
            .await?;
        for r in &rows {
            found.push((r.get::<_, &str>(0).into(), r.get(1)));
        }
        if found.len() < missing.len() {
            // Stored before (by another writer or before our cache was
            // emptied).
            let rows = c
                .query(
                    "SELECT name, id FROM names WHERE name = ANY($1)",
                    &[&missing],
                )
                .await?;
            found.clear();
            for r in &rows {
                found.push((r.get::<_, &str>(0).into(), r.get(1)));
            }
        }
        for (name, id) in &found {
            if let Some(slot) = out.get_mut(&**name) {
                *slot = *id;
            }
        }
        if let Some(lost) = missing.iter().find(|m| out.get(*m) == Some(&0)) {
            return Err(StoreError::Corrupt(format!(
                "name {lost:?} neither inserted nor found"
            )));
        }
        remember(&self.names, found);
        Ok(out)
    }

    /// The id of a links tuple known to be stored, if cached.
    pub(crate) fn cached_link(&self, key: &str) -> Option<i64> {
        lock(&self.links).get(key).copied()
    }

    /// `n` new links ids, from blocks of `links_id_block` (one round trip
    /// per block): ids grow, so `links_pkey` and `usage_link` are appended
    /// to, not split in the middle.
    pub(crate) async fn new_link_ids(
        &self,
        c: &impl GenericClient,
        n: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            {
                let mut block = lock(&self.link_block);
                while out.len() < n && block.0 < block.1 {
                    out.push(block.0);
                    block.0 += 1;
                }
            }
            if out.len() < n {
                let start: i64 = c
                    .query_one("SELECT nextval('links_id_block')", &[])
                    .await?
                    .get(0);
                // Another task of this store may have refilled meanwhile;
                // its block is used first, this one after.
                let mut block = lock(&self.link_block);
                if block.0 >= block.1 {
                    *block = (start, start + LINK_BLOCK);
                }
            }
        }
        Ok(out)
    }

    /// Stores new links tuples under ids from [`Dict::new_link_ids`].
    ///
    /// Runs beside the batch's usage COPY, on its own connection, in its own
    /// autocommitted statement, so it is committed before the batch is.
    /// There is no unique constraint on the tuple: a tuple this cache did
    /// not know (stored by another process, or forgotten) gets a second
    /// row, which costs its bytes but never a wrong answer — each usage row
    /// points at exactly one links row.
    pub(crate) async fn store_links(
        &self,
        c: &impl GenericClient,
        new: &[([&str; 4], i64)],
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = new.iter().map(|(_, id)| *id).collect();
        let col = |i: usize| new.iter().map(|(k, _)| k[i]).collect::<Vec<&str>>();
        c.execute(
            "INSERT INTO links (id, request_id, task_id, doc_id, entity_id)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[])",
            &[&ids, &col(0), &col(1), &col(2), &col(3)],
        )
        .await?;
        remember(&self.links, new.iter().map(|(k, id)| (link_key(k), *id)));
        Ok(())
    }

    /// Ids of dims tuples, inserting the new ones.
    pub(crate) async fn dims(
        &self,
        c: &impl GenericClient,
        wanted: &[DimsKey],
    ) -> Result<Map<DimsKey, i32>, StoreError> {
        let (mut out, mut missing) = split(&self.dims, wanted);
        missing.sort_unstable();
        if missing.is_empty() {
            return Ok(out);
        }
        let name = |i: usize| missing.iter().map(|k| k.0[i]).collect::<Vec<i64>>();
        let names = [name(0), name(1), name(2), name(3), name(4)];
        let env: Vec<i16> = missing.iter().map(|k| k.1).collect();
        let tier: Vec<i16> = missing.iter().map(|k| k.2).collect();
        let partial: Vec<bool> = missing.iter().map(|k| k.3).collect();
        let key = |r: &tokio_postgres::Row| -> DimsKey {
            (
                [r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)],
                r.get(6),
                r.get(7),
                r.get(8),
            )
        };
        const COLS: &str =
            "provider_k, model_k, service_k, operation_k, price_version_k, env, tier, partial";
        const ARGS: &str = "unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                                   $6::int2[], $7::int2[], $8::bool[])";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &names[0], &names[1], &names[2], &names[3], &names[4], &env, &tier, &partial,
        ];
        let mut found: Vec<(DimsKey, i32)> = c
            .query(
                &format!(
                    "INSERT INTO dims ({COLS}) SELECT * FROM {ARGS}
                     ON CONFLICT ON CONSTRAINT dims_key DO NOTHING RETURNING id, {COLS}"
                ),
                &params,
            )
            .await?
            .iter()
            .map(|r| (key(r), r.get(0)))
            .collect();
        if found.len() < missing.len() {
            found = c
                .query(
                    &format!(
                        "SELECT d.id, d.provider_k, d.model_k, d.service_k, d.operation_k,
                                d.price_version_k, d.env, d.tier, d.partial
                         FROM {ARGS} AS k(a, b, c, d, e, f, g, h)
                         JOIN dims d ON ({COLS}) = (k.a, k.b, k.c, k.d, k.e, k.f, k.g, k.h)"
                    ),
                    &params,
                )
                .await?
                .iter()
                .map(|r| (key(r), r.get(0)))
                .collect();
        }
        finish(&self.dims, &mut out, &missing, found, "dims")?;
        Ok(out)
    }
}

/// The cache key of a links tuple: its ids joined by NUL (which no stored
/// id can contain: PostgreSQL text cannot hold it).
pub(crate) fn link_key(ids: &[&str; 4]) -> Box<str> {
    let mut k = String::with_capacity(ids.iter().map(|i| i.len() + 1).sum());
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            k.push('\0');
        }
        k.push_str(id);
    }
    k.into_boxed_str()
}

/// Cached ids into `out`; the distinct uncached keys into the second list.
fn split<K: Hash + Eq + Copy, V: Copy>(
    cache: &Mutex<Map<K, V>>,
    wanted: &[K],
) -> (Map<K, V>, Vec<K>) {
    let mut out: Map<K, V> = Map::default();
    let mut missing = Vec::new();
    let mut asked: std::collections::HashSet<K, foldhash::fast::RandomState> = Default::default();
    let cache = lock(cache);
    for &k in wanted {
        if !asked.insert(k) {
            continue;
        }
        match cache.get(&k) {
            Some(v) => {
                out.insert(k, *v);
            }
            None => missing.push(k),
        }
    }
    (out, missing)
}

fn finish<K: Hash + Eq + Copy + std::fmt::Debug, V: Copy>(
    cache: &Mutex<Map<K, V>>,
    out: &mut Map<K, V>,
    missing: &[K],
    found: Vec<(K, V)>,
    what: &str,
) -> Result<(), StoreError> {
    for (k, v) in &found {
        out.insert(*k, *v);
    }
    if let Some(lost) = missing.iter().find(|k| !out.contains_key(*k)) {
        return Err(StoreError::Corrupt(format!(
            "{what} {lost:?} neither inserted nor found"
        )));
    }
    remember(cache, found);
    Ok(())
}
