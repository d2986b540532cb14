//! [`Meter`]: watches one provider call's response go by and records its
//! usage when the call ends, however it ends.

use std::time::{Duration, Instant};

use costtrace::{Context, Usage};
use serde_json::Value;
use uuid::Uuid;

use crate::counts::{Counts, ProviderError, member_near};
use crate::sse::SseParser;
use crate::stream::StreamState;
use crate::{Api, Flavor, RequestFacts, anthropic, openai};

/// Most of a whole (non-streamed) response body kept for reading its usage.
const MAX_BODY: usize = 32 << 20;

/// Past [`MAX_BODY`], the last bytes of the body are kept too: a response's
/// `usage` (and, for embeddings, its `model`) comes after its payload, and a
/// 2,048-input embeddings answer in JSON floats is ~70 MB.
const TAIL: usize = 1 << 20;

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The response was received to its end.
    Complete,
    /// The caller stopped reading (dropped the stream or hung up).
    ClientGone,
    /// The connection to the provider broke mid-response.
    Upstream(String),
    /// No response from the provider in time.
    Timeout(Duration),
    /// The request could not be sent (connection refused, DNS, TLS, …).
    Failed(String),
}

#[derive(serde::Deserialize)]
struct BodyHead {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Value,
}

#[derive(Debug, PartialEq, Eq)]
enum Mode {
    Waiting,
    Body,
    Stream,
}

/// Watches one call: give it the response status, then every chunk of the
/// body as it passes; it records one usage (priced by the recorder) when
/// [`Meter::finish`] is called or, failing that, when it is dropped, which
/// counts as the caller going away mid-response (usage so far, partial).
///
/// The record is made in the context current when the meter was created
/// (or the one given to [`Meter::context`]).
///
/// ```
/// use costtrace_providers::{Api, Meter, End, RequestFacts};
/// let cap = costtrace::testing::capture();
/// let mut m = Meter::new("openai", Api::Embeddings, RequestFacts::default());
/// m.response(200, Some("application/json"));
/// m.data(br#"{"object":"list","model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#);
/// m.finish(End::Complete);
/// let u = &cap.usages()[0];
/// assert_eq!((u.model.as_deref(), u.input_tokens), (Some("text-embedding-3-small"), Some(8)));
/// ```
#[derive(Debug)]
pub struct Meter {
    provider: String,
    api: Api,
    facts: RequestFacts,
    ctx: Context,
    started: Instant,
    status: Option<u16>,
    mode: Mode,
    body: Vec<u8>,
    /// The last bytes past [`MAX_BODY`] (at most 2 × [`TAIL`]); empty while
    /// the body fits.
    tail: Vec<u8>,
    sse: SseParser,
    st: StreamState,
    done: bool,
}

impl Meter {
    /// A meter for a call to `provider` (the name prices are looked up by:
    /// `openai`, `anthropic`, …).
    pub fn new(provider: impl Into<String>, api: Api, facts: RequestFacts) -> Meter {
        Meter {
            provider: provider.into(),
            api,
            facts,
            ctx: costtrace::current(),
            started: Instant::now(),
            status: None,
            mode: Mode::Waiting,
            body: Vec::new(),
            tail: Vec::new(),
            sse: SseParser::default(),
            st: StreamState::default(),
            done: false,
        }
    }

    /// Records in `ctx` instead of the context current at creation.
    pub fn context(mut self, ctx: Context) -> Meter {
        self.ctx = ctx;
        self
    }

    /// The response's status and content type arrived.
    pub fn response(&mut self, status: u16, content_type: Option<&str>) {
        self.status = Some(status);
        let sse = content_type.is_some_and(|c| c.starts_with("text/event-stream"));
        self.mode = if (200..300).contains(&status) && (sse || self.facts.stream) {
            Mode::Stream
        } else {
            Mode::Body
        };
    }

    /// A chunk of the response body passed by.
    pub fn data(&mut self, chunk: &[u8]) {
        match self.mode {
            Mode::Stream => {
                let (api, st) = (self.api, &mut self.st);
                self.sse.push(chunk, |ev| {
                    st.events += 1;
                    match api.flavor() {
                        Flavor::OpenAi => openai::stream_event(api, st, &ev),
                        Flavor::Anthropic => anthropic::stream_event(st, &ev),
                    }
                });
            }
            Mode::Body | Mode::Waiting => {
                let room = MAX_BODY.saturating_sub(self.body.len());
                let (head, rest) = chunk.split_at(chunk.len().min(room));
                self.body.extend_from_slice(head);
                if !rest.is_empty() {
                    crate::counts::push_tail(&mut self.tail, rest, TAIL);
                }
            }
        }
    }

    /// True once the stream's end marker was seen.
    pub fn stream_complete(&self) -> bool {
        self.st.complete
    }

    /// Records the call's usage (once; later calls do nothing) and returns
    /// the record's id.
    pub fn finish(&mut self, end: End) -> Option<Uuid> {
        if std::mem::replace(&mut self.done, true) {
            return None;
        }
        let usage = self.usage(&end);
        Some(self.ctx.run(|| costtrace::record(usage)))
    }

    /// The usage this call would be recorded with if it ended now with `end`.
    pub fn usage(&self, end: &End) -> Usage {
        let (model, counts, error, partial) = self.outcome(end);
        let model = model
            .or_else(|| self.facts.model.clone())
            .unwrap_or_else(|| "unknown".to_owned());
        let mut u = Usage::llm(self.provider.clone(), model)
            .operation(self.api.operation())
            .duration(self.started.elapsed())
            .partial(partial);
        let Counts {
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            cache_write_1h_tokens,
            input_audio_tokens,
            output_audio_tokens,
        } = counts;
        let set = |u: Usage, n: Option<u64>, f: fn(Usage, u64) -> Usage| match n {
            Some(n) => f(u, n),
            None => u,
        };
        u = set(u, input_tokens, Usage::input_tokens);
        u = set(u, output_tokens, Usage::output_tokens);
        u = set(u, cache_read_tokens, Usage::cache_read_tokens);
        u = set(u, cache_write_tokens, Usage::cache_write_tokens);
        u = set(u, reasoning_tokens, Usage::reasoning_tokens);
        u = set(u, cache_write_1h_tokens, Usage::cache_write_1h_tokens);
        u = set(u, input_audio_tokens, Usage::input_audio_tokens);
        u = set(u, output_audio_tokens, Usage::output_audio_tokens);
        if let Some(s) = self.status {
            u = u.attr("http_status", s);
        }
        if self.mode == Mode::Stream {
            u = u.attr("stream", "true");
            if self.facts.usage_requested == Some(false) {
                u = u.attr(
                    "usage_reported",
                    "false: the caller set include_usage to false",
                );
            }
            if !self.st.complete {
                u = u.attr("stream_events", self.st.events);
            }
        }
        u = match end {
            End::Complete => u,
            End::ClientGone => u.attr("end", "client_gone"),
            End::Upstream(_) => u.attr("end", "upstream_broken"),
            End::Timeout(_) => u.attr("end", "timeout"),
            End::Failed(_) => u.attr("end", "request_failed"),
        };
        match error {
            Some(e) => u.error(e),
            None => u,
        }
    }

    fn outcome(&self, end: &End) -> (Option<String>, Counts, Option<String>, bool) {
        let end_error = match end {
            End::Complete | End::ClientGone => None,
            End::Upstream(e) => Some(format!("connection to the provider broke: {e}")),
            End::Timeout(d) => Some(format!(
                "timeout: no response from the provider within {} ms",
                d.as_millis()
            )),
            End::Failed(e) => Some(format!("request to the provider failed: {e}")),
        };
        let status = self.status.unwrap_or(0);
        match self.mode {
            // The caller gave up while the provider may already be working
            // (and billing): what it cost is unknown, so partial. Like a
            // caller cutting a stream, not an error.
            Mode::Waiting => {
                let partial = *end == End::ClientGone;
                (None, Counts::default(), end_error, partial)
            }
            Mode::Body if status >= 400 => {
                let e = ProviderError::from_body(self.status, &self.body);
                (None, Counts::default(), Some(e.describe()), false)
            }
            Mode::Body => {
                // Only `model` and `usage` are built; the rest is skipped.
                let head: Option<BodyHead> = if self.tail.is_empty() {
                    serde_json::from_slice(&self.body).ok()
                } else {
                    // Too long to keep whole: `usage` and `model` are read
                    // from the tail (a usage object is the answer's last
                    // member), `model` from the head when not there.
                    member_near(&self.tail, "usage", true).map(|usage| BodyHead {
                        model: member_near(&self.tail, "model", true)
                            .or_else(|| member_near(&self.body, "model", false))
                            .and_then(|m| m.as_str().map(str::to_owned)),
                        usage,
                    })
                };
                let parsed = head.is_some();
                let (model, counts) = match head {
                    Some(h) => {
                        let usage = serde_json::json!({ "usage": h.usage });
                        let counts = match self.api.flavor() {
                            Flavor::OpenAi => openai::usage(&usage),
                            Flavor::Anthropic => anthropic::usage(&usage),
                        };
                        (h.model, counts.unwrap_or_default())
                    }
                    None => (None, Counts::default()),
                };
                let partial = *end != End::Complete || !parsed;
                (model, counts, end_error, partial)
            }
            Mode::Stream => {
                let error = self
                    .st
                    .error
                    .as_ref()
                    .map(ProviderError::describe)
                    .or(end_error);
                let no_usage = self.facts.usage_requested == Some(false);
                let partial = !self.st.complete || no_usage;
                (self.st.model.clone(), self.st.counts, error, partial)
            }
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // A caller that hangs up right after the end marker got everything.
        let end = if self.mode == Mode::Stream && self.st.complete {
            End::Complete
        } else {
            End::ClientGone
        };
        self.finish(end);
    }
}
