//! The global recorder: JSON Lines sink, environment, flushing, never
//! blocking, never losing a batch to a failed write. One test binary, tests
//! serialized: there is one global recorder per process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use costtrace::sink::{Sink, SinkError, SinkSpec};
use costtrace::{Config, Environment, QueuePolicy, Record, Usage, scope};

static SERIAL: Mutex<()> = Mutex::new(());

/// A config whose spool lives in a fresh temporary directory.
fn cfg() -> Config {
    let dir = tempfile::tempdir().unwrap().keep();
    Config::new().spool_dir(dir)
}

/// A config writing JSON lines to `path`, with no timed flush: records
/// reach the file on `flush()` or when the guard drops.
fn jsonl_to(path: &std::path::Path) -> Config {
    cfg()
        .sink(SinkSpec::Jsonl(path.to_path_buf()))
        .flush_interval(Duration::from_secs(3600))
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records `input_tokens(i)` for each `i` of `n`, in order.
fn record_tokens(n: std::ops::Range<u64>) {
    for i in n {
        costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(i));
    }
}

/// The `input_tokens` of the usage records in a JSON Lines sink, in order.
fn written_tokens(path: &std::path::Path) -> Vec<u64> {
    read_jsonl(path)
        .iter()
        .filter_map(Record::as_usage)
        .map(|u| u.input_tokens.unwrap_or(u64::MAX))
        .collect()
}

fn read_jsonl(path: &std::path::Path) -> Vec<Record> {
    let f = std::fs::File::open(path).unwrap();
    std::io::BufReader::new(f)
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

#[test]
fn jsonl_sink_gets_every_record_by_the_time_the_guard_drops() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/costs.jsonl");
    let guard = jsonl_to(&path)
        .environment(Environment::Staging)
        .init()
        .unwrap();
    scope("receipt_processing")
        .attr("job_id", "job-123")
        .run(|| {
            for i in 0..1000 {
                costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(i));
            }
        });
    drop(guard);
    let records = read_jsonl(&path);
    assert_eq!(records.len(), 1001);
    let scope_rec = records.iter().find_map(Record::as_scope).unwrap();
    let usages: Vec<_> = records.iter().filter_map(Record::as_usage).collect();
    assert_eq!(usages.len(), 1000);
    assert!(usages.iter().all(|u| u.environment == Environment::Staging));
    assert!(usages.iter().all(|u| u.scope_id == Some(scope_rec.id)));
    assert!(usages.iter().all(|u| u.attrs["job_id"] == "job-123"));
    let mut tokens: Vec<u64> = usages.iter().map(|u| u.input_tokens.unwrap()).collect();
    tokens.sort_unstable();
    assert_eq!(tokens, (0..1000).collect::<Vec<_>>());
    assert!(
        costtrace::health().is_none(),
        "uninstalled after the guard drops"
    );
}

#[test]
fn flush_makes_records_durable_while_running() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("costs.jsonl");
    let _guard = jsonl_to(&path).init().unwrap();
    costtrace::record(Usage::service("file_processor").units("pages", 10));
    costtrace::flush().unwrap();
    let recs = read_jsonl(&path);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].as_usage().unwrap().units["pages"], 10);
    let h = costtrace::health().unwrap();
    assert_eq!((h.written, h.dropped, h.queued), (1, 0, 0));
}

/// Spent usage events come back to their thread and are reused, and one
/// that comes back while its scope is still the one being recorded in keeps
/// its reference to the scope's frame (so the next record there needs no
/// reference-count update). Whatever a reused event held before, each
/// record carries the scope it was made in, and each scope is recorded once.
#[test]
fn reused_usage_events_carry_the_scope_they_are_recorded_in() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("costs.jsonl");
    let guard = jsonl_to(&path).init().unwrap();
    // Flushes between bursts hand the spent events back to this thread.
    let burst = |from: u64| {
        for chunk in (from..from + 300).collect::<Vec<_>>().chunks(100) {
            record_tokens(chunk[0]..chunk[0] + chunk.len() as u64);
            costtrace::flush().unwrap();
        }
    };
    let a = scope("a").attr("k", "a").enter();
    let a_id = costtrace::current().scope_id().unwrap();
    burst(0);
    let b = scope("b").attr("k", "b").enter();
    let b_id = costtrace::current().scope_id().unwrap();
    burst(1000);
    drop(b);
    burst(2000);
    drop(a);
    burst(3000);
    let c_id = scope("c").attr("k", "c").run(|| {
        burst(4000);
        costtrace::current().scope_id().unwrap()
    });
    burst(5000);
    drop(guard);

    let records = read_jsonl(&path);
    let scopes: Vec<_> = records.iter().filter_map(Record::as_scope).collect();
    let mut names: Vec<&str> = scopes.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "c"]);
    for s in &scopes {
        assert_eq!(s.attrs["k"], s.name);
    }
    let usages: Vec<_> = records.iter().filter_map(Record::as_usage).collect();
    assert_eq!(usages.len(), 1800);
    for u in usages {
        let t = u.input_tokens.unwrap();
        let (scope_id, k) = match t / 1000 {
            0 | 2 => (Some(a_id), Some("a")),
            1 => (Some(b_id), Some("b")),
            4 => (Some(c_id), Some("c")),
            _ => (None, None),
        };
        assert_eq!(u.scope_id, scope_id, "usage {t}");
        assert_eq!(u.attrs.get("k").map(String::as_str), k, "usage {t}");
    }
}

#[test]
fn a_second_init_is_an_error_not_a_silent_replacement() {
    let _s = serial();
    let _g = cfg().sink(SinkSpec::None).init().unwrap();
    let e = cfg().sink(SinkSpec::None).init().unwrap_err();
    assert!(matches!(e, costtrace::Error::AlreadyInitialized), "{e}");
}

/// A sink that blocks until released.
struct Gate {
    open: Arc<(Mutex<bool>, std::sync::Condvar)>,
    written: Arc<AtomicUsize>,
}

impl Sink for Gate {
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let (m, cv) = &*self.open;
        let mut open = m.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.written.fetch_add(records.len(), Ordering::SeqCst);
        Ok(())
    }
    fn describe(&self) -> String {
        "gate".into()
    }
}

/// Installs `config` with a sink that is stuck until released, runs `work`
/// (which makes `n` records) on another thread, and checks that it never
/// blocked and that at most one buffer of `per_buffer` records is queued and
/// one more is being written (the rest counted as dropped); then releases the
/// sink and checks that every accepted record is written.
fn against_a_stuck_sink(
    config: Config,
    n: u64,
    per_buffer: u64,
    work: impl FnOnce() + Send + 'static,
) {
    let open = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let written = Arc::new(AtomicUsize::new(0));
    let guard = config
        .custom_sink(Gate {
            open: open.clone(),
            written: written.clone(),
        })
        .batch_size(10)
        .init()
        .unwrap();
    // If recording blocked on the stuck sink this thread would never finish.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        work();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("recording blocked on a stuck sink");
    let h = costtrace::health().unwrap();
    assert!(h.queued <= per_buffer, "{h:?}");
    assert!(h.dropped >= n - 2 * per_buffer, "drops are counted: {h:?}");
    // Release the sink: everything that was accepted is written.
    *open.0.lock().unwrap() = true;
    open.1.notify_all();
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!(h.written + h.dropped, n, "{h:?}");
    assert_eq!(written.load(Ordering::SeqCst) as u64, h.written);
    drop(guard);
}

/// A thread's events pass through a ring of 1,024 slots and, past it, larger
/// rings up to the queue capacity: all of them arrive, in the order they
/// were recorded, and those past the capacity are counted as dropped.
#[test]
fn events_past_the_ring_overflow_in_order_up_to_the_capacity() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("costs.jsonl");
    let guard = cfg()
        .sink(SinkSpec::Jsonl(path.clone()))
        .queue_capacity(5_000)
        // No tick; the recorder is woken only when a queue holds 5,000
        // events (the batch size is capped at the capacity).
        .batch_size(100_000)
        .flush_interval(Duration::from_secs(3600))
        .init()
        .unwrap();
    record_tokens(0..3_000);
    assert_eq!(costtrace::health().unwrap().queued, 3_000);
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!((h.written, h.dropped, h.queued), (3_000, 0, 0));
    // The rings are free again: up to one below the capacity (nothing
    // drains yet).
    record_tokens(3_000..7_999);
    let h = costtrace::health().unwrap();
    assert_eq!((h.queued, h.dropped), (4_999, 0));
    // Past the capacity: the recorder is woken and drains while more come;
    // whatever does not fit is counted.
    record_tokens(7_999..9_000);
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!(h.written + h.dropped, 9_000, "{h:?}");
    // Still taken after the queue was emptied.
    record_tokens(9_000..9_010);
    drop(guard);
    let seen = written_tokens(&path);
    assert_eq!(seen.len() as u64, 9_010 - h.dropped);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "records out of order");
    // Everything up to the capacity arrived, and the last ten.
    assert_eq!(seen[..8_000], (0..8_000).collect::<Vec<u64>>()[..]);
    assert_eq!(
        seen[seen.len() - 10..],
        (9_000..9_010).collect::<Vec<u64>>()[..]
    );
}

/// While the recorder drains a thread's rings concurrently with
/// the thread's pushes, the thread's records still arrive in the order they
/// were made, and every one is either written or counted as dropped.
#[test]
fn one_threads_records_stay_in_order_while_the_recorder_drains() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("costs.jsonl");
    let guard = cfg()
        .sink(SinkSpec::Jsonl(path.clone()))
        .queue_capacity(20_000)
        .batch_size(1_000)
        .init()
        .unwrap();
    let n = 100_000u64;
    record_tokens(0..n);
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    drop(guard);
    let seen = written_tokens(&path);
    assert_eq!(seen.len() as u64 + h.dropped, n, "{h:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "records out of order");
}

#[test]
fn recording_never_blocks_on_a_stuck_sink_and_counts_every_drop() {
    let _s = serial();
    against_a_stuck_sink(cfg().queue_capacity(100), 10_000, 100, || {
        for i in 0..10_000 {
            costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(i));
        }
    });
}

#[test]
fn queued_attribute_bytes_are_bounded_too() {
    let _s = serial();
    let config = cfg().queue_capacity(100_000).queue_bytes(64 << 10);
    // At least 1,900 bytes of attributes per scope (100 keys of 7 and values
    // of 10 bytes): no more than 35 fit under 64 KiB (the bound is checked
    // before a push, so one more gets in).
    against_a_stuck_sink(config, 1_000, 35, || {
        for _ in 0..1_000 {
            let _s = scope("big")
                .attrs((0..100).map(|i| (format!("key_{i:03}"), format!("value_{i:04}"))))
                .enter();
        }
    });
}

#[test]
fn block_policy_waits_for_room_instead_of_dropping() {
    let _s = serial();
    let written = Arc::new(AtomicUsize::new(0));
    let open = Arc::new((Mutex::new(true), std::sync::Condvar::new()));
    let guard = cfg()
        .custom_sink(Gate {
            open,
            written: written.clone(),
        })
        .queue_capacity(16)
        .on_full(QueuePolicy::Block(Duration::from_secs(30)))
        .init()
        .unwrap();
    for i in 0..5_000 {
        costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(i));
    }
    costtrace::flush().unwrap();
    assert_eq!(costtrace::health().unwrap().dropped, 0);
    assert_eq!(written.load(Ordering::SeqCst), 5_000);
    drop(guard);
}

/// Fails its first `fail_first` writes, panics once, then works.
struct Flaky {
    calls: usize,
    fail_first: usize,
    seen: Arc<Mutex<Vec<uuid::Uuid>>>,
}

impl Sink for Flaky {
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.calls += 1;
        if self.calls <= self.fail_first {
            return Err(SinkError::new("database is down"));
        }
        if self.calls == self.fail_first + 1 {
            panic!("driver bug");
        }
        let mut seen = self.seen.lock().unwrap();
        for r in records {
            seen.push(r.as_usage().unwrap().id);
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

#[test]
fn failed_and_panicking_writes_are_retried_and_nothing_is_written_twice() {
    let _s = serial();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = cfg()
        .custom_sink(Flaky {
            calls: 0,
            fail_first: 3,
            seen: seen.clone(),
        })
        .batch_size(50)
        .flush_interval(Duration::from_millis(5))
        .init()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..500 {
        ids.push(costtrace::record(
            Usage::llm("openai", "gpt-4o").input_tokens(i),
        ));
    }
    // Each flush is one more attempt; a few get past the failures. Until
    // then records wait in the spool, in order.
    for _ in 0..10 {
        costtrace::flush().unwrap();
    }
    let h = costtrace::health().unwrap();
    assert!(h.failed_writes >= 4, "{h:?}");
    assert!(h.last_error.as_deref().unwrap().contains("flaky"), "{h:?}");
    assert_eq!((h.retry_pending, h.spooled), (0, 0), "{h:?}");
    assert!(h.replayed > 0, "records went through the spool: {h:?}");
    assert_eq!(h.written, 500, "{h:?}");
    drop(guard);
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "every record exactly once");
}

/// While `down`, each write takes `delay` and then fails (a database that
/// hangs until its timeout); then it works.
struct SlowThenUp {
    down: Arc<std::sync::atomic::AtomicBool>,
    delay: Duration,
    attempts: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<uuid::Uuid>>>,
}

impl Sink for SlowThenUp {
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        if self.down.load(Ordering::SeqCst) {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            return Err(SinkError::new("timed out"));
        }
        let mut seen = self.seen.lock().unwrap();
        seen.extend(records.iter().map(|r| r.as_usage().unwrap().id));
        Ok(())
    }
    fn describe(&self) -> String {
        "slow".into()
    }
}

/// Polls `health()` until `done` holds or `within` passed; returns the last.
fn wait_for(
    within: Duration,
    done: impl Fn(&costtrace::RecorderHealth) -> bool,
) -> costtrace::RecorderHealth {
    let deadline = std::time::Instant::now() + within;
    loop {
        let h = costtrace::health().unwrap();
        if done(&h) || std::time::Instant::now() > deadline {
            return h;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_slow_failing_sink_is_backed_off_and_batches_go_straight_to_the_spool() {
    let _s = serial();
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let guard = cfg()
        .custom_sink(SlowThenUp {
            down: down.clone(),
            delay: Duration::from_millis(300),
            attempts: attempts.clone(),
            seen: seen.clone(),
        })
        .batch_size(10)
        .flush_interval(Duration::from_millis(10))
        .init()
        .unwrap();
    let mut ids = Vec::new();
    for burst in 0..20 {
        for i in 0..10 {
            ids.push(costtrace::record(
                Usage::llm("openai", "gpt-4o").input_tokens(burst * 10 + i),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Without a back-off every batch would wait 300 ms for the sink: 6 s.
    let h = wait_for(Duration::from_millis(1500), |h| h.spooled == 200);
    assert_eq!(
        (h.spooled, h.dropped, h.retry_pending),
        (200, 0, 0),
        "{h:?}"
    );
    assert!(attempts.load(Ordering::SeqCst) <= 3, "{h:?}");
    // The sink recovers: the next attempt (within the back-off) replays.
    down.store(false, Ordering::SeqCst);
    let h = wait_for(Duration::from_secs(10), |h| h.written == 200);
    assert_eq!((h.written, h.spooled, h.replayed), (200, 0, 200), "{h:?}");
    drop(guard);
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "every record exactly once");
}

/// A sink that is always down.
struct AlwaysErr;

impl Sink for AlwaysErr {
    fn write(&mut self, _records: &[Record]) -> Result<(), SinkError> {
        Err(SinkError::new("database is down"))
    }
    fn describe(&self) -> String {
        "always-err".into()
    }
}

#[test]
fn flush_is_an_error_while_records_are_only_in_memory() {
    let _s = serial();
    let guard = Config::new()
        .no_spool()
        .custom_sink(AlwaysErr)
        .flush_interval(Duration::from_secs(60))
        .init()
        .unwrap();
    costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(1));
    let e = costtrace::flush().unwrap_err();
    assert!(
        matches!(e, costtrace::Error::NotDelivered { records: 1 }),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("1 records are not delivered"),
        "{e}"
    );
    let e = costtrace::flush_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(
        matches!(e, costtrace::Error::NotDelivered { records: 1 }),
        "{e}"
    );
    assert_eq!(costtrace::health().unwrap().retry_pending, 1);
    drop(guard);
}

#[test]
#[allow(unsafe_code)]
fn environment_comes_from_the_environment_and_bad_values_are_errors() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.jsonl");
    // SAFETY: tests in this binary are serialized by SERIAL, and nothing else
    // in the process reads the environment concurrently.
    unsafe {
        std::env::set_var("COSTTRACE_SPOOL_DIR", dir.path().join("spool"));
        std::env::set_var("ENVIRONMENT", "prod");
        std::env::set_var("COSTTRACE_SINK", format!("jsonl:{}", path.display()));
    }
    let err = costtrace::init().unwrap_err().to_string();
    assert!(
        err.contains("\"prod\"") && err.contains("production, staging, cicd, development"),
        "{err}"
    );
    unsafe { std::env::set_var("COSTTRACE_SINK", "kafka://nope") };
    unsafe { std::env::set_var("ENVIRONMENT", "cicd") };
    let err = costtrace::init().unwrap_err().to_string();
    assert!(
        err.contains("COSTTRACE_SINK") && err.contains("jsonl:PATH"),
        "{err}"
    );
    unsafe { std::env::set_var("COSTTRACE_SINK", format!("jsonl:{}", path.display())) };
    let guard = costtrace::init().unwrap();
    costtrace::record(Usage::llm("openai", "gpt-4o"));
    drop(guard);
    unsafe {
        std::env::remove_var("ENVIRONMENT");
        std::env::remove_var("COSTTRACE_SINK");
        std::env::remove_var("COSTTRACE_SPOOL_DIR");
    }
    let recs = read_jsonl(&path);
    assert_eq!(recs[0].as_usage().unwrap().environment, Environment::Cicd);
}
