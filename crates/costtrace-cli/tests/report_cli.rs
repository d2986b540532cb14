//! `costtrace report` through the built binary: totals equal what `demo`
//! wrote (summed here from its JSON Lines), in every format, on SQLite and
//! PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{costtrace, ok, store_urls, unique};
use serde_json::Value;

/// Per-entity (priced nanos, unpriced, usage records) of the usage in a JSON
/// Lines file with a timestamp in `[from, to)` (RFC 3339 strings compare
/// in time order: they are all UTC with milliseconds).
fn expected(path: &std::path::Path, from: &str, to: &str) -> BTreeMap<String, (i64, u64, u64)> {
    let mut by = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let ts = v["timestamp"].as_str().unwrap_or_default();
        if v["kind"] != "usage" || ts < from || ts >= to {
            continue;
        }
        let e: &mut (i64, u64, u64) = by
            .entry(v["attrs"]["entity_id"].as_str().unwrap().to_owned())
            .or_default();
        match v["cost_nanos"].as_i64() {
            Some(n) => e.0 += n,
            None => e.1 += 1,
        }
        e.2 += 1;
    }
    by
}

fn sum(by: &BTreeMap<String, (i64, u64, u64)>) -> (i64, u64, u64) {
    by.values()
        .fold((0, 0, 0), |a, v| (a.0 + v.0, a.1 + v.1, a.2 + v.2))
}

#[test]
fn report_totals_equal_what_demo_wrote() {
    let dir = tempfile::tempdir().unwrap();
    for url in store_urls(&dir) {
        let file = dir.path().join(format!("demo-{}.jsonl", unique()));
        ok(&[
            "demo",
            "--database-url",
            &url,
            "--jsonl",
            file.to_str().unwrap(),
        ]);
        let all = expected(&file, "", "~");
        let (nanos, unpriced, records) = sum(&all);

        let json: Value =
            serde_json::from_str(&ok(&["report", "--database-url", &url, "--format", "json"]))
                .unwrap();
        let tables = json["tables"].as_array().unwrap();
        let names: Vec<&str> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["top_tasks", "by_model", "by_day", "by_entity"]);
        for t in tables {
            assert_eq!(t["total"]["total_cost_nanos"], nanos, "{}", t["name"]);
            assert_eq!(t["total"]["unpriced_count"], unpriced, "{}", t["name"]);
            assert_eq!(t["total"]["record_count"], records, "{}", t["name"]);
            assert!(t["rows"].as_array().unwrap().len() <= 10);
        }
        let by_entity: BTreeMap<String, (i64, u64, u64)> = tables[3]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().unwrap().to_owned(),
                    (
                        r["total_cost_nanos"].as_i64().unwrap(),
                        r["unpriced_count"].as_u64().unwrap(),
                        r["record_count"].as_u64().unwrap(),
                    ),
                )
            })
            .collect();
        assert_eq!(by_entity, all);
        // The unpriced model shows up by name with its count, at $0 priced.
        let models = ok(&[
            "report",
            "--database-url",
            &url,
            "--format",
            "json",
            "--limit",
            "50",
        ]);
        let models: Value = serde_json::from_str(&models).unwrap();
        let llama = models["tables"][1]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == "llama-finetune-7")
            .unwrap()
            .clone();
        assert_eq!(llama["unpriced_count"], all["initech"].1);
        assert_eq!(llama["total_cost_nanos"], 0);

        // One tenant, a time window, CSV.
        let day = json["tables"][2]["rows"][0]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let from = format!("{day}T00:00:00.000Z");
        let window = expected(&file, &from, "~");
        let csv = ok(&[
            "report",
            "--database-url",
            &url,
            "--format",
            "csv",
            "--tenant",
            "initech",
            "--from",
            &day,
            "--limit",
            "3",
        ]);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "table,key,total_cost_usd,total_cost_nanos,unpriced_count,record_count"
        );
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        let total = |table: &str| {
            rows.iter()
                .find(|r| r[0] == table && r[1] == "(total)")
                .unwrap()
                .clone()
        };
        let (n, u, c) = window["initech"];
        for table in ["top_tasks", "by_model", "by_day", "by_entity"] {
            let t = total(table);
            assert_eq!(t[3], n.to_string(), "{table}");
            assert_eq!(
                t[2],
                format!("{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
            );
            assert_eq!(
                (t[4], t[5]),
                (u.to_string().as_str(), c.to_string().as_str())
            );
            assert!(rows.iter().filter(|r| r[0] == table).count() <= 4);
        }
        let entities: Vec<&str> = rows
            .iter()
            .filter(|r| r[0] == "by_entity" && r[1] != "(total)")
            .map(|r| r[1])
            .collect();
        assert_eq!(entities, ["initech"]);
    }
}

#[test]
fn table_output_is_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::db(&dir);
    ok(&["demo", "--database-url", &url]);
    let text = ok(&["report", "--database-url", &url, "--limit", "4"]);
    assert!(text.starts_with("Spend, all time, all tenants"), "{text}");
    for block in text.split("\n\n").skip(1) {
        let lines: Vec<&str> = block.lines().skip(1).collect();
        let header = lines[0];
        assert!(
            header.ends_with("cost (USD)  records  unpriced"),
            "{header}"
        );
        // Every number column ends where the header's does.
        for l in lines.iter().filter(|l| l.contains('$')) {
            assert_eq!(l.len(), header.len(), "{l:?} vs {header:?}");
        }
        assert!(lines.last().unwrap().trim_start().starts_with("total"));
    }
}

#[test]
fn bad_report_arguments() {
    let out = costtrace(&["report", "--from", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("RFC 3339"));
    let out = costtrace(&["report", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = costtrace(&["report", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2));
}
