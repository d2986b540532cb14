//! Running the built `costtrace` binary: one-shot commands, a server on a
//! free port, a tiny HTTP/1.1 client over `TcpStream` (no extra deps), and
//! the stores to run against (SQLite always, PostgreSQL when
//! `COSTTRACE_TEST_POSTGRES_URL` is set).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The environment variable that enables the PostgreSQL runs.
pub const PG_ENV: &str = "COSTTRACE_TEST_POSTGRES_URL";

/// The binary with a clean environment (no overrides, no default store).
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_costtrace"));
    c.env_remove("COSTTRACE_PRICES")
        .env_remove("COSTTRACE_DATABASE_URL");
    c
}

pub fn costtrace(args: &[&str]) -> Output {
    command().args(args).output().unwrap()
}

/// Runs and asserts success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = costtrace(args);
    assert!(
        out.status.success(),
        "costtrace {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `costtrace serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub banner: String,
    /// stderr lines before the banner.
    pub before: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `costtrace serve --port 0 …` and waits for its start-up line.
pub fn serve(db: &str, extra: &[&str]) -> Server {
    let mut child = command()
        .args(["serve", "--database-url", db, "--port", "0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before = Vec::new();
    let banner = loop {
        let line = lines.next().expect("no start-up line").unwrap();
        if line.contains("serving http://") {
            break line;
        }
        before.push(line);
    };
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected start-up line {banner:?}"))
        .to_owned();
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        addr,
        banner,
        before,
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and JSON.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let payload = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    let v = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
    (status, v)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// `sqlite:` URL of a fresh file in `dir`.
pub fn db(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("costtrace.db").display())
}

/// A store URL for each backend to test: a fresh SQLite file, and a fresh
/// PostgreSQL schema when [`PG_ENV`] is set (says SKIPPED otherwise).
pub fn store_urls(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![db(dir)];
    match std::env::var(PG_ENV).ok().filter(|u| !u.is_empty()) {
        Some(url) => urls.push(pg_schema_url(&url)),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: postgres runs of the CLI tests ({PG_ENV} not set)"
            );
        }
    }
    urls
}

/// A URL whose search_path is a new, empty schema.
fn pg_schema_url(url: &str) -> String {
    let schema = format!("cli_{}", unique());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
    });
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// A name nobody else uses in this run.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
