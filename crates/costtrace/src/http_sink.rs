//! `http(s)://HOST[:PORT]/api/ingest`: records sent to a costtrace server,
//! which stores them (idempotently by record id) in its own store. The API
//! key, if any, comes from `COSTTRACE_API_KEY` and is sent as
//! `Authorization: Bearer`; it never appears in logs or errors.
//!
//! HTTP/1.1 over a blocking `TcpStream` (the recorder thread is synchronous
//! and sends one batch at a time). `https://` uses rustls (ring) and checks
//! the server against the Mozilla roots (webpki-roots), plus the PEM
//! certificates in `COSTTRACE_CA_FILE` when set (a private CA in front of the
//! server). A failure that may pass (connection refused, TLS, timeout, 5xx,
//! 401, 403, 404, 407, 408, 429) is a sink error: the batch goes to the spool
//! and is replayed later. A batch the server refuses for what it holds (413
//! too large, or another 4xx) is split in halves, each sent on its own, down
//! to single records; a single record still refused can never be accepted:
//! it is counted as rejected (see [`crate::RecorderHealth::rejected`]) and
//! logged by id (never its attributes), and delivery goes on without it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use costtrace_core::Record;

use crate::sink::{Sink, SinkError};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Posts record batches to a costtrace server's `/api/ingest`.
pub struct HttpSink {
    host: String,
    port: u16,
    path: String,
    api_key: Option<String>,
    /// `Some` for `https://`.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Records refused for good since the last `take_rejected`.
    rejected: u64,
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.describe())
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// Parses `http(s)://host[:port]/path`; `ca_file` adds trusted roots
    /// (PEM) for `https://`.
    pub fn new(
        url: &str,
        api_key: Option<String>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<HttpSink, String> {
        let (rest, tls) = if let Some(rest) = url.strip_prefix("https://") {
            (rest, Some(tls_config(ca_file)?))
        } else if let Some(rest) = url.strip_prefix("http://") {
            (rest, None)
        } else {
            return Err("expected http(s)://HOST[:PORT]/api/ingest".into());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/api/ingest"),
        };
        if authority.contains('@') {
            return Err("put the API key in COSTTRACE_API_KEY, not in the URL".into());
        }
        let default_port = if tls.is_some() { 443 } else { 80 };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?),
            None => (authority, default_port),
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        if tls.is_some() {
            ServerName::try_from(host.to_owned())
                .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
        }
        Ok(HttpSink {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            api_key: api_key.filter(|k| !k.trim().is_empty()),
            tls,
            rejected: 0,
        })
    }

    fn post(&self, body: &[u8]) -> Result<(u16, String), String> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("cannot resolve {}", self.host))?;
        let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut s: Box<dyn ReadWrite> = match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| e.to_string())?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| format!("TLS: {e}"))?;
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
        };
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
        s.flush().map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        match s.read_to_end(&mut resp) {
            Ok(_) => {}
            // A TLS server that closes without close_notify after a
            // complete answer (common behind proxies): the answer stands.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !resp.is_empty() => {}
            Err(e) => return Err(e.to_string()),
        }
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

/// Whether a 4xx answer says something about the records sent (so sending
/// them again can never succeed), rather than about the server, the network
/// or the configuration (the API key, the URL), which may be fixed later.
fn refuses_the_records(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 404 | 407 | 408 | 429)
}

impl Sink for HttpSink {
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_vec(records).map_err(|e| SinkError::new(e.to_string()))?;
        let (status, answer) = self.post(&body).map_err(SinkError::new)?;
        match status {
            200..=299 => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&answer)
                    && let Some(rej) = v.get("rejected").and_then(|r| r.as_array())
                    && !rej.is_empty()
                {
                    // Invalid records never become valid by retrying.
                    self.rejected += rej.len() as u64;
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
                self.rejected += records.len() as u64;
                tracing::warn!("costtrace server rejected a whole batch: {answer}");
                Ok(())
            }
            // Too large, or refused for what it holds: send each half on its
            // own, so that one bad record cannot hold up the others.
            _ if refuses_the_records(status) && records.len() > 1 => {
                let (a, b) = records.split_at(records.len() / 2);
                self.write(a)?;
                self.write(b)
            }
            _ if refuses_the_records(status) => {
                self.rejected += 1;
                let detail: String = answer.chars().take(200).collect();
                tracing::error!(
                    record = %records[0].key(),
                    status,
                    "costtrace server refused a record for good; it is dropped: {detail}"
                );
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

    fn take_rejected(&mut self) -> u64 {
        std::mem::take(&mut self.rejected)
    }

    fn describe(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
    }
}

/// A plain or TLS stream.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// rustls with ring, TLS 1.2/1.3, the Mozilla roots plus `ca_file`'s.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("COSTTRACE_CA_FILE {}: {e}", path.display()))?
        {
            let cert = cert.map_err(|e| format!("COSTTRACE_CA_FILE {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("COSTTRACE_CA_FILE {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!(
                "COSTTRACE_CA_FILE {}: no PEM certificate in it",
                path.display()
            ));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::HttpSink;
    use crate::sink::Sink;

    #[test]
    fn urls_are_checked() {
        let s = HttpSink::new(
            "http://127.0.0.1:8000/api/ingest",
            Some("ct_secret".into()),
            None,
        )
        .unwrap();
        assert_eq!(s.describe(), "http://127.0.0.1:8000/api/ingest");
        assert!(!format!("{s:?}").contains("ct_secret"));
        assert_eq!(
            HttpSink::new("https://costs.example.com/api/ingest", None, None)
                .unwrap()
                .describe(),
            "https://costs.example.com:443/api/ingest"
        );
        assert!(
            HttpSink::new("http://user:pw@x/api/ingest", None, None)
                .unwrap_err()
                .contains("COSTTRACE_API_KEY")
        );
        assert!(HttpSink::new("http://x:notaport/", None, None).is_err());
        assert!(
            HttpSink::new("ftp://x/", None, None)
                .unwrap_err()
                .contains("http(s)://")
        );
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        assert!(
            HttpSink::new("https://x/api/ingest", None, Some(missing))
                .unwrap_err()
                .contains("COSTTRACE_CA_FILE /nonexistent/ca.pem")
        );
        assert_eq!(
            HttpSink::new("http://localhost", None, None)
                .unwrap()
                .describe(),
            "http://localhost:80/api/ingest"
        );
    }
}
