//! Realistic traffic for the dashboard, with every expected cost worked out
//! by hand from the catalogue's rates (nano-USD):
//!
//! - gpt-4o: $2.50 / $10 per M input / output tokens → 2,500 / 10,000 per token
//! - gpt-4o-mini: $0.15 / $0.60 per M → 150 / 600 per token
//! - claude-haiku-4-5: $1 / $5 per M → 1,000 / 5,000 per token
//! - file_processor $0.02 a page, transformer $0.003 a chunk (seed 004)
//! - `inhouse` / `summarizer-v2` is in no catalogue: unpriced.

use std::collections::BTreeMap;

use costtrace_core::Timestamp;
use serde_json::{Value, json};

pub const TENANTS: [&str; 3] = ["acme_corp", "globex", "initech"];
pub const BIG_TASK: &str = "task_big_upload";
pub const BIG_DOC: &str = "doc_annual_report";
pub const LIVE_TASK: &str = "task_live_ingest";
pub const LIVE_REQUEST: &str = "req_live_1";
pub const UNPRICED_MODEL: &str = "summarizer-v2";
/// A document whose only usage belongs to no recorded request.
pub const ORPHAN_DOC: &str = "doc_orphan_scan";
/// A request whose only usage is unpriced.
pub const SELFHOSTED_REQUEST: &str = "req_selfhosted";

const HOUR_US: i64 = 3_600_000_000;

/// What the fixtures add up to, per dimension.
#[derive(Debug, Default)]
pub struct Expected {
    pub total_nanos: i64,
    pub unpriced: u64,
    pub records: u64,
    pub by_model: BTreeMap<String, (i64, u64)>,
    pub by_entity: BTreeMap<String, (i64, u64)>,
    /// `file_processor`, `transformer`, or `llm` for model usage.
    pub by_service: BTreeMap<String, (i64, u64)>,
    pub by_task: BTreeMap<String, i64>,
    pub by_doc: BTreeMap<String, i64>,
    /// request id → (entity, status, cost nanos)
    pub requests: BTreeMap<String, (String, u16, i64)>,
}

/// Builds request and usage records in the ingest wire format.
#[derive(Debug, Default)]
pub struct Fixtures {
    pub records: Vec<Value>,
    pub expected: Expected,
    seq: u64,
}

pub struct Req<'a> {
    pub id: &'a str,
    pub ts: i64,
    pub entity: &'a str,
    pub task: Option<&'a str>,
    pub doc: Option<&'a str>,
    pub operation: &'a str,
    pub task_type: &'a str,
    /// `None`: still running.
    pub status: Option<u16>,
}

pub enum Use {
    Llm(&'static str, &'static str, u64, u64),
    Pages(u64),
    Chunks(u64),
}

impl Use {
    /// Hand-computed cost; `None` = unpriced.
    pub fn nanos(&self) -> Option<i64> {
        match *self {
            Use::Llm(_, "gpt-4o", i, o) => Some(i as i64 * 2_500 + o as i64 * 10_000),
            Use::Llm(_, "gpt-4o-mini", i, o) => Some(i as i64 * 150 + o as i64 * 600),
            Use::Llm(_, "claude-haiku-4-5", i, o) => Some(i as i64 * 1_000 + o as i64 * 5_000),
            Use::Llm(..) => None,
            Use::Pages(n) => Some(n as i64 * 20_000_000),
            Use::Chunks(n) => Some(n as i64 * 3_000_000),
        }
    }

    fn service(&self) -> &'static str {
        match self {
            Use::Llm(..) => "llm",
            Use::Pages(_) => "file_processor",
            Use::Chunks(_) => "transformer",
        }
    }

    fn model(&self) -> &'static str {
        match self {
            Use::Llm(_, m, ..) => m,
            _ => "(none)",
        }
    }
}

pub fn ts(us: i64) -> String {
    Timestamp::from_micros(us).to_rfc3339()
}

impl Fixtures {
    pub fn request(&mut self, r: &Req<'_>) {
        let mut v = json!({
            "kind": "request",
            "request_id": r.id,
            "endpoint": format!("/api/entities/{}/files", r.entity),
            "method": "POST",
            "timestamp": ts(r.ts),
            "entity_id": r.entity,
            "operation_type": r.operation,
            "task_type": r.task_type,
        });
        if let Some(t) = r.task {
            v["task_id"] = json!(t);
        }
        if let Some(d) = r.doc {
            v["doc_id"] = json!(d);
        }
        if let Some(s) = r.status {
            v["status_code"] = json!(s);
            v["processing_time_ms"] = json!(180.0 + (r.ts % 7_000) as f64 / 10.0);
            if s >= 500 {
                v["error_message"] = json!("provider timeout after 30 s");
            }
        }
        self.records.push(v);
        self.expected.requests.insert(
            r.id.to_owned(),
            (r.entity.to_owned(), r.status.unwrap_or(0), 0),
        );
    }

    /// A usage record inside request `r`, `offset_us` after its start.
    pub fn usage(&mut self, r: &Req<'_>, offset_us: i64, u: Use) -> Value {
        self.seq += 1;
        let mut attrs = json!({"request_id": r.id, "entity_id": r.entity, "tenant_id": r.entity});
        if let Some(t) = r.task {
            attrs["task_id"] = json!(t);
        }
        if let Some(d) = r.doc {
            attrs["doc_id"] = json!(d);
        }
        let mut v = json!({
            "kind": "usage",
            "id": uuid::Uuid::now_v7().to_string(),
            "attrs": attrs,
            "environment": "production",
            "timestamp": ts(r.ts + offset_us),
            "pricing_tier": "standard",
        });
        match u {
            Use::Llm(provider, model, i, o) => {
                v["provider"] = json!(provider);
                v["model"] = json!(model);
                v["input_tokens"] = json!(i);
                v["output_tokens"] = json!(o);
            }
            Use::Pages(n) => {
                v["service_type"] = json!("file_processor");
                v["units"] = json!({ "pages": n });
            }
            Use::Chunks(n) => {
                v["service_type"] = json!("transformer");
                v["units"] = json!({ "chunks": n });
            }
        }
        let nanos = u.nanos();
        let e = &mut self.expected;
        e.records += 1;
        let (n, unpriced) = (nanos.unwrap_or(0), u64::from(nanos.is_none()));
        e.total_nanos += n;
        e.unpriced += unpriced;
        let m = e.by_model.entry(u.model().to_owned()).or_default();
        m.0 += n;
        m.1 += unpriced;
        let m = e.by_entity.entry(r.entity.to_owned()).or_default();
        m.0 += n;
        m.1 += unpriced;
        let m = e.by_service.entry(u.service().to_owned()).or_default();
        m.0 += n;
        m.1 += unpriced;
        if let Some(t) = r.task {
            *e.by_task.entry(t.to_owned()).or_default() += n;
        }
        if let Some(d) = r.doc {
            *e.by_doc.entry(d.to_owned()).or_default() += n;
        }
        if let Some(req) = e.requests.get_mut(r.id) {
            req.2 += n;
        }
        self.records.push(v.clone());
        v
    }
}

/// A week of traffic of three tenants ending at `now_us`.
pub fn build(now_us: i64) -> Fixtures {
    let mut f = Fixtures::default();
    let base = now_us - now_us % HOUR_US;
    // 54 ordinary requests, one every 3 hours, over the last ~7 days.
    let ids: Vec<(String, String, String)> = (0..54)
        .map(|i| {
            (
                format!("req_{i:03}"),
                format!("upload_{i:03}"),
                format!("doc_{i:03}"),
            )
        })
        .collect();
    for (i, (id, task, doc)) in ids.iter().enumerate() {
        let i64_i = i as i64;
        let entity = TENANTS[i % 3];
        let t = base - (i64_i * 3 + 2) * HOUR_US - (i64_i * 7 % 60) * 60_000_000;
        let status = if i % 9 == 4 { 500 } else { 200 };
        let kind = i % 4;
        let (task, doc, op, tt) = match kind {
            0 => (
                Some(task.as_str()),
                Some(doc.as_str()),
                "file_upload",
                "upload",
            ),
            1 => (None, None, "chat", "interactive"),
            2 => (None, Some(doc.as_str()), "summarize", "batch"),
            _ => (None, None, "classify", "interactive"),
        };
        let r = Req {
            id,
            ts: t,
            entity,
            task,
            doc,
            operation: op,
            task_type: tt,
            status: Some(status),
        };
        f.request(&r);
        let n = i as u64;
        match kind {
            0 => {
                f.usage(&r, 50_000, Use::Pages(3 + n % 7));
                f.usage(&r, 900_000, Use::Chunks(20 + n % 11));
            }
            1 => {
                f.usage(
                    &r,
                    300_000,
                    Use::Llm("openai", "gpt-4o-mini", 1_200 + 37 * n, 300 + 11 * n),
                );
            }
            2 => {
                f.usage(
                    &r,
                    400_000,
                    Use::Llm("openai", "gpt-4o", 8_000 + 50 * n, 900 + 13 * n),
                );
                if i % 8 == 2 {
                    f.usage(&r, 700_000, Use::Llm("inhouse", UNPRICED_MODEL, 5_000, 400));
                }
            }
            _ => {
                f.usage(
                    &r,
                    200_000,
                    Use::Llm("anthropic", "claude-haiku-4-5", 2_000 + 90 * n, 150 + 7 * n),
                );
            }
        }
    }
    // Two multi-request tasks. The most expensive: a 3-part upload of one
    // document for acme_corp, $1.86 a part = $0.80 pages + $0.36 chunks +
    // $0.70 gpt-4o → $5.58. Then initech's nightly batch: 5 requests of 200
    // chunks ($0.60 each) → $3.00.
    let tasks = [
        (
            "req_big",
            3,
            26,
            "acme_corp",
            BIG_TASK,
            Some(BIG_DOC),
            "file_upload",
            "upload",
        ),
        (
            "req_batch",
            5,
            40,
            "initech",
            "batch_nightly_embed",
            None,
            "embed",
            "batch",
        ),
    ];
    for (prefix, count, hours_ago, entity, task, doc, operation, task_type) in tasks {
        for k in 0..count {
            let id = format!("{prefix}_{}", k + 1);
            let r = Req {
                id: &id,
                ts: base - hours_ago * HOUR_US + k * 300_000_000,
                entity,
                task: Some(task),
                doc,
                operation,
                task_type,
                status: Some(200),
            };
            f.request(&r);
            if task == BIG_TASK {
                f.usage(&r, 100_000, Use::Pages(40));
                f.usage(&r, 2_000_000, Use::Chunks(120));
                f.usage(&r, 3_000_000, Use::Llm("openai", "gpt-4o", 200_000, 20_000));
            } else {
                f.usage(&r, 500_000, Use::Chunks(200));
            }
        }
    }
    // A self-hosted model nobody has priced: the request's cost is unknown, not $0.
    let r = Req {
        id: SELFHOSTED_REQUEST,
        ts: base - 50 * HOUR_US,
        entity: "initech",
        task: None,
        doc: None,
        operation: "summarize",
        task_type: "interactive",
        status: Some(200),
    };
    f.request(&r);
    f.usage(&r, 800_000, Use::Llm("inhouse", UNPRICED_MODEL, 3_000, 250));
    // Usage of a document recorded outside any request (a background scan):
    // the document's cost view counts it, no request lists it.
    let r = Req {
        id: "req_never_recorded",
        ts: base - 30 * HOUR_US,
        entity: "acme_corp",
        task: None,
        doc: Some(ORPHAN_DOC),
        operation: "scan",
        task_type: "background",
        status: Some(200),
    };
    f.usage(&r, 0, Use::Llm("inhouse", UNPRICED_MODEL, 1_000, 50));
    // Still running: globex's upload has processed 10 pages so far ($0.20).
    let r = live_request(now_us);
    f.request(&r);
    f.usage(&r, 1_000_000, Use::Pages(10));
    f
}

/// The running request of [`LIVE_TASK`], started a minute before `now_us`.
pub fn live_request(now_us: i64) -> Req<'static> {
    Req {
        id: LIVE_REQUEST,
        ts: now_us - 60_000_000,
        entity: "globex",
        task: Some(LIVE_TASK),
        doc: Some("doc_live_scan"),
        operation: "file_upload",
        task_type: "upload",
        status: None,
    }
}

/// The dashboard's dollar format: cents from $1, 4 decimals from 1¢, else 6.
pub fn usd(nanos: i64) -> String {
    let v = nanos as f64 / 1e9;
    let a = v.abs();
    let d = if a >= 1.0 || a == 0.0 {
        2
    } else if a >= 0.01 {
        4
    } else {
        6
    };
    let s = format!("{v:.d$}");
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        format!("${grouped}")
    } else {
        format!("${grouped}.{frac}")
    }
}

#[test]
fn usd_matches_the_page_format() {
    assert_eq!(usd(5_580_000_000), "$5.58");
    assert_eq!(usd(1_234_567_000_000), "$1,234.57");
    assert_eq!(usd(200_000_000), "$0.2000");
    assert_eq!(usd(2_300_000), "$0.002300");
    assert_eq!(usd(0), "$0.00");
}
