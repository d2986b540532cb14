//! `costtrace tail` through the built binary on SQLite and PostgreSQL: it
//! prints records stored after it started (not those before, unless
//! --since), and stops cleanly on Ctrl-C (SIGINT).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{command, ok, store_urls, unique};
use serde_json::{Value, json};

/// A running `costtrace tail`; its stdout lines arrive on `lines`.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(url: &str, extra: &[&str]) -> Tail {
    let mut child = command()
        .args(["tail", "--database-url", url, "--interval-ms", "50"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The cursor is taken before this line is written.
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = err.next().unwrap().unwrap();
    assert!(first.contains("following"), "{first}");
    std::thread::spawn(move || for _ in err {});
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            if tx.send(l.unwrap()).is_err() {
                break;
            }
        }
    });
    Tail { child, lines }
}

impl Tail {
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("no line from tail within 20 s")
    }

    /// Ctrl-C: exits 0.
    fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            command_status("kill", &["-INT", &pid]),
            "kill -INT {pid} failed"
        );
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "tail after SIGINT: {status:?}");
    }
}

fn command_status(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap()
        .success()
}

fn write_jsonl(dir: &tempfile::TempDir, records: &[Value]) -> String {
    let path = dir.path().join(format!("r-{}.jsonl", unique()));
    let text: Vec<String> = records.iter().map(Value::to_string).collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

fn usage(id: &str, pages: u64) -> Value {
    json!({"kind": "usage", "id": id,
           "attrs": {"request_id": "req_t", "task_id": "task_t", "entity_id": "acme"},
           "environment": "production", "timestamp": "2025-01-15T10:31:00.000Z",
           "service_type": "file_processor", "units": {"pages": pages},
           "pricing_tier": "standard"})
}

#[test]
fn tail_prints_records_stored_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    for url in store_urls(&dir) {
        let before = "0194e0a0-0000-7000-8000-0000000000b0";
        let after = "0194e0a0-0000-7000-8000-0000000000a1";
        ok(&[
            "import",
            &write_jsonl(&dir, &[usage(before, 1)]),
            "--database-url",
            &url,
        ]);

        let t = tail(&url, &["--format", "json"]);
        let file = write_jsonl(
            &dir,
            &[
                usage(after, 10),
                json!({"kind": "request", "request_id": "req_t", "task_id": "task_t",
                       "entity_id": "acme", "timestamp": "2025-01-15T10:30:45.123Z",
                       "status_code": 200}),
            ],
        );
        ok(&["import", &file, "--database-url", &url]);
        let mut got: Vec<Value> = (0..2)
            .map(|_| serde_json::from_str(&t.next_line()).unwrap())
            .collect();
        got.sort_by_key(|v| v["kind"].as_str().unwrap().to_owned());
        assert_eq!(got[0]["kind"], "request");
        assert_eq!(got[0]["request_id"], "req_t");
        assert_eq!(got[0]["status_code"], 200);
        assert_eq!(
            got[1]["id"], after,
            "the record stored before tail started is not shown"
        );
        assert_eq!(got[1]["cost_nanos"], 200_000_000);
        assert_eq!(got[1]["attrs"]["task_id"], "task_t");
        assert!(t.lines.try_recv().is_err(), "nothing else");
        t.interrupt();

        // --since: what is stored first, as text.
        let t = tail(&url, &["--since", "2025-01-15"]);
        let mut lines: Vec<String> = (0..3).map(|_| t.next_line()).collect();
        lines.sort();
        assert!(
            lines[0].starts_with("2025-01-15T10:30:45.123Z  request  acme"),
            "{lines:?}"
        );
        assert!(lines[0].contains("200") && lines[0].contains("request=req_t"));
        let usage_line = lines.iter().find(|l| l.contains("pages=10")).unwrap();
        assert!(
            usage_line.contains(
                "usage    acme  file_processor pages=10  $0.200000  request=req_t task=task_t"
            ),
            "{usage_line}"
        );
        t.interrupt();
    }
}
