#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The official `openai` and `anthropic` Python packages (from PyPI), pointed
//! at the gateway, which forwards to the mock provider: the recorded usage
//! must match the fixtures' numbers.
//!
//! Python: `$COSTTRACE_PY_VENV/bin/python` if set, else `target/py-venv`
//! (created with `pip install openai anthropic` when missing). When neither
//! can be had the test reports `SKIPPED:` (CI fails on that).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use costtrace::UsageRecord;
use costtrace_gateway::{Gateway, GatewayConfig, Upstream};
use costtrace_providers::mock::{MockProvider, wait_for_usages};

fn skipped(why: &str) {
    let _ = std::io::stderr().write_all(format!("SKIPPED: python_e2e: {why}\n").as_bytes());
}

fn has_packages(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import openai, anthropic"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Python with both packages, or why there is none.
fn python() -> Result<PathBuf, String> {
    if let Ok(venv) = std::env::var("COSTTRACE_PY_VENV") {
        let py = Path::new(&venv).join("bin/python");
        return if has_packages(&py) {
            Ok(py)
        } else {
            Err(format!(
                "COSTTRACE_PY_VENV={venv} has no python with openai and anthropic"
            ))
        };
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-venv");
    let py = venv.join("bin/python");
    if has_packages(&py) {
        return Ok(py);
    }
    let run = |cmd: &mut Command| {
        cmd.output().map_err(|e| e.to_string()).and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).into_owned())
            }
        })
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        .map_err(|e| format!("python3 -m venv failed: {e}"))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "-q", "openai", "anthropic"]))
        .map_err(|e| format!("pip install openai anthropic failed: {e}"))?;
    if has_packages(&py) {
        Ok(py)
    } else {
        Err("packages still missing after pip install".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_clients_through_the_gateway() {
    let python = match tokio::task::spawn_blocking(python).await.unwrap() {
        Ok(p) => p,
        Err(why) => return skipped(&why),
    };
    let cap = costtrace::testing::capture();
    let mock = MockProvider::start().await.unwrap();
    let gw = Gateway::new(GatewayConfig::new(vec![
        Upstream::new("openai", &mock.url()).unwrap(),
        Upstream::new("anthropic", &mock.url()).unwrap(),
    ]))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gw.serve(listener));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/clients.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("COSTTRACE_GATEWAY_URL", url)
            // No proxy between the client and the loopback gateway.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "clients.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What the SDKs saw (the fixtures, unchanged by the gateway).
    let seen: std::collections::BTreeMap<String, serde_json::Value> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["task"].as_str().unwrap().to_owned(), v)
        })
        .collect();
    assert_eq!(seen["chat"]["prompt_tokens"], 1200);
    assert_eq!(
        seen["chat_stream"]["text"],
        "Hello! How can I assist you today?"
    );
    assert_eq!(
        seen["chat_stream"]["prompt_tokens"], 19,
        "usage came back to the SDK too"
    );
    assert_eq!(seen["embeddings"]["dims"], 8);
    assert_eq!(seen["chat_429"]["status"], 429);
    assert_eq!(seen["chat_500"]["status"], 500);
    assert_eq!(seen["messages"]["cache_read"], 4096);
    assert_eq!(seen["messages_stream"]["output_tokens"], 15);
    assert_eq!(seen["messages_529"]["status"], 529);

    let records = wait_for_usages(&cap, 10).await;
    let by_task = |t: &str| -> UsageRecord {
        let mut m: Vec<_> = records
            .iter()
            .filter(|u| u.attrs.get("task_id").map(String::as_str) == Some(t))
            .cloned()
            .collect();
        assert_eq!(m.len(), 1, "one record for {t}: {records:#?}");
        m.remove(0)
    };
    let counts = |u: &UsageRecord| {
        [
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
        ]
    };

    let u = by_task("chat");
    assert_eq!(
        counts(&u),
        [Some(1200), Some(300), Some(1024), None, Some(0)]
    );
    assert_eq!(u.cost_nanos, Some(176 * 2500 + 1024 * 1250 + 300 * 10_000));
    assert_eq!(
        (u.attrs["tenant_id"].as_str(), u.attrs["user_id"].as_str()),
        ("acme", "py_user")
    );

    let u = by_task("chat_stream");
    assert_eq!(counts(&u), [Some(19), Some(9), Some(0), None, Some(0)]);
    assert_eq!(u.cost_nanos, Some(19 * 150 + 9 * 600));
    assert!(!u.partial);

    let u = by_task("embeddings");
    assert_eq!(
        (u.operation.as_deref(), u.input_tokens, u.cost_nanos),
        (Some("embedding"), Some(8), Some(8 * 20))
    );

    let u = by_task("responses");
    assert_eq!(
        counts(&u),
        [Some(2100), Some(850), Some(1920), None, Some(640)]
    );
    assert_eq!(u.cost_nanos, Some(180 * 1100 + 1920 * 275 + 850 * 4400));

    let u = by_task("responses_stream");
    assert_eq!(counts(&u), [Some(37), Some(220), Some(0), None, Some(192)]);
    assert_eq!(u.cost_nanos, Some(37 * 1100 + 220 * 4400));

    for (t, status, msg) in [
        (
            "chat_429",
            "429",
            "HTTP 429 rate_limit_exceeded: Rate limit reached for gpt-4o",
        ),
        (
            "chat_500",
            "500",
            "HTTP 500 server_error: The server had an error",
        ),
        (
            "messages_529",
            "529",
            "HTTP 529 overloaded_error: Overloaded",
        ),
    ] {
        let u = by_task(t);
        assert_eq!(u.attrs["http_status"], status, "{t}");
        assert!(
            u.error_message.as_deref().unwrap().starts_with(msg),
            "{t}: {:?}",
            u.error_message
        );
        assert_eq!(
            (u.cost_nanos, u.input_tokens),
            (None, None),
            "{t}: a failed call, not a free one"
        );
    }

    let u = by_task("messages");
    assert_eq!(
        counts(&u),
        [
            Some(21 + 2048 + 4096),
            Some(187),
            Some(4096),
            Some(2048),
            None
        ]
    );
    assert_eq!(
        u.cost_nanos,
        Some(21 * 3000 + 2048 * 3750 + 4096 * 300 + 187 * 15_000)
    );
    assert_eq!(u.attrs["tenant_id"], "acme", "from baggage");

    let u = by_task("messages_stream");
    assert_eq!(
        counts(&u),
        [Some(1825), Some(15), Some(1800), Some(0), None]
    );
    assert_eq!(u.cost_nanos, Some(25 * 800 + 1800 * 80 + 15 * 4000));

    assert_eq!(records.len(), 10, "one record per call, no retries");
    let all = serde_json::to_string(&cap.records()).unwrap();
    assert!(
        !all.contains("PYTHONTESTKEY"),
        "provider keys never reach a record"
    );
    let keys_seen = mock
        .requests()
        .iter()
        .filter(|r| {
            r.headers
                .get("authorization")
                .is_some_and(|v| v.to_str().unwrap().contains("PYTHONTESTKEY"))
                || r.headers
                    .get("x-api-key")
                    .is_some_and(|v| v.to_str().unwrap().contains("PYTHONTESTKEY"))
        })
        .count();
    assert_eq!(
        keys_seen, 10,
        "every call reached the provider with its key"
    );
}
