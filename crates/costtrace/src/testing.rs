//! Testing your instrumentation (seed 002, "Testing Your Migration").
//!
//! [`capture`] installs an in-memory recorder for the current thread's context
//! (and everything that inherits it: nested scopes, `costtrace::spawn`,
//! `Context::wrap`). Records are made synchronously, so they can be inspected
//! as soon as the scope ends. Tests running in parallel do not see each
//! other's records.

use std::sync::{Arc, Mutex};

use costtrace_core::{Environment, Record, ScopeRecord, UsageRecord};

use crate::context::{Context, ContextGuard, Frame, FrameRef};
use crate::dispatch::{Dispatch, Event};
use crate::materialize::Materializer;
use crate::pricer::Pricer;

struct CaptureDispatch {
    records: Mutex<Vec<Record>>,
    materializer: Materializer,
}

impl Dispatch for CaptureDispatch {
    fn dispatch(&self, ev: Event) {
        if let Some(r) = self.materializer.record(&ev)
            && let Ok(mut recs) = self.records.lock()
        {
            recs.push(r);
        }
    }
}

/// The records made while a [`capture`] is active.
#[must_use = "records are captured only while this is alive"]
pub struct Capture {
    sink: Arc<CaptureDispatch>,
    ctx: Context,
    _guard: ContextGuard,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("records", &self.records().len())
            .finish()
    }
}

/// Captures every record made under the current context from now on.
///
/// ```
/// let cap = costtrace::testing::capture();
/// costtrace::scope("op").attr("job_id", "j1").run(|| {
///     costtrace::record(costtrace::Usage::llm("openai", "gpt-4o").input_tokens(10));
/// });
/// let usage = &cap.usages()[0];
/// assert_eq!(usage.attrs["job_id"], "j1");
/// assert_eq!(usage.scope_id, Some(cap.scopes()[0].id));
/// ```
pub fn capture() -> Capture {
    capture_in(Environment::from_env().unwrap_or_default())
}

/// [`capture`] with records stamped with `environment`.
pub fn capture_in(environment: Environment) -> Capture {
    crate::panic::install_hook();
    let sink = Arc::new(CaptureDispatch {
        records: Mutex::new(Vec::new()),
        materializer: Materializer {
            environment,
            pricer: Pricer::default(),
        },
    });
    let dispatch: Arc<dyn Dispatch> = sink.clone();
    let ctx = crate::context::with_current(|cur| Context {
        frame: Some(FrameRef::new(Frame::child(
            cur.frame.clone(),
            crate::attrs::AttrBuf::default(),
            None,
            None,
            Some(dispatch),
        ))),
    });
    let guard = ctx.enter();
    Capture {
        sink,
        ctx,
        _guard: guard,
    }
}

impl Capture {
    /// Every record so far, in the order they were made.
    pub fn records(&self) -> Vec<Record> {
        self.sink
            .records
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The scope records so far.
    pub fn scopes(&self) -> Vec<ScopeRecord> {
        self.records()
            .into_iter()
            .filter_map(|r| r.as_scope().cloned())
            .collect()
    }

    /// The usage records so far.
    pub fn usages(&self) -> Vec<UsageRecord> {
        self.records()
            .into_iter()
            .filter_map(|r| r.as_usage().cloned())
            .collect()
    }

    /// The first scope record named `name`.
    pub fn scope(&self, name: &str) -> Option<ScopeRecord> {
        self.scopes().into_iter().find(|s| s.name == name)
    }

    /// Forgets the records so far.
    pub fn clear(&self) {
        if let Ok(mut r) = self.sink.records.lock() {
            r.clear();
        }
    }

    /// The capturing context, to enter in other threads (`ctx.wrap(...)`).
    pub fn context(&self) -> Context {
        self.ctx.clone()
    }
}
