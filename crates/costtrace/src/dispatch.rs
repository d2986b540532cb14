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
/// Kept small (96 bytes, of which up to 30 are short attributes): every
/// event is written by the application thread and read by the recorder, so
/// its size is cache traffic between cores.
pub(crate) struct ScopeDone {
    /// Nil for a scope that ended without a frame (nothing asked for its id
    /// while it ran): the record gets a UUIDv7 of its start time when it is
    /// made, on the recorder's thread.
    pub(crate) id: Uuid,
    pub(crate) started_micros: i64,
    pub(crate) duration_nanos: u64,
    /// The name when it is a `&'static str` (else in `rare`).
    pub(crate) name: &'static str,
    /// The scope's own attributes, on top of those of `parent`'s chain.
    pub(crate) attrs: DoneAttrs,
    /// The enclosing frame: inherited attributes, parent scope id, tier.
    pub(crate) parent: Option<FrameRef>,
    pub(crate) rare: Option<Box<ScopeRare>>,
}

/// Text this long or shorter travels inside the event (see [`DoneAttrs`]).
pub(crate) const INLINE_ATTRS: usize = 30;

/// An ended scope's own attributes: short ones copied into the event (the
/// common `#[tracked]` case of an id or two), so that their buffer stays on
/// its thread for the next scope instead of crossing to the recorder and
/// being handed back; longer ones in their buffer.
pub(crate) enum DoneAttrs {
    Empty,
    Inline { len: u8, bytes: [u8; INLINE_ATTRS] },
    Buf(AttrBuf),
}

impl DoneAttrs {
    /// `buf`'s attributes; the buffer comes back when they were copied.
    #[inline]
    pub(crate) fn from_buf(buf: AttrBuf) -> (DoneAttrs, Option<AttrBuf>) {
        let text = buf.as_str().as_bytes();
        if text.is_empty() {
            return (DoneAttrs::Empty, Some(buf));
        }
        if text.len() > INLINE_ATTRS {
            return (DoneAttrs::Buf(buf), None);
        }
        let mut bytes = [0u8; INLINE_ATTRS];
        bytes[..text.len()].copy_from_slice(text);
        let len = text.len() as u8;
        (DoneAttrs::Inline { len, bytes }, Some(buf))
    }

    /// The attribute text (an [`AttrBuf`]'s layout).
    pub(crate) fn text(&self) -> &str {
        match self {
            DoneAttrs::Empty => "",
            DoneAttrs::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
            DoneAttrs::Buf(b) => b.as_str(),
        }
    }

    /// Heap memory held.
    pub(crate) fn capacity(&self) -> usize {
        match self {
            DoneAttrs::Buf(b) => b.capacity(),
            _ => 0,
        }
    }

    /// The buffer, when the attributes are in one.
    pub(crate) fn into_buf(self) -> Option<AttrBuf> {
        match self {
            DoneAttrs::Buf(b) => Some(b),
            _ => None,
        }
    }
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

impl UsageEvent {
    /// An event under `frame`, not stamped yet (nil id, empty usage): `record`
    /// fills it in.
    pub(crate) fn unstamped(frame: Option<FrameRef>) -> Box<UsageEvent> {
        Box::new(UsageEvent {
            id: Uuid::nil(),
            micros: 0,
            frame,
            usage: Usage::default(),
        })
    }
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
///
/// `bytes` is what [`Event::heap_bytes`] will answer for the event, given
/// beforehand so that the queue does not read the event back after writing
/// it.
#[inline(always)]
pub(crate) fn send_with(
    local: Option<&Arc<dyn Dispatch>>,
    bytes: usize,
    make: impl FnOnce() -> Event,
) {
    match local {
        Some(d) => d.dispatch(make()),
        None => recorder::dispatch_global_with(bytes, make),
    }
}

/// Sends an event built already (small ones: usage and request records are
/// boxed), through the same lock-free fast path as [`send_with`].
pub(crate) fn send(local: Option<&Arc<dyn Dispatch>>, ev: Event) {
    send_with(local, ev.heap_bytes(), move || ev);
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_stay_small() {
        // Two cache lines at most: see `ScopeDone` and `DoneAttrs`.
        assert!(std::mem::size_of::<super::Event>() <= 96);
    }

    #[test]
    fn short_attributes_travel_inline_and_long_ones_in_their_buffer() {
        use super::{DoneAttrs, INLINE_ATTRS};
        use crate::attrs::{AttrBuf, iter_text_rev};
        let mut short = AttrBuf::default();
        short.push_str("job_id", "jöb-1");
        short.push_str("stage", "ocr");
        let (done, back) = DoneAttrs::from_buf(short);
        assert!(matches!(done, DoneAttrs::Inline { .. }));
        assert_eq!(back.map(|b| b.as_str().len()), Some(done.text().len()));
        let pairs: Vec<_> = iter_text_rev(done.text()).collect();
        assert_eq!(pairs, [("stage", "ocr"), ("job_id", "jöb-1")]);
        assert_eq!(done.capacity(), 0);

        let mut long = AttrBuf::default();
        long.push_str("k", &"v".repeat(INLINE_ATTRS));
        let (done, back) = DoneAttrs::from_buf(long);
        assert!(back.is_none());
        assert!(done.capacity() > INLINE_ATTRS);
        assert_eq!(
            iter_text_rev(done.text()).next(),
            Some(("k", "v".repeat(INLINE_ATTRS).as_str()))
        );

        let (done, _) = DoneAttrs::from_buf(AttrBuf::default());
        assert!(matches!(done, DoneAttrs::Empty));
        assert_eq!(done.text(), "");
    }
}
