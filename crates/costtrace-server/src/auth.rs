//! API keys: `Authorization: Bearer KEY`, stored as SHA-256 hashes, each bound
//! to one tenant (entity id) or to admin.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use costtrace_store::{Store, TenantScope};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// How requests without a key are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// No keys configured: a request without a key is admin. Only safe on a
    /// loopback address (the CLI refuses anything else). A key that is sent
    /// is still checked.
    Local,
    /// Every request needs a valid key.
    Keys,
}

impl AuthMode {
    /// `Keys` when the store holds at least one non-revoked key, else `Local`.
    pub async fn detect(store: &impl Store) -> Result<AuthMode, costtrace_store::StoreError> {
        let keys = store.list_api_keys().await?;
        Ok(if keys.iter().any(|k| !k.revoked) {
            AuthMode::Keys
        } else {
            AuthMode::Local
        })
    }
}

/// How long a key lookup is trusted: a revoked key stops working at most
/// this long after `costtrace keys revoke`, on every server instance.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// How often a server in local mode looks for newly created keys.
pub const KEY_PROBE_INTERVAL: Duration = Duration::from_secs(1);
const KEY_CACHE_MAX: usize = 10_000;

/// The server's authentication state: the mode (a local-mode server switches
/// to keys as soon as a key is created, without a restart; never back) and a
/// short-lived cache of key lookups, so a request costs no store round trip.
#[derive(Debug)]
pub struct Auth {
    keyed: AtomicBool,
    ttl: Duration,
    last_probe: Mutex<Option<Instant>>,
    /// key hash → (tenant scope, or `None` for an unknown/revoked key; when looked up).
    cache: Mutex<HashMap<String, (Option<TenantScope>, Instant)>>,
}

impl Auth {
    /// Starts in `mode`, trusting key lookups for [`KEY_CACHE_TTL`].
    pub fn new(mode: AuthMode) -> Auth {
        Auth::with_cache_ttl(mode, KEY_CACHE_TTL)
    }

    /// Starts in `mode`, trusting key lookups for `ttl` (zero: no cache).
    pub fn with_cache_ttl(mode: AuthMode, ttl: Duration) -> Auth {
        Auth {
            keyed: AtomicBool::new(mode == AuthMode::Keys),
            ttl,
            last_probe: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The current mode.
    pub fn mode(&self) -> AuthMode {
        if self.keyed.load(Ordering::Relaxed) {
            AuthMode::Keys
        } else {
            AuthMode::Local
        }
    }

    /// In local mode, at most once per [`KEY_PROBE_INTERVAL`], asks the store
    /// whether a key was created since; if so, keys are required from now on.
    async fn refresh_mode(&self, store: &impl Store) -> Result<AuthMode, ApiError> {
        if self.mode() == AuthMode::Keys {
            return Ok(AuthMode::Keys);
        }
        let due = match self.last_probe.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| t.elapsed() >= KEY_PROBE_INTERVAL);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => true,
        };
        if due && AuthMode::detect(store).await? == AuthMode::Keys {
            if !self.keyed.swap(true, Ordering::Relaxed) {
                tracing::info!("an API key was created: keys are now required on every request");
            }
            return Ok(AuthMode::Keys);
        }
        Ok(self.mode())
    }

    /// The scope of a key, from the cache when it was looked up less than
    /// the cache TTL ago; `None` for an unknown or revoked key.
    async fn lookup(&self, store: &impl Store, key: &str) -> Result<Option<TenantScope>, ApiError> {
        let hash = hash_key(key);
        if let Ok(cache) = self.cache.lock()
            && let Some((scope, at)) = cache.get(&hash)
            && at.elapsed() < self.ttl
        {
            return Ok(scope.clone());
        }
        let scope = match store.find_api_key(&hash).await? {
            Some(info) if !info.revoked => Some(match info.tenant {
                Some(t) => TenantScope::Tenant(t),
                None => TenantScope::All,
            }),
            _ => None,
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= KEY_CACHE_MAX {
                cache.retain(|_, (_, at)| at.elapsed() < self.ttl);
                if cache.len() >= KEY_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(hash, (scope.clone(), Instant::now()));
        }
        Ok(scope)
    }
}

/// Prefix of every generated key, so leaked keys are recognisable.
pub const KEY_PREFIX: &str = "ct_";

/// A new random API key (`ct_` + 64 hex digits, 256 bits from the OS).
///
/// ```
/// let key = costtrace_server::generate_key().unwrap();
/// assert!(key.starts_with("ct_") && key.len() == 67);
/// ```
pub fn generate_key() -> Result<String, std::io::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        std::io::Error::other(format!("the OS random number generator failed: {e}"))
    })?;
    Ok(format!("{KEY_PREFIX}{}", hex(&bytes)))
}

/// The hash stored for a key (lowercase hex SHA-256).
///
/// ```
/// assert_eq!(costtrace_server::hash_key("k").len(), 64);
/// ```
pub fn hash_key(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// True when the request has no `Host` header or names a loopback host
/// (`localhost`, `*.localhost`, a loopback IP), with or without a port.
pub(crate) fn host_is_loopback(headers: &axum::http::HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // [::1]:8000
        Some(rest) => match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let lower = name.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Who is calling: the tenant scope every read and write is limited to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub TenantScope);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return match state.auth.refresh_mode(&state.store).await? {
                // Local mode trusts whoever reaches the loopback address, so
                // the request must also be *addressed* to it: a web page
                // whose name was rebound to 127.0.0.1 sends its own name as
                // Host and is turned away (DNS rebinding).
                AuthMode::Local if !host_is_loopback(&parts.headers) => {
                    Err(ApiError::Status(
                        StatusCode::FORBIDDEN,
                        "local mode answers only requests addressed to a loopback host (localhost, 127.0.0.1, [::1]); use an API key to reach the server by another name".into(),
                    ))
                }
                AuthMode::Local => Ok(Caller(TenantScope::All)),
                AuthMode::Keys => Err(ApiError::Unauthorized(
                    "missing API key: send Authorization: Bearer KEY (create one with `costtrace keys create`)".into(),
                )),
            };
        };
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            // The scheme is case-insensitive (RFC 9110).
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, k)| k.trim())
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or_else(|| {
                ApiError::Unauthorized("malformed Authorization header: use Bearer KEY".into())
            })?;
        match state.auth.lookup(&state.store, key).await? {
            Some(scope) => Ok(Caller(scope)),
            None => Err(ApiError::Unauthorized("invalid or revoked API key".into())),
        }
    }
}
