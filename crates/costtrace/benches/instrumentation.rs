//! Instrumentation overhead, with a `tracing` span on a
//! `tracing_subscriber::Registry` as the reference in the same run.
//!
//! The global recorder is installed with the `none` sink, so every scope and
//! usage event really crosses the queue to the recorder thread, which
//! materializes it and discards it. The recorder thread cannot keep up with a
//! loop that does nothing but record, so after the queue fills most events of
//! the `caller` group are dropped (counted): that group measures what the
//! application thread pays. The `sustained` group uses the blocking queue
//! policy, so it measures end-to-end throughput including materialization.
//!
//! Run: `cargo bench -p costtrace --bench instrumentation`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use costtrace::sink::SinkSpec;
use costtrace::{Config, QueuePolicy, Usage, scope, tracked};
use criterion::{Criterion, criterion_group, criterion_main};

#[tracked]
fn tracked_sync(job_id: &str) -> usize {
    job_id.len()
}

#[tracked]
async fn tracked_async(job_id: &str) -> usize {
    job_id.len()
}

/// Polls `f` once, where it is made. Inlined: as a call, the future was
/// passed by value and then pinned, a copy of the whole future (a `memcpy`
/// call) that an `.await` of the same call inside an async caller does not
/// make, and that was ~15 ns of the async `#[tracked]` figure.
#[inline(always)]
fn poll_once<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = TaskContext::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the benchmarked future never awaits"),
    }
}

/// Builds, enters and exits a scope with 1,000 attributes.
fn bench_1000_attrs(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let keys: Vec<String> = (0..1000).map(|i| format!("key_{i}")).collect();
    let vals: Vec<String> = (0..1000).map(|i| format!("value_{i}")).collect();
    g.bench_function("context_1000_attrs_build_enter_exit", |b| {
        b.iter(|| {
            let mut s = scope("big");
            for (k, v) in keys.iter().zip(&vals) {
                s = s.attr(k, v);
            }
            let _g = s.enter();
            black_box(costtrace::current().get("key_500").map(str::len));
        })
    });
}

fn caller(c: &mut Criterion) {
    let guard = Config::new()
        .no_spool()
        .sink(SinkSpec::None)
        .init()
        .unwrap();
    let mut g = c.benchmark_group("caller");

    g.bench_function("scope_enter_exit", |b| {
        b.iter(|| {
            let _s = scope("op").enter();
        })
    });
    g.bench_function("scope_enter_exit_with_2_attrs", |b| {
        b.iter(|| {
            let _s = scope("op")
                .attr("job_id", "job-123")
                .attr("tenant_id", "acme")
                .enter();
        })
    });
    g.bench_function("scope_3_level_nesting", |b| {
        b.iter(|| {
            let _a = scope("a").attr("job_id", "job-1").enter();
            let _b = scope("b").enter();
            let _c = scope("c").enter();
        })
    });
    g.bench_function("tracked_sync_call", |b| {
        b.iter(|| tracked_sync(black_box("job-123")))
    });
    g.bench_function("tracked_async_call", |b| {
        b.iter(|| poll_once(tracked_async(black_box("job-123"))))
    });
    {
        let _outer = scope("outer")
            .attr("job_id", "job-1")
            .attr("tenant_id", "acme")
            .enter();
        let _inner = scope("inner").attr("stage", "ocr").enter();
        g.bench_function("current_get", |b| {
            b.iter(|| costtrace::current().get(black_box("job_id")).map(str::len))
        });
        g.bench_function("record_hot_path", |b| {
            b.iter(|| {
                costtrace::record(
                    Usage::llm("openai", "gpt-4o")
                        .operation("chat")
                        .input_tokens(black_box(1200))
                        .output_tokens(300),
                )
            })
        });
    }
    bench_1000_attrs(&mut g);
    g.bench_function("reference_tracing_span_registry", |b| {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            b.iter(|| {
                let span = tracing::info_span!("op");
                let _e = span.enter();
            })
        })
    });
    g.finish();
    let h = costtrace::health().unwrap();
    println!(
        "caller group: recorder wrote {} records and dropped {} (queue full)",
        h.written, h.dropped
    );
    drop(guard);
}

fn sustained(c: &mut Criterion) {
    let guard = Config::new()
        .no_spool()
        .sink(SinkSpec::None)
        .on_full(QueuePolicy::Block(Duration::from_secs(10)))
        .init()
        .unwrap();
    let mut g = c.benchmark_group("sustained");
    g.bench_function("scope_enter_exit", |b| {
        b.iter(|| {
            let _s = scope("op").attr("job_id", "job-123").enter();
        })
    });
    g.bench_function("record", |b| {
        let _s = scope("op").attr("job_id", "job-123").enter();
        b.iter(|| {
            costtrace::record(
                Usage::llm("openai", "gpt-4o")
                    .input_tokens(black_box(1200))
                    .output_tokens(300),
            )
        })
    });
    g.finish();
    let h = costtrace::health().unwrap();
    println!(
        "sustained group: recorder wrote {} records and dropped {}",
        h.written, h.dropped
    );
    drop(guard);
}

/// Times `op` in bursts of 256 and lets the recorder drain (`flush`, not
/// timed) between bursts: the caller's cost when the recorder keeps up, which
/// is the normal case in a service.
fn bursts(iters: u64, mut op: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(256);
        let t = std::time::Instant::now();
        for _ in 0..n {
            op();
        }
        total += t.elapsed();
        left -= n;
        costtrace::flush().unwrap();
    }
    total
}

fn caller_unsaturated(c: &mut Criterion) {
    let guard = Config::new()
        .no_spool()
        .sink(SinkSpec::None)
        .init()
        .unwrap();
    let mut g = c.benchmark_group("caller_unsaturated");
    g.bench_function("scope_enter_exit", |b| {
        b.iter_custom(|iters| {
            bursts(iters, || {
                let _s = scope("op").enter();
            })
        })
    });
    g.bench_function("tracked_sync_call", |b| {
        b.iter_custom(|iters| {
            bursts(iters, || {
                black_box(tracked_sync(black_box("job-123")));
            })
        })
    });
    g.bench_function("tracked_async_call", |b| {
        b.iter_custom(|iters| {
            bursts(iters, || {
                black_box(poll_once(tracked_async(black_box("job-123"))));
            })
        })
    });
    g.bench_function("record", |b| {
        let _s = scope("op").attr("job_id", "job-123").enter();
        b.iter_custom(|iters| {
            bursts(iters, || {
                costtrace::record(
                    Usage::llm("openai", "gpt-4o")
                        .input_tokens(black_box(1200))
                        .output_tokens(300),
                );
            })
        })
    });
    g.bench_function("reference_tracing_span_registry", |b| {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            b.iter_custom(|iters| {
                bursts(iters, || {
                    let span = tracing::info_span!("op");
                    let _e = span.enter();
                })
            })
        })
    });
    g.finish();
    let h = costtrace::health().unwrap();
    println!(
        "caller_unsaturated group: recorder wrote {} records and dropped {}",
        h.written, h.dropped
    );
    drop(guard);
}

fn no_recorder(c: &mut Criterion) {
    let mut g = c.benchmark_group("no_recorder");
    g.bench_function("scope_enter_exit", |b| {
        b.iter(|| {
            let _s = scope("op").enter();
        })
    });
    bench_1000_attrs(&mut g);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = caller, caller_unsaturated, sustained, no_recorder
}
criterion_main!(benches);
