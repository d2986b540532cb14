//! The context: who, what and why, carried implicitly.
//!
//! A [`Context`] is a chain of immutable frames. Entering a scope or setting
//! request variables pushes one frame that points at its parent, so entering
//! costs one allocation whatever the size of the parent, and children inherit
//! by reference. Lookups walk the chain innermost first, so a child's value
//! overrides its parent's. Records are flattened from the chain later, on the
//! recorder's thread, off the application's hot path.
//!
//! The current context lives in a thread-local for synchronous code and is
//! re-entered on every poll by the future wrappers in [`crate::FutureExt`], so
//! concurrent tasks on a multi-thread runtime never see each other's context.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use costtrace_core::PricingTier;
use uuid::Uuid;

use crate::attrs::{self, AttrBuf};
use crate::dispatch::Dispatch;
use crate::scope::ScopeData;

thread_local! {
    /// Emptied attribute buffers of this thread's ended scopes, reused by the
    /// next scopes built here instead of allocating.
    static ATTR_POOL: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

const ATTR_POOL_MAX: usize = 256;

thread_local! {
    /// The largest recently emptied attribute buffer over
    /// [`attrs::POOLED_MAX_CAPACITY`] (up to [`attrs::LARGE_MAX_CAPACITY`]):
    /// a scope with many attributes that outgrows its pooled buffer moves
    /// into it instead of growing through every doubling (half the cost of
    /// building a 1,000-attribute scope went to those reallocations).
    static LARGE_ATTRS: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Keeps `attrs`' buffer (emptied) for reuse on this thread.
pub(crate) fn recycle_attrs(attrs: AttrBuf) {
    let v = attrs.into_buffer();
    if v.capacity() == 0 {
        return;
    }
    if v.capacity() > attrs::POOLED_MAX_CAPACITY {
        if v.capacity() <= attrs::LARGE_MAX_CAPACITY {
            let _ = LARGE_ATTRS.try_with(|l| {
                if let Ok(mut l) = l.try_borrow_mut()
                    && l.capacity() < v.capacity()
                {
                    *l = v;
                }
            });
        }
        return;
    }
    let _ = ATTR_POOL.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut()
            && p.len() < ATTR_POOL_MAX
        {
            p.push(v);
        }
    });
}

/// The thread's spare large attribute buffer (emptied), when it holds at
/// least `min` bytes.
pub(crate) fn large_attr_buffer(min: usize) -> Option<String> {
    LARGE_ATTRS
        .try_with(|l| {
            let mut l = l.try_borrow_mut().ok()?;
            (l.capacity() >= min).then(|| {
                let mut v = std::mem::take(&mut *l);
                v.clear();
                v
            })
        })
        .ok()
        .flatten()
}

/// An empty attribute buffer, reused when one is available.
pub(crate) fn pooled_attrs() -> AttrBuf {
    ATTR_POOL
        .try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))
        .ok()
        .flatten()
        .map(AttrBuf::with_buffer)
        .unwrap_or_default()
}

thread_local! {
    /// Emptied frames of this thread's ended scopes, reused by the next
    /// scopes started here: taking one back costs one atomic load
    /// (`FrameRef::get_mut`), where a `malloc` and a `free` cost far more.
    static FRAME_POOL: RefCell<Vec<FrameRef>> = const { RefCell::new(Vec::new()) };
}

const FRAME_POOL_MAX: usize = 64;

/// `frame` in a shared allocation, reusing a pooled one when there is one.
#[inline]
pub(crate) fn new_frame(frame: Frame) -> FrameRef {
    let pooled = FRAME_POOL
        .try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))
        .ok()
        .flatten();
    if let Some(mut a) = pooled
        && let Some(slot) = FrameRef::get_mut(&mut a)
    {
        *slot = frame;
        return a;
    }
    FrameRef::new(frame)
}

/// Keeps `frame` for [`new_frame`] if nothing else holds it; its parts are
/// dropped now, on this thread. Its parent goes the same way when `frame`
/// held the last reference to it, and so on up the chain: the frames of
/// nested scopes usually end with an event of the scope inside them, and
/// without this each would be freed and the next scope's frame allocated.
pub(crate) fn recycle_frame(mut frame: FrameRef) {
    while let Some(f) = FrameRef::get_mut(&mut frame) {
        let parent = f.parent.take();
        f.scope = None;
        f.dispatch = None;
        recycle_attrs(std::mem::take(&mut f.attrs));
        pool_frame(frame);
        match parent {
            Some(p) => frame = p,
            None => return,
        }
    }
}

/// Keeps `frame`, already emptied (its parent, scope, attributes and
/// dispatch taken), for [`new_frame`].
pub(crate) fn pool_frame(frame: FrameRef) {
    let _ = FRAME_POOL.try_with(|p| {
        if let Ok(mut p) = p.try_borrow_mut()
            && p.len() < FRAME_POOL_MAX
        {
            p.push(frame);
        }
    });
}

/// A shared frame. `triomphe`'s `Arc` has no weak count, so checking that a
/// frame is unshared (to reuse it, or to move its parts out when its scope
/// ends) is one atomic load where `std`'s `Arc::get_mut` needs a
/// compare-and-swap, and each of those costs ~10 ns here.
pub(crate) type FrameRef = triomphe::Arc<Frame>;

pub(crate) struct Frame {
    pub(crate) parent: Option<FrameRef>,
    /// This frame's own attributes.
    pub(crate) attrs: AttrBuf,
    /// Present when this frame is a scope.
    pub(crate) scope: Option<ScopeData>,
    /// The innermost scope at or above this frame.
    pub(crate) scope_id: Option<Uuid>,
    pub(crate) parent_scope_id: Option<Uuid>,
    pub(crate) tier: PricingTier,
    /// Where records made under this frame go when not to the global
    /// recorder (set by `testing::capture`). Inherited.
    pub(crate) dispatch: Option<Arc<dyn Dispatch>>,
}

/// Frames form chains as deep as the nesting (a context entered on top of
/// the current one in a loop builds one link per iteration): the chain is
/// released link by link, not by recursion, which would overflow the
/// thread's stack for a deep enough chain.
impl Drop for Frame {
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(mut p) = next {
            next = match FrameRef::get_mut(&mut p) {
                Some(f) => f.parent.take(),
                None => None,
            };
        }
    }
}

impl Frame {
    #[inline(always)]
    pub(crate) fn child(
        parent: Option<FrameRef>,
        attrs: AttrBuf,
        scope: Option<ScopeData>,
        tier: Option<PricingTier>,
        dispatch: Option<Arc<dyn Dispatch>>,
    ) -> Frame {
        let (inherited_scope, inherited_parent, inherited_tier, inherited_dispatch) = match &parent
        {
            Some(p) => (p.scope_id, p.parent_scope_id, p.tier, p.dispatch.clone()),
            None => (None, None, PricingTier::Standard, None),
        };
        let (scope_id, parent_scope_id) = match &scope {
            Some(s) => (Some(s.id), inherited_scope),
            None => (inherited_scope, inherited_parent),
        };
        Frame {
            parent,
            attrs,
            scope,
            scope_id,
            parent_scope_id,
            tier: tier.unwrap_or(inherited_tier),
            dispatch: dispatch.or(inherited_dispatch),
        }
    }

    /// This frame and its parents, innermost first.
    pub(crate) fn chain(&self) -> impl Iterator<Item = &Frame> {
        std::iter::successors(Some(self), |f| f.parent.as_deref())
    }

    /// The attribute buffers of [`Frame::chain`].
    pub(crate) fn attr_bufs(&self) -> impl Iterator<Item = &AttrBuf> {
        self.chain().map(|f| &f.attrs)
    }
}

/// A snapshot of the current context: its variables, its scope and its
/// pricing tier. Cheap to clone (one reference count).
///
/// ```
/// let _scope = costtrace::scope("receipt_processing").attr("job_id", "job-123").enter();
/// let ctx = costtrace::current();
/// assert_eq!(ctx.get("job_id"), Some("job-123"));
/// assert_eq!(ctx.get_or("batch_id", "none"), "none");
/// assert!(ctx.scope_id().is_some());
/// ```
#[derive(Clone, Default)]
pub struct Context {
    pub(crate) frame: Option<FrameRef>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("scope_id", &self.scope_id())
            .field("parent_scope_id", &self.parent_scope_id())
            .field("tier", &self.tier())
            .field("attrs", &self.attrs())
            .finish()
    }
}

impl Context {
    /// The empty context: no variables, no scope.
    pub const fn empty() -> Context {
        Context { frame: None }
    }

    /// The value of `key`, innermost first.
    pub fn get(&self, key: &str) -> Option<&str> {
        let mut f = self.frame.as_deref();
        while let Some(frame) = f {
            if let Some(v) = frame.attrs.get(key) {
                return Some(v);
            }
            f = frame.parent.as_deref();
        }
        None
    }

    /// The value of `key`, or `default` when it is not set.
    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }

    /// True when `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// All variables, flattened (a child's value overrides its parent's).
    pub fn attrs(&self) -> BTreeMap<String, String> {
        match &self.frame {
            Some(f) => attrs::flatten_owned(f.attr_bufs().map(AttrBuf::as_str)),
            None => BTreeMap::new(),
        }
    }

    /// The id of the innermost scope, if any.
    pub fn scope_id(&self) -> Option<Uuid> {
        self.frame.as_ref().and_then(|f| f.scope_id)
    }

    /// The id of the innermost scope's parent scope, if any.
    pub fn parent_scope_id(&self) -> Option<Uuid> {
        self.frame.as_ref().and_then(|f| f.parent_scope_id)
    }

    /// The pricing tier usage recorded here gets (batch inside a batch scope).
    pub fn tier(&self) -> PricingTier {
        self.frame
            .as_ref()
            .map_or(PricingTier::Standard, |f| f.tier)
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.frame.is_none()
    }

    /// Makes this the current context until the guard drops.
    pub fn enter(&self) -> ContextGuard {
        ContextGuard {
            restore: enter(self.clone()),
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with this as the current context.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.enter();
        f()
    }

    /// Wraps a closure so that it runs in this context wherever it is called:
    /// the way to carry context into `std::thread::spawn`, rayon or any thread
    /// pool.
    ///
    /// ```
    /// let _scope = costtrace::scope("parent").attr("tenant_id", "acme").enter();
    /// let work = costtrace::current().wrap(|| costtrace::current().get("tenant_id").map(str::to_owned));
    /// let seen = std::thread::spawn(work).join().unwrap();
    /// assert_eq!(seen.as_deref(), Some("acme"));
    /// ```
    pub fn wrap<F, R>(&self, f: F) -> impl FnOnce() -> R + Send + 'static
    where
        F: FnOnce() -> R + Send + 'static,
    {
        let ctx = self.clone();
        move || ctx.run(f)
    }

    /// A context with `attrs` set on top of this one (no scope is started).
    pub fn with<K, V>(&self, attrs: impl IntoIterator<Item = (K, V)>) -> Context
    where
        K: AsRef<str>,
        V: fmt::Display,
    {
        let mut buf = AttrBuf::default();
        for (k, v) in attrs {
            buf.push_display(k.as_ref(), &v);
        }
        Context {
            frame: Some(FrameRef::new(Frame::child(
                self.frame.clone(),
                buf,
                None,
                None,
                None,
            ))),
        }
    }

    pub(crate) fn dispatch(&self) -> Option<&Arc<dyn Dispatch>> {
        self.frame.as_ref().and_then(|f| f.dispatch.as_ref())
    }
}

thread_local! {
    static CURRENT: RefCell<Current> = const {
        RefCell::new(Current {
            ctx: Context::empty(),
            top: 0,
            last_id: 0,
            stack: Stack::new(),
            orphans: BTreeMap::new(),
            pending: Pending::empty(),
        })
    };
}

/// The thread's current context, and every context a still-active guard
/// displaced.
///
/// The thread-local owns the contexts; a guard ([`ContextGuard`],
/// `ScopeGuard`, a future's poll) holds only its id. Entering moves the new
/// context in and the displaced one onto `stack`; leaving moves them back.
/// So entering and leaving a scope touch no reference count (on this 2-core
/// machine each atomic read-modify-write costs ~10 ns, and holding the scope
/// in the guard as well took two per scope), and a `ScopeGuard` finds its
/// scope here when asked (`success()`, `handle()`, …).
///
/// Guards normally drop in the reverse order of their creation. One dropped
/// while a guard entered after it is still active takes its context out of
/// the stack and marks the entry dead; when the guard above it drops, the
/// context goes past every dead entry to the nearest guard still active, as
/// `tracing`'s per-thread span stack does.
struct Current {
    ctx: Context,
    /// The guard whose context is current (0: none).
    top: u64,
    /// The last guard id handed out on this thread.
    last_id: u64,
    /// Contexts displaced by active guards, oldest first.
    stack: Stack,
    /// Contexts of guards entered during a poll that has ended (a guard held
    /// across `.await`): no longer current, found by their guard's id.
    orphans: BTreeMap<u64, Context>,
    /// The innermost scope, when it was entered with a guard and nothing has
    /// needed its context yet (see [`Pending`]). When live, its guard is
    /// `top` and `ctx` is still the context it was entered in.
    pending: Pending,
}

/// A scope entered by a guard whose frame is not built yet.
///
/// Most scopes are leaves: nothing captures their context (no `current()`,
/// no usage recorded, no nested scope) before they end. Such a scope is kept
/// here as plain data and ends without a frame: no shared allocation is
/// filled, installed, taken apart and pooled again. The first operation that
/// needs the context as a frame, or that changes which context is current,
/// gives it one ([`materialize`]), and from then on it is an ordinary entered
/// frame: the state is then exactly what entering it with a frame would have
/// left.
///
/// One slot per thread, written field by field and read in place: moving the
/// scope's ~150 bytes in and out as a value cost more (copies through the
/// stack) than building the frame it saves.
pub(crate) struct Pending {
    live: bool,
    /// The guard's id (`top` while live).
    id: u64,
    /// The guard that was `top` when it was entered.
    owner: u64,
    pub(crate) attrs: AttrBuf,
    pub(crate) data: ScopeData,
    /// The scope's own tier, if it has one.
    pub(crate) tier: Option<PricingTier>,
}

impl Pending {
    const fn empty() -> Pending {
        Pending {
            live: false,
            id: 0,
            owner: 0,
            attrs: AttrBuf::EMPTY,
            data: ScopeData::empty(),
            tier: None,
        }
    }
}

/// Gives the pending scope, if any, its frame, entered as `install` would
/// have entered it (child of `ctx`, `ctx` displaced onto the stack by its
/// guard).
#[inline]
fn materialize(cur: &mut Current) {
    if cur.pending.live {
        materialize_pending(cur);
    }
}

#[cold]
#[inline(never)]
fn materialize_pending(cur: &mut Current) {
    let p = &mut cur.pending;
    p.live = false;
    let (id, owner, tier) = (p.id, p.owner, p.tier);
    let attrs = std::mem::take(&mut p.attrs);
    let mut data = std::mem::replace(&mut p.data, ScopeData::empty());
    data.id = crate::id::v7_at(data.started_micros);
    let frame = new_frame(Frame::child(
        cur.ctx.frame.clone(),
        attrs,
        Some(data),
        tier,
        None,
    ));
    let prev = std::mem::replace(&mut cur.ctx, Context { frame: Some(frame) });
    cur.stack.push(id, owner, prev);
}

/// The displaced contexts. Popped slots are kept and written again field by
/// field: pushing a whole entry made the compiler build it on the stack and
/// copy it with wide loads over narrow stores (a store-forwarding stall,
/// the costliest instruction of entering a scope in `perf`).
struct Stack {
    slots: Vec<Displaced>,
    len: usize,
}

impl Stack {
    const fn new() -> Stack {
        Stack {
            slots: Vec::new(),
            len: 0,
        }
    }

    #[inline(always)]
    fn push(&mut self, by: u64, owner: u64, ctx: Context) {
        match self.slots.get_mut(self.len) {
            Some(e) => {
                e.by = by;
                e.owner = owner;
                e.ctx = ctx;
                e.dead = false;
            }
            None => self.slots.push(Displaced {
                by,
                owner,
                ctx,
                dead: false,
            }),
        }
        self.len += 1;
    }

    /// The newest entry, popped (its context is still in it, to be taken).
    #[inline(always)]
    fn pop(&mut self) -> Option<&mut Displaced> {
        self.len = self.len.checked_sub(1)?;
        self.slots.get_mut(self.len)
    }

    /// Removes entry `i`; its slot (its context taken) is kept for reuse.
    fn remove(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i..self.len) {
            s.rotate_left(1);
            self.len -= 1;
        }
    }

    fn live(&self) -> &[Displaced] {
        self.slots.get(..self.len).unwrap_or_default()
    }

    fn live_mut(&mut self) -> &mut [Displaced] {
        self.slots.get_mut(..self.len).unwrap_or_default()
    }
}

/// A context displaced by the guard `by`.
struct Displaced {
    by: u64,
    /// The guard whose context this is (0: none).
    owner: u64,
    ctx: Context,
    /// `owner` was dropped while a guard entered after it was active.
    dead: bool,
}

/// Identifies a guard's entry in the thread's context state; 0 when nothing
/// was installed (thread teardown).
pub(crate) struct Restore {
    id: u64,
}

impl Restore {
    /// Nothing installed.
    pub(crate) fn none() -> Restore {
        Restore { id: 0 }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

/// Makes `ctx` current; the returned [`Restore`] goes to [`exit`] when the
/// guard drops. Never panics: during thread teardown it does nothing.
#[inline]
pub(crate) fn enter(ctx: Context) -> Restore {
    let mut ctx = Some(ctx);
    let id = CURRENT
        .try_with(|c| {
            let mut cur = c.try_borrow_mut().ok()?;
            Some(install(&mut cur, ctx.take()?))
        })
        .ok()
        .flatten()
        .unwrap_or(0);
    drop(ctx);
    Restore { id }
}

#[inline(always)]
fn install(cur: &mut Current, ctx: Context) -> u64 {
    materialize(cur);
    cur.last_id += 1;
    let id = cur.last_id;
    let prev = std::mem::replace(&mut cur.ctx, ctx);
    let owner = cur.top;
    cur.stack.push(id, owner, prev);
    cur.top = id;
    id
}

/// Makes a new scope current, as the [`Pending`] scope of the current
/// context: `fill` moves the scope out of `parts` into the thread's slot.
/// The returned [`Restore`] goes to [`exit_pending`]. `None`, with `parts`
/// untouched, when the thread-local is gone (thread teardown).
#[inline(always)]
pub(crate) fn enter_pending<P>(
    parts: &mut P,
    fill: impl FnOnce(&mut P, &mut Pending),
) -> Option<Restore> {
    CURRENT
        .try_with(|c| {
            let mut cur = c.try_borrow_mut().ok()?;
            materialize(&mut cur);
            cur.last_id += 1;
            let id = cur.last_id;
            let owner = cur.top;
            let p = &mut cur.pending;
            fill(parts, p);
            p.id = id;
            p.owner = owner;
            p.live = true;
            cur.top = id;
            Some(Restore { id })
        })
        .ok()
        .flatten()
}

/// Ends the guard `r` came from when its scope is still pending: `end` gets
/// the scope (to take its parts out) and the context it was entered in, and
/// the context from before it is current again. When the scope is not
/// pending (it got a frame), does what [`exit_take`] does, in the same
/// borrow, and answers `Err` with the scope's context.
#[inline(always)]
pub(crate) fn exit_pending<R>(
    r: &mut Restore,
    end: impl FnOnce(&mut Pending, Option<&FrameRef>) -> R,
) -> Result<R, Option<Context>> {
    let id = std::mem::replace(&mut r.id, 0);
    if id == 0 {
        return Err(None);
    }
    let mut dropped = Vec::new();
    let out = CURRENT
        .try_with(|c| {
            let mut cur = c.try_borrow_mut().ok()?;
            let cur = &mut *cur;
            if cur.pending.live && cur.pending.id == id {
                cur.pending.live = false;
                cur.top = cur.pending.owner;
                return Some(Ok(end(&mut cur.pending, cur.ctx.frame.as_ref())));
            }
            Some(Err(take_exited(cur, id, &mut dropped)))
        })
        .ok()
        .flatten();
    drop(dropped);
    out.unwrap_or(Err(None))
}

/// Ends the guard `r` came from and hands back its context: when its context
/// is current, the context it displaced comes back (past dead entries);
/// otherwise its context is taken from where it waits and the entry marked
/// dead. Idempotent.
#[inline]
pub(crate) fn exit_take(r: &mut Restore) -> Option<Context> {
    let id = std::mem::replace(&mut r.id, 0);
    if id == 0 {
        return None;
    }
    let mut dropped = Vec::new();
    let mine = CURRENT
        .try_with(|c| {
            let mut cur = c.try_borrow_mut().ok()?;
            take_exited(&mut cur, id, &mut dropped)
        })
        .ok()
        .flatten();
    drop(dropped);
    mine
}

/// [`exit_take`] inside the borrow. Contexts to drop go to `dropped`
/// (dropped after the borrow ends).
#[inline]
fn take_exited(cur: &mut Current, id: u64, dropped: &mut Vec<Context>) -> Option<Context> {
    materialize(cur);
    if cur.top == id {
        let mine = std::mem::take(&mut cur.ctx);
        restore_below(cur, dropped);
        Some(mine)
    } else {
        take_waiting(cur, id)
    }
}

/// [`exit_take`], dropping the context.
#[inline]
pub(crate) fn exit(r: &mut Restore) {
    drop(exit_take(r));
}

/// Pops the stack down to the nearest entry whose owner is active and makes
/// its context current. Dead entries' contexts go to `dropped` (dropped
/// after the borrow ends).
#[inline]
fn restore_below(cur: &mut Current, dropped: &mut Vec<Context>) {
    loop {
        let Some(e) = cur.stack.pop() else {
            cur.top = 0;
            return;
        };
        let ctx = std::mem::take(&mut e.ctx);
        if !e.dead {
            cur.top = e.owner;
            cur.ctx = ctx;
            return;
        }
        dropped.push(ctx);
    }
}

/// The context of guard `id` when it is not current: displaced by a later
/// guard, or orphaned by an ended poll.
///
/// Displaced: the entry right below the one holding it is the entry this
/// guard pushed when it entered, so what this guard displaced goes straight
/// to the guard above and that entry is removed. No dead entry is left
/// behind, so a guard replaced in a loop (`g = ctx.enter()`, which enters the
/// new guard before dropping the old) keeps the stack flat.
#[cold]
fn take_waiting(cur: &mut Current, id: u64) -> Option<Context> {
    let live = cur.stack.live_mut();
    if let Some(i) = live.iter().rposition(|d| d.owner == id && !d.dead) {
        let mine = std::mem::take(&mut live[i].ctx);
        match i.checked_sub(1) {
            Some(below) if live[below].by == id => {
                let (owner, dead) = (live[below].owner, live[below].dead);
                let ctx = std::mem::take(&mut live[below].ctx);
                let above = &mut live[i];
                above.owner = owner;
                above.dead = dead;
                above.ctx = ctx;
                cur.stack.remove(below);
            }
            _ => live[i].dead = true,
        }
        return Some(mine);
    }
    cur.orphans.remove(&id)
}

/// Runs `f` on guard `id`'s scope while it is still pending; `None` (and
/// `f` not run) when it has a frame or is not this thread's. For marking a
/// scope failed without giving it a frame.
pub(crate) fn with_pending<R>(id: u64, f: impl FnOnce(&ScopeData) -> R) -> Option<R> {
    if id == 0 {
        return None;
    }
    CURRENT
        .try_with(|c| {
            let cur = c.try_borrow().ok()?;
            let p = &cur.pending;
            (p.live && p.id == id).then(|| f(&p.data))
        })
        .ok()
        .flatten()
}

/// A clone of guard `id`'s context, wherever it waits.
pub(crate) fn guard_context(id: u64) -> Option<Context> {
    if id == 0 {
        return None;
    }
    CURRENT
        .try_with(|c| {
            let mut cur = c.try_borrow_mut().ok()?;
            materialize(&mut cur);
            if cur.top == id {
                return Some(cur.ctx.clone());
            }
            if let Some(d) = cur
                .stack
                .live()
                .iter()
                .rev()
                .find(|d| d.owner == id && !d.dead)
            {
                return Some(d.ctx.clone());
            }
            cur.orphans.get(&id).cloned()
        })
        .ok()
        .flatten()
}

/// The thread's context state around one poll of a future.
pub(crate) struct Saved {
    id: u64,
}

/// Makes `ctx` current for one poll.
#[inline]
pub(crate) fn enter_poll(ctx: Context) -> Option<Saved> {
    match enter(ctx) {
        Restore { id: 0 } => None,
        Restore { id } => Some(Saved { id }),
    }
}

/// Ends the poll [`enter_poll`] began: the context from before the poll comes
/// back, whatever guards the poll left active (held across `.await`); their
/// contexts are kept aside for when those guards drop.
#[inline]
pub(crate) fn exit_poll(saved: Saved) {
    let id = saved.id;
    // Dropped after the borrow ends. The poll's own context is held apart:
    // pushed onto `dropped` it made every poll allocate the vector.
    let mut mine = Context::empty();
    let mut dropped = Vec::new();
    let _ = CURRENT.try_with(|c| {
        let Ok(mut cur) = c.try_borrow_mut() else {
            return;
        };
        materialize(&mut cur);
        if cur.top == id {
            mine = std::mem::take(&mut cur.ctx);
            restore_below(&mut cur, &mut dropped);
            return;
        }
        exit_poll_unordered(&mut cur, id, &mut dropped);
    });
    drop(mine);
    drop(dropped);
}

/// Ends the guard `r` came from as the end of a poll ends the poll's context
/// ([`exit_poll`]: guards the poll left active wait as orphans) and hands
/// back its context. For a scope entered at the start of a future's first
/// poll when that poll has to wait: the future keeps the scope's context for
/// its later polls.
#[cold]
pub(crate) fn exit_poll_keep(r: &mut Restore) -> Option<Context> {
    let id = std::mem::replace(&mut r.id, 0);
    if id == 0 {
        return None;
    }
    let ctx = guard_context(id);
    exit_poll(Saved { id });
    ctx
}

#[cold]
#[inline(never)]
fn exit_poll_unordered(cur: &mut Current, id: u64, dropped: &mut Vec<Context>) {
    if !cur.stack.live().iter().any(|d| d.by == id) {
        // The poll's own entry is gone (its state was cleared by a guard
        // leak): leave the context alone.
        return;
    }
    // Guards entered during the poll are still active: their contexts wait
    // as orphans.
    let top = std::mem::take(&mut cur.top);
    let ctx = std::mem::take(&mut cur.ctx);
    if top != id && top != 0 {
        orphan(cur, top, ctx, dropped);
    } else {
        dropped.push(ctx);
    }
    while let Some(e) = cur.stack.pop() {
        let (by, owner, dead) = (e.by, e.owner, e.dead);
        let ctx = std::mem::take(&mut e.ctx);
        if by == id {
            if dead {
                dropped.push(ctx);
                restore_below(cur, dropped);
            } else {
                cur.ctx = ctx;
                cur.top = owner;
            }
            return;
        }
        if dead || owner == id || owner == 0 {
            dropped.push(ctx);
        } else {
            orphan(cur, owner, ctx, dropped);
        }
    }
}

/// Keeps the context of a guard entered during a poll that has ended, until
/// the guard drops. Not bounded: each belongs to a live guard (one leaked
/// with `mem::forget` leaks it, as the guard's own memory is leaked).
fn orphan(cur: &mut Current, owner: u64, ctx: Context, dropped: &mut Vec<Context>) {
    if let Some(old) = cur.orphans.insert(owner, ctx) {
        dropped.push(old);
    }
}

/// Reads the current frame without cloning the whole context.
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    // `try_with` fails only during thread teardown; then `f` is still here
    // and runs with the empty context. One exclusive borrow: a pending scope
    // gets its frame (`f` reads the context as frames). No application code
    // runs while the state is borrowed, and none of this crate's code that
    // does (ending a pending scope sends its event) reads the context, so
    // this never finds it borrowed.
    let _ = CURRENT.try_with(|c| {
        if let Some(f) = f.take() {
            out = Some(match c.try_borrow_mut() {
                Ok(mut cur) => {
                    materialize(&mut cur);
                    f(&cur.ctx)
                }
                Err(_) => f(&Context::empty()),
            });
        }
    });
    match (out, f) {
        (Some(r), _) => r,
        (None, Some(f)) => f(&Context::empty()),
        (None, None) => unreachable!("the closure either ran or is still here"),
    }
}

/// Whether `frame` is the current context's frame. Reads the thread's state
/// without changing it (a pending scope, which has no frame yet, matches
/// nothing) and answers `false` when that state is in use or gone.
#[inline]
pub(crate) fn is_current_frame(frame: &FrameRef) -> bool {
    CURRENT
        .try_with(|c| {
            c.try_borrow()
                .is_ok_and(|cur| same_frame(cur.ctx.frame.as_ref(), Some(frame)))
        })
        .unwrap_or(false)
}

/// Whether `a` and `b` are the same frame (or both none).
#[inline]
pub(crate) fn same_frame(a: Option<&FrameRef>, b: Option<&FrameRef>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => FrameRef::ptr_eq(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// The current context (cheap: one reference count).
pub fn current() -> Context {
    with_current(Context::clone)
}

/// Restores the previous context when dropped, also while unwinding.
///
/// Guards may drop in any order: one dropped while a guard entered after it
/// is still active leaves that guard's context current, and when that guard
/// drops the context becomes the nearest one whose guard is still alive.
///
/// Not `Send`: a guard belongs to the thread whose context it changed. In
/// async code use [`crate::FutureExt`] instead of holding a guard across
/// `.await`.
#[must_use = "the context is restored as soon as the guard is dropped"]
pub struct ContextGuard {
    restore: Restore,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ContextGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextGuard").finish_non_exhaustive()
    }
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        exit(&mut self.restore);
    }
}

/// Sets request variables (seed 003's `with_context`) on top of the current
/// context until the guard drops. No scope record is made: use
/// [`crate::scope`] for that.
///
/// ```
/// {
///     let _req = costtrace::with_context([("tenant_id", "acme-corp"), ("user_id", "user_123")]);
///     assert_eq!(costtrace::get_context().get("tenant_id"), Some("acme-corp"));
/// }
/// assert_eq!(costtrace::get_context().get("tenant_id"), None);
/// ```
pub fn with_context<K, V>(attrs: impl IntoIterator<Item = (K, V)>) -> ContextGuard
where
    K: AsRef<str>,
    V: fmt::Display,
{
    let ctx = current().with(attrs);
    ctx.enter()
}

/// The current context (seed 003's `get_context`); same as [`current`].
pub fn get_context() -> Context {
    current()
}

/// Clears the context for the current thread or task until the guard drops
/// (seed 003's `clear_context`); the previous context comes back afterwards.
/// A recorder override installed by `testing::capture` is kept.
pub fn clear_context() -> ContextGuard {
    let dispatch = current().dispatch().cloned();
    let ctx = match dispatch {
        Some(d) => Context {
            frame: Some(FrameRef::new(Frame::child(
                None,
                AttrBuf::default(),
                None,
                None,
                Some(d),
            ))),
        },
        None => Context::empty(),
    };
    ctx.enter()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn depth() -> usize {
        CURRENT.with(|c| c.borrow().stack.len)
    }

    #[test]
    fn a_guard_replaced_in_a_loop_leaves_the_stack_flat() {
        let base = depth();
        let mut g = with_context([("i", 0)]);
        for i in 1..10_000 {
            // The new guard is entered before the old one drops.
            g = with_context([("i", i)]);
        }
        assert_eq!(depth(), base + 1);
        assert_eq!(current().get("i"), Some("9999"));
        drop(g);
        assert_eq!(depth(), base);
        assert_eq!(current().get("i"), None);

        let cap = crate::testing::capture();
        let base = depth();
        let mut s = crate::scope("s0").enter();
        for i in 1..1_000 {
            s = crate::scope(format!("s{i}")).enter();
        }
        assert_eq!(depth(), base + 1);
        drop(s);
        assert_eq!(depth(), base);
        let scopes = cap.scopes();
        assert_eq!(scopes.len(), 1_000);
        // Each was entered while the one before it was current.
        assert!(scopes.iter().skip(1).all(|s| s.parent_id.is_some()));
    }

    #[test]
    fn out_of_order_drops_in_the_middle_splice_the_stack() {
        let base = depth();
        let a = with_context([("k", "a")]);
        let b = with_context([("k", "b")]);
        let c = with_context([("k", "c")]);
        drop(b);
        assert_eq!(depth(), base + 2);
        assert_eq!(current().get("k"), Some("c"));
        drop(c);
        assert_eq!(current().get("k"), Some("a"));
        drop(a);
        assert_eq!((depth(), current().get("k")), (base, None));
    }
}
