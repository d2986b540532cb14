//! Seed 004's upload service, written as a user would write their own axum
//! service with costtrace.
//!
//! `POST /api/entities/{entity_id}/files` (the body is the file's bytes)
//! answers at once with
//! `{"success": true, "task_id": "upload_…", "message": "File uploaded successfully"}`;
//! a background task then "processes" the file and records what it cost:
//!
//! - `file_processor`: one page per started 1,000 bytes ($0.02 a page in the
//!   shipped price list),
//! - `transformer`: one chunk per started 400 bytes ($0.003 a chunk),
//!
//! sets the request's `doc_id` (derived from the entity and the file's
//! content, so the same file uploaded twice is the same document) and ends the
//! request with 200 (422 for an empty file).
//!
//! **One listener.** The costtrace API (`costtrace_server::app`: `GET
//! /api/tasks/{task_id}/cost`, `GET /api/requests?…`, `/api/docs/…`,
//! `/api/entities/{entity_id}/cost`, …) is merged into the same router, over
//! the same store the recorder writes to, so the client of seed 004 ("Client
//! Usage Patterns") talks to one address. Its paths do not clash with the
//! upload route. The API runs in local mode (no API keys): put it behind your
//! own auth, or use `AuthMode::Keys`, before exposing it.
//!
//! ```text
//! cargo run -p costtrace-server --example upload_service -- [SINK] [ADDR]
//! #   SINK: sqlite:PATH or postgres://… (default: $COSTTRACE_SINK, else sqlite:costtrace.db)
//! #   ADDR: default 127.0.0.1:8000
//! curl --data-binary @report.pdf http://127.0.0.1:8000/api/entities/company_123/files
//! curl http://127.0.0.1:8000/api/tasks/upload_…/cost
//! ```
#![allow(clippy::print_stdout)]

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::post;
use costtrace::{ActiveRequest, Usage};
use costtrace_pricing::Catalogue;
use costtrace_server::{AppState, AuthMode};
use costtrace_store::AnyStore;
use serde_json::{Value, json};

/// Bytes per page for the `file_processor` (rounded up).
pub const BYTES_PER_PAGE: usize = 1000;
/// Bytes per chunk for the `transformer` (rounded up).
pub const BYTES_PER_CHUNK: usize = 400;

/// The user's upload route plus the costtrace API, on one router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/entities/{entity_id}/files", post(upload))
        .merge(costtrace_server::app(state))
}

/// A short random id: the last 12 hex digits of a UUIDv7 (its random part).
fn short_id() -> String {
    let s = uuid::Uuid::now_v7().simple().to_string();
    s[s.len() - 12..].to_owned()
}

async fn upload(Path(entity_id): Path<String>, file: Bytes) -> Json<Value> {
    let task_id = format!("upload_{}", short_id());
    let req = costtrace::request(format!("req_{}", short_id()))
        .task_id(&task_id)
        .entity_id(&entity_id)
        .task_type("upload")
        .operation_type("file_upload")
        .endpoint("/api/entities/{entity_id}/files")
        .method("POST")
        .start();
    {
        // `costtrace::spawn` carries the current context (the request's ids)
        // into the task; the guard must not live across an `.await`.
        let _in_request = req.enter();
        costtrace::spawn(process(req.clone(), entity_id, file));
    }
    Json(json!({
        "success": true,
        "task_id": task_id,
        "message": "File uploaded successfully",
    }))
}

/// The background work: every usage recorded here carries the request's
/// `request_id`, `task_id` and `entity_id`.
async fn process(req: ActiveRequest, entity_id: String, file: Bytes) {
    if file.is_empty() {
        req.end(422, Some("the file is empty"));
        return;
    }
    // Parsing the file takes a while.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let pages = file.len().div_ceil(BYTES_PER_PAGE) as u64;
    costtrace::record(Usage::service("file_processor").units("pages", pages));

    let doc_id = index_document(&entity_id, &file);
    req.set_doc_id(&doc_id);

    // Encoding the chunks.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let chunks = file.len().div_ceil(BYTES_PER_CHUNK) as u64;
    costtrace::record(Usage::service("transformer").units("chunks", chunks));

    req.end(200, None::<&str>);
}

/// Stands in for the real indexer: the same file for the same entity is the
/// same document (FNV-1a of both).
fn index_document(entity_id: &str, file: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in entity_id.bytes().chain([0]).chain(file.iter().copied()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("doc_{h:016x}")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let sink = args
        .next()
        .or_else(|| std::env::var("COSTTRACE_SINK").ok())
        .unwrap_or_else(|| "sqlite:costtrace.db".to_owned());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".to_owned());

    // The recorder prices and writes with the same catalogue the API reads
    // with. It is installed before the tokio runtime starts: opening a store
    // sink blocks on the sink's own runtime, which tokio forbids inside
    // another runtime (so not inside `#[tokio::main]`).
    let catalogue = Catalogue::bundled();
    let costtrace = costtrace::Config::new()
        .sink(sink.parse()?)
        .catalogue(catalogue.clone())
        .init()?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(&sink, &addr, catalogue))?;
    drop(rt);
    // Dropping the guard writes what is still queued.
    drop(costtrace);
    Ok(())
}

async fn serve(
    sink: &str,
    addr: &str,
    catalogue: std::sync::Arc<Catalogue>,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = AnyStore::open(sink).await?;
    let state = AppState::new(store, catalogue, AuthMode::Local);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("upload service on http://{}", listener.local_addr()?);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
