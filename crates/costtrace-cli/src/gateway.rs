//! `costtrace gateway`: the recording reverse proxy for AI providers (see
//! the `costtrace-gateway` crate).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use costtrace_gateway::{Gateway, GatewayConfig, StoreKeys, Upstream};

use crate::{Outcome, load_catalogue};

/// `costtrace gateway --listen 127.0.0.1:8080 --upstream openai=https://api.openai.com …`
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Address to listen on. Point SDKs at http://ADDR/NAME (e.g.
    /// OpenAI base URL http://127.0.0.1:8080/openai/v1).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A provider to forward to, NAME=URL (repeatable). The name is the
    /// first path segment and the provider recorded; `anthropic…` names
    /// speak Anthropic Messages, others the OpenAI-compatible APIs.
    #[arg(long = "upstream", value_name = "NAME=URL", required = true)]
    upstreams: Vec<Upstream>,
    /// Seconds to wait for an upstream's response headers.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// A store whose API keys (`costtrace keys create --tenant T`) are
    /// accepted in X-Costtrace-Key; a key's tenant is recorded for its calls.
    #[arg(long, value_name = "URL")]
    keys: Option<String>,
    /// Answer 401 to calls without a valid X-Costtrace-Key (needs --keys).
    #[arg(long, requires = "keys")]
    require_key: bool,
    /// Threads serving calls. One thread serves thousands of calls per
    /// second; each call is mostly waiting, and with more threads every call
    /// pays for waking the others.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
}

pub(crate) fn run(args: &GatewayArgs, prices: Option<&PathBuf>) -> anyhow::Result<Outcome> {
    let catalogue = load_catalogue(prices)?;
    // Records go where COSTTRACE_SINK says (default: the local SQLite store).
    let _recorder = costtrace::Config::from_env()
        .context("reading the COSTTRACE_* settings")?
        .catalogue(catalogue)
        .init()
        .context("starting the recorder")?;
    // One thread: a current-thread runtime, so a call's server side, its
    // upstream connection and the pool hand-offs between them never wake
    // another thread (measured: about a fifth less CPU per call than two
    // workers; docs/benchmarks.md "Gateway").
    let runtime = match args.threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(n))
            .enable_all()
            .build(),
    }
    .context("starting the async runtime")?;
    runtime.block_on(async {
        let config = GatewayConfig::new(args.upstreams.clone())
            .timeout(Duration::from_secs(args.timeout_secs))
            .require_key(args.require_key);
        let gateway = match &args.keys {
            Some(url) => {
                let store = crate::serve::open_store(url, "the key store").await?;
                Gateway::with_keys(config, Arc::new(StoreKeys::new(store)))?
            }
            None => Gateway::new(config)?,
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        for u in &args.upstreams {
            eprintln!(
                "costtrace gateway: http://{addr}/{}/… → {}",
                u.name,
                crate::serve::redact(u.url.as_str())
            );
        }
        gateway
            .serve_until(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(Outcome::Ok)
    })
}
