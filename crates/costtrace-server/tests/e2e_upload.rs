//! End to end over real HTTP on loopback: the `upload_service` example (a
//! user's axum service with the costtrace recorder and the costtrace API on
//! one listener) is uploaded to, then queried the way seed 004's clients do
//! ("Client Usage Patterns" 1–4 and the "Query Examples").
//!
//! Runs on SQLite (a temp file) and, when `COSTTRACE_TEST_POSTGRES_URL` is
//! set, on PostgreSQL (a fresh schema). The recorder is global to the process,
//! so both backends run one after the other inside one test, each with its
//! own recorder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../examples/upload_service.rs"]
mod upload_service;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use costtrace_pricing::Catalogue;
use costtrace_server::{AppState, AuthMode};
use costtrace_store::AnyStore;
use serde_json::Value;
use tokio::runtime::Runtime;

const PG_ENV: &str = "COSTTRACE_TEST_POSTGRES_URL";
/// Seed 004's prices, in nano-USD: $0.02 a page, $0.003 a chunk.
const PAGE_NANOS: i64 = 20_000_000;
const CHUNK_NANOS: i64 = 3_000_000;

// ---------------------------------------------------------------- HTTP client

/// One HTTP/1.1 request with `Connection: close`; returns status and JSON.
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let payload = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    let v = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
    (status, v)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn get(addr: &str, path: &str) -> Value {
    let (status, v) = http(addr, "GET", path, b"");
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

// ------------------------------------------------------------------- fixtures

/// A file of `len` bytes whose content depends on `seed` (different seeds,
/// different documents).
fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// What an upload of `len` bytes must cost: pages = ⌈len / 1000⌉, chunks =
/// ⌈len / 400⌉, in nano-USD per service.
fn expected(len: usize) -> (i64, i64) {
    let pages = len.div_ceil(1000) as i64;
    let chunks = len.div_ceil(400) as i64;
    (pages * PAGE_NANOS, chunks * CHUNK_NANOS)
}

fn usd(nanos: i64) -> f64 {
    nanos as f64 / 1e9
}

fn assert_usd(got: &Value, want_nanos: i64, what: &str) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!(
        (got - usd(want_nanos)).abs() < 1e-9,
        "{what}: got {got}, want {}",
        usd(want_nanos)
    );
}

/// Uploads `body` for `entity`; returns the task id from the immediate answer.
fn upload(addr: &str, entity: &str, body: &[u8]) -> String {
    let (status, v) = http(addr, "POST", &format!("/api/entities/{entity}/files"), body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["message"], "File uploaded successfully", "{v}");
    let task_id = v["task_id"].as_str().unwrap().to_owned();
    assert!(task_id.starts_with("upload_"), "{task_id}");
    assert_eq!(task_id.len(), "upload_".len() + 12, "{task_id}");
    task_id
}

/// Pattern 1: polls `GET /api/tasks/{task_id}/cost` until it answers 200 and
/// the task's request has ended; returns (cost, request).
fn wait_for_task(addr: &str, task_id: &str) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        costtrace::flush().unwrap();
        let (status, cost) = http(addr, "GET", &format!("/api/tasks/{task_id}/cost"), b"");
        if status == 200 {
            let list = get(addr, &format!("/api/requests?task_id={task_id}"));
            let reqs = list["requests"].as_array().unwrap();
            assert_eq!(reqs.len(), 1, "{list}");
            if !reqs[0]["status_code"].is_null() {
                // Re-read: the cost may have been read before the end record.
                let cost = get(addr, &format!("/api/tasks/{task_id}/cost"));
                return (cost, reqs[0].clone());
            }
        } else {
            assert_eq!(status, 404, "{cost}");
            assert_eq!(cost["detail"], format!("Task {task_id} not found"));
        }
        assert!(Instant::now() < deadline, "task {task_id} never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Done {
    task_id: String,
    doc_id: String,
    request_id: String,
    nanos: i64,
}

/// Checks one finished upload of `len` bytes against its expected cost.
fn check_upload(addr: &str, entity: &str, task_id: &str, len: usize) -> Done {
    let (cost, req) = wait_for_task(addr, task_id);
    let (fp, tr) = expected(len);
    assert_eq!(cost["task_id"], task_id, "{cost}");
    assert_eq!(cost["total_cost_nanos"], fp + tr, "{cost}");
    assert_usd(&cost["total_cost_usd"], fp + tr, "total_cost_usd");
    let by_service = cost["breakdown_by_service"].as_object().unwrap();
    assert_eq!(by_service.len(), 2, "{cost}");
    assert_usd(&by_service["file_processor"], fp, "file_processor");
    assert_usd(&by_service["transformer"], tr, "transformer");
    assert_eq!(cost["request_count"], 1, "{cost}");
    assert_eq!(cost["unpriced_count"], 0, "{cost}");

    assert_eq!(req["status_code"], 200, "{req}");
    assert_eq!(req["task_id"], task_id, "{req}");
    assert_eq!(req["entity_id"], entity, "{req}");
    assert_eq!(req["task_type"], "upload", "{req}");
    assert_eq!(req["operation_type"], "file_upload", "{req}");
    assert_eq!(req["endpoint"], "/api/entities/{entity_id}/files", "{req}");
    assert_eq!(req["method"], "POST", "{req}");
    assert!(req["processing_time_ms"].as_f64().unwrap() >= 30.0, "{req}");
    assert_usd(&req["total_cost_usd"], fp + tr, "request total_cost_usd");
    let doc_id = req["doc_id"].as_str().unwrap().to_owned();
    assert!(doc_id.starts_with("doc_"), "{req}");
    let request_id = req["request_id"].as_str().unwrap().to_owned();
    assert!(request_id.starts_with("req_"), "{req}");

    // GET /api/requests/{request_id}: the services used, with their units.
    let one = get(addr, &format!("/api/requests/{request_id}"));
    assert_eq!(one["task_id"], task_id, "{one}");
    assert_eq!(one["doc_id"], doc_id.as_str(), "{one}");
    let services = one["services_used"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{one}");
    let svc = |name: &str| {
        services
            .iter()
            .find(|s| s["service_type"] == name)
            .unwrap_or_else(|| panic!("no {name} in {one}"))
            .clone()
    };
    let (f, t) = (svc("file_processor"), svc("transformer"));
    assert_usd(&f["cost_usd"], fp, "file_processor cost_usd");
    assert_usd(&t["cost_usd"], tr, "transformer cost_usd");
    let text = one.to_string();
    assert!(text.contains(&format!("{}", len.div_ceil(1000))), "{one}");

    Done {
        task_id: task_id.to_owned(),
        doc_id,
        request_id,
        nanos: fp + tr,
    }
}

fn sum_usd(reqs: &[Value]) -> f64 {
    reqs.iter()
        .map(|r| r["total_cost_usd"].as_f64().unwrap())
        .sum()
}

// ----------------------------------------------------------------- scenario

/// Everything, against the service over `sink`.
fn scenario(rt: &Runtime, sink: &str, spool: &Path) {
    let catalogue = Catalogue::bundled();
    let recorder = costtrace::Config::new()
        .sink(sink.parse().unwrap())
        .spool_dir(spool)
        .catalogue(catalogue.clone())
        .flush_interval(Duration::from_millis(20))
        .init()
        .unwrap();
    let store = rt.block_on(AnyStore::open(sink)).unwrap();
    let state = AppState::new(store, catalogue, AuthMode::Local);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = rt.spawn(async move {
        axum::serve(listener, upload_service::router(state))
            .await
            .unwrap();
    });

    let entity = "company_123";
    let other = "company_456";
    assert_eq!(expected(2500), (3 * PAGE_NANOS, 7 * CHUNK_NANOS));

    // Unknown task: seed 004's 404.
    let (status, v) = http(&addr, "GET", "/api/tasks/nonexistent/cost", b"");
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["detail"], "Task nonexistent not found");

    // Pattern 4: a batch of uploads (the first file twice: the same document).
    let a = file(2500, 1);
    let b = file(1000, 2);
    let c = file(12_345, 3);
    let batch: Vec<(&[u8], usize)> =
        vec![(&a, a.len()), (&b, b.len()), (&c, c.len()), (&a, a.len())];
    let tasks: Vec<(String, usize)> = batch
        .iter()
        .map(|(body, len)| (upload(&addr, entity, body), *len))
        .collect();
    // Another entity's upload, which no entity filter may include.
    let foreign_task = upload(&addr, other, &b);
    // An empty file: the background task ends the request with 422.
    let empty_task = upload(&addr, entity, b"");

    // Pattern 1, for each task.
    let done: Vec<Done> = tasks
        .iter()
        .map(|(t, len)| check_upload(&addr, entity, t, *len))
        .collect();
    let foreign = check_upload(&addr, other, &foreign_task, b.len());
    let (empty_cost, empty_req) = wait_for_task(&addr, &empty_task);
    assert_eq!(empty_req["status_code"], 422, "{empty_req}");
    assert_eq!(
        empty_req["error_message"], "the file is empty",
        "{empty_req}"
    );
    assert_eq!(empty_cost["total_cost_nanos"], 0, "{empty_cost}");
    assert_eq!(empty_cost["request_count"], 1, "{empty_cost}");

    // Task ids and request ids are unique; the same file is the same document.
    let mut ids: Vec<&str> = done.iter().map(|d| d.task_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), done.len());
    assert_ne!(done[0].request_id, done[3].request_id);
    assert_eq!(done[0].doc_id, done[3].doc_id);
    assert_ne!(done[0].doc_id, done[1].doc_id);
    assert_ne!(done[0].doc_id, done[2].doc_id);
    // The same bytes for another entity are another document.
    assert_ne!(done[1].doc_id, foreign.doc_id);

    // Pattern 4: the sum of the task costs.
    let batch_nanos: i64 = done.iter().map(|d| d.nanos).sum();
    let batch_usd: f64 = done
        .iter()
        .map(|d| {
            get(&addr, &format!("/api/tasks/{}/cost", d.task_id))["total_cost_usd"]
                .as_f64()
                .unwrap()
        })
        .sum();
    assert!((batch_usd - usd(batch_nanos)).abs() < 1e-9, "{batch_usd}");
    // 0.081 + 0.029 + 0.353 + 0.081
    assert_eq!(batch_nanos, 544_000_000);

    // Pattern 2: all uploads of the entity.
    let list = get(
        &addr,
        &format!("/api/requests?entity_id={entity}&task_type=upload"),
    );
    let reqs = list["requests"].as_array().unwrap();
    assert_eq!(list["total"], 5, "{list}");
    assert_eq!(reqs.len(), 5, "{list}");
    assert!(reqs.iter().all(|r| r["entity_id"] == entity), "{list}");
    assert!(
        (sum_usd(reqs) - usd(batch_nanos)).abs() < 1e-9,
        "{}",
        sum_usd(reqs)
    );
    let entity_cost = get(&addr, &format!("/api/entities/{entity}/cost"));
    assert_eq!(
        entity_cost["total_cost_nanos"], batch_nanos,
        "{entity_cost}"
    );
    let other_list = get(&addr, &format!("/api/requests?entity_id={other}"));
    assert_eq!(other_list["total"], 1, "{other_list}");
    assert_usd(
        &other_list["requests"][0]["total_cost_usd"],
        foreign.nanos,
        "other entity",
    );
    let none = get(
        &addr,
        &format!("/api/requests?entity_id={entity}&task_type=query"),
    );
    assert_eq!(none["total"], 0, "{none}");

    // Pattern 3: the costs of one document (uploaded twice).
    let doc = &done[0].doc_id;
    let list = get(&addr, &format!("/api/requests?doc_id={doc}"));
    let reqs = list["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 2, "{list}");
    assert!(reqs.iter().all(|r| r["doc_id"] == doc.as_str()), "{list}");
    let mut got: Vec<&str> = reqs
        .iter()
        .map(|r| r["task_id"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    let mut want = vec![done[0].task_id.as_str(), done[3].task_id.as_str()];
    want.sort_unstable();
    assert_eq!(got, want);
    assert!((sum_usd(reqs) - usd(2 * done[0].nanos)).abs() < 1e-9);
    let doc_cost = get(&addr, &format!("/api/docs/{doc}/cost"));
    assert_eq!(
        doc_cost["total_cost_nanos"],
        2 * done[0].nanos,
        "{doc_cost}"
    );
    assert_eq!(doc_cost["request_count"], 2, "{doc_cost}");

    // Query examples: pages.
    let all = get(&addr, "/api/requests?page=1&page_size=100");
    // 4 batch uploads, the other entity's, the empty file.
    assert_eq!(all["total"], 6, "{all}");
    let all_reqs = all["requests"].as_array().unwrap().clone();
    assert_eq!(all_reqs.len(), 6);
    let mut seen = Vec::new();
    for page in 1..=2 {
        let p = get(&addr, &format!("/api/requests?page={page}&page_size=4"));
        assert_eq!(p["total"], 6, "{p}");
        let rs = p["requests"].as_array().unwrap();
        assert_eq!(rs.len(), if page == 1 { 4 } else { 2 }, "page {page}: {p}");
        seen.extend(
            rs.iter()
                .map(|r| r["request_id"].as_str().unwrap().to_owned()),
        );
    }
    let beyond = get(&addr, "/api/requests?page=3&page_size=4");
    assert_eq!(beyond["requests"].as_array().unwrap().len(), 0, "{beyond}");
    let mut every: Vec<String> = all_reqs
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    every.sort();
    assert_eq!(seen, every, "pages overlap or miss requests");
    for r in &all_reqs {
        for field in ["request_id", "task_id", "doc_id", "total_cost_usd"] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
    }

    // Query examples: the most expensive task is the 12,345-byte file.
    let max = all_reqs
        .iter()
        .max_by(|x, y| {
            let (x, y) = (x["total_cost_usd"].as_f64(), y["total_cost_usd"].as_f64());
            x.partial_cmp(&y).unwrap()
        })
        .unwrap();
    assert_eq!(max["task_id"], done[2].task_id.as_str(), "{max}");
    assert_usd(
        &max["total_cost_usd"],
        expected(c.len()).0 + expected(c.len()).1,
        "max",
    );

    // Query examples: cost and service count by document.
    let mut by_doc: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in &all_reqs {
        let key = r["doc_id"].as_str().unwrap_or("(none)").to_owned();
        let e = by_doc.entry(key).or_default();
        e.0 += r["total_cost_usd"].as_f64().unwrap();
        e.1 += r["services_used"].as_array().unwrap().len();
    }
    let mut want: BTreeMap<String, (i64, usize)> = BTreeMap::new();
    for d in done.iter().chain([&foreign]) {
        let e = want.entry(d.doc_id.clone()).or_default();
        e.0 += d.nanos;
        e.1 += 2;
    }
    want.insert("(none)".into(), (0, 0)); // the empty file: no document
    assert_eq!(by_doc.len(), want.len(), "{by_doc:?}");
    for (doc, (nanos, services)) in &want {
        let (got_usd, got_services) = by_doc[doc];
        assert!((got_usd - usd(*nanos)).abs() < 1e-9, "{doc}: {got_usd}");
        assert_eq!(got_services, *services, "{doc}");
    }

    // Query examples: uploads of the entity with cost and time.
    let list = get(
        &addr,
        &format!("/api/requests?entity_id={entity}&page_size=50"),
    );
    let uploads: Vec<&Value> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["task_type"] == "upload")
        .collect();
    assert_eq!(uploads.len(), 5);
    assert!(uploads.iter().all(|r| r["processing_time_ms"].is_number()));

    server.abort();
    let _ = rt.block_on(server);
    drop(recorder);
}

/// A fresh schema in the test database, as a connection URL.
fn pg_url(rt: &Runtime) -> Option<String> {
    let url = std::env::var(PG_ENV).ok().filter(|u| !u.is_empty())?;
    let schema = format!("e2e_{}", uuid::Uuid::now_v7().simple());
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        drop(client);
        let _ = conn.await;
    });
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-csearch_path%3D{schema}"))
}

#[test]
fn upload_service_end_to_end() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("costtrace.db").display());
    scenario(&rt, &sqlite, &dir.path().join("spool-sqlite"));

    match pg_url(&rt) {
        Some(url) => scenario(&rt, &url, &dir.path().join("spool-pg")),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: postgres e2e (COSTTRACE_TEST_POSTGRES_URL not set)"
            );
        }
    }
}
