//! The hot paths allocate nothing once a thread's pools are warm: entering
//! and leaving scopes (with short attributes), `#[tracked]` calls, reading
//! the context, and polls of instrumented futures. Counted by a global
//! allocator (per thread), so a regression shows as a count, not as a slower
//! benchmark. (`record` reuses the boxes of usage events the recorder has
//! handed back; in a burst, before they come back, it allocates.)

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(unsafe_code)] // a `GlobalAlloc` is necessarily unsafe to implement

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::task::{Context as TaskContext, Poll, Waker};

use costtrace::{FutureExt, scope, tracked};

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is a const-initialized thread-local `Cell` (no allocation, no
// destructor), read with `try_with` so that it is never touched after the
// thread's locals are gone.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread in 500 calls of `f`, after warming the
/// thread's pools and letting the recorder drain: 500 events fit in the
/// thread's ring (past it, a burst makes a larger ring, which is not the
/// hot path).
fn allocations_in(mut f: impl FnMut()) -> u64 {
    for _ in 0..100 {
        f();
    }
    costtrace::flush().unwrap();
    let before = ALLOCS.with(Cell::get);
    for _ in 0..500 {
        f();
    }
    let n = ALLOCS.with(Cell::get) - before;
    costtrace::flush().unwrap();
    n
}

fn poll_once<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut TaskContext::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future never awaits"),
    }
}

#[tracked]
fn tracked_sync(job_id: &str) -> usize {
    job_id.len()
}

#[tracked]
async fn tracked_async(job_id: &str) -> usize {
    job_id.len()
}

#[test]
fn hot_paths_do_not_allocate() {
    let _recorder = costtrace::Config::new()
        .no_spool()
        .sink(costtrace::sink::SinkSpec::None)
        .init()
        .unwrap();
    let _outer = scope("outer").attr("tenant_id", "acme").enter();
    assert_eq!(allocations_in(|| drop(scope("op").enter())), 0, "a scope");
    assert_eq!(
        allocations_in(|| drop(scope("op").attr("job_id", "job-123").enter())),
        0,
        "a scope with a short attribute"
    );
    assert_eq!(
        allocations_in(|| {
            std::hint::black_box(tracked_sync("job-123"));
        }),
        0,
        "a #[tracked] call"
    );
    assert_eq!(
        allocations_in(|| {
            std::hint::black_box(costtrace::current().get("tenant_id"));
        }),
        0,
        "a context read"
    );
    assert_eq!(
        allocations_in(|| {
            std::hint::black_box(poll_once(async { 1 }.in_current_context()));
        }),
        0,
        "a poll in the current context"
    );
    assert_eq!(
        allocations_in(|| {
            std::hint::black_box(poll_once(tracked_async("job-123")));
        }),
        0,
        "a #[tracked] async call"
    );
}
