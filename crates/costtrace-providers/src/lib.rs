//! # costtrace-providers
//!
//! Reads what AI provider calls cost from their responses, whole or streamed,
//! and records it with costtrace:
//!
//! - [`openai`]: chat completions, embeddings and Responses, for every
//!   OpenAI-compatible endpoint;
//! - [`anthropic`]: Messages, with prompt-cache reads and writes;
//! - [`Meter`]: watches one call's response pass by (any HTTP client, or the
//!   gateway) and records its usage when the call ends, including streams
//!   cut short (usage so far, `partial`) and provider errors (status and
//!   message, never a free successful call);
//! - feature `openai` / `anthropic`: instrumented clients ([`client`]);
//! - feature `mock`: a local provider server replaying recorded responses
//!   ([`mock`]), for tests and benchmarks.

pub mod anthropic;
mod api;
mod counts;
mod meter;
pub mod openai;
pub mod sse;
mod stream;

#[cfg(any(feature = "openai", feature = "anthropic"))]
pub mod client;
#[cfg(feature = "mock")]
pub mod mock;
#[cfg(feature = "transport")]
pub mod transport;

pub use api::{Api, Flavor};
pub use counts::{Counts, ProviderError};
pub use meter::{End, Meter};

use serde_json::Value;

/// What a request body says about the call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The requested model (the response's own model name is preferred).
    pub model: Option<String>,
    /// `"stream": true`.
    pub stream: bool,
    /// What the caller set `stream_options.include_usage` to, if anything.
    pub usage_requested: Option<bool>,
    /// costtrace set `stream_options.include_usage` itself.
    pub usage_injected: bool,
}

impl RequestFacts {
    /// Reads `model` and `stream`.
    pub fn read(body: &Value) -> RequestFacts {
        RequestFacts {
            model: body.get("model").and_then(Value::as_str).map(str::to_owned),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            usage_requested: None,
            usage_injected: false,
        }
    }
}

/// Reads a request body for `api` and adjusts it so the provider reports
/// usage (see [`openai::prepare_request`]). Returns true in
/// `usage_injected` when the body changed.
pub fn prepare_request(api: Api, body: &mut Value) -> RequestFacts {
    match api.flavor() {
        Flavor::OpenAi => openai::prepare_request(api, body),
        Flavor::Anthropic => RequestFacts::read(body),
    }
}
