//! How often and for how long this machine takes the CPU away from a
//! running thread: the floor under any tail-latency figure measured here.
//!
//! ```text
//! cargo bench -p costtrace-gateway --bench machine_jitter
//! JITTER_SECS=10 JITTER_THREADS=2 cargo bench -p costtrace-gateway --bench machine_jitter
//! ```
//!
//! Each thread spins reading the monotonic clock and counts the gaps between
//! two consecutive reads longer than 100 µs (a loop iteration takes tens of
//! nanoseconds, so a gap is time the thread did not run: an interrupt, the
//! guest scheduler, or the host taking the vCPU). A request whose path
//! crosses such a gap is late by it, so when gaps over 1 ms come several
//! times a second, a p99 under a millisecond cannot be measured here
//! whatever the code under test does (see docs/benchmarks.md, gateway).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The gaps over `min` seen while spinning for `secs`.
fn spin(secs: u64, min: Duration) -> Vec<Duration> {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    while last < end {
        let now = Instant::now();
        let gap = now - last;
        if gap > min {
            gaps.push(gap);
        }
        last = now;
    }
    gaps
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent:
    // only a real `cargo bench` spins for seconds.
    let bench = std::env::args().any(|a| a == "--bench");
    let secs = if bench { env_or("JITTER_SECS", 10) } else { 1 };
    let threads = env_or("JITTER_THREADS", 1).max(1);
    let min = Duration::from_micros(100);
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || spin(secs, min)))
        .collect();
    println!("machine jitter: {threads} spinning thread(s) for {secs} s, gaps between clock reads");
    println!("| thread | > 100 µs | > 500 µs | > 1 ms | > 5 ms | longest | time lost |");
    println!("|---|---|---|---|---|---|---|");
    for (i, h) in handles.into_iter().enumerate() {
        let mut gaps = h.join().expect("spinning thread");
        gaps.sort_unstable();
        let over = |us: u64| {
            gaps.iter()
                .filter(|g| **g > Duration::from_micros(us))
                .count()
        };
        let lost: Duration = gaps.iter().sum();
        println!(
            "| {i} | {} | {} | {} | {} | {:.2} ms | {:.1} ms |",
            gaps.len(),
            over(500),
            over(1000),
            over(5000),
            gaps.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            lost.as_secs_f64() * 1e3,
        );
    }
}
