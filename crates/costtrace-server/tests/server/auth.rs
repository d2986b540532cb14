//! API keys and tenant isolation on every endpoint.

use std::sync::Arc;
use std::time::Duration;

use costtrace_pricing::Catalogue;
use costtrace_server::{AppState, Auth, AuthMode, KEY_PROBE_INTERVAL, app};
use costtrace_store::{AnyStore, Store};
use serde_json::json;

use crate::common::*;

const READS: [&str; 6] = [
    "/api/requests",
    "/api/requests/req_123abc",
    "/api/tasks/task_abc123/cost",
    "/api/docs/doc_xyz789/cost",
    "/api/entities/company_123/cost",
    "/api/usage/summary?group_by=entity_id",
];

pub async fn keys_are_required_and_checked(store: &AnyStore) {
    let admin = key(store, None).await;
    // No cache here, so that the revocation below applies at once.
    let app = app(AppState {
        auth: Arc::new(Auth::with_cache_ttl(AuthMode::Keys, Duration::ZERO)),
        ..AppState::new(store.clone(), Catalogue::bundled(), AuthMode::Keys)
    });
    seed_uploads(&app, Some(&admin)).await;
    for uri in READS {
        let (status, body) = get(&app, uri, None).await;
        assert_eq!(status, 401, "{uri}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("API key"),
            "{body}"
        );
        let (status, _) = get(&app, uri, Some("ct_wrong")).await;
        assert_eq!(status, 401, "{uri}");
        let (status, body) = get(&app, uri, Some(&admin)).await;
        assert_eq!(status, 200, "{uri}: {body}");
    }
    let (status, _) = ingest(&app, None, &[]).await;
    assert_eq!(status, 401);
    let (status, _) = call_raw(&app, "GET", "/api/requests", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = call_raw_with_auth(&app, &format!("bearer {admin}")).await;
    assert_eq!(status, 200);
    for bad in ["Basic abc", "Bearer", "Bearer ", "ct_only"] {
        let (status, body) = call_raw_with_auth(&app, bad).await;
        assert_eq!(status, 401, "{bad}: {body}");
    }
    // Health stays open for load balancers.
    assert_eq!(get(&app, "/healthz", None).await.0, 200);
    // A revoked key stops working once its cached lookup expires.
    let info = store.list_api_keys().await.unwrap();
    assert!(store.revoke_api_key(&info[0].id).await.unwrap());
    let (status, _) = get(&app, "/api/requests", Some(&admin)).await;
    assert_eq!(status, 401);

    // Local mode: no key means admin, but a key that is sent is checked.
    let local = router(store, AuthMode::Local);
    assert_eq!(get(&local, "/api/requests", None).await.0, 200);
    assert_eq!(get(&local, "/api/requests", Some("ct_wrong")).await.0, 401);
    assert_eq!(get(&local, "/api/requests", Some(&admin)).await.0, 401);
}

pub async fn tenant_sees_only_its_own_data(store: &AnyStore) {
    let admin = key(store, None).await;
    let acme = key(store, Some("company_123")).await;
    let other = key(store, Some("other_co")).await;
    let app = router(store, AuthMode::Keys);
    seed_uploads(&app, Some(&admin)).await;

    // The metrics count every tenant's traffic: an admin key's business.
    assert_eq!(get(&app, "/metrics", None).await.0, 401);
    let (status, body) = get(&app, "/metrics", Some(&acme)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("admin key"));
    let (status, text) = get(&app, "/metrics", Some(&admin)).await;
    assert_eq!(status, 200);
    assert!(
        text.as_str()
            .unwrap()
            .contains("costtrace_http_requests_total")
    );

    // The owner sees everything of its own.
    for uri in READS {
        let (status, body) = get(&app, uri, Some(&acme)).await;
        assert_eq!(status, 200, "{uri}: {body}");
    }
    let (_, list) = get(&app, "/api/requests", Some(&acme)).await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["requests"][0]["request_id"], "req_123abc");

    // Another tenant: 404 as if nothing existed.
    for (uri, detail) in [
        ("/api/requests/req_123abc", "Request req_123abc not found"),
        ("/api/tasks/task_abc123/cost", "Task task_abc123 not found"),
        ("/api/docs/doc_xyz789/cost", "Doc doc_xyz789 not found"),
        (
            "/api/entities/company_123/cost",
            "Entity company_123 not found",
        ),
    ] {
        let (status, body) = get(&app, uri, Some(&other)).await;
        assert_eq!(status, 404, "{uri}: {body}");
        assert_eq!(body, json!({ "detail": detail }));
    }
    for q in [
        "",
        "?task_id=task_abc123",
        "?doc_id=doc_xyz789",
        "?entity_id=company_123",
    ] {
        let (_, list) = get(&app, &format!("/api/requests{q}"), Some(&other)).await;
        let ids: Vec<_> = list["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].clone())
            .collect();
        assert!(!ids.contains(&json!("req_123abc")), "{q}: {list}");
    }
    let (_, list) = get(&app, "/api/requests", Some(&other)).await;
    assert_eq!(list["total"], 1);
    for group in [
        "entity_id",
        "model",
        "provider",
        "service_type",
        "task_id",
        "doc_id",
        "day",
        "hour",
    ] {
        let (status, s) = get(
            &app,
            &format!("/api/usage/summary?group_by={group}"),
            Some(&other),
        )
        .await;
        assert_eq!(status, 200);
        approx(&s["total_cost_usd"], 0.1);
        assert_eq!(s["unpriced_count"], 0, "{group}: {s}");
        assert_eq!(s["record_count"], 1, "{group}: {s}");
    }
    // Naming another tenant's entity shows nothing of it; naming its own is
    // the same as naming none.
    let (status, s) = get(
        &app,
        "/api/usage/summary?entity_id=company_123",
        Some(&other),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (s["record_count"].as_u64(), s["group_count"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
    let (_, s) = get(&app, "/api/usage/summary?entity_id=other_co", Some(&other)).await;
    approx(&s["total_cost_usd"], 0.1);
    let (_, own) = get(&app, "/api/entities/other_co/cost", Some(&other)).await;
    approx(&own["total_cost_usd"], 0.1);
}

pub async fn tenant_writes_only_its_own_data(store: &AnyStore) {
    let admin = key(store, None).await;
    let acme = key(store, Some("company_123")).await;
    let other = key(store, Some("other_co")).await;
    let app = router(store, AuthMode::Keys);
    seed_uploads(&app, Some(&admin)).await;

    let (status, body) = ingest(
        &app,
        Some(&other),
        &[
            // Bound to other_co although it names no entity.
            usage(
                "2025-01-17T00:00:00.000Z",
                "file_processor",
                json!({"pages": 1}),
                json!({"task_id": "task_o2"}),
            ),
            // Names another tenant.
            usage(
                "2025-01-17T00:00:00.000Z",
                "file_processor",
                json!({"pages": 100}),
                links("req_123abc", "task_abc123", "doc_xyz789", "company_123"),
            ),
            request(
                "req_o2",
                "2025-01-17T00:00:00.000Z",
                json!({"entity_id": "company_123"}),
            ),
            // Tries to take over another tenant's request id.
            request("req_123abc", "2025-01-17T00:00:00.000Z", json!({})),
            request(
                "req_o3",
                "2025-01-17T00:00:00.000Z",
                json!({"task_id": "task_o2"}),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    let reasons: Vec<_> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(reasons, [1, 2, 3], "{body}");

    // The accepted records belong to other_co.
    let (status, c) = get(&app, "/api/tasks/task_o2/cost", Some(&other)).await;
    assert_eq!(status, 200, "{c}");
    approx(&c["total_cost_usd"], 0.02);
    assert_eq!(
        get(&app, "/api/tasks/task_o2/cost", Some(&acme)).await.0,
        404
    );
    let (_, r) = get(&app, "/api/requests/req_o3", Some(&admin)).await;
    assert_eq!(r["entity_id"], "other_co");

    // company_123's data is untouched.
    let (_, r) = get(&app, "/api/requests/req_123abc", Some(&acme)).await;
    assert_eq!(r["entity_id"], "company_123");
    assert_eq!(r["timestamp"], "2025-01-15T10:30:45.123Z");
    let (_, c) = get(&app, "/api/tasks/task_abc123/cost", Some(&acme)).await;
    approx(&c["total_cost_usd"], 0.335);

    // A tenant may re-send its own request (idempotent replay).
    let (status, body) = ingest(
        &app,
        Some(&other),
        &[request(
            "req_o3",
            "2025-01-17T00:00:00.000Z",
            json!({"task_id": "task_o2"}),
        )],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1);
}

async fn call_raw_with_auth(
    app: &axum::Router,
    header: &str,
) -> (axum::http::StatusCode, serde_json::Value) {
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .uri("/api/requests")
        .header("authorization", header)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    assert!(status != 401 || resp.headers().get("www-authenticate").is_some());
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

pub async fn key_lookups_are_cached_until_the_ttl(store: &AnyStore) {
    let tenant = key(store, Some("company_123")).await;
    let ttl = Duration::from_millis(400);
    let app = app(AppState {
        auth: Arc::new(Auth::with_cache_ttl(AuthMode::Keys, ttl)),
        ..AppState::new(store.clone(), Catalogue::bundled(), AuthMode::Keys)
    });
    assert_eq!(get(&app, "/api/requests", Some(&tenant)).await.0, 200);
    let id = store.list_api_keys().await.unwrap()[0].id.clone();
    assert!(store.revoke_api_key(&id).await.unwrap());
    // Still trusted from the cache (no store round trip per request) …
    assert_eq!(get(&app, "/api/requests", Some(&tenant)).await.0, 200);
    // … and refused once the lookup is older than the TTL.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(get(&app, "/api/requests", Some(&tenant)).await.0, 401);
    // A wrong key is never let in, cached or not.
    for _ in 0..2 {
        assert_eq!(get(&app, "/api/requests", Some("ct_wrong")).await.0, 401);
    }
}

pub async fn local_mode_requires_keys_once_one_is_created(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    assert_eq!(get(&app, "/api/requests", None).await.0, 200);
    assert_eq!(get(&app, "/healthz", None).await.1["auth"], "local");
    let admin = key(store, None).await;
    // The server notices within the probe interval, without a restart.
    tokio::time::sleep(KEY_PROBE_INTERVAL + Duration::from_millis(100)).await;
    let (status, body) = get(&app, "/api/requests", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(get(&app, "/healthz", None).await.1["auth"], "keys");
    assert_eq!(get(&app, "/api/requests", Some(&admin)).await.0, 200);
}

/// Local mode (no keys) trusts the loopback address, so it answers only
/// requests addressed to a loopback host: a page whose name was rebound to
/// 127.0.0.1 (DNS rebinding) sends its own name and gets 403.
pub async fn local_mode_answers_only_loopback_hosts(store: &AnyStore) {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let app = router(store, AuthMode::Local);
    let status = |host: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::builder()
                .uri("/api/usage/summary?group_by=entity_id")
                .header("host", host)
                .body(Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap().status().as_u16()
        }
    };
    for host in [
        "localhost",
        "localhost:8000",
        "LOCALHOST:8000",
        "app.localhost:8000",
        "127.0.0.1:8000",
        "127.1.2.3",
        "[::1]:8000",
    ] {
        assert_eq!(status(host).await, 200, "{host}");
    }
    for host in [
        "evil.example:8000",
        "evil.example",
        "10.0.0.5:8000",
        "localhost.evil.example",
        "[::2]:8000",
    ] {
        assert_eq!(status(host).await, 403, "{host}");
    }
    // The health check and the dashboard's assets carry no data.
    let req = Request::builder()
        .uri("/healthz")
        .header("host", "evil.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 200);
}
