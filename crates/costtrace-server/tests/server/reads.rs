//! Read endpoints: seed 004's shapes and values.

use costtrace_server::AuthMode;
use costtrace_store::AnyStore;
use serde_json::json;

use crate::common::*;

pub async fn list_requests_seed_shape(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    seed_uploads(&app, None).await;

    let (status, body) = get(&app, "/api/requests?task_id=task_abc123", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1);
    let r = &body["requests"][0];
    assert_eq!(r["request_id"], "req_123abc");
    assert_eq!(r["task_id"], "task_abc123");
    assert_eq!(r["doc_id"], "doc_xyz789");
    assert_eq!(r["entity_id"], "company_123");
    assert_eq!(r["operation_type"], "file_upload");
    assert_eq!(r["task_type"], "upload");
    assert_eq!(r["status_code"], 200);
    assert_eq!(r["timestamp"], "2025-01-15T10:30:45.123Z");
    approx(&r["processing_time_ms"], 3500.0);
    // $0.02/page × 10 + $0.003/chunk × 45; the LLM call has no price.
    approx(&r["total_cost_usd"], 0.335);
    assert_eq!(r["unpriced_count"], 1);
    let services = r["services_used"].as_array().unwrap();
    let find = |k: &str| {
        services
            .iter()
            .find(|s| s["service_type"] == k)
            .unwrap_or_else(|| panic!("no {k} in {services:?}"))
    };
    approx(&find("file_processor")["cost_usd"], 0.2);
    assert_eq!(find("file_processor")["breakdown"]["pages"], 10);
    approx(&find("transformer")["cost_usd"], 0.135);
    assert_eq!(find("transformer")["breakdown"]["chunks"], 45);
    assert!(find("llm:foo-1")["cost_usd"].is_null());

    // Combined filters, and each filter on its own.
    for (q, expected) in [
        ("task_id=task_abc123&entity_id=company_123", 1),
        ("task_id=task_abc123&entity_id=other_co", 0),
        ("doc_id=doc_xyz789", 1),
        ("entity_id=other_co", 1),
        ("task_type=upload", 2),
        ("operation_type=file_upload", 2),
        ("operation_type=query", 0),
        ("status_code=200", 2),
        ("status_code=500", 0),
        ("from=2025-01-16T00:00:00Z", 1),
        ("to=2025-01-16T00:00:00Z", 1),
        (
            "from=2025-01-16T09:00:00.000Z&to=2025-01-16T09:00:00.001Z",
            1,
        ),
        ("", 2),
    ] {
        let (status, body) = get(&app, &format!("/api/requests?{q}"), None).await;
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(body["total"], expected, "{q}: {body}");
        assert_eq!(body["requests"].as_array().unwrap().len(), expected, "{q}");
    }
}

pub async fn get_request_and_not_found(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    seed_uploads(&app, None).await;
    let (status, r) = get(&app, "/api/requests/req_123abc", None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["request_id"], "req_123abc");
    assert_eq!(r["task_type"], "upload");
    assert_eq!(r["timestamp"], "2025-01-15T10:30:45.123Z");
    approx(&r["total_cost_usd"], 0.335);
    assert_eq!(r["services_used"].as_array().unwrap().len(), 3);

    let (status, body) = get(&app, "/api/requests/nonexistent", None).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "Request nonexistent not found"}));
    let (status, body) = get(&app, "/api/tasks/nonexistent/cost", None).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "Task nonexistent not found"}));
    let (status, body) = get(&app, "/api/docs/nonexistent/cost", None).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "Doc nonexistent not found"}));
    let (status, body) = get(&app, "/api/entities/nonexistent/cost", None).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "Entity nonexistent not found"}));

    for uri in [
        "/api/requests/a%00b",
        "/api/tasks/a%00b/cost",
        "/api/docs/a%00b/cost",
        "/api/entities/a%00b/cost",
        "/api/requests?task_id=a%00b",
        "/api/requests?entity_id=a%00b",
        "/api/requests/a%FFb",
    ] {
        let (status, body) = get(&app, uri, None).await;
        assert_eq!(status, 422, "{uri}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("NUL") || detail.contains("UTF-8"),
            "{detail}"
        );
    }
    // Query strings are decoded lossily: invalid UTF-8 simply matches nothing.
    let (status, body) = get(&app, "/api/requests?task_id=a%FFb", None).await;
    assert_eq!((status.as_u16(), body["total"].as_u64()), (200, Some(0)));
    let long = "x".repeat(300);
    let (status, body) = get(&app, &format!("/api/requests/{long}"), None).await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("at most 256"));
}

pub async fn task_doc_entity_cost(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    seed_uploads(&app, None).await;
    let (status, c) = get(&app, "/api/tasks/task_abc123/cost", None).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["task_id"], "task_abc123");
    approx(&c["total_cost_usd"], 0.335);
    assert_eq!(c["total_cost_nanos"], 335_000_000);
    assert_eq!(c["period_start"], "2025-01-15T10:30:45.123Z");
    assert_eq!(c["period_end"], "2025-01-15T10:32:15.456Z");
    approx(&c["breakdown_by_service"]["file_processor"], 0.2);
    approx(&c["breakdown_by_service"]["transformer"], 0.135);
    assert_eq!(c["request_count"], 1);
    assert_eq!(c["unpriced_count"], 1);

    let (status, c) = get(&app, "/api/docs/doc_xyz789/cost", None).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["doc_id"], "doc_xyz789");
    approx(&c["total_cost_usd"], 0.335);
    assert_eq!(c["request_count"], 1);

    let (status, c) = get(&app, "/api/entities/other_co/cost", None).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["entity_id"], "other_co");
    approx(&c["total_cost_usd"], 0.1);
    assert_eq!(c["unpriced_count"], 0);
    assert_eq!(c["period_start"], "2025-01-16T09:00:00.000Z");
    approx(&c["breakdown_by_service"]["file_processor"], 0.1);

    // Multi-request task: a second request of the same task adds up.
    let (status, _) = ingest(
        &app,
        None,
        &[
            request(
                "req_123abc_2",
                "2025-01-15T10:40:00.000Z",
                json!({"task_id": "task_abc123", "entity_id": "company_123", "status_code": 200}),
            ),
            usage(
                "2025-01-15T10:40:01.000Z",
                "file_processor",
                json!({"pages": 1}),
                json!({"request_id": "req_123abc_2", "task_id": "task_abc123", "entity_id": "company_123"}),
            ),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let (_, c) = get(&app, "/api/tasks/task_abc123/cost", None).await;
    approx(&c["total_cost_usd"], 0.355);
    assert_eq!(c["request_count"], 2);
    assert_eq!(c["period_end"], "2025-01-15T10:40:01.000Z");
}

pub async fn pagination_and_limits(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    let records: Vec<_> = (0..7)
        .map(|i| {
            request(
                &format!("rq_{i}"),
                &format!("2025-01-15T10:30:0{i}.000Z"),
                json!({"entity_id": "e", "status_code": 200}),
            )
        })
        .collect();
    assert_eq!(ingest(&app, None, &records).await.0, 200);
    let ids = |b: &serde_json::Value| {
        b["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, p1) = get(&app, "/api/requests?page=1&page_size=3", None).await;
    let (_, p3) = get(&app, "/api/requests?page=3&page_size=3", None).await;
    let (_, p4) = get(&app, "/api/requests?page=4&page_size=3", None).await;
    // Newest first.
    assert_eq!(ids(&p1), ["rq_6", "rq_5", "rq_4"]);
    assert_eq!(ids(&p3), ["rq_0"]);
    assert_eq!(ids(&p4), Vec::<String>::new());
    assert_eq!(p4["total"], 7);
    let (status, all) = get(&app, "/api/requests?page_size=1000", None).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&all).len(), 7);

    for (q, needle) in [
        ("page_size=1001", "page_size 1001 is out of range"),
        ("page_size=0", "out of range"),
        ("page=0", "page starts at 1"),
        ("page=-1", "page \"-1\""),
        ("page_size=abc", "page_size \"abc\""),
        ("status_code=999999", "status_code"),
        ("from=yesterday", "from:"),
        ("to=2025-13-01", "to:"),
    ] {
        let (status, body) = get(&app, &format!("/api/requests?{q}"), None).await;
        assert_eq!(status, 422, "{q}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{q}: {detail}");
    }
}

pub async fn usage_summary_groups(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    seed_uploads(&app, None).await;
    let (status, s) = get(&app, "/api/usage/summary?group_by=service_type", None).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["group_by"], "service_type");
    approx(&s["total_cost_usd"], 0.435);
    assert_eq!(s["unpriced_count"], 1);
    assert_eq!(s["record_count"], 4);
    let groups = s["groups"].as_array().unwrap();
    let g = |k: &str| groups.iter().find(|g| g["key"] == k).unwrap().clone();
    approx(&g("file_processor")["total_cost_usd"], 0.3);
    assert_eq!(g("file_processor")["record_count"], 2);
    assert_eq!(g("llm")["unpriced_count"], 1);

    let (_, s) = get(&app, "/api/usage/summary?group_by=entity_id", None).await;
    let groups = s["groups"].as_array().unwrap();
    let g = |k: &str| groups.iter().find(|g| g["key"] == k).unwrap().clone();
    approx(&g("company_123")["total_cost_usd"], 0.335);
    approx(&g("other_co")["total_cost_usd"], 0.1);

    let (_, s) = get(
        &app,
        "/api/usage/summary?group_by=day&from=2025-01-16T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(s["from"], "2025-01-16T00:00:00.000Z");
    assert_eq!(
        s["groups"],
        json!([{"key": "2025-01-16", "total_cost_usd": 0.1,
        "total_cost_nanos": 100_000_000, "unpriced_count": 0, "record_count": 1}])
    );

    let (_, s) = get(&app, "/api/usage/summary?group_by=provider", None).await;
    assert!(
        s["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["key"] == "acme"),
        "{s}"
    );
    let (_, s) = get(&app, "/api/usage/summary?group_by=model", None).await;
    assert!(
        s["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["key"] == "foo-1"),
        "{s}"
    );

    let (status, body) = get(&app, "/api/usage/summary?group_by=week", None).await;
    assert_eq!(status, 422);
    assert!(body["detail"].as_str().unwrap().contains("group_by"));

    // limit: the largest groups only; totals and group_count still cover all.
    let (_, all) = get(&app, "/api/usage/summary?group_by=service_type", None).await;
    let (status, top) = get(
        &app,
        "/api/usage/summary?group_by=service_type&limit=1",
        None,
    )
    .await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(top["groups"], json!([all["groups"][0]]));
    assert_eq!(top["group_count"], all["group_count"]);
    assert_eq!(all["group_count"], all["groups"].as_array().unwrap().len());
    assert_eq!(top["total_cost_nanos"], all["total_cost_nanos"]);
    assert_eq!(top["unpriced_count"], all["unpriced_count"]);
    for bad in ["0", "100001", "x"] {
        let (status, body) = get(&app, &format!("/api/usage/summary?limit={bad}"), None).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("limit"), "{body}");
    }

    // entity_id: one entity's usage only.
    let (_, one) = get(
        &app,
        "/api/usage/summary?group_by=service_type&entity_id=other_co",
        None,
    )
    .await;
    approx(&one["total_cost_usd"], 0.1);
    let (_, none) = get(&app, "/api/usage/summary?entity_id=nobody", None).await;
    assert_eq!(
        (none["record_count"].as_u64(), none["group_count"].as_u64()),
        (Some(0), Some(0))
    );
}

pub async fn health_and_fallback(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    let (status, h) = get(&app, "/healthz", None).await;
    assert_eq!(status, 200);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["backend"], store.backend());
    assert_eq!(h["auth"], "local");
    let (status, body) = get(&app, "/api/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "Not found");
}
