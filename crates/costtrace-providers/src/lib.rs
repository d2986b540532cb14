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
mod splice;
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

/// The fields of a request body that matter here; the rest is skipped
/// without being built.
#[derive(serde::Deserialize)]
struct RequestPeek {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<Value>,
}

/// [`prepare_request`] on raw bytes, for proxies: the body changes only when
/// it has to (a streamed chat completion that did not say whether it wants
/// usage), and then only by inserting `stream_options.include_usage: true`;
/// every other byte, key order included, is kept as sent. Then the new bytes
/// are returned. A body that is not JSON gives default facts and is left
/// alone.
///
/// ```
/// use costtrace_providers::{Api, prepare_request_bytes};
/// let (facts, new) = prepare_request_bytes(Api::ChatCompletions, br#"{"model":"gpt-4o","messages":[]}"#);
/// assert_eq!((facts.model.as_deref(), new), (Some("gpt-4o"), None));
/// let (facts, new) = prepare_request_bytes(Api::ChatCompletions, br#"{"model":"gpt-4o","stream":true}"#);
/// assert!(facts.usage_injected && new.is_some());
/// ```
pub fn prepare_request_bytes(api: Api, body: &[u8]) -> (RequestFacts, Option<Vec<u8>>) {
    let Ok(peek) = serde_json::from_slice::<RequestPeek>(body) else {
        return (RequestFacts::default(), None);
    };
    let stream = peek.stream.unwrap_or(false);
    let asked = peek
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool);
    if api == Api::ChatCompletions
        && stream
        && asked.is_none()
        && let Some(new) = splice::ask_for_stream_usage(body)
    {
        let facts = RequestFacts {
            model: peek.model,
            stream,
            usage_requested: None,
            usage_injected: true,
        };
        return (facts, Some(new));
    }
    let facts = RequestFacts {
        model: peek.model,
        stream,
        usage_requested: if api == Api::ChatCompletions && stream {
            asked
        } else {
            None
        },
        usage_injected: false,
    };
    (facts, None)
}
