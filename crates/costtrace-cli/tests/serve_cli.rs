//! `costtrace serve` and `costtrace keys` through the built binary, over real
//! HTTP on loopback (a tiny HTTP/1.1 client over `TcpStream`, no extra deps).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{costtrace, db, http, serve};
use serde_json::{Value, json};

#[test]
fn serve_local_mode_answers_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&db(&dir), &[]);
    assert!(server.banner.contains("local mode"), "{}", server.banner);
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);

    let (status, h) = http(&server.addr, "GET", "/healthz", None, None);
    assert_eq!(status, 200);
    assert_eq!(h["auth"], "local");

    let records = json!([
        {"kind": "request", "request_id": "req_1", "task_id": "task_1", "entity_id": "acme",
         "timestamp": "2025-01-15T10:30:45.123Z", "status_code": 200},
        {"kind": "usage", "id": "0194e0a0-0000-7000-8000-000000000001",
         "attrs": {"request_id": "req_1", "task_id": "task_1", "entity_id": "acme"},
         "environment": "production", "timestamp": "2025-01-15T10:31:00.000Z",
         "service_type": "file_processor", "units": {"pages": 10}, "pricing_tier": "standard"}
    ]);
    let (status, body) = http(&server.addr, "POST", "/api/ingest", None, Some(&records));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);

    let (status, c) = http(&server.addr, "GET", "/api/tasks/task_1/cost", None, None);
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["task_id"], "task_1");
    assert_eq!(c["total_cost_nanos"], 200_000_000);
    assert_eq!(c["period_start"], "2025-01-15T10:30:45.123Z");
    let (status, list) = http(
        &server.addr,
        "GET",
        "/api/requests?task_id=task_1",
        None,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1);
    let (status, body) = http(&server.addr, "GET", "/api/tasks/nope/cost", None, None);
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "Task nope not found"}));
}

#[test]
fn serve_refuses_public_bind_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = costtrace(&[
        "serve",
        "--database-url",
        &db(&dir),
        "--bind",
        "0.0.0.0",
        "--port",
        "0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0 without API keys"),
        "{err}"
    );
    assert!(err.contains("costtrace keys create"), "{err}");
}

#[test]
fn keys_create_list_revoke_and_serve_with_keys() {
    let dir = tempfile::tempdir().unwrap();
    let url = db(&dir);
    let out = costtrace(&["keys", "create", "--tenant", "acme", "--database-url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Only the key, on one line.
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let acme = stdout.trim().to_owned();
    assert!(acme.starts_with("ct_") && acme.len() == 67, "{acme}");
    let admin_out = costtrace(&[
        "keys",
        "create",
        "--admin",
        "--label",
        "ops",
        "--database-url",
        &url,
    ]);
    let admin = String::from_utf8(admin_out.stdout)
        .unwrap()
        .trim()
        .to_owned();
    // --tenant and --admin are exclusive, and one is required.
    assert!(
        !costtrace(&["keys", "create", "--database-url", &url])
            .status
            .success()
    );
    assert!(
        !costtrace(&[
            "keys",
            "create",
            "--admin",
            "--tenant",
            "x",
            "--database-url",
            &url
        ])
        .status
        .success()
    );

    let list = costtrace(&["keys", "list", "--json", "--database-url", &url]);
    let keys: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert_eq!(keys[0]["tenant"], "acme");
    assert!(keys[1]["tenant"].is_null());
    assert_eq!(keys[1]["label"], "ops");
    let listing =
        String::from_utf8(costtrace(&["keys", "list", "--database-url", &url]).stdout).unwrap();
    assert!(!listing.contains(&acme), "keys list must never show a key");
    assert!(listing.contains("tenant:acme"));

    // With keys the server needs one.
    let server = serve(&url, &[]);
    assert!(
        server.banner.contains("API keys required"),
        "{}",
        server.banner
    );
    assert_eq!(
        http(&server.addr, "GET", "/api/requests", None, None).0,
        401
    );
    let (status, list) = http(&server.addr, "GET", "/api/requests", Some(&acme), None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 0);
    assert_eq!(
        http(&server.addr, "GET", "/api/requests", Some(&admin), None).0,
        200
    );

    // Revoking takes effect on the running server once its key cache
    // (costtrace_server::KEY_CACHE_TTL, 5 s) has expired.
    let id = keys[0]["id"].as_str().unwrap();
    let out = costtrace(&["keys", "revoke", id, "--database-url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked_at = std::time::Instant::now();
    while http(&server.addr, "GET", "/api/requests", Some(&acme), None).0 != 401 {
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(8),
            "a revoked key still works after 8 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let again = costtrace(&["keys", "revoke", id, "--database-url", &url]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no active key"));
}
