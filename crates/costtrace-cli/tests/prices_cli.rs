//! Runs the built `costtrace` binary.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn costtrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_costtrace"))
        .args(args)
        .env_remove("COSTTRACE_PRICES")
        .output()
        .unwrap()
}

fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn calc_json_prints_the_exact_cost() {
    let out = costtrace(&[
        "prices",
        "calc",
        "--provider",
        "anthropic",
        "--model",
        "claude-3-5-haiku-latest",
        "--input-tokens",
        "2000",
        "--output-tokens",
        "300",
        "--cache-read-tokens",
        "1000",
        "--cache-write-tokens",
        "500",
        "--at",
        "2025-01-15T10:30:00Z",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_json(&out);
    // 500 × $0.8/M + 1_000 × $0.08/M + 500 × $1/M + 300 × $4/M
    // = 400_000 + 80_000 + 500_000 + 1_200_000 nano-USD
    assert_eq!(v["cost_nanos"], 2_180_000);
    assert_eq!(v["cost_usd"], 0.00218);
    assert_eq!(v["provider_id"], "anthropic");
    assert_eq!(v["model_id"], "claude-3-5-haiku-latest");
    assert_eq!(v["pricing_tier"], "standard");
    assert_eq!(v["catalogue_version"], "genai-prices@47df840a");
}

#[test]
fn calc_batch_and_dated_prices() {
    // o3 after the 2025-06-10 cut: ($2 × 1_000 + $8 × 1_000) / M, halved for batch.
    let out = costtrace(&[
        "prices",
        "calc",
        "--provider",
        "openai",
        "--model",
        "o3",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "1000",
        "--batch",
        "--at",
        "2025-07-01T00:00:00Z",
        "--json",
    ]);
    assert!(out.status.success());
    assert_eq!(
        stdout_json(&out)["cost_nanos"],
        (1_000 * 2_000 + 1_000 * 8_000) / 2
    );
}

#[test]
fn calc_text_output() {
    let out = costtrace(&[
        "prices",
        "calc",
        "--provider",
        "openai",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "200",
        "--at",
        "2025-01-15T10:30:00Z",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("$0.004500000 (4500000 nano-USD) for openai gpt-4o"),
        "{text}"
    );
}

#[test]
fn unpriced_exits_with_2_and_says_why() {
    let out = costtrace(&[
        "prices",
        "calc",
        "--provider",
        "acme",
        "--model",
        "foo-1",
        "--input-tokens",
        "10",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        err.contains("unpriced: no price for provider acme model foo-1"),
        "{err}"
    );
    let v = stdout_json(&out);
    assert!(v["cost_nanos"].is_null() && v["cost_usd"].is_null());
}

#[test]
fn show_prints_the_matched_model_and_prices() {
    let out = costtrace(&["prices", "show", "openai", "gpt-4o-2024-08-06"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("model:     gpt-4o"), "{text}");
    assert!(text.contains("input_mtok             $2.5"), "{text}");
    assert!(text.contains("output_mtok            $10"), "{text}");

    let out = costtrace(&["prices", "show", "anthropic", "claude-sonnet-4-5", "--json"]);
    let v = stdout_json(&out);
    assert_eq!(
        v["prices"][0]["prices"]["input_mtok"]["tiers"][0]["start"],
        200_000
    );

    assert_eq!(
        costtrace(&["prices", "show", "openai", "nope"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn override_file_from_flag_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.toml");
    std::fs::write(
        &path,
        "[[models]]\nprovider = \"self-hosted\"\nid = \"llama-ft\"\nprices = { input_mtok = 0.2, output_mtok = 0.4 }\n",
    )
    .unwrap();
    let args = [
        "prices",
        "calc",
        "--provider",
        "self-hosted",
        "--model",
        "llama-ft",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "500000",
        "--json",
    ];
    let mut with_flag = vec!["--prices", path.to_str().unwrap()];
    with_flag.extend(args);
    let out = costtrace(&with_flag);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 1_000_000 × $0.2/M + 500_000 × $0.4/M = $0.40
    assert_eq!(
        stdout_json(&out)["cost_nanos"],
        1_000_000 * 200 + 500_000 * 400
    );

    let out = Command::new(env!("CARGO_BIN_EXE_costtrace"))
        .args(args)
        .env("COSTTRACE_PRICES", &path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stdout_json(&out)["catalogue_version"]
            .as_str()
            .unwrap()
            .contains("+overrides:")
    );
}

#[test]
fn malformed_override_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prices.toml");
    std::fs::write(
        &path,
        "[[models]]\nprovider = \"x\"\nid = \"y\"\nprices = { input_mtok = \"cheap\" }\n",
    )
    .unwrap();
    let out = costtrace(&[
        "--prices",
        path.to_str().unwrap(),
        "prices",
        "show",
        "openai",
        "gpt-4o",
    ]);
    // 3: an input file could not be read.
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("models[0].prices.input_mtok") && err.contains("line 4"),
        "{err}"
    );
}

#[test]
fn bad_arguments_are_clap_errors() {
    let out = costtrace(&["prices", "calc", "--provider", "openai"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("--model"));
    let out = costtrace(&[
        "prices",
        "calc",
        "--provider",
        "openai",
        "--model",
        "gpt-4o",
        "--at",
        "yesterday",
    ]);
    assert!(String::from_utf8(out.stderr).unwrap().contains("RFC 3339"));
}
