//! Ingest, request tracking, listing and API keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use costtrace_core::{Record, ScopeRecord};
use costtrace_store::{AnyStore, Page, RequestEnd, RequestFilter, Store, StoreError, TenantScope};

use crate::common::*;

const ALL: &TenantScope = &TenantScope::All;

pub(crate) fn scope_record(at: costtrace_core::Timestamp) -> ScopeRecord {
    ScopeRecord {
        id: costtrace_core::new_id(),
        parent_id: None,
        name: "upload".into(),
        attrs: attrs(&[("task_id", "t1")]),
        environment: costtrace_core::Environment::Production,
        started_at: at,
        duration_ms: 5.0,
        error_occurred: false,
        error_message: None,
        success_count: 1,
        failure_count: 0,
        errors: Vec::new(),
        pricing_tier: costtrace_core::PricingTier::Standard,
        item_count: None,
    }
}

pub(crate) async fn idempotent_insert(s: &AnyStore) {
    let links = [("task_id", "t1"), ("entity_id", "e1"), ("job", "j9")];
    let mut batch = usage_records(vec![
        service(
            t(0),
            "file_processor",
            &[("pages", 10)],
            Some(20_000_000),
            &links,
        ),
        service(
            t(1),
            "transformer",
            &[("chunks", 45)],
            Some(135_000_000),
            &links,
        ),
        llm(
            t(2),
            "openai",
            "gpt-4o",
            (1000, 200),
            Some(4_500_000),
            &links,
        ),
    ]);
    batch.push(Record::Scope(scope_record(t(0))));
    batch.push(Record::Request(request(
        "r1",
        t(0),
        &[("task_id", "t1"), ("entity_id", "e1")],
    )));
    assert_eq!(s.insert_records(&batch).await.unwrap(), 5);
    assert_eq!(s.insert_records(&batch).await.unwrap(), 0);
    // Duplicates inside one batch count once too.
    let dup = usage_records(vec![service(
        t(3),
        "transformer",
        &[("chunks", 1)],
        Some(1),
        &links,
    )]);
    let mut twice = [dup.clone(), dup].concat();
    let mut r2 = request("r2", t(3), &[("task_id", "t1")]);
    twice.push(Record::Request(r2.clone()));
    r2.status_code = Some(201);
    twice.push(Record::Request(r2));
    assert_eq!(s.insert_records(&twice).await.unwrap(), 2);
    assert_eq!(
        s.get_request("r2", ALL).await.unwrap().unwrap().status_code,
        Some(201)
    );
    let cost = s.task_cost("t1", ALL).await.unwrap().unwrap();
    assert_eq!(
        cost.total_cost_nanos,
        20_000_000 + 135_000_000 + 4_500_000 + 1
    );
    assert_eq!(cost.request_count, 2);
    assert_eq!(s.insert_records(&[]).await.unwrap(), 0);
}

pub(crate) async fn request_start_end_and_services(s: &AnyStore) {
    let req = request(
        "req_123abc",
        t(0),
        &[
            ("task_id", "task_abc123"),
            ("entity_id", "company_123"),
            ("operation_type", "file_upload"),
            ("task_type", "upload"),
            ("endpoint", "/api/entities/{entity_id}/files"),
            ("method", "POST"),
        ],
    );
    s.start_request(&req).await.unwrap();
    let running = s.get_request("req_123abc", ALL).await.unwrap().unwrap();
    assert_eq!(running.status_code, None);
    assert_eq!(running.total_cost_nanos, 0);
    assert!(running.services_used.is_empty());

    let links = [
        ("request_id", "req_123abc"),
        ("task_id", "task_abc123"),
        ("entity_id", "company_123"),
    ];
    s.insert_records(&usage_records(vec![
        service(
            t(10),
            "file_processor",
            &[("pages", 10)],
            Some(20_000_000),
            &links,
        ),
        service(
            t(60),
            "transformer",
            &[("chunks", 25)],
            Some(75_000_000),
            &links,
        ),
        service(
            t(61),
            "transformer",
            &[("chunks", 25)],
            Some(75_000_000),
            &links,
        ),
    ]))
    .await
    .unwrap();
    s.end_request(
        "req_123abc",
        RequestEnd {
            status_code: Some(200),
            processing_time_ms: Some(3500.0),
            error_message: None,
            doc_id: Some("doc_xyz789".into()),
        },
    )
    .await
    .unwrap();

    let r = s.get_request("req_123abc", ALL).await.unwrap().unwrap();
    assert_eq!(r.status_code, Some(200));
    assert_eq!(r.processing_time_ms, Some(3500.0));
    assert_eq!(r.doc_id.as_deref(), Some("doc_xyz789"));
    assert_eq!(r.task_id.as_deref(), Some("task_abc123"));
    assert_eq!(r.operation_type.as_deref(), Some("file_upload"));
    assert_eq!(r.method.as_deref(), Some("POST"));
    assert_eq!(r.timestamp, t(0));
    assert_eq!(r.total_cost_nanos, 170_000_000);
    assert_eq!(r.total_cost_usd, 0.17);
    assert_eq!(r.unpriced_count, 0);
    let names: Vec<&str> = r
        .services_used
        .iter()
        .map(|u| u.service_type.as_str())
        .collect();
    assert_eq!(names, ["file_processor", "transformer"]);
    assert_eq!(r.services_used[0].cost_nanos, Some(20_000_000));
    assert_eq!(r.services_used[0].breakdown["pages"], 10);
    assert_eq!(r.services_used[1].cost_usd, Some(0.15));
    assert_eq!(r.services_used[1].breakdown["chunks"], 50);

    // Starting again (a replay) keeps what end_request set.
    s.start_request(&req).await.unwrap();
    let again = s.get_request("req_123abc", ALL).await.unwrap().unwrap();
    assert_eq!(again.status_code, Some(200));
    assert_eq!(again.doc_id.as_deref(), Some("doc_xyz789"));

    let err = s
        .end_request("nope", RequestEnd::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownRequest(_)), "{err}");
}

pub(crate) async fn filters_pagination_and_total(s: &AnyStore) {
    // 25 requests: entity alternates, task every 5, status 200 except every 4th.
    for i in 0..25i64 {
        let id = format!("rq_{i:02}");
        let entity = if i % 2 == 0 { "ent_a" } else { "ent_b" };
        let task = format!("task_{}", i / 5);
        let status = if i % 4 == 0 { "500" } else { "200" };
        let op = if i < 10 { "file_upload" } else { "query" };
        let tt = if i < 10 { "upload" } else { "search" };
        let doc = format!("doc_{}", i % 3);
        // Two requests share each timestamp, so order needs the id tiebreak.
        let r = request(
            &id,
            t(i / 2),
            &[
                ("entity_id", entity),
                ("task_id", &task),
                ("status", status),
                ("operation_type", op),
                ("task_type", tt),
                ("doc_id", &doc),
            ],
        );
        s.insert_records(&[Record::Request(r)]).await.unwrap();
    }
    let list = |f: RequestFilter, page: u32, size: u32| async move {
        s.list_requests(
            &f,
            Page {
                page,
                page_size: size,
            },
            ALL,
        )
        .await
        .unwrap()
    };
    let ids = |v: &[costtrace_store::RequestView]| {
        v.iter().map(|r| r.request_id.clone()).collect::<Vec<_>>()
    };

    let mut seen = Vec::new();
    for page in 1..=3 {
        let (rows, total) = list(RequestFilter::default(), page, 10).await;
        assert_eq!(total, 25);
        assert_eq!(rows.len(), if page == 3 { 5 } else { 10 });
        seen.extend(ids(&rows));
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("rq_{i:02}")).collect();
    assert_eq!(
        seen, expected,
        "newest first, ties by request id descending, no gaps or repeats"
    );
    let (rows, total) = list(RequestFilter::default(), 4, 10).await;
    assert!(rows.is_empty());
    assert_eq!(total, 25);
    // The same page twice is the same page.
    assert_eq!(
        ids(&list(RequestFilter::default(), 2, 7).await.0),
        ids(&list(RequestFilter::default(), 2, 7).await.0)
    );

    let count = |f: RequestFilter| async move { list(f, 1, 100).await };
    let f = |set: fn(&mut RequestFilter)| {
        let mut f = RequestFilter::default();
        set(&mut f);
        f
    };
    let (rows, total) = count(f(|f| f.task_id = Some("task_2".into()))).await;
    assert_eq!(
        (total, ids(&rows)),
        (
            5,
            vec![
                "rq_14".into(),
                "rq_13".into(),
                "rq_12".into(),
                "rq_11".into(),
                "rq_10".into()
            ]
        )
    );
    assert_eq!(count(f(|f| f.doc_id = Some("doc_0".into()))).await.1, 9);
    assert_eq!(count(f(|f| f.entity_id = Some("ent_a".into()))).await.1, 13);
    assert_eq!(
        count(f(|f| f.task_type = Some("upload".into()))).await.1,
        10
    );
    assert_eq!(
        count(f(|f| f.operation_type = Some("query".into())))
            .await
            .1,
        15
    );
    assert_eq!(count(f(|f| f.status_code = Some(500))).await.1, 7);
    assert_eq!(count(f(|f| f.status_code = Some(404))).await.1, 0);
    // [t(2), t(5)) holds requests 4..=9.
    let (rows, total) = count(f(|f| {
        f.from = Some(t(2));
        f.to = Some(t(5));
    }))
    .await;
    assert_eq!(total, 6);
    assert_eq!(ids(&rows).last().map(String::as_str), Some("rq_04"));
    let (_, total) = count(f(|f| {
        f.entity_id = Some("ent_a".into());
        f.task_type = Some("upload".into());
        f.status_code = Some(200);
    }))
    .await;
    assert_eq!(total, 2); // 2 and 6
    assert_eq!(
        count(f(|f| f.task_id = Some("no_such_task".into())))
            .await
            .1,
        0
    );

    let bad = s
        .list_requests(
            &RequestFilter::default(),
            Page {
                page: 0,
                page_size: 10,
            },
            ALL,
        )
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
}

pub(crate) async fn api_keys_crud(s: &AnyStore) {
    let admin = s.create_api_key("hash_admin", None, "ops").await.unwrap();
    let tenant = s
        .create_api_key("hash_t", Some("acme"), "acme ingest")
        .await
        .unwrap();
    assert_eq!(s.find_api_key("hash_admin").await.unwrap().unwrap(), admin);
    let found = s.find_api_key("hash_t").await.unwrap().unwrap();
    assert_eq!(
        (found.tenant.as_deref(), found.label.as_str(), found.revoked),
        (Some("acme"), "acme ingest", false)
    );
    assert!(s.find_api_key("nope").await.unwrap().is_none());
    let ids: BTreeSet<String> = s
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, BTreeSet::from([admin.id.clone(), tenant.id.clone()]));
    assert!(s.revoke_api_key(&tenant.id).await.unwrap());
    assert!(!s.revoke_api_key(&tenant.id).await.unwrap());
    assert!(!s.revoke_api_key("no-such-id").await.unwrap());
    assert!(s.find_api_key("hash_t").await.unwrap().is_none());
    let listed = s.list_api_keys().await.unwrap();
    assert_eq!(listed.iter().filter(|k| k.revoked).count(), 1);
    assert!(
        s.create_api_key("hash_admin", None, "dup").await.is_err(),
        "hashes are unique"
    );
}

pub(crate) async fn unknown_ids_are_none(s: &AnyStore) {
    s.insert_records(&usage_records(vec![service(
        t(0),
        "x",
        &[],
        Some(1),
        &[("task_id", "known")],
    )]))
    .await
    .unwrap();
    assert!(s.get_request("nonexistent", ALL).await.unwrap().is_none());
    assert!(s.task_cost("nonexistent", ALL).await.unwrap().is_none());
    assert!(s.doc_cost("nonexistent", ALL).await.unwrap().is_none());
    assert!(s.entity_cost("nonexistent", ALL).await.unwrap().is_none());
    // A name that exists as something else is still not a request.
    assert!(s.get_request("known", ALL).await.unwrap().is_none());
    assert!(s.doc_cost("known", ALL).await.unwrap().is_none());
}

/// Names first stored after earlier reads (a new tenant, operation, task
/// type, service and model) come back right, and earlier answers stay right:
/// the SQLite readers cache dictionary names between reads.
pub(crate) async fn names_stored_after_reads_resolve(s: &AnyStore) {
    let first = [
        ("task_id", "nt1"),
        ("entity_id", "tenant-a"),
        ("request_id", "nr1"),
    ];
    s.insert_records(&usage_records(vec![llm(
        t(0),
        "openai",
        "gpt-4o",
        (10, 5),
        Some(100),
        &first,
    )]))
    .await
    .unwrap();
    s.insert_records(&[Record::Request(request(
        "nr1",
        t(0),
        &[
            ("task_id", "nt1"),
            ("entity_id", "tenant-a"),
            ("operation_type", "upload"),
            ("task_type", "ocr"),
        ],
    ))])
    .await
    .unwrap();
    let by_task = |task: &'static str| RequestFilter {
        task_id: Some(task.into()),
        ..RequestFilter::default()
    };
    let page = Page {
        page: 1,
        page_size: 10,
    };
    let (one, _) = s.list_requests(&by_task("nt1"), page, ALL).await.unwrap();
    assert_eq!(one[0].entity_id.as_deref(), Some("tenant-a"));
    assert_eq!(one[0].services_used[0].service_type, "llm:gpt-4o");

    let second = [
        ("task_id", "nt2"),
        ("entity_id", "tenant-b"),
        ("request_id", "nr2"),
    ];
    s.insert_records(&usage_records(vec![
        service(t(1), "file_processor", &[("pages", 3)], Some(7), &second),
        llm(t(2), "anthropic", "claude-3-5-haiku", (1, 1), None, &second),
    ]))
    .await
    .unwrap();
    s.insert_records(&[Record::Request(request(
        "nr2",
        t(1),
        &[
            ("task_id", "nt2"),
            ("entity_id", "tenant-b"),
            ("operation_type", "reindex"),
            ("task_type", "embed"),
        ],
    ))])
    .await
    .unwrap();
    let (two, total) = s.list_requests(&by_task("nt2"), page, ALL).await.unwrap();
    assert_eq!(total, 1);
    let r = &two[0];
    assert_eq!(r.request_id, "nr2");
    assert_eq!(r.entity_id.as_deref(), Some("tenant-b"));
    assert_eq!(r.operation_type.as_deref(), Some("reindex"));
    assert_eq!(r.task_type.as_deref(), Some("embed"));
    let services: Vec<&str> = r
        .services_used
        .iter()
        .map(|u| u.service_type.as_str())
        .collect();
    assert_eq!(services, ["file_processor", "llm:claude-3-5-haiku"]);
    assert_eq!(r.total_cost_nanos, 7);
    assert_eq!(r.unpriced_count, 1);
    let cost = s.task_cost("nt2", ALL).await.unwrap().unwrap();
    let keys: Vec<&str> = cost
        .breakdown_by_service
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["file_processor", "llm:claude-3-5-haiku"]);
    // The first answer is unchanged.
    let (again, _) = s.list_requests(&by_task("nt1"), page, ALL).await.unwrap();
    assert_eq!(again, one);
    assert_eq!(again[0].operation_type.as_deref(), Some("upload"));
    assert_eq!(again[0].task_type.as_deref(), Some("ocr"));
}

/// A request record naming another tenant than the stored request's never
/// changes it (neither its fields nor its owner); the same tenant, or a
/// record naming no tenant, still fills in what is missing.
pub(crate) async fn requests_of_other_tenants_are_not_merged(s: &AnyStore) {
    let mine = request("req_owned", t(10), &[("entity_id", "acme")]);
    s.insert_records(&[Record::Request(mine)]).await.unwrap();
    let mut theirs = request(
        "req_owned",
        t(0),
        &[
            ("entity_id", "other"),
            ("task_id", "task_x"),
            ("status", "500"),
        ],
    );
    theirs.error_message = Some("overwritten".into());
    s.insert_records(&[Record::Request(theirs)]).await.unwrap();
    let v = s.get_request("req_owned", ALL).await.unwrap().unwrap();
    assert_eq!(v.entity_id.as_deref(), Some("acme"));
    assert_eq!(v.status_code, None);
    assert_eq!(v.error_message, None);
    assert_eq!(v.task_id, None);
    assert_eq!(v.timestamp, t(10));
    // The owner itself, and a record without a tenant, still merge.
    let same = request(
        "req_owned",
        t(10),
        &[("entity_id", "acme"), ("status", "200")],
    );
    let anon = request("req_owned", t(10), &[("task_id", "task_y")]);
    s.insert_records(&[Record::Request(same)]).await.unwrap();
    s.insert_records(&[Record::Request(anon)]).await.unwrap();
    let v = s.get_request("req_owned", ALL).await.unwrap().unwrap();
    assert_eq!(v.status_code, Some(200));
    assert_eq!(v.task_id.as_deref(), Some("task_y"));
}
