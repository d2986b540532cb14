//! Sinks: where the recorder writes records.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use costtrace_core::Record;

/// A destination for records. Called only from the recorder's background
/// thread, with batches; an error keeps the batch for a retry.
pub trait Sink: Send + 'static {
    /// Writes a batch. Must be idempotent by record id where the destination
    /// allows it: a batch may be written again after an error.
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError>;

    /// Makes everything written so far durable.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// A short description for logs and errors (`jsonl:/var/log/ct.jsonl`).
    fn describe(&self) -> String;

    /// How many records the destination refused for good since the last
    /// call: they can never be accepted (too large, invalid), so `write`
    /// returned `Ok` for them rather than an error that would retry them
    /// forever. The recorder counts them in
    /// [`RecorderHealth::rejected`](crate::RecorderHealth::rejected).
    fn take_rejected(&mut self) -> u64 {
        0
    }
}

/// A sink failed to write.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub message: String,
}

impl SinkError {
    pub fn new(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
        }
    }
}

impl From<io::Error> for SinkError {
    fn from(e: io::Error) -> Self {
        SinkError::new(e.to_string())
    }
}

/// A sink named by a string, as in `COSTTRACE_SINK`. Its `Debug` and
/// `Display` hide passwords (see [`SinkSpec::Store`]).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkSpec {
    /// `jsonl:PATH`: one JSON record per line, appended.
    Jsonl(PathBuf),
    /// `stdout`: JSON lines on standard output.
    Stdout,
    /// `none`: records are made and discarded (benchmarks, dry runs).
    None,
    /// `http(s)://HOST[:PORT]/api/ingest`: a costtrace server (API key from
    /// `COSTTRACE_API_KEY`; extra trusted CA certificates for `https://` from
    /// `COSTTRACE_CA_FILE`).
    Http(String),
    /// `sqlite:PATH` (the default, `sqlite:costtrace.db`) or
    /// `postgres://…`: a costtrace store.
    #[cfg(feature = "store")]
    Store(String),
}

impl SinkSpec {
    /// The sink used when `COSTTRACE_SINK` is not set.
    pub fn default_spec() -> SinkSpec {
        #[cfg(feature = "store")]
        return SinkSpec::Store("sqlite:costtrace.db".to_owned());
        #[cfg(not(feature = "store"))]
        return SinkSpec::Jsonl(PathBuf::from("costtrace.jsonl"));
    }

    pub(crate) fn open(&self) -> Result<Box<dyn Sink>, crate::Error> {
        Ok(match self {
            SinkSpec::Jsonl(path) => {
                Box::new(
                    JsonlSink::open(path).map_err(|source| crate::Error::SinkOpen {
                        sink: self.to_string(),
                        source,
                    })?,
                )
            }
            SinkSpec::Stdout => Box::new(JsonlSink::stdout()),
            SinkSpec::None => Box::new(NullSink),
            SinkSpec::Http(url) => Box::new(
                crate::http_sink::HttpSink::new(
                    url,
                    std::env::var("COSTTRACE_API_KEY").ok(),
                    std::env::var_os("COSTTRACE_CA_FILE")
                        .filter(|p| !p.is_empty())
                        .map(std::path::PathBuf::from)
                        .as_deref(),
                )
                .map_err(|reason| crate::Error::InvalidSink {
                    value: redact_url(url),
                    reason,
                })?,
            ),
            #[cfg(feature = "store")]
            SinkSpec::Store(url) => Box::new(crate::store_sink::StoreSink::open(url)?),
        })
    }
}

impl fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The redacted description only: a derived Debug would print the
        // URL with its password.
        match self {
            SinkSpec::Jsonl(p) => f.debug_tuple("Jsonl").field(p).finish(),
            SinkSpec::Stdout => f.write_str("Stdout"),
            SinkSpec::None => f.write_str("None"),
            SinkSpec::Http(url) => f.debug_tuple("Http").field(&redact_url(url)).finish(),
            #[cfg(feature = "store")]
            SinkSpec::Store(url) => f.debug_tuple("Store").field(&redact_url(url)).finish(),
        }
    }
}

impl fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkSpec::Jsonl(p) => write!(f, "jsonl:{}", p.display()),
            SinkSpec::Stdout => f.write_str("stdout"),
            SinkSpec::None => f.write_str("none"),
            SinkSpec::Http(url) => f.write_str(&redact_url(url)),
            #[cfg(feature = "store")]
            SinkSpec::Store(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl FromStr for SinkSpec {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| crate::Error::InvalidSink {
            value: redact_url(s),
            reason: reason.to_owned(),
        };
        let s = s.trim();
        if let Some(path) = s.strip_prefix("jsonl:") {
            if path.is_empty() {
                return Err(bad("jsonl needs a file path, e.g. jsonl:./costtrace.jsonl"));
            }
            return Ok(SinkSpec::Jsonl(PathBuf::from(path)));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            crate::http_sink::HttpSink::new(s, None, None).map_err(|r| bad(&r))?;
            return Ok(SinkSpec::Http(s.to_owned()));
        }
        #[cfg(feature = "store")]
        {
            if let Some(path) = s.strip_prefix("sqlite:") {
                if path.is_empty() {
                    return Err(bad("sqlite needs a file path, e.g. sqlite:./costtrace.db"));
                }
                return Ok(SinkSpec::Store(s.to_owned()));
            }
            if crate::store_sink::is_postgres(s) {
                return Ok(SinkSpec::Store(s.to_owned()));
            }
        }
        match s {
            "stdout" => Ok(SinkSpec::Stdout),
            "none" | "null" => Ok(SinkSpec::None),
            _ => Err(bad(
                "unknown sink; use sqlite:PATH, postgres://…, http://HOST/api/ingest, jsonl:PATH, stdout or none",
            )),
        }
    }
}

/// A sink URL or connection string fit for logs, errors and `Debug` (see
/// [`costtrace_core::secrets::redact_url`]).
pub(crate) use costtrace_core::secrets::redact_url;

/// JSON Lines to a file (appended) or to standard output.
pub struct JsonlSink {
    out: BufWriter<Box<dyn Write + Send>>,
    name: String,
    line: Vec<u8>,
}

impl fmt::Debug for JsonlSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlSink")
            .field("name", &self.name)
            .finish()
    }
}

impl JsonlSink {
    /// Opens (creating or appending to) `path`, creating missing directories.
    pub fn open(path: &Path) -> io::Result<JsonlSink> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file: File = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonlSink {
            out: BufWriter::with_capacity(64 * 1024, Box::new(file)),
            name: format!("jsonl:{}", path.display()),
            line: Vec::with_capacity(1024),
        })
    }

    pub fn stdout() -> JsonlSink {
        JsonlSink {
            out: BufWriter::new(Box::new(io::stdout())),
            name: "stdout".to_owned(),
            line: Vec::with_capacity(1024),
        }
    }
}

impl Sink for JsonlSink {
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        // Serialize the whole batch first so that a failure leaves no half batch.
        self.line.clear();
        for r in records {
            serde_json::to_writer(&mut self.line, r).map_err(|e| SinkError::new(e.to_string()))?;
            self.line.push(b'\n');
        }
        self.out.write_all(&self.line)?;
        self.out.flush()?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        Ok(())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Discards records.
#[derive(Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn write(&mut self, _records: &[Record]) -> Result<(), SinkError> {
        Ok(())
    }

    fn describe(&self) -> String {
        "none".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sink_specs_with_clear_errors() {
        assert_eq!(
            "jsonl:/tmp/x.jsonl".parse::<SinkSpec>().unwrap(),
            SinkSpec::Jsonl("/tmp/x.jsonl".into())
        );
        assert_eq!("stdout".parse::<SinkSpec>().unwrap(), SinkSpec::Stdout);
        let e = "kafka://x".parse::<SinkSpec>().unwrap_err().to_string();
        assert!(e.contains("kafka://x") && e.contains("jsonl:PATH"), "{e}");
        assert!("jsonl:".parse::<SinkSpec>().is_err());
    }

    #[test]
    fn passwords_in_urls_and_connection_strings_are_hidden() {
        let cases = [
            (
                "postgres://app:s3cret@db:5432/costs",
                "postgres://app:***@db:5432/costs",
            ),
            (
                "postgres://app@db/c?password=s3cret",
                "postgres://app@db/c?password=***",
            ),
            (
                "postgres://app@db/c?sslmode=require&sslpassword=s3cret&application_name=x",
                "postgres://app@db/c?sslmode=require&sslpassword=***&application_name=x",
            ),
            (
                "postgresql://app:p@ss/w?rd@db/c?PassWord=s3cret#frag",
                "postgresql://app:***@db/c?PassWord=***#frag",
            ),
            ("postgres://db/c?x=1&password=a@b", "postgres://***@b"),
            (
                "host=db user=app password=s3cret dbname=c",
                "host=db user=app password=*** dbname=c",
            ),
            (
                "host=db password = 's3 \\'cret' sslpassword=s3cret port=5432",
                "host=db password=*** sslpassword=*** port=5432",
            ),
            ("sqlite:./costtrace.db", "sqlite:./costtrace.db"),
            (
                "http://127.0.0.1:8000/api/ingest?token=s3cret",
                "http://127.0.0.1:8000/api/ingest?token=***",
            ),
        ];
        for (url, want) in cases {
            let got = redact_url(url);
            assert_eq!(got, want, "{url}");
            assert!(!got.contains("s3"), "{got}");
        }
    }

    #[test]
    fn sink_spec_debug_and_display_hide_passwords() {
        let spec = "postgres://app:s3cret@db/c?sslpassword=t0psecret"
            .parse::<SinkSpec>()
            .unwrap();
        assert_eq!(
            format!("{spec:?}"),
            r#"Store("postgres://app:***@db/c?sslpassword=***")"#
        );
        assert_eq!(spec.to_string(), "postgres://app:***@db/c?sslpassword=***");
        let e = "http://user:s3cret@x/api/ingest"
            .parse::<SinkSpec>()
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret") && e.contains("user:***@x"), "{e}");
    }
}
