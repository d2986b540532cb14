//! `#[costtrace::tracked]` on every function shape.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::future::Future;

use costtrace::testing::capture;
use costtrace::{FutureExt, Usage, current, tracked};

#[tracked]
fn simple_function() -> u32 {
    costtrace::record(Usage::llm("openai", "gpt-4o-mini").input_tokens(1));
    7
}

#[tracked(operation = "receipt_analysis")]
fn analyze_receipt(receipt_id: &str, job_id: &str) -> String {
    format!("{receipt_id}:{}", current().get("job_id").unwrap_or("-"))
}

#[tracked(fields(receipt_id, attempt))]
fn with_fields(
    receipt_id: String,
    attempt: u32,
    batch_id: Option<&str>,
    user_id: Option<String>,
) -> usize {
    receipt_id.len()
        + attempt as usize
        + batch_id.map_or(0, str::len)
        + user_id.map_or(0, |u| u.len())
}

#[derive(Debug)]
struct MyError(&'static str);
impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "my error: {}", self.0)
    }
}

#[tracked]
fn may_fail(fail: bool) -> Result<u32, MyError> {
    if fail {
        return Err(MyError("random failure"));
    }
    Ok(1)
}

#[tracked]
fn uses_question_mark(s: &str) -> Result<i64, Box<dyn std::error::Error>> {
    let v: i64 = s.parse()?;
    Ok(v * 2)
}

#[tracked]
fn panics(task_id: u64) {
    let _ = task_id;
    panic!("Random failure");
}

#[tracked]
fn returns_impl_trait(n: u32) -> impl Iterator<Item = u32> {
    0..n
}

#[tracked]
fn generic<T: fmt::Display + Clone>(doc_id: T, items: &[T]) -> usize {
    items.len() + doc_id.to_string().len()
}

/// A job id type that is not `Display`: auto-extraction skips it.
struct OpaqueId;

#[tracked]
fn opaque(job_id: OpaqueId) -> bool {
    let OpaqueId = job_id;
    current().get("job_id").is_none()
}

struct Service {
    calls: u32,
}

impl Service {
    #[tracked]
    fn by_ref(&self, tenant_id: &str) -> u32 {
        let _ = tenant_id;
        self.calls
    }

    #[tracked(operation = "svc.mutate")]
    fn by_mut(&mut self, entity_id: &str) -> u32 {
        let _ = entity_id;
        self.calls += 1;
        self.calls
    }

    #[tracked]
    fn by_value(self) -> u32 {
        self.calls
    }

    #[tracked]
    async fn async_method(&self, request_id: &str) -> Result<u32, MyError> {
        tokio::task::yield_now().await;
        let _ = request_id;
        Err(MyError("async method failed"))
    }
}

#[tracked(operation = "async_processing")]
async fn process_async(data: &str, job_id: Option<&str>) -> usize {
    tokio::task::yield_now().await;
    costtrace::record(Usage::llm("openai", "gpt-4o").output_tokens(data.len() as u64));
    current().get("job_id").map_or(0, str::len)
}

#[tracked]
async fn async_panics() -> u32 {
    tokio::task::yield_now().await;
    panic!("async boom")
}

#[tracked]
async fn async_question_mark(s: String) -> Result<u8, std::num::ParseIntError> {
    tokio::task::yield_now().await;
    s.parse::<u8>()
}

#[test]
fn sync_function_gets_a_scope_named_after_it() {
    let cap = capture();
    assert_eq!(simple_function(), 7);
    let s = cap.scope("simple_function").unwrap();
    assert!(!s.error_occurred);
    assert!(s.duration_ms >= 0.0);
    assert_eq!(cap.usages()[0].scope_id, Some(s.id));
}

#[test]
fn operation_name_and_automatic_argument_extraction() {
    let cap = capture();
    assert_eq!(analyze_receipt("r-1", "job-123"), "r-1:job-123");
    let s = cap.scope("receipt_analysis").unwrap();
    assert_eq!(s.attrs["job_id"], "job-123");
    assert!(
        !s.attrs.contains_key("receipt_id"),
        "not listed, not a known name"
    );
}

#[test]
fn explicit_fields_and_optional_arguments() {
    let cap = capture();
    assert_eq!(with_fields("abc".into(), 2, Some("b-1"), None), 8);
    let s = cap.scope("with_fields").unwrap();
    assert_eq!(s.attrs["receipt_id"], "abc");
    assert_eq!(s.attrs["attempt"], "2");
    assert_eq!(s.attrs["batch_id"], "b-1");
    assert!(!s.attrs.contains_key("user_id"), "None is not recorded");
}

#[test]
fn err_returns_mark_the_scope_failed() {
    let cap = capture();
    assert!(may_fail(true).is_err());
    assert!(may_fail(false).is_ok());
    assert_eq!(uses_question_mark("21").unwrap(), 42);
    assert!(uses_question_mark("x").is_err());
    let scopes = cap.scopes();
    assert!(scopes[0].error_occurred);
    assert_eq!(
        scopes[0].error_message.as_deref(),
        Some("my error: random failure")
    );
    assert!(!scopes[1].error_occurred);
    assert!(!scopes[2].error_occurred);
    assert!(scopes[3].error_occurred);
    assert_eq!(
        scopes[3].error_message.as_deref(),
        Some("invalid digit found in string")
    );
}

#[test]
fn panics_mark_the_scope_failed() {
    let cap = capture();
    assert!(std::panic::catch_unwind(|| panics(9)).is_err());
    let s = cap.scope("panics").unwrap();
    assert!(s.error_occurred);
    assert_eq!(s.error_message.as_deref(), Some("panicked: Random failure"));
    assert_eq!(s.attrs["task_id"], "9");
}

#[test]
fn impl_trait_generic_and_non_display_arguments() {
    let cap = capture();
    assert_eq!(returns_impl_trait(3).sum::<u32>(), 3);
    assert_eq!(generic("d1", &["a", "b"]), 4);
    assert!(opaque(OpaqueId));
    assert!(cap.scope("returns_impl_trait").is_some());
    assert_eq!(cap.scope("generic").unwrap().attrs["doc_id"], "d1");
    assert!(!cap.scope("opaque").unwrap().attrs.contains_key("job_id"));
}

#[test]
fn methods_by_ref_mut_and_value() {
    let cap = capture();
    let mut svc = Service { calls: 0 };
    assert_eq!(svc.by_mut("ent-1"), 1);
    assert_eq!(svc.by_ref("acme"), 1);
    assert_eq!(svc.by_value(), 1);
    assert_eq!(cap.scope("svc.mutate").unwrap().attrs["entity_id"], "ent-1");
    assert_eq!(cap.scope("by_ref").unwrap().attrs["tenant_id"], "acme");
    assert!(cap.scope("by_value").is_some());
}

#[test]
fn nested_tracked_functions_link_parents() {
    #[tracked]
    fn outer(job_id: &str) -> u32 {
        let _ = job_id;
        inner()
    }
    #[tracked]
    fn inner() -> u32 {
        current().get("job_id").map_or(0, |_| 1)
    }
    let cap = capture();
    assert_eq!(outer("j"), 1);
    let o = cap.scope("outer").unwrap();
    let i = cap.scope("inner").unwrap();
    assert_eq!(i.parent_id, Some(o.id));
    assert_eq!(i.attrs["job_id"], "j");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn async_functions_and_methods() {
    rt().block_on(async {
        let cap = capture();
        let parent = costtrace::scope("request");
        let n = async { process_async("hello", Some("job-9")).await }
            .in_scope(parent)
            .await;
        assert_eq!(n, 5);
        let s = cap.scope("async_processing").unwrap();
        assert_eq!(s.attrs["job_id"], "job-9");
        assert_eq!(s.parent_id, Some(cap.scope("request").unwrap().id));
        assert_eq!(cap.usages()[0].scope_id, Some(s.id));

        let svc = Service { calls: 0 };
        assert!(svc.async_method("req-1").await.is_err());
        let m = cap.scope("async_method").unwrap();
        assert!(m.error_occurred);
        assert_eq!(
            m.error_message.as_deref(),
            Some("my error: async method failed")
        );
        assert_eq!(m.attrs["request_id"], "req-1");

        assert!(async_question_mark("300".into()).await.is_err());
        assert!(cap.scope("async_question_mark").unwrap().error_occurred);
    });
}

#[test]
fn async_panics_mark_the_scope() {
    rt().block_on(async {
        let cap = capture();
        let h = costtrace::spawn(async_panics());
        assert!(h.await.is_err());
        let s = cap.scope("async_panics").unwrap();
        assert!(s.error_occurred);
        assert_eq!(s.error_message.as_deref(), Some("panicked: async boom"));
    });
}

#[test]
fn compile_errors_are_spanned() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui-pass/*.rs");
}

/// Methods returning borrows of `&mut self` (the sync body used to be an
/// `FnMut` closure, which cannot let such a borrow escape).
struct Slots {
    map: std::collections::HashMap<String, u32>,
}

impl Slots {
    #[tracked]
    fn slot(&mut self, job_id: &str) -> &mut u32 {
        self.map.get_mut(job_id).unwrap()
    }

    #[tracked]
    fn slot_or_err(&mut self, job_id: &str) -> Result<&mut u32, MyError> {
        if job_id == "none" {
            return Err(MyError("no job id"));
        }
        let v = self.map.get_mut(job_id).ok_or(MyError("no such job"))?;
        Ok(v)
    }

    #[tracked]
    fn slot_or_panic(&mut self, job_id: &str) -> Option<&mut u32> {
        if job_id == "boom" {
            panic!("no slot for boom");
        }
        self.map.get_mut(job_id)
    }

    #[tracked]
    async fn slot_async(&mut self, job_id: &str) -> Result<&mut u32, MyError> {
        tokio::task::yield_now().await;
        self.map.get_mut(job_id).ok_or(MyError("no such job"))
    }
}

#[test]
fn methods_returning_borrows_of_mut_self() {
    let cap = capture();
    let mut s = Slots {
        map: std::collections::HashMap::from([("j1".to_owned(), 0)]),
    };
    *s.slot("j1") += 1;
    assert!(s.slot_or_err("none").is_err());
    assert!(s.slot_or_err("j2").is_err());
    *s.slot_or_err("j1").unwrap() += 1;
    *s.slot_or_panic("j1").unwrap() += 1;
    let mut s = std::panic::AssertUnwindSafe(s);
    assert!(std::panic::catch_unwind(move || s.slot_or_panic("boom").is_none()).is_err());

    let scopes = cap.scopes();
    let summary: Vec<_> = scopes
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.attrs["job_id"].as_str(),
                s.error_message.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("slot", "j1", None),
            ("slot_or_err", "none", Some("my error: no job id")),
            ("slot_or_err", "j2", Some("my error: no such job")),
            ("slot_or_err", "j1", None),
            ("slot_or_panic", "j1", None),
            ("slot_or_panic", "boom", Some("panicked: no slot for boom")),
        ]
    );
    assert!(scopes[1].error_occurred && scopes[2].error_occurred && scopes[5].error_occurred);
    assert!(!scopes[3].error_occurred);
}

#[test]
fn async_method_returning_a_borrow_of_mut_self() {
    rt().block_on(async {
        let cap = capture();
        let mut s = Slots {
            map: std::collections::HashMap::from([("j1".to_owned(), 0)]),
        };
        *s.slot_async("j1").await.unwrap() += 1;
        assert!(s.slot_async("j2").await.is_err());
        assert_eq!(s.map["j1"], 1);
        let scopes = cap.scopes();
        assert_eq!(scopes.len(), 2);
        assert!(!scopes[0].error_occurred);
        assert_eq!(
            scopes[1].error_message.as_deref(),
            Some("my error: no such job")
        );
        assert_eq!(scopes[1].attrs["job_id"], "j2");
    });
}

#[tracked]
fn nested_impl_trait(job_id: &str) -> (impl fmt::Display, [impl fmt::Display; 2]) {
    if job_id == "early" {
        return ("early", ["a", "b"]);
    }
    ("late", ["c", "d"])
}

#[tracked]
fn nested_impl_trait_err(fail: bool) -> Result<(impl fmt::Display, u32), MyError> {
    if fail {
        Err(MyError("nested impl failed"))?;
    }
    Ok((1u8, 2))
}

#[test]
fn impl_trait_nested_in_the_return_type() {
    let cap = capture();
    let (a, [b, _]) = nested_impl_trait("early");
    assert_eq!(format!("{a}{b}"), "earlya");
    let (a, [_, d]) = nested_impl_trait("j-2");
    assert_eq!(format!("{a}{d}"), "lated");
    assert!(nested_impl_trait_err(true).is_err());
    let (x, y) = nested_impl_trait_err(false).unwrap();
    assert_eq!((x.to_string(), y), ("1".to_owned(), 2));
    let scopes = cap.scopes();
    assert_eq!(scopes.len(), 4);
    assert_eq!(scopes[0].attrs["job_id"], "early");
    assert_eq!(scopes[1].attrs["job_id"], "j-2");
    assert_eq!(
        scopes[2].error_message.as_deref(),
        Some("my error: nested impl failed")
    );
    assert!(!scopes[3].error_occurred);
}

#[tracked]
fn with_inner_attribute(job_id: &str) -> Result<u32, MyError> {
    #![allow(unused_variables)]
    let unused = 1;
    if job_id == "bad" {
        return Err(MyError("bad job"));
    }
    Ok(2)
}

#[test]
fn inner_attributes_stay_in_the_body() {
    let cap = capture();
    assert_eq!(with_inner_attribute("j").unwrap(), 2);
    assert!(with_inner_attribute("bad").is_err());
    let scopes = cap.scopes();
    assert_eq!(scopes[0].name, "with_inner_attribute");
    assert!(!scopes[0].error_occurred);
    assert_eq!(scopes[1].attrs["job_id"], "bad");
    assert_eq!(
        scopes[1].error_message.as_deref(),
        Some("my error: bad job")
    );
}

#[tracked]
fn never_returns(job_id: &str) -> ! {
    costtrace::record(Usage::llm("openai", "gpt-4o-mini").input_tokens(3));
    panic!("gave up on {job_id}")
}

#[tracked]
async fn never_returns_async(task_id: u32) -> ! {
    tokio::task::yield_now().await;
    panic!("task {task_id} gave up")
}

#[test]
fn never_returning_functions() {
    let cap = capture();
    assert!(std::panic::catch_unwind(|| never_returns("j-3")).is_err());
    let s = cap.scope("never_returns").unwrap();
    assert_eq!(s.attrs["job_id"], "j-3");
    assert!(s.error_occurred);
    assert_eq!(s.error_message.as_deref(), Some("panicked: gave up on j-3"));
    assert_eq!(cap.usages()[0].scope_id, Some(s.id));

    rt().block_on(async {
        let cap = capture();
        assert!(costtrace::spawn(never_returns_async(4)).await.is_err());
        let s = cap.scope("never_returns_async").unwrap();
        assert_eq!(s.attrs["task_id"], "4");
        assert_eq!(s.error_message.as_deref(), Some("panicked: task 4 gave up"));
    });
}

#[tracked]
fn returns_a_future(job_id: &str, fail: bool) -> impl Future<Output = Result<u32, MyError>> + '_ {
    costtrace::record(Usage::llm("openai", "gpt-4o-mini").input_tokens(1));
    async move {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        costtrace::record(Usage::llm("openai", "gpt-4o-mini").output_tokens(2));
        if fail {
            return Err(MyError("future failed"));
        }
        Ok(job_id.len() as u32)
    }
}

/// The shape `#[async_trait]` gives a method.
struct AsyncTraitShaped;

impl AsyncTraitShaped {
    #[tracked]
    #[allow(clippy::type_complexity)]
    fn run<'a>(
        &'a self,
        task_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<u32, MyError>> + Send + 'a>> {
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(3));
            if task_id == "bad" {
                Err(MyError("boxed future failed"))
            } else {
                Ok(7)
            }
        })
    }
}

fn rt_with_time() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn sync_fns_returning_futures_are_recorded_when_the_future_completes() {
    rt_with_time().block_on(async {
        let cap = capture();
        let fut = returns_a_future("job-1", false);
        assert!(cap.scopes().is_empty(), "not recorded before it runs");
        assert_eq!(fut.await.unwrap(), 5);
        assert!(returns_a_future("job-2", true).await.is_err());
        drop(returns_a_future("job-3", false));

        let scopes = cap.scopes();
        assert_eq!(scopes.len(), 3);
        let (ok, failed, dropped) = (&scopes[0], &scopes[1], &scopes[2]);
        assert_eq!(ok.name, "returns_a_future");
        assert_eq!(ok.attrs["job_id"], "job-1");
        assert!(!ok.error_occurred);
        assert!(ok.duration_ms >= 30.0, "{}", ok.duration_ms);
        assert_eq!(failed.attrs["job_id"], "job-2");
        assert!(failed.error_occurred);
        assert_eq!(
            failed.error_message.as_deref(),
            Some("my error: future failed")
        );
        assert!(failed.duration_ms >= 30.0, "{}", failed.duration_ms);
        assert_eq!(dropped.attrs["job_id"], "job-3");
        assert_eq!(
            dropped.error_message.as_deref(),
            Some("cancelled: the future was dropped before it completed")
        );

        // Usage from the sync part and from the future are both inside.
        let usages = cap.usages();
        assert_eq!(usages.len(), 5);
        let ids: Vec<_> = usages.iter().map(|u| u.scope_id).collect();
        assert_eq!(
            ids,
            [
                Some(ok.id),
                Some(ok.id),
                Some(failed.id),
                Some(failed.id),
                Some(dropped.id)
            ]
        );

        let svc = AsyncTraitShaped;
        assert_eq!(svc.run("t-1").await.unwrap(), 7);
        assert!(svc.run("bad").await.is_err());
        let runs: Vec<_> = cap
            .scopes()
            .into_iter()
            .filter(|s| s.name == "run")
            .collect();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].attrs["task_id"], "t-1");
        assert!(!runs[0].error_occurred);
        assert!(runs[0].duration_ms >= 30.0, "{}", runs[0].duration_ms);
        assert_eq!(
            runs[1].error_message.as_deref(),
            Some("my error: boxed future failed")
        );
        let usages = cap.usages();
        assert_eq!(usages[5].scope_id, Some(runs[0].id));
        assert_eq!(usages[6].scope_id, Some(runs[1].id));
    });
}

#[tracked]
fn future_that_panics() -> impl Future<Output = u32> {
    async {
        tokio::task::yield_now().await;
        panic!("future boom")
    }
}

#[test]
fn panics_in_returned_futures_mark_the_scope() {
    rt().block_on(async {
        let cap = capture();
        assert!(costtrace::spawn(future_that_panics()).await.is_err());
        let s = cap.scope("future_that_panics").unwrap();
        assert_eq!(s.error_message.as_deref(), Some("panicked: future boom"));
    });
}

// Async bodies that complete in their first poll end their scope from the
// thread's pending slot; those that wait keep it for later polls. Both must
// record the same things.

#[tracked]
async fn quick(job_id: &str, fail: bool) -> Result<usize, MyError> {
    if fail {
        return Err(MyError("quick failed"));
    }
    Ok(job_id.len())
}

#[tracked]
async fn quick_outer(job_id: &str) -> usize {
    // Reads the context and records usage: the scope needs a frame.
    costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(3));
    let inner = quick("inner-job", false).await.unwrap();
    inner + current().get("job_id").map_or(0, str::len)
}

#[tracked]
async fn quick_panics(task_id: u32) -> u32 {
    panic!("quick boom {task_id}")
}

/// Holds a guard across its await: at the end of the first poll the
/// scope's context and the guard's are put aside, and the caller's context
/// is current again. (A guard is not carried across `.await`: later polls
/// run in the function's scope, as documented on `ScopeGuard`.)
#[tracked]
async fn waits_holding_a_guard(job_id: &str, gate: std::rc::Rc<std::cell::Cell<bool>>) -> String {
    let _stage = costtrace::scope("stage").attr("stage", "ocr").enter();
    std::future::poll_fn(|_| {
        if gate.get() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    costtrace::record(Usage::llm("openai", "gpt-4o").output_tokens(1));
    format!(
        "{}/{}",
        current().get_or("job_id", "-"),
        current().get_or("stage", "-")
    )
}

fn poll_noop<F: Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

#[test]
fn async_bodies_completing_in_their_first_poll() {
    let cap = capture();
    let outer = costtrace::scope("outer").attr("tenant_id", "acme").enter();
    let outer_id = outer.id();

    // A leaf: ends without ever building a frame.
    let f = std::pin::pin!(quick("job-1", false));
    assert!(matches!(poll_noop(f), std::task::Poll::Ready(Ok(5))));
    // Err: failed with the message.
    let f = std::pin::pin!(quick("job-2", true));
    assert!(matches!(poll_noop(f), std::task::Poll::Ready(Err(_))));
    // A body that records usage and nests another tracked call.
    let f = std::pin::pin!(quick_outer("job-3"));
    assert!(matches!(poll_noop(f), std::task::Poll::Ready(14)));
    // The caller's context is current again after each of them.
    assert_eq!(current().scope_id(), Some(outer_id));
    assert_eq!(current().get("job_id"), None);
    // A panic in the first poll.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let f = std::pin::pin!(quick_panics(7));
        let _ = poll_noop(f);
    }));
    assert!(caught.is_err());
    assert_eq!(current().scope_id(), Some(outer_id));
    // Dropped before its first poll: nothing is recorded.
    drop(quick("never-polled", false));
    drop(outer);

    let scopes = cap.scopes();
    let quick: Vec<_> = scopes.iter().filter(|s| s.name == "quick").collect();
    assert_eq!(quick.len(), 3, "{scopes:#?}");
    let by_job = |j: &str| quick.iter().find(|s| s.attrs["job_id"] == j).unwrap();
    let ok = by_job("job-1");
    assert!(!ok.error_occurred);
    assert_eq!(ok.parent_id, Some(outer_id));
    assert_eq!(ok.attrs["tenant_id"], "acme");
    let failed = by_job("job-2");
    assert!(failed.error_occurred);
    assert_eq!(
        failed.error_message.as_deref(),
        Some("my error: quick failed")
    );
    let qo = cap.scope("quick_outer").unwrap();
    assert_eq!(qo.parent_id, Some(outer_id));
    assert_eq!(by_job("inner-job").parent_id, Some(qo.id));
    assert_eq!(by_job("inner-job").attrs["tenant_id"], "acme");
    assert_eq!(cap.usages()[0].scope_id, Some(qo.id));
    assert_eq!(cap.usages()[0].attrs["job_id"], "job-3");
    let p = cap.scope("quick_panics").unwrap();
    assert!(p.error_occurred);
    assert_eq!(p.error_message.as_deref(), Some("panicked: quick boom 7"));
    assert_eq!(p.attrs["task_id"], "7");
    assert_eq!(p.parent_id, Some(outer_id));
    assert!(
        !scopes
            .iter()
            .any(|s| s.attrs.get("job_id").map(String::as_str) == Some("never-polled"))
    );
    // Every id is distinct.
    let mut ids: Vec<_> = scopes.iter().map(|s| s.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), scopes.len());
}

#[test]
fn async_bodies_that_wait_keep_their_scope_between_polls() {
    let cap = capture();
    let outer = costtrace::scope("outer").attr("tenant_id", "acme").enter();
    let outer_id = outer.id();
    let gate = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut f = std::pin::pin!(waits_holding_a_guard("job-w", gate.clone()));
    assert!(poll_noop(f.as_mut()).is_pending());
    // Between polls the caller's context is current, not the body's.
    assert_eq!(current().scope_id(), Some(outer_id));
    assert_eq!(current().get("stage"), None);
    assert_eq!(current().get("job_id"), None);
    assert!(poll_noop(f.as_mut()).is_pending());
    assert_eq!(current().scope_id(), Some(outer_id));
    gate.set(true);
    match poll_noop(f.as_mut()) {
        std::task::Poll::Ready(s) => assert_eq!(s, "job-w/-"),
        std::task::Poll::Pending => panic!("the gate is open"),
    }
    assert_eq!(current().scope_id(), Some(outer_id));

    // Cancelled after waiting: recorded as cancelled.
    let gate2 = std::rc::Rc::new(std::cell::Cell::new(false));
    {
        let mut g = std::pin::pin!(waits_holding_a_guard("job-c", gate2));
        assert!(poll_noop(g.as_mut()).is_pending());
    }
    assert_eq!(current().scope_id(), Some(outer_id));
    drop(outer);

    let w = cap
        .scopes()
        .into_iter()
        .filter(|s| s.name == "waits_holding_a_guard")
        .collect::<Vec<_>>();
    assert_eq!(w.len(), 2);
    let done = w.iter().find(|s| s.attrs["job_id"] == "job-w").unwrap();
    assert!(!done.error_occurred);
    assert_eq!(done.parent_id, Some(outer_id));
    let stages: Vec<_> = cap
        .scopes()
        .into_iter()
        .filter(|s| s.name == "stage")
        .collect();
    assert_eq!(stages.len(), 2);
    let stage = stages
        .iter()
        .find(|s| s.attrs["job_id"] == "job-w")
        .unwrap();
    assert_eq!(stage.parent_id, Some(done.id));
    assert_eq!(stage.attrs["tenant_id"], "acme");
    assert_eq!(cap.usages()[0].scope_id, Some(done.id));
    let cancelled = w.iter().find(|s| s.attrs["job_id"] == "job-c").unwrap();
    assert!(cancelled.error_occurred);
    assert!(
        cancelled
            .error_message
            .as_deref()
            .unwrap()
            .starts_with("cancelled"),
        "{cancelled:?}"
    );
}

#[tracked]
async fn tracked_leaf(job_id: &str) -> usize {
    job_id.len()
}

async fn untracked_leaf(job_id: &str) -> usize {
    job_id.len()
}

/// The builder is made in a block of its own in the generated body: as a
/// local of the body it kept its 72 bytes in the future across the
/// `.await`, and a future's size is what every spawn or pin moves.
#[test]
fn a_tracked_async_fn_adds_little_to_its_future() {
    let tracked = std::mem::size_of_val(&tracked_leaf("job-1"));
    let plain = std::mem::size_of_val(&untracked_leaf("job-1"));
    assert!(
        tracked <= plain + 128,
        "#[tracked] future {tracked} bytes, untracked {plain}"
    );
}
