//! OpenAI-compatible APIs: chat completions, embeddings and Responses, whole
//! bodies and server-sent-event streams.
//!
//! Usage fields (both naming schemes are read):
//! - chat and embeddings: `usage.prompt_tokens` (cached ones included),
//!   `usage.completion_tokens`, `usage.prompt_tokens_details.cached_tokens`,
//!   `usage.completion_tokens_details.reasoning_tokens`;
//! - Responses: `usage.input_tokens`, `usage.output_tokens`,
//!   `usage.input_tokens_details.cached_tokens`,
//!   `usage.output_tokens_details.reasoning_tokens`.
//!
//! A chat stream carries usage only in its last chunk, and only when the
//! request set `stream_options.include_usage`; [`prepare_request`] sets it
//! when the caller did not.

use serde_json::{Value, json};

use crate::counts::{Counts, error_object, member_near, num};
use crate::sse::SseEvent;
use crate::stream::StreamState;
use crate::{Api, RequestFacts};

/// The counts in a body's or chunk's `usage` object.
///
/// ```
/// let body = serde_json::json!({"usage": {"prompt_tokens": 1200, "completion_tokens": 300,
///     "prompt_tokens_details": {"cached_tokens": 1000}}});
/// let c = costtrace_providers::openai::usage(&body).unwrap();
/// assert_eq!((c.input_tokens, c.cache_read_tokens, c.output_tokens), (Some(1200), Some(1000), Some(300)));
/// ```
pub fn usage(body: &Value) -> Option<Counts> {
    let u = body.get("usage").filter(|u| u.is_object())?;
    let first = |paths: &[&[&str]]| paths.iter().find_map(|p| num(u, p));
    Some(Counts {
        input_tokens: first(&[&["prompt_tokens"], &["input_tokens"]]),
        output_tokens: first(&[&["completion_tokens"], &["output_tokens"]]),
        cache_read_tokens: first(&[
            &["prompt_tokens_details", "cached_tokens"],
            &["input_tokens_details", "cached_tokens"],
        ]),
        cache_write_tokens: None,
        reasoning_tokens: first(&[
            &["completion_tokens_details", "reasoning_tokens"],
            &["output_tokens_details", "reasoning_tokens"],
        ]),
        // Audio parts, priced at the audio rates (0 is the common case:
        // left out, so text-only calls carry no extra units).
        input_audio_tokens: first(&[
            &["prompt_tokens_details", "audio_tokens"],
            &["input_tokens_details", "audio_tokens"],
        ])
        .filter(|n| *n > 0),
        output_audio_tokens: first(&[
            &["completion_tokens_details", "audio_tokens"],
            &["output_tokens_details", "audio_tokens"],
        ])
        .filter(|n| *n > 0),
        cache_write_1h_tokens: None,
    })
}

/// Reads what a request says about the call and, for a streamed chat
/// completion whose caller did not say whether it wants usage, asks for it
/// (`stream_options.include_usage: true`). Returns true when `body` changed.
///
/// ```
/// use costtrace_providers::{openai, Api};
/// let mut body = serde_json::json!({"model": "gpt-4o", "stream": true, "messages": []});
/// let facts = openai::prepare_request(Api::ChatCompletions, &mut body);
/// assert!(facts.usage_injected);
/// assert_eq!(body["stream_options"]["include_usage"], true);
/// ```
pub fn prepare_request(api: Api, body: &mut Value) -> RequestFacts {
    let mut facts = RequestFacts::read(body);
    if api == Api::ChatCompletions && facts.stream {
        let asked = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool);
        facts.usage_requested = asked;
        if asked.is_none()
            && let Some(obj) = body.as_object_mut()
        {
            match obj.get_mut("stream_options").and_then(Value::as_object_mut) {
                Some(opts) => {
                    opts.insert("include_usage".into(), Value::Bool(true));
                }
                None => {
                    obj.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            facts.usage_injected = true;
        }
    }
    facts
}

/// Takes one event of a chat completions or Responses stream.
pub(crate) fn stream_event(api: Api, st: &mut StreamState, ev: &SseEvent) {
    let data = ev.data.trim();
    if data == "[DONE]" {
        st.complete = true;
        return;
    }
    let v = match serde_json::from_str::<Value>(data) {
        Ok(v) => v,
        // Too long to keep whole: what usage needs, from both ends.
        Err(_) => match ev
            .data_tail
            .as_deref()
            .and_then(|t| from_ends(api, data, t))
        {
            Some(v) => v,
            None => return,
        },
    };
    if let Some(e) = error_object(&v) {
        st.error = Some(e);
        return;
    }
    match api {
        Api::Responses => responses_event(st, &v),
        _ => {
            if let Some(m) = v.get("model").and_then(Value::as_str) {
                st.set_model(m);
            }
            if let Some(c) = usage(&v) {
                st.counts.update(c);
            }
        }
    }
}

/// The parts of an over-long event that usage needs, from its first bytes
/// (`type`, and the model named near the start) and its last (`usage`, a
/// response's last member), in the shape of the event: for the Responses
/// API `{"type", "response": {"model", "usage"}}`, else `{"model", "usage"}`.
fn from_ends(api: Api, head: &str, tail: &str) -> Option<Value> {
    let (head, tail) = (head.as_bytes(), tail.as_bytes());
    let usage = member_near(tail, "usage", true)?;
    let model = member_near(head, "model", false).unwrap_or(Value::Null);
    Some(match api {
        Api::Responses => {
            let ty = member_near(head, "type", false).unwrap_or(Value::Null);
            json!({ "type": ty, "response": { "model": model, "usage": usage } })
        }
        _ => json!({ "model": model, "usage": usage }),
    })
}

fn responses_event(st: &mut StreamState, v: &Value) {
    let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
    let Some(resp) = v.get("response") else {
        return;
    };
    if let Some(m) = resp.get("model").and_then(Value::as_str) {
        st.set_model(m);
    }
    if let Some(c) = usage(resp) {
        st.counts.update(c);
    }
    match ty {
        "response.completed" | "response.incomplete" => st.complete = true,
        "response.failed" => {
            st.complete = true;
            if let Some(e) = resp.get("error").filter(|e| e.is_object()) {
                st.error = error_object(&json!({ "error": e }));
            }
        }
        _ => {}
    }
}
