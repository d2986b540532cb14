//! The store sinks: `sqlite:PATH` (the default) and `postgres://…`.
//!
//! The recorder thread is a plain thread and the store is async, so the sink
//! owns a small current-thread tokio runtime. PostgreSQL is connected lazily
//! and reconnected after errors: a database that is down at start-up or goes
//! down later makes writes fail, and the recorder spools them until it is
//! back. Writes are idempotent by record id, so spool replays never count a
//! record twice. Connecting and each write give up after ten seconds (as the
//! HTTP sink does): a database that hangs is an error, and the records go to
//! the spool instead of stalling the recorder.

use costtrace_core::Record;
use costtrace_store::{AnyStore, Store};

use crate::sink::{Sink, SinkError};

/// How long connecting or one write may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes records into a costtrace store.
pub struct StoreSink {
    /// `Option` only so that `Drop` can take it: dropping a runtime blocks,
    /// which panics inside an async context.
    rt: Option<tokio::runtime::Runtime>,
    url: String,
    store: Option<AnyStore>,
    timeout: std::time::Duration,
}

impl std::fmt::Debug for StoreSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSink")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

pub(crate) use crate::sink::redact_url;

impl StoreSink {
    /// Opens `url`. SQLite is opened now (a bad path is an error at start-up);
    /// PostgreSQL on the first write.
    pub fn open(url: &str) -> Result<StoreSink, crate::Error> {
        // Opening blocks on the sink's own runtime, which must not happen on a
        // thread that is already running async code (`init()` is often called
        // in `#[tokio::main]`): do it on a short-lived plain thread.
        let url = url.to_owned();
        std::thread::scope(|s| {
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(crate::Error::Thread)?;
                let mut sink = StoreSink {
                    rt: Some(rt),
                    url,
                    store: None,
                    timeout: TIMEOUT,
                };
                if !is_postgres(&sink.url) {
                    let shown = redact_url(&sink.url);
                    sink.connect().map_err(|e| crate::Error::InvalidSink {
                        value: shown,
                        reason: e.message,
                    })?;
                }
                Ok(sink)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(crate::Error::Thread(std::io::Error::other(
                    "the thread opening the store panicked",
                )))
            })
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output, SinkError> {
        match &self.rt {
            Some(rt) => Ok(rt.block_on(f)),
            None => Err(SinkError::new("the sink is shut down")),
        }
    }

    /// Runs `f` on the sink's runtime, an error after the timeout.
    fn block_on_timeout<F: std::future::Future>(&self, f: F) -> Result<F::Output, SinkError> {
        let timeout = self.timeout;
        // The timer is made inside the runtime (it needs its clock).
        self.block_on(async move { tokio::time::timeout(timeout, f).await })?
            .map_err(|_| SinkError::new(format!("timed out after {timeout:?}")))
    }

    fn connect(&mut self) -> Result<&AnyStore, SinkError> {
        if self.store.is_none() {
            let store = self
                .block_on_timeout(AnyStore::open(&self.url))?
                .map_err(|e| SinkError::new(e.to_string()))?;
            self.store = Some(store);
        }
        self.store
            .as_ref()
            .ok_or_else(|| SinkError::new("not connected"))
    }
}

impl Drop for StoreSink {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Sink for StoreSink {
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let store = self.connect()?.clone();
        let res = match self.block_on_timeout(store.insert_records(records)) {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => SinkError::new(e.to_string()),
            Err(e) => e,
        };
        // Reconnect next time (PostgreSQL may have restarted, or hang).
        if is_postgres(&self.url) {
            self.store = None;
        }
        Err(res)
    }

    fn describe(&self) -> String {
        redact_url(&self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_database_that_never_answers_is_an_error_after_the_timeout() {
        // Accepts connections and never says a word.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _keep = std::thread::spawn(move || {
            let conns: Vec<_> = listener.incoming().take(2).collect();
            std::thread::sleep(Duration::from_secs(30));
            drop(conns);
        });
        let mut sink = StoreSink::open(&format!("postgres://app@127.0.0.1:{port}/c")).unwrap();
        sink.timeout = Duration::from_millis(300);
        let rec = crate::spool::tests::rec(1);
        let t0 = Instant::now();
        let e = sink.write(&[rec]).unwrap_err();
        assert_eq!(e.message, "timed out after 300ms");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn urls_lose_their_password_in_logs() {
        assert_eq!(
            super::redact_url("postgres://app:s3cr3t@db:5432/costs"),
            "postgres://app:***@db:5432/costs"
        );
        assert_eq!(
            super::redact_url("sqlite:./costtrace.db"),
            "sqlite:./costtrace.db"
        );
    }
}
