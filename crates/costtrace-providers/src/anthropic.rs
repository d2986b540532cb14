//! Anthropic Messages, whole bodies and streams.
//!
//! Anthropic's `input_tokens` leaves out the tokens read from and written to
//! the prompt cache (`cache_read_input_tokens`,
//! `cache_creation_input_tokens`); costtrace's `input_tokens` counts them
//! all, so here input = input + cache read + cache creation, and the cache
//! counts are parts of it. A stream reports input and cache counts in
//! `message_start` and the running output count in each `message_delta`.

use serde_json::Value;

use crate::counts::{Counts, error_object, later, num};
use crate::sse::SseEvent;
use crate::stream::StreamState;

/// Anthropic's own counts, as reported (kept raw within a stream so that a
/// later event reporting only some fields does not disturb the sum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnthropicUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    /// `cache_creation.ephemeral_1h_input_tokens`: the part of the cache
    /// writes kept for an hour (priced higher than 5-minute writes).
    pub cache_creation_1h_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Reads a `usage` object.
    pub fn read(u: &Value) -> AnthropicUsage {
        AnthropicUsage {
            input_tokens: num(u, &["input_tokens"]),
            output_tokens: num(u, &["output_tokens"]),
            cache_creation_input_tokens: num(u, &["cache_creation_input_tokens"]),
            cache_read_input_tokens: num(u, &["cache_read_input_tokens"]),
            cache_creation_1h_input_tokens: num(
                u,
                &["cache_creation", "ephemeral_1h_input_tokens"],
            ),
        }
    }

    /// In costtrace's convention (see the module docs).
    ///
    /// ```
    /// use costtrace_providers::anthropic::AnthropicUsage;
    /// let u = AnthropicUsage { input_tokens: Some(20), output_tokens: Some(100),
    ///     cache_creation_input_tokens: Some(2000), cache_read_input_tokens: Some(3000),
    ///     cache_creation_1h_input_tokens: None };
    /// let c = u.counts();
    /// assert_eq!(c.input_tokens, Some(5020));
    /// assert_eq!((c.cache_write_tokens, c.cache_read_tokens), (Some(2000), Some(3000)));
    /// ```
    pub fn counts(&self) -> Counts {
        let parts = [
            self.input_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        ];
        let input = parts
            .iter()
            .any(Option::is_some)
            .then(|| parts.iter().map(|p| p.unwrap_or(0)).sum());
        Counts {
            input_tokens: input,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_input_tokens,
            cache_write_tokens: self.cache_creation_input_tokens,
            reasoning_tokens: None,
            cache_write_1h_tokens: self.cache_creation_1h_input_tokens.filter(|n| *n > 0),
            input_audio_tokens: None,
            output_audio_tokens: None,
        }
    }

    fn update(&mut self, new: AnthropicUsage) {
        self.input_tokens = later(self.input_tokens, new.input_tokens);
        self.output_tokens = later(self.output_tokens, new.output_tokens);
        self.cache_creation_input_tokens = later(
            self.cache_creation_input_tokens,
            new.cache_creation_input_tokens,
        );
        self.cache_read_input_tokens =
            later(self.cache_read_input_tokens, new.cache_read_input_tokens);
        self.cache_creation_1h_input_tokens = later(
            self.cache_creation_1h_input_tokens,
            new.cache_creation_1h_input_tokens,
        );
    }
}

/// The counts of a whole Messages response.
pub fn usage(body: &Value) -> Option<Counts> {
    body.get("usage")
        .filter(|u| u.is_object())
        .map(|u| AnthropicUsage::read(u).counts())
}

/// Takes one event of a Messages stream.
pub(crate) fn stream_event(st: &mut StreamState, ev: &SseEvent) {
    let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
        return;
    };
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
        .unwrap_or("");
    match ty {
        "message_start" => {
            if let Some(msg) = v.get("message") {
                if let Some(m) = msg.get("model").and_then(Value::as_str) {
                    st.set_model(m);
                }
                if let Some(u) = msg.get("usage") {
                    st.anthropic.update(AnthropicUsage::read(u));
                }
            }
        }
        "message_delta" => {
            if let Some(u) = v.get("usage") {
                st.anthropic.update(AnthropicUsage::read(u));
            }
        }
        "message_stop" => st.complete = true,
        "error" => st.error = error_object(&v),
        _ => {}
    }
    st.counts = st.anthropic.counts();
}
