//! `/metrics` exports the health of the process's own costtrace recorder
//! (an application that serves this router beside its instrumented code).
//! Its own test binary: it installs the global recorder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::Request;
use costtrace::Usage;
use costtrace::sink::SinkSpec;
use costtrace_pricing::Catalogue;
use costtrace_server::{AppState, AuthMode, app};
use costtrace_store::AnyStore;
use tower::ServiceExt;

#[tokio::test]
async fn metrics_include_recorder_health() {
    let dir = tempfile::tempdir().unwrap();
    let _guard = costtrace::Config::new()
        .sink(SinkSpec::Jsonl(dir.path().join("out.jsonl")))
        .no_spool()
        .init()
        .unwrap();
    for _ in 0..3 {
        costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(10));
    }
    costtrace::flush().unwrap();

    let store = AnyStore::open(&format!("sqlite:{}", dir.path().join("s.db").display()))
        .await
        .unwrap();
    let router = app(AppState::new(store, Catalogue::bundled(), AuthMode::Local));
    let resp = router
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    for line in [
        "# TYPE costtrace_recorder_written_total counter",
        "costtrace_recorder_written_total 3",
        "costtrace_recorder_dropped_total 0",
        "costtrace_recorder_queued 0",
        "costtrace_recorder_spooled 0",
        "costtrace_recorder_last_error 0",
        "costtrace_store_write_errors_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}
