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
    rt: tokio::runtime::Runtime,
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

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
        && let Some((user, _)) = creds.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

impl StoreSink {
    /// Opens `url`. SQLite is opened now (a bad path is an error at start-up);
    /// PostgreSQL on the first write.
    pub fn open(url: &str) -> Result<StoreSink, crate::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(crate::Error::Thread)?;
        let mut sink = StoreSink {
            rt,
            url: url.to_owned(),
            store: None,
        };
        if !is_postgres(url) {
            sink.connect().map_err(|e| crate::Error::InvalidSink {
                value: redact_url(url),
                reason: e.message,
            })?;
        }
        Ok(sink)
    }

    fn connect(&mut self) -> Result<&AnyStore, SinkError> {
        if self.store.is_none() {
            let store = self
                .rt
                .block_on(AnyStore::open(&self.url))
                .map_err(|e| SinkError::new(e.to_string()))?;
            self.store = Some(store);
        }
        self.store
            .as_ref()
            .ok_or_else(|| SinkError::new("not connected"))
    }
}

pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Sink for StoreSink {
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let store = self.connect()?.clone();
        match self.rt.block_on(store.insert_records(records)) {
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
