//! The store sinks: `sqlite:PATH` (the default) and `postgres://…`.
//!
//! The recorder thread is a plain thread and the store is async, so the sink
//! owns a small current-thread tokio runtime. PostgreSQL is connected lazily
//! and reconnected after errors: a database that is down at start-up or goes
//! down later makes writes fail, and the recorder spools them until it is
//! back. Writes are idempotent by record id, so spool replays never count a
//! record twice.

use costtrace_core::Record;
use costtrace_store::{AnyStore, Store};

use crate::sink::{Sink, SinkError};

/// Writes records into a costtrace store.
pub struct StoreSink {
    /// `Option` only so that `Drop` can take it: dropping a runtime blocks,
    /// which panics inside an async context.
    rt: Option<tokio::runtime::Runtime>,
    url: String,
    store: Option<AnyStore>,
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

    fn connect(&mut self) -> Result<&AnyStore, SinkError> {
        if self.store.is_none() {
            let store = self
                .block_on(AnyStore::open(&self.url))?
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
        match self.block_on(store.insert_records(records))? {
            Ok(_) => Ok(()),
            Err(e) => {
                // Reconnect next time (PostgreSQL may have restarted).
                if is_postgres(&self.url) {
                    self.store = None;
                }
                Err(SinkError::new(e.to_string()))
            }
        }
    }

    fn describe(&self) -> String {
        redact_url(&self.url)
    }
}

#[cfg(test)]
mod tests {
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
