//! What both clients share: sending a JSON request through a [`Meter`].

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::Value;

use crate::meter::{End, Meter};
use crate::transport::{HttpsClient, error_chain as chain, https_client};
use crate::{Api, Flavor, ProviderError, prepare_request};

/// A failed call. Provider API keys never appear in it.
#[derive(Debug)]
pub enum ClientError {
    /// The provider answered with an error status.
    Provider(ProviderError),
    /// No answer within the client's timeout.
    Timeout(Duration),
    /// The request could not be sent or the response not read.
    Transport(String),
    /// The response was not the JSON expected.
    Decode(String),
    /// The client's settings are wrong (bad URL, bad header).
    Config(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Provider(e) => write!(f, "provider error: {}", e.describe()),
            ClientError::Timeout(d) => write!(f, "no response within {} ms", d.as_millis()),
            ClientError::Transport(e) => write!(f, "HTTP transport: {e}"),
            ClientError::Decode(e) => write!(f, "unexpected response: {e}"),
            ClientError::Config(e) => write!(f, "client settings: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The provider's HTTP status, for errors that came as a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Provider(e) => e.status,
            _ => None,
        }
    }
}

/// One provider endpoint with its headers.
#[derive(Clone)]
pub(crate) struct Core {
    pub(crate) provider: String,
    pub(crate) flavor: Flavor,
    pub(crate) base: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: HeaderMap,
    pub(crate) timeout: Duration,
    pub(crate) send_context: bool,
    http: HttpsClient<Full<Bytes>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers hold the API key: never printed.
        f.debug_struct("Client")
            .field("provider", &self.provider)
            .field("base_url", &self.base)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn new(provider: &str, flavor: Flavor, base: &str) -> Result<Core, ClientError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "base URL {base:?} must start with http:// or https://"
            )));
        }
        Ok(Core {
            provider: provider.to_owned(),
            flavor,
            base,
            query: None,
            headers: HeaderMap::new(),
            timeout: Duration::from_secs(600),
            send_context: true,
            http: https_client().map_err(|e| ClientError::Config(e.to_string()))?,
        })
    }

    pub(crate) fn header(
        &mut self,
        name: &str,
        value: &str,
        secret: bool,
    ) -> Result<(), ClientError> {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ClientError::Config(format!("{name:?} is not a header name")))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| ClientError::Config(format!("the value of header {name} is not valid")))?;
        value.set_sensitive(secret);
        self.headers.insert(name, value);
        Ok(())
    }

    /// Sends `body` to `path`; returns the meter (waiting for the body) and
    /// the response, or the finished error. Only the metered APIs have a
    /// meter: any other path (`…/messages/count_tokens`, `…/moderations`,
    /// …) costs no tokens, or none costtrace can read, and is not recorded.
    pub(crate) async fn send(
        &self,
        path: &str,
        mut body: Value,
    ) -> Result<(Option<Meter>, Response<Incoming>), ClientError> {
        let mut meter = Api::from_path(self.flavor, path).map(|api| {
            let facts = prepare_request(api, &mut body);
            Meter::new(self.provider.clone(), api, facts)
        });
        let finish = |meter: &mut Option<Meter>, end: End| {
            if let Some(m) = meter.as_mut() {
                m.finish(end);
            }
        };
        let req = match self.request(path, &body) {
            Ok(r) => r,
            Err(e) => {
                // Never sent, so never billed; but a failed call, not a
                // successful one.
                let why = match &e {
                    ClientError::Config(m) | ClientError::Decode(m) => m.clone(),
                    other => other.to_string(),
                };
                finish(&mut meter, End::Failed(why));
                return Err(e);
            }
        };
        let resp = match tokio::time::timeout(self.timeout, self.http.request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let msg = chain(&e);
                finish(&mut meter, End::Failed(msg.clone()));
                return Err(ClientError::Transport(msg));
            }
            Err(_) => {
                finish(&mut meter, End::Timeout(self.timeout));
                return Err(ClientError::Timeout(self.timeout));
            }
        };
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if let Some(m) = meter.as_mut() {
            m.response(resp.status().as_u16(), ct);
        }
        if resp.status().is_client_error() || resp.status().is_server_error() {
            let status = resp.status();
            let bytes = read_all(&mut meter, resp.into_body()).await?;
            return Err(ClientError::Provider(ProviderError::from_body(
                Some(status.as_u16()),
                &bytes,
            )));
        }
        Ok((meter, resp))
    }

    /// The HTTP request for `body` to `path`. A URL that does not parse is
    /// reported without its query string, which may hold a key (`?key=…`).
    fn request(&self, path: &str, body: &Value) -> Result<Request<Full<Bytes>>, ClientError> {
        let url = match &self.query {
            Some(q) => format!("{}{path}?{q}", self.base),
            None => format!("{}{path}", self.base),
        };
        let uri = url.parse().map_err(|e| {
            let path = path.split('?').next().unwrap_or_default();
            ClientError::Config(format!(
                "the request URL for {path:?} is not valid ({e}); \
                 the query string is not shown: it may hold a key"
            ))
        })?;
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut req = Request::new(Full::new(Bytes::from(bytes)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        *req.headers_mut() = self.headers.clone();
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(req)
    }

    /// A whole JSON response.
    pub(crate) async fn json(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        let (mut meter, resp) = self.send(path, body).await?;
        let status = resp.status();
        let bytes = read_all(&mut meter, resp.into_body()).await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// Reads a body to its end through the meter (if the call has one), then
/// finishes it.
async fn read_all(meter: &mut Option<Meter>, mut body: Incoming) -> Result<Vec<u8>, ClientError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    if let Some(m) = meter.as_mut() {
                        m.data(d);
                    }
                    out.extend_from_slice(d);
                }
            }
            Err(e) => {
                let msg = chain(&e);
                if let Some(m) = meter.as_mut() {
                    m.finish(End::Upstream(msg.clone()));
                }
                return Err(ClientError::Transport(msg));
            }
        }
    }
    if let Some(m) = meter.as_mut() {
        m.finish(End::Complete);
    }
    Ok(out)
}

/// The context's ids to send to the provider: (`user_id`, `tenant_id`).
pub(crate) fn context_ids() -> (Option<String>, Option<String>) {
    let ctx = costtrace::current();
    (
        ctx.get("user_id").map(str::to_owned),
        ctx.get("tenant_id").map(str::to_owned),
    )
}
