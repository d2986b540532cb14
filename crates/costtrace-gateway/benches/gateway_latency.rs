//! Gateway added latency: an open-loop load generator sends non-streamed
//! chat completions at a fixed rate to the mock provider, once directly and
//! once through the gateway, and reports latency percentiles measured from
//! each request's *intended* send time (so a stall delays every request
//! scheduled behind it, as it would for real callers: no coordinated
//! omission).
//!
//! ```text
//! cargo bench -p costtrace-gateway --bench gateway_latency
//! GATEWAY_BENCH_SECS=10 GATEWAY_BENCH_RATES=1000,5000 cargo bench -p costtrace-gateway --bench gateway_latency
//! GATEWAY_BENCH_PIN=1 cargo bench -p costtrace-gateway --bench gateway_latency
//! ```
//!
//! `GATEWAY_BENCH_PIN=1` puts the gateway and its recorder on a CPU of their
//! own (see `pin_threads`).
//!
//! The mock, the gateway and the load generator each run on their own
//! runtime (the mock on one thread, the gateway as `costtrace gateway` runs
//! it), all in this process on the same cores; the gateway records every
//! call through a real recorder (priced, written as JSON lines to
//! /dev/null).
//!
//! The generator is kept lean because its CPU competes with the gateway's:
//! a pacing thread sleeps until each request's intended time and writes the
//! prepared request bytes on an idle keep-alive connection (at most
//! `GATEWAY_BENCH_CONNS` per path, like a pooled client's limit; a request
//! finding them all busy waits for the next one to free up, its latency
//! still counted from its intended time), and one reader task per
//! connection on a current-thread runtime reads each `content-length`
//! answer and charges its latency. Both paths use the same generator, in
//! alternating 1 s blocks.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::io::Write as _;

use costtrace_gateway::{Gateway, GatewayConfig, Upstream};
use costtrace_providers::mock::MockProvider;

const BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You extract receipt totals."},{"role":"user","content":"Corner Market, 2025-03-08: groceries 31.50, household 10.67"}]}"#;

/// The allocator `costtrace gateway` uses, so the bench measures what ships
/// (the mock and the generator in this process use it too).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Runs a future-producing setup on a runtime of its own thread(s), named
/// `name`, returning what the setup returned and keeping the runtime alive.
fn spawn_runtime<T: Send + 'static>(
    name: &'static str,
    workers: usize,
    setup: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let rt = if workers == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name(name)
                    .enable_all()
                    .build()
            }
            .unwrap();
            rt.block_on(async move {
                tx.send(setup().await).unwrap();
                std::future::pending::<()>().await;
            });
        });
    spawned.unwrap();
    rx.recv().unwrap()
}

/// CPU time (µs) used so far by this process's threads whose name starts
/// with `prefix` (Linux `/proc/…/schedstat`: nanoseconds on CPU).
fn thread_cpu_micros(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut nanos = 0;
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let sched = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        nanos += sched
            .split(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    nanos / 1000
}

/// With `GATEWAY_BENCH_PIN=1`: the gateway's threads and its recorder on
/// the last CPU, everything else (load generator, pacer, mock provider) on
/// the others, so that the gateway under test does not share a CPU with
/// the load that measures it. Uses `taskset` (util-linux) on each thread.
fn pin_threads() {
    // The CPUs this process may use (`Cpus_allowed_list`: "0-3", "0,2-5").
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim();
    let mut cpus: Vec<u32> = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    let Some((gateway_cpu, rest)) = cpus.split_last().filter(|(_, rest)| !rest.is_empty()) else {
        println!("GATEWAY_BENCH_PIN: fewer than two CPUs allowed ({list:?}), nothing pinned");
        return;
    };
    let gateway_cpu = gateway_cpu.to_string();
    let others = rest
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let cpu = if comm.starts_with("bench-gateway") || comm.starts_with("costtrace-recor") {
            &gateway_cpu
        } else {
            &others
        };
        let tid = t.file_name().to_string_lossy().into_owned();
        let status = std::process::Command::new("taskset")
            .args(["-p", "-c", cpu, &tid])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("taskset (util-linux) runs");
        assert!(status.success(), "taskset -p -c {cpu} {tid} failed");
        println!("pinned {} (thread {tid}) to CPU {cpu}", comm.trim());
    }
}

#[derive(Default)]
struct Run {
    latencies: Vec<u64>,
    errors: u64,
    sent: u64,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.sent += other.sent;
    }
}

/// The load generator's connections to one target (the mock directly, or
/// the gateway) and the answers collected in the current block.
struct Target {
    addr: SocketAddr,
    /// The whole request, written as is on an idle keep-alive connection.
    request: Vec<u8>,
    /// Most connections opened (like a pooled client's limit): a request
    /// finding them all busy waits in `Pool::waiting`, its latency still
    /// counted from its intended send time.
    max_conns: usize,
    pool: Mutex<Pool>,
    results: Mutex<Run>,
    answered: std::sync::Condvar,
}

#[derive(Default)]
struct Pool {
    /// Write halves (the reader task of each connection has the read half).
    conns: Vec<Arc<std::net::TcpStream>>,
    /// Intended send time of the request in flight on each connection.
    in_flight: Vec<Option<Instant>>,
    dead: Vec<bool>,
    live: usize,
    /// Idle connections, most recently used last (reused first).
    idle: Vec<usize>,
    /// Requests due while every connection was busy, oldest first.
    waiting: VecDeque<Instant>,
}

impl Target {
    fn new(addr: SocketAddr, path: &str, max_conns: usize) -> Arc<Target> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             authorization: Bearer sk-bench-not-a-real-key\r\nx-costtrace-tenant: bench\r\n\
             content-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        Arc::new(Target {
            addr,
            request: request.into_bytes(),
            max_conns,
            pool: Mutex::new(Pool::default()),
            results: Mutex::new(Run::default()),
            answered: std::sync::Condvar::new(),
        })
    }

    fn finished(&self, latency: Option<u64>) {
        let mut r = self.results.lock().unwrap();
        match latency {
            Some(l) => r.latencies.push(l),
            None => r.errors += 1,
        }
        // Wake the pacer only for the last answer (a notify is a syscall).
        if r.latencies.len() as u64 + r.errors == r.sent {
            self.answered.notify_one();
        }
    }

    /// Writes the request; a failed write shuts the connection down, so its
    /// reader sees it end and counts the request as an error.
    fn send_on(&self, conn: &std::net::TcpStream) {
        if (&*conn).write_all(&self.request).is_err() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Sends the request due at `intended` (called by the pacing thread).
    fn send(self: &Arc<Target>, handle: &tokio::runtime::Handle, intended: Instant) {
        let mut pool = self.pool.lock().unwrap();
        let index = loop {
            match pool.idle.pop() {
                Some(i) if pool.dead[i] => continue,
                other => break other,
            }
        };
        let index = match index {
            Some(i) => i,
            None if pool.live < self.max_conns => {
                // Only this thread opens connections: connect unlocked.
                drop(pool);
                let opened = self.connect(handle);
                pool = self.pool.lock().unwrap();
                match opened {
                    Ok(i) => i,
                    Err(_) => {
                        drop(pool);
                        self.finished(None);
                        return;
                    }
                }
            }
            None => {
                pool.waiting.push_back(intended);
                return;
            }
        };
        pool.in_flight[index] = Some(intended);
        let conn = pool.conns[index].clone();
        drop(pool);
        self.send_on(&conn);
    }

    /// Opens a connection and starts its reader task; returns its index.
    fn connect(self: &Arc<Target>, handle: &tokio::runtime::Handle) -> std::io::Result<usize> {
        let stream = std::net::TcpStream::connect(self.addr)?;
        stream.set_nodelay(true)?;
        let read_half = stream.try_clone()?;
        // Shared with the write half: its writes are small and never find
        // the send buffer full.
        read_half.set_nonblocking(true)?;
        let writer = Arc::new(stream);
        let index = {
            let mut pool = self.pool.lock().unwrap();
            pool.conns.push(writer.clone());
            pool.in_flight.push(None);
            pool.dead.push(false);
            pool.live += 1;
            pool.conns.len() - 1
        };
        let target = self.clone();
        handle.spawn(async move { target.read_answers(index, read_half, &writer).await });
        Ok(index)
    }

    /// A connection's reader: charges each answer's latency, then sends the
    /// oldest waiting request on the connection or marks it idle.
    async fn read_answers(
        &self,
        index: usize,
        read_half: std::net::TcpStream,
        writer: &std::net::TcpStream,
    ) {
        let stream = tokio::net::TcpStream::from_std(read_half);
        let mut buf = Vec::with_capacity(8192);
        loop {
            let answer = match &stream {
                Ok(s) => read_response(s, &mut buf).await,
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let now = Instant::now();
            let mut pool = self.pool.lock().unwrap();
            let intended = pool.in_flight[index].take();
            match (answer, intended) {
                (Ok(true), Some(t)) => {
                    let next = pool.waiting.pop_front();
                    match next {
                        Some(_) => pool.in_flight[index] = next,
                        None => pool.idle.push(index),
                    }
                    drop(pool);
                    if next.is_some() {
                        self.send_on(writer);
                    }
                    self.finished(Some((now - t).as_nanos() as u64));
                }
                (_, intended) => {
                    pool.dead[index] = true;
                    pool.live -= 1;
                    drop(pool);
                    if intended.is_some() {
                        self.finished(None);
                    }
                    return;
                }
            }
        }
    }
}

/// Reads one HTTP/1.1 response with a `content-length` body from `stream`
/// into `buf` (cleared first); returns whether it was a 200.
async fn read_response(stream: &tokio::net::TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut need: Option<usize> = None;
    let mut status_ok = false;
    loop {
        if let Some(n) = need
            && buf.len() >= n
        {
            if buf.len() > n {
                return Err(std::io::Error::other("bytes after the response"));
            }
            return Ok(status_ok);
        }
        let len = buf.len();
        buf.resize(len + 4096, 0);
        let read = stream.try_read(&mut buf[len..]);
        buf.truncate(len + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stream.readable().await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        if need.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = std::str::from_utf8(&buf[..end]).map_err(std::io::Error::other)?;
            status_ok = head.starts_with("HTTP/1.1 200 ");
            let length = head
                .split("\r\n")
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .ok_or_else(|| std::io::Error::other("response without content-length"))?;
            need = Some(end + 4 + length);
        }
    }
}

/// Sends `rate` requests per second for `secs` seconds to `target` from this
/// (the pacing) thread, which sleeps until each request's intended time and
/// writes it on an idle keep-alive connection; the generator runtime reads
/// the answers. Returns the block's latencies, sorted.
fn run(handle: &tokio::runtime::Handle, target: &Arc<Target>, rate: u64, secs: u64) -> Run {
    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    *target.results.lock().unwrap() = Run {
        latencies: Vec::with_capacity(total as usize),
        errors: 0,
        sent: total,
    };
    let start = Instant::now() + Duration::from_millis(20);
    for i in 0..total {
        let intended = start + interval * i as u32;
        // Sleep, never spin: on two shared cores a spinning pacer would take
        // the CPU the gateway needs. Waking late (timer slack, ~50 µs) is
        // charged to the request, on both paths alike.
        let now = Instant::now();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        target.send(handle, intended);
    }
    // Wait for every answer (or its error).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut r = target.results.lock().unwrap();
    while (r.latencies.len() as u64 + r.errors) < total {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "answers missing after 60 s");
        r = target.answered.wait_timeout(r, left).unwrap().0;
    }
    let mut done = std::mem::take(&mut *r);
    done.latencies.sort_unstable();
    done
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let secs: u64 = env_or("GATEWAY_BENCH_SECS", "10").parse().unwrap();
    let rates: Vec<u64> = env_or("GATEWAY_BENCH_RATES", "1000,5000")
        .split(',')
        .map(|r| r.trim().parse().unwrap())
        .collect();

    // A sink spec, or `off` (no recorder: what the proxying alone costs).
    let recorder = env_or("GATEWAY_BENCH_RECORDER", "jsonl:/dev/null");
    let recorder_in_gateway = recorder.clone();
    let mock: SocketAddr = spawn_runtime("bench-mock", 1, || {
        Box::pin(async {
            let m = MockProvider::start().await.unwrap();
            let addr = m.addr();
            std::mem::forget(m); // serve for the whole run
            addr
        })
    });
    // Threads of the gateway's runtime (`costtrace gateway` uses one, a
    // current-thread runtime, unless given `--threads`).
    let workers: usize = env_or("GATEWAY_BENCH_WORKERS", "1").parse().unwrap();
    let gateway: SocketAddr = spawn_runtime("bench-gateway", workers, move || {
        let recorder = recorder_in_gateway;
        Box::pin(async move {
            if recorder != "off" {
                let guard = costtrace::Config::new()
                    .sink(recorder.parse().unwrap())
                    .no_spool()
                    .init()
                    .unwrap();
                std::mem::forget(guard);
            }
            let gw = Gateway::new(GatewayConfig::new(vec![
                Upstream::new("openai", &format!("http://{mock}")).unwrap(),
            ]))
            .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(gw.serve(listener));
            addr
        })
    });
    // The generator's reader tasks, on one current-thread runtime.
    let generator: tokio::runtime::Handle = spawn_runtime("bench-gen", 1, || {
        Box::pin(async { tokio::runtime::Handle::current() })
    });

    // The pacing thread sends; its CPU counts as the generator's.
    let pacer = std::thread::Builder::new()
        .name("bench-pacer".to_owned())
        .spawn(move || {
            if env_or("GATEWAY_BENCH_PIN", "0") == "1" {
                pin_threads();
            }
            measure(&generator, mock, gateway, secs, &rates, &recorder)
        })
        .unwrap();
    pacer.join().unwrap();
}

fn measure(
    generator: &tokio::runtime::Handle,
    mock: SocketAddr,
    gateway: SocketAddr,
    secs: u64,
    rates: &[u64],
    recorder: &str,
) {
    // Connections per path at most (like a pooled client's limit).
    let max_conns: usize = env_or("GATEWAY_BENCH_CONNS", "32").parse().unwrap();
    let direct = Target::new(mock, "/v1/chat/completions", max_conns);
    let via_gateway = Target::new(gateway, "/openai/v1/chat/completions", max_conns);

    println!(
        "gateway added latency, non-streamed chat completion (921-byte response), open loop, \
         {secs} s per path in alternating 1 s blocks, recorder: {recorder}"
    );
    println!("| rate (req/s) | path | p50 (µs) | p99 (µs) | p99.9 (µs) | max (µs) | ok | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    let (mut cpu_lines, mut block_lines) = (Vec::new(), Vec::new());
    for &rate in rates {
        // Warm both paths up (connections, allocator, caches).
        run(generator, &direct, rate, 1);
        run(generator, &via_gateway, rate, 1);
        // Alternate one-second blocks so that both paths see the same
        // background load on the shared machine.
        let (mut direct_run, mut via) = (Run::default(), Run::default());
        let (mut gw_cpu, mut rec_cpu, mut mock_cpu) = (0, 0, 0);
        let gen_cpu0 = generator_cpu_micros();
        // p99 added within each pair of blocks: a stall of the shared
        // machine lands in one block of one path and sets that path's
        // overall p99, whereas the pairs' median shows the usual second.
        let mut block_p99_added = Vec::with_capacity(secs as usize);
        for _ in 0..secs {
            let m0 = thread_cpu_micros("bench-mock");
            let d = run(generator, &direct, rate, 1);
            mock_cpu += thread_cpu_micros("bench-mock") - m0;
            let (g0, r0) = (
                thread_cpu_micros("bench-gateway"),
                thread_cpu_micros("costtrace-recor"),
            );
            let v = run(generator, &via_gateway, rate, 1);
            block_p99_added.push(pct(&v.latencies, 0.99) - pct(&d.latencies, 0.99));
            direct_run.add(d);
            via.add(v);
            // The recorder writes every 200 ms: let it finish this block.
            std::thread::sleep(Duration::from_millis(250));
            gw_cpu += thread_cpu_micros("bench-gateway") - g0;
            rec_cpu += thread_cpu_micros("costtrace-recor") - r0;
        }
        let gen_cpu = generator_cpu_micros() - gen_cpu0;
        cpu_lines.push(format!(
            "{rate} req/s, CPU per request: gateway threads {:.1} µs + recorder thread {:.1} µs \
             (for scale: the mock server {:.1} µs, the load generator {:.1} µs; \
             connections opened: {} direct, {} to the gateway)",
            gw_cpu as f64 / via.sent as f64,
            rec_cpu as f64 / via.sent as f64,
            mock_cpu as f64 / direct_run.sent as f64,
            gen_cpu as f64 / (direct_run.sent + via.sent) as f64,
            direct.pool.lock().unwrap().conns.len(),
            via_gateway.pool.lock().unwrap().conns.len(),
        ));
        direct_run.latencies.sort_unstable();
        via.latencies.sort_unstable();
        for (name, r) in [("direct to mock", &direct_run), ("through gateway", &via)] {
            println!(
                "| {rate} | {name} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
                pct(&r.latencies, 0.50),
                pct(&r.latencies, 0.99),
                pct(&r.latencies, 0.999),
                pct(&r.latencies, 1.0),
                r.latencies.len(),
                r.errors
            );
            assert_eq!(r.sent, r.latencies.len() as u64 + r.errors);
        }
        println!(
            "| {rate} | **added by gateway** | **{:.0}** | **{:.0}** | {:.0} | | | |",
            pct(&via.latencies, 0.50) - pct(&direct_run.latencies, 0.50),
            pct(&via.latencies, 0.99) - pct(&direct_run.latencies, 0.99),
            pct(&via.latencies, 0.999) - pct(&direct_run.latencies, 0.999),
        );
        block_p99_added.sort_by(f64::total_cmp);
        block_lines.push(format!(
            "{rate} req/s, p99 added within each 1 s block pair (µs): median {:.0}, \
             min {:.0}, max {:.0}, over {} pairs",
            block_p99_added[block_p99_added.len() / 2],
            block_p99_added[0],
            block_p99_added[block_p99_added.len() - 1],
            block_p99_added.len()
        ));
    }
    for l in block_lines {
        println!("{l}");
    }
    for l in cpu_lines {
        println!("{l}");
    }
}

/// CPU of the load generator: the pacing thread and the reader runtime.
fn generator_cpu_micros() -> u64 {
    thread_cpu_micros("bench-pacer") + thread_cpu_micros("bench-gen")
}
