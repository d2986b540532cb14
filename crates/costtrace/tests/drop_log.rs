//! Records dropped because a queue was full are logged by the recorder's
//! thread, never by the application thread that dropped them: that thread is
//! inside costtrace's own state at that moment (ending a scope), and a
//! `tracing` subscriber run there could not read the costtrace context.
//! Its own test binary: it installs a global subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Condvar, Mutex};

use costtrace::sink::{Sink, SinkError};
use costtrace::{Config, Record, scope};

/// A sink that blocks until released, so that the queue fills up.
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Sink for Gate {
    fn write(&mut self, _records: &[Record]) -> Result<(), SinkError> {
        let (m, cv) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "gate".into()
    }
}

/// Each event's thread name and message.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(String, String)>>>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut m = Message(String::new());
        event.record(&mut m);
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        self.0.lock().unwrap().push((thread, m.0));
    }
}

#[test]
fn drops_are_counted_on_the_application_thread_and_logged_by_the_recorder() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = Captured::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logs.clone()))
        .unwrap();

    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let guard = Config::new()
        .no_spool()
        .queue_capacity(64)
        .batch_size(10)
        .custom_sink(Gate(gate.clone()))
        .init()
        .unwrap();
    std::thread::Builder::new()
        .name("application".into())
        .spawn(|| {
            for _ in 0..20_000 {
                let _s = scope("op").attr("k", "v").enter();
            }
        })
        .unwrap()
        .join()
        .unwrap();
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert!(
        h.dropped > 10_000,
        "the stuck sink made the queue drop: {h:?}"
    );
    assert_eq!(h.written + h.dropped, 20_000, "{h:?}");
    drop(guard);

    let events = logs.0.lock().unwrap().clone();
    let drop_lines: Vec<&(String, String)> = events
        .iter()
        .filter(|(_, m)| m.contains("dropped records"))
        .collect();
    assert!(!drop_lines.is_empty(), "drops were logged: {events:?}");
    for (thread, m) in &drop_lines {
        assert_eq!(thread, "costtrace-recorder", "logged by the recorder: {m}");
    }
    // The first drop, then one line per 10,000 more at most.
    assert!(
        drop_lines.len() as u64 <= 1 + h.dropped / 10_000,
        "{drop_lines:?}"
    );
}
