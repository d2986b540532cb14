//! `costtrace import` through the built binary on SQLite and PostgreSQL:
//! bad lines reported and skipped, re-imports add nothing, an interrupted
//! import resumes where it stopped, CSV columns and derived ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command, costtrace, ok, stderr, store_urls, unique};
use serde_json::Value;

/// The report's (total nanos, unpriced, records) and its by-entity rows.
fn totals(url: &str) -> (i64, u64, u64) {
    let v: Value =
        serde_json::from_str(&ok(&["report", "--database-url", url, "--format", "json"])).unwrap();
    let t = &v["tables"][3]["total"];
    (
        t["total_cost_nanos"].as_i64().unwrap(),
        t["unpriced_count"].as_u64().unwrap(),
        t["record_count"].as_u64().unwrap(),
    )
}

/// Demo records as JSON Lines with two bad lines after line 5; returns the
/// file and the (nanos, unpriced, usage records) it holds.
fn demo_file(dir: &tempfile::TempDir) -> (std::path::PathBuf, (i64, u64, u64), usize) {
    let clean = dir.path().join(format!("clean-{}.jsonl", unique()));
    let scratch = format!(
        "sqlite:{}",
        dir.path().join(format!("s-{}.db", unique())).display()
    );
    ok(&[
        "demo",
        "--database-url",
        &scratch,
        "--jsonl",
        clean.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&clean).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let mut sums = (0i64, 0u64, 0u64);
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap();
        if v["kind"] == "usage" {
            match v["cost_nanos"].as_i64() {
                Some(n) => sums.0 += n,
                None => sums.1 += 1,
            }
            sums.2 += 1;
        }
    }
    let records = lines.len();
    lines.insert(5, r#"{"kind":"usage", broken"#);
    lines.insert(6, "not json at all");
    let path = dir.path().join(format!("in-{}.jsonl", unique()));
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, sums, records)
}

#[test]
fn jsonl_import_skips_bad_lines_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (file, sums, records) = demo_file(&dir);
    let file = file.to_str().unwrap();
    for url in store_urls(&dir) {
        let out = costtrace(&["import", file, "--database-url", &url]);
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("line 6: key must be a string"), "{err}");
        assert!(err.contains("line 7: expected"), "{err}");
        let said = String::from_utf8(out.stdout).unwrap();
        assert!(
            said.contains(&format!("{records} records, {records} new")),
            "{said}"
        );
        assert!(said.contains("2 bad lines skipped"), "{said}");
        assert_eq!(totals(&url), sums);

        // Again: nothing new, the same totals.
        let out = costtrace(&["import", file, "--database-url", &url]);
        assert_eq!(out.status.code(), Some(5));
        assert!(
            String::from_utf8(out.stdout)
                .unwrap()
                .contains(&format!("{records} records, 0 new, {records} already")),
        );
        assert_eq!(totals(&url), sums);
    }
}

#[test]
fn interrupted_import_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (file, sums, records) = demo_file(&dir);
    let file = file.to_str().unwrap();
    let checkpoint = format!("{file}.costtrace-import");
    for url in store_urls(&dir) {
        let args = [
            "import",
            file,
            "--database-url",
            &url,
            "--batch-size",
            "300",
        ];
        let first = command()
            .args(args)
            .args(["--stop-after-batches", "2"])
            .output()
            .unwrap();
        assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
        let said = String::from_utf8(first.stdout).unwrap();
        // 600 records + the 2 bad lines.
        assert!(
            said.contains("read 602 lines (lines 1–602): 600 records, 600 new"),
            "{said}"
        );
        let cp: Value =
            serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
        assert_eq!(
            (cp["line"].as_u64(), cp["records"].as_u64()),
            (Some(602), Some(600))
        );

        let second = costtrace(&args);
        assert_eq!(second.status.code(), Some(5), "{}", stderr(&second));
        assert!(stderr(&second).contains("resuming"), "{}", stderr(&second));
        // The bad lines were before the stop: not read again.
        assert!(!stderr(&second).contains("line 6:"), "{}", stderr(&second));
        let rest = records - 600;
        let said = String::from_utf8(second.stdout).unwrap();
        assert!(
            said.contains(&format!(
                "(lines 603–{}): {rest} records, {rest} new",
                records + 2
            )),
            "{said}"
        );
        assert!(
            said.contains(&format!(
                "whole file: {records} records, {records} new, 2 bad lines"
            )),
            "{said}"
        );
        assert!(!std::path::Path::new(&checkpoint).exists());
        assert_eq!(totals(&url), sums);

        // From scratch again: idempotent.
        let again = costtrace(&["import", file, "--database-url", &url, "--restart"]);
        assert!(
            String::from_utf8(again.stdout)
                .unwrap()
                .contains(", 0 new,")
        );
        assert_eq!(totals(&url), sums);
    }
}

const CSV: &str = "\
timestamp,kind,id,request_id,task_id,entity_id,provider,model,service_type,units,input_tokens,output_tokens,cost_usd,status_code,attr.user_id
2025-01-15T10:30:00Z,request,,req_1,task_1,acme,,,,,,,,200,
2025-01-15T10:30:01Z,usage,,req_1,task_1,acme,,,file_processor,pages=10,,,,,u1
2025-01-15T10:30:02Z,usage,,req_1,task_1,acme,,,transformer,chunks=45,,,,,u1
2025-01-15T10:30:03Z,usage,0194e0a0-0000-7000-8000-000000000001,req_1,task_1,acme,openai,gpt-4o,,,1000,200,,,u1
2025-01-15T10:30:04Z,usage,,,,globex,acme-selfhosted,llama-finetune-7,,,500,50,,,
2025-01-15T10:30:05Z,usage,,,,globex,openai,gpt-4o,,,10,10,0.5,,
2025-01-15T10:30:06Z,usage,,,,globex,openai,gpt-4o,,,many,10,,,
2025-01-15T10:30:07Z,usage,,,,globex
\"2025-01-15T10:30:08Z\",usage,,,,globex,,,file_processor,pages=1,,,,,\"multi
line\"
";

#[test]
fn csv_import_prices_rows_and_derives_stable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.csv");
    std::fs::write(&file, CSV).unwrap();
    let file = file.to_str().unwrap();
    for url in store_urls(&dir) {
        let out = costtrace(&["import", file, "--database-url", &url, "--batch-size", "2"]);
        assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("line 8: input_tokens \"many\""), "{err}");
        assert!(err.contains("line 9: 6 fields, the header has 15"), "{err}");
        // 1 request + 6 usage; the multi-line row is one record.
        let said = String::from_utf8(out.stdout).unwrap();
        assert!(
            said.contains("read 11 lines (lines 1–11): 7 records, 7 new"),
            "{said}"
        );

        // task_1: 10 pages × $0.02 + 45 chunks × $0.003 + gpt-4o
        // (1,000 × $2.5/M + 200 × $10/M) = 200_000_000 + 135_000_000 + 4_500_000.
        let s = ok(&[
            "report",
            "--database-url",
            &url,
            "--format",
            "csv",
            "--limit",
            "50",
        ]);
        assert!(
            s.contains("top_tasks,task_1,0.339500000,339500000,0,3"),
            "{s}"
        );
        // globex: a reported $0.5, the unpriced model, one page ($0.02).
        assert!(
            s.contains("by_entity,globex,0.520000000,520000000,1,3"),
            "{s}"
        );
        assert!(
            s.contains("by_model,llama-finetune-7,0.000000000,0,1,1"),
            "{s}"
        );

        let again = ok_or_5(&["import", file, "--database-url", &url]);
        assert!(again.contains("7 records, 0 new, 7 already"), "{again}");
    }
}

fn ok_or_5(args: &[&str]) -> String {
    let out = costtrace(args);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn unreadable_or_malformed_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::db(&dir);
    let missing = dir.path().join("missing.jsonl");
    let out = costtrace(&["import", missing.to_str().unwrap(), "--database-url", &url]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.jsonl"));
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "timestamp,colour\n2025-01-15T10:30:00Z,red\n").unwrap();
    let out = costtrace(&["import", bad.to_str().unwrap(), "--database-url", &url]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown CSV column \"colour\""),
        "{}",
        stderr(&out)
    );
    let help = ok(&["import", "--help"]);
    assert!(
        help.contains("CSV columns") && help.contains("attr.NAME"),
        "{help}"
    );
}
