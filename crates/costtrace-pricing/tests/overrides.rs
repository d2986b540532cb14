//! User override files: self-hosted models, negotiated rates, dated rates,
//! batch discount, services; and malformed files that must fail loudly.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;

use costtrace_pricing::{Catalogue, PriceQuery, PricingError, PricingTier, Timestamp};

const OVERRIDES: &str = r#"
batch_discount_percent = 40

[[providers]]
id = "self-hosted"
name = "Our vLLM cluster"
aliases = ["vllm"]

[[models]]
provider = "self-hosted"
id = "llama-ft"
prices = { input_mtok = 0.2, output_mtok = 0.4 }
batch_prices = { input_mtok = 0.1, output_mtok = 0.2 }

# Negotiated rate: replaces the shipped gpt-4o and keeps its match rule.
[[models]]
provider = "openai"
id = "gpt-4o"
prices = { input_mtok = 2.0, output_mtok = "8.0" }

[[models]]
provider = "acme"
id = "acme-1"
match = { starts_with = "acme-1" }
prices = [
  { prices = { input_mtok = 1, output_mtok = 2 } },
  { constraint = { start_date = "2025-01-01" }, prices = { input_mtok = 0.5, output_mtok = 1 } },
]

[[services]]
service_type = "file_processor"
unit = "pages"
usd_per_unit = 0.025

[[services]]
service_type = "ocr"
unit = "images"
usd_per_unit = "0.001"
"#;

fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    (dir, path)
}

fn q<'a>(provider: &'a str, model: &'a str, input: u64, output: u64) -> PriceQuery<'a> {
    PriceQuery {
        provider: Some(provider),
        model: Some(model),
        input_tokens: input,
        output_tokens: output,
        at: Timestamp::parse("2025-08-01T00:00:00Z").unwrap(),
        ..PriceQuery::default()
    }
}

#[test]
fn overrides_win_over_the_shipped_data() {
    let (_dir, path) = write("prices.toml", OVERRIDES);
    let c = Catalogue::from_override_file(&path).unwrap();
    assert!(
        c.version().starts_with("genai-prices@47df840a+overrides:"),
        "{}",
        c.version()
    );

    // Self-hosted: $0.2/M in, $0.4/M out.
    let p = c
        .price(&q("self-hosted", "llama-ft", 1_000_000, 500_000))
        .unwrap();
    assert_eq!(p.nanos, 1_000_000 * 200 + 500_000 * 400); // 400_000_000
    // ...found by alias and by the new display name too.
    assert!(c.price(&q("vllm", "llama-ft", 1, 0)).is_ok());
    assert!(c.price(&q("Our vLLM cluster", "llama-ft", 1, 0)).is_ok());

    // Explicit batch prices: $0.1/M in, $0.2/M out (not 40% off).
    let mut b = q("self-hosted", "llama-ft", 1_000_000, 500_000);
    b.tier = PricingTier::Batch;
    assert_eq!(c.price(&b).unwrap().nanos, 1_000_000 * 100 + 500_000 * 200); // 200_000_000

    // Negotiated gpt-4o: $2/M in, $8/M out; the dated id still matches.
    let p = c
        .price(&q("openai", "gpt-4o-2024-08-06", 1_000, 200))
        .unwrap();
    assert_eq!(p.nanos, 1_000 * 2_000 + 200 * 8_000); // 3_600_000
    assert_eq!(p.model_id, "gpt-4o");
    // Other shipped models are untouched: gpt-4o-mini $0.15/$0.6.
    assert_eq!(
        c.price(&q("openai", "gpt-4o-mini", 1_000, 1_000))
            .unwrap()
            .nanos,
        750_000
    );

    // The configured 40% batch discount for models without batch prices:
    // groq llama 3.3: (1_000 × 590 + 1_000 × 790) × 0.6
    let mut b = q("groq", "llama-3.3-70b-versatile", 1_000, 1_000);
    b.tier = PricingTier::Batch;
    assert_eq!(
        c.price(&b).unwrap().nanos,
        (1_000 * 590 + 1_000 * 790) * 6 / 10
    ); // 828_000

    // Dated override: $1/M before 2025-01-01, $0.5/M from then.
    let mut d = q("acme", "acme-1-large", 1_000_000, 0);
    d.at = Timestamp::parse("2024-12-31T23:59:59Z").unwrap();
    assert_eq!(c.price(&d).unwrap().nanos, 1_000_000 * 1_000);
    d.at = Timestamp::parse("2025-01-01T00:00:00Z").unwrap();
    assert_eq!(c.price(&d).unwrap().nanos, 1_000_000 * 500);

    // Services: file_processor re-priced to $0.025/page, a new ocr service.
    let pages = [("pages", 10)];
    let s = PriceQuery {
        service_type: Some("file_processor"),
        units: &pages,
        ..PriceQuery::default()
    };
    assert_eq!(c.price(&s).unwrap().nanos, 10 * 25_000_000);
    let images = [("images", 1_000)];
    let s = PriceQuery {
        service_type: Some("ocr"),
        units: &images,
        ..PriceQuery::default()
    };
    assert_eq!(c.price(&s).unwrap().nanos, 1_000 * 1_000_000); // $1
    // The shipped transformer price is still there: 45 × $0.003.
    let chunks = [("chunks", 45)];
    let s = PriceQuery {
        service_type: Some("transformer"),
        units: &chunks,
        ..PriceQuery::default()
    };
    assert_eq!(c.price(&s).unwrap().nanos, 135_000_000);

    let info = c.find_model("openai", "gpt-4o").unwrap();
    assert!(info.from_overrides);
}

#[test]
fn json_overrides_work_too() {
    let json = r#"{"models": [{"provider": "openai", "id": "gpt-4o", "prices": {"input_mtok": 1, "output_mtok": 4}}]}"#;
    let (_dir, path) = write("prices.json", json);
    let c = Catalogue::from_override_file(&path).unwrap();
    assert_eq!(
        c.price(&q("openai", "gpt-4o", 1_000, 1_000)).unwrap().nanos,
        1_000 * 1_000 + 1_000 * 4_000
    );
}

#[test]
fn the_same_file_gives_the_same_version() {
    let (_d1, a) = write("a.toml", OVERRIDES);
    let (_d2, b) = write("b.toml", OVERRIDES);
    let (_d3, other) = write("c.toml", "batch_discount_percent = 10\n");
    let va = Catalogue::from_override_file(&a)
        .unwrap()
        .version()
        .to_owned();
    assert_eq!(va, Catalogue::from_override_file(&b).unwrap().version());
    assert_ne!(va, Catalogue::from_override_file(&other).unwrap().version());
}

fn error_for(name: &str, text: &str) -> String {
    let (_dir, path) = write(name, text);
    let e = Catalogue::from_override_file(&path).unwrap_err();
    e.to_string()
}

#[test]
fn malformed_toml_names_the_field_and_line() {
    let e = error_for(
        "bad.toml",
        "[[models]]\nprovider = \"openai\"\nid = \"gpt-4o\"\nprices = { input_mtok = \"cheap\" }\n",
    );
    assert!(e.contains("models[0].prices.input_mtok"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("cheap"), "{e}");
}

#[test]
fn misspelt_toml_field_is_an_error_not_ignored() {
    let e = error_for(
        "typo.toml",
        "[[models]]\nprovider = \"openai\"\nid = \"gpt-4o\"\nprices = { inptu_mtok = 1.0 }\n",
    );
    assert!(e.contains("inptu_mtok"), "{e}");
    assert!(e.contains("line 4"), "{e}");
}

#[test]
fn toml_syntax_error_names_the_line() {
    let e = error_for("syntax.toml", "batch_discount_percent = 40\n[[models]\n");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn malformed_json_names_the_field_and_line() {
    let e = error_for(
        "bad.json",
        "{\"models\": [\n {\"provider\": \"openai\", \"id\": \"x\",\n  \"prices\": {\"output_mtok\": true}}]}",
    );
    assert!(e.contains("models[0].prices.output_mtok"), "{e}");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn invalid_values_name_the_field() {
    let e = error_for(
        "neg.toml",
        "[[models]]\nprovider = \"x\"\nid = \"y\"\nprices = { input_mtok = -1 }\n",
    );
    assert!(
        e.contains("models[0].prices.input_mtok") && e.contains("negative"),
        "{e}"
    );
    let e = error_for("pct.toml", "batch_discount_percent = 150\n");
    assert!(e.contains("batch_discount_percent"), "{e}");
    let e = error_for(
        "date.toml",
        "[[models]]\nprovider = \"x\"\nid = \"y\"\nprices = [{ prices = { input_mtok = 1 } }, { constraint = { start_date = \"June\" }, prices = { input_mtok = 2 } }]\n",
    );
    assert!(
        e.contains("models[0].prices[1].constraint.start_date"),
        "{e}"
    );
    let e = error_for(
        "re.toml",
        "[[models]]\nprovider = \"x\"\nid = \"y\"\nmatch = { regex = \"(\" }\nprices = { input_mtok = 1 }\n",
    );
    assert!(e.contains("models[0].match") && e.contains("regex"), "{e}");
}

#[test]
fn unreadable_or_unknown_files_are_errors() {
    let missing = Catalogue::from_override_file(std::path::Path::new("/nonexistent/prices.toml"));
    assert!(matches!(missing, Err(PricingError::Io { .. })));
    let (_dir, path) = write("prices.yaml", "a: 1");
    assert!(matches!(
        Catalogue::from_override_file(&path),
        Err(PricingError::UnknownFormat { .. })
    ));
}
