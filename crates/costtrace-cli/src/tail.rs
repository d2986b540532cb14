//! `costtrace tail`: follow usage and request records as they are stored,
//! one line each (or JSON Lines), until Ctrl-C.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use costtrace_core::{Record, RequestRecord, Timestamp, UsageRecord};
use costtrace_store::{RecordCursor, Store};

use crate::report::{parse_time, usd};
use crate::serve::StoreArgs;
use crate::{Outcome, exit, runtime};

/// Records read per store call.
const PAGE: u32 = 500;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TailFormat {
    /// One readable line per record.
    Text,
    /// One JSON record per line (the wire format `costtrace import` reads).
    Json,
}

/// `costtrace tail …`
#[derive(Debug, Args)]
#[command(after_help = "\
Without --since, only records stored after tail started are shown. A request
shows again each time it is written (started, then ended). Stops on Ctrl-C.")]
pub(crate) struct TailArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TailFormat::Text)]
    format: TailFormat,
    /// First show the stored records with a timestamp at or after TIME
    /// (RFC 3339 or YYYY-MM-DD), then follow.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    since: Option<Timestamp>,
    /// How often to look for new records, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    interval_ms: u64,
}

pub(crate) fn run(args: &TailArgs) -> anyhow::Result<Outcome> {
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let unreachable = |e| exit::coded(exit::STORE, e);
        let mut cursor = match args.since {
            Some(_) => RecordCursor::default(),
            None => store.record_cursor_end().await.map_err(unreachable)?,
        };
        // Listening before saying so: a Ctrl-C right after must not kill.
        let mut stop = Interrupt::listen()?;
        eprintln!(
            "costtrace: following {} (Ctrl-C to stop)",
            crate::serve::redact(&args.store.database_url)
        );
        let mut out = std::io::stdout().lock();
        loop {
            loop {
                let (records, next) = store
                    .records_after(cursor, PAGE)
                    .await
                    .map_err(unreachable)
                    .context("reading new records")?;
                cursor = next;
                for r in &records {
                    if args.since.is_some_and(|s| timestamp(r) < s) {
                        continue;
                    }
                    match args.format {
                        TailFormat::Json => serde_json::to_writer(&mut out, r)?,
                        TailFormat::Text => out.write_all(line(r).as_bytes())?,
                    }
                    out.write_all(b"\n")?;
                }
                out.flush()?;
                if records.is_empty() {
                    break;
                }
            }
            tokio::select! {
                () = stop.wait() => break,
                () = tokio::time::sleep(Duration::from_millis(args.interval_ms)) => {}
            }
        }
        eprintln!("costtrace: stopped");
        Ok(Outcome::Ok)
    })
}

/// Ctrl-C (SIGINT), caught from the moment it is created.
struct Interrupt {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn listen() -> anyhow::Result<Interrupt> {
        Ok(Interrupt {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .context("listening for Ctrl-C")?,
        })
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        self.signal.recv().await;
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn timestamp(r: &Record) -> Timestamp {
    match r {
        Record::Usage(u) => u.timestamp,
        Record::Request(q) => q.timestamp,
        Record::Scope(s) => s.started_at,
    }
}

/// One readable line.
pub(crate) fn line(r: &Record) -> String {
    match r {
        Record::Usage(u) => usage_line(u),
        Record::Request(q) => request_line(q),
        Record::Scope(s) => format!("{}  scope    {}", s.started_at, s.name),
    }
}

fn links(parts: [(&str, Option<&str>); 3]) -> String {
    parts
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!(" {k}={v}")))
        .collect()
}

fn usage_line(u: &UsageRecord) -> String {
    let attr = |k: &str| u.attrs.get(k).map(String::as_str);
    let what = match (&u.model, &u.service_type) {
        (Some(model), _) => {
            let tokens = |v: Option<u64>| v.map_or("?".to_owned(), |n| n.to_string());
            format!(
                "{}/{model} in={} out={}",
                u.provider.as_deref().unwrap_or("?"),
                tokens(u.input_tokens),
                tokens(u.output_tokens)
            )
        }
        (None, Some(service)) => {
            let units: Vec<String> = u.units.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{service} {}", units.join(","))
        }
        (None, None) => "?".to_owned(),
    };
    let tier = if u.pricing_tier == costtrace_core::PricingTier::Batch {
        " batch"
    } else {
        ""
    };
    let cost = match (u.cost_nanos, &u.unpriced_reason) {
        (Some(n), _) => format!("${}", usd(n, 6)),
        (None, Some(why)) => format!("unpriced ({why})"),
        (None, None) => "unpriced".to_owned(),
    };
    let error = u
        .error_message
        .as_deref()
        .map_or(String::new(), |e| format!("  error: {e}"));
    let line = format!(
        "{}  usage    {}  {what}{tier}  {cost} {}{error}",
        u.timestamp,
        attr("entity_id").unwrap_or("-"),
        links([
            ("request", attr("request_id")),
            ("task", attr("task_id")),
            ("doc", attr("doc_id")),
        ])
    );
    line.trim_end().to_owned()
}

fn request_line(q: &RequestRecord) -> String {
    let status = q
        .status_code
        .map_or("running".to_owned(), |s| s.to_string());
    let time = q
        .processing_time_ms
        .map_or(String::new(), |ms| format!(" {ms:.0}ms"));
    let error = q
        .error_message
        .as_deref()
        .map_or(String::new(), |e| format!("  error: {e}"));
    let line = format!(
        "{}  request  {}  {} {}  {status}{time} {}{error}",
        q.timestamp,
        q.entity_id.as_deref().unwrap_or("-"),
        q.method.as_deref().unwrap_or("-"),
        q.endpoint.as_deref().unwrap_or("-"),
        links([
            ("request", Some(q.request_id.as_str())),
            ("task", q.task_id.as_deref()),
            ("doc", q.doc_id.as_deref()),
        ])
    );
    line.trim_end().to_owned()
}
