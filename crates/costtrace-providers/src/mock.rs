//! A local provider server that replays the recorded fixtures (feature
//! `mock`), for tests and benchmarks: no network, real HTTP on loopback.
//!
//! Which fixture answers:
//! - header `x-mock-fixture: NAME` picks one of [`FIXTURES`] by name;
//! - otherwise the path and body do: `…/chat/completions` (streamed with
//!   usage only when the request set `stream_options.include_usage: true`,
//!   as OpenAI does), `…/embeddings`, `…/responses`, `…/messages`,
//!   `…/messages/count_tokens`.
//!
//! `x-mock-delay-ms: N` waits before answering; `x-mock-event-delay-ms: N`
//! waits between the events of a stream. A fixture marked `cut` breaks the
//! connection after its last byte, like a network failure mid-stream.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mock = costtrace_providers::mock::MockProvider::start().await?;
//! let base_url = format!("{}/v1", mock.url()); // point an OpenAI client here
//! # let _ = base_url; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri, header};
use axum::serve::ListenerExt as _;
use futures_util::stream;
use serde_json::Value;

/// One recorded response.
#[derive(Clone, Copy, Debug)]
pub struct Fixture {
    pub name: &'static str,
    pub status: u16,
    pub content_type: &'static str,
    pub body: &'static str,
    /// The connection breaks after the body (a stream cut by the network).
    pub cut: bool,
}

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream; charset=utf-8";

macro_rules! fixture {
    ($name:literal, $ext:literal, $status:literal, $ct:expr, $cut:literal) => {
        Fixture {
            name: $name,
            status: $status,
            content_type: $ct,
            body: include_str!(concat!("../tests/fixtures/", $name, $ext)),
            cut: $cut,
        }
    };
}

/// Every fixture, by name (the file under `tests/fixtures/` without its
/// extension).
pub const FIXTURES: &[Fixture] = &[
    fixture!("openai/chat", ".json", 200, JSON, false),
    fixture!("openai/chat_stream", ".sse", 200, SSE, false),
    fixture!("openai/chat_stream_no_usage", ".sse", 200, SSE, false),
    fixture!("openai/chat_stream_cut", ".sse", 200, SSE, true),
    fixture!("openai/embeddings", ".json", 200, JSON, false),
    fixture!("openai/responses", ".json", 200, JSON, false),
    fixture!("openai/responses_stream", ".sse", 200, SSE, false),
    fixture!("openai/responses_stream_error", ".sse", 200, SSE, false),
    fixture!("openai/error_429", ".json", 429, JSON, false),
    fixture!("openai/error_500", ".json", 500, JSON, false),
    fixture!("anthropic/count_tokens", ".json", 200, JSON, false),
    fixture!("anthropic/messages", ".json", 200, JSON, false),
    fixture!("anthropic/messages_stream", ".sse", 200, SSE, false),
    fixture!("anthropic/messages_stream_cut", ".sse", 200, SSE, true),
    fixture!("anthropic/messages_stream_error", ".sse", 200, SSE, false),
    fixture!("anthropic/error_429", ".json", 429, JSON, false),
    fixture!("anthropic/error_529", ".json", 529, JSON, false),
];

/// The fixture named `name`.
pub fn fixture(name: &str) -> Option<&'static Fixture> {
    FIXTURES.iter().find(|f| f.name == name)
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl SeenRequest {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How many received requests are kept (a benchmark sends millions).
const KEEP: usize = 256;

#[derive(Clone, Default)]
struct MockState {
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

/// The mock's axum app (for use with your own listener).
pub fn router() -> Router {
    app(MockState::default())
}

fn app(state: MockState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// A running mock on a free loopback port; stops when dropped.
#[derive(Debug)]
pub struct MockProvider {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MockProvider {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start() -> std::io::Result<MockProvider> {
        Self::bind("127.0.0.1:0".parse().map_err(std::io::Error::other)?).await
    }

    /// Binds `addr` and serves on the current tokio runtime.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<MockProvider> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = MockState::default();
        let seen = state.seen.clone();
        // Small writes go out at once (no Nagle), as a provider's would.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app(state)).await;
        });
        Ok(MockProvider { addr, seen, task })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last requests received, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header_ms(h: &HeaderMap, name: &str) -> Option<Duration> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

fn choose(path: &str, headers: &HeaderMap, body: &Value) -> Option<&'static Fixture> {
    if let Some(name) = headers.get("x-mock-fixture").and_then(|v| v.to_str().ok()) {
        return fixture(name);
    }
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let path = path.trim_end_matches('/');
    let name = if path.ends_with("/chat/completions") {
        let usage = body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
        match (stream, usage) {
            (false, _) => "openai/chat",
            (true, true) => "openai/chat_stream",
            (true, false) => "openai/chat_stream_no_usage",
        }
    } else if path.ends_with("/embeddings") {
        "openai/embeddings"
    } else if path.ends_with("/responses") {
        if stream {
            "openai/responses_stream"
        } else {
            "openai/responses"
        }
    } else if path.ends_with("/messages/count_tokens") {
        "anthropic/count_tokens"
    } else if path.ends_with("/messages") {
        if stream {
            "anthropic/messages_stream"
        } else {
            "anthropic/messages"
        }
    } else {
        return None;
    };
    fixture(name)
}

async fn handle(
    State(state): State<MockState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let chosen = choose(uri.path(), &headers, &json);
    if let Ok(mut seen) = state.seen.lock() {
        if seen.len() >= KEEP {
            seen.remove(0);
        }
        seen.push(SeenRequest {
            method: method.to_string(),
            path: uri.path().to_owned(),
            headers: headers.clone(),
            body,
        });
    }
    if let Some(d) = header_ms(&headers, "x-mock-delay-ms") {
        tokio::time::sleep(d).await;
    }
    let Some(f) = chosen else {
        let mut r = Response::new(Body::from(
            r#"{"error":{"message":"mock: no fixture for this request","type":"invalid_request_error","param":null,"code":"not_found"}}"#,
        ));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let event_delay = header_ms(&headers, "x-mock-event-delay-ms");
    let is_stream = f.content_type.starts_with("text/event-stream");
    let body = if is_stream || f.cut {
        // One chunk per event, so the stream really streams.
        let mut parts: Vec<Bytes> = Vec::new();
        let mut rest = f.body;
        while let Some(i) = rest.find("\n\n") {
            parts.push(Bytes::from_static(&rest.as_bytes()[..i + 2]));
            rest = &rest[i + 2..];
        }
        if !rest.is_empty() {
            parts.push(Bytes::from_static(rest.as_bytes()));
        }
        let cut = f.cut;
        let items = stream::unfold(
            (parts.into_iter(), true, false),
            move |(mut it, first, ended)| async move {
                if ended {
                    return None;
                }
                match it.next() {
                    Some(b) => {
                        if let (Some(d), false) = (event_delay, first) {
                            tokio::time::sleep(d).await;
                        }
                        Some((Ok::<_, std::io::Error>(b), (it, false, false)))
                    }
                    None if cut => {
                        // Let what was sent reach the client before the cut.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Some((
                            Err(std::io::Error::other("mock: connection cut")),
                            (it, false, true),
                        ))
                    }
                    None => None,
                }
            },
        );
        Body::from_stream(items)
    } else {
        Body::from(f.body)
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = header::HeaderValue::from_str(f.content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        "x-request-id",
        header::HeaderValue::from_static("req_mock_0001"),
    );
    r
}

/// Waits (up to 10 s) until `cap` holds at least `n` usage records and
/// returns them: a call is recorded when its response ends, which a server
/// may see a moment after the client.
pub async fn wait_for_usages(
    cap: &costtrace::testing::Capture,
    n: usize,
) -> Vec<costtrace::UsageRecord> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let u = cap.usages();
        if u.len() >= n || std::time::Instant::now() > deadline {
            return u;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
