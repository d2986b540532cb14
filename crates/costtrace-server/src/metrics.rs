//! `GET /metrics`: Prometheus text, kept by hand (a few counters under one
//! lock are cheaper to build than a metrics registry): HTTP requests by route
//! and status, request latency histograms by route, records ingested and
//! rejected, store write failures, and — when the process has a costtrace
//! recorder installed (an application serving this router beside its own
//! instrumented code) — that recorder's health.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use costtrace_store::TenantScope;

use crate::{ApiError, AppState, Caller};

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One route's latency histogram: counts per bucket (non-cumulative; the last
/// is +Inf), the sum and the count.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// One (method, route template)'s requests by status and its latency.
#[derive(Debug, Default, Clone)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    latency: Histogram,
}

/// Counters the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// method → route template → counts and latency. Nested so that a
    /// request that finds its entry allocates nothing.
    http: Mutex<BTreeMap<String, BTreeMap<String, RouteStats>>>,
    records_accepted: AtomicU64,
    records_rejected: AtomicU64,
    store_write_errors: AtomicU64,
}

impl Metrics {
    pub(crate) fn store_write_failed(&self) {
        self.store_write_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn records_ingested(&self, accepted: u64, rejected: u64) {
        self.records_accepted.fetch_add(accepted, Ordering::Relaxed);
        self.records_rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        // Any method string reaches here (`curl -X FOO1`, `FOO2`, …): only the
        // standard ones get a label of their own, so the series stay bounded.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "CONNECT"
            | "TRACE" => method,
            _ => "other",
        };
        let Ok(mut m) = self.http.lock() else { return };
        let routes = match m.get_mut(method) {
            Some(r) => r,
            None => m.entry(method.to_owned()).or_default(),
        };
        let r = match routes.get_mut(route) {
            Some(r) => r,
            None => routes.entry(route.to_owned()).or_default(),
        };
        *r.by_status.entry(status).or_insert(0) += 1;
        let h = &mut r.latency;
        let i = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        h.buckets[i] += 1;
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP costtrace_http_requests_total HTTP requests served.\n");
        out.push_str("# TYPE costtrace_http_requests_total counter\n");
        let snapshot: Vec<(String, String, RouteStats)> = match self.http.lock() {
            Ok(m) => m
                .iter()
                .flat_map(|(method, routes)| {
                    routes
                        .iter()
                        .map(|(route, r)| (method.clone(), route.clone(), r.clone()))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        for (method, route, r) in &snapshot {
            for (status, n) in &r.by_status {
                let _ = writeln!(
                    out,
                    "costtrace_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP costtrace_http_request_duration_seconds Time spent serving HTTP requests.\n",
        );
        out.push_str("# TYPE costtrace_http_request_duration_seconds histogram\n");
        for (method, route, r) in &snapshot {
            let h = &r.latency;
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            let mut cumulative = 0;
            for (i, n) in h.buckets.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "costtrace_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "costtrace_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "costtrace_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
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
        counter(
            &mut out,
            "costtrace_store_write_errors_total",
            "Batches POST /api/ingest could not write to the store (answered 500; the client keeps them).",
            self.store_write_errors.load(Ordering::Relaxed),
        );
        if let Some(h) = costtrace::health() {
            recorder_health(&mut out, &h);
        }
        out
    }
}

/// Middleware: counts every request by route template (never the raw path,
/// so ids do not explode the label set).
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // `MatchedPath` and a standard `Method` clone without allocating.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let start = Instant::now();
    let resp = next.run(req).await;
    state.metrics.observe(
        method.as_str(),
        route.as_ref().map_or("(unmatched)", MatchedPath::as_str),
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

/// Prometheus metrics
///
/// They count every tenant's traffic together, so with keys configured they
/// need an admin key (a scraper sends it as `Authorization: Bearer KEY`).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses(
        (status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String),
        (status = 401, description = "Missing or invalid API key", body = crate::ErrorBody),
        (status = 403, description = "A tenant key: metrics need an admin key", body = crate::ErrorBody),
    ))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    Caller(scope): Caller,
) -> Result<impl IntoResponse, ApiError> {
    if scope != TenantScope::All {
        return Err(ApiError::Status(
            StatusCode::FORBIDDEN,
            "the metrics count every tenant's traffic: use an admin key".into(),
        ));
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    ))
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    metric(out, name, "counter", help, v);
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {v}");
}

/// The in-process recorder's health (see `costtrace::health`).
fn recorder_health(out: &mut String, h: &costtrace::RecorderHealth) {
    let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
        metric(out, name, "gauge", help, v);
    };
    gauge(
        out,
        "costtrace_recorder_queued",
        "Records waiting in the recorder queue.",
        h.queued,
    );
    gauge(
        out,
        "costtrace_recorder_spooled",
        "Records in the local spool, waiting for the sink.",
        h.spooled,
    );
    gauge(
        out,
        "costtrace_recorder_retry_pending",
        "Records kept in memory for another write attempt.",
        h.retry_pending,
    );
    counter(
        out,
        "costtrace_recorder_written_total",
        "Records the recorder wrote to its sink.",
        h.written,
    );
    counter(
        out,
        "costtrace_recorder_dropped_total",
        "Records dropped because the queue was full.",
        h.dropped,
    );
    counter(
        out,
        "costtrace_recorder_failed_writes_total",
        "Failed sink writes (each batch kept for a retry).",
        h.failed_writes,
    );
    counter(
        out,
        "costtrace_recorder_replayed_total",
        "Records replayed from the spool.",
        h.replayed,
    );
    gauge(
        out,
        "costtrace_recorder_last_error",
        "1 when the latest sink write failed (the message is in the log).",
        u64::from(h.last_error.is_some()),
    );
}
