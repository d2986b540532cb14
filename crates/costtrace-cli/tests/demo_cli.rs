//! `costtrace demo` and `costtrace serve --demo` through the built binary,
//! against real SQLite files (and PostgreSQL when configured).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{http, ok, serve, store_urls};
use serde_json::Value;

/// What a JSON Lines file of records holds, summed here independently of
/// the binary: (usage, requests, priced nanos, unpriced usage, tenants).
fn sum_jsonl(path: &std::path::Path) -> (u64, u64, i64, u64, BTreeSet<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let (mut usage, mut requests, mut nanos, mut unpriced) = (0, 0, 0i64, 0);
    let mut tenants = BTreeSet::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        match v["kind"].as_str().unwrap() {
            "usage" => {
                usage += 1;
                match v["cost_nanos"].as_i64() {
                    Some(n) => nanos += n,
                    None => {
                        unpriced += 1;
                        assert!(v["unpriced_reason"].is_string(), "{v}");
                    }
                }
                tenants.insert(v["attrs"]["entity_id"].as_str().unwrap().to_owned());
            }
            "request" => requests += 1,
            k => panic!("unexpected kind {k}"),
        }
    }
    (usage, requests, nanos, unpriced, tenants)
}

#[test]
fn demo_fills_once_and_reports_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    for url in store_urls(&dir) {
        let file = dir.path().join(format!("demo-{}.jsonl", common::unique()));
        let first = ok(&[
            "demo",
            "--database-url",
            &url,
            "--jsonl",
            file.to_str().unwrap(),
        ]);
        let (usage, requests, nanos, unpriced, tenants) = sum_jsonl(&file);
        assert!(tenants.len() >= 3, "{tenants:?}");
        assert!(unpriced > 0 && nanos > 0);
        assert!(
            first.contains(&format!(
                "{} records ({usage} usage, {requests} requests) for {} tenants",
                usage + requests,
                tenants.len()
            )),
            "{first}"
        );
        assert!(
            first.contains(&format!("unpriced usage records: {unpriced}")),
            "{first}"
        );
        let usd = format!("${:.6}", nanos as f64 / 1e9);
        assert!(first.contains(&usd), "{first} lacks {usd}");
        assert!(
            first.contains(&format!("new in the store: {}", usage + requests)),
            "{first}"
        );
        assert!(first.contains("next: costtrace serve"), "{first}");

        // Idempotent: the same ids again, nothing new.
        let second = ok(&["demo", "--database-url", &url]);
        assert!(second.contains("new in the store: 0"), "{second}");

        // The "next:" hint never shows a password (the test server does not
        // check it, so the demo runs).
        if url.starts_with("postgres") {
            let with_password = format!("{url}&password=hunter2");
            let third = ok(&["demo", "--database-url", &with_password]);
            assert!(!third.contains("hunter2"), "{third}");
            assert!(third.contains("password=***"), "{third}");
        }
    }
}

/// Asserts the server said `text` before its start-up line.
fn said(server: &common::Server, text: &str) {
    assert!(
        server.before.iter().any(|l| l.contains(text)),
        "{text:?} not in {:?}",
        server.before
    );
}

#[test]
fn serve_demo_serves_demo_data_over_http() {
    let dir = tempfile::tempdir().unwrap();
    for url in store_urls(&dir) {
        let file = dir
            .path()
            .join(format!("expect-{}.jsonl", common::unique()));
        // The expected figures, from a scratch store's JSON Lines.
        let scratch = dir.path().join(format!("scratch-{}.db", common::unique()));
        ok(&[
            "demo",
            "--database-url",
            &format!("sqlite:{}", scratch.display()),
            "--jsonl",
            file.to_str().unwrap(),
        ]);
        let (usage, _, nanos, unpriced, tenants) = sum_jsonl(&file);

        let server = serve(&url, &["--demo"]);
        said(&server, "filled the empty store with demo data");
        let (status, s) = http(
            &server.addr,
            "GET",
            "/api/usage/summary?group_by=entity_id",
            None,
            None,
        );
        assert_eq!(status, 200, "{s}");
        let keys: BTreeSet<String> = s["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["key"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(keys, tenants);
        assert_eq!(s["record_count"], usage);
        assert_eq!(s["unpriced_count"], unpriced);
        // Prices do not depend on the few milliseconds between the runs.
        assert_eq!(s["total_cost_nanos"], nanos);

        // The task still running has a cost so far and no status yet.
        let (status, c) = http(
            &server.addr,
            "GET",
            "/api/tasks/upload_acme_live/cost",
            None,
            None,
        );
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["request_count"], 1);
        assert!(
            c["breakdown_by_service"]["file_processor"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        let (_, list) = http(
            &server.addr,
            "GET",
            "/api/requests?task_id=upload_acme_live",
            None,
            None,
        );
        assert!(list["requests"][0]["status_code"].is_null(), "{list}");
        let (_, failed) = http(
            &server.addr,
            "GET",
            "/api/requests?status_code=500&page_size=5",
            None,
            None,
        );
        assert!(failed["total"].as_u64().unwrap() > 0, "{failed}");
        assert!(failed["requests"][0]["error_message"].is_string());
        drop(server);

        // A store that has data is left alone.
        said(&serve(&url, &["--demo"]), "already holds records");
    }
}
