//! `http://HOST[:PORT]/api/ingest`: records sent to a costtrace server, which
//! stores them (idempotently by record id) in its own store. The API key, if
//! any, comes from `COSTTRACE_API_KEY` and is sent as `Authorization: Bearer`;
//! it never appears in logs or errors.
//!
//! Plain HTTP/1.1 over a `TcpStream` (the recorder thread is synchronous and
//! sends one batch at a time), so use it on loopback or a trusted network;
//! `https://` is refused with a clear message until TLS support lands. Any
//! failure (connection refused, timeout, 5xx, 401, 413) is a sink error: the
//! batch goes to the spool and is replayed later.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use costtrace_core::Record;

use crate::sink::{Sink, SinkError};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Posts record batches to a costtrace server's `/api/ingest`.
pub struct HttpSink {
    host: String,
    port: u16,
    path: String,
    api_key: Option<String>,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.describe())
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// Parses `http://host[:port]/path`.
    pub fn new(url: &str, api_key: Option<String>) -> Result<HttpSink, String> {
        if url.starts_with("https://") {
            return Err("https:// ingest is not supported yet; use http:// on loopback or a trusted network".into());
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or("expected http://HOST[:PORT]/api/ingest")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/api/ingest"),
        };
        if authority.contains('@') {
            return Err("put the API key in COSTTRACE_API_KEY, not in the URL".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        Ok(HttpSink {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            api_key: api_key.filter(|k| !k.trim().is_empty()),
        })
    }

    fn post(&self, body: &[u8]) -> Result<(u16, String), String> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("cannot resolve {}", self.host))?;
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: costtrace/{}\r\n",
            self.path,
            self.host,
            self.port,
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        if let Some(k) = &self.api_key {
            head.push_str("Authorization: Bearer ");
            head.push_str(k);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        s.write_all(body).map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&resp);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or("the server's answer is not HTTP")?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        Ok((status, body))
    }
}

impl Sink for HttpSink {
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let body = serde_json::to_vec(records).map_err(|e| SinkError::new(e.to_string()))?;
        let (status, answer) = self.post(&body).map_err(SinkError::new)?;
        match status {
            200..=299 => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&answer)
                    && let Some(rej) = v.get("rejected").and_then(|r| r.as_array())
                    && !rej.is_empty()
                {
                    // Invalid records never become valid by retrying.
                    tracing::warn!(
                        rejected = rej.len(),
                        "costtrace server rejected records: {}",
                        rej[0]
                    );
                }
                Ok(())
            }
            // Nothing in the batch was valid: retrying cannot help either.
            422 => {
                tracing::warn!("costtrace server rejected a whole batch: {answer}");
                Ok(())
            }
            _ => {
                let detail: String = answer.chars().take(200).collect();
                Err(SinkError::new(format!(
                    "server answered {status}: {detail}"
                )))
            }
        }
    }

    fn describe(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::HttpSink;
    use crate::sink::Sink;

    #[test]
    fn urls_are_checked() {
        let s =
            HttpSink::new("http://127.0.0.1:8000/api/ingest", Some("ct_secret".into())).unwrap();
        assert_eq!(s.describe(), "http://127.0.0.1:8000/api/ingest");
        assert!(!format!("{s:?}").contains("ct_secret"));
        assert!(
            HttpSink::new("https://x/api/ingest", None)
                .unwrap_err()
                .contains("not supported yet")
        );
        assert!(
            HttpSink::new("http://user:pw@x/api/ingest", None)
                .unwrap_err()
                .contains("COSTTRACE_API_KEY")
        );
        assert!(HttpSink::new("http://x:notaport/", None).is_err());
        assert_eq!(
            HttpSink::new("http://localhost", None).unwrap().describe(),
            "http://localhost:80/api/ingest"
        );
    }
}
