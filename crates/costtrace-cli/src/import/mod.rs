//! `costtrace import FILE`: JSON Lines (the wire format) or CSV records into
//! a store, in batches, resumable, idempotent.
//!
//! Resuming: after every batch the store has committed, a checkpoint file
//! (`FILE.costtrace-import` unless `--checkpoint`) records the byte offset
//! and line reached. A new run over the same file continues there; the
//! checkpoint is checked against the file's first bytes, so an edited file
//! starts over. Starting over is always safe: records keep their ids and the
//! store ignores ids it has.

mod csv_row;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use costtrace_core::Record;
use costtrace_pricing::Catalogue;
use costtrace_store::{AnyStore, Store};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::serve::StoreArgs;
use crate::{Outcome, checkpoint, exit, load_catalogue, runtime};

/// The `price_version` of a cost that came with the record.
pub(crate) const REPORTED: &str = "reported";

/// Bad lines printed one by one; the rest are only counted.
const MAX_SHOWN: u64 = 50;

/// Bytes of the file's start that identify it in the checkpoint.
const FINGERPRINT_BYTES: u64 = 64 * 1024;

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputFormat {
    /// By extension: `.csv` is CSV, anything else JSON Lines.
    Auto,
    /// One JSON record per line (`{"kind": "usage", …}`), as the API ingests.
    Jsonl,
    /// A header row, then one record per row (columns below).
    Csv,
}

/// `costtrace import …`
#[derive(Debug, Args)]
#[command(after_help = csv_row::COLUMNS_HELP)]
pub(crate) struct ImportArgs {
    /// The file to import.
    file: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// The file's format.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    format: InputFormat,
    /// Records per store write (and per checkpoint).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch_size: u32,
    /// Where progress is kept between runs. Default: FILE.costtrace-import.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Ignore an existing checkpoint and read the file from the start.
    #[arg(long)]
    restart: bool,
    /// Stop after this many batches, keeping the checkpoint (tests the
    /// resume path like an interruption would).
    #[arg(long, hide = true)]
    stop_after_batches: Option<u64>,
}

/// Progress kept between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// SHA-256 of the file's first [`FINGERPRINT_BYTES`] (or fewer) bytes.
    fingerprint: String,
    /// Bytes of the file consumed.
    offset: u64,
    /// Lines consumed.
    line: u64,
    /// Records that were new in the store.
    new: u64,
    /// Records read (new or already stored).
    records: u64,
    /// Bad lines skipped.
    bad: u64,
}

/// One parsed item: a record, or why its line is bad.
type Item = Result<Record, String>;

/// Where an item was: the line it starts on (for messages), and the byte
/// offset and line count after it (for the checkpoint).
#[derive(Clone, Copy, Debug)]
struct At {
    line: u64,
    offset_after: u64,
    lines_after: u64,
}

/// Reads items after a position.
trait Source {
    fn next_item(&mut self) -> anyhow::Result<Option<(Item, At)>>;
}

struct JsonLines {
    reader: BufReader<File>,
    offset: u64,
    line: u64,
    buf: String,
}

impl Source for JsonLines {
    fn next_item(&mut self) -> anyhow::Result<Option<(Item, At)>> {
        loop {
            self.buf.clear();
            let n = self.reader.read_line(&mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.offset += n as u64;
            self.line += 1;
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            let item = serde_json::from_str::<Record>(text).map_err(|e| e.to_string());
            let at = At {
                line: self.line,
                offset_after: self.offset,
                lines_after: self.line,
            };
            return Ok(Some((item, at)));
        }
    }
}

struct CsvRows {
    reader: csv::Reader<File>,
    header: csv_row::Header,
    /// Byte offset and line where `reader` started.
    base: (u64, u64),
    row: csv::StringRecord,
}

impl Source for CsvRows {
    fn next_item(&mut self) -> anyhow::Result<Option<(Item, At)>> {
        let result = self.reader.read_record(&mut self.row);
        // After a read, position() is where the next row starts.
        let next = self.reader.position();
        let at = At {
            line: self.base.1 + self.row.position().map_or(next.line(), |p| p.line()),
            offset_after: self.base.0 + next.byte(),
            lines_after: self.base.1 + next.line() - 1,
        };
        match result {
            Ok(false) => Ok(None),
            Ok(true) => {
                let item = self.header.record(&self.row).map_err(|e| format!("{e:#}"));
                Ok(Some((item, at)))
            }
            Err(e) if e.is_io_error() => Err(e.into()),
            Err(e) => Ok(Some((Err(e.to_string()), at))),
        }
    }
}

pub(crate) fn run(args: &ImportArgs, prices: Option<&PathBuf>) -> anyhow::Result<Outcome> {
    let catalogue = load_catalogue(prices)?;
    let path = &args.file;
    let unreadable = |e: std::io::Error| {
        exit::coded(exit::INPUT, e).context(format!("reading {}", path.display()))
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    let fingerprint = fingerprint(&mut file).map_err(unreadable)?;
    let checkpoint_path = args.checkpoint.clone().unwrap_or_else(|| {
        let mut p = path.clone().into_os_string();
        p.push(".costtrace-import");
        PathBuf::from(p)
    });
    let mut cp = match checkpoint::load::<Checkpoint>(&checkpoint_path)? {
        Some(cp) if !args.restart && cp.fingerprint == fingerprint && cp.offset <= len => {
            eprintln!(
                "costtrace: resuming {} at line {} ({} records already imported; --restart to start over)",
                path.display(),
                cp.line + 1,
                cp.records
            );
            cp
        }
        _ => Checkpoint {
            fingerprint,
            ..Checkpoint::default()
        },
    };
    let csv = match args.format {
        InputFormat::Csv => true,
        InputFormat::Jsonl => false,
        InputFormat::Auto => path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv")),
    };
    let mut source: Box<dyn Source> = if csv {
        Box::new(csv_source(path, &cp).map_err(|e| exit::coded(exit::INPUT, e))?)
    } else {
        file.seek(SeekFrom::Start(cp.offset)).map_err(unreadable)?;
        Box::new(JsonLines {
            reader: BufReader::new(file),
            offset: cp.offset,
            line: cp.line,
            buf: String::new(),
        })
    };

    let bar = ProgressBar::new(len).with_position(cp.offset);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta} left)")
            .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?,
    );
    let (start_line, start_new, start_records) = (cp.line, cp.new, cp.records);
    let bad_before = cp.bad;
    let stopped = runtime()?.block_on(async {
        let store = args.store.open().await?;
        let mut batch = Vec::with_capacity(args.batch_size as usize);
        let mut batches = 0u64;
        let mut pending = (cp.offset, cp.line, 0u64);
        loop {
            let next = source
                .next_item()
                .with_context(|| format!("reading {}", path.display()))
                .map_err(|e| exit::coded(exit::INPUT, e))?;
            let done = next.is_none();
            if let Some((item, at)) = next {
                let line = at.line;
                pending = (at.offset_after, at.lines_after, pending.2);
                match item {
                    Ok(r) => batch.push(priced(r, &catalogue)),
                    Err(why) => {
                        pending.2 += 1;
                        let n = cp.bad + pending.2;
                        if n <= MAX_SHOWN {
                            bar.suspend(|| eprintln!("costtrace: line {line}: {why} (skipped)"));
                        } else if n == MAX_SHOWN + 1 {
                            bar.suspend(|| eprintln!("costtrace: more bad lines: only counted"));
                        }
                    }
                }
            }
            if batch.len() >= args.batch_size as usize || (done && pending.1 > cp.line) {
                cp.new += write(&store, &batch).await?;
                cp.records += batch.len() as u64;
                batch.clear();
                (cp.offset, cp.line) = (pending.0, pending.1);
                cp.bad += pending.2;
                pending.2 = 0;
                checkpoint::save(&checkpoint_path, &cp)?;
                bar.set_position(cp.offset);
                bar.set_message(format!("{} records", cp.records));
                batches += 1;
                if !done && args.stop_after_batches.is_some_and(|n| batches >= n) {
                    return anyhow::Ok(true);
                }
            }
            if done {
                return anyhow::Ok(false);
            }
        }
    })?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "read {} lines (lines {}–{}): {} records, {} new, {} already in the store; {} bad lines skipped",
        cp.line - start_line,
        start_line + 1,
        cp.line,
        cp.records - start_records,
        cp.new - start_new,
        (cp.records - start_records) - (cp.new - start_new),
        cp.bad - bad_before
    )?;
    if stopped {
        writeln!(
            out,
            "stopped early; run the same command again to continue at line {}",
            cp.line + 1
        )?;
        return Ok(Outcome::Ok);
    }
    if start_line > 0 {
        writeln!(
            out,
            "whole file: {} records, {} new, {} bad lines",
            cp.records, cp.new, cp.bad
        )?;
    }
    checkpoint::remove(&checkpoint_path)?;
    Ok(if cp.bad > 0 {
        Outcome::SkippedLines
    } else {
        Outcome::Ok
    })
}

/// A CSV reader positioned after the checkpoint (the header is read from
/// the start of the file first).
fn csv_source(path: &Path, cp: &Checkpoint) -> anyhow::Result<CsvRows> {
    let open = || File::open(path).with_context(|| format!("reading {}", path.display()));
    let mut head = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(open()?);
    let mut first = csv::StringRecord::new();
    if !head.read_record(&mut first)? {
        bail!("{} is empty: a CSV file needs a header row", path.display());
    }
    let header = csv_row::Header::new(&first)?;
    let base = if cp.line == 0 {
        (head.position().byte(), 1)
    } else {
        (cp.offset, cp.line)
    };
    let mut file = open()?;
    file.seek(SeekFrom::Start(base.0))?;
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    Ok(CsvRows {
        reader,
        header,
        base,
        row: csv::StringRecord::new(),
    })
}

/// Keeps a cost that came with the record (`cost_nanos`, else `cost_usd`);
/// prices the others with the catalogue, as the ingest API does.
fn priced(mut r: Record, catalogue: &Catalogue) -> Record {
    if let Record::Usage(u) = &mut r {
        match (u.cost_nanos, u.cost_usd) {
            (Some(n), _) => u.cost_usd = Some(costtrace_core::nanos_to_usd(n)),
            (None, Some(usd)) => u.cost_nanos = costtrace_core::usd_to_nanos(usd),
            (None, None) => catalogue.price_record(u),
        }
        if u.cost_nanos.is_some() {
            u.unpriced_reason = None;
        }
    }
    r
}

async fn write(store: &AnyStore, batch: &[Record]) -> anyhow::Result<u64> {
    store
        .insert_records(batch)
        .await
        .map_err(|e| exit::coded(exit::STORE, e))
        .context("writing a batch to the store (run the same command again to resume)")
}

fn fingerprint(file: &mut File) -> std::io::Result<String> {
    let mut head = Vec::new();
    Read::by_ref(file)
        .take(FINGERPRINT_BYTES)
        .read_to_end(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(checkpoint::sha256_hex(&head))
}
