//! Per-task isolation on a multi-thread runtime, and the spawn helpers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use costtrace::testing::capture;
use costtrace::{FutureExt, Usage, current, scope};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap()
}

/// Runs `f` on a current-thread runtime in a `LocalSet`, where futures
/// holding a (non-`Send`) guard may run.
fn block_on_local<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, f)
}

#[test]
fn ten_thousand_interleaved_tasks_never_see_each_other() {
    rt().block_on(async {
        let cap = capture();
        let mut handles = Vec::new();
        for i in 0..10_000u64 {
            let task = async move {
                for step in 0..3 {
                    assert_eq!(
                        current().get("task"),
                        Some(i.to_string().as_str()),
                        "before yield {step}"
                    );
                    if i % 7 == 0 {
                        tokio::time::sleep(Duration::from_micros(50)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                costtrace::record(Usage::service("transformer").units("chunks", i));
                current().get("task").map(String::from)
            }
            .in_scope(scope("task").attr("task", i));
            handles.push(costtrace::spawn(task));
        }
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), Some(i.to_string()));
        }
        let usages = cap.usages();
        assert_eq!(usages.len(), 10_000);
        for u in usages {
            assert_eq!(u.attrs["task"], u.units["chunks"].to_string());
        }
        assert_eq!(cap.scopes().len(), 10_000);
    });
}

/// A `#[tracked]` async fn: some calls complete in their first poll (their
/// scope ends from the thread's pending slot), the others wait and resume on
/// whichever worker picks them up.
#[costtrace::tracked]
async fn tracked_task(task_id: u64) -> Option<String> {
    if !task_id.is_multiple_of(3) {
        for _ in 0..2 {
            assert_eq!(current().get("task_id"), Some(task_id.to_string().as_str()));
            if task_id.is_multiple_of(5) {
                tokio::time::sleep(Duration::from_micros(50)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }
    costtrace::record(Usage::service("transformer").units("chunks", task_id));
    current().get("task_id").map(String::from)
}

#[test]
fn ten_thousand_tracked_async_calls_never_see_each_other() {
    rt().block_on(async {
        let cap = capture();
        let parent = scope("batch").enter();
        let batch_id = parent.id();
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| costtrace::spawn(tracked_task(i)))
            .collect();
        drop(parent);
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), Some(i.to_string()));
        }
        let scopes = cap.scopes();
        let tasks: std::collections::HashMap<_, _> = scopes
            .iter()
            .filter(|s| s.name == "tracked_task")
            .map(|s| (s.id, s))
            .collect();
        assert_eq!(tasks.len(), 10_000);
        assert!(
            tasks
                .values()
                .all(|s| s.parent_id == Some(batch_id) && !s.error_occurred)
        );
        let usages = cap.usages();
        assert_eq!(usages.len(), 10_000);
        for u in usages {
            let s = tasks[&u.scope_id.unwrap()];
            assert_eq!(s.attrs["task_id"], u.units["chunks"].to_string());
            assert_eq!(u.attrs["task_id"], u.units["chunks"].to_string());
        }
    });
}

#[test]
fn spawn_carries_context_and_bare_tokio_spawn_does_not() {
    rt().block_on(async {
        let _req = costtrace::with_context([("tenant_id", "acme")]);
        let carried = costtrace::spawn(async { current().get("tenant_id").map(String::from) });
        let bare = tokio::spawn(async { current().get("tenant_id").map(String::from) });
        let blocking = costtrace::spawn_blocking(|| current().get("tenant_id").map(String::from));
        let manual = tokio::spawn(
            async { current().get("tenant_id").map(String::from) }.in_current_context(),
        );
        assert_eq!(carried.await.unwrap().as_deref(), Some("acme"));
        assert_eq!(bare.await.unwrap(), None);
        assert_eq!(blocking.await.unwrap().as_deref(), Some("acme"));
        assert_eq!(manual.await.unwrap().as_deref(), Some("acme"));
    });
}

#[test]
fn in_scope_nests_under_the_current_scope_and_records_on_completion() {
    rt().block_on(async {
        let cap = capture();
        async {
            async {
                costtrace::record(Usage::llm("anthropic", "claude-3-5-haiku").output_tokens(3))
            }
            .in_scope(scope("inner"))
            .await;
        }
        .in_scope(scope("outer").attr("job_id", "j"))
        .await;
        let outer = cap.scope("outer").unwrap();
        let inner = cap.scope("inner").unwrap();
        assert_eq!(inner.parent_id, Some(outer.id));
        assert_eq!(inner.attrs["job_id"], "j");
        assert_eq!(cap.usages()[0].scope_id, Some(inner.id));
    });
}

#[test]
fn a_dropped_future_records_its_scope_as_cancelled() {
    rt().block_on(async {
        let cap = capture();
        let slow = tokio::time::sleep(Duration::from_secs(60)).in_scope(scope("slow_call"));
        let r = tokio::time::timeout(Duration::from_millis(20), slow).await;
        assert!(r.is_err());
        let s = cap.scope("slow_call").unwrap();
        assert!(s.error_occurred);
        assert!(s.error_message.unwrap().starts_with("cancelled"));
    });
}

#[test]
fn a_panicking_task_marks_its_scope() {
    rt().block_on(async {
        let cap = capture();
        let h = costtrace::spawn(
            async {
                tokio::task::yield_now().await;
                panic!("model returned garbage");
            }
            .in_scope(scope("parse_reply")),
        );
        assert!(h.await.is_err());
        let s = cap.scope("parse_reply").unwrap();
        assert!(s.error_occurred);
        assert_eq!(
            s.error_message.as_deref(),
            Some("panicked: model returned garbage")
        );
    });
}

#[test]
fn item_outcomes_can_be_counted_from_async_code() {
    rt().block_on(async {
        let cap = capture();
        async {
            let h = costtrace::current_scope().unwrap();
            for i in 0..5 {
                tokio::task::yield_now().await;
                if i == 3 {
                    h.failure(i, "bad item");
                } else {
                    h.success();
                }
            }
        }
        .in_scope(scope("items"))
        .await;
        let s = cap.scope("items").unwrap();
        assert_eq!((s.success_count, s.failure_count), (4, 1));
        assert!(!s.error_occurred);
    });
}

#[test]
fn a_guard_held_across_await_does_not_leak_out_of_the_poll() {
    let cap = capture();
    let _outer = costtrace::with_context([("tenant_id", "outer")]);
    let task_ctx = current().with([("tenant_id", "task")]);
    block_on_local(async {
        let fut = async {
            let g = scope("held").attr("tenant_id", "held").enter();
            let id = g.id();
            tokio::task::yield_now().await;
            // Another poll: the task's context, not the held guard's.
            assert_eq!(current().get("tenant_id"), Some("task"));
            // The guard still reaches its scope.
            g.success();
            assert_eq!(g.id(), id);
            assert_eq!(g.context().get("tenant_id"), Some("held"));
            let inner = scope("inner").attr("tenant_id", "inner").enter();
            g.success();
            drop(g);
            assert_eq!(current().get("tenant_id"), Some("inner"));
            drop(inner);
            assert_eq!(current().get("tenant_id"), Some("task"));
        }
        .with_context(task_ctx);
        let mut fut = std::pin::pin!(fut);
        // The first poll returns at the yield, leaving `held` entered.
        assert!(futures_poll_once(fut.as_mut()).is_pending());
        assert_eq!(current().get("tenant_id"), Some("outer"));
        fut.await;
        assert_eq!(current().get("tenant_id"), Some("outer"));
    });
    assert_eq!(current().get("tenant_id"), Some("outer"));
    let scopes = cap.scopes();
    let names: Vec<_> = scopes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["held", "inner"]);
    assert_eq!(scopes[0].success_count, 2);
}

/// A guard moved into a future reaches its scope from inside the future's
/// polls, where the future's context is current.
#[test]
fn a_guard_moved_into_a_future_reaches_its_scope_inside_the_poll() {
    let cap = capture();
    let g = scope("outside").attr("job_id", "j-1").enter();
    let id = g.id();
    let fut = async move {
        assert_eq!(current().get("job_id"), Some("other"));
        g.success();
        tokio::task::yield_now().await;
        g.failure("item-2", "bad scan");
        assert_eq!(g.id(), id);
        drop(g);
        // Its scope ended inside the poll: the poll's context stays.
        assert_eq!(current().get("job_id"), Some("other"));
    }
    .with_context(costtrace::Context::empty().with([("job_id", "other")]));
    block_on_local(fut);
    // The guard's scope is gone: nothing is current here any more.
    assert_eq!(current().get("job_id"), None);
    let s = cap.scopes();
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].id, s[0].success_count, s[0].failure_count),
        (id, 1, 1)
    );
}

fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> std::task::Poll<F::Output> {
    let mut f = f;
    let waker = std::task::Waker::noop();
    std::pin::Pin::new(&mut f).poll(&mut std::task::Context::from_waker(waker))
}
