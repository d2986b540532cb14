//! Wire types shared by every costtrace crate.
//!
//! A [`Record`] is what the instrumentation library produces, what sinks and
//! stores persist and what the HTTP API ingests and returns. It has three
//! kinds, tagged by the JSON field `kind`: [`ScopeRecord`], [`UsageRecord`]
//! and [`RequestRecord`].
//!
//! This crate does no I/O and starts no runtime: it is safe to depend on from
//! anywhere.

mod environment;
mod money;
mod record;
pub mod secrets;
pub mod time;

pub use environment::{Environment, EnvironmentError};
pub use money::{NANOS_PER_USD, nanos_to_usd, usd_to_nanos};
pub use record::{
    Attrs, ItemError, MAX_SCOPE_ERRORS, PricingTier, Record, RequestRecord, ScopeRecord,
    UsageRecord,
};
pub use time::Timestamp;

/// Record ids are UUIDv7: time-ordered, so stores index them cheaply.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
