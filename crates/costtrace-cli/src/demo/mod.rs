//! `costtrace demo`: fills a store with realistic sample traffic (several
//! tenants, models and providers, batch jobs, multi-request upload tasks
//! with file_processor / transformer usage, failures, an unpriced model, a
//! task still running) spread over the last 14 days.

mod traffic;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use costtrace_core::{Record, Timestamp};
use costtrace_pricing::Catalogue;
use costtrace_store::{AnyStore, GroupBy, Page, RequestFilter, Store, TenantScope};

use crate::serve::StoreArgs;
use crate::{Outcome, load_catalogue, runtime};

pub(crate) use traffic::Totals;

/// Records per store write.
const BATCH: usize = 1_000;

/// `costtrace demo …`
#[derive(Debug, Args)]
#[command(after_help = "Running it again adds nothing: every record has a stable id.")]
pub(crate) struct DemoArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Also write the records to FILE as JSON Lines (what `costtrace import`
    /// reads).
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
}

pub(crate) fn run(args: &DemoArgs, prices: Option<&PathBuf>) -> anyhow::Result<Outcome> {
    let catalogue = load_catalogue(prices)?;
    let records = traffic::generate(Timestamp::now(), &catalogue);
    if let Some(path) = &args.jsonl {
        write_jsonl(path, &records)?;
    }
    let new = runtime()?.block_on(async {
        let store = args.store.open().await?;
        insert(&store, &records).await
    })?;
    let t = Totals::of(&records);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "demo data: {} records ({} usage, {} requests) for {} tenants over the last {} days",
        t.records,
        t.usage,
        t.requests,
        t.tenants,
        traffic::DAYS
    )?;
    writeln!(
        out,
        "priced total: ${:.6}; unpriced usage records: {} (never counted as $0)",
        t.usd(),
        t.unpriced
    )?;
    writeln!(
        out,
        "new in the store: {new} (records it already had are left as they are)"
    )?;
    // The password of a database URL never reaches the output.
    let url = crate::serve::redact(&args.store.database_url);
    writeln!(
        out,
        "next: costtrace serve --database-url {url}    (then open http://127.0.0.1:8000/)"
    )?;
    writeln!(out, "  or: costtrace report --database-url {url}")?;
    Ok(Outcome::Ok)
}

/// Inserts `records` in batches; returns how many were new.
async fn insert(store: &AnyStore, records: &[Record]) -> anyhow::Result<u64> {
    let mut new = 0;
    for chunk in records.chunks(BATCH) {
        new += store
            .insert_records(chunk)
            .await
            .context("writing demo records")?;
    }
    Ok(new)
}

fn write_jsonl(path: &PathBuf, records: &[Record]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for r in records {
        serde_json::to_writer(&mut w, r)?;
        w.write_all(b"\n")?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Whether the store holds no requests and no usage.
pub(crate) async fn is_empty(store: &AnyStore) -> anyhow::Result<bool> {
    let one = Page {
        page: 1,
        page_size: 1,
    };
    let (_, requests) = store
        .list_requests(&RequestFilter::default(), one, &TenantScope::All)
        .await
        .context("counting requests")?;
    let usage = store
        .usage_summary(GroupBy::Provider, None, None, &TenantScope::All)
        .await
        .context("counting usage")?;
    Ok(requests == 0 && usage.is_empty())
}

/// `serve --demo`: fills an empty store with the demo data.
pub(crate) async fn fill_if_empty(store: &AnyStore, catalogue: &Catalogue) -> anyhow::Result<()> {
    if !is_empty(store).await? {
        eprintln!("costtrace: the store already holds records: no demo data added");
        return Ok(());
    }
    let records = traffic::generate(Timestamp::now(), catalogue);
    let new = insert(store, &records).await?;
    let t = Totals::of(&records);
    eprintln!(
        "costtrace: filled the empty store with demo data: {new} records for {} tenants, ${:.2} priced, {} unpriced",
        t.tenants,
        t.usd(),
        t.unpriced
    );
    Ok(())
}
