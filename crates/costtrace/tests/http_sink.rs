#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `http://…/api/ingest` sink against a real costtrace server on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use costtrace::{Config, Usage};
use costtrace_store::{AnyStore, Store, TenantScope};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serves `app` for the store at `db` on `port` (0 = any) in a background
/// runtime; returns the port.
fn serve(db: &str, port: u16) -> u16 {
    let db = db.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = AnyStore::open(&db).await.unwrap();
            let auth = costtrace_server::AuthMode::detect(&store).await.unwrap();
            let state = costtrace_server::AppState::new(
                store,
                costtrace::pricing::Catalogue::bundled(),
                auth,
            );
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            axum::serve(listener, costtrace_server::app(state))
                .await
                .unwrap();
        });
    });
    rx.recv_timeout(Duration::from_secs(30)).unwrap()
}

fn task_cost(db: &str, task: &str) -> Option<costtrace_store::CostView> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = AnyStore::open(db).await.unwrap();
        store.task_cost(task, &TenantScope::All).await.unwrap()
    })
}

#[test]
fn records_reach_the_server_and_are_priced_there() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    let port = serve(&db, 0);
    let guard = Config::new()
        .sink(
            format!("http://127.0.0.1:{port}/api/ingest")
                .parse()
                .unwrap(),
        )
        .spool_dir(dir.path().join("spool"))
        .init()
        .unwrap();
    let req = costtrace::request("req_http_1")
        .task_id("task_http")
        .entity_id("acme")
        .start();
    req.context().run(|| {
        costtrace::record(Usage::service("file_processor").units("pages", 10));
        costtrace::record(Usage::service("transformer").units("chunks", 45));
    });
    req.end(200, None::<&str>);
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!((h.spooled, h.failed_writes), (0, 0), "{h:?}");
    drop(guard);
    let c = task_cost(&db, "task_http").unwrap();
    // $0.02 × 10 pages + $0.003 × 45 chunks = $0.335
    assert_eq!(c.total_cost_nanos, 335_000_000);
    assert_eq!(c.request_count, 1);
}

#[test]
fn a_server_that_is_down_gets_the_spooled_records_when_it_comes_up() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    // Find a free port, then leave it closed: the server is "down".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let guard = Config::new()
        .sink(
            format!("http://127.0.0.1:{port}/api/ingest")
                .parse()
                .unwrap(),
        )
        .spool_dir(dir.path().join("spool"))
        .init()
        .unwrap();
    let _t = costtrace::with_context([("task_id", "task_down")]);
    for _ in 0..100 {
        costtrace::record(Usage::service("transformer").units("chunks", 1));
    }
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!(h.spooled, 100, "{h:?}");
    assert!(
        h.last_error
            .as_deref()
            .unwrap()
            .contains("http://127.0.0.1"),
        "{h:?}"
    );
    serve(&db, port);
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!((h.spooled, h.replayed), (0, 100), "{h:?}");
    drop(guard);
    let c = task_cost(&db, "task_down").unwrap();
    assert_eq!(
        c.total_cost_nanos,
        100 * 3_000_000,
        "each record exactly once"
    );
}

#[test]
fn init_with_a_store_sink_works_inside_an_async_runtime() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("in_runtime.db").display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // As in `#[tokio::main] async fn main()`.
        let guard = Config::new()
            .sink(db.parse().unwrap())
            .spool_dir(dir.path().join("spool"))
            .init()
            .unwrap();
        let _t = costtrace::with_context([("task_id", "task_rt")]);
        costtrace::record(Usage::service("file_processor").units("pages", 1));
        costtrace::flush().unwrap();
        drop(guard);
        // A bad path fails cleanly, without a panic, also here.
        let err = Config::new()
            .sink("sqlite:/proc/no/such/dir/x.db".parse().unwrap())
            .spool_dir(dir.path().join("spool2"))
            .init()
            .unwrap_err();
        assert!(
            err.to_string().contains("sqlite:/proc/no/such/dir/x.db"),
            "{err}"
        );
    });
    assert_eq!(
        task_cost(&db, "task_rt").unwrap().total_cost_nanos,
        20_000_000
    );
}

/// A TLS-terminating proxy on loopback (as a deployment would put in front
/// of `costtrace serve`): accepts TLS with the test certificate for
/// localhost, forwards each plain HTTP/1.1 request to `upstream`, and sends
/// back the answer. Returns its port.
fn tls_proxy(upstream: u16) -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                // Read the request head and body.
                let mut head = String::new();
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if tls.read_line(&mut line).unwrap_or(0) == 0 {
                        return; // handshake refused or client gone
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                tls.read_exact(&mut body).unwrap();
                let mut up = std::net::TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                up.write_all(head.as_bytes()).unwrap();
                up.write_all(&body).unwrap();
                let mut answer = Vec::new();
                up.read_to_end(&mut answer).unwrap();
                let tls = tls.get_mut();
                tls.write_all(&answer).unwrap();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    port
}

#[test]
fn https_ingest_through_a_tls_proxy_with_a_private_ca() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    let port = tls_proxy(serve(&db, 0));
    let url = format!("https://localhost:{port}/api/ingest");
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem");

    // Without the private CA the server is not trusted: nothing is sent, the
    // records wait in the spool.
    let untrusted = costtrace::HttpSink::new(&url, None, None).unwrap();
    let guard = Config::new()
        .custom_sink(untrusted)
        .spool_dir(dir.path().join("spool"))
        .init()
        .unwrap();
    let _t = costtrace::with_context([("task_id", "task_tls")]);
    for _ in 0..10 {
        costtrace::record(Usage::service("transformer").units("chunks", 1));
    }
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!(h.spooled, 10, "{h:?}");
    let err = h.last_error.clone().unwrap();
    assert!(err.contains("certificate"), "{err}");
    drop(guard);
    assert!(task_cost(&db, "task_tls").is_none());

    // With it, the spooled records and new ones arrive, each exactly once.
    let trusted = costtrace::HttpSink::new(&url, None, Some(&ca)).unwrap();
    assert_eq!(
        format!("{trusted:?}"),
        format!("HttpSink {{ url: \"https://localhost:{port}/api/ingest\", .. }}")
    );
    let guard = Config::new()
        .custom_sink(trusted)
        .spool_dir(dir.path().join("spool"))
        .init()
        .unwrap();
    for _ in 0..5 {
        costtrace::record(Usage::service("transformer").units("chunks", 1));
    }
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!((h.spooled, h.failed_writes), (0, 0), "{h:?}");
    drop(guard);
    assert_eq!(
        task_cost(&db, "task_tls").unwrap().total_cost_nanos,
        15 * 3_000_000,
        "ten replayed and five new records, once each"
    );
}

/// A stand-in ingest server that answers 413 to any body over `limit` bytes
/// and accepts the others. Returns its port and the keys of the records it
/// accepted, in order.
fn size_limited_server(limit: usize) -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let keys = accepted.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            let (head_len, body_len) = loop {
                let n = conn.read(&mut chunk).unwrap();
                assert!(n > 0, "the client closed before sending its headers");
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .unwrap()
                        .trim()
                        .parse::<usize>()
                        .unwrap();
                    break (i + 4, len);
                }
            };
            while buf.len() < head_len + body_len {
                let n = conn.read(&mut chunk).unwrap();
                assert!(n > 0);
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = &buf[head_len..head_len + body_len];
            let (status, answer) = if body_len > limit {
                (413, r#"{"error":"payload too large"}"#)
            } else {
                let records: Vec<costtrace::Record> = serde_json::from_slice(body).unwrap();
                keys.lock().unwrap().extend(records.iter().map(|r| r.key()));
                (200, r#"{"rejected":[]}"#)
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, accepted)
}

#[test]
fn an_oversized_batch_is_split_and_a_record_too_large_for_the_server_does_not_block_the_rest() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (port, accepted) = size_limited_server(6_000);
    let guard = Config::new()
        .sink(
            format!("http://127.0.0.1:{port}/api/ingest")
                .parse()
                .unwrap(),
        )
        .spool_dir(dir.path().join("spool"))
        .flush_interval(Duration::from_secs(60))
        .init()
        .unwrap();
    let small = |i: u64| costtrace::record(Usage::service("transformer").units("chunks", i));
    // Together far over the limit, each well under it.
    let mut ids: Vec<String> = (0..30).map(|i| small(i).to_string()).collect();
    let huge = costtrace::record(
        Usage::service("transformer")
            .units("chunks", 1)
            .attr("blob", "x".repeat(10_000)),
    );
    ids.extend((30..60).map(|i| small(i).to_string()));
    costtrace::flush().unwrap();
    let h = costtrace::health().unwrap();
    assert_eq!(
        (h.written, h.rejected, h.spooled, h.failed_writes),
        (60, 1, 0, 0),
        "{h:?}"
    );
    assert_eq!(
        *accepted.lock().unwrap(),
        ids,
        "every other record, in order"
    );
    // Later records are not held up.
    let later = small(99).to_string();
    costtrace::flush().unwrap();
    let got = accepted.lock().unwrap().clone();
    assert_eq!(got.last(), Some(&later));
    assert!(!got.contains(&huge.to_string()));
    assert_eq!(costtrace::health().unwrap().rejected, 1);
    drop(guard);
}
