//! One request through the gateway.

use std::sync::Arc;

use bytes::Bytes;
use costtrace::Context;
use costtrace_providers::transport::HttpsClient;
use costtrace_providers::{Api, End, Meter, prepare_request_bytes};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use crate::body::MeteredBody;
use crate::config::{GatewayConfig, Upstream};
use crate::keys::{KeyResolver, KeyVerdict};

/// What the gateway answers with: the upstream's body passing through, or
/// the gateway's own short JSON error.
pub type GatewayBody = Either<MeteredBody, Either<Incoming, Full<Bytes>>>;

/// The context headers and the attribute each sets. W3C `baggage` entries
/// with these attribute names are read too (the headers win).
pub const GATEWAY_HEADERS: [(&str, &str); 5] = [
    ("x-costtrace-tenant", "tenant_id"),
    ("x-costtrace-user", "user_id"),
    ("x-costtrace-task", "task_id"),
    ("x-costtrace-doc", "doc_id"),
    ("x-costtrace-request", "request_id"),
];

/// The header carrying a costtrace API key (never forwarded).
pub const KEY_HEADER: &str = "x-costtrace-key";

/// Upstream body: the request's own, or the rewritten one.
pub(crate) type UpstreamBody = Either<Incoming, Full<Bytes>>;

pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    pub(crate) client: HttpsClient<UpstreamBody>,
    pub(crate) keys: Option<Arc<dyn KeyResolver>>,
    /// The context calls are recorded under (the one current when the
    /// gateway was built, plus each request's headers).
    pub(crate) base: Context,
}

fn error(status: StatusCode, message: &str) -> Response<GatewayBody> {
    let body = serde_json::json!({
        "error": {"message": message, "type": "costtrace_gateway_error", "code": status.as_u16()}
    });
    let mut r = Response::new(Either::Right(Either::Right(Full::new(Bytes::from(
        body.to_string(),
    )))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones the gateway owns.
fn skip_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    ) || name.as_str().starts_with("x-costtrace-")
}

/// Copies the end-to-end headers: not the hop-by-hop ones, nor those a
/// `Connection` header names as hop-by-hop for this connection (RFC 9110
/// §7.6.1), nor the gateway's own.
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for (k, v) in from {
        if !skip_header(k) && !named.iter().any(|n| n == k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}

impl Inner {
    fn route<'a>(&'a self, path: &'a str) -> Option<(&'a Upstream, &'a str)> {
        let rest = path.strip_prefix('/')?;
        let (name, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let up = self.config.upstreams.iter().find(|u| u.name == name)?;
        Some((up, tail))
    }

    pub(crate) async fn handle(&self, req: Request<Incoming>) -> Response<GatewayBody> {
        let (parts, body) = req.into_parts();
        let Some((up, tail)) = self.route(parts.uri.path()) else {
            let names: Vec<&str> = self
                .config
                .upstreams
                .iter()
                .map(|u| u.name.as_str())
                .collect();
            return error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no upstream for this path: call /NAME/… with NAME one of {names:?} (e.g. base URL http://gateway/openai/v1)"
                ),
            );
        };

        // Who the call is for: headers and baggage, then the key's tenant.
        let mut attrs =
            costtrace::layer::context_from_named_headers(&parts.headers, &GATEWAY_HEADERS);
        let key = parts.headers.get(KEY_HEADER).and_then(|v| v.to_str().ok());
        match (key, &self.keys) {
            (Some(key), Some(keys)) => match keys.resolve(key).await {
                KeyVerdict::Tenant(t) => {
                    // The key's tenant is the record's tenant and entity (the
                    // server scopes tenants by entity): headers and baggage
                    // cannot name another.
                    attrs.retain(|(k, _)| k != "tenant_id" && k != "entity_id");
                    attrs.push(("entity_id".to_owned(), t.clone()));
                    attrs.push(("tenant_id".to_owned(), t));
                }
                KeyVerdict::Admin => {}
                KeyVerdict::Invalid => {
                    return error(
                        StatusCode::UNAUTHORIZED,
                        "invalid or revoked X-Costtrace-Key",
                    );
                }
            },
            (Some(_), None) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "X-Costtrace-Key given but this gateway has no key store (start it with --keys)",
                );
            }
            (None, _) if self.config.require_key => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "missing X-Costtrace-Key: this gateway records calls only for known tenants",
                );
            }
            (None, _) => {}
        }

        let target = match parts.uri.query() {
            Some(q) => format!("{}{tail}?{q}", up.url),
            None => format!("{}{tail}", up.url),
        };
        let Ok(uri) = target.parse::<Uri>() else {
            return error(
                StatusCode::BAD_REQUEST,
                "the request path is not a valid URL path",
            );
        };

        let api = (parts.method == Method::POST)
            .then(|| Api::from_path(up.flavor, tail))
            .flatten();
        let mut headers = HeaderMap::with_capacity(parts.headers.len());
        copy_headers(&parts.headers, &mut headers);

        let (body, meter) = match api {
            None => (Either::Left(body), None),
            Some(api) => {
                let bytes = match Limited::new(body, self.config.max_request_body)
                    .collect()
                    .await
                {
                    Ok(c) => c.to_bytes(),
                    Err(e) => {
                        return if e.is::<http_body_util::LengthLimitError>() {
                            error(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "request body too large to meter",
                            )
                        } else {
                            error(StatusCode::BAD_REQUEST, "reading the request body failed")
                        };
                    }
                };
                let (facts, rewritten) = prepare_request_bytes(api, &bytes);
                let bytes = rewritten.map_or(bytes, Bytes::from);
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                // The meter reads the body: ask for it uncompressed (identity
                // is acceptable to every client that asked for gzip).
                headers.insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
                let ctx = self
                    .base
                    .with(attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let meter = Meter::new(up.name.clone(), api, facts).context(ctx);
                (Either::Right(Full::new(bytes)), Some(meter))
            }
        };

        let mut out = Request::new(body);
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = headers;

        let sent = tokio::time::timeout(self.config.timeout, self.client.request(out)).await;
        let resp = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let msg = costtrace_providers::transport::error_chain(&e);
                tracing::warn!(upstream = %up.name, error = %msg, "costtrace gateway: upstream request failed");
                if let Some(mut m) = meter {
                    m.finish(End::Failed(msg.clone()));
                }
                return error(
                    StatusCode::BAD_GATEWAY,
                    &format!("upstream {}: {msg}", up.name),
                );
            }
            Err(_) => {
                if let Some(mut m) = meter {
                    m.finish(End::Timeout(self.config.timeout));
                }
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "upstream {} did not answer within {} ms",
                        up.name,
                        self.config.timeout.as_millis()
                    ),
                );
            }
        };
        let (rparts, rbody) = resp.into_parts();
        let body = match meter {
            Some(mut m) => {
                let ct = rparts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok());
                m.response(rparts.status.as_u16(), ct);
                Either::Left(MeteredBody::new(rbody, m))
            }
            None => Either::Right(Either::Left(rbody)),
        };
        let mut r = Response::new(body);
        *r.status_mut() = rparts.status;
        copy_headers(&rparts.headers, r.headers_mut());
        r
    }
}
