//! A tower layer for your own axum (or any tower/http) service: per request it
//! does what seed 003's middleware and seed 004's request tracker do by hand.
//!
//! - reads `X-Tenant-ID`, `X-User-ID`, `X-Request-ID`, `X-Task-ID`,
//!   `X-Doc-ID`, `X-Entity-ID` and W3C `baggage` (`tenant_id=…,user_id=…`);
//! - optionally answers 401 when the tenant is missing;
//! - generates a request id when none is given and returns it in
//!   `X-Request-ID`;
//! - runs the handler (and everything it spawns with [`crate::spawn`]) in a
//!   context carrying those ids;
//! - records a request (endpoint template, method, status code, processing
//!   time, error) whose services used are the usage recorded inside it.
//!
//! ```
//! use axum::{Router, routing::get};
//! let app: Router = Router::new()
//!     .route("/api/entities/{entity_id}/files", get(|| async { "ok" }))
//!     // route_layer: the endpoint template (`/api/entities/{entity_id}/files`)
//!     // is recorded; with `.layer` the concrete path is.
//!     .route_layer(costtrace::CosttraceLayer::new().require_tenant(true));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::FutureExt;

/// Header names read by [`CosttraceLayer`], and the attribute each sets.
pub const CONTEXT_HEADERS: [(&str, &str); 6] = [
    ("x-tenant-id", "tenant_id"),
    ("x-user-id", "user_id"),
    ("x-request-id", "request_id"),
    ("x-task-id", "task_id"),
    ("x-doc-id", "doc_id"),
    ("x-entity-id", "entity_id"),
];

/// Longest header value taken into the context; longer values are ignored
/// (an id is short; a 100 kB header is an attack or a bug).
const MAX_VALUE_LEN: usize = 256;

/// See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct CosttraceLayer {
    require_tenant: bool,
    operation_type: Option<String>,
}

impl CosttraceLayer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer 401 `{"detail": "Missing tenant"}` when no tenant id is given.
    pub fn require_tenant(mut self, yes: bool) -> Self {
        self.require_tenant = yes;
        self
    }

    /// The `operation_type` of every recorded request (default: none).
    pub fn operation_type(mut self, op: impl Into<String>) -> Self {
        self.operation_type = Some(op.into());
        self
    }
}

impl<S> Layer<S> for CosttraceLayer {
    type Service = CosttraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CosttraceService {
            inner,
            cfg: self.clone(),
        }
    }
}

/// The service made by [`CosttraceLayer`].
#[derive(Clone, Debug)]
pub struct CosttraceService<S> {
    inner: S,
    cfg: CosttraceLayer,
}

fn valid(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_VALUE_LEN && !v.chars().any(char::is_control)
}

/// Minimal percent-decoding for baggage values.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The context attributes a request's headers carry. Explicit `X-…` headers
/// win over `baggage` entries.
pub fn context_from_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    context_from_named_headers(headers, &CONTEXT_HEADERS)
}

/// [`context_from_headers`] with other header names: `names` pairs each
/// header with the attribute it sets; `baggage` entries are read for the
/// same attributes.
pub fn context_from_named_headers(
    headers: &HeaderMap,
    names: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for value in headers.get_all("baggage") {
        let Ok(v) = value.to_str() else { continue };
        for member in v.split(',') {
            let kv = member.split(';').next().unwrap_or("").trim();
            if let Some((k, v)) = kv.split_once('=') {
                let (k, v) = (k.trim(), percent_decode(v.trim()));
                if names.iter().any(|(_, a)| *a == k) && valid(&v) {
                    out.retain(|(ek, _)| ek != k);
                    out.push((k.to_owned(), v));
                }
            }
        }
    }
    for (header, attr) in names {
        if let Some(v) = headers
            .get(*header)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            && valid(v)
        {
            out.retain(|(k, _)| k != attr);
            out.push(((*attr).to_owned(), v.to_owned()));
        }
    }
    out
}

fn get<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl<S, B, RB> Service<Request<B>> for CosttraceService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    RB: Default + From<String> + Send + 'static,
    B: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut attrs = context_from_headers(req.headers());
        if self.cfg.require_tenant && get(&attrs, "tenant_id").is_none() {
            let mut resp = Response::new(RB::from(r#"{"detail":"Missing tenant"}"#.to_owned()));
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Box::pin(async move { Ok(resp) });
        }
        let request_id = match get(&attrs, "request_id") {
            Some(r) => r.to_owned(),
            None => {
                let id = format!(
                    "req_{}",
                    &crate::id::v7_at(crate::id::now_micros())
                        .simple()
                        .to_string()[20..]
                );
                attrs.push(("request_id".to_owned(), id.clone()));
                id
            }
        };
        let endpoint = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| req.uri().path().to_owned());
        let entity = get(&attrs, "entity_id")
            .or(get(&attrs, "tenant_id"))
            .map(str::to_owned);
        let mut b = crate::request(&request_id)
            .method(req.method().as_str())
            .endpoint(&endpoint);
        if let Some(t) = get(&attrs, "task_id") {
            b = b.task_id(t);
        }
        if let Some(d) = get(&attrs, "doc_id") {
            b = b.doc_id(d);
        }
        if let Some(e) = &entity {
            b = b.entity_id(e);
        }
        if let Some(op) = &self.cfg.operation_type {
            b = b.operation_type(op);
        }
        // The request's own ids plus the remaining headers (tenant, user).
        let tracked = crate::context::current()
            .with(attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .run(|| b.start());
        let ctx = tracked.context();
        let fut = self.inner.call(req).with_context(ctx);
        let header = HeaderValue::from_str(&request_id).ok();
        Box::pin(async move {
            let res = fut.await;
            match &res {
                Ok(resp) => {
                    let status = resp.status();
                    let err = (status.is_server_error()).then(|| {
                        status
                            .canonical_reason()
                            .unwrap_or("server error")
                            .to_owned()
                    });
                    tracked.end(status.as_u16(), err);
                }
                Err(e) => tracked.end(500, Some(e.to_string())),
            }
            res.map(|mut resp| {
                if let Some(h) = header {
                    resp.headers_mut().insert("x-request-id", h);
                }
                resp
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_baggage_become_context() {
        let mut h = HeaderMap::new();
        h.insert(
            "baggage",
            HeaderValue::from_static("tenant_id=acme%20corp,user_id=u1;p=1,other=x"),
        );
        h.insert("x-user-id", HeaderValue::from_static("u2"));
        h.insert("x-task-id", HeaderValue::from_static("task_1"));
        let c = context_from_headers(&h);
        assert_eq!(get(&c, "tenant_id"), Some("acme corp"));
        assert_eq!(get(&c, "user_id"), Some("u2"), "explicit header wins");
        assert_eq!(get(&c, "task_id"), Some("task_1"));
        assert_eq!(get(&c, "other"), None, "only known keys");
        let long = "x".repeat(300);
        let mut h = HeaderMap::new();
        h.insert("x-tenant-id", HeaderValue::from_str(&long).unwrap());
        assert!(
            context_from_headers(&h).is_empty(),
            "oversize ids are ignored"
        );
    }
}
