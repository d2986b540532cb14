//! Carrying the context through futures: re-entered on every poll, as
//! `tracing::Instrument` does, so tasks interleaved on one thread, or moved
//! between threads by a work-stealing runtime, each see their own context.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::context::{self, Context};
use crate::id::Instant;
use crate::scope::{ActiveScope, ScopeBuilder};

/// Attaches costtrace context to futures.
///
/// ```
/// use costtrace::FutureExt;
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let cap = costtrace::testing::capture();
/// let n = async { costtrace::current().get("job_id").map(str::len) }
///     .in_scope(costtrace::scope("load").attr("job_id", "job-1"))
///     .await;
/// assert_eq!(n, Some(5));
/// assert_eq!(cap.scopes()[0].name, "load");
/// # });
/// ```
pub trait FutureExt: Future + Sized {
    /// Runs the future inside a new scope, started now as a child of the
    /// current context and recorded when the future completes (or, if it is
    /// dropped first, recorded as cancelled).
    fn in_scope(self, scope: ScopeBuilder) -> InScope<Self> {
        let active = scope.start();
        InScope {
            inner: WithContext::new(self, active.context(), true),
            active: Some(active),
        }
    }

    /// Runs the future in the context current now, wherever it is polled.
    fn in_current_context(self) -> WithContext<Self> {
        WithContext::new(self, context::current(), false)
    }

    /// Runs the future in `ctx`.
    fn with_context(self, ctx: Context) -> WithContext<Self> {
        WithContext::new(self, ctx, false)
    }
}

impl<F: Future> FutureExt for F {}

pin_project! {
    /// A future that runs in a given context; see [`FutureExt`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct WithContext<F> {
        #[pin]
        inner: F,
        ctx: Context,
        watch_panics: bool,
    }
}

impl<F> WithContext<F> {
    pub(crate) fn new(inner: F, ctx: Context, watch_panics: bool) -> Self {
        WithContext {
            inner,
            ctx,
            watch_panics,
        }
    }
}

/// Restores the previous context when dropped, and when the poll unwinds
/// marks the innermost scope as panicked.
struct PollGuard<'a> {
    saved: Option<context::Saved>,
    /// The polled context's frame, whose scope (if any) a panic marks.
    frame: Option<&'a crate::context::FrameRef>,
    watch_panics: bool,
    /// When the poll began during an unwind (run by a `Drop`): when it began,
    /// so that only a panic raised inside the poll marks the scope.
    panicking_since: Option<Instant>,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            context::exit_poll(saved);
        }
        if self.watch_panics
            && std::thread::panicking()
            && self
                .panicking_since
                .is_none_or(|since| crate::panic::unwinding_since(true, since))
            && let Some(frame) = self.frame
            && let Some(s) = &frame.scope
        {
            s.set_error_if_none(|| crate::panic::describe_since(s.start));
        }
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = PollGuard {
            saved: context::enter_poll(this.ctx.clone()),
            frame: this.ctx.frame.as_ref(),
            watch_panics: *this.watch_panics,
            panicking_since: (*this.watch_panics && std::thread::panicking()).then(Instant::now),
        };
        this.inner.poll(cx)
    }
}

pin_project! {
    /// A future running inside its own scope; see [`FutureExt::in_scope`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct InScope<F> {
        #[pin]
        inner: WithContext<F>,
        active: Option<ActiveScope>,
    }
}

impl<F> InScope<F> {
    /// A handle on the scope, for counting item outcomes.
    pub fn scope(&self) -> Option<&crate::ScopeHandle> {
        self.active.as_ref().map(ActiveScope::handle)
    }
}

impl<F: Future> Future for InScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = this.inner.poll(cx);
        if out.is_ready()
            && let Some(active) = this.active.take()
        {
            active.complete();
        }
        out
    }
}

pin_project! {
    /// Used by `#[tracked]` on async fns: runs the body in the scope's
    /// context and marks the scope if a poll panics. Borrows the scope
    /// (which the async fn holds until the body is done) instead of holding
    /// a second reference to its frame: a reference count taken and
    /// released less per call.
    #[doc(hidden)]
    #[must_use = "futures do nothing unless polled"]
    pub struct __Watched<'a, F> {
        #[pin]
        inner: F,
        active: &'a ActiveScope,
    }
}

impl<F> std::fmt::Debug for __Watched<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for __Watched<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        poll_in_scope(this.inner, this.active, cx)
    }
}

/// Polls `inner` with `active`'s context current, marking the scope if the
/// poll panics.
#[inline]
fn poll_in_scope<F: Future>(
    inner: Pin<&mut F>,
    active: &ActiveScope,
    cx: &mut TaskContext<'_>,
) -> Poll<F::Output> {
    let frame = &active.handle().frame;
    let _guard = PollGuard {
        saved: context::enter_poll(Context {
            frame: Some(frame.clone()),
        }),
        frame: Some(frame),
        watch_panics: true,
        panicking_since: std::thread::panicking().then(Instant::now),
    };
    inner.poll(cx)
}

/// See [`__Watched`].
#[doc(hidden)]
pub fn __watched<F: Future>(active: &ActiveScope, fut: F) -> __Watched<'_, F> {
    __Watched { inner: fut, active }
}

pin_project! {
    /// Used by `#[tracked]` on sync fns that return a future: the scope
    /// started by the call is current while the future is polled, and is
    /// recorded when it completes, failed with what `error_of` finds in the
    /// output (or as cancelled if the future is dropped first).
    #[doc(hidden)]
    #[must_use = "futures do nothing unless polled"]
    pub struct __Tracked<F, C> {
        #[pin]
        inner: WithContext<F>,
        active: Option<ActiveScope>,
        error_of: Option<C>,
    }
}

impl<F, C> std::fmt::Debug for __Tracked<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl<F: Future, C: FnOnce(&F::Output) -> Option<String>> Future for __Tracked<F, C> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Poll::Ready(out) = this.inner.poll(cx) else {
            return Poll::Pending;
        };
        if let Some(active) = this.active.take() {
            let error = this.error_of.take().and_then(|e| e(&out));
            active.complete_with(error);
        }
        Poll::Ready(out)
    }
}

/// See [`__Tracked`].
#[doc(hidden)]
pub fn __tracked<F, C>(active: ActiveScope, fut: F, error_of: C) -> __Tracked<F, C>
where
    F: Future,
    C: FnOnce(&F::Output) -> Option<String>,
{
    __Tracked {
        inner: WithContext::new(fut, active.context(), true),
        active: Some(active),
        error_of: Some(error_of),
    }
}

pin_project! {
    /// Used by `#[tracked]` on async fns: the body runs in the function's
    /// scope, which is recorded when the body completes, failed with what
    /// `error_of` finds in the output (as panicked if a poll panics, as
    /// cancelled if the future is dropped first).
    ///
    /// The first poll enters the scope as a guard would, so a body that
    /// completes in that poll ends the scope as a [`ScopeGuard`] does: from
    /// the thread's pending slot, without a frame unless something inside
    /// asked for its context. A body that has to wait keeps the scope's frame
    /// and re-enters it on every later poll, as `in_scope` does.
    ///
    /// [`ScopeGuard`]: crate::ScopeGuard
    #[doc(hidden)]
    #[must_use = "futures do nothing unless polled"]
    pub struct __Scoped<F, C> {
        #[pin]
        inner: F,
        state: ScopedState,
        error_of: Option<C>,
    }
}

enum ScopedState {
    /// Not polled yet.
    Unstarted(ScopeBuilder),
    /// Waiting: polled at least once.
    Parked(ActiveScope),
    /// Completed (or the scope was lost to a panic in a poll).
    Done,
}

impl<F, C> std::fmt::Debug for __Scoped<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Scoped");
        match &self.state {
            ScopedState::Unstarted(b) => d.field("unstarted", b),
            ScopedState::Parked(a) => d.field("active", a),
            ScopedState::Done => d.field("done", &true),
        };
        d.finish_non_exhaustive()
    }
}

impl<F: Future, C: FnOnce(&F::Output) -> Option<String>> Future for __Scoped<F, C> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let ScopedState::Unstarted(b) = this.state {
            // Entered from where it is (moving the builder out first cost
            // two copies of it).
            let guard = b.enter_from();
            *this.state = ScopedState::Done;
            // A panic in the poll drops the guard while unwinding, which
            // records the scope as panicked.
            return match this.inner.poll(cx) {
                Poll::Ready(out) => {
                    if let Some(e) = this.error_of.take().and_then(|e| e(&out)) {
                        guard.fail(e);
                    }
                    drop(guard);
                    Poll::Ready(out)
                }
                Poll::Pending => {
                    *this.state = ScopedState::Parked(guard.park());
                    Poll::Pending
                }
            };
        }
        let ScopedState::Parked(active) = std::mem::replace(this.state, ScopedState::Done) else {
            // Polled again after completing: the body answers as it does
            // (an `async` block panics).
            return this.inner.poll(cx);
        };
        match poll_in_scope(this.inner, &active, cx) {
            Poll::Ready(out) => {
                let error = this.error_of.take().and_then(|e| e(&out));
                active.complete_with(error);
                Poll::Ready(out)
            }
            Poll::Pending => {
                *this.state = ScopedState::Parked(active);
                Poll::Pending
            }
        }
    }
}

/// See [`__Scoped`].
#[doc(hidden)]
pub fn __scoped<F, C>(builder: ScopeBuilder, fut: F, error_of: C) -> __Scoped<F, C>
where
    F: Future,
    C: FnOnce(&F::Output) -> Option<String>,
{
    __Scoped {
        inner: fut,
        state: ScopedState::Unstarted(builder),
        error_of: Some(error_of),
    }
}
