//! Scopes are recorded however they end: early return, `?`, panic; partial
//! failures are counted; batch pricing reaches nested scopes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use costtrace::testing::capture;
use std::future::Future;

use costtrace::{FutureExt, PricingTier, Usage, batch_scope, scope};

fn early(n: u32) -> u32 {
    let _s = scope("early").attr("n", n).enter();
    if n > 1 {
        return 1;
    }
    0
}

fn question_mark(input: &str) -> Result<u32, std::num::ParseIntError> {
    let _s = scope("parse").enter();
    let v: u32 = input.parse()?;
    Ok(v)
}

#[test]
fn scopes_are_recorded_on_early_return_and_question_mark() {
    let cap = capture();
    assert_eq!(early(5), 1);
    assert!(question_mark("x").is_err());
    assert_eq!(cap.scopes().len(), 2);
    assert_eq!(cap.scope("early").unwrap().attrs["n"], "5");
    // A plain guard cannot see the Err; #[tracked] does (see tracked.rs).
    assert!(!cap.scope("parse").unwrap().error_occurred);
}

#[test]
fn scopes_are_recorded_while_unwinding_from_a_panic() {
    let cap = capture();
    let r = std::panic::catch_unwind(|| {
        let _outer = scope("outer").enter();
        let _inner = scope("inner").enter();
        panic!("index out of range");
    });
    assert!(r.is_err());
    for name in ["outer", "inner"] {
        let s = cap.scope(name).unwrap();
        assert!(s.error_occurred, "{name}");
        assert_eq!(
            s.error_message.as_deref(),
            Some("panicked: index out of range")
        );
    }
}

#[test]
fn explicit_fail_marks_the_scope() {
    let cap = capture();
    {
        let g = scope("risky_operation").enter();
        g.fail("upstream returned 503");
        g.fail("second message is ignored");
    }
    let s = cap.scope("risky_operation").unwrap();
    assert!(s.error_occurred);
    assert_eq!(s.error_message.as_deref(), Some("upstream returned 503"));

    // Marked while the scope has no frame yet, then given one (a nested
    // scope and a context read): the first message still wins.
    {
        let g = scope("marked_then_nested").enter();
        g.fail("first");
        assert!(costtrace::current().scope_id().is_some());
        let _inner = scope("inner").enter();
        g.fail("later");
    }
    let s = cap.scope("marked_then_nested").unwrap();
    assert_eq!(s.error_message.as_deref(), Some("first"));
    assert!(!cap.scope("inner").unwrap().error_occurred);
    assert_eq!(cap.scope("inner").unwrap().parent_id, Some(s.id));
}

#[test]
fn partial_failures_are_counted_and_bounded() {
    let cap = capture();
    {
        let g = scope("batch_processing").items(250).enter();
        for i in 0..250 {
            if i % 2 == 0 {
                g.success();
            } else {
                assert!(
                    g.failure(format!("item-{i}"), "timeout"),
                    "continue_on_error defaults to true"
                );
            }
        }
    }
    let s = cap.scope("batch_processing").unwrap();
    assert_eq!(s.success_count, 125);
    assert_eq!(s.failure_count, 125);
    assert_eq!(s.errors.len(), costtrace_core::MAX_SCOPE_ERRORS);
    assert_eq!(s.errors[0].item, "item-1");
    assert_eq!(s.errors[0].error, "timeout");
    assert_eq!(s.item_count, Some(250));
    assert!(!s.error_occurred, "partial failure is not a failed scope");
}

#[test]
fn continue_on_error_false_fails_at_the_first_failure() {
    let cap = capture();
    {
        let g = scope("strict").continue_on_error(false).enter();
        let mut processed = 0;
        for i in 0..10 {
            if i == 2 {
                if !g.failure(i, "bad row") {
                    break;
                }
            } else {
                g.success();
            }
            processed += 1;
        }
        assert_eq!(processed, 2);
    }
    let s = cap.scope("strict").unwrap();
    assert!(s.error_occurred);
    assert_eq!(s.error_message.as_deref(), Some("item 2 failed: bad row"));
    assert_eq!((s.success_count, s.failure_count), (2, 1));
}

#[test]
fn batch_tier_reaches_nested_scopes_and_usage() {
    let cap = capture();
    costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(1));
    batch_scope("batch-123").items(100).run(|| {
        costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(2));
        scope("nested").run(|| {
            scope("deeper")
                .run(|| costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(3)));
        });
    });
    costtrace::record(Usage::llm("openai", "gpt-4o").input_tokens(4));
    let tiers: Vec<_> = cap
        .usages()
        .iter()
        .map(|u| (u.input_tokens, u.pricing_tier))
        .collect();
    assert_eq!(
        tiers,
        [
            (Some(1), PricingTier::Standard),
            (Some(2), PricingTier::Batch),
            (Some(3), PricingTier::Batch),
            (Some(4), PricingTier::Standard),
        ]
    );
    let deeper = cap.scope("deeper").unwrap();
    assert_eq!(deeper.pricing_tier, PricingTier::Batch);
    assert_eq!(deeper.attrs["batch_id"], "batch-123");
    let batch = cap.scope("batch").unwrap();
    assert_eq!(batch.item_count, Some(100));
    assert_eq!(batch.pricing_tier, PricingTier::Batch);
}

#[test]
fn usage_fields_reach_the_record() {
    let cap = capture();
    scope("doc").attr("doc_id", "doc_1").run(|| {
        costtrace::record(
            Usage::llm("anthropic", "claude-sonnet-4")
                .operation("chat")
                .input_tokens(1200)
                .cache_read_tokens(1000)
                .cache_write_tokens(100)
                .output_tokens(300)
                .reasoning_tokens(50)
                .duration(std::time::Duration::from_millis(1500))
                .partial(true),
        );
        costtrace::record(
            Usage::service("file_processor")
                .units("pages", 10)
                .units("pages", 12),
        );
        costtrace::record(Usage::llm("openai", "gpt-4o").error("429 Too Many Requests"));
    });
    let u = cap.usages();
    assert_eq!(u[0].provider.as_deref(), Some("anthropic"));
    assert_eq!(u[0].operation.as_deref(), Some("chat"));
    assert_eq!(
        (
            u[0].input_tokens,
            u[0].cache_read_tokens,
            u[0].cache_write_tokens,
            u[0].output_tokens,
            u[0].reasoning_tokens
        ),
        (Some(1200), Some(1000), Some(100), Some(300), Some(50))
    );
    assert_eq!(u[0].duration_ms, Some(1500.0));
    assert!(u[0].partial);
    assert_eq!(u[0].attrs["doc_id"], "doc_1");
    assert_eq!(u[1].service_type.as_deref(), Some("file_processor"));
    assert_eq!(u[1].units["pages"], 12, "repeating a unit replaces it");
    assert_eq!(u[2].error_message.as_deref(), Some("429 Too Many Requests"));
    assert_eq!(u[2].input_tokens, None, "unknown stays unknown");
}

#[test]
fn a_usage_without_a_price_is_null_not_zero() {
    let cap = capture();
    costtrace::record(
        Usage::llm("nobody", "no-such-model-xyz")
            .input_tokens(100)
            .output_tokens(10),
    );
    let u = &cap.usages()[0];
    assert_eq!(u.cost_nanos, None);
    assert_eq!(u.cost_usd, None);
    assert!(
        u.unpriced_reason
            .as_deref()
            .unwrap()
            .starts_with("unpriced:")
    );
    let json = serde_json::to_value(costtrace::Record::Usage(u.clone())).unwrap();
    assert!(json["cost_usd"].is_null() && json["cost_nanos"].is_null());
}

#[test]
fn a_provider_reported_cost_is_kept() {
    let cap = capture();
    costtrace::record(
        Usage::llm("openrouter", "some/model")
            .input_tokens(10)
            .cost_usd(0.0123),
    );
    let u = &cap.usages()[0];
    assert_eq!(u.cost_nanos, Some(12_300_000));
    assert_eq!(u.cost_usd, Some(0.0123));
}

#[test]
fn usage_is_priced_at_record_time_with_batch_and_cache_semantics() {
    let cap = capture();
    // gpt-4o: input $2.50/M, cached input $1.25/M, output $10/M.
    costtrace::record(
        Usage::llm("openai", "gpt-4o")
            .input_tokens(1_200)
            .cache_read_tokens(1_000)
            .output_tokens(300),
    );
    batch_scope("b1").run(|| {
        costtrace::record(
            Usage::llm("openai", "gpt-4o")
                .input_tokens(1_000_000)
                .output_tokens(0),
        );
    });
    costtrace::record(Usage::service("file_processor").units("pages", 10));
    costtrace::record(Usage::service("transformer").units("chunks", 45));
    let u = cap.usages();
    // 200 uncached × 2.50 + 1,000 cached × 1.25 + 300 × 10 = 500 + 1,250 + 3,000
    // = 4,750 USD per million tokens = 4,750,000 nano-USD.
    assert_eq!(u[0].cost_nanos, Some(4_750_000));
    assert_eq!(u[0].cost_usd, Some(0.00475));
    assert_eq!(u[0].price_version.as_deref(), Some("genai-prices@47df840a"));
    // Batch: 1M × $2.50 × 50% = $1.25.
    assert_eq!(u[1].cost_nanos, Some(1_250_000_000));
    // Seed 004: $0.02 per page, $0.003 per chunk.
    assert_eq!(u[2].cost_nanos, Some(200_000_000));
    assert_eq!(u[3].cost_nanos, Some(135_000_000));
    assert_eq!(u[3].cost_usd, Some(0.135));
}

#[test]
fn a_resumed_unwind_does_not_get_an_earlier_panics_message() {
    let cap = capture();
    // An unrelated panic, caught: its message must not reach later scopes.
    assert!(std::panic::catch_unwind(|| panic!("A")).is_err());
    let r = std::panic::catch_unwind(|| {
        let _s = scope("resumed").enter();
        // As rayon and `JoinError::into_panic` re-raise: no panic hook runs.
        std::panic::resume_unwind(Box::new(()));
    });
    assert!(r.is_err());
    let r = std::panic::catch_unwind(|| {
        let _s = scope("polled").enter();
        let fut = std::pin::pin!(
            async { std::panic::resume_unwind(Box::new(())) }.in_scope(scope("future"))
        );
        let waker = std::task::Waker::noop();
        let _ = fut.poll(&mut std::task::Context::from_waker(waker));
    });
    assert!(r.is_err());
    for name in ["resumed", "polled", "future"] {
        let s = cap.scope(name).unwrap();
        assert!(s.error_occurred, "{name}");
        assert_eq!(s.error_message.as_deref(), Some("panicked"), "{name}");
    }
    // A panic that does run the hook still gets its message.
    let r = std::panic::catch_unwind(|| {
        let _s = scope("fresh").enter();
        panic!("B");
    });
    assert!(r.is_err());
    assert_eq!(
        cap.scope("fresh").unwrap().error_message.as_deref(),
        Some("panicked: B")
    );
}

/// Runs scopes from its `Drop`, which runs while an unrelated panic unwinds;
/// with `true`, one of them panics (caught inside the `Drop`).
struct CleansUpOnDrop(bool);

impl Drop for CleansUpOnDrop {
    fn drop(&mut self) {
        assert!(std::thread::panicking());
        scope("cleanup_run").run(|| {});
        {
            let _g = scope("cleanup_guard").enter();
        }
        let fut = std::pin::pin!(async {}.in_scope(scope("cleanup_future")));
        let waker = std::task::Waker::noop();
        assert!(
            fut.poll(&mut std::task::Context::from_waker(waker))
                .is_ready()
        );
        if self.0 {
            // A new panic inside the cleanup, caught there, still counts.
            let r = std::panic::catch_unwind(|| {
                let _g = scope("cleanup_panics").enter();
                panic!("cleanup failed");
            });
            assert!(r.is_err());
        }
    }
}

#[test]
fn scopes_run_by_a_drop_during_an_unrelated_unwind_are_not_failed() {
    for nested_panic in [false, true] {
        let cap = capture();
        let r = std::panic::catch_unwind(|| {
            let _s = scope("unwound").enter();
            let _c = CleansUpOnDrop(nested_panic);
            panic!("original");
        });
        assert!(r.is_err());
        for name in ["cleanup_run", "cleanup_guard", "cleanup_future"] {
            let s = cap.scope(name).unwrap();
            assert!(!s.error_occurred, "{name}: {:?}", s.error_message);
            assert_eq!(s.error_message, None, "{name}");
        }
        let s = cap.scope("unwound").unwrap();
        assert!(s.error_occurred);
        if nested_panic {
            let c = cap.scope("cleanup_panics").unwrap();
            assert!(c.error_occurred);
            assert_eq!(c.error_message.as_deref(), Some("panicked: cleanup failed"));
        } else {
            assert_eq!(s.error_message.as_deref(), Some("panicked: original"));
        }
    }
}
