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

/// Keeps `attrs`' buffer (emptied) for reuse on this thread.
pub(crate) fn recycle_attrs(attrs: AttrBuf) {
    let v = attrs.into_buffer();
    if v.capacity() == 0 || v.capacity() > attrs::POOLED_MAX_CAPACITY {
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
/// dropped now, on this thread.
pub(crate) fn recycle_frame(mut frame: FrameRef) {
    if let Some(f) = FrameRef::get_mut(&mut frame) {
        f.parent = None;
        f.scope = None;
        f.dispatch = None;
        recycle_attrs(std::mem::take(&mut f.attrs));
        pool_frame(frame);
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
            Some(f) => attrs::flatten_owned(f.attr_bufs()),
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
            ended: Vec::new(),
        })
    };
}

/// The thread's current context and which guard installed it.
///
/// Guards ([`ContextGuard`], `ScopeGuard`) normally drop in the reverse order
/// of their creation, and each puts back the context it replaced. When one is
/// dropped while a guard entered after it is still active (fields of a struct
/// drop in declaration order, for instance), the context is left alone and
/// the ended guard is remembered in `ended`; when the guard above it drops,
/// the context goes past every ended guard to the nearest one still active,
/// as `tracing`'s per-thread span stack does.
struct Current {
    ctx: Context,
    /// The guard whose context is current (0: none).
    top: u64,
    /// The last guard id handed out on this thread.
    last_id: u64,
    /// Guards dropped while a guard entered after them was still active.
    ended: Vec<Ended>,
}

struct Ended {
    id: u64,
    below: u64,
    prev: Context,
}

/// More ended-but-pending guards than this means guards are being leaked
/// (`mem::forget`); the old behaviour (restore unconditionally) takes over.
const ENDED_MAX: usize = 256;

/// What a guard needs to put back the context it replaced.
pub(crate) struct Restore {
    prev: Context,
    /// This guard's id; 0 once restored or when nothing was installed.
    id: u64,
    /// The guard that was current when this one was entered.
    below: u64,
}

/// Makes `ctx` current; the returned [`Restore`] goes to [`exit`] when the
/// guard drops. Never panics: during thread teardown it does nothing.
#[inline]
pub(crate) fn enter(ctx: Context) -> Restore {
    CURRENT
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut cur) => {
                cur.last_id += 1;
                let id = cur.last_id;
                let below = std::mem::replace(&mut cur.top, id);
                let prev = std::mem::replace(&mut cur.ctx, ctx);
                Restore { prev, id, below }
            }
            Err(_) => Restore {
                prev: Context::empty(),
                id: 0,
                below: 0,
            },
        })
        .unwrap_or(Restore {
            prev: Context::empty(),
            id: 0,
            below: 0,
        })
}

/// Ends the guard `r` came from: puts its previous context back if its
/// context is current, else leaves the context to the guards entered after
/// it (see [`Current`]). Idempotent.
#[inline]
pub(crate) fn exit(r: &mut Restore) {
    let id = std::mem::replace(&mut r.id, 0);
    if id == 0 {
        return;
    }
    let prev = std::mem::take(&mut r.prev);
    let below = r.below;
    // What was replaced is dropped after the borrow ends.
    let _replaced = CURRENT.try_with(|c| {
        let Ok(mut cur) = c.try_borrow_mut() else {
            return (prev, Vec::new());
        };
        if cur.top == id && cur.ended.is_empty() {
            cur.top = below;
            (std::mem::replace(&mut cur.ctx, prev), Vec::new())
        } else {
            exit_unordered(&mut cur, id, below, prev)
        }
    });
}

/// Contexts taken off the thread by [`exit`], dropped once it is done.
type Replaced = (Context, Vec<Context>);

#[cold]
#[inline(never)]
fn exit_unordered(cur: &mut Current, id: u64, below: u64, prev: Context) -> Replaced {
    if cur.top != id {
        if id < cur.top && cur.ended.len() < ENDED_MAX {
            // A guard entered after this one is still active: it keeps the
            // context, and skips this one when it drops.
            cur.ended.push(Ended { id, below, prev });
            return (Context::empty(), Vec::new());
        }
        if id > cur.top {
            // Not below the current guard: entered inside a poll that has
            // ended (held across `.await`). Nothing of it is current.
            return (prev, Vec::new());
        }
        // Too many pending: guards are leaked; restore unconditionally.
    }
    let mut replaced = Vec::new();
    cur.top = below;
    let first = std::mem::replace(&mut cur.ctx, prev);
    while let Some(i) = cur.ended.iter().position(|e| e.id == cur.top) {
        let e = cur.ended.swap_remove(i);
        cur.top = e.below;
        replaced.push(std::mem::replace(&mut cur.ctx, e.prev));
    }
    // Pending guards above the new top can no longer be reached (their
    // guards were held across `.await` or leaked): forget them.
    let top = cur.top;
    cur.ended.retain_mut(|e| {
        if e.id > top {
            replaced.push(std::mem::take(&mut e.prev));
            false
        } else {
            true
        }
    });
    (first, replaced)
}

/// The whole context state of the thread, saved by a future's poll and put
/// back when the poll returns, whatever guards the poll left behind.
pub(crate) struct Saved {
    ctx: Context,
    top: u64,
    ended: Vec<Ended>,
}

/// Makes `ctx` current for one poll.
#[inline]
pub(crate) fn enter_poll(ctx: Context) -> Option<Saved> {
    CURRENT
        .try_with(|c| {
            let mut cur = c.try_borrow_mut().ok()?;
            Some(Saved {
                ctx: std::mem::replace(&mut cur.ctx, ctx),
                top: cur.top,
                ended: std::mem::take(&mut cur.ended),
            })
        })
        .ok()
        .flatten()
}

/// Puts back what [`enter_poll`] saved.
#[inline]
pub(crate) fn exit_poll(saved: Saved) {
    let _replaced = CURRENT.try_with(|c| {
        let Ok(mut cur) = c.try_borrow_mut() else {
            return None;
        };
        cur.top = saved.top;
        Some((
            std::mem::replace(&mut cur.ctx, saved.ctx),
            std::mem::replace(&mut cur.ended, saved.ended),
        ))
    });
}

/// Reads the current frame without cloning the whole context.
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    // `try_with` fails only during thread teardown; then `f` is still here
    // and runs with the empty context.
    let _ = CURRENT.try_with(|c| {
        if let Some(f) = f.take() {
            out = Some(match c.try_borrow() {
                Ok(cur) => f(&cur.ctx),
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
