#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The gateway over real loopback HTTP, in front of the mock provider.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use costtrace::testing::Capture;
use costtrace_gateway::{Gateway, GatewayConfig, StaticKeys, Upstream};
use costtrace_providers::mock::{MockProvider, fixture, wait_for_usages};
use http_body_util::{BodyExt, Full};

const OPENAI_KEY: &str = "sk-proj-TESTKEY0123456789abcdefghijklmnop";
const ANTHROPIC_KEY: &str = "sk-ant-api03-TESTKEY0123456789abcdefghij";

struct Setup {
    cap: Capture,
    mock: MockProvider,
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn setup(
    config: impl FnOnce(GatewayConfig) -> GatewayConfig,
    keys: Option<StaticKeys>,
) -> Setup {
    let cap = costtrace::testing::capture();
    let mock = MockProvider::start().await.unwrap();
    let cfg = config(GatewayConfig::new(vec![
        Upstream::new("openai", &format!("{}/", mock.url())).unwrap(),
        Upstream::new("anthropic", &mock.url()).unwrap(),
    ]));
    let gw = match keys {
        Some(k) => Gateway::with_keys(cfg, Arc::new(k)).unwrap(),
        None => Gateway::new(cfg).unwrap(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gw.serve_until(listener, async {
        let _ = rx.await;
    }));
    Setup {
        cap,
        mock,
        url,
        _stop: tx,
    }
}

fn client() -> costtrace_providers::transport::HttpsClient<Full<Bytes>> {
    costtrace_providers::transport::https_client().unwrap()
}

fn post(
    url: String,
    body: serde_json::Value,
    headers: &[(&str, &str)],
) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body.to_string()))).unwrap()
}

async fn send(req: http::Request<Full<Bytes>>) -> (u16, http::HeaderMap, Result<Bytes, String>) {
    let resp = client().request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
    (status, headers, body)
}

fn fixture_bytes(name: &str) -> &'static [u8] {
    fixture(name).unwrap().body.as_bytes()
}

#[tokio::test]
async fn chat_completion_passes_through_and_is_recorded_with_header_context() {
    let s = setup(|c| c, None).await;
    let (status, headers, body) = send(post(
        format!("{}/openai/v1/chat/completions?api-version=1", s.url),
        serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        &[
            ("authorization", &format!("Bearer {OPENAI_KEY}")),
            ("x-costtrace-tenant", "acme"),
            ("x-costtrace-user", "u_42"),
            ("x-costtrace-task", "task_7"),
            ("x-costtrace-doc", "doc_9"),
            ("x-costtrace-request", "req_1"),
            ("accept-encoding", "gzip, deflate, br"),
            // Hop-by-hop for this connection only: not forwarded.
            ("connection", "keep-alive, X-Hop-Only"),
            ("x-hop-only", "internal"),
            ("x-end-to-end", "kept"),
        ],
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["x-request-id"], "req_mock_0001",
        "response headers pass"
    );
    assert_eq!(
        body.unwrap().as_ref(),
        fixture_bytes("openai/chat"),
        "byte for byte"
    );

    let u = wait_for_usages(&s.cap, 1).await;
    assert_eq!(u.len(), 1);
    let u = &u[0];
    assert_eq!(u.provider.as_deref(), Some("openai"));
    assert_eq!(u.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens),
        (Some(1200), Some(300), Some(1024))
    );
    // (1200 - 1024) × 2500 + 1024 × 1250 + 300 × 10000 nano-USD
    assert_eq!(u.cost_nanos, Some(4_720_000));
    for (k, v) in [
        ("tenant_id", "acme"),
        ("user_id", "u_42"),
        ("task_id", "task_7"),
        ("doc_id", "doc_9"),
        ("request_id", "req_1"),
    ] {
        assert_eq!(u.attrs[k], v, "{k}");
    }

    let seen = &s.mock.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.headers["accept-encoding"], "identity",
        "metered responses come uncompressed, so their usage can be read"
    );
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {OPENAI_KEY}"),
        "provider key passes"
    );
    assert!(
        seen.headers
            .keys()
            .all(|k| !k.as_str().starts_with("x-costtrace-")),
        "costtrace headers stay at the gateway"
    );
    assert!(
        !seen.headers.contains_key("x-hop-only"),
        "a header the Connection header names is hop-by-hop"
    );
    assert_eq!(seen.headers["x-end-to-end"], "kept");
    // The provider key reaches no record.
    let all = serde_json::to_string(&s.cap.records()).unwrap();
    assert!(!all.contains("TESTKEY"), "{all}");
}

#[tokio::test]
async fn a_stream_gets_usage_injected_and_streams_unchanged() {
    let s = setup(|c| c, None).await;
    let (status, headers, body) = send(post(
        format!("{}/openai/v1/chat/completions", s.url),
        serde_json::json!({"model": "gpt-4o-mini", "stream": true, "messages": []}),
        &[("baggage", "tenant_id=globex,user_id=u%207")],
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(body.unwrap().as_ref(), fixture_bytes("openai/chat_stream"));
    let seen = s.mock.requests()[0].json();
    assert_eq!(seen["stream_options"]["include_usage"], true, "injected");
    assert_eq!(seen["messages"], serde_json::json!([]), "the rest is kept");

    let u = &wait_for_usages(&s.cap, 1).await[0];
    assert_eq!((u.input_tokens, u.output_tokens), (Some(19), Some(9)));
    assert_eq!(u.cost_nanos, Some(19 * 150 + 9 * 600));
    assert!(!u.partial);
    assert_eq!(u.attrs["tenant_id"], "globex");
    assert_eq!(u.attrs["user_id"], "u 7");
}

#[tokio::test]
async fn injecting_stream_usage_keeps_every_other_byte_as_sent() {
    let s = setup(|c| c, None).await;
    // Key order matters: a JSON schema's `properties` order steers the model.
    let sent = concat!(
        " {\"stream\": true, \"model\":\"gpt-4o-mini\",\n",
        "  \"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",",
        "\"schema\":{\"type\":\"object\",\"properties\":{\"reasoning\":{\"type\":\"string\"},",
        "\"answer\":{\"type\":\"string\",\"description\":\"{\\\"x\\\": 1}\"}}}}},",
        "\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\\"q\\\"\"}]}\n"
    );
    let req = http::Request::post(format!("{}/openai/v1/chat/completions", s.url))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(sent.as_bytes())))
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, 200);
    assert_eq!(body.unwrap().as_ref(), fixture_bytes("openai/chat_stream"));
    let expected = format!(
        " {{\"stream_options\":{{\"include_usage\":true}},{}",
        &sent[2..]
    );
    let seen = &s.mock.requests()[0];
    assert_eq!(
        String::from_utf8_lossy(&seen.body),
        expected,
        "only the insertion differs"
    );
    assert_eq!(seen.headers["content-length"], expected.len().to_string());
    let u = &wait_for_usages(&s.cap, 1).await[0];
    assert_eq!((u.input_tokens, u.output_tokens), (Some(19), Some(9)));
    assert!(!u.partial);
}

#[tokio::test]
async fn streams_are_not_buffered() {
    let s = setup(|c| c, None).await;
    let req = post(
        format!("{}/anthropic/v1/messages", s.url),
        serde_json::json!({"model": "claude-3-5-haiku-latest", "stream": true, "max_tokens": 64}),
        &[
            ("x-api-key", ANTHROPIC_KEY),
            ("x-mock-event-delay-ms", "40"),
        ],
    );
    let started = Instant::now();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(
        first
            .data_ref()
            .unwrap()
            .starts_with(b"event: message_start")
    );
    let mut rest = 0;
    while let Some(f) = body.frame().await {
        f.unwrap();
        rest += 1;
    }
    let total = started.elapsed();
    // 16 events 40 ms apart: the first one must arrive long before the last.
    assert!(rest >= 10, "{rest} frames after the first");
    assert!(
        first_at < Duration::from_millis(200),
        "first event after {first_at:?}"
    );
    assert!(
        total >= Duration::from_millis(500),
        "whole stream took {total:?}"
    );
    let u = &wait_for_usages(&s.cap, 1).await[0];
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens),
        (Some(1825), Some(15), Some(1800))
    );
    assert_eq!(u.cost_nanos, Some(224_000));
}

#[tokio::test]
async fn provider_errors_pass_through_and_are_recorded_as_errors() {
    let s = setup(|c| c, None).await;
    let (status, _, body) = send(post(
        format!("{}/openai/v1/chat/completions", s.url),
        serde_json::json!({"model": "gpt-4o", "messages": []}),
        &[("x-mock-fixture", "openai/error_429")],
    ))
    .await;
    assert_eq!(status, 429);
    assert_eq!(body.unwrap().as_ref(), fixture_bytes("openai/error_429"));
    let (status, _, _) = send(post(
        format!("{}/anthropic/v1/messages", s.url),
        serde_json::json!({"model": "claude-sonnet-4-20250514", "max_tokens": 10}),
        &[("x-mock-fixture", "anthropic/error_529")],
    ))
    .await;
    assert_eq!(status, 529);
    let u = wait_for_usages(&s.cap, 2).await;
    let rate = u
        .iter()
        .find(|u| u.provider.as_deref() == Some("openai"))
        .unwrap();
    assert_eq!(rate.attrs["http_status"], "429");
    assert!(
        rate.error_message
            .as_deref()
            .unwrap()
            .starts_with("HTTP 429 rate_limit_exceeded: Rate limit reached")
    );
    assert_eq!((rate.cost_nanos, rate.input_tokens), (None, None));
    let over = u
        .iter()
        .find(|u| u.provider.as_deref() == Some("anthropic"))
        .unwrap();
    assert_eq!(
        over.error_message.as_deref(),
        Some("HTTP 529 overloaded_error: Overloaded")
    );
    assert_eq!(over.model.as_deref(), Some("claude-sonnet-4-20250514"));
}

#[tokio::test]
async fn an_upstream_cut_stream_is_partial() {
    let s = setup(|c| c, None).await;
    let (status, _, body) = send(post(
        format!("{}/anthropic/v1/messages", s.url),
        serde_json::json!({"model": "claude-3-5-haiku-latest", "stream": true, "max_tokens": 64}),
        &[("x-mock-fixture", "anthropic/messages_stream_cut")],
    ))
    .await;
    assert_eq!(status, 200);
    assert!(body.is_err(), "the client sees the cut too");
    let u = &wait_for_usages(&s.cap, 1).await[0];
    assert!(u.partial);
    assert_eq!(u.attrs["end"], "upstream_broken");
    assert!(
        u.error_message
            .as_deref()
            .unwrap()
            .starts_with("connection to the provider broke")
    );
    assert_eq!((u.input_tokens, u.output_tokens), (Some(1825), Some(1)));
    assert_eq!(u.cost_nanos, Some(25 * 800 + 1800 * 80 + 4000));
}

#[tokio::test]
async fn a_client_hanging_up_mid_stream_records_usage_so_far() {
    let s = setup(|c| c, None).await;
    let req = post(
        format!("{}/anthropic/v1/messages", s.url),
        serde_json::json!({"model": "claude-3-5-haiku-latest", "stream": true, "max_tokens": 64}),
        &[("x-mock-event-delay-ms", "50")],
    );
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let _first = body.frame().await.unwrap().unwrap();
    drop(body);
    let u = &wait_for_usages(&s.cap, 1).await[0];
    assert!(u.partial);
    assert_eq!(u.attrs["end"], "client_gone");
    assert_eq!(u.input_tokens, Some(1825));
    assert_eq!(u.error_message, None);
}

#[tokio::test]
async fn a_client_hanging_up_before_the_response_records_a_partial_call() {
    let s = setup(|c| c, None).await;
    let req = post(
        format!("{}/openai/v1/chat/completions", s.url),
        serde_json::json!({"model": "gpt-4o", "messages": []}),
        &[("x-mock-delay-ms", "1500")],
    );
    let gave_up = tokio::time::timeout(Duration::from_millis(200), client().request(req)).await;
    assert!(gave_up.is_err(), "the mock answers after 1500 ms");
    let u = &wait_for_usages(&s.cap, 1).await[0];
    assert!(u.partial);
    assert_eq!(u.attrs["end"], "client_gone");
    assert_eq!(u.error_message, None);
    assert_eq!(u.model.as_deref(), Some("gpt-4o"));
    assert_eq!(u.cost_nanos, None);
}

#[tokio::test]
async fn a_slow_upstream_times_out_as_an_error() {
    let s = setup(|c| c.timeout(Duration::from_millis(150)), None).await;
    let (status, _, body) = send(post(
        format!("{}/openai/v1/embeddings", s.url),
        serde_json::json!({"model": "text-embedding-3-small", "input": "x"}),
        &[("x-mock-delay-ms", "2000")],
    ))
    .await;
    assert_eq!(status, 504);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("did not answer within 150 ms"));
    let u = &wait_for_usages(&s.cap, 1).await[0];
    assert_eq!(
        u.error_message.as_deref(),
        Some("timeout: no response from the provider within 150 ms")
    );
    assert_eq!(u.model.as_deref(), Some("text-embedding-3-small"));
    assert_eq!(u.cost_nanos, None);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_and_an_error_record() {
    let cap = costtrace::testing::capture();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gateway::new(GatewayConfig::new(vec![
        Upstream::new("openai", &format!("http://127.0.0.1:{port}")).unwrap(),
    ]))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gw.serve(listener));
    let (status, _, _) = send(post(
        format!("{url}/openai/v1/chat/completions"),
        serde_json::json!({"model": "gpt-4o", "messages": []}),
        &[],
    ))
    .await;
    assert_eq!(status, 502);
    let u = &wait_for_usages(&cap, 1).await[0];
    assert!(
        u.error_message
            .as_deref()
            .unwrap()
            .starts_with("request to the provider failed")
    );
    assert_eq!(u.attrs["end"], "request_failed");
}

/// Collects every log event's fields as text.
struct LogText(Arc<std::sync::Mutex<String>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogText {
    fn on_event(&self, ev: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields<'a>(&'a mut String);
        impl tracing::field::Visit for Fields<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={v:?} ", f.name()));
            }
        }
        let mut text = self.0.lock().unwrap();
        ev.record(&mut Fields(&mut text));
        text.push('\n');
    }
}

#[tokio::test]
async fn provider_keys_reach_neither_logs_nor_records() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = Arc::new(std::sync::Mutex::new(String::new()));
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(LogText(logs.clone())),
    );
    let cap = costtrace::testing::capture();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let keys = StaticKeys::new().with("ct_tenant_key_secret", Some("initech"));
    let gw = Gateway::with_keys(
        GatewayConfig::new(vec![
            Upstream::new("openai", &format!("http://127.0.0.1:{port}")).unwrap(),
        ]),
        Arc::new(keys),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gw.serve(listener));
    let (status, _, _) = send(post(
        format!("{url}/openai/v1/chat/completions"),
        serde_json::json!({"model": "gpt-4o", "messages": []}),
        &[
            ("authorization", &format!("Bearer {OPENAI_KEY}")),
            ("x-api-key", ANTHROPIC_KEY),
            ("x-costtrace-key", "ct_tenant_key_secret"),
        ],
    ))
    .await;
    assert_eq!(status, 502);
    let u = &wait_for_usages(&cap, 1).await[0];
    assert_eq!(u.attrs["tenant_id"], "initech");
    let logs = logs.lock().unwrap().clone();
    assert!(
        logs.contains("upstream request failed"),
        "the failure is logged: {logs}"
    );
    let records = serde_json::to_string(&cap.records()).unwrap();
    for secret in ["TESTKEY", "ct_tenant_key_secret"] {
        assert!(!logs.contains(secret), "{secret} in logs: {logs}");
        assert!(!records.contains(secret), "{secret} in records: {records}");
    }
}

#[tokio::test]
async fn a_costtrace_key_names_the_tenant() {
    let keys = StaticKeys::new()
        .with("ct_tenant_key", Some("initech"))
        .with("ct_admin_key", None);
    let s = setup(|c| c.require_key(true), Some(keys)).await;
    let body = serde_json::json!({"model": "text-embedding-3-small", "input": "x"});
    let url = format!("{}/openai/v1/embeddings", s.url);
    let (st, _, _) = send(post(
        url.clone(),
        body.clone(),
        &[
            ("x-costtrace-key", "ct_tenant_key"),
            ("x-costtrace-tenant", "someone-else"),
            ("baggage", "entity_id=someone-else"),
        ],
    ))
    .await;
    assert_eq!(st, 200);
    let (st, _, _) = send(post(
        url.clone(),
        body.clone(),
        &[
            ("x-costtrace-key", "ct_admin_key"),
            ("x-costtrace-tenant", "hooli"),
        ],
    ))
    .await;
    assert_eq!(st, 200);
    let (st, _, _) = send(post(
        url.clone(),
        body.clone(),
        &[("x-costtrace-key", "ct_wrong")],
    ))
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = send(post(url.clone(), body.clone(), &[])).await;
    assert_eq!(st, 401, "a key is required");
    let u = wait_for_usages(&s.cap, 2).await;
    assert_eq!(u.len(), 2, "rejected calls are not forwarded or recorded");
    assert_eq!(u[0].attrs["tenant_id"], "initech", "the key's tenant wins");
    assert_eq!(
        u[0].attrs["entity_id"], "initech",
        "and is the entity the server scopes it by"
    );
    assert_eq!(
        u[1].attrs["tenant_id"], "hooli",
        "an admin key keeps the header's"
    );
    assert_eq!(u[0].cost_nanos, Some(160));
    assert_eq!(s.mock.requests().len(), 2);
    assert!(
        s.mock
            .requests()
            .iter()
            .all(|r| !r.headers.contains_key("x-costtrace-key"))
    );
    let all = serde_json::to_string(&s.cap.records()).unwrap();
    assert!(!all.contains("ct_tenant_key") && !all.contains("ct_admin_key"));
}

#[tokio::test]
async fn other_paths_pass_through_unmetered_and_unknown_upstreams_are_404() {
    let s = setup(|c| c, None).await;
    let req = http::Request::get(format!("{}/openai/v1/models", s.url))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, 404, "the mock's answer, passed through");
    assert_eq!(s.mock.requests()[0].path, "/v1/models");
    let req = http::Request::get(format!("{}/nope/v1/models", s.url))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("no upstream"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(s.cap.usages().is_empty());
}

#[test]
fn upstream_parsing() {
    assert!("openai".parse::<Upstream>().is_err());
    assert!("openai=ftp://x".parse::<Upstream>().is_err());
    assert!("bad name=http://x".parse::<Upstream>().is_err());
    let u: Upstream = "anthropic=https://api.anthropic.com".parse().unwrap();
    assert_eq!(u.flavor, costtrace_providers::Flavor::Anthropic);
    let u: Upstream = "openrouter=https://openrouter.ai/api".parse().unwrap();
    assert_eq!(u.flavor, costtrace_providers::Flavor::OpenAi);
}
