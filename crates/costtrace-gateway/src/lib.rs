//! # costtrace-gateway
//!
//! A reverse proxy for AI provider APIs: point any SDK's base URL at it
//! (`http://127.0.0.1:8080/openai/v1`, `http://127.0.0.1:8080/anthropic`) and
//! every call is recorded with what it cost and who it was for.
//!
//! - Requests go to `/{upstream}/…` and are forwarded to the upstream's URL
//!   with the same method, path, query, headers (provider API keys included,
//!   untouched, never stored or logged) and body. The one change: a
//!   streamed chat completion that does not say whether it wants usage gets
//!   `stream_options.include_usage: true`, so its cost is known.
//! - Responses, streams included, pass through frame by frame as they
//!   arrive; the [`costtrace_providers::Meter`] reads usage from them on the
//!   way.
//! - Who a call is for comes from `X-Costtrace-Tenant`, `-User`, `-Task`,
//!   `-Doc`, `-Request` headers or W3C `baggage` (`tenant_id=…,user_id=…`),
//!   and from `X-Costtrace-Key`, a costtrace API key whose tenant overrides
//!   the headers'. `X-Costtrace-*` headers are not forwarded.
//! - Records go wherever the process's costtrace recorder sends them
//!   (`costtrace::init()`, `COSTTRACE_SINK`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use costtrace_gateway::{Gateway, GatewayConfig};
//! let _recorder = costtrace::init()?;
//! let config = GatewayConfig::new(vec![
//!     "openai=https://api.openai.com".parse()?,
//!     "anthropic=https://api.anthropic.com".parse()?,
//! ]);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! Gateway::new(config)?.serve(listener).await?;
//! # Ok(()) }
//! ```

mod body;
mod config;
mod keys;
mod proxy;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use body::MeteredBody;
pub use config::{GatewayConfig, Upstream};
pub use keys::{KeyResolver, KeyVerdict, StaticKeys, StoreKeys, hash_key};
pub use proxy::{GATEWAY_HEADERS, GatewayBody, KEY_HEADER};

/// What can go wrong setting the gateway up.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Transport(#[from] costtrace_providers::transport::TransportError),
    #[error("gateway I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The gateway: cheap to clone, one per process.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<proxy::Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstreams", &self.inner.config.upstreams)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway recording in the context current now (plus each request's
    /// headers).
    pub fn new(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        Self::build(config, None)
    }

    /// A gateway checking `X-Costtrace-Key` against `keys`.
    pub fn with_keys(
        config: GatewayConfig,
        keys: Arc<dyn KeyResolver>,
    ) -> Result<Gateway, GatewayError> {
        Self::build(config, Some(keys))
    }

    fn build(
        config: GatewayConfig,
        keys: Option<Arc<dyn KeyResolver>>,
    ) -> Result<Gateway, GatewayError> {
        if config.upstreams.is_empty() {
            return Err(GatewayError::Config(
                "no upstream: give at least one --upstream NAME=URL".to_owned(),
            ));
        }
        for (i, u) in config.upstreams.iter().enumerate() {
            if config.upstreams[..i].iter().any(|o| o.name == u.name) {
                return Err(GatewayError::Config(format!(
                    "upstream {} is given twice",
                    u.name
                )));
            }
        }
        Ok(Gateway {
            inner: Arc::new(proxy::Inner {
                config,
                client: costtrace_providers::transport::https_client()?,
                keys,
                base: costtrace::current(),
            }),
        })
    }

    /// Handles one request (for embedding the gateway in your own server).
    pub async fn handle(&self, req: http::Request<Incoming>) -> http::Response<GatewayBody> {
        self.inner.handle(req).await
    }

    /// Serves HTTP/1.1 on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) -> Result<(), GatewayError> {
        self.serve_until(listener, std::future::pending()).await
    }

    /// Serves until `stop` completes; calls in flight are not waited for.
    pub async fn serve_until(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()>,
    ) -> Result<(), GatewayError> {
        tokio::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving.
                        tracing::warn!(error = %e, "costtrace gateway: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                },
                () = &mut stop => return Ok(()),
            };
            let _ = stream.set_nodelay(true);
            let gw = self.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let gw = gw.clone();
                    async move { Ok::<_, Infallible>(gw.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    }
}
