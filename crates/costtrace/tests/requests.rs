#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The request tracker: start and end records, context linking, failures.

use costtrace::testing::capture;
use costtrace::{FutureExt, RequestRecord, Usage};

fn requests(cap: &costtrace::testing::Capture) -> Vec<RequestRecord> {
    cap.records()
        .into_iter()
        .filter_map(|r| r.as_request().cloned())
        .collect()
}

#[test]
fn several_requests_of_one_task_link_their_usage() {
    let cap = capture();
    for i in 0..3 {
        let req = costtrace::request(format!("req_task_large_upload_{i}"))
            .task_id("task_large_upload")
            .entity_id("company_123")
            .operation_type("file_upload")
            .method("POST")
            .endpoint("/api/entities/{entity_id}/files")
            .start();
        {
            let _in = req.enter();
            costtrace::record(Usage::service("transformer").units("chunks", 10 * (i + 1)));
        }
        req.end(200, None::<&str>);
    }
    let reqs = requests(&cap);
    assert_eq!(reqs.len(), 6, "a start and an end record per request");
    let ends: Vec<_> = reqs.iter().filter(|r| r.status_code.is_some()).collect();
    assert_eq!(ends.len(), 3);
    assert!(
        ends.iter()
            .all(|r| r.task_id.as_deref() == Some("task_large_upload"))
    );
    assert!(ends.iter().all(|r| r.processing_time_ms.unwrap() >= 0.0));
    let starts: Vec<_> = reqs.iter().filter(|r| r.status_code.is_none()).collect();
    assert_eq!(
        starts.len(),
        3,
        "running requests are visible before they end"
    );
    let usages = cap.usages();
    assert_eq!(usages.len(), 3);
    for (i, u) in usages.iter().enumerate() {
        assert_eq!(u.attrs["request_id"], format!("req_task_large_upload_{i}"));
        assert_eq!(u.attrs["task_id"], "task_large_upload");
        assert_eq!(u.attrs["entity_id"], "company_123");
    }
}

#[test]
fn end_is_recorded_once_and_a_dropped_request_ends_as_500() {
    let cap = capture();
    let req = costtrace::request("r1").start();
    req.end(201, None::<&str>);
    req.end(500, Some("ignored"));
    drop(req);
    drop(costtrace::request("r2").start());
    let ends: Vec<_> = requests(&cap)
        .into_iter()
        .filter(|r| r.status_code.is_some())
        .collect();
    assert_eq!(ends.len(), 2);
    assert_eq!(
        (ends[0].request_id.as_str(), ends[0].status_code),
        ("r1", Some(201))
    );
    assert_eq!(
        (ends[1].request_id.as_str(), ends[1].status_code),
        ("r2", Some(500))
    );
    assert_eq!(
        ends[1].error_message.as_deref(),
        Some("the request was dropped without end()")
    );
}

#[test]
fn a_panic_ends_the_request_with_its_message() {
    let cap = capture();
    let r = std::panic::catch_unwind(|| {
        let _req = costtrace::request("r-panic").task_id("t").start();
        panic!("indexer crashed");
    });
    assert!(r.is_err());
    let end = requests(&cap)
        .into_iter()
        .find(|r| r.status_code.is_some())
        .unwrap();
    assert_eq!(end.status_code, Some(500));
    assert_eq!(
        end.error_message.as_deref(),
        Some("panicked: indexer crashed")
    );
}

#[test]
fn a_background_task_records_inside_the_request_and_ends_it() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let cap = capture();
        let req = costtrace::request("req_bg")
            .task_id("upload_1")
            .entity_id("acme")
            .start();
        let bg = req.clone();
        let h = tokio::spawn(
            async move {
                tokio::task::yield_now().await;
                costtrace::record(Usage::service("file_processor").units("pages", 3));
                bg.set_doc_id("doc_9");
                bg.end(200, None::<&str>);
            }
            .with_context(req.context()),
        );
        drop(req);
        h.await.unwrap();
        let end = requests(&cap)
            .into_iter()
            .find(|r| r.status_code.is_some())
            .unwrap();
        assert_eq!(
            end.status_code,
            Some(200),
            "the clone in the task ended it, not the drop"
        );
        assert_eq!(end.doc_id.as_deref(), Some("doc_9"));
        assert_eq!(cap.usages()[0].attrs["request_id"], "req_bg");
    });
}

/// Writes a prefix, then fails, as a `Display` over a broken source may.
struct FailingDisplay;

impl std::fmt::Display for FailingDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("part")?;
        Err(std::fmt::Error)
    }
}

#[test]
fn a_display_that_fails_never_panics_the_caller() {
    let cap = capture();
    let outcome = std::panic::catch_unwind(|| {
        costtrace::record(Usage::service("transformer").attr("broken", FailingDisplay));
        let req = costtrace::request("r_display")
            .task_id(FailingDisplay)
            .start();
        req.set_doc_id(FailingDisplay);
        req.end(500, Some(FailingDisplay));
    });
    assert!(outcome.is_ok(), "recording panicked");
    assert_eq!(cap.usages()[0].attrs["broken"], "part");
    let end = requests(&cap)
        .into_iter()
        .find(|r| r.status_code.is_some())
        .unwrap();
    assert_eq!(end.task_id.as_deref(), Some("part"));
    assert_eq!(end.doc_id.as_deref(), Some("part"));
    assert_eq!(end.error_message.as_deref(), Some("part"));
}

#[test]
fn a_resumed_unwind_does_not_get_an_earlier_panics_message() {
    let cap = capture();
    assert!(std::panic::catch_unwind(|| panic!("A")).is_err());
    let r = std::panic::catch_unwind(|| {
        let _req = costtrace::request("r-resumed").start();
        std::panic::resume_unwind(Box::new(()));
    });
    assert!(r.is_err());
    let end = requests(&cap)
        .into_iter()
        .find(|r| r.status_code.is_some())
        .unwrap();
    assert_eq!(end.status_code, Some(500));
    assert_eq!(end.error_message.as_deref(), Some("panicked"));
}

#[test]
fn a_request_run_by_a_drop_during_an_unrelated_unwind_is_not_a_panic() {
    struct EndsOnDrop;
    impl Drop for EndsOnDrop {
        fn drop(&mut self) {
            assert!(std::thread::panicking());
            let ok = costtrace::request("r-ok").start();
            ok.end(200, None::<&str>);
            // Dropped without end(): the ordinary 500, not a panic.
            drop(costtrace::request("r-dropped").start());
        }
    }
    let cap = capture();
    let r = std::panic::catch_unwind(|| {
        let _c = EndsOnDrop;
        panic!("original");
    });
    assert!(r.is_err());
    let ends: Vec<_> = requests(&cap)
        .into_iter()
        .filter(|r| r.status_code.is_some())
        .map(|r| (r.request_id, r.status_code, r.error_message))
        .collect();
    assert_eq!(
        ends,
        [
            ("r-ok".to_owned(), Some(200), None),
            (
                "r-dropped".to_owned(),
                Some(500),
                Some("the request was dropped without end()".to_owned())
            ),
        ]
    );
}

#[test]
fn clones_dropped_at_once_on_two_threads_end_the_request_exactly_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, mpsc};

    const ROUNDS: usize = 2_000;
    let cap = capture();
    // A spinning barrier releases both threads within nanoseconds of each
    // other (a parked thread takes microseconds to wake).
    let arrived = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<costtrace::ActiveRequest>();
            let arrived = arrived.clone();
            let done = done_tx.clone();
            let h = std::thread::spawn(move || {
                for (round, req) in rx.into_iter().enumerate() {
                    arrived.fetch_add(1, Ordering::AcqRel);
                    let mut spins = 0u32;
                    while arrived.load(Ordering::Acquire) < 2 * (round + 1) {
                        spins += 1;
                        if spins.is_multiple_of(1024) {
                            // The other thread may not be running (2 cores).
                            std::thread::yield_now();
                        }
                        std::hint::spin_loop();
                    }
                    drop(req);
                    done.send(()).unwrap();
                }
            });
            (tx, h)
        })
        .collect();
    for i in 0..ROUNDS {
        let req = costtrace::request(format!("r-{i}")).start();
        workers[0].0.send(req.clone()).unwrap();
        workers[1].0.send(req).unwrap();
        done_rx.recv().unwrap();
        done_rx.recv().unwrap();
    }
    for (tx, h) in workers {
        drop(tx);
        h.join().unwrap();
    }
    let mut ends = vec![0usize; ROUNDS];
    for r in requests(&cap)
        .into_iter()
        .filter(|r| r.status_code.is_some())
    {
        assert_eq!(r.status_code, Some(500));
        assert_eq!(
            r.error_message.as_deref(),
            Some("the request was dropped without end()")
        );
        let i: usize = r.request_id["r-".len()..].parse().unwrap();
        ends[i] += 1;
    }
    let wrong: Vec<_> = ends.iter().enumerate().filter(|(_, n)| **n != 1).collect();
    assert!(
        wrong.is_empty(),
        "requests not ended exactly once: {wrong:?}"
    );
}
