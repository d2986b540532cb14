//! The dashboard in a real headless Chromium, driven through chromedriver
//! (W3C WebDriver over HTTP), against the real server on a loopback port with
//! a SQLite file store holding a week of three tenants' traffic.
//!
//! Every page is checked against hand-computed numbers (see
//! `dashboard/fixtures.rs`), charts must draw a canvas, filters and
//! pagination must change the rows, the task page must update while its task
//! runs, tenant keys must see only their tenant, and the browser log must stay
//! free of errors. Screenshots land in `target/dashboard-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them it prints
//! `SKIPPED:` (which `.ci/run` refuses) and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "dashboard/fixtures.rs"]
mod fixtures;
#[path = "dashboard/webdriver.rs"]
mod webdriver;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use costtrace_core::Timestamp;
use costtrace_pricing::Catalogue;
use costtrace_server::{AppState, AuthMode, generate_key, hash_key};
use costtrace_store::{AnyStore, Store};
use serde_json::{Value, json};

use fixtures::*;
use webdriver::{Driver, Session, http};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

async fn create_keys(store: &AnyStore) -> (String, String) {
    let admin = generate_key().unwrap();
    store
        .create_api_key(&hash_key(&admin), None, "admin")
        .await
        .unwrap();
    let tenant = generate_key().unwrap();
    store
        .create_api_key(&hash_key(&tenant), Some("globex"), "globex")
        .await
        .unwrap();
    (admin, tenant)
}

/// The server under test plus what keeps it alive.
struct Server {
    addr: String,
    admin: String,
    tenant: String,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Server {
    /// With `keys`, an admin key and a key of tenant `globex` (so every
    /// request needs one); without, local mode (no key at all).
    fn start(keys: bool) -> Server {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("dashboard.db").display());
        let (addr, admin, tenant) = rt.block_on(async {
            let store = AnyStore::open(&url).await.unwrap();
            let (admin, tenant) = if keys {
                create_keys(&store).await
            } else {
                (String::new(), String::new())
            };
            let auth = AuthMode::detect(&store).await.unwrap();
            assert_eq!(auth == AuthMode::Keys, keys);
            let state = AppState::new(store, Catalogue::bundled(), auth);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            tokio::spawn(async move { axum::serve(listener, costtrace_server::app(state)).await });
            (addr, admin, tenant)
        });
        Server {
            addr,
            admin,
            tenant,
            rt,
            _dir: dir,
        }
    }

    fn url(&self, hash: &str) -> String {
        format!("http://{}/{hash}", self.addr)
    }

    fn api(&self, key: &str, path: &str) -> Value {
        let auth = format!("Bearer {key}");
        let (status, _, body) = http(&self.addr, "GET", path, &[("Authorization", &auth)], b"");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn ingest(&self, records: &[Value]) {
        let auth = format!("Bearer {}", self.admin);
        let mut headers = vec![("Content-Type", "application/json")];
        if !self.admin.is_empty() {
            headers.push(("Authorization", &auth));
        }
        let body = serde_json::to_vec(records).unwrap();
        let (status, _, text) = http(&self.addr, "POST", "/api/ingest", &headers, &body);
        assert_eq!(status, 200, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["accepted"], records.len(), "{v}");
        assert_eq!(v["rejected"], json!([]), "{v}");
    }
}

fn skipped(why: &str) {
    let _ = std::io::stderr()
        .write_all(format!("SKIPPED: dashboard browser test ({why})\n").as_bytes());
}

/// `<target>/dashboard-screenshots`, emptied so that no stale picture remains.
fn screenshots_dir() -> PathBuf {
    // Tests run in the package directory; target/ is the workspace's.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Severe browser log entries, minus the ones a step expects (e.g. the 401 of a wrong key).
fn errors(logs: &[Value], allowed: &[&str]) -> Vec<String> {
    logs.iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .filter(|m| !allowed.iter().any(|a| m.contains(a)))
        .collect()
}

fn assert_clean(s: &Session<'_>, step: &str) {
    let errs = errors(&s.logs(), &[]);
    assert!(errs.is_empty(), "{step}: browser errors: {errs:#?}");
    let text = s.exec("return document.body.innerText", json!([]));
    let text = text.as_str().unwrap();
    for bad in ["null", "undefined", "NaN", "[object"] {
        assert!(
            !text.contains(bad),
            "{step}: the page shows {bad:?}:\n{text}"
        );
    }
}

/// A uPlot canvas inside `css` with a non-zero drawing size.
fn assert_chart(s: &Session<'_>, css: &str) {
    let size = s.wait_for(
        &format!("chart {css}"),
        "const c = document.querySelector(arguments[0] + ' .uplot canvas');
         return c && c.width > 0 && c.height > 0 ? [c.width, c.height] : null;",
        json!([css]),
    );
    assert!(size[0].as_u64().unwrap() > 200, "{css}: {size}");
}

/// Each group's spend ("unpriced" when none of it had a price) and unpriced count.
fn assert_summary(s: &Session<'_>, table: &str, want: &BTreeMap<String, (i64, u64)>) {
    for (key, (nanos, unpriced)) in want {
        let spend = if *nanos == 0 && *unpriced > 0 {
            "unpriced".to_owned()
        } else {
            usd(*nanos)
        };
        assert_eq!(cell(s, table, key, 1), spend, "{table} {key}");
        assert_eq!(
            cell(s, table, key, 3),
            format!("{unpriced} unpriced"),
            "{table} {key}"
        );
    }
}

fn rows(s: &Session<'_>, css: &str, attr: &str) -> Vec<String> {
    let v = s.exec(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.getAttribute(arguments[1]));",
        json!([css, attr]),
    );
    serde_json::from_value(v).unwrap()
}

fn cell(s: &Session<'_>, table: &str, key: &str, col: usize) -> String {
    s.exec(
        "const r = [...document.querySelectorAll(arguments[0] + ' tbody tr')].find(r => r.dataset.key === arguments[1]);
         return r ? r.cells[arguments[2]].innerText.trim() : null;",
        json!([table, key, col]),
    )
    .as_str()
    .unwrap_or_else(|| panic!("{table}: no row {key}"))
    .to_owned()
}

#[test]
fn dashboard_in_headless_chromium() {
    let (chromium, chromedriver) = (Path::new(CHROMIUM), Path::new(CHROMEDRIVER));
    if !chromium.exists() || !chromedriver.exists() {
        skipped("install Debian's chromium and chromium-driver");
        return;
    }
    let server = Server::start(true);
    let now = Timestamp::now().as_micros();
    let fx = build(now);
    server.ingest(&fx.records);
    let ex = &fx.expected;

    // The API agrees with the hand-computed fixtures before the page is judged.
    let api_total = server.api(&server.admin, "/api/usage/summary?group_by=model");
    assert_eq!(api_total["total_cost_nanos"], ex.total_nanos, "{api_total}");
    assert_eq!(api_total["unpriced_count"], ex.unpriced);
    assert_eq!(ex.by_task[BIG_TASK], 5_580_000_000);

    static_assets_have_headers(&server);

    let driver = Driver::start(chromedriver);
    let profile = tempfile::tempdir().unwrap();
    let s = Session::new(&driver, chromium, profile.path(), screenshots_dir());

    // ---------------------------------------------------------------- key
    s.goto(&server.url(""));
    s.text("#key-form");
    s.screenshot("00-key-required");
    s.type_into("#key-input", "ct_not_a_real_key");
    s.click("#key-submit");
    let msg = s.text("#auth-message");
    assert!(msg.contains("invalid or revoked API key"), "{msg}");
    s.screenshot("01-wrong-key");
    // The rejected call is the only error, and it proves the log is read.
    let errs = errors(&s.logs(), &[]);
    assert!(
        !errs.is_empty() && errs.iter().all(|e| e.contains("401")),
        "{errs:#?}"
    );
    s.type_into("#key-input", &server.admin);
    s.click("#key-submit");

    // ----------------------------------------------------------- overview
    s.wait_text("#total-spend", &usd(ex.total_nanos));
    s.wait_text("#total-unpriced", &format!("{} unpriced", ex.unpriced));
    s.wait_text("#total-records", &ex.records.to_string());
    s.wait_text("#total-entities", "3");
    assert_chart(&s, "#spend-chart");
    assert_summary(&s, "#by-model", &ex.by_model);
    assert_eq!(cell(&s, "#by-model", UNPRICED_MODEL, 1), "unpriced");
    assert_summary(&s, "#by-entity", &ex.by_entity);
    assert_summary(&s, "#by-service", &ex.by_service);
    let top = rows(&s, "#top-tasks tbody tr", "data-key");
    assert_eq!(top[0], BIG_TASK, "{top:?}");
    assert_eq!(top[1], "batch_nightly_embed", "{top:?}");
    assert_eq!(cell(&s, "#top-tasks", BIG_TASK, 1), "$5.58");
    assert_eq!(rows(&s, "#top-docs tbody tr", "data-key")[0], BIG_DOC);
    s.screenshot("02-overview");
    assert_clean(&s, "overview");

    // Hour buckets over the last 48 hours: the chart redraws.
    s.exec("const r = document.getElementById('range'); r.value = '48h'; r.dispatchEvent(new Event('change'));", json!([]));
    s.wait_for(
        "hour buckets",
        "const b = document.getElementById('bucket'); return b && b.value === 'hour';",
        json!([]),
    );
    assert_chart(&s, "#spend-chart");
    s.screenshot("03-overview-48h-hourly");
    assert_clean(&s, "overview 48h");

    requests_explorer(&s, &server, ex);
    task_pages(&s, &server, now);
    doc_and_entity_pages(&s, &server, ex);
    tenant_key(&s, &server, ex);

    // Local mode (no keys in the store): no key form, everything visible.
    let local = Server::start(false);
    local.ingest(&fx.records);
    s.goto(&local.url(""));
    s.wait_text("#total-spend", &usd(ex.total_nanos));
    s.wait_text("#auth-state", "local mode (no key needed)");
    s.screenshot("15-local-mode");
    assert_clean(&s, "local mode");
    local.rt.shutdown_background();

    drop(s);
    drop(driver);
    server.rt.shutdown_background();
}

/// The page and its assets need no key and carry the security headers.
fn static_assets_have_headers(server: &Server) {
    let get = |path: &str, headers: &[(&str, &str)]| http(&server.addr, "GET", path, headers, b"");
    let header = |hs: &[(String, String)], name: &str| {
        hs.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (status, hs, body) = get("/", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&hs, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&hs, "cache-control"), "no-cache");
    let csp = header(&hs, "content-security-policy");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(header(&hs, "x-content-type-options"), "nosniff");
    assert!(body.contains("/assets/app.js"), "{body}");

    let (status, hs, body) = get("/assets/vendor/uplot-1.6.32/uPlot.iife.min.js", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        header(&hs, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&hs, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(body.contains("uPlot"));
    let (status, _, license) = get("/assets/vendor/uplot-1.6.32/LICENSE", &[]);
    assert_eq!(status, 200);
    assert!(license.contains("MIT"), "{license}");

    let (status, hs, _) = get("/assets/app.js", &[]);
    assert_eq!(status, 200);
    let etag = header(&hs, "etag");
    assert!(etag.starts_with('"'), "{etag}");
    let (status, _, body) = get("/assets/app.js", &[("If-None-Match", &etag)]);
    assert_eq!((status, body.as_str()), (304, ""));
    let (status, _, body) = get("/assets/nope.js", &[]);
    assert_eq!(status, 404, "{body}");
    // The data is not open: the API still wants a key.
    assert_eq!(get("/api/requests", &[]).0, 401);
}

fn requests_explorer(s: &Session<'_>, server: &Server, ex: &Expected) {
    let n = ex.requests.len();
    assert_eq!(n, 54 + 3 + 5 + 1 + 1);
    s.goto(&server.url("#/requests"));
    s.wait_text("#req-total", &n.to_string());
    s.wait_text("#page-info", &format!("page 1 of {}", n.div_ceil(25)));
    let page1 = rows(s, "#requests-table tbody tr", "data-request-id");
    assert_eq!(page1.len(), 25);
    // Newest first: the running upload started a minute ago.
    assert_eq!(page1[0], LIVE_REQUEST);
    s.screenshot("04-requests");

    s.click("#next");
    s.wait_text("#page-info", "page 2 of 3");
    let page2 = rows(s, "#requests-table tbody tr", "data-request-id");
    assert_eq!(page2.len(), 25);
    assert!(
        page2.iter().all(|id| !page1.contains(id)),
        "{page1:?} / {page2:?}"
    );
    s.click("#next");
    s.wait_text("#page-info", "page 3 of 3");
    let page3 = rows(s, "#requests-table tbody tr", "data-request-id");
    assert_eq!(page3.len(), n - 50);
    let disabled = s.exec("return document.getElementById('next').disabled", json!([]));
    assert_eq!(disabled, true);
    let mut all: Vec<String> = page1.into_iter().chain(page2).chain(page3).collect();
    all.sort();
    assert_eq!(all, ex.requests.keys().cloned().collect::<Vec<_>>());
    assert_clean(s, "requests pages");

    // Filters: one tenant, then only its failures.
    let of = |f: &dyn Fn(&(String, u16, i64)) -> bool| -> Vec<String> {
        ex.requests
            .iter()
            .filter(|(_, v)| f(v))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let globex = of(&|(e, _, _)| e == "globex");
    s.type_into("#f-entity_id", "globex");
    s.click("#apply");
    s.wait_text("#req-total", &globex.len().to_string());
    s.wait_text("#page-info", "page 1 of 1");
    let mut got = rows(s, "#requests-table tbody tr", "data-request-id");
    got.sort();
    assert_eq!(got, globex);
    let failed = of(&|(e, status, _)| e == "globex" && *status == 500);
    assert!(!failed.is_empty());
    s.type_into("#f-status_code", "500");
    s.click("#apply");
    s.wait_text("#req-total", &failed.len().to_string());
    let mut got = rows(s, "#requests-table tbody tr", "data-request-id");
    got.sort();
    assert_eq!(got, failed);
    s.screenshot("05-requests-filtered");
    assert_clean(s, "requests filtered");

    // A failed request's detail, reached by clicking its row.
    let id = &failed[0];
    s.click(&format!(
        "#requests-table tr[data-request-id='{id}'] td:nth-child(2) a"
    ));
    s.wait_text("#request-id", id);
    s.wait_text("#request-total", &usd(ex.requests[id].2));
    assert!(s.text("#request-error").contains("provider timeout"));

    // Services of a part of the big upload, priced one by one.
    s.goto(&server.url("#/requests/req_big_1"));
    s.wait_text("#request-total", "$1.86");
    let services = rows(s, "#services tbody tr", "data-service");
    assert_eq!(services, ["file_processor", "llm:gpt-4o", "transformer"]);
    let service_cost = |svc: &str| {
        s.exec(
            "return document.querySelector(`#services tr[data-service='${arguments[0]}']`).cells[2].innerText.trim();",
            json!([svc]),
        )
    };
    assert_eq!(service_cost("file_processor"), "$0.8000");
    assert_eq!(service_cost("transformer"), "$0.3600");
    assert_eq!(service_cost("llm:gpt-4o"), "$0.7000");
    assert!(s.text("#services").contains("pages 40"));
    s.screenshot("06-request-detail");
    // One with an unpriced model: shown as unpriced, never $0.
    s.goto(&server.url("#/requests/req_002"));
    s.wait_text("#request-unpriced", "1 unpriced");
    assert_eq!(service_cost(&format!("llm:{UNPRICED_MODEL}")), "unpriced");
    s.screenshot("07-request-unpriced");
    s.goto(&server.url(&format!("#/requests/{SELFHOSTED_REQUEST}")));
    s.wait_text("#request-unpriced", "1 unpriced");
    s.wait_text("#request-total", "unpriced");
    assert_clean(s, "request detail");

    // A bad filter value: the API's message, the form stays.
    s.goto(&server.url("#/requests"));
    s.wait_text("#req-total", &n.to_string());
    s.type_into("#f-from", "yesterday");
    s.click("#apply");
    assert!(s.text("#page-error").contains("from"), "bad filter message");
    assert!(s.text("#filters").contains("task_id"));
    let errs = errors(&s.logs(), &["422"]);
    assert!(errs.is_empty(), "{errs:#?}");
}

fn task_pages(s: &Session<'_>, server: &Server, now: i64) {
    s.goto(&server.url(&format!("#/tasks/{BIG_TASK}")));
    s.wait_text("#task-total", "$5.58");
    s.wait_text("#task-status", "finished");
    s.wait_text("#task-requests", "3");
    s.wait_text("#task-unpriced", "0 unpriced");
    assert_eq!(
        rows(s, "#task-requests-table tbody tr", "data-request-id"),
        ["req_big_3", "req_big_2", "req_big_1"]
    );
    assert_eq!(cell(s, "#by-service", "file_processor", 1), "$2.40");
    assert_eq!(cell(s, "#by-service", "transformer", 1), "$1.08");
    assert_eq!(cell(s, "#by-service", "llm:gpt-4o", 1), "$2.10");
    assert_chart(s, "#task-chart");
    s.screenshot("08-task");
    assert_clean(s, "task");

    // The running task: the page polls and follows new usage as it arrives.
    s.goto(&server.url(&format!("#/tasks/{LIVE_TASK}")));
    s.wait_text("#task-total", "$0.2000");
    assert!(s.text("#task-status").starts_with("running"));
    assert_chart(s, "#task-chart");
    s.screenshot("09-task-running");
    let live = live_request(now);
    let mut more = Fixtures::default();
    more.usage(&live, 2_000_000, Use::Chunks(50));
    server.ingest(&more.records);
    // $0.20 of pages so far + 50 chunks × $0.003 = $0.35, without a reload.
    s.wait_text("#task-total", "$0.3500");
    assert_eq!(cell(s, "#by-service", "transformer", 1), "$0.1500");
    s.screenshot("10-task-updated-live");
    // The request ends: the page says so and stops polling.
    let mut end = Fixtures::default();
    end.request(&Req {
        status: Some(200),
        ..live_request(now)
    });
    server.ingest(&end.records);
    s.wait_text("#task-status", "finished");
    let status = s.exec(
        "return document.querySelector('#task-requests-table tbody tr').cells[5].innerText.trim();",
        json!([]),
    );
    assert_eq!(status, "200");
    assert_clean(s, "live task");
}

fn doc_and_entity_pages(s: &Session<'_>, server: &Server, ex: &Expected) {
    s.goto(&server.url(&format!("#/docs/{BIG_DOC}")));
    s.wait_text("#doc-total", "$5.58");
    s.wait_text("#doc-requests", "3");
    s.wait_text("#doc-request-total", "(3)");
    assert_eq!(cell(s, "#by-service", "llm:gpt-4o", 1), "$2.10");
    s.screenshot("11-document");

    // Usage outside any request: per-service unpriced counts are incomplete,
    // and the page says so instead of showing $0.
    s.goto(&server.url(&format!("#/docs/{ORPHAN_DOC}")));
    s.wait_text("#doc-unpriced", "1 unpriced");
    s.wait_text("#doc-total", "unpriced");
    let unpriced_service = format!("llm:{UNPRICED_MODEL}");
    assert_eq!(cell(s, "#by-service", &unpriced_service, 1), "unpriced?");
    assert!(
        s.text("#services-partial")
            .contains("Unpriced usage in total: 1")
    );

    let count = ex
        .requests
        .values()
        .filter(|(e, ..)| e == "initech")
        .count();
    let (nanos, unpriced) = ex.by_entity["initech"];
    s.goto(&server.url("#/entities/initech"));
    s.wait_text("#entity-total", &usd(nanos));
    s.wait_text("#entity-unpriced", &format!("{unpriced} unpriced"));
    s.wait_text("#entity-request-total", &format!("({count})"));
    s.wait_text("#entity-requests", &count.to_string());
    // All of initech's unpriced usage is the self-hosted model: that service
    // reads "unpriced" with its count, not $0.
    let unpriced_service = format!("llm:{UNPRICED_MODEL}");
    assert_eq!(cell(s, "#by-service", &unpriced_service, 1), "unpriced");
    assert_eq!(
        cell(s, "#by-service", &unpriced_service, 3),
        format!("{unpriced} unpriced")
    );
    assert_eq!(
        rows(s, "#requests-table tbody tr", "data-request-id").len(),
        count
    );
    let cost = s.exec(
        "return document.querySelector(`#requests-table tr[data-request-id='${arguments[0]}']`).cells[8].innerText.trim();",
        json!([SELFHOSTED_REQUEST]),
    );
    assert_eq!(
        cost, "unpriced",
        "a request with only unpriced usage is not $0"
    );
    s.screenshot("12-entity");
    assert_clean(s, "document and entity");
}

fn tenant_key(s: &Session<'_>, server: &Server, ex: &Expected) {
    s.goto(&server.url("#/"));
    s.text("#total-spend");
    s.click("#key-change");
    s.type_into("#key-input", &server.tenant);
    s.click("#key-submit");
    // globex's fixtures plus the 50 chunks ($0.15) added while its task ran.
    let (nanos, unpriced) = ex.by_entity["globex"];
    let own = server.api(&server.tenant, "/api/usage/summary?group_by=entity_id");
    assert_eq!(own["total_cost_nanos"], nanos + 150_000_000, "{own}");
    s.wait_text("#total-spend", &usd(nanos + 150_000_000));
    s.wait_text("#total-unpriced", &format!("{unpriced} unpriced"));
    s.wait_text("#total-entities", "1");
    assert_eq!(rows(s, "#by-entity tbody tr", "data-key"), ["globex"]);
    let tasks = rows(s, "#top-tasks tbody tr", "data-key");
    assert!(!tasks.iter().any(|t| t == BIG_TASK), "{tasks:?}");
    assert_chart(s, "#spend-chart");
    s.screenshot("13-tenant-overview");

    let count = ex.requests.values().filter(|(e, ..)| e == "globex").count();
    s.goto(&server.url("#/requests"));
    s.wait_text("#req-total", &count.to_string());
    // Another tenant's task does not exist for this key.
    s.goto(&server.url(&format!("#/tasks/{BIG_TASK}")));
    s.wait_text("#page-error", &format!("Task {BIG_TASK} not found"));
    s.screenshot("14-tenant-other-task");
    let errs = errors(&s.logs(), &["404"]);
    assert!(errs.is_empty(), "{errs:#?}");
}
