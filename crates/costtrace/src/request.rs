//! The request tracker of seed 004: a request record at start (so a running
//! task is visible with its cost so far) and again at the end with status,
//! processing time and error. The usage recorded inside carries the
//! request's `request_id`, `task_id`, `doc_id` and `entity_id` as context
//! attributes, which is how the store links services used to requests,
//! tasks, documents and entities.

use std::fmt;
use std::sync::{Arc, Mutex};

use costtrace_core::{RequestRecord, Timestamp};

use crate::context::{self, Context, ContextGuard};
use crate::dispatch::{self, Event};
use crate::id::{self, Instant};

/// Describes a request; see [`request`].
#[derive(Clone, Debug, Default)]
#[must_use = "a request is recorded only once started"]
pub struct RequestBuilder {
    rec: RequestFields,
}

#[derive(Clone, Debug, Default)]
struct RequestFields {
    request_id: String,
    task_id: Option<String>,
    doc_id: Option<String>,
    entity_id: Option<String>,
    operation_type: Option<String>,
    task_type: Option<String>,
    endpoint: Option<String>,
    method: Option<String>,
}

/// Starts describing request `request_id` (seed 004's `start_request`).
///
/// ```
/// let cap = costtrace::testing::capture();
/// let req = costtrace::request("req_123abc")
///     .task_id("task_abc123")
///     .entity_id("company_123")
///     .operation_type("file_upload")
///     .task_type("upload")
///     .endpoint("/api/entities/{entity_id}/files")
///     .method("POST")
///     .start();
/// req.context().run(|| {
///     costtrace::record(costtrace::Usage::service("file_processor").units("pages", 10));
/// });
/// req.set_doc_id("doc_xyz789");
/// req.end(200, None::<&str>);
/// let recs = cap.records();
/// let end = recs.iter().filter_map(|r| r.as_request()).last().unwrap();
/// assert_eq!(end.status_code, Some(200));
/// assert_eq!(end.doc_id.as_deref(), Some("doc_xyz789"));
/// assert_eq!(cap.usages()[0].attrs["task_id"], "task_abc123");
/// ```
pub fn request(request_id: impl Into<String>) -> RequestBuilder {
    RequestBuilder {
        rec: RequestFields {
            request_id: request_id.into(),
            ..RequestFields::default()
        },
    }
}

macro_rules! setters {
    ($($name:ident),*) => {$(
        pub fn $name(mut self, v: impl fmt::Display) -> Self {
            self.rec.$name = Some(crate::attrs::display_string(&v));
            self
        }
    )*};
}

impl RequestBuilder {
    setters!(
        task_id,
        doc_id,
        entity_id,
        operation_type,
        task_type,
        endpoint,
        method
    );

    /// Records the start and returns the running request. Its context (the
    /// current one plus the request's ids) is what the work inside should run
    /// in: `req.enter()` for synchronous code, `fut.with_context(req.context())`
    /// for async code.
    pub fn start(self) -> ActiveRequest {
        let (start, micros) = id::now();
        let f = self.rec;
        let mut attrs: Vec<(&str, &str)> = vec![("request_id", f.request_id.as_str())];
        for (k, v) in [
            ("task_id", &f.task_id),
            ("doc_id", &f.doc_id),
            ("entity_id", &f.entity_id),
        ] {
            if let Some(v) = v {
                attrs.push((k, v.as_str()));
            }
        }
        let ctx = context::current().with(attrs);
        let inner = Arc::new(Inner {
            fields: Mutex::new(f),
            started: Timestamp(micros),
            start,
            panicking_at_start: std::thread::panicking(),
            ctx,
            ended: Mutex::new(false),
        });
        inner.emit(None, None, None);
        ActiveRequest { inner }
    }
}

struct Inner {
    fields: Mutex<RequestFields>,
    started: Timestamp,
    start: Instant,
    /// Started by a `Drop` while a panic unwound: that panic is not this
    /// request's.
    panicking_at_start: bool,
    ctx: Context,
    ended: Mutex<bool>,
}

impl Inner {
    fn emit(&self, status: Option<u16>, time_ms: Option<f64>, error: Option<String>) {
        let d = self.ctx.dispatch();
        if !dispatch::enabled(d) {
            return;
        }
        let f = match self.fields.lock() {
            Ok(f) => f.clone(),
            Err(_) => return,
        };
        let rec = RequestRecord {
            request_id: f.request_id,
            task_id: f.task_id,
            doc_id: f.doc_id,
            entity_id: f.entity_id,
            operation_type: f.operation_type,
            task_type: f.task_type,
            endpoint: f.endpoint,
            method: f.method,
            status_code: status,
            timestamp: self.started,
            processing_time_ms: time_ms,
            error_message: error.map(|e| costtrace_core::secrets::redact_text(&e)),
            environment: Default::default(),
        };
        dispatch::send(
            d,
            Event::Record(Box::new(costtrace_core::Record::Request(rec))),
        );
    }

    fn end(&self, status: u16, error: Option<String>) {
        let Ok(mut ended) = self.ended.lock() else {
            return;
        };
        if *ended {
            return;
        }
        *ended = true;
        let ms = Instant::now().duration_since(self.start).as_secs_f64() * 1000.0;
        self.emit(Some(status), Some(ms), error);
    }
}

/// A running request; cheap to clone and `Send`, so background work can end
/// it. When its last clone is dropped without [`end`](ActiveRequest::end), it
/// is ended with status 500 (and the panic message when unwinding).
#[derive(Clone)]
pub struct ActiveRequest {
    inner: Arc<Inner>,
}

impl fmt::Debug for ActiveRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveRequest")
            .field("request_id", &self.request_id())
            .finish()
    }
}

impl ActiveRequest {
    pub fn request_id(&self) -> String {
        self.inner
            .fields
            .lock()
            .map(|f| f.request_id.clone())
            .unwrap_or_default()
    }

    /// The request's context: the context it was started in plus
    /// `request_id`, `task_id`, `doc_id` and `entity_id`.
    pub fn context(&self) -> Context {
        self.inner.ctx.clone()
    }

    /// Enters the request's context on this thread until the guard drops.
    pub fn enter(&self) -> ContextGuard {
        self.inner.ctx.enter()
    }

    /// Records the document id learned during the request (seed 004: the
    /// upload's `doc_id` is known only after indexing).
    pub fn set_doc_id(&self, doc_id: impl fmt::Display) {
        if let Ok(mut f) = self.inner.fields.lock() {
            f.doc_id = Some(crate::attrs::display_string(&doc_id));
        }
    }

    /// Records the end (seed 004's `end_request`). Only the first call counts.
    pub fn end(&self, status_code: u16, error_message: Option<impl fmt::Display>) {
        self.inner.end(
            status_code,
            error_message.map(|e| crate::attrs::display_string(&e)),
        );
    }
}

/// The last clone of a request is gone: end it if nothing did. Done here, on
/// the shared state, so that clones dropped at once on several threads end
/// it exactly once (each clone checking the reference count could see
/// another clone still alive, and none would end it).
impl Drop for Inner {
    fn drop(&mut self) {
        if self.ended.get_mut().map_or(true, |e| *e) {
            return;
        }
        if crate::panic::unwinding_since(self.panicking_at_start, self.start) {
            let msg = crate::panic::describe_since(self.start);
            self.end(500, Some(msg));
        } else {
            self.end(
                500,
                Some("the request was dropped without end()".to_owned()),
            );
        }
    }
}
