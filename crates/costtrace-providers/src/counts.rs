//! Token counts, normalised to costtrace's convention, and provider errors.

use serde_json::Value;

/// Token counts of one call in costtrace's convention: `input_tokens` counts
/// every prompt token, cached ones included, and the cache counts are parts
/// of it (so cached tokens are never counted twice); `reasoning_tokens` is a
/// part of `output_tokens`. `None` is "unknown", never zero.
///
/// Within one stream, counts only grow: [`Counts::update`] keeps the larger
/// of the known and the new value, so a stream cut short keeps the latest
/// count it saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// Part of `cache_write_tokens` written with a 1-hour lifetime
    /// (Anthropic's `cache_creation.ephemeral_1h_input_tokens`).
    pub cache_write_1h_tokens: Option<u64>,
    /// Part of `input_tokens` that is audio.
    pub input_audio_tokens: Option<u64>,
    /// Part of `output_tokens` that is audio.
    pub output_audio_tokens: Option<u64>,
}

pub(crate) fn later(known: Option<u64>, new: Option<u64>) -> Option<u64> {
    match (known, new) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Counts {
    /// Takes the newer report within one stream (see the type's docs).
    pub fn update(&mut self, new: Counts) {
        self.input_tokens = later(self.input_tokens, new.input_tokens);
        self.output_tokens = later(self.output_tokens, new.output_tokens);
        self.cache_read_tokens = later(self.cache_read_tokens, new.cache_read_tokens);
        self.cache_write_tokens = later(self.cache_write_tokens, new.cache_write_tokens);
        self.reasoning_tokens = later(self.reasoning_tokens, new.reasoning_tokens);
        self.cache_write_1h_tokens = later(self.cache_write_1h_tokens, new.cache_write_1h_tokens);
        self.input_audio_tokens = later(self.input_audio_tokens, new.input_audio_tokens);
        self.output_audio_tokens = later(self.output_audio_tokens, new.output_audio_tokens);
    }

    /// True when no count is known.
    pub fn is_unknown(&self) -> bool {
        *self == Counts::default()
    }
}

/// What a provider said went wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderError {
    /// The HTTP status, when the error came as a response (not mid-stream).
    pub status: Option<u16>,
    /// The provider's error code or type (`rate_limit_exceeded`,
    /// `overloaded_error`, …).
    pub kind: Option<String>,
    pub message: String,
}

impl ProviderError {
    /// `HTTP 429 rate_limit_exceeded: Rate limit reached …`, the form kept in
    /// a usage record's `error_message`.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(st) = self.status {
            s.push_str(&format!("HTTP {st} "));
        }
        if let Some(k) = &self.kind {
            s.push_str(k);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        s.trim().to_owned()
    }

    /// Reads `{"error": {"message", "code"|"type"}}` (OpenAI-compatible and
    /// Anthropic error bodies and in-stream error events). A body that is
    /// not such JSON becomes the message itself, cut to 500 bytes.
    pub fn from_body(status: Option<u16>, body: &[u8]) -> ProviderError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        if let Some(e) = parsed.as_ref().and_then(error_object) {
            return e.with_status(status);
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let mut end = text.len().min(500);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let message = if text.is_empty() {
            status
                .and_then(|s| http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("no error body")
                .to_owned()
        } else {
            text[..end].to_owned()
        };
        ProviderError {
            status,
            kind: None,
            message,
        }
    }

    fn with_status(mut self, status: Option<u16>) -> ProviderError {
        self.status = status;
        self
    }
}

/// The error in a JSON body or event, if it carries one: nested
/// (`{"error": {"message", "code"|"type"}}`, `{"error": "…"}`) or flat, as in
/// a Responses stream's error event
/// (`{"type": "error", "code", "message", "sequence_number"}`).
pub(crate) fn error_object(v: &Value) -> Option<ProviderError> {
    let Some(e) = v.get("error") else {
        return flat_error(v);
    };
    if let Some(msg) = e.as_str() {
        return Some(ProviderError {
            status: None,
            kind: None,
            message: msg.to_owned(),
        });
    }
    if !e.is_object() {
        return None;
    }
    Some(error_fields(e, &["code", "type"]))
}

/// An error object's kind (the first of `kind_keys` present, a string or a
/// number) and `message`.
fn error_fields(e: &Value, kind_keys: &[&str]) -> ProviderError {
    let kind = kind_keys.iter().find_map(|k| match e.get(*k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    });
    ProviderError {
        status: None,
        kind,
        message: e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

/// `{"type": "error", "code": …, "message": …}`. Its `type` is always
/// `error`, so only `code` names the kind.
fn flat_error(v: &Value) -> Option<ProviderError> {
    if v.get("type").and_then(Value::as_str) != Some("error") {
        return None;
    }
    Some(error_fields(v, &["code"]))
}

pub(crate) fn num(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_u64()
}

/// The value of the member `"key": …` found in `hay` (a piece of a JSON
/// text): its last occurrence when `last`, else its first; `None` when there
/// is none or its value is cut off.
pub(crate) fn member_near(hay: &[u8], key: &str, last: bool) -> Option<Value> {
    let needle = format!("\"{key}\"");
    let needle = needle.as_bytes();
    // Scanned lazily from the chosen end: the first hit that holds a whole
    // value ends the search.
    let mut starts = hay
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i);
    let try_at = |i: usize| -> Option<Value> {
        let mut j = i + needle.len();
        while hay.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        if hay.get(j) != Some(&b':') {
            return None;
        }
        serde_json::Deserializer::from_slice(&hay[j + 1..])
            .into_iter::<Value>()
            .next()?
            .ok()
    };
    if last {
        starts.rev().find_map(try_at)
    } else {
        starts.find_map(try_at)
    }
}

/// Appends `rest` to `tail`, which keeps (at least) the last `keep` bytes of
/// everything appended and at most 2 × `keep`: trimmed now and then, not on
/// every append.
pub(crate) fn push_tail(tail: &mut Vec<u8>, rest: &[u8], keep: usize) {
    if tail.len() + rest.len() > 2 * keep {
        let kept = keep.saturating_sub(rest.len()).min(tail.len());
        tail.drain(..tail.len() - kept);
    }
    let from = rest.len().saturating_sub(2 * keep);
    tail.extend_from_slice(&rest[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_tail_keeps_the_last_bytes_within_twice_the_bound() {
        let mut tail = Vec::new();
        let all: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for piece in all.chunks(333) {
            push_tail(&mut tail, piece, 1000);
            assert!(tail.len() <= 2000);
        }
        assert!(tail.len() >= 1000);
        assert!(all.ends_with(&tail));
        // One piece larger than twice the bound.
        let mut t = vec![1, 2, 3];
        push_tail(&mut t, &all, 1000);
        assert_eq!(t, all[all.len() - 2000..]);
    }

    #[test]
    fn update_keeps_the_latest_known_count() {
        let mut c = Counts {
            input_tokens: Some(10),
            output_tokens: Some(1),
            ..Counts::default()
        };
        c.update(Counts {
            output_tokens: Some(7),
            ..Counts::default()
        });
        assert_eq!(c.input_tokens, Some(10));
        assert_eq!(c.output_tokens, Some(7));
        assert_eq!(c.cache_read_tokens, None);
    }

    #[test]
    fn error_bodies() {
        let e = ProviderError::from_body(Some(502), b"<html>Bad gateway</html>");
        assert_eq!(e.describe(), "HTTP 502 <html>Bad gateway</html>");
        let e = ProviderError::from_body(Some(503), b"");
        assert_eq!(e.describe(), "HTTP 503 Service Unavailable");
    }
}
