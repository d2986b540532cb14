//! API keys: `Authorization: Bearer KEY`, stored as SHA-256 hashes, each bound
//! to one tenant (entity id) or to admin.

use std::fmt::Write as _;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
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

/// Who is calling: the tenant scope every read and write is limited to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub TenantScope);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return match state.auth {
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
        match state.store.find_api_key(&hash_key(key)).await? {
            Some(info) if !info.revoked => Ok(Caller(match info.tenant {
                Some(t) => TenantScope::Tenant(t),
                None => TenantScope::All,
            })),
            _ => Err(ApiError::Unauthorized("invalid or revoked API key".into())),
        }
    }
}
