//! The `costtrace` command-line tool: one module per subcommand.

mod checkpoint;
mod demo;
mod exit;
mod gateway;
mod import;
mod keys;
mod prices;
mod report;
mod reprice;
mod serve;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use costtrace_pricing::Catalogue;

/// mimalloc instead of glibc's malloc: a read of the cost API allocates a
/// few dozen small strings and maps on one worker and often frees them on
/// another, which glibc serves through its arena locks. Measured with the
/// server bench (`GET /api/requests?task_id=`, alternating runs on the same
/// data): 11.5–14.7k req/s with glibc, 15.2–19.9k with mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// costtrace: what every AI call and paid service costs.
#[derive(Debug, Parser)]
#[command(name = "costtrace", version, about, after_help = exit::HELP)]
struct Cli {
    /// Price override file (TOML or JSON) applied on top of the shipped prices.
    #[arg(long, global = true, env = "COSTTRACE_PRICES", value_name = "FILE")]
    prices: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Price usages and look models up in the price catalogue.
    Prices(prices::PricesArgs),
    /// Serve the cost API over HTTP.
    Serve(serve::ServeArgs),
    /// Create, list and revoke API keys for `serve`.
    Keys(keys::KeysArgs),
    /// Reverse proxy for AI providers that records every call's cost.
    Gateway(gateway::GatewayArgs),
    /// Fill a store with realistic sample traffic (idempotent).
    Demo(demo::DemoArgs),
    /// Spend tables: top tasks, by model, by day, by entity.
    Report(report::ReportArgs),
    /// Import records from JSON Lines or CSV (resumable, idempotent).
    Import(import::ImportArgs),
    /// Recompute stored costs with the current prices (resumable, idempotent).
    Reprice(reprice::RepriceArgs),
    /// Follow usage and request records as they are stored.
    Tail(tail::TailArgs),
}

/// The outcome of a command that ran: success, or a usage that could not be
/// priced (exit code 2, distinct from a failure to run at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Unpriced,
    /// `import` finished but skipped bad lines.
    SkippedLines,
}

/// Loads the catalogue the global options ask for.
pub(crate) fn load_catalogue(prices: Option<&PathBuf>) -> anyhow::Result<Arc<Catalogue>> {
    match prices {
        None => Ok(Catalogue::bundled()),
        Some(path) => Catalogue::from_override_file(path)
            .map(Arc::new)
            .map_err(|e| exit::coded(exit::INPUT, e))
            .with_context(|| format!("loading price overrides from {}", path.display())),
    }
}

/// The async runtime of the store commands (two workers: SQLite work runs
/// on blocking threads anyway).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Prices(args) => prices::run(args, cli.prices.as_ref()),
        Command::Serve(args) => serve::run(args, cli.prices.as_ref()),
        Command::Keys(args) => keys::run(args),
        Command::Gateway(args) => gateway::run(args, cli.prices.as_ref()),
        Command::Demo(args) => demo::run(args, cli.prices.as_ref()),
        Command::Report(args) => report::run(args),
        Command::Import(args) => import::run(args, cli.prices.as_ref()),
        Command::Reprice(args) => reprice::run(args, cli.prices.as_ref()),
        Command::Tail(args) => tail::run(args),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Unpriced) => ExitCode::from(exit::USAGE),
        Ok(Outcome::SkippedLines) => ExitCode::from(exit::BAD_LINES),
        // `costtrace report | head`: the reader left, nothing went wrong.
        Err(e) if exit::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("costtrace: error: {e:#}");
            ExitCode::from(exit::code_of(&e))
        }
    }
}
