//! Where events go: the capture installed in the context, else the global
//! recorder, else nowhere.

use std::sync::Arc;
use std::time::Duration;

use costtrace_core::PricingTier;
use uuid::Uuid;

use crate::attrs::AttrBuf;
use crate::context::FrameRef;
use crate::recorder;
use crate::scope::Outcome;
use crate::usage::Usage;

/// What instrumented code hands to the recorder. Cheap to make: the
/// attributes stay in the (shared, immutable) frame chain and are flattened
/// on the recorder's thread.
pub(crate) enum Event {
    /// A scope whose frame is still shared (a `Context` or `ScopeHandle`
    /// clone outlived it): the recorder reads the frame.
    ScopeEnd {
        frame: FrameRef,
        duration: Duration,
    },
    /// The common case: nothing else held the scope's frame when it ended, so
    /// its fields were moved here and the frame was freed on its own thread.
    ScopeDone(ScopeDone),
    Usage(Box<UsageEvent>),
    /// A finished record (request records from the request tracker).
    Record(Box<costtrace_core::Record>),
}

/// A finished scope, moved out of its frame (no reference counts touched).
/// Kept small (88 bytes): every event is written by the application thread
/// and read by the recorder, so its size is cache traffic between cores.
pub(crate) struct ScopeDone {
    pub(crate) id: Uuid,
    pub(crate) started_micros: i64,
    pub(crate) duration_nanos: u64,
    /// The name when it is a `&'static str` (else in `rare`).
    pub(crate) name: &'static str,
    /// The scope's own attributes, on top of those of `parent`'s chain.
    pub(crate) attrs: AttrBuf,
    /// The enclosing frame: inherited attributes, parent scope id, tier.
    pub(crate) parent: Option<FrameRef>,
    pub(crate) rare: Option<Box<ScopeRare>>,
}

/// What few scopes have: only those pay for the allocation.
pub(crate) struct ScopeRare {
    pub(crate) name: Option<String>,
    pub(crate) item_count: Option<u64>,
    pub(crate) outcome: Option<Box<Outcome>>,
    /// Set when the scope's tier is not the one it inherited.
    pub(crate) tier: Option<PricingTier>,
}

impl ScopeDone {
    pub(crate) fn name(&self) -> &str {
        match self.rare.as_ref().and_then(|r| r.name.as_deref()) {
            Some(n) => n,
            None => self.name,
        }
    }

    pub(crate) fn parent_id(&self) -> Option<Uuid> {
        self.parent.as_ref().and_then(|p| p.scope_id)
    }

    pub(crate) fn tier(&self) -> PricingTier {
        match self.rare.as_ref().and_then(|r| r.tier) {
            Some(t) => t,
            None => self
                .parent
                .as_ref()
                .map_or(PricingTier::Standard, |p| p.tier),
        }
    }

    /// True when dropping this event frees nothing that another thread
    /// allocated (so the recorder may drop it itself). A parent still
    /// referenced elsewhere is only a reference-count decrement.
    pub(crate) fn owns_no_memory(&self) -> bool {
        self.attrs.capacity() == 0
            && self.rare.is_none()
            && self.parent.as_ref().is_none_or(|p| FrameRef::count(p) > 1)
    }
}

impl Event {
    /// Memory this event holds that the queue's byte bound counts: a scope's
    /// own attributes (a shared frame is held by others anyway, and usage
    /// events are small).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Event::ScopeDone(d) => d.attrs.capacity(),
            _ => 0,
        }
    }
}

pub(crate) struct UsageEvent {
    pub(crate) id: Uuid,
    pub(crate) micros: i64,
    pub(crate) frame: Option<FrameRef>,
    pub(crate) usage: Usage,
}

pub(crate) trait Dispatch: Send + Sync + 'static {
    fn dispatch(&self, ev: Event);
}

pub(crate) fn enabled(local: Option<&Arc<dyn Dispatch>>) -> bool {
    local.is_some() || recorder::global_active()
}

/// Like [`send`], but builds the event only where it is stored: an event is
/// ~150 bytes, and passing it by value through the layers below copied it
/// about ten times.
#[inline(always)]
pub(crate) fn send_with(local: Option<&Arc<dyn Dispatch>>, make: impl FnOnce() -> Event) {
    match local {
        Some(d) => d.dispatch(make()),
        None => recorder::dispatch_global_with(make),
    }
}

/// Sends an event built already (small ones: usage and request records are
/// boxed), through the same lock-free fast path as [`send_with`].
pub(crate) fn send(local: Option<&Arc<dyn Dispatch>>, ev: Event) {
    send_with(local, move || ev);
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_stay_small() {
        // Two cache lines at most: see `ScopeDone`.
        assert!(std::mem::size_of::<super::Event>() <= 96);
    }
}
