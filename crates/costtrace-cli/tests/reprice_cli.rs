//! `costtrace reprice` through the built binary on SQLite and PostgreSQL:
//! an override file changes exactly the records it should, a second run
//! changes nothing, an interrupted run resumes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{command, ok, stderr, store_urls, unique};

/// Usage per day and model. gpt-4o (1,000 in, 200 out) costs
/// 1,000 × $2.5/M + 200 × $10/M = 4,500,000 nano-USD with the shipped
/// prices and 1,000 × $5/M + 200 × $20/M = 9,000,000 with the override.
const CSV: &str = "\
timestamp,entity_id,provider,model,input_tokens,output_tokens,cost_usd,service_type,units
2025-01-13T10:00:00Z,acme,openai,gpt-4o,1000,200,,,
2025-01-14T10:00:00Z,acme,openai,gpt-4o,1000,200,,,
2025-01-15T10:00:00Z,acme,openai,gpt-4o,1000,200,,,
2025-01-16T23:59:59Z,acme,openai,gpt-4o,1000,200,,,
2025-01-15T11:00:00Z,acme,openai,gpt-4o,1000,200,0.25,,
2025-01-15T12:00:00Z,acme,openai,gpt-4o-mini,1000,200,,,
2025-01-15T13:00:00Z,acme,,,,,,file_processor,pages=3
";

const OVERRIDE: &str = "\
[[models]]
provider = \"openai\"
id = \"gpt-4o\"
prices = { input_mtok = \"5.0\", output_mtok = \"20.0\" }
";

/// Nano-USD per day from `report --format csv`.
fn by_day(url: &str) -> BTreeMap<String, i64> {
    ok(&["report", "--database-url", url, "--format", "csv"])
        .lines()
        .filter(|l| l.starts_with("by_day,") && !l.contains("(total)"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].to_owned(), f[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn reprice_with_an_override_changes_exactly_the_expected_records() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("usage.csv");
    std::fs::write(&csv, CSV).unwrap();
    let prices = dir.path().join("prices.toml");
    std::fs::write(&prices, OVERRIDE).unwrap();
    let prices = prices.to_str().unwrap();
    // gpt-4o-mini: 1,000 × $0.15/M + 200 × $0.6/M; 3 pages × $0.02.
    let (mini, pages, reported) = (270_000, 60_000_000, 250_000_000);
    for url in store_urls(&dir) {
        ok(&["import", csv.to_str().unwrap(), "--database-url", &url]);
        let before = by_day(&url);
        assert_eq!(before["2025-01-15"], 4_500_000 + reported + mini + pages);

        let cp = dir.path().join(format!("cp-{}", unique()));
        let cp = cp.to_str().unwrap();
        let args = [
            "--prices",
            prices,
            "reprice",
            "--since",
            "2025-01-14",
            "--until",
            "2025-01-17",
            "--database-url",
            &url,
            "--checkpoint",
            cp,
        ];
        // Interrupted after the first day.
        let first = command()
            .args(args)
            .args(["--stop-after-days", "1"])
            .output()
            .unwrap();
        assert!(first.status.success(), "{}", stderr(&first));
        let said = String::from_utf8(first.stdout).unwrap();
        assert!(said.contains("1 records changed"), "{said}");
        assert!(said.contains("stopped early"), "{said}");
        let mid = by_day(&url);
        assert_eq!(mid["2025-01-14"], 9_000_000);
        assert_eq!(mid["2025-01-15"], before["2025-01-15"]);

        let second = command().args(args).output().unwrap();
        assert!(second.status.success(), "{}", stderr(&second));
        assert!(stderr(&second).contains("resuming at 2025-01-15"));
        let said = String::from_utf8(second.stdout).unwrap();
        // The 15th and 16th: gpt-4o twice (new cost), gpt-4o-mini and the
        // pages (same cost, new price version); the reported cost is kept.
        assert!(said.contains(": 4 records changed"), "{said}");
        assert!(said.contains("whole range"), "{said}");
        assert!(said.contains(": 5 records changed"), "{said}");
        assert!(!std::path::Path::new(cp).exists());
        let after = by_day(&url);
        assert_eq!(after["2025-01-13"], 4_500_000, "before --since: untouched");
        assert_eq!(after["2025-01-14"], 9_000_000);
        assert_eq!(after["2025-01-15"], 9_000_000 + reported + mini + pages);
        assert_eq!(after["2025-01-16"], 9_000_000);

        // Idempotent.
        let again = ok(&args);
        assert!(again.contains(": 0 records changed"), "{again}");
        assert_eq!(by_day(&url), after);

        // Back to the shipped prices.
        let back = ok(&args[2..]);
        assert!(back.contains(": 5 records changed"), "{back}");
        assert_eq!(by_day(&url), before);
    }
}

#[test]
fn reprice_needs_a_valid_range() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::db(&dir);
    let out = common::costtrace(&["reprice", "--database-url", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--since"));
    let out = common::costtrace(&[
        "reprice",
        "--database-url",
        &url,
        "--since",
        "2025-01-15",
        "--until",
        "2025-01-14",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not after --since"));
}
