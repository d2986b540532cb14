//! Fixtures: an app over a fresh store (SQLite in a temp dir, or PostgreSQL in
//! a fresh schema), a one-shot caller, and wire-format record builders.
#![allow(dead_code)]

use std::io::Write;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use costtrace_pricing::Catalogue;
use costtrace_server::{AppState, AuthMode, app, generate_key, hash_key};
use costtrace_store::{AnyStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const PG_ENV: &str = "COSTTRACE_TEST_POSTGRES_URL";

/// A store plus whatever keeps it alive.
pub struct TestStore {
    pub store: AnyStore,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let store = AnyStore::open(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    TestStore {
        store,
        _dir: Some(dir),
    }
}

pub async fn pg_store() -> Option<TestStore> {
    let url = std::env::var(PG_ENV).ok().filter(|u| !u.is_empty())?;
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-csearch_path%3D{schema}");
    Some(TestStore {
        store: AnyStore::open(&scoped).await.unwrap(),
        _dir: None,
    })
}

pub fn report_pg_skipped() {
    if std::env::var(PG_ENV).map(|u| u.is_empty()).unwrap_or(true) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: postgres suite (COSTTRACE_TEST_POSTGRES_URL not set)"
        );
    }
}

/// The app under test, in the given auth mode.
pub fn router(store: &AnyStore, auth: AuthMode) -> Router {
    app(AppState::new(store.clone(), Catalogue::bundled(), auth))
}

/// Creates a key in the store; `None` tenant = admin.
pub async fn key(store: &AnyStore, tenant: Option<&str>) -> String {
    let k = generate_key().unwrap();
    store
        .create_api_key(&hash_key(&k), tenant, "test")
        .await
        .unwrap();
    k
}

/// One request through the router: status and JSON body (`Value::String` of
/// the text when the body is not JSON).
pub async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let raw = body.map(|b| serde_json::to_vec(b).unwrap());
    call_raw(app, method, uri, key, raw).await
}

pub async fn call_raw(
    app: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.map(Body::from).unwrap_or_default()).unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

pub async fn get(app: &Router, uri: &str, key: Option<&str>) -> (StatusCode, Value) {
    call(app, "GET", uri, key, None).await
}

pub async fn ingest(app: &Router, key: Option<&str>, records: &[Value]) -> (StatusCode, Value) {
    call(app, "POST", "/api/ingest", key, Some(&json!(records))).await
}

/// A usage record in the wire format, linked through `attrs`.
pub fn usage(ts: &str, service_type: &str, units: Value, links: Value) -> Value {
    json!({
        "kind": "usage",
        "id": uuid::Uuid::now_v7().to_string(),
        "attrs": links,
        "environment": "production",
        "timestamp": ts,
        "service_type": service_type,
        "units": units,
        "pricing_tier": "standard",
    })
}

/// An LLM usage in the wire format.
pub fn llm(ts: &str, provider: &str, model: &str, tokens: (u64, u64), links: Value) -> Value {
    json!({
        "kind": "usage",
        "id": uuid::Uuid::now_v7().to_string(),
        "attrs": links,
        "environment": "production",
        "timestamp": ts,
        "provider": provider,
        "model": model,
        "input_tokens": tokens.0,
        "output_tokens": tokens.1,
        "pricing_tier": "standard",
    })
}

/// A request record in the wire format; `fields` override the defaults.
pub fn request(id: &str, ts: &str, fields: Value) -> Value {
    let mut v = json!({
        "kind": "request",
        "request_id": id,
        "endpoint": "/api/entities/{entity_id}/files",
        "method": "POST",
        "timestamp": ts,
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), fields) {
        obj.extend(extra);
    }
    v
}

pub fn links(request: &str, task: &str, doc: &str, entity: &str) -> Value {
    json!({"request_id": request, "task_id": task, "doc_id": doc, "entity_id": entity})
}

/// Seed 004's upload: req_123abc of task_abc123 / doc_xyz789 / company_123
/// with 10 pages ($0.20) and 45 chunks ($0.135) plus one unpriced LLM call;
/// and an upload of another tenant (other_co, 5 pages = $0.10).
pub async fn seed_uploads(app: &Router, key: Option<&str>) {
    let (status, body) = ingest(
        app,
        key,
        &[
            request(
                "req_123abc",
                "2025-01-15T10:30:45.123Z",
                json!({"task_id": "task_abc123", "doc_id": "doc_xyz789", "entity_id": "company_123",
                       "operation_type": "file_upload", "task_type": "upload",
                       "status_code": 200, "processing_time_ms": 3500.0}),
            ),
            usage(
                "2025-01-15T10:31:00.000Z",
                "file_processor",
                json!({"pages": 10}),
                links("req_123abc", "task_abc123", "doc_xyz789", "company_123"),
            ),
            usage(
                "2025-01-15T10:32:15.456Z",
                "transformer",
                json!({"chunks": 45}),
                links("req_123abc", "task_abc123", "doc_xyz789", "company_123"),
            ),
            llm(
                "2025-01-15T10:31:30.000Z",
                "acme",
                "foo-1",
                (100, 10),
                links("req_123abc", "task_abc123", "doc_xyz789", "company_123"),
            ),
            request(
                "req_other",
                "2025-01-16T09:00:00.000Z",
                json!({"task_id": "task_other", "doc_id": "doc_other", "entity_id": "other_co",
                       "operation_type": "file_upload", "task_type": "upload",
                       "status_code": 200, "processing_time_ms": 100.0}),
            ),
            usage(
                "2025-01-16T09:00:00.050Z",
                "file_processor",
                json!({"pages": 5}),
                links("req_other", "task_other", "doc_other", "other_co"),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 6, "{body}");
    assert_eq!(body["rejected"], json!([]));
}

/// Close enough for dollars derived from exact nanos.
pub fn usd(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

pub fn approx(v: &Value, expected: f64) {
    assert!((usd(v) - expected).abs() < 1e-9, "{v} != {expected}");
}
