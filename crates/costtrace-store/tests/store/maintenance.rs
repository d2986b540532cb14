//! Archive and re-pricing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use costtrace_core::Record;
use costtrace_store::{AnyStore, GroupBy, Page, RequestFilter, Store, TenantScope};

use crate::common::*;
use crate::requests::scope_record;

const ALL: &TenantScope = &TenantScope::All;

pub(crate) async fn archive_moves_without_losing(s: &AnyStore) {
    let old = usage_records(vec![
        service(
            t(0),
            "x",
            &[],
            Some(1),
            &[("task_id", "tk_old"), ("request_id", "rq_old")],
        ),
        service(
            t(1),
            "x",
            &[],
            Some(2),
            &[("task_id", "tk_old"), ("request_id", "rq_old")],
        ),
    ]);
    let mut batch = old.clone();
    batch.push(Record::Request(request(
        "rq_old",
        t(0),
        &[("task_id", "tk_old")],
    )));
    batch.push(Record::Scope(scope_record(t(0))));
    batch.push(Record::Usage(service(
        t(1000),
        "x",
        &[],
        Some(4),
        &[("task_id", "tk_new")],
    )));
    batch.push(Record::Request(request(
        "rq_new",
        t(1000),
        &[("task_id", "tk_new")],
    )));
    assert_eq!(s.insert_records(&batch).await.unwrap(), 6);

    let stats = s.archive_before(t(500)).await.unwrap();
    assert_eq!((stats.requests, stats.usage, stats.scopes), (1, 2, 1));
    assert!(s.task_cost("tk_old", ALL).await.unwrap().is_none());
    assert!(s.get_request("rq_old", ALL).await.unwrap().is_none());
    assert_eq!(
        s.list_requests(&RequestFilter::default(), Page::default(), ALL)
            .await
            .unwrap()
            .1,
        1
    );
    assert_eq!(
        s.task_cost("tk_new", ALL)
            .await
            .unwrap()
            .unwrap()
            .total_cost_nanos,
        4
    );
    let a = s.archive_counts().await.unwrap();
    assert_eq!((a.requests, a.usage, a.scopes), (1, 2, 1));

    // Replaying archived records neither double-counts nor resurrects them.
    assert_eq!(s.insert_records(&batch).await.unwrap(), 0);
    assert!(s.task_cost("tk_old", ALL).await.unwrap().is_none());
    // A late record older than the cutoff goes straight to the archive.
    let late = usage_records(vec![service(
        t(2),
        "x",
        &[],
        Some(8),
        &[("task_id", "tk_old")],
    )]);
    assert_eq!(s.insert_records(&late).await.unwrap(), 1);
    assert!(s.task_cost("tk_old", ALL).await.unwrap().is_none());
    assert_eq!(s.archive_counts().await.unwrap().usage, 3);
    // Archiving again at the same cutoff moves nothing.
    assert_eq!(s.archive_before(t(500)).await.unwrap(), Default::default());
}

pub(crate) async fn reprice_fixes_wrong_costs_and_keeps_reported(s: &AnyStore) {
    let links = [("request_id", "rq_rp")];
    let mut wrong = llm(t(0), "openai", "gpt-4o", (1000, 200), Some(1), &links);
    wrong.price_version = Some("genai-prices@old".into());
    let mut reported = llm(t(1), "openai", "gpt-4o", (1000, 200), Some(777), &links);
    reported.service_type = Some("reported_llm".into());
    reported.price_version = Some("reported".into());
    let unpriced = service(t(2), "transformer", &[("chunks", 50)], None, &links);
    let mut outside = llm(
        t(5000),
        "openai",
        "gpt-4o",
        (1000, 200),
        Some(1),
        &[("request_id", "rq_out")],
    );
    outside.price_version = Some("genai-prices@old".into());
    s.start_request(&request("rq_rp", t(0), &[])).await.unwrap();
    s.start_request(&request("rq_out", t(5000), &[]))
        .await
        .unwrap();
    s.insert_records(&usage_records(vec![wrong, reported, unpriced, outside]))
        .await
        .unwrap();

    let cat = costtrace_pricing::Catalogue::bundled();
    assert_eq!(s.reprice(Some(t(0)), Some(t(100)), &cat).await.unwrap(), 2);
    let r = s.get_request("rq_rp", ALL).await.unwrap().unwrap();
    let cost = |k: &str| {
        r.services_used
            .iter()
            .find(|u| u.service_type == k)
            .unwrap()
            .cost_nanos
    };
    // gpt-4o: 1,000 × $2.50/M + 200 × $10/M = 2,500,000 + 2,000,000 nanos.
    assert_eq!(cost("llm:gpt-4o"), Some(4_500_000));
    assert_eq!(cost("reported_llm"), Some(777));
    // 50 chunks × $0.003.
    assert_eq!(cost("transformer"), Some(150_000_000));
    assert_eq!(r.unpriced_count, 0);
    assert_eq!(r.total_cost_nanos, 4_500_000 + 777 + 150_000_000);
    // Outside the range: untouched. Running again changes nothing.
    assert_eq!(
        s.get_request("rq_out", ALL)
            .await
            .unwrap()
            .unwrap()
            .total_cost_nanos,
        1
    );
    assert_eq!(s.reprice(Some(t(0)), Some(t(100)), &cat).await.unwrap(), 0);
    assert_eq!(s.reprice(None, None, &cat).await.unwrap(), 1);
    assert_eq!(
        s.get_request("rq_out", ALL)
            .await
            .unwrap()
            .unwrap()
            .total_cost_nanos,
        4_500_000
    );
}

/// Time ranges over all tenants find records wherever they were stored:
/// records that arrive late (older than what is already stored, e.g. a
/// replayed spool) and ranges spanning thousands of records.
/// (service type, records, cost) of the usage in `[t(from), t(to))`.
async fn service_sums(s: &AnyStore, from: i64, to: i64) -> Vec<(String, u64, i64)> {
    s.usage_summary(GroupBy::ServiceType, Some(t(from)), Some(t(to)), ALL)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.record_count, r.total_cost_nanos))
        .collect()
}

pub(crate) async fn time_ranges_find_late_records(s: &AnyStore) {
    let on_time: Vec<_> = (0..5_000)
        .map(|i| service(t(1_000 + i), "x", &[], Some(1), &[]))
        .collect();
    s.insert_records(&usage_records(on_time)).await.unwrap();
    let late: Vec<_> = (0..3)
        .map(|i| service(t(i), "late", &[], Some(10), &[]))
        .collect();
    s.insert_records(&usage_records(late)).await.unwrap();

    let sum = |from, to| service_sums(s, from, to);
    assert_eq!(sum(0, 100).await, vec![("late".to_owned(), 3, 30)]);
    assert_eq!(
        sum(1_000, 6_000).await,
        vec![("x".to_owned(), 5_000, 5_000)]
    );
    assert_eq!(
        sum(2, 1_010).await,
        vec![("late".to_owned(), 1, 10), ("x".to_owned(), 10, 10)]
    );
    assert_eq!(sum(6_000, 7_000).await, vec![]);

    let stats = s.archive_before(t(1_100)).await.unwrap();
    assert_eq!(stats.usage, 103);
    assert_eq!(sum(0, 1_100).await, vec![]);
    assert_eq!(sum(0, 6_000).await, vec![("x".to_owned(), 4_900, 4_900)]);
    assert_eq!(s.archive_counts().await.unwrap().usage, 103);
}

/// Large batches (the SQLite writer inserts them many rows per statement)
/// that replay stored records between new ones, or carry a record twice:
/// each record counts once and every stored one is found by time.
pub(crate) async fn replays_inside_large_batches_count_once(s: &AnyStore) {
    let links = [("task_id", "tk_big"), ("entity_id", "e_big")];
    let first: Vec<_> = (0..100)
        .map(|i| service(t(10_000 + i), "x", &[], Some(1), &links))
        .collect();
    assert_eq!(
        s.insert_records(&usage_records(first.clone()))
            .await
            .unwrap(),
        100
    );
    // Stored and new records interleaved; the new ones are late.
    let mut mixed = Vec::new();
    for (i, old) in first.into_iter().enumerate() {
        mixed.push(old);
        mixed.push(service(t(i as i64), "late", &[], Some(10), &links));
    }
    assert_eq!(s.insert_records(&usage_records(mixed)).await.unwrap(), 100);
    // Each new record twice in a row.
    let twice: Vec<_> = (0..50)
        .flat_map(|i| {
            let u = service(t(20_000 + i), "twice", &[], Some(100), &links);
            [u.clone(), u]
        })
        .collect();
    // (through the owned path, with a request)
    let mut twice = usage_records(twice);
    twice.push(Record::Request(request("rq_big", t(20_000), &links)));
    assert_eq!(s.insert_owned_records(twice).await.unwrap(), 51);

    let sum = |from, to| service_sums(s, from, to);
    assert_eq!(sum(0, 100).await, vec![("late".to_owned(), 100, 1_000)]);
    assert_eq!(sum(10_000, 10_100).await, vec![("x".to_owned(), 100, 100)]);
    assert_eq!(
        sum(20_000, 20_050).await,
        vec![("twice".to_owned(), 50, 5_000)]
    );
    let cost = s.task_cost("tk_big", ALL).await.unwrap().unwrap();
    assert_eq!(cost.total_cost_nanos, 100 + 1_000 + 5_000);
    assert_eq!(cost.request_count, 1);
}
