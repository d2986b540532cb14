//! `GET /metrics`: Prometheus text, kept by hand (a few counters under one
//! lock are cheaper to build than a metrics registry).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// (method, route template, status).
type HttpKey = (String, String, u16);

/// Counters the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route template, status) → (count, seconds summed).
    http: Mutex<BTreeMap<HttpKey, (u64, f64)>>,
    records_accepted: AtomicU64,
    records_rejected: AtomicU64,
}

impl Metrics {
    pub(crate) fn records_ingested(&self, accepted: u64, rejected: u64) {
        self.records_accepted.fetch_add(accepted, Ordering::Relaxed);
        self.records_rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        if let Ok(mut m) = self.http.lock() {
            let e = m
                .entry((method.to_owned(), route.to_owned(), status))
                .or_insert((0, 0.0));
            e.0 += 1;
            e.1 += secs;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP costtrace_http_requests_total HTTP requests served.\n");
        out.push_str("# TYPE costtrace_http_requests_total counter\n");
        let snapshot: Vec<_> = match self.http.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Err(_) => Vec::new(),
        };
        for ((method, route, status), (n, _)) in &snapshot {
            let _ = writeln!(
                out,
                "costtrace_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP costtrace_http_request_duration_seconds Time spent serving HTTP requests.\n",
        );
        out.push_str("# TYPE costtrace_http_request_duration_seconds summary\n");
        for ((method, route, status), (n, secs)) in &snapshot {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            let _ = writeln!(
                out,
                "costtrace_http_request_duration_seconds_sum{{{labels}}} {secs}"
            );
            let _ = writeln!(
                out,
                "costtrace_http_request_duration_seconds_count{{{labels}}} {n}"
            );
        }
        out.push_str(
            "# HELP costtrace_records_ingested_total Records accepted by POST /api/ingest.\n",
        );
        out.push_str("# TYPE costtrace_records_ingested_total counter\n");
        let _ = writeln!(
            out,
            "costtrace_records_ingested_total {}",
            self.records_accepted.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP costtrace_records_rejected_total Records rejected by POST /api/ingest.\n",
        );
        out.push_str("# TYPE costtrace_records_rejected_total counter\n");
        let _ = writeln!(
            out,
            "costtrace_records_rejected_total {}",
            self.records_rejected.load(Ordering::Relaxed)
        );
        out
    }
}

/// Middleware: counts every request by route template (never the raw path,
/// so ids do not explode the label set).
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// `GET /metrics`
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
