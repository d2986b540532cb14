//! Server load benchmark: the real `costtrace_server::app` on loopback over a
//! store holding N usage records (default 1,000,000), read by `wrk` (a
//! separate process; `apt-get install wrk`), and `POST /api/ingest` driven
//! by keep-alive client threads in this process.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-server cargo bench -p costtrace-server --bench server_load
//! ```
//!
//! Settings (environment): `COSTTRACE_BENCH_N` (usage records stored,
//! 1000000), `COSTTRACE_BENCH_STORE` (a store URL; default a SQLite file under
//! target/ that is filled once and reused), `COSTTRACE_BENCH_SECS` (wrk
//! duration, 10), `COSTTRACE_BENCH_CONNS` (wrk connections, 32),
//! `COSTTRACE_BENCH_WRK_THREADS` (wrk threads, 2),
//! `COSTTRACE_BENCH_WRK_SCHED` (`batch`, the default: wrk runs under
//! `chrt -b 0`; `other`: as a normal task), `COSTTRACE_BENCH_WRK_SCRIPT`
//! (`table`, the default: requests formatted once per wrk thread; `format`:
//! formatted as they are sent), `COSTTRACE_BENCH_INGEST` (records posted,
//! 300000).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use costtrace_core::Record;
use costtrace_pricing::Catalogue;
use costtrace_server::{AppState, AuthMode, app};
use costtrace_store::{AnyStore, Store};

/// The allocator `costtrace serve` uses, so the bench measures what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../costtrace-store/benches/synthetic/mod.rs"]
mod synthetic;
use synthetic::*;

const FILL_BATCH: u64 = 10_000;
const INGEST_BATCH: usize = 1_000;
const INGEST_CLIENTS: usize = 4;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Fills the store with `n` usage records and their requests, unless a
/// marker says a previous run already did.
async fn fill(store: &AnyStore, n: u64, marker: Option<&PathBuf>) {
    if marker.is_some_and(|m| m.exists()) {
        println!("store already holds {n} usage records (marker {marker:?})");
        return;
    }
    let t0 = Instant::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut i = 0;
    while i < n {
        let end = (i + FILL_BATCH).min(n);
        let batch: Vec<Record> = (i..end)
            .map(|j| Record::Usage(usage(j, &mut rng)))
            .collect();
        store.insert_records(&batch).await.unwrap();
        i = end;
    }
    let requests = n / USAGE_PER_REQUEST;
    let mut r = 0;
    while r < requests {
        let end = (r + FILL_BATCH).min(requests);
        let batch: Vec<Record> = (r..end)
            .map(|j| Record::Request(request(j, &mut rng)))
            .collect();
        store.insert_records(&batch).await.unwrap();
        r = end;
    }
    if let Some(m) = marker {
        std::fs::write(m, n.to_string()).unwrap();
    }
    println!(
        "filled {n} usage + {requests} request records in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_secs() -> f64 {
    stat_cpu_secs("/proc/self/stat")
}

/// CPU seconds this process's waited-for children (wrk) have used.
fn children_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // cutime, cstime
    (tick(13) + tick(14)) / 100.0
}

/// CPU seconds the calling thread has used (user + system), from /proc.
fn thread_cpu_secs() -> f64 {
    stat_cpu_secs("/proc/thread-self/stat")
}

fn stat_cpu_secs(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // After the parenthesised command name; times in clock ticks (100 per
    // second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    // rest: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime stime … (children's times, i.e. wrk's, come after).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// One `wrk` run; returns (requests/s, p50 ms, p99 ms, server CPU µs per
/// request, wrk CPU µs per request).
fn wrk(
    addr: SocketAddr,
    script: &str,
    name: &str,
    secs: u64,
    conns: u64,
) -> (f64, f64, f64, f64, f64) {
    let dir = std::env::temp_dir().join(format!("costtrace-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, script).unwrap();
    let cpu0 = cpu_secs();
    let child0 = children_cpu_secs();
    let threads = env_u64("COSTTRACE_BENCH_WRK_THREADS", 2);
    // wrk shares the two cores with the server. As a normal task it is woken
    // by nearly every answer and preempts the server thread that wrote it
    // (the kernel favours a waking task), so a large part of both processes'
    // CPU went to switching between them. As a batch task (`chrt -b 0`,
    // same priority, never preempts on wake-up) it still gets its share of
    // the CPU, but runs when a server thread yields: the closest these two
    // cores get to a client on another machine. `COSTTRACE_BENCH_WRK_SCHED=
    // other` runs it as a normal task (the runs before 2026-12-01, night).
    let batch = std::env::var("COSTTRACE_BENCH_WRK_SCHED").as_deref() != Ok("other");
    let mut cmd = if batch {
        let mut c = Command::new("chrt");
        c.args(["-b", "0", "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    let out = cmd
        .args([
            &format!("-t{threads}"),
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(&path)
        .arg(format!("http://{addr}"))
        .output()
        .expect("could not start wrk (apt-get install wrk; chrt is in util-linux)");
    let cpu = cpu_secs() - cpu0;
    let wrk_cpu = children_cpu_secs() - child0;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("Non-2xx"),
        "{name}: some answers were not 2xx:\n{text}"
    );
    let field = |prefix: &str| -> &str {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk output:\n{text}"))
            .trim()
    };
    let rps: f64 = field("Requests/sec:").parse().unwrap();
    let total: f64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    (
        rps,
        ms(field("50%")),
        ms(field("99%")),
        cpu / total * 1e6,
        wrk_cpu / total * 1e6,
    )
}

/// wrk's `1.23ms` / `456.00us` / `1.10s` in milliseconds.
fn ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap());
    let x: f64 = num.parse().unwrap();
    match unit {
        "us" => x / 1e3,
        "ms" => x,
        "s" => x * 1e3,
        other => panic!("unit {other}"),
    }
}

/// A keep-alive HTTP/1.1 POST; returns the status and body.
fn post(conn: &mut BufReader<TcpStream>, body: &[u8]) -> (u16, Vec<u8>) {
    let head = format!(
        "POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = conn.get_mut();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap();
        }
    }
    let mut buf = vec![0; len];
    conn.read_exact(&mut buf).unwrap();
    (status, buf)
}

/// Posts `total` new usage records in batches from several connections;
/// returns records per second (serialising the bodies is not timed) and
/// the server's CPU µs per record (this process's CPU time during the
/// posts less that of the client threads).
fn ingest(addr: SocketAddr, total: usize, first: u64) -> (f64, f64) {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let bodies: Vec<Vec<u8>> = (0..total.div_ceil(INGEST_BATCH))
        .map(|b| {
            let start = first + (b * INGEST_BATCH) as u64;
            let end = (start + INGEST_BATCH as u64).min(first + total as u64);
            let recs: Vec<Record> = (start..end)
                .map(|j| Record::Usage(usage(j, &mut rng)))
                .collect();
            serde_json::to_vec(&recs).unwrap()
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..INGEST_CLIENTS)
        .map(|_| {
            let (bodies, next) = (bodies.clone(), next.clone());
            std::thread::spawn(move || {
                let cpu0 = thread_cpu_secs();
                let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
                let mut inserted = 0u64;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let (status, resp) = post(&mut conn, body);
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
                    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
                    inserted += v["inserted"].as_u64().unwrap();
                }
                (inserted, thread_cpu_secs() - cpu0)
            })
        })
        .collect();
    let (inserted, client_cpu) = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .fold((0, 0.0), |(n, c), (dn, dc)| (n + dn, c + dc));
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = cpu_secs() - cpu0 - client_cpu;
    assert_eq!(inserted, total as u64, "every posted record is new");
    (total as f64 / secs, server_cpu / total as f64 * 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // else useful: run only under cargo bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n = env_u64("COSTTRACE_BENCH_N", 1_000_000);
    let secs = env_u64("COSTTRACE_BENCH_SECS", 10);
    let conns = env_u64("COSTTRACE_BENCH_CONNS", 32);
    let ingest_total = env_u64("COSTTRACE_BENCH_INGEST", 300_000) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (url, marker) = match std::env::var("COSTTRACE_BENCH_STORE") {
        Ok(url) => (url, None),
        Err(_) => {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-server");
            std::fs::create_dir_all(&dir).unwrap();
            let db = dir.join(format!("store-{n}.db"));
            let marker = dir.join(format!("store-{n}.filled"));
            if !marker.exists() {
                let _ = std::fs::remove_file(&db);
            }
            (format!("sqlite:{}", db.display()), Some(marker))
        }
    };
    let store = rt.block_on(AnyStore::open(&url)).unwrap();
    rt.block_on(fill(&store, n, marker.as_ref()));
    let state = AppState::new(store, Catalogue::bundled(), AuthMode::Local);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app(state)).await });

    let tasks = n / USAGE_PER_REQUEST / REQUESTS_PER_TASK;
    let backend = url.split(':').next().unwrap_or("?");
    println!(
        "| backend | stored usage records | endpoint | requests/s | p50 ms | p99 ms | server CPU µs/request | wrk CPU µs/request |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, path) in [
        ("task_cost", "/api/tasks/task_%010x/cost"),
        ("requests_by_task", "/api/requests?task_id=task_%010x"),
    ] {
        // Every thread gets its own random sequence (seeded by its index)
        // and formats all requests once, in `init`: per request the script
        // only picks one, so wrk spends its CPU on the sockets.
        // `COSTTRACE_BENCH_WRK_SCRIPT=format` formats each request when it
        // is sent (the script of the runs before 2026-12-01, night).
        let script = if std::env::var("COSTTRACE_BENCH_WRK_SCRIPT").as_deref() == Ok("format") {
            format!(
                "math.randomseed(42)\nrequest = function()\n  return wrk.format(\"GET\", string.format(\"{path}\", math.random(0, {})))\nend\n",
                tasks - 1
            )
        } else {
            format!(
                "local counter = 0\n\
                 function setup(thread)\n  thread:set(\"tid\", counter)\n  counter = counter + 1\nend\n\
                 local reqs = {{}}\n\
                 function init(args)\n  math.randomseed(42 + tid)\n  for i = 0, {last} do\n    reqs[i] = wrk.format(\"GET\", string.format(\"{path}\", i))\n  end\nend\n\
                 function request()\n  return reqs[math.random(0, {last})]\nend\n",
                last = tasks - 1
            )
        };
        // Warm-up (page cache, mmap, statement caches), not reported.
        wrk(addr, &script, name, 2, conns);
        let (rps, p50, p99, cpu, wrk_cpu) = wrk(addr, &script, name, secs, conns);
        println!(
            "| {backend} | {n} | GET {} | {rps:.0} | {p50:.2} | {p99:.2} | {cpu:.0} | {wrk_cpu:.0} |",
            path.replace("task_%010x", "{id}")
        );
    }
    if ingest_total == 0 {
        return;
    }
    // New records (ids never used by the fill), so each one is an insert.
    let (rate, cpu) = ingest(addr, ingest_total, n + 1_000_000_000);
    println!(
        "| {backend} | {n} | POST /api/ingest ({INGEST_BATCH} records/request, {INGEST_CLIENTS} connections) | {rate:.0} records/s | | | {cpu:.1} µs/record | |"
    );
    if let Some(m) = &marker {
        // The ingested records would change the next run's data set.
        let _ = std::fs::remove_file(m);
    }
}
