//! Following the store: `record_cursor_end` and `records_after`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use costtrace_core::Record;
use costtrace_store::{AnyStore, RecordCursor, RequestEnd, Store};

use crate::common::*;

/// Reads everything after `cursor`, `limit` at a time.
pub(crate) async fn drain(
    s: &AnyStore,
    mut cursor: RecordCursor,
    limit: u32,
) -> (Vec<Record>, RecordCursor) {
    let mut all = Vec::new();
    loop {
        let (batch, next) = s.records_after(cursor, limit).await.unwrap();
        if batch.is_empty() {
            assert_eq!(next, cursor, "no records, same cursor");
            return (all, cursor);
        }
        all.extend(batch);
        cursor = next;
    }
}

/// Reads after `cursor` until `n` records came (PostgreSQL holds back rows
/// while an older transaction, e.g. of a test running beside this one, is
/// still open), then checks that nothing else follows.
async fn wait_for(
    s: &AnyStore,
    cursor: RecordCursor,
    n: usize,
    page: u32,
) -> (Vec<Record>, RecordCursor) {
    wait_for_new(s, cursor, n, page, &[]).await
}

/// [`wait_for`], ignoring records of `seen`: a cursor from
/// `record_cursor_end` may give back records stored just before it (on
/// PostgreSQL, while an older transaction anywhere in the cluster is still
/// open: at least once, never missed).
async fn wait_for_new(
    s: &AnyStore,
    mut cursor: RecordCursor,
    n: usize,
    page: u32,
    seen: &[Record],
) -> (Vec<Record>, RecordCursor) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut all = Vec::new();
    while all.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {all:?} after 20 s"
        );
        let (batch, next) = drain(s, cursor, page).await;
        all.extend(batch.into_iter().filter(|r| !seen.contains(r)));
        cursor = next;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(all.len(), n, "{all:?}");
    (all, cursor)
}

pub(crate) async fn records_after_follows_what_is_stored(s: &AnyStore) {
    // A task of two requests: usage first, then its requests.
    let links = [
        ("task_id", "t1"),
        ("request_id", "r1"),
        ("entity_id", "acme"),
        ("user", "u1"),
    ];
    let mut first = usage_records(vec![
        service(
            t(0),
            "file_processor",
            &[("pages", 10)],
            Some(20_000_000),
            &links,
        ),
        llm(t(1), "openai", "gpt-4o", (1000, 200), None, &links),
    ]);
    first.push(Record::Request(request(
        "r1",
        t(0),
        &[("task_id", "t1"), ("entity_id", "acme")],
    )));
    s.insert_records(&first).await.unwrap();

    // From the start: everything, records as they were written, with a page
    // size smaller than the batch.
    let (all, _) = wait_for(s, RecordCursor::default(), 3, 1).await;
    for r in &first {
        assert!(all.contains(r), "{r:?} not read back from {all:?}");
    }

    // From the end: nothing new until something new is stored (SQLite:
    // nothing at all; PostgreSQL may give some of `first` back, see
    // `wait_for_new`).
    let end = s.record_cursor_end().await.unwrap();
    let (early, _) = drain(s, end, 100).await;
    assert!(early.iter().all(|r| first.contains(r)), "{early:?}");
    if matches!(s, AnyStore::Sqlite(_)) {
        assert!(early.is_empty(), "{early:?}");
    }
    let later = usage_records(vec![service(
        t(60),
        "transformer",
        &[("chunks", 45)],
        Some(135_000_000),
        &links,
    )]);
    s.insert_records(&later).await.unwrap();
    // Replays are not new records.
    s.insert_records(&first[..2]).await.unwrap();
    // (On SQLite nothing is skipped, so a replay stored again would show.)
    let seen: &[Record] = match s {
        AnyStore::Sqlite(_) => &[],
        _ => &first,
    };
    let (got, end) = wait_for_new(s, end, 1, 100, seen).await;
    assert_eq!(got, later);

    // A request comes again when it is written again (here: ended).
    s.end_request(
        "r1",
        RequestEnd {
            status_code: Some(500),
            error_message: Some("boom".into()),
            ..RequestEnd::default()
        },
    )
    .await
    .unwrap();
    let (got, _) = wait_for(s, end, 1, 100).await;
    let q = got[0].as_request().unwrap();
    assert_eq!((q.request_id.as_str(), q.status_code), ("r1", Some(500)));
    assert_eq!(q.error_message.as_deref(), Some("boom"));
}
