#![allow(clippy::unwrap_used, clippy::expect_used)]
//! CosttraceLayer on a real axum Router (driven with `oneshot`).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use costtrace::testing::capture;
use costtrace::{CosttraceLayer, Usage};
use tower::ServiceExt;

async fn upload() -> &'static str {
    costtrace::record(Usage::service("file_processor").units("pages", 10));
    let bg = costtrace::spawn(async {
        costtrace::record(Usage::service("transformer").units("chunks", 45));
        costtrace::current().get("tenant_id").map(String::from)
    });
    assert_eq!(bg.await.unwrap().as_deref(), Some("acme"));
    "ok"
}

fn app(require_tenant: bool) -> Router {
    Router::new()
        .route("/api/entities/{entity_id}/files", post(upload))
        .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route_layer(
            CosttraceLayer::new()
                .require_tenant(require_tenant)
                .operation_type("file_upload"),
        )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn headers_become_context_and_a_request_is_recorded_with_its_services() {
    rt().block_on(async {
        let cap = capture();
        let resp = app(true)
            .oneshot(
                Request::post("/api/entities/company_123/files")
                    .header("x-tenant-id", "acme")
                    .header("x-task-id", "upload_abc123")
                    .header("baggage", "user_id=u-7")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(rid.starts_with("req_"), "{rid}");
        let reqs: Vec<_> = cap
            .records()
            .into_iter()
            .filter_map(|r| r.as_request().cloned())
            .collect();
        let end = reqs.iter().find(|r| r.status_code.is_some()).unwrap();
        assert_eq!(end.request_id, rid);
        assert_eq!(end.status_code, Some(200));
        assert_eq!(
            end.endpoint.as_deref(),
            Some("/api/entities/{entity_id}/files")
        );
        assert_eq!(end.method.as_deref(), Some("POST"));
        assert_eq!(end.task_id.as_deref(), Some("upload_abc123"));
        assert_eq!(end.entity_id.as_deref(), Some("acme"));
        assert_eq!(end.operation_type.as_deref(), Some("file_upload"));
        let usages = cap.usages();
        assert_eq!(
            usages.len(),
            2,
            "the handler's and the spawned task's usage"
        );
        for u in &usages {
            assert_eq!(u.attrs["request_id"], rid);
            assert_eq!(u.attrs["tenant_id"], "acme");
            assert_eq!(u.attrs["user_id"], "u-7");
            assert_eq!(u.attrs["task_id"], "upload_abc123");
        }
    });
}

#[test]
fn a_missing_tenant_is_a_401_when_required_and_a_given_request_id_is_kept() {
    rt().block_on(async {
        let cap = capture();
        let resp = app(true)
            .oneshot(
                Request::post("/api/entities/x/files")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(cap.records().is_empty(), "nothing ran, nothing recorded");

        let resp = app(false)
            .oneshot(
                Request::get("/boom")
                    .header("x-request-id", "req_given")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()["x-request-id"], "req_given");
        let end = cap
            .records()
            .into_iter()
            .filter_map(|r| r.as_request().cloned())
            .find(|r| r.status_code.is_some())
            .unwrap();
        assert_eq!(end.request_id, "req_given");
        assert_eq!(end.error_message.as_deref(), Some("Internal Server Error"));
    });
}
