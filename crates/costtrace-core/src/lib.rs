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

/// Names of the token counts a model usage may carry in its `units`, beyond
/// the five token fields: each is a *part* of one of them, priced at its own
/// rate (Anthropic's 1-hour cache writes, OpenAI's audio tokens). The wire
/// format stays the same: they are units of the usage, and stores keep them
/// as such.
pub mod token_units {
    /// Part of `cache_write_tokens` written with a 1-hour lifetime.
    pub const CACHE_WRITE_1H: &str = "cache_write_1h_tokens";
    /// Part of `input_tokens` that is audio (cached audio included).
    pub const INPUT_AUDIO: &str = "input_audio_tokens";
    /// Part of `cache_read_tokens` that is audio.
    pub const CACHE_AUDIO_READ: &str = "cache_audio_read_tokens";
    /// Part of `output_tokens` that is audio.
    pub const OUTPUT_AUDIO: &str = "output_audio_tokens";
}

/// Record ids are UUIDv7: time-ordered, so stores index them cheaply.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
