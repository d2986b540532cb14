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
//! ```
//!
//! The mock, the gateway and the load generator each run on their own
//! runtime (mock and generator on one worker thread each, the gateway on two
//! workers, as `costtrace gateway` runs; the pacing thread sleeps between
//! sends); the gateway records every call
//! through a real recorder (priced, written as JSON lines to /dev/null).
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use costtrace_gateway::{Gateway, GatewayConfig, Upstream};
use costtrace_providers::mock::MockProvider;
use costtrace_providers::transport::{HttpsClient, https_client};
use http_body_util::{BodyExt, Full};

const BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You extract receipt totals."},{"role":"user","content":"Corner Market, 2025-03-08: groceries 31.50, household 10.67"}]}"#;

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

/// Sends `rate` requests per second for `secs` seconds to `url`, from a
/// pacing thread that sleeps until each request's intended time and hands it
/// to the generator runtime.
fn run(
    handle: &tokio::runtime::Handle,
    client: &HttpsClient<Full<Bytes>>,
    url: &str,
    rate: u64,
    secs: u64,
) -> Run {
    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let lat = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    let mut joins = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + interval * i as u32;
        // Sleep, never spin: on two shared cores a spinning pacer would take
        // the CPU the gateway needs. Waking late (timer slack, ~50 µs) is
        // charged to the request, on both paths alike.
        let now = Instant::now();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        let (client, url, lat, errors) =
            (client.clone(), url.to_owned(), lat.clone(), errors.clone());
        joins.push(handle.spawn(async move {
            let req = http::Request::post(url)
                .header("content-type", "application/json")
                .header("authorization", "Bearer sk-bench-not-a-real-key")
                .header("x-costtrace-tenant", "bench")
                .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                .unwrap();
            let ok = match client.request(req).await {
                Ok(resp) => resp.status() == 200 && resp.into_body().collect().await.is_ok(),
                Err(_) => false,
            };
            let took = intended.elapsed().as_nanos() as u64;
            if ok {
                lat.lock().unwrap().push(took);
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    handle.block_on(async {
        for j in joins {
            let _ = j.await;
        }
    });
    let mut latencies = std::mem::take(&mut *lat.lock().unwrap());
    latencies.sort_unstable();
    Run {
        latencies,
        errors: errors.load(std::sync::atomic::Ordering::Relaxed),
        sent: total,
    }
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
    // Worker threads of the gateway's runtime (`costtrace gateway` uses 2).
    let workers: usize = env_or("GATEWAY_BENCH_WORKERS", "2").parse().unwrap();
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

    // One worker runs the requests while this thread paces them.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client: HttpsClient<Full<Bytes>> = {
        let _e = rt.enter();
        https_client().unwrap()
    };
    let direct_url = format!("http://{mock}/v1/chat/completions");
    let gateway_url = format!("http://{gateway}/openai/v1/chat/completions");

    println!(
        "gateway added latency, non-streamed chat completion (921-byte response), open loop, \
         {secs} s per path in alternating 1 s blocks, recorder: {recorder}"
    );
    println!("| rate (req/s) | path | p50 (µs) | p99 (µs) | p99.9 (µs) | max (µs) | ok | errors |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut cpu_lines = Vec::new();
    for &rate in &rates {
        // Warm both paths up (connections, allocator, caches).
        run(rt.handle(), &client, &direct_url, rate, 1);
        run(rt.handle(), &client, &gateway_url, rate, 1);
        // Alternate one-second blocks so that both paths see the same
        // background load on the shared machine.
        let (mut direct, mut via) = (Run::default(), Run::default());
        let (mut gw_cpu, mut rec_cpu, mut mock_cpu) = (0, 0, 0);
        for _ in 0..secs {
            let m0 = thread_cpu_micros("bench-mock");
            direct.add(run(rt.handle(), &client, &direct_url, rate, 1));
            mock_cpu += thread_cpu_micros("bench-mock") - m0;
            let (g0, r0) = (
                thread_cpu_micros("bench-gateway"),
                thread_cpu_micros("costtrace-recor"),
            );
            via.add(run(rt.handle(), &client, &gateway_url, rate, 1));
            // The recorder writes every 200 ms: let it finish this block.
            std::thread::sleep(Duration::from_millis(250));
            gw_cpu += thread_cpu_micros("bench-gateway") - g0;
            rec_cpu += thread_cpu_micros("costtrace-recor") - r0;
        }
        cpu_lines.push(format!(
            "{rate} req/s, CPU per request: gateway threads {:.1} µs + recorder thread {:.1} µs \
             (the mock server, for scale: {:.1} µs)",
            gw_cpu as f64 / via.sent as f64,
            rec_cpu as f64 / via.sent as f64,
            mock_cpu as f64 / direct.sent as f64
        ));
        direct.latencies.sort_unstable();
        via.latencies.sort_unstable();
        for (name, r) in [("direct to mock", &direct), ("through gateway", &via)] {
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
            pct(&via.latencies, 0.50) - pct(&direct.latencies, 0.50),
            pct(&via.latencies, 0.99) - pct(&direct.latencies, 0.99),
            pct(&via.latencies, 0.999) - pct(&direct.latencies, 0.999),
        );
    }
    for l in cpu_lines {
        println!("{l}");
    }
}
