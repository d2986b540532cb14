//! `costtrace serve`: the HTTP API over one store.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use costtrace_server::{AppState, AuthMode, app};
use costtrace_store::{AnyStore, StoreError};

use crate::{Outcome, demo, exit, load_catalogue};

/// Where records and keys live (shared by `serve` and `keys`).
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// `sqlite:PATH` (embedded, one process) or `postgres://…` (several
    /// stateless servers may share one database).
    #[arg(
        long,
        env = "COSTTRACE_DATABASE_URL",
        default_value = "sqlite:./costtrace.db",
        value_name = "URL"
    )]
    pub(crate) database_url: String,
}

impl StoreArgs {
    /// Opens the store; failures carry exit code 4 (2 for a malformed URL).
    pub(crate) async fn open(&self) -> anyhow::Result<AnyStore> {
        open_store(&self.database_url, "the store").await
    }
}

/// Opens the store at `url` (`what` names it in the error, with the URL's
/// password hidden); failures carry exit code 4 (2 for a malformed URL).
pub(crate) async fn open_store(url: &str, what: &str) -> anyhow::Result<AnyStore> {
    AnyStore::open(url)
        .await
        .map_err(|e| {
            let code = match e {
                StoreError::UnsupportedUrl(_) => exit::USAGE,
                _ => exit::STORE,
            };
            exit::coded(code, e)
        })
        .with_context(|| format!("opening {what} {}", redact(url)))
}

/// A URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    costtrace_core::secrets::redact_url(url)
}

/// `costtrace serve …`
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on. Anything but a loopback address needs API keys
    /// (`costtrace keys create`).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Fill the store with `costtrace demo` data first when it holds no
    /// records yet (a store with data is left alone).
    #[arg(long)]
    demo: bool,
}

pub(crate) fn run(args: &ServeArgs, prices: Option<&PathBuf>) -> anyhow::Result<Outcome> {
    let catalogue = load_catalogue(prices)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = args.store.open().await?;
        if args.demo {
            demo::fill_if_empty(&store, &catalogue).await?;
        }
        let auth = AuthMode::detect(&store)
            .await
            .context("reading the API keys")?;
        if auth == AuthMode::Local && !args.bind.is_loopback() {
            bail!(
                "refusing to listen on {} without API keys: anyone could read every tenant's costs. \
                 Create a key first (`costtrace keys create --admin` or `--tenant NAME`), \
                 or bind a loopback address (--bind 127.0.0.1)",
                args.bind
            );
        }
        let listener = tokio::net::TcpListener::bind((args.bind, args.port))
            .await
            .with_context(|| format!("listening on {}:{}", args.bind, args.port))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let mode = match auth {
            AuthMode::Local => {
                "local mode: no API keys configured, every caller is admin (loopback only)"
            }
            AuthMode::Keys => "API keys required (Authorization: Bearer KEY)",
        };
        eprintln!(
            "costtrace: serving http://{addr} ({} store; {mode})",
            store.backend()
        );
        let state = AppState::new(store, catalogue, auth);
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving HTTP")?;
        Ok(Outcome::Ok)
    })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("sqlite:./costtrace.db"), "sqlite:./costtrace.db");
    }
}
