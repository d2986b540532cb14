use costtrace_core::EnvironmentError;

/// Everything that can go wrong when setting costtrace up. Recording itself
/// never returns errors to the application: failures there are counted in
/// [`crate::RecorderHealth`] and logged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    #[error("cannot load prices: {0}")]
    Prices(#[from] costtrace_pricing::PricingError),
    #[error("COSTTRACE_SINK is {value:?}: {reason}")]
    InvalidSink { value: String, reason: String },
    #[error("{name} is {value:?}: {reason}")]
    InvalidSetting {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot open sink {sink}: {source}")]
    SinkOpen {
        sink: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot open the spool directory {dir}: {source} (set COSTTRACE_SPOOL_DIR to a writable directory)"
    )]
    SpoolOpen {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "a costtrace recorder is already installed; drop its InitGuard before calling init() again"
    )]
    AlreadyInitialized,
    #[error("no costtrace recorder is installed: call costtrace::init() first")]
    NotInitialized,
    #[error(
        "the recorder did not finish flushing within {0:?}; records still queued are written in the background"
    )]
    FlushTimeout(std::time::Duration),
    #[error(
        "{records} records are not delivered yet: the sink is failing and they could not be spooled (no spool, or the spool cannot be written), so they are only in memory, retried on every flush and lost if the process exits; see costtrace::health()"
    )]
    NotDelivered { records: u64 },
    #[error("could not start the recorder thread: {0}")]
    Thread(#[source] std::io::Error),
}
