//! `costtrace report`: spend tables in the terminal (top tasks, by model, by
//! day, by entity), each row with its unpriced count beside the total.

use std::io::Write;

use anyhow::Context;
use clap::{Args, ValueEnum};
use costtrace_core::{NANOS_PER_USD, Timestamp};
use costtrace_store::{GroupBy, Store, SummaryRow, TenantScope};
use serde::Serialize;

use crate::serve::StoreArgs;
use crate::{Outcome, runtime};

/// The tables, in print order: (name, heading, key column, grouping).
const TABLES: [(&str, &str, &str, GroupBy); 4] = [
    ("top_tasks", "Top tasks", "task", GroupBy::TaskId),
    ("by_model", "By model", "model", GroupBy::Model),
    ("by_day", "By day (UTC)", "day", GroupBy::Day),
    ("by_entity", "By entity", "entity", GroupBy::EntityId),
];

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned tables for people.
    Table,
    /// One JSON document.
    Json,
    /// One CSV table: table,key,total_cost_usd,total_cost_nanos,unpriced_count,record_count.
    Csv,
}

/// `costtrace report …`
#[derive(Debug, Args)]
#[command(after_help = "\
Costs are usage costs; unpriced usage (a model without a price) is counted in
`unpriced`, never as $0. Rows are largest first, except by day (oldest first,
the most recent --limit days). Each table ends with its total over all rows.

CSV columns: table,key,total_cost_usd,total_cost_nanos,unpriced_count,record_count
(key `(total)` is the table's total row; total_cost_usd is exact, 9 decimals).")]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Only usage at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    from: Option<Timestamp>,
    /// Only usage before this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    to: Option<Timestamp>,
    /// Rows per table.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    limit: u32,
    /// Only this tenant (entity id).
    #[arg(long)]
    tenant: Option<String>,
}

/// `RFC 3339` or a UTC date `YYYY-MM-DD` (its midnight).
pub(crate) fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| Timestamp(z.timestamp().as_microsecond()))
            .map_err(|e| format!("{s:?}: {e}"));
    }
    Timestamp::parse(s)
}

/// A table's sums.
#[derive(Debug, Default, Serialize)]
struct Total {
    total_cost_usd: f64,
    total_cost_nanos: i64,
    unpriced_count: u64,
    record_count: u64,
}

#[derive(Debug, Serialize)]
struct Table {
    name: &'static str,
    group_by: &'static str,
    rows: Vec<SummaryRow>,
    /// Groups not shown (beyond --limit).
    omitted: usize,
    total: Total,
}

#[derive(Debug, Serialize)]
struct Report {
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    tenant: Option<String>,
    tables: Vec<Table>,
}

pub(crate) fn run(args: &ReportArgs) -> anyhow::Result<Outcome> {
    let scope = match &args.tenant {
        Some(t) => TenantScope::Tenant(t.clone()),
        None => TenantScope::All,
    };
    let limit = args.limit as usize;
    let tables = runtime()?.block_on(async {
        let store = args.store.open().await?;
        let mut tables = Vec::new();
        for (name, _, _, group_by) in TABLES {
            let mut rows = store
                .usage_summary(group_by, args.from, args.to, &scope)
                .await
                .with_context(|| format!("reading spend by {group_by}"))?;
            let total = rows.iter().fold(Total::default(), |mut t, r| {
                t.total_cost_nanos += r.total_cost_nanos;
                t.unpriced_count += r.unpriced_count;
                t.record_count += r.record_count;
                t
            });
            let omitted = rows.len().saturating_sub(limit);
            if group_by == GroupBy::Day {
                // The most recent days, oldest first.
                rows.sort_by(|a, b| a.key.cmp(&b.key));
                rows.drain(..omitted);
            } else {
                rows.truncate(limit);
            }
            tables.push(Table {
                name,
                group_by: group_by.as_str(),
                rows,
                omitted,
                total: Total {
                    total_cost_usd: costtrace_core::nanos_to_usd(total.total_cost_nanos),
                    ..total
                },
            });
        }
        anyhow::Ok(tables)
    })?;
    let report = Report {
        from: args.from,
        to: args.to,
        tenant: args.tenant.clone(),
        tables,
    };
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?,
        Format::Csv => write_csv(&mut out, &report)?,
        Format::Table => write_tables(&mut out, &report)?,
    }
    Ok(Outcome::Ok)
}

/// Exact dollars from nano-USD, `decimals` digits (no float rounding).
pub(crate) fn usd(nanos: i64, decimals: usize) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let per = NANOS_PER_USD.unsigned_abs();
    let frac = format!("{:09}", n % per);
    format!("{sign}{}.{}", n / per, &frac[..decimals.min(9)])
}

fn write_csv(out: &mut impl Write, report: &Report) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "table",
        "key",
        "total_cost_usd",
        "total_cost_nanos",
        "unpriced_count",
        "record_count",
    ])?;
    for t in &report.tables {
        let rows = t
            .rows
            .iter()
            .map(|r| {
                (
                    r.key.as_str(),
                    r.total_cost_nanos,
                    r.unpriced_count,
                    r.record_count,
                )
            })
            .chain([(
                "(total)",
                t.total.total_cost_nanos,
                t.total.unpriced_count,
                t.total.record_count,
            )]);
        for (key, nanos, unpriced, count) in rows {
            w.write_record([
                t.name.to_owned(),
                key.to_owned(),
                usd(nanos, 9),
                nanos.to_string(),
                unpriced.to_string(),
                count.to_string(),
            ])?;
        }
    }
    w.flush()?;
    Ok(())
}

fn write_tables(out: &mut impl Write, report: &Report) -> anyhow::Result<()> {
    let when = match (report.from, report.to) {
        (None, None) => "all time".to_owned(),
        (f, t) => format!(
            "{} to {}",
            f.map_or("the start".to_owned(), |t| t.to_string()),
            t.map_or("now".to_owned(), |t| t.to_string())
        ),
    };
    let who = report
        .tenant
        .as_deref()
        .map_or("all tenants".to_owned(), |t| format!("tenant {t}"));
    writeln!(out, "Spend, {when}, {who}")?;
    for (t, (_, heading, key_name, _)) in report.tables.iter().zip(TABLES) {
        writeln!(out)?;
        writeln!(out, "{heading}")?;
        let mut lines: Vec<[String; 4]> = vec![[
            key_name.to_owned(),
            "cost (USD)".to_owned(),
            "records".to_owned(),
            "unpriced".to_owned(),
        ]];
        for r in &t.rows {
            let key = match (t.group_by, r.key.as_str()) {
                ("model", "(none)") => "(none: services)".to_owned(),
                _ => r.key.clone(),
            };
            lines.push([
                key,
                format!("${}", usd(r.total_cost_nanos, 6)),
                r.record_count.to_string(),
                r.unpriced_count.to_string(),
            ]);
        }
        if t.omitted > 0 {
            lines.push([
                format!("({} more)", t.omitted),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        lines.push([
            "total".to_owned(),
            format!("${}", usd(t.total.total_cost_nanos, 6)),
            t.total.record_count.to_string(),
            t.total.unpriced_count.to_string(),
        ]);
        let mut width = [0usize; 4];
        for l in &lines {
            for (w, cell) in width.iter_mut().zip(l) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for l in &lines {
            let line = format!(
                "  {:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}",
                l[0],
                l[1],
                l[2],
                l[3],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3]
            );
            writeln!(out, "{}", line.trim_end())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_exact() {
        assert_eq!(usd(193_496_816_123, 9), "193.496816123");
        assert_eq!(usd(193_496_816_123, 6), "193.496816");
        assert_eq!(usd(20_000_000, 6), "0.020000");
        assert_eq!(usd(-1_500_000_000, 2), "-1.50");
    }

    #[test]
    fn dates_are_utc_midnight() {
        assert_eq!(
            parse_time("2025-01-15"),
            Timestamp::parse("2025-01-15T00:00:00Z")
        );
        assert!(parse_time("yesterday").is_err());
    }
}
