//! Scopes: named stretches of work whose attributes every record inside
//! inherits, recorded when they end.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use costtrace_core::{ItemError, MAX_SCOPE_ERRORS, PricingTier};
use uuid::Uuid;

use crate::attrs::AttrBuf;
use crate::context::{self, Context, Frame, FrameRef};
use crate::dispatch::{self, DoneAttrs, Event, ScopeDone, ScopeRare};
use crate::id::Instant;
use crate::{id, panic};

/// A scope's data, shared by its guard, its handles and the recorder (which
/// reads it once the scope has ended). Kept small: it is built on every scope
/// entry, and the rarely used outcome state is allocated only when used.
pub(crate) struct ScopeData {
    pub(crate) id: Uuid,
    pub(crate) name: Cow<'static, str>,
    pub(crate) started_micros: i64,
    pub(crate) start: Instant,
    pub(crate) item_count: Option<u64>,
    pub(crate) continue_on_error: bool,
    /// The thread was already unwinding from a panic when the scope started
    /// (run by a `Drop`): that panic is not this scope's.
    pub(crate) panicking_at_start: bool,
    pub(crate) finished: AtomicBool,
    outcome: OnceLock<Box<Outcome>>,
}

/// Item counts and errors: only scopes that report them pay for them.
#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) success: AtomicU64,
    pub(crate) failure: AtomicU64,
    pub(crate) errors: Mutex<Vec<ItemError>>,
    pub(crate) error: Mutex<Option<String>>,
}

impl ScopeData {
    /// A placeholder (the thread's pending-scope slot when empty).
    pub(crate) const fn empty() -> ScopeData {
        ScopeData {
            id: Uuid::nil(),
            name: Cow::Borrowed(""),
            started_micros: 0,
            start: Instant::ZERO,
            item_count: None,
            continue_on_error: true,
            panicking_at_start: false,
            finished: AtomicBool::new(false),
            outcome: OnceLock::new(),
        }
    }

    fn outcome(&self) -> &Outcome {
        self.outcome.get_or_init(Box::default)
    }

    pub(crate) fn set_error_if_none(&self, msg: impl FnOnce() -> String) {
        if let Ok(mut e) = self.outcome().error.lock()
            && e.is_none()
        {
            *e = Some(msg());
        }
    }

    pub(crate) fn error_message(&self) -> Option<String> {
        self.outcome
            .get()?
            .error
            .lock()
            .ok()
            .and_then(|e| e.clone())
    }

    pub(crate) fn item_errors(&self) -> Vec<ItemError> {
        self.outcome
            .get()
            .and_then(|o| o.errors.lock().ok().map(|e| e.clone()))
            .unwrap_or_default()
    }

    pub(crate) fn success_count(&self) -> u64 {
        self.outcome
            .get()
            .map_or(0, |o| o.success.load(Ordering::Relaxed))
    }

    pub(crate) fn failure_count(&self) -> u64 {
        self.outcome
            .get()
            .map_or(0, |o| o.failure.load(Ordering::Relaxed))
    }
}

/// How a scope ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Normal,
    Panicked,
    Cancelled,
}

fn set_ending(s: &ScopeData, ending: Ending) {
    match ending {
        Ending::Normal => {}
        Ending::Panicked => s.set_error_if_none(|| panic::describe_since(s.start)),
        Ending::Cancelled => s.set_error_if_none(|| {
            "cancelled: the future was dropped before it completed".to_owned()
        }),
    }
}

/// Records the scope held by `frame`, exactly once, and releases the frame.
///
/// When nothing else holds the frame (no `Context` or `ScopeHandle` clone
/// outlived the scope, and no usage recorded in it is still queued or kept
/// in a pooled event box: see `usage::recycle_event`), its fields are moved
/// into the event and the emptied frame is kept for reuse on this thread;
/// otherwise the shared frame travels to the recorder.
pub(crate) fn finish(mut frame: FrameRef, ending: Ending) {
    let Some(s) = frame.scope.as_ref() else {
        return;
    };
    let duration = s.start.elapsed();
    if ending != Ending::Normal {
        set_ending(s, ending);
    }
    if !dispatch::enabled(frame.dispatch.as_ref()) {
        context::recycle_frame(frame);
        return;
    }
    // Its parts are taken out and the emptied frame is kept for the next
    // scope started on this thread. Field by field, in place: moving the
    // parts out as one tuple made the compiler copy them through the stack
    // with a load that straddled two stores (a store-forwarding stall, a
    // quarter of this function's time in `perf`).
    if let Some(f) = FrameRef::get_mut(&mut frame) {
        let Some(s) = f.scope.as_mut() else {
            return;
        };
        if s.finished.load(Ordering::Acquire) {
            return;
        }
        let attrs = std::mem::take(&mut f.attrs);
        let (bytes, event) = done_event(s, s.id, attrs, f.tier, f.parent.take(), duration);
        let d = f.dispatch.take();
        f.scope = None;
        context::pool_frame(frame);
        dispatch::send_with(d.as_ref(), bytes, event);
        return;
    }
    let Some(s) = frame.scope.as_ref() else {
        return;
    };
    if s.finished.swap(true, Ordering::AcqRel) {
        return;
    }
    let d = frame.dispatch.clone();
    dispatch::send(d.as_ref(), Event::ScopeEnd { frame, duration });
}

/// Records a scope that ended while still pending (no frame was built for
/// it), in place in the thread's slot; `parent` is the context it was
/// entered in. Leaves the slot's parts taken.
#[inline(always)]
fn finish_pending(p: &mut context::Pending, parent: Option<&FrameRef>) {
    let s = &mut p.data;
    let duration = s.start.elapsed();
    if std::thread::panicking() && panic::unwinding_since(s.panicking_at_start, s.start) {
        set_ending(s, Ending::Panicked);
    }
    let d = parent.and_then(|f| f.dispatch.as_ref());
    let attrs = std::mem::take(&mut p.attrs);
    if !dispatch::enabled(d) {
        s.outcome.take();
        s.name = Cow::Borrowed("");
        context::recycle_attrs(attrs);
        return;
    }
    let inherited = parent.map_or(PricingTier::Standard, |f| f.tier);
    let tier = p.tier.unwrap_or(inherited);
    // No id yet: nothing asked for it while the scope ran, so it is drawn
    // where the record is made (see `ScopeDone::id`).
    let (bytes, event) = done_event(s, Uuid::nil(), attrs, tier, parent.cloned(), duration);
    dispatch::send_with(d, bytes, event);
}

/// Takes an ended scope's parts out of `s` and `attrs` and answers the
/// event's [`Event::heap_bytes`] and what builds it (built where the queue
/// stores it). `id` is the scope's id, `tier` its effective tier, `parent`
/// the context it ran in.
#[inline(always)]
fn done_event(
    s: &mut ScopeData,
    id: Uuid,
    attrs: AttrBuf,
    tier: PricingTier,
    parent: Option<FrameRef>,
    duration: Duration,
) -> (usize, impl FnOnce() -> Event + use<>) {
    let started_micros = s.started_micros;
    let item_count = s.item_count;
    let outcome = s.outcome.take();
    let (name, owned_name) = match &mut s.name {
        Cow::Borrowed(n) => (*n, None),
        Cow::Owned(n) => ("", Some(std::mem::take(n))),
    };
    let inherited = parent.as_ref().map_or(PricingTier::Standard, |p| p.tier);
    // Short attributes are copied into the event and the buffer stays here
    // for the next scope.
    let (attrs, spare) = DoneAttrs::from_buf(attrs);
    if let Some(b) = spare
        && b.capacity() > 0
    {
        context::recycle_attrs(b);
    }
    let rare =
        if owned_name.is_some() || item_count.is_some() || outcome.is_some() || tier != inherited {
            Some(Box::new(ScopeRare {
                name: owned_name,
                item_count,
                outcome,
                tier: (tier != inherited).then_some(tier),
            }))
        } else {
            None
        };
    let duration_nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let bytes = attrs.capacity();
    (bytes, move || {
        Event::ScopeDone(ScopeDone {
            id,
            started_micros,
            duration_nanos,
            name,
            attrs,
            parent,
            rare,
        })
    })
}

/// Starts describing a scope. Add attributes, then [`enter`](ScopeBuilder::enter)
/// it, [`run`](ScopeBuilder::run) a closure in it, or attach it to a future
/// with [`FutureExt::in_scope`](crate::FutureExt::in_scope).
///
/// ```
/// let cap = costtrace::testing::capture();
/// {
///     let _s = costtrace::scope("receipt_processing").attr("job_id", "job-123").enter();
///     // every usage recorded here carries job_id=job-123
/// }
/// let scopes = cap.scopes();
/// assert_eq!(scopes[0].name, "receipt_processing");
/// assert_eq!(scopes[0].attrs["job_id"], "job-123");
/// ```
pub fn scope(name: impl Into<Cow<'static, str>>) -> ScopeBuilder {
    ScopeBuilder {
        name: name.into(),
        attrs: AttrBuf::default(),
        tier: None,
        items: None,
        continue_on_error: true,
    }
}

/// A scope whose usage (nested scopes included) is priced at the batch tier
/// (seed 000 §6). Sets the `batch_id` attribute.
///
/// ```
/// let cap = costtrace::testing::capture();
/// costtrace::batch_scope("batch-123").items(100).run(|| {
///     assert_eq!(costtrace::current().tier(), costtrace::PricingTier::Batch);
/// });
/// assert_eq!(cap.scopes()[0].item_count, Some(100));
/// ```
pub fn batch_scope(batch_id: impl fmt::Display) -> ScopeBuilder {
    scope("batch")
        .attr("batch_id", batch_id)
        .tier(PricingTier::Batch)
}

/// A scope being described; see [`scope`].
#[must_use = "a scope builder does nothing until it is entered, run or attached to a future"]
pub struct ScopeBuilder {
    name: Cow<'static, str>,
    attrs: AttrBuf,
    tier: Option<PricingTier>,
    items: Option<u64>,
    continue_on_error: bool,
}

impl fmt::Debug for ScopeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeBuilder")
            .field("name", &self.name)
            .field("attrs", &self.attrs)
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

impl ScopeBuilder {
    /// Sets an attribute; inherited by everything inside the scope. A later
    /// value for the same key wins.
    // Inlined so that a chain of `attr` calls updates the builder in place
    // instead of moving its 72 bytes in and out of every call.
    #[inline(always)]
    pub fn attr(mut self, key: impl AsRef<str>, value: impl fmt::Display) -> Self {
        self.attrs_mut().push_display(key.as_ref(), &value);
        self
    }

    /// [`attr`](ScopeBuilder::attr) in place (for `#[tracked]`).
    #[inline]
    pub(crate) fn set(&mut self, key: &str, value: impl fmt::Display) {
        self.attrs_mut().push_display(key, &value);
    }

    /// [`set`](ScopeBuilder::set) for text, copied without `Display`.
    #[inline]
    pub(crate) fn set_str(&mut self, key: &str, value: &str) {
        self.attrs_mut().push_str(key, value);
    }

    /// The attribute buffer, taken from this thread's pool on first use.
    #[inline]
    fn attrs_mut(&mut self) -> &mut AttrBuf {
        if self.attrs.capacity() == 0 {
            self.attrs = context::pooled_attrs();
        }
        &mut self.attrs
    }

    /// Sets several attributes.
    pub fn attrs<K: AsRef<str>, V: fmt::Display>(
        mut self,
        attrs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let it = attrs.into_iter();
        let buf = self.attrs_mut();
        buf.reserve(it.size_hint().0);
        for (k, v) in it {
            buf.push_display(k.as_ref(), &v);
        }
        self
    }

    /// Sets an attribute when `value` is `Some`.
    pub fn attr_opt(self, key: impl AsRef<str>, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(v) => self.attr(key, v),
            None => self,
        }
    }

    /// The pricing tier for usage inside this scope (inherited by children).
    pub fn tier(mut self, tier: PricingTier) -> Self {
        self.tier = Some(tier);
        self
    }

    /// How many items the scope processes (recorded as `item_count`).
    pub fn items(mut self, n: u64) -> Self {
        self.items = Some(n);
        self
    }

    /// With `false`, the first [`failure`](ScopeGuard::failure) marks the
    /// scope failed and `failure` answers that processing should stop.
    /// Default `true` (seed 000 §8).
    pub fn continue_on_error(mut self, yes: bool) -> Self {
        self.continue_on_error = yes;
        self
    }

    /// The scope's attributes, its data (started now) and its own tier.
    #[inline(always)]
    fn into_parts(self) -> (AttrBuf, ScopeData, Option<PricingTier>) {
        let (start, micros) = id::now();
        let data = ScopeData {
            id: id::v7_at(micros),
            name: self.name,
            started_micros: micros,
            start,
            item_count: self.items,
            continue_on_error: self.continue_on_error,
            panicking_at_start: std::thread::panicking(),
            finished: AtomicBool::new(false),
            outcome: OnceLock::new(),
        };
        (self.attrs, data, self.tier)
    }

    /// Moves the scope, started now, into the thread's pending slot, field
    /// by field (see [`context::Pending`]): moving the builder as a whole
    /// copied it with wide loads over the narrow stores that had just built
    /// it (a store-forwarding stall, 40 % of `enter` in `perf`).
    ///
    /// The slot gets no id: it is drawn when the scope gets a frame or ends,
    /// from the start time (the same kind of UUIDv7 as one drawn now);
    /// reading back a 16-byte id just stored as two halves stalled the exit.
    #[inline(always)]
    fn fill(&mut self, p: &mut context::Pending) {
        let (start, micros) = id::now();
        let s = &mut p.data;
        // By variant: a `&'static str` is copied as its two words (moving
        // the `Cow` as a whole loaded it with a wide load over the narrow
        // stores that built it).
        s.name = match &mut self.name {
            Cow::Borrowed(n) => Cow::Borrowed(*n),
            Cow::Owned(n) => Cow::Owned(std::mem::take(n)),
        };
        s.started_micros = micros;
        s.start = start;
        s.item_count = self.items;
        s.continue_on_error = self.continue_on_error;
        s.panicking_at_start = std::thread::panicking();
        *s.finished.get_mut() = false;
        s.outcome.take();
        // The slot's buffer is always empty here (taken when its last scope
        // ended); a scope without attributes leaves it so, without moving
        // the builder's empty one (same wide-load stall).
        if self.attrs.capacity() > 0 {
            p.attrs = std::mem::take(&mut self.attrs);
        }
        p.tier = self.tier;
    }

    /// Starts the scope without entering it. The parent is the current context.
    pub(crate) fn start(self) -> ActiveScope {
        let parent = context::with_current(|cur| cur.frame.clone());
        let (attrs, data, tier) = self.into_parts();
        let frame = context::new_frame(Frame::child(parent, attrs, Some(data), tier, None));
        ActiveScope {
            handle: Some(ScopeHandle { frame }),
        }
    }

    /// Starts the scope and makes it current until the guard drops; the scope
    /// is recorded then, also when unwinding from a panic.
    pub fn enter(mut self) -> ScopeGuard {
        self.enter_from()
    }

    /// [`enter`](ScopeBuilder::enter) for a builder kept in place (by a
    /// future, which enters it in its first poll): its parts are moved out
    /// field by field, leaving it empty, instead of moving it as a whole
    /// first.
    #[inline(always)]
    pub(crate) fn enter_from(&mut self) -> ScopeGuard {
        // The thread-local owns the scope while it is current (as plain data
        // until something needs its context); the guard keeps it only when
        // there is no thread-local (teardown).
        if let Some(restore) = context::enter_pending(self, ScopeBuilder::fill) {
            return ScopeGuard {
                restore,
                own: None,
                _not_send: PhantomData,
            };
        }
        let taken = std::mem::replace(self, scope(""));
        let (attrs, data, tier) = taken.into_parts();
        ScopeGuard {
            restore: context::Restore::none(),
            own: Some(context::new_frame(Frame::child(
                None,
                attrs,
                Some(data),
                tier,
                None,
            ))),
            _not_send: PhantomData,
        }
    }

    /// Runs `f` inside the scope.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let _g = self.enter();
        f()
    }
}

/// A handle on a running scope, for reporting item outcomes from anywhere
/// inside it (also from async code, where no guard is held).
#[derive(Clone)]
pub struct ScopeHandle {
    pub(crate) frame: FrameRef,
}

impl fmt::Debug for ScopeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeHandle")
            .field("id", &self.id())
            .finish()
    }
}

impl ScopeHandle {
    fn data(&self) -> Option<&ScopeData> {
        self.frame.scope.as_ref()
    }

    /// The scope's record id.
    pub fn id(&self) -> Uuid {
        self.data().map(|d| d.id).unwrap_or_default()
    }

    /// The scope's name.
    pub fn name(&self) -> &str {
        self.data().map_or("", |d| &d.name)
    }

    /// Counts one item processed successfully.
    pub fn success(&self) {
        if let Some(d) = self.data() {
            d.outcome().success.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one failed item and keeps its error (the first
    /// [`MAX_SCOPE_ERRORS`] are kept; all are counted). Returns whether
    /// processing should continue: always `true` unless the scope was built
    /// with `continue_on_error(false)`, in which case the scope is marked
    /// failed and the answer is `false`.
    pub fn failure(&self, item: impl fmt::Display, error: impl fmt::Display) -> bool {
        let Some(d) = self.data() else { return true };
        d.outcome().failure.fetch_add(1, Ordering::Relaxed);
        let item = item.to_string();
        let error = error.to_string();
        if !d.continue_on_error {
            d.set_error_if_none(|| format!("item {item} failed: {error}"));
        }
        if let Ok(mut errs) = d.outcome().errors.lock()
            && errs.len() < MAX_SCOPE_ERRORS
        {
            errs.push(ItemError { item, error });
        }
        d.continue_on_error
    }

    /// Marks the scope failed with `message` (the first message wins).
    pub fn fail(&self, message: impl fmt::Display) {
        if let Some(d) = self.data() {
            d.set_error_if_none(|| message.to_string());
        }
    }

    /// Successes counted so far.
    pub fn success_count(&self) -> u64 {
        self.data().map_or(0, ScopeData::success_count)
    }

    /// Failures counted so far.
    pub fn failure_count(&self) -> u64 {
        self.data().map_or(0, ScopeData::failure_count)
    }

    /// The scope's context (its attributes and those it inherited).
    pub fn context(&self) -> Context {
        Context {
            frame: Some(self.frame.clone()),
        }
    }
}

/// The innermost running scope of the current context, if any.
pub fn current_scope() -> Option<ScopeHandle> {
    context::with_current(|ctx| {
        let mut f = ctx.frame.as_ref();
        while let Some(frame) = f {
            if frame.scope.is_some() {
                return Some(ScopeHandle {
                    frame: frame.clone(),
                });
            }
            f = frame.parent.as_ref();
        }
        None
    })
}

/// A started scope that is not bound to a thread: recorded when completed or
/// dropped (a drop before completion records it as cancelled). Used by the
/// future wrappers and `#[tracked]`.
#[must_use = "the scope is recorded as cancelled when this is dropped"]
pub struct ActiveScope {
    /// `None` once recorded.
    handle: Option<ScopeHandle>,
}

impl fmt::Debug for ActiveScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveScope")
            .field("id", &self.handle().id())
            .finish()
    }
}

/// What `ActiveScope::handle` answers after the scope was recorded (not
/// reachable through the public API, which consumes the scope to record it).
fn ended_handle() -> &'static ScopeHandle {
    static ENDED: OnceLock<ScopeHandle> = OnceLock::new();
    ENDED.get_or_init(|| ScopeHandle {
        frame: FrameRef::new(Frame::child(None, AttrBuf::default(), None, None, None)),
    })
}

impl ActiveScope {
    pub fn handle(&self) -> &ScopeHandle {
        self.handle.as_ref().unwrap_or_else(|| ended_handle())
    }

    pub fn context(&self) -> Context {
        self.handle().context()
    }

    /// Records the scope as ended normally (plus any error set on it).
    pub fn complete(mut self) {
        self.end(Ending::Normal);
    }

    /// Records the scope, failed with `error` when it is `Some`.
    pub fn complete_with(self, error: Option<String>) {
        if let (Some(e), Some(d)) = (error, self.handle().data()) {
            d.set_error_if_none(|| e);
        }
        self.complete();
    }

    fn end(&mut self, ending: Ending) {
        if let Some(h) = self.handle.take() {
            finish(h.frame, ending);
        }
    }

    /// True when a panic that began after the scope started is unwinding.
    #[inline]
    fn unwinding(&self) -> bool {
        std::thread::panicking()
            && self
                .handle
                .as_ref()
                .and_then(ScopeHandle::data)
                .is_none_or(|d| panic::unwinding_since(d.panicking_at_start, d.start))
    }
}

impl Drop for ActiveScope {
    fn drop(&mut self) {
        let ending = if self.unwinding() {
            Ending::Panicked
        } else {
            Ending::Cancelled
        };
        self.end(ending);
    }
}

/// An entered scope: current until dropped, then recorded (also while
/// unwinding from a panic, with `error_occurred` set).
///
/// Not `Send`: it restores the thread's previous context when dropped. Across
/// `.await`, use [`FutureExt::in_scope`](crate::FutureExt::in_scope).
///
/// The thread keeps the scope while the guard lives (the guard holds an id),
/// so a guard that outlives the thread's costtrace state — dropped by another
/// thread-local's destructor after costtrace's has run — records nothing.
#[must_use = "the scope ends as soon as the guard is dropped; bind it: `let _scope = ...`"]
pub struct ScopeGuard {
    /// The guard's entry in the thread's context state, which holds the
    /// scope's frame while the guard is alive.
    restore: context::Restore,
    /// The frame, when it could not be handed to the thread (teardown).
    own: Option<FrameRef>,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ScopeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeGuard")
            .field("id", &self.id())
            .finish()
    }
}

impl ScopeGuard {
    /// The scope's handle, found where the thread keeps the scope.
    fn handle_opt(&self) -> Option<ScopeHandle> {
        let frame = match &self.own {
            Some(f) => f.clone(),
            None => context::guard_context(self.restore.id())?.frame?,
        };
        frame.scope.as_ref()?;
        Some(ScopeHandle { frame })
    }

    /// The scope's record id.
    pub fn id(&self) -> Uuid {
        self.handle_opt().map(|h| h.id()).unwrap_or_default()
    }

    /// A handle that can be sent to other threads or tasks.
    pub fn handle(&self) -> ScopeHandle {
        self.handle_opt().unwrap_or_else(|| ended_handle().clone())
    }

    /// The scope's context.
    pub fn context(&self) -> Context {
        self.handle_opt().map(|h| h.context()).unwrap_or_default()
    }

    /// Counts one item processed successfully.
    pub fn success(&self) {
        if let Some(h) = self.handle_opt() {
            h.success();
        }
    }

    /// Counts one failed item; see [`ScopeHandle::failure`].
    pub fn failure(&self, item: impl fmt::Display, error: impl fmt::Display) -> bool {
        match self.handle_opt() {
            Some(h) => h.failure(item, error),
            None => true,
        }
    }

    /// Marks the scope failed with `message`.
    pub fn fail(&self, message: impl fmt::Display) {
        // Formatted before the thread's state is borrowed (a `Display` may
        // read the context).
        let mut message = Some(message.to_string());
        if self.own.is_none()
            && context::with_pending(self.restore.id(), |d| {
                d.set_error_if_none(|| message.take().unwrap_or_default());
            })
            .is_some()
        {
            // Still pending: marked without building its frame.
            return;
        }
        if let (Some(h), Some(m)) = (self.handle_opt(), message) {
            h.fail(m);
        }
    }

    /// Hands the scope over to a future that has to wait, at the end of the
    /// poll that entered it: the thread's context is restored as at the end
    /// of any poll, and the returned scope is recorded when completed (or
    /// dropped).
    pub(crate) fn park(mut self) -> ActiveScope {
        let frame = match self.own.take() {
            Some(f) => Some(f),
            None => context::exit_poll_keep(&mut self.restore).and_then(|c| c.frame),
        };
        ActiveScope {
            handle: frame.map(|frame| ScopeHandle { frame }),
        }
    }

    /// Time since the scope started.
    pub fn elapsed(&self) -> Duration {
        self.handle_opt()
            .and_then(|h| h.data().map(|d| d.start.elapsed()))
            .unwrap_or(Duration::ZERO)
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let frame = match self.own.take() {
            Some(f) => Some(f),
            None => match context::exit_pending(&mut self.restore, finish_pending) {
                Ok(()) => return,
                Err(ctx) => ctx.and_then(|c| c.frame),
            },
        };
        let Some(frame) = frame else {
            return;
        };
        let unwinding = std::thread::panicking()
            && frame
                .scope
                .as_ref()
                .is_none_or(|d| panic::unwinding_since(d.panicking_at_start, d.start));
        let ending = if unwinding {
            Ending::Panicked
        } else {
            Ending::Normal
        };
        finish(frame, ending);
    }
}
