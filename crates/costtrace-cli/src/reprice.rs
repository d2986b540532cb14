//! `costtrace reprice --since …`: recompute stored usage costs with the
//! current catalogue (or `--prices FILE`), one UTC day at a time.
//!
//! Each day is one `Store::reprice` call, which only rewrites rows whose
//! pricing changed, so running it again changes nothing. After each day a
//! checkpoint records how far it got for this store, start and catalogue
//! version; a new run with the same three continues after that day.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use costtrace_core::Timestamp;
use costtrace_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::report::parse_time;
use crate::serve::StoreArgs;
use crate::{Outcome, checkpoint, exit, load_catalogue, runtime};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `costtrace reprice …`
#[derive(Debug, Args)]
#[command(after_help = "\
Costs a provider reported itself are kept. Prints how many records changed.
Use the global --prices FILE (or COSTTRACE_PRICES) for negotiated or fixed
prices; the result is the same as if the records had been priced with it.")]
pub(crate) struct RepriceArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// First time to re-price (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    since: Timestamp,
    /// End (exclusive); default: now.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    until: Option<Timestamp>,
    /// Where progress is kept between runs.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "costtrace-reprice.checkpoint"
    )]
    checkpoint: PathBuf,
    /// Ignore an existing checkpoint.
    #[arg(long)]
    restart: bool,
    /// Stop after this many days, keeping the checkpoint (tests the resume
    /// path like an interruption would).
    #[arg(long, hide = true)]
    stop_after_days: Option<u64>,
}

/// Progress kept between runs.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Checkpoint {
    /// SHA-256 of the store URL (no password in the file).
    store: String,
    since: Timestamp,
    catalogue_version: String,
    /// Everything before this is re-priced.
    done_until: Timestamp,
    /// Records changed so far.
    changed: u64,
}

pub(crate) fn run(args: &RepriceArgs, prices: Option<&PathBuf>) -> anyhow::Result<Outcome> {
    let catalogue = load_catalogue(prices)?;
    let until = args.until.unwrap_or_else(Timestamp::now);
    if until <= args.since {
        return Err(exit::coded(
            exit::USAGE,
            anyhow::anyhow!("--until {until} is not after --since {}", args.since),
        ));
    }
    let store_key = checkpoint::sha256_hex(args.store.database_url.as_bytes());
    let fresh = Checkpoint {
        store: store_key,
        since: args.since,
        catalogue_version: catalogue.version().to_owned(),
        done_until: args.since,
        changed: 0,
    };
    let mut cp = match checkpoint::load::<Checkpoint>(&args.checkpoint)? {
        Some(old)
            if !args.restart
                && (&old.store, old.since, &old.catalogue_version)
                    == (&fresh.store, fresh.since, &fresh.catalogue_version) =>
        {
            eprintln!(
                "costtrace: resuming at {} ({} records changed before; --restart to start over)",
                old.done_until, old.changed
            );
            old
        }
        _ => fresh,
    };
    let changed_before = cp.changed;
    let start = cp.done_until;
    let days = ((until.as_micros() - start.as_micros()).max(0) + MICROS_PER_DAY - 1)
        .div_euclid(MICROS_PER_DAY);
    let bar = ProgressBar::new(u64::try_from(days).unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} days {msg} ({eta} left)")
            .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?,
    );
    let mut stopped = false;
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let mut done_days = 0u64;
        while cp.done_until < until {
            // Up to the next UTC midnight.
            let t = cp.done_until.as_micros();
            let end = Timestamp(
                (t.div_euclid(MICROS_PER_DAY) + 1)
                    .saturating_mul(MICROS_PER_DAY)
                    .min(until.as_micros()),
            );
            cp.changed += store
                .reprice(Some(cp.done_until), Some(end), &catalogue)
                .await
                .map_err(|e| exit::coded(exit::STORE, e))
                .with_context(|| format!("re-pricing {} to {end}", cp.done_until))?;
            cp.done_until = end;
            checkpoint::save(&args.checkpoint, &cp)?;
            bar.inc(1);
            bar.set_message(format!("{} changed", cp.changed));
            done_days += 1;
            if cp.done_until < until && args.stop_after_days.is_some_and(|n| done_days >= n) {
                stopped = true;
                break;
            }
        }
        anyhow::Ok(())
    })?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "re-priced {start} to {} with {}: {} records changed",
        cp.done_until,
        catalogue.version(),
        cp.changed - changed_before
    )?;
    if stopped {
        writeln!(
            out,
            "stopped early; run the same command again to continue at {}",
            cp.done_until
        )?;
        return Ok(Outcome::Ok);
    }
    if changed_before > 0 || start != args.since {
        writeln!(
            out,
            "whole range {} to {}: {} records changed",
            args.since, cp.done_until, cp.changed
        )?;
    }
    checkpoint::remove(&args.checkpoint)?;
    Ok(Outcome::Ok)
}
