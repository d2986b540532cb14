//! Where events go: the capture installed in the context, else the global
//! recorder, else nowhere.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::context::Frame;
use crate::recorder;
use crate::usage::Usage;

/// What instrumented code hands to the recorder. Cheap to make: the
/// attributes stay in the (shared, immutable) frame chain and are flattened
/// on the recorder's thread.
pub(crate) enum Event {
    ScopeEnd {
        frame: Arc<Frame>,
        duration: Duration,
    },
    Usage(Box<UsageEvent>),
    /// A finished record (request records from the request tracker).
    Record(Box<costtrace_core::Record>),
}

pub(crate) struct UsageEvent {
    pub(crate) id: Uuid,
    pub(crate) micros: i64,
    pub(crate) frame: Option<Arc<Frame>>,
    pub(crate) usage: Usage,
}

pub(crate) trait Dispatch: Send + Sync + 'static {
    fn dispatch(&self, ev: Event);
}

pub(crate) fn enabled(local: Option<&Arc<dyn Dispatch>>) -> bool {
    local.is_some() || recorder::global_active()
}

pub(crate) fn send(local: Option<&Arc<dyn Dispatch>>, ev: Event) {
    match local {
        Some(d) => d.dispatch(ev),
        None => recorder::dispatch_global(ev),
    }
}
