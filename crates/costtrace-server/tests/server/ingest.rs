//! `POST /api/ingest`: pricing, idempotency, per-record rejection, limits.

use costtrace_server::AuthMode;
use costtrace_store::AnyStore;
use serde_json::{Value, json};

use crate::common::*;

pub async fn ingest_prices_keeps_reported_and_is_idempotent(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    let l = links("rq_1", "task_1", "doc_1", "ent_1");
    let mut reported = llm(
        "2025-01-15T10:30:01.000Z",
        "openai",
        "gpt-4o",
        (1_000_000, 100_000),
        l.clone(),
    );
    // The provider reported $1.23; the catalogue would say $3.50.
    reported["cost_nanos"] = json!(1_230_000_000);
    let priced = llm(
        "2025-01-15T10:30:02.000Z",
        "openai",
        "gpt-4o",
        (1_000_000, 100_000),
        l.clone(),
    );
    let mut usd_only = usage(
        "2025-01-15T10:30:03.000Z",
        "file_processor",
        json!({"pages": 1}),
        l.clone(),
    );
    usd_only["cost_usd"] = json!(0.5);
    let batch = vec![
        request(
            "rq_1",
            "2025-01-15T10:30:00.000Z",
            json!({"task_id": "task_1", "entity_id": "ent_1", "status_code": 200}),
        ),
        reported,
        priced,
        usd_only,
        usage(
            "2025-01-15T10:30:04.000Z",
            "transformer",
            json!({"chunks": 10}),
            l,
        ),
    ];
    let (status, body) = ingest(&app, None, &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"accepted": 5, "inserted": 5, "rejected": []}));
    // 1.23 reported + 3.50 priced (1M × $2.5/M + 0.1M × $10/M) + 0.5 + 10 × 0.003
    let (_, c) = get(&app, "/api/tasks/task_1/cost", None).await;
    assert_eq!(
        c["total_cost_nanos"],
        1_230_000_000i64 + 3_500_000_000 + 500_000_000 + 30_000_000,
        "{c}"
    );
    approx(&c["breakdown_by_service"]["llm:gpt-4o"], 4.73);
    assert_eq!(c["unpriced_count"], 0);

    // The same batch again: accepted, nothing new, totals unchanged.
    let (status, body) = ingest(&app, None, &batch).await;
    assert_eq!(status, 200);
    assert_eq!(body["accepted"], 5);
    assert_eq!(body["inserted"], 0, "{body}");
    let (_, again) = get(&app, "/api/tasks/task_1/cost", None).await;
    assert_eq!(again["total_cost_nanos"], c["total_cost_nanos"]);
    assert_eq!(again["request_count"], 1);

    // Metrics count what was accepted.
    let (status, text) = get(&app, "/metrics", None).await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap();
    assert!(
        text.contains("costtrace_records_ingested_total 10"),
        "{text}"
    );
    assert!(
        text.contains(
            "costtrace_http_requests_total{method=\"POST\",route=\"/api/ingest\",status=\"200\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains("route=\"/api/tasks/{task_id}/cost\""),
        "{text}"
    );
}

fn reason(body: &Value, index: usize) -> String {
    body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["index"] == index)
        .unwrap_or_else(|| panic!("record {index} not rejected: {body}"))["reason"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn ingest_rejects_invalid_records_one_by_one(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    let l = links("rq_v", "task_v", "doc_v", "ent_v");
    let good = usage(
        "2025-01-15T10:30:00.000Z",
        "file_processor",
        json!({"pages": 2}),
        l.clone(),
    );
    let with = |field: &str, v: Value| {
        let mut u = good.clone();
        u["id"] = json!(uuid::Uuid::now_v7().to_string());
        u[field] = v;
        u
    };
    let mut bad_attr = with("attrs", json!({"task_id": "x".repeat(300)}));
    bad_attr["id"] = json!(uuid::Uuid::now_v7().to_string());
    let cases: Vec<(Value, &str)> = vec![
        (with("input_tokens", json!(-5)), "input_tokens"),
        (with("cost_usd", json!(-1.0)), "cost_usd"),
        (with("cost_usd", json!(1e300)), "cost_usd"),
        (with("cost_nanos", json!(-7)), "cost_nanos"),
        (with("output_tokens", json!(1e30)), "output_tokens"),
        (
            with("units", json!({"pages": 10_000_000_000_000u64})),
            "units.pages",
        ),
        (with("duration_ms", json!(-3.0)), "duration_ms"),
        (with("timestamp", json!("yesterday")), "timestamp"),
        (with("id", json!("not-a-uuid")), "id"),
        (with("model", json!("m".repeat(300))), "model"),
        (bad_attr, "attrs.task_id"),
        (json!({"request_id": "x"}), "kind"),
        (
            with("attrs", json!({"task_id": "a\u{0}b"})),
            "attrs.task_id: contains a NUL",
        ),
        (
            request("rq_\u{0}", "2025-01-15T10:30:00.000Z", json!({})),
            "request_id: contains a NUL",
        ),
        (json!({"kind": "bogus"}), "kind"),
        (json!(42), "JSON object"),
        (
            request(&"r".repeat(300), "2025-01-15T10:30:00.000Z", json!({})),
            "request_id",
        ),
        (
            request("", "2025-01-15T10:30:00.000Z", json!({})),
            "request_id",
        ),
        (
            request(
                "rq_s",
                "2025-01-15T10:30:00.000Z",
                json!({"status_code": 999}),
            ),
            "status_code",
        ),
        (
            request(
                "rq_s",
                "2025-01-15T10:30:00.000Z",
                json!({"status_code": 70000}),
            ),
            "status_code",
        ),
        (
            request(
                "rq_p",
                "2025-01-15T10:30:00.000Z",
                json!({"processing_time_ms": -1.0}),
            ),
            "processing_time_ms",
        ),
        (
            request("rq_t", "2025-01-15T10:30:00.000Z", json!({"task_id": 5})),
            "task_id",
        ),
    ];
    let mut batch = vec![good.clone()];
    batch.extend(cases.iter().map(|(v, _)| v.clone()));
    batch.push(request(
        "rq_v",
        "2025-01-15T10:29:59.000Z",
        json!({"task_id": "task_v", "entity_id": "ent_v"}),
    ));
    let (status, body) = ingest(&app, None, &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["rejected"].as_array().unwrap().len(), cases.len());
    for (i, (_, field)) in cases.iter().enumerate() {
        let r = reason(&body, i + 1);
        assert!(
            r.contains(field),
            "record {}: {r:?} does not name {field}",
            i + 1
        );
    }
    // The valid ones were stored.
    let (status, c) = get(&app, "/api/tasks/task_v/cost", None).await;
    assert_eq!(status, 200, "{c}");
    approx(&c["total_cost_usd"], 0.04);
    assert_eq!(c["request_count"], 1);

    // Nothing valid at all: 422 with the same shape.
    let (status, body) = ingest(&app, None, &[with("cost_nanos", json!(-1))]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["accepted"], 0);
    assert!(body["detail"].as_str().is_some());
    assert!(reason(&body, 0).contains("cost_nanos"));
}

pub async fn ingest_body_errors_are_4xx(store: &AnyStore) {
    let app = router(store, AuthMode::Local);
    for (raw, expected) in [
        (&b"{not json"[..], 400),
        (b"[NaN]", 400),
        // A record that is not valid JSON on its own is rejected by itself.
        (b"[{\"kind\":\"usage\",\"cost_usd\":1e400}]", 422),
        (b"{\"kind\":\"usage\"}", 400),
        (b"", 400),
    ] {
        let (status, body) = call_raw(&app, "POST", "/api/ingest", None, Some(raw.to_vec())).await;
        assert_eq!(
            status.as_u16(),
            expected,
            "{}: {body}",
            String::from_utf8_lossy(raw)
        );
        assert!(body["detail"].is_string(), "{body}");
    }
    let (status, body) = ingest(&app, None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["accepted"], 0);

    // … and the valid records beside it are stored.
    let good = serde_json::to_string(&llm(
        "2025-01-15T10:30:00.000Z",
        "openai",
        "gpt-4o",
        (1000, 100),
        links("req_num", "task_num", "doc_num", "company_123"),
    ))
    .unwrap();
    let mixed = format!("[{{\"kind\":\"usage\",\"cost_usd\":1e400}}, {good}]");
    let (status, body) =
        call_raw(&app, "POST", "/api/ingest", None, Some(mixed.into_bytes())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["inserted"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(body["rejected"][0]["index"], 0);
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("number out of range"),
        "{body}"
    );
    assert_eq!(get(&app, "/api/tasks/task_num/cost", None).await.0, 200);

    // Too large a body: 413 before parsing.
    let mut big = b"[".to_vec();
    big.extend(std::iter::repeat_n(b' ', costtrace_server::MAX_BODY_BYTES));
    big.push(b']');
    let (status, body) = call_raw(&app, "POST", "/api/ingest", None, Some(big)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"].is_string(), "{body}");

    // Too many records: 413 with a message.
    let many: Vec<Value> = (0..=costtrace_server::MAX_BATCH)
        .map(|_| json!(0))
        .collect();
    let (status, body) = ingest(&app, None, &many).await;
    assert_eq!(status, 413);
    assert!(body["detail"].as_str().unwrap().contains("at most"));
}
