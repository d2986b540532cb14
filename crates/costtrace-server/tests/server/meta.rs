//! `/openapi.json` matches what the server really answers; `/metrics`.

use std::collections::BTreeSet;

use costtrace_server::AuthMode;
use costtrace_store::AnyStore;
use serde_json::{Value, json};

use crate::common::*;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

pub async fn openapi_matches_responses(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    seed_uploads(&app, None).await;
    let (status, doc) = get(&app, "/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");

    // Every documented operation answers with a documented status.
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 10);
    for (path, ops) in paths {
        let uri = path
            .replace("{request_id}", "req_123abc")
            .replace("{task_id}", "task_abc123")
            .replace("{doc_id}", "doc_xyz789")
            .replace("{entity_id}", "company_123");
        for (method, op) in ops.as_object().unwrap() {
            let body = (method == "post").then(|| json!([]));
            let (status, resp) =
                call(&app, &method.to_uppercase(), &uri, None, body.as_ref()).await;
            assert!(
                op["responses"].get(status.as_str()).is_some(),
                "{method} {uri}: {status} is not documented ({resp})"
            );
            assert_eq!(status, 200, "{method} {uri}: {resp}");
        }
    }

    // Documented properties are exactly the fields returned.
    let schema = |name: &str| keys(&doc["components"]["schemas"][name]["properties"]);
    let (_, r) = get(&app, "/api/requests/req_123abc", None).await;
    assert_eq!(keys(&r), schema("Request"));
    assert_eq!(keys(&r["services_used"][0]), schema("ServiceUse"));
    let (_, list) = get(&app, "/api/requests", None).await;
    assert_eq!(keys(&list), schema("RequestList"));
    for (uri, name) in [
        ("/api/tasks/task_abc123/cost", "TaskCost"),
        ("/api/docs/doc_xyz789/cost", "DocCost"),
        ("/api/entities/company_123/cost", "EntityCost"),
    ] {
        let (_, c) = get(&app, uri, None).await;
        assert_eq!(keys(&c), schema(name), "{uri}");
    }
    let (_, s) = get(&app, "/api/usage/summary?group_by=day", None).await;
    assert_eq!(keys(&s), schema("UsageSummary"));
    assert_eq!(keys(&s["groups"][0]), schema("SummaryGroup"));
    let (_, h) = get(&app, "/healthz", None).await;
    assert_eq!(keys(&h), schema("Health"));
    let (_, i) = ingest(&app, None, &[json!({"kind": "x"})]).await;
    assert_eq!(keys(&i), schema("IngestResult"));
    let (_, e) = get(&app, "/api/tasks/none/cost", None).await;
    assert_eq!(keys(&e), schema("Error"));

    // The documented groupings are exactly the ones the server accepts.
    let groupings = doc["components"]["schemas"]["GroupByParam"]["enum"]
        .as_array()
        .unwrap();
    assert_eq!(groupings.len(), 8, "{groupings:?}");
    for g in groupings {
        let g = g.as_str().unwrap();
        let (status, body) = get(&app, &format!("/api/usage/summary?group_by={g}"), None).await;
        assert_eq!((status.as_u16(), body["group_by"].as_str()), (200, Some(g)));
    }
    // The ingest body is the wire format: one schema per record kind.
    let record = &doc["components"]["schemas"]["Record"];
    assert_eq!(
        record["oneOf"].as_array().map(Vec::len),
        Some(3),
        "{record}"
    );
}

pub async fn metrics_count_requests_by_route(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    // Methods outside the standard set share one label: a client inventing
    // methods cannot grow the metrics without bound.
    for i in 0..20 {
        let (status, _) = call(&app, &format!("FOO{i}"), "/healthz", None, None).await;
        assert_eq!(status, 405);
    }
    for id in ["a", "b", "c"] {
        assert_eq!(
            get(&app, &format!("/api/tasks/{id}/cost"), None).await.0,
            404
        );
    }
    let (status, text) = get(&app, "/metrics", None).await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap();
    assert!(text.contains("# TYPE costtrace_http_requests_total counter"));
    // By route template, never by raw path.
    assert!(
        text.contains(
            "costtrace_http_requests_total{method=\"GET\",route=\"/api/tasks/{task_id}/cost\",status=\"404\"} 3"
        ),
        "{text}"
    );
    assert!(!text.contains("/api/tasks/a/cost"));
    assert!(!text.contains("FOO"), "{text}");
    assert!(
        text.contains(
            "costtrace_http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"} 20"
        ),
        "{text}"
    );
    // Latency: a histogram per route, cumulative buckets ending at +Inf.
    assert!(text.contains("# TYPE costtrace_http_request_duration_seconds histogram"));
    let route = "method=\"GET\",route=\"/api/tasks/{task_id}/cost\"";
    assert!(text.contains(&format!(
        "costtrace_http_request_duration_seconds_count{{{route}}} 3"
    )));
    assert!(
        text.contains(&format!(
            "costtrace_http_request_duration_seconds_bucket{{{route},le=\"+Inf\"}} 3"
        )),
        "{text}"
    );
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "costtrace_http_request_duration_seconds_bucket{{{route}"
            ))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 13);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(text.contains("costtrace_store_write_errors_total 0"));
    assert!(text.contains("costtrace_records_ingested_total 0"));
}
