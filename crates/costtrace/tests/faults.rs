#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]
//! Fault tests with real processes, real files and real PostgreSQL: nothing
//! acknowledged is lost, nothing is counted twice.
//!
//! The PostgreSQL cases need `COSTTRACE_TEST_POSTGRES_URL` (a server the
//! tests may create databases on) and `COSTTRACE_TEST_PG_DIR` (its data
//! directory, so they can stop and restart it with
//! `scripts/postgres-test-server.sh`). `.ci/run` sets both.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use costtrace::{Config, QueuePolicy, Usage};
use costtrace_store::{AnyStore, GroupBy, Store, TenantScope};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The `spool_child` example, built by `cargo test` beside the test binaries.
fn child_exe() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let exe = deps.parent().unwrap().join("examples").join("spool_child");
    assert!(
        exe.exists(),
        "{} not built (cargo test builds examples)",
        exe.display()
    );
    exe
}

fn spawn_child(sink: &str, spool: &std::path::Path, count: u64) -> Child {
    Command::new(child_exe())
        .args([sink, spool.to_str().unwrap(), &count.to_string(), "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Reads the child's `acked N` lines until `target`, then SIGKILLs it.
/// Returns the last acknowledged count.
fn kill_after_acked(mut child: Child, target: u64) -> u64 {
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = 0;
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked = n.parse().unwrap();
            if acked >= target {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    acked
}

fn run_to_end(sink: &str, spool: &std::path::Path, count: u64) -> String {
    let out = Command::new(child_exe())
        .args([sink, spool.to_str().unwrap(), &count.to_string(), "run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn usage_count(url: &str) -> u64 {
    let store = AnyStore::open(url).await.unwrap();
    store
        .usage_summary(GroupBy::Provider, None, None, &TenantScope::All)
        .await
        .unwrap()
        .iter()
        .map(|r| r.record_count)
        .sum()
}

fn spool_files(dir: &std::path::Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .count()
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn sigkill_mid_flush_into_sqlite_loses_nothing_acknowledged() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("costs.db");
    let sink = format!("sqlite:{}", db.display());
    let spool = dir.path().join("spool");
    let acked = kill_after_acked(spawn_child(&sink, &spool, 10_000_000), 20_000);
    run_to_end(&sink, &spool, 0); // restart: replays anything spooled
    let stored = rt().block_on(usage_count(&sink));
    assert!(stored >= acked, "acked {acked} but stored {stored}");
    // The child flushes every 500 records and was killed at most one flush
    // after `acked`: more than that would mean records counted twice.
    assert!(stored <= acked + 500, "acked {acked} but stored {stored}");
    assert_eq!(spool_files(&spool), 0);
}

struct Pg {
    admin_url: String,
    dir: String,
}

fn pg() -> Option<Pg> {
    match (
        std::env::var("COSTTRACE_TEST_POSTGRES_URL"),
        std::env::var("COSTTRACE_TEST_PG_DIR"),
    ) {
        (Ok(admin_url), Ok(dir)) => Some(Pg { admin_url, dir }),
        _ => {
            // Written past the test harness's capture so that CI sees it.
            let _ = std::io::stderr().write_all(
                b"SKIPPED: postgres fault test (COSTTRACE_TEST_POSTGRES_URL or COSTTRACE_TEST_PG_DIR not set)\n",
            );
            None
        }
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres-test-server.sh")
}

impl Pg {
    /// A fresh database on the test server; returns its URL.
    fn fresh_db(&self, name: &str) -> String {
        let db = format!("ct_fault_{name}_{}", std::process::id());
        rt().block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .execute(&format!("DROP DATABASE IF EXISTS {db}"), &[])
                .await
                .unwrap();
            client
                .execute(&format!("CREATE DATABASE {db}"), &[])
                .await
                .unwrap();
        });
        let base = self.admin_url.rsplit_once('/').unwrap().0;
        format!("{base}/{db}")
    }

    fn ctl(&self, action: &str) {
        let out = Command::new("bash")
            .arg(script())
            .args([action, &self.dir])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let port = self
            .admin_url
            .rsplit_once(':')
            .unwrap()
            .1
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let out = Command::new("bash")
            .arg(script())
            .args([&self.dir, &port])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts the server again even if the test fails halfway.
struct Restart<'a>(&'a Pg);
impl Drop for Restart<'_> {
    fn drop(&mut self) {
        self.0.start();
    }
}

#[test]
fn sink_down_records_keep_coming_sink_back_every_record_stored_once() {
    let _s = serial();
    let Some(pg) = pg() else { return };
    let url = pg.fresh_db("down");
    rt().block_on(usage_count(&url)); // migrate while up
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    {
        let _restart = Restart(&pg);
        pg.ctl("stop");
        let out = run_to_end(&url, &spool, 3_000);
        assert!(out.contains("spooled=3000"), "{out}");
        assert!(spool_files(&spool) > 0);
    }
    // The sink is back: a new process replays the spool.
    let out = run_to_end(&url, &spool, 0);
    assert!(out.contains("replayed=3000"), "{out}");
    assert_eq!(rt().block_on(usage_count(&url)), 3_000);
    // Replaying again changes nothing.
    run_to_end(&url, &spool, 0);
    assert_eq!(rt().block_on(usage_count(&url)), 3_000);
    assert_eq!(spool_files(&spool), 0);
}

#[test]
fn sigkill_while_postgres_is_down_then_restart_replays_the_spool() {
    let _s = serial();
    let Some(pg) = pg() else { return };
    let url = pg.fresh_db("kill");
    rt().block_on(usage_count(&url));
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let acked;
    {
        let _restart = Restart(&pg);
        pg.ctl("stop");
        acked = kill_after_acked(spawn_child(&url, &spool, 10_000_000), 5_000);
    }
    let out = run_to_end(&url, &spool, 0);
    assert!(out.contains("replayed="), "{out}");
    let stored = rt().block_on(usage_count(&url));
    assert!(
        stored >= acked && stored <= acked + 500,
        "acked {acked}, stored {stored}"
    );
    assert_eq!(spool_files(&spool), 0);
}

#[test]
fn postgres_restarted_during_a_write_load_loses_nothing() {
    let _s = serial();
    let Some(pg) = pg() else { return };
    let url = pg.fresh_db("restart");
    rt().block_on(usage_count(&url));
    let dir = tempfile::tempdir().unwrap();
    let guard = Config::new()
        .sink(url.parse().unwrap())
        .spool_dir(dir.path().join("spool"))
        .on_full(QueuePolicy::Block(Duration::from_secs(30)))
        .flush_interval(Duration::from_millis(20))
        .init()
        .unwrap();
    let total = 40_000u64;
    let writer = std::thread::spawn(move || {
        for i in 0..total {
            costtrace::record(
                Usage::llm("openai", "gpt-4o")
                    .input_tokens(i)
                    .output_tokens(1),
            );
            if i % 2_000 == 0 {
                std::thread::sleep(Duration::from_millis(30));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    pg.ctl("restart");
    writer.join().unwrap();
    // Flush until the spool has drained into the restarted server.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        costtrace::flush_timeout(Duration::from_secs(30)).unwrap();
        let h = costtrace::health().unwrap();
        if h.spooled == 0 && h.retry_pending == 0 {
            assert_eq!(h.dropped, 0, "{h:?}");
            break;
        }
        assert!(Instant::now() < deadline, "spool never drained: {h:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(guard);
    assert_eq!(rt().block_on(usage_count(&url)), total);
}
