//! Task, doc and entity cost, summaries, tenant scoping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use costtrace_store::{AnyStore, GroupBy, Page, RequestEnd, RequestFilter, Store, TenantScope};

use crate::common::*;

const ALL: &TenantScope = &TenantScope::All;

pub(crate) async fn multi_request_task_aggregates(s: &AnyStore) {
    for (i, cost) in [1_000_000i64, 2_000_000, 3_000_000].into_iter().enumerate() {
        let id = format!("req_big_{i}");
        let at = t(100 * i as i64);
        let mut req = request(
            &id,
            at,
            &[("task_id", "task_large_upload"), ("entity_id", "e1")],
        );
        req.status_code = Some(200);
        req.processing_time_ms = Some(2000.0);
        s.start_request(&req).await.unwrap();
        let links = [
            ("request_id", id.as_str()),
            ("task_id", "task_large_upload"),
        ];
        s.insert_records(&usage_records(vec![service(
            t(100 * i as i64 + 1),
            "transformer",
            &[("chunks", 1)],
            Some(cost),
            &links,
        )]))
        .await
        .unwrap();
    }
    // One unpriced LLM call: counted, not summed as zero.
    let links = [
        ("request_id", "req_big_2"),
        ("task_id", "task_large_upload"),
    ];
    s.insert_records(&usage_records(vec![llm(
        t(205),
        "acme",
        "foo-1",
        (10, 10),
        None,
        &links,
    )]))
    .await
    .unwrap();

    let c = s
        .task_cost("task_large_upload", ALL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.id, "task_large_upload");
    assert_eq!(c.total_cost_nanos, 6_000_000);
    assert_eq!(c.total_cost_usd, 0.006);
    assert_eq!(c.request_count, 3);
    assert_eq!(c.unpriced_count, 1);
    assert_eq!(c.period_start, t(0));
    // Last request starts at t(200) and takes 2 s; the last usage is at t(205).
    assert_eq!(c.period_end, t(205));
    assert_eq!(c.breakdown_by_service["transformer"], 0.006);
    assert_eq!(c.breakdown_by_service["llm:foo-1"], 0.0);
    assert_eq!(c.breakdown_by_service.len(), 2);
}

pub(crate) async fn running_task_has_cost_so_far(s: &AnyStore) {
    let req = request(
        "req_run",
        t(0),
        &[("task_id", "task_run"), ("entity_id", "e1")],
    );
    s.start_request(&req).await.unwrap();
    let c = s.task_cost("task_run", ALL).await.unwrap().unwrap();
    assert_eq!(
        (c.total_cost_nanos, c.request_count, c.unpriced_count),
        (0, 1, 0)
    );
    assert_eq!((c.period_start, c.period_end), (t(0), t(0)));

    let links = [("request_id", "req_run"), ("task_id", "task_run")];
    s.insert_records(&usage_records(vec![service(
        t(5),
        "file_processor",
        &[("pages", 3)],
        Some(6_000_000),
        &links,
    )]))
    .await
    .unwrap();
    let c = s.task_cost("task_run", ALL).await.unwrap().unwrap();
    assert_eq!(c.total_cost_nanos, 6_000_000);
    assert_eq!(c.period_end, t(5));

    // Usage that names a task without any request record is found too.
    s.insert_records(&usage_records(vec![service(
        t(7),
        "x",
        &[],
        Some(5),
        &[("task_id", "task_orphan"), ("request_id", "rq_o")],
    )]))
    .await
    .unwrap();
    let c = s.task_cost("task_orphan", ALL).await.unwrap().unwrap();
    assert_eq!((c.total_cost_nanos, c.request_count), (5, 1));
}

pub(crate) async fn doc_and_entity_cost(s: &AnyStore) {
    // Usage naming the doc directly …
    s.insert_records(&usage_records(vec![service(
        t(0),
        "file_processor",
        &[("pages", 1)],
        Some(2_000_000),
        &[("doc_id", "doc_1"), ("entity_id", "acme")],
    )]))
    .await
    .unwrap();
    // … and a request whose doc id is learned only at the end.
    s.start_request(&request("req_d", t(10), &[("entity_id", "acme")]))
        .await
        .unwrap();
    s.insert_records(&usage_records(vec![
        service(
            t(11),
            "transformer",
            &[("chunks", 10)],
            Some(30_000_000),
            &[("request_id", "req_d"), ("entity_id", "acme")],
        ),
        service(
            t(12),
            "transformer",
            &[("chunks", 1)],
            None,
            &[("request_id", "req_d"), ("entity_id", "acme")],
        ),
    ]))
    .await
    .unwrap();
    s.end_request(
        "req_d",
        RequestEnd {
            doc_id: Some("doc_1".into()),
            status_code: Some(200),
            ..RequestEnd::default()
        },
    )
    .await
    .unwrap();
    s.insert_records(&usage_records(vec![service(
        t(20),
        "transformer",
        &[("chunks", 1)],
        Some(7),
        &[("entity_id", "other")],
    )]))
    .await
    .unwrap();

    let d = s.doc_cost("doc_1", ALL).await.unwrap().unwrap();
    assert_eq!(d.total_cost_nanos, 32_000_000);
    assert_eq!(d.unpriced_count, 1);
    assert_eq!(d.request_count, 1);
    assert_eq!(d.period_start, t(0));

    let e = s.entity_cost("acme", ALL).await.unwrap().unwrap();
    assert_eq!(e.total_cost_nanos, 32_000_000);
    assert_eq!(e.unpriced_count, 1);
    assert_eq!(e.request_count, 1);
    assert_eq!(e.breakdown_by_service["file_processor"], 0.002);
    assert_eq!(e.breakdown_by_service["transformer"], 0.03);
    assert_eq!(
        s.entity_cost("other", ALL)
            .await
            .unwrap()
            .unwrap()
            .total_cost_nanos,
        7
    );
}

pub(crate) async fn usage_summary_groups_with_unpriced(s: &AnyStore) {
    let day2 = costtrace_core::Timestamp(t(0).0 + 86_400_000_000);
    s.insert_records(&usage_records(vec![
        llm(
            t(0),
            "openai",
            "gpt-4o",
            (100, 10),
            Some(1_000),
            &[("entity_id", "a"), ("task_id", "t1")],
        ),
        llm(
            t(1),
            "openai",
            "gpt-4o",
            (100, 10),
            Some(2_000),
            &[("entity_id", "b"), ("task_id", "t1")],
        ),
        llm(
            t(2),
            "anthropic",
            "claude-x",
            (100, 10),
            None,
            &[("entity_id", "a")],
        ),
        service(
            day2,
            "file_processor",
            &[("pages", 2)],
            Some(40_000),
            &[("entity_id", "a"), ("task_id", "t2"), ("doc_id", "d1")],
        ),
        service(day2, "transformer", &[("chunks", 2)], None, &[]),
    ]))
    .await
    .unwrap();
    let sum = |g: GroupBy| async move {
        s.usage_summary(g, None, None, ALL)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.total_cost_nanos, r.unpriced_count, r.record_count))
            .collect::<Vec<_>>()
    };
    let k = |k: &str, n, u, c| (k.to_owned(), n, u, c);
    assert_eq!(
        sum(GroupBy::Model).await,
        vec![
            k("(none)", 40_000, 1, 2),
            k("gpt-4o", 3_000, 0, 2),
            k("claude-x", 0, 1, 1)
        ]
    );
    assert_eq!(
        sum(GroupBy::Provider).await,
        vec![
            k("(none)", 40_000, 1, 2),
            k("openai", 3_000, 0, 2),
            k("anthropic", 0, 1, 1)
        ]
    );
    assert_eq!(
        sum(GroupBy::ServiceType).await,
        vec![
            k("file_processor", 40_000, 0, 1),
            k("llm", 3_000, 1, 3),
            k("transformer", 0, 1, 1)
        ]
    );
    assert_eq!(
        sum(GroupBy::EntityId).await,
        vec![
            k("a", 41_000, 1, 3),
            k("b", 2_000, 0, 1),
            k("(none)", 0, 1, 1)
        ]
    );
    assert_eq!(
        sum(GroupBy::Day).await,
        vec![k("2025-01-16", 40_000, 1, 2), k("2025-01-15", 3_000, 1, 3)]
    );
    assert_eq!(
        sum(GroupBy::Hour).await,
        vec![
            k("2025-01-16T10:00Z", 40_000, 1, 2),
            k("2025-01-15T10:00Z", 3_000, 1, 3)
        ]
    );
    // The most expensive tasks and documents first; usage outside any task
    // is one "(none)" group, with its unpriced count.
    assert_eq!(
        sum(GroupBy::TaskId).await,
        vec![
            k("t2", 40_000, 0, 1),
            k("t1", 3_000, 0, 2),
            k("(none)", 0, 2, 2)
        ]
    );
    assert_eq!(
        sum(GroupBy::DocId).await,
        vec![k("d1", 40_000, 0, 1), k("(none)", 3_000, 2, 4)]
    );
    assert_eq!("task_id".parse::<GroupBy>().unwrap(), GroupBy::TaskId);
    assert_eq!("hour".parse::<GroupBy>().unwrap(), GroupBy::Hour);
    // Time range [t(1), day2) and tenant scope.
    let r = s
        .usage_summary(GroupBy::Model, Some(t(1)), Some(day2), ALL)
        .await
        .unwrap();
    assert_eq!(r.iter().map(|r| r.record_count).sum::<u64>(), 2);
    let r = s
        .usage_summary(GroupBy::Model, None, None, &TenantScope::Tenant("b".into()))
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].key.as_str(), r[0].total_cost_nanos),
        ("gpt-4o", 2_000)
    );
    assert!(
        s.usage_summary(
            GroupBy::Day,
            None,
            None,
            &TenantScope::Tenant("nobody".into())
        )
        .await
        .unwrap()
        .is_empty()
    );
}

pub(crate) async fn tenant_scoping_hides_other_tenants(s: &AnyStore) {
    let mine = TenantScope::Tenant("acme".into());
    let theirs = TenantScope::Tenant("globex".into());
    s.start_request(&request(
        "rq_acme",
        t(0),
        &[
            ("entity_id", "acme"),
            ("task_id", "tk_acme"),
            ("doc_id", "dc_acme"),
        ],
    ))
    .await
    .unwrap();
    s.insert_records(&usage_records(vec![service(
        t(1),
        "x",
        &[],
        Some(10),
        &[
            ("entity_id", "acme"),
            ("task_id", "tk_acme"),
            ("request_id", "rq_acme"),
            ("doc_id", "dc_acme"),
        ],
    )]))
    .await
    .unwrap();
    assert!(s.get_request("rq_acme", &mine).await.unwrap().is_some());
    assert_eq!(
        s.task_cost("tk_acme", &mine)
            .await
            .unwrap()
            .unwrap()
            .total_cost_nanos,
        10
    );
    assert!(s.get_request("rq_acme", &theirs).await.unwrap().is_none());
    assert!(s.task_cost("tk_acme", &theirs).await.unwrap().is_none());
    assert!(s.doc_cost("dc_acme", &theirs).await.unwrap().is_none());
    assert!(s.entity_cost("acme", &theirs).await.unwrap().is_none());
    let (rows, total) = s
        .list_requests(&RequestFilter::default(), Page::default(), &theirs)
        .await
        .unwrap();
    assert!(rows.is_empty());
    assert_eq!(total, 0);
    let (_, total) = s
        .list_requests(&RequestFilter::default(), Page::default(), &mine)
        .await
        .unwrap();
    assert_eq!(total, 1);
    // A tenant that has some rows still cannot see the other's.
    s.insert_records(&usage_records(vec![service(
        t(2),
        "x",
        &[],
        Some(99),
        &[("entity_id", "globex"), ("task_id", "tk_acme")],
    )]))
    .await
    .unwrap();
    assert_eq!(
        s.task_cost("tk_acme", &mine)
            .await
            .unwrap()
            .unwrap()
            .total_cost_nanos,
        10
    );
    let g = s.task_cost("tk_acme", &theirs).await.unwrap().unwrap();
    assert_eq!((g.total_cost_nanos, g.request_count), (99, 0));
    assert_eq!(
        s.task_cost("tk_acme", ALL)
            .await
            .unwrap()
            .unwrap()
            .total_cost_nanos,
        109
    );
}

/// Totals past `i64::MAX` nano-USD (9.2 billion USD; a tenant could post
/// them on purpose) saturate on both backends instead of failing the query.
pub(crate) async fn totals_past_i64_saturate(s: &AnyStore) {
    let huge = 4_000_000_000_000_000_000i64; // 4e18 nano-USD each
    let links = [("task_id", "task_huge"), ("entity_id", "e_huge")];
    let us: Vec<_> = (0..3)
        .map(|i| llm(t(i), "openai", "gpt-huge", (1, 1), Some(huge), &links))
        .collect();
    s.insert_records(&usage_records(us)).await.unwrap();
    // One small record in another group: its total stays exact.
    let small = llm(t(5), "openai", "gpt-small", (1, 1), Some(7), &links);
    s.insert_records(&usage_records(vec![small])).await.unwrap();
    let rows = s
        .usage_summary(GroupBy::Model, None, None, ALL)
        .await
        .unwrap();
    let by: std::collections::BTreeMap<_, _> = rows
        .iter()
        .map(|r| (r.key.as_str(), (r.total_cost_nanos, r.record_count)))
        .collect();
    assert_eq!(by["gpt-huge"], (i64::MAX, 3), "{rows:?}");
    assert_eq!(by["gpt-small"], (7, 1), "{rows:?}");
    let task = s.task_cost("task_huge", ALL).await.unwrap().unwrap();
    assert_eq!(task.total_cost_nanos, i64::MAX);
    let tenant = s
        .usage_summary(
            GroupBy::EntityId,
            None,
            None,
            &TenantScope::Tenant("e_huge".into()),
        )
        .await
        .unwrap();
    assert_eq!(tenant.len(), 1);
    assert_eq!(tenant[0].total_cost_nanos, i64::MAX);
}

/// Usage may name any request id. A tenant whose usage names another
/// tenant's request must not learn that request's document through the
/// doc-cost query (it answers "not found", as for any unknown doc).
pub(crate) async fn doc_of_another_tenant_stays_hidden(s: &AnyStore) {
    let req = request(
        "req_acme_1",
        t(0),
        &[("doc_id", "doc_acme"), ("entity_id", "acme")],
    );
    s.insert_records(&[costtrace_core::Record::Request(req)])
        .await
        .unwrap();
    let u = llm(
        t(1),
        "openai",
        "gpt-4o",
        (10, 10),
        Some(1_000),
        &[("request_id", "req_acme_1"), ("entity_id", "other")],
    );
    s.insert_records(&usage_records(vec![u])).await.unwrap();
    let other = TenantScope::Tenant("other".into());
    assert!(s.doc_cost("doc_acme", &other).await.unwrap().is_none());
    // acme sees its document (its request), without the other tenant's spend.
    let acme = TenantScope::Tenant("acme".into());
    let v = s.doc_cost("doc_acme", &acme).await.unwrap().unwrap();
    assert_eq!((v.request_count, v.total_cost_nanos), (1, 0));
}

/// A usage recorded inside a multi-tenant service names its tenant
/// `tenant_id` (seed 003): it belongs to that tenant's entity unless it also
/// names an `entity_id`, which wins.
pub(crate) async fn tenant_id_names_the_entity_when_entity_id_is_absent(s: &AnyStore) {
    let a = llm(
        t(0),
        "openai",
        "gpt-4o",
        (1, 1),
        Some(11),
        &[("tenant_id", "acme_t")],
    );
    let b = llm(
        t(1),
        "openai",
        "gpt-4o",
        (1, 1),
        Some(22),
        &[("tenant_id", "acme_t"), ("entity_id", "globex_t")],
    );
    s.insert_records(&usage_records(vec![a, b])).await.unwrap();
    let acme = s.entity_cost("acme_t", ALL).await.unwrap().unwrap();
    assert_eq!(acme.total_cost_nanos, 11);
    let globex = s.entity_cost("globex_t", ALL).await.unwrap().unwrap();
    assert_eq!(globex.total_cost_nanos, 22);
    let seen = s
        .usage_summary(
            GroupBy::Model,
            None,
            None,
            &TenantScope::Tenant("acme_t".into()),
        )
        .await
        .unwrap();
    assert_eq!(seen.iter().map(|r| r.total_cost_nanos).sum::<i64>(), 11);
}
