//! CSV rows → records. The columns are named by the header (any order, any
//! subset; only `timestamp` is required); see [`COLUMNS_HELP`].

use std::collections::BTreeMap;

use anyhow::{Context, anyhow, bail};
use costtrace_core::{
    Attrs, Environment, PricingTier, Record, RequestRecord, Timestamp, UsageRecord,
};
use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

/// For `costtrace import --help` (and the README).
pub(crate) const COLUMNS_HELP: &str = "\
CSV columns (header row required; any order; empty cell = unknown):
  kind                usage (default) or request
  id                  usage id (UUID); empty: derived from the row's content,
                      so importing the same row again adds nothing
  timestamp           required; RFC 3339 (2025-01-15T10:30:45.123Z)
  request_id task_id doc_id entity_id
                      links (for kind=request, request_id is required)
  provider model service_type operation
  input_tokens output_tokens cache_read_tokens cache_write_tokens reasoning_tokens
  units               service units, e.g. pages=10;chunks=45
  pricing_tier        standard (default) or batch
  cost_usd            a cost the provider reported (kept, never re-priced);
                      empty: priced with the catalogue
  environment         production, staging, cicd or development (default)
  duration_ms error_message
  status_code processing_time_ms operation_type task_type endpoint method
                      request fields
  attr.NAME           any other attribute, e.g. attr.user_id";

const KNOWN: [&str; 28] = [
    "kind",
    "id",
    "timestamp",
    "request_id",
    "task_id",
    "doc_id",
    "entity_id",
    "provider",
    "model",
    "service_type",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "units",
    "pricing_tier",
    "cost_usd",
    "environment",
    "duration_ms",
    "error_message",
    "status_code",
    "processing_time_ms",
    "operation_type",
    "task_type",
    "endpoint",
    "method",
];

/// The header, checked once.
#[derive(Debug)]
pub(crate) struct Header {
    names: Vec<String>,
}

impl Header {
    pub(crate) fn new(record: &csv::StringRecord) -> anyhow::Result<Header> {
        let names: Vec<String> = record.iter().map(|s| s.trim().to_owned()).collect();
        for n in &names {
            if !KNOWN.contains(&n.as_str()) && !n.starts_with("attr.") {
                bail!("unknown CSV column {n:?} (see `costtrace import --help` for the columns)");
            }
        }
        if !names.iter().any(|n| n == "timestamp") {
            bail!("the CSV header has no `timestamp` column");
        }
        Ok(Header { names })
    }

    /// Parses one data row.
    pub(crate) fn record(&self, row: &csv::StringRecord) -> anyhow::Result<Record> {
        if row.len() != self.names.len() {
            bail!("{} fields, the header has {}", row.len(), self.names.len());
        }
        let cells: BTreeMap<&str, &str> = self
            .names
            .iter()
            .map(String::as_str)
            .zip(row.iter().map(str::trim))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let text = |k: &str| cells.get(k).map(|v| (*v).to_owned());
        let timestamp = Timestamp::parse(cells.get("timestamp").copied().unwrap_or_default())
            .map_err(|e| anyhow!("timestamp: {e}"))?;
        let environment = match cells.get("environment") {
            Some(e) => e
                .parse::<Environment>()
                .map_err(|e| anyhow!("environment: {e}"))?,
            None => Environment::Development,
        };
        match cells.get("kind").copied().unwrap_or("usage") {
            "request" => Ok(Record::Request(RequestRecord {
                request_id: text("request_id")
                    .ok_or_else(|| anyhow!("kind=request needs a request_id"))?,
                task_id: text("task_id"),
                doc_id: text("doc_id"),
                entity_id: text("entity_id"),
                operation_type: text("operation_type"),
                task_type: text("task_type"),
                endpoint: text("endpoint"),
                method: text("method"),
                status_code: number(&cells, "status_code")?,
                timestamp,
                processing_time_ms: number(&cells, "processing_time_ms")?,
                error_message: text("error_message"),
                environment,
            })),
            "usage" => {
                let mut attrs = Attrs::new();
                for (k, v) in &cells {
                    let name = match *k {
                        "request_id" | "task_id" | "doc_id" | "entity_id" => *k,
                        k => match k.strip_prefix("attr.") {
                            Some(n) => n,
                            None => continue,
                        },
                    };
                    attrs.insert(name.to_owned(), (*v).to_owned());
                }
                let id = match cells.get("id") {
                    Some(s) => Uuid::parse_str(s).map_err(|e| anyhow!("id {s:?}: {e}"))?,
                    None => content_id(timestamp, row),
                };
                let cost_usd: Option<f64> = number(&cells, "cost_usd")?;
                let cost_nanos = match cost_usd {
                    Some(usd) => Some(
                        costtrace_core::usd_to_nanos(usd)
                            .ok_or_else(|| anyhow!("cost_usd {usd} is out of range"))?,
                    ),
                    None => None,
                };
                let pricing_tier = match cells.get("pricing_tier").copied() {
                    None | Some("standard") => PricingTier::Standard,
                    Some("batch") => PricingTier::Batch,
                    Some(t) => bail!("pricing_tier {t:?}: use standard or batch"),
                };
                Ok(Record::Usage(UsageRecord {
                    id,
                    scope_id: None,
                    attrs,
                    environment,
                    timestamp,
                    provider: text("provider"),
                    model: text("model"),
                    service_type: text("service_type"),
                    operation: text("operation"),
                    input_tokens: number(&cells, "input_tokens")?,
                    output_tokens: number(&cells, "output_tokens")?,
                    cache_read_tokens: number(&cells, "cache_read_tokens")?,
                    cache_write_tokens: number(&cells, "cache_write_tokens")?,
                    reasoning_tokens: number(&cells, "reasoning_tokens")?,
                    units: units(cells.get("units").copied().unwrap_or_default())?,
                    pricing_tier,
                    cost_usd,
                    cost_nanos,
                    unpriced_reason: None,
                    price_version: cost_nanos.map(|_| super::REPORTED.to_owned()),
                    duration_ms: number(&cells, "duration_ms")?,
                    error_message: text("error_message"),
                    partial: false,
                }))
            }
            k => bail!("kind {k:?}: use usage or request"),
        }
    }
}

fn number<T: std::str::FromStr>(
    cells: &BTreeMap<&str, &str>,
    column: &str,
) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    cells
        .get(column)
        .map(|v| v.parse::<T>().map_err(|e| anyhow!("{column} {v:?}: {e}")))
        .transpose()
}

/// `pages=10;chunks=45`.
fn units(s: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| anyhow!("units {p:?}: use NAME=COUNT;NAME=COUNT"))?;
            let n = v
                .trim()
                .parse()
                .with_context(|| format!("units {p:?}: the count must be a whole number"))?;
            Ok((k.trim().to_owned(), n))
        })
        .collect()
}

/// A UUIDv7 from the row's time and a hash of its cells: the same row always
/// gets the same id.
fn content_id(at: Timestamp, row: &csv::StringRecord) -> Uuid {
    let mut h = Sha256::new();
    for cell in row {
        h.update(cell.as_bytes());
        h.update([0x1f]);
    }
    let digest = h.finalize();
    let mut rand = [0u8; 10];
    rand.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(at.as_micros() / 1_000).unwrap_or(0);
    Builder::from_unix_timestamp_millis(millis, &rand).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cols: &[&str]) -> Header {
        Header::new(&csv::StringRecord::from(cols.to_vec())).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn rows_become_records_with_stable_ids() {
        let h = header(&[
            "timestamp",
            "service_type",
            "units",
            "task_id",
            "attr.user_id",
        ]);
        let row = csv::StringRecord::from(vec![
            "2025-01-15T10:30:00Z",
            "file_processor",
            "pages=10",
            "t1",
            "u1",
        ]);
        let Ok(Record::Usage(a)) = h.record(&row) else {
            panic!("not a usage")
        };
        assert_eq!(a.units.get("pages"), Some(&10));
        assert_eq!(a.attrs.get("task_id").map(String::as_str), Some("t1"));
        assert_eq!(a.attrs.get("user_id").map(String::as_str), Some("u1"));
        assert_eq!(a.id.get_version_num(), 7);
        let Ok(Record::Usage(b)) = h.record(&row) else {
            panic!("not a usage")
        };
        assert_eq!(a.id, b.id);
        let other = csv::StringRecord::from(vec![
            "2025-01-15T10:30:00Z",
            "file_processor",
            "pages=11",
            "t1",
            "u1",
        ]);
        assert_ne!(
            h.record(&other).map(|r| r.key()).ok(),
            Some(a.id.to_string())
        );
    }

    #[test]
    fn bad_cells_say_which_column() {
        let h = header(&["timestamp", "input_tokens", "units"]);
        let e = |cells: Vec<&str>| match h.record(&csv::StringRecord::from(cells)) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        assert!(e(vec!["yesterday", "", ""]).contains("timestamp"));
        assert!(e(vec!["2025-01-15T10:30:00Z", "many", ""]).contains("input_tokens"));
        assert!(e(vec!["2025-01-15T10:30:00Z", "", "pages"]).contains("units"));
        assert!(Header::new(&csv::StringRecord::from(vec!["timestamp", "colour"])).is_err());
    }
}
