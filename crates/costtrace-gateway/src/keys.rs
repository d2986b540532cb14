//! costtrace API keys: `X-Costtrace-Key` names the tenant a call is for.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use costtrace_store::{AnyStore, Store};
use sha2::{Digest, Sha256};

/// What a costtrace API key stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Bound to this tenant: calls are recorded for it, whatever the headers say.
    Tenant(String),
    /// An admin key: the tenant comes from the headers.
    Admin,
    /// Unknown or revoked: the gateway answers 401.
    Invalid,
}

/// Resolves costtrace API keys (never provider keys).
pub trait KeyResolver: Send + Sync + 'static {
    fn resolve<'a>(&'a self, key: &'a str)
    -> Pin<Box<dyn Future<Output = KeyVerdict> + Send + 'a>>;
}

/// The stored form of a key: lowercase hex SHA-256, as `costtrace keys`
/// stores it.
pub fn hash_key(key: &str) -> String {
    let mut s = String::with_capacity(64);
    for b in Sha256::digest(key.as_bytes()) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Keys given in code (tests, embedded use): key → tenant (`None`: admin).
#[derive(Debug, Default)]
pub struct StaticKeys {
    by_hash: HashMap<String, Option<String>>,
}

impl StaticKeys {
    pub fn new() -> StaticKeys {
        StaticKeys::default()
    }

    /// Adds `key`, bound to `tenant` (`None` for an admin key).
    pub fn with(mut self, key: &str, tenant: Option<&str>) -> StaticKeys {
        self.by_hash
            .insert(hash_key(key), tenant.map(str::to_owned));
        self
    }
}

impl KeyResolver for StaticKeys {
    fn resolve<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = KeyVerdict> + Send + 'a>> {
        let v = match self.by_hash.get(&hash_key(key)) {
            Some(Some(t)) => KeyVerdict::Tenant(t.clone()),
            Some(None) => KeyVerdict::Admin,
            None => KeyVerdict::Invalid,
        };
        Box::pin(async move { v })
    }
}

/// How long a looked-up verdict is reused (a revoked key stops working
/// within this time).
const CACHE_FOR: Duration = Duration::from_secs(30);

/// Keys in a costtrace store (the ones `costtrace keys create` makes), with
/// verdicts cached for 30 s so the store is not asked on every call.
#[derive(Debug)]
pub struct StoreKeys {
    store: AnyStore,
    cache: Mutex<HashMap<String, (Instant, KeyVerdict)>>,
}

impl StoreKeys {
    pub fn new(store: AnyStore) -> StoreKeys {
        StoreKeys {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl KeyResolver for StoreKeys {
    fn resolve<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = KeyVerdict> + Send + 'a>> {
        Box::pin(async move {
            let hash = hash_key(key);
            if let Ok(cache) = self.cache.lock()
                && let Some((at, v)) = cache.get(&hash)
                && at.elapsed() < CACHE_FOR
            {
                return v.clone();
            }
            let v = match self.store.find_api_key(&hash).await {
                Ok(Some(info)) if !info.revoked => match info.tenant {
                    Some(t) => KeyVerdict::Tenant(t),
                    None => KeyVerdict::Admin,
                },
                Ok(_) => KeyVerdict::Invalid,
                Err(e) => {
                    tracing::warn!(error = %e, "costtrace gateway: looking up an API key failed");
                    return KeyVerdict::Invalid;
                }
            };
            if let Ok(mut cache) = self.cache.lock() {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(hash, (Instant::now(), v.clone()));
            }
            v
        })
    }
}
