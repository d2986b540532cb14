//! `POST /api/ingest`: a JSON array of records (scope, usage, request) in the
//! wire format of `costtrace-core`. Each record is checked on its own: the
//! valid ones are stored, the invalid ones are listed with a field-level
//! reason. Usage without a cost is priced with the server's catalogue; a
//! cost that arrives with it (provider-reported) is kept.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use costtrace_core::{Attrs, Record, RequestRecord, ScopeRecord, UsageRecord};
use costtrace_store::{Store, TenantScope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::{ApiError, AppState, Caller, MAX_ID_LEN};

/// Largest accepted body (bytes); larger is a 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Most records in one batch.
pub const MAX_BATCH: usize = 10_000;
/// Largest token or unit count accepted (a trillion).
pub const MAX_COUNT: u64 = 1_000_000_000_000;
/// Largest cost of one record accepted, in dollars.
pub const MAX_COST_USD: f64 = 1_000_000.0;
const MAX_TEXT: usize = 16 * 1024;
const MAX_ATTRS: usize = 64;
const MAX_ATTR_VALUE: usize = 1024;
const MAX_DURATION_MS: f64 = 1e10;

/// The answer of `POST /api/ingest`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResult {
    /// Valid records (stored now or already there).
    pub accepted: usize,
    /// Records that were new (a replay inserts nothing).
    pub inserted: u64,
    /// Invalid records, each with a field-level reason; the others were stored.
    pub rejected: Vec<Rejected>,
    /// Only when nothing in the batch was valid (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One rejected record of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejected {
    /// Its 0-based position in the batch.
    pub index: usize,
    /// Why, naming the field (`attrs.entity_id: …`).
    pub reason: String,
}

/// Ingest records
///
/// A JSON array of scope, usage and request records. Each record is checked
/// on its own; idempotent by record id. Usage without a cost is priced with
/// the server's catalogue; a provider-reported cost is kept. A tenant key
/// may only write its own tenant's records.
#[utoipa::path(post, path = "/api/ingest", tag = "ingest",
    request_body(content = Vec<Record>, description = "At most 10,000 records and 16 MiB"),
    responses(
        (status = 200, description = "Valid records stored; invalid ones listed", body = IngestResult),
        (status = 400, description = "Not a JSON array", body = crate::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::ErrorBody),
        (status = 413, description = "Body or batch too large", body = crate::ErrorBody),
        (status = 422, description = "No record was valid", body = IngestResult),
    ))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    Caller(scope): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| crate::error::rejection(e.status(), e.body_text()))?;
    // Presized for records of 512 bytes (the benchmark's are ~600).
    let capacity = (body.len() / 512).min(MAX_BATCH);
    let mut valid = Vec::with_capacity(capacity);
    let mut valid_index = Vec::with_capacity(capacity);
    let mut rejected = Vec::new();
    let mut take = |index: usize, parsed: Result<Record, String>| match parsed
        .and_then(|r| check_record(r, &scope))
        .map(|r| price(r, &state))
    {
        Ok(r) => {
            valid.push(r);
            valid_index.push(index);
        }
        Err(reason) => rejected.push(Rejected { index, reason }),
    };
    if let Some(records) = read_batch(&body) {
        for (index, r) in records.into_iter().enumerate() {
            take(index, Ok(r));
        }
    } else {
        // Each record stays unparsed text until it is read on its own.
        let items: Vec<&RawValue> = match serde_json::from_slice::<Vec<&RawValue>>(&body) {
            Ok(items) => items,
            Err(_) => {
                // Say precisely what is wrong with the body.
                return Err(match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Array(_)) => ApiError::BadRequest("malformed JSON array".into()),
                    Ok(_) => {
                        ApiError::BadRequest("the body must be a JSON array of records".into())
                    }
                    Err(e) => ApiError::BadRequest(format!("malformed JSON: {e}")),
                });
            }
        };
        if items.len() > MAX_BATCH {
            return Err(ApiError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} records in one batch; send at most {MAX_BATCH} per request",
                    items.len()
                ),
            ));
        }
        for (index, item) in items.into_iter().enumerate() {
            take(index, parse_raw(item));
        }
    }
    if let TenantScope::Tenant(t) = &scope {
        // A tenant may not overwrite another tenant's request by reusing its id.
        let mut kept = Vec::with_capacity(valid.len());
        for (index, r) in valid_index.into_iter().zip(valid) {
            if let Record::Request(q) = &r
                && let Some(existing) = state
                    .store
                    .get_request(&q.request_id, &TenantScope::All)
                    .await?
                && existing.entity_id.as_deref() != Some(t.as_str())
            {
                rejected.push(Rejected {
                    index,
                    reason: format!(
                        "request_id: {:?} is already used; pick another id",
                        q.request_id
                    ),
                });
                continue;
            }
            kept.push(r);
        }
        valid = kept;
    }
    let records = valid;
    let accepted = records.len();
    let inserted = if records.is_empty() {
        0
    } else {
        match state.store.insert_owned_records(records).await {
            Ok(n) => n,
            Err(e) => {
                state.metrics.store_write_failed();
                return Err(e.into());
            }
        }
    };
    state
        .metrics
        .records_ingested(accepted as u64, rejected.len() as u64);
    let status = if accepted == 0 && !rejected.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let body = IngestResult {
        accepted,
        inserted,
        rejected,
        detail: (status != StatusCode::OK)
            .then(|| "no record in the batch was valid; see `rejected`".to_owned()),
    };
    Ok((status, Json(body)).into_response())
}

fn de<T: DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// PostgreSQL text cannot hold NUL: refuse it up front for both backends.
fn find_nul(v: &Value, path: &mut String) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = find_nul(item, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                return Some(format!("{path}(a key)"));
            }
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let found = find_nul(item, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// The whole batch read in one pass over the body, when it is a JSON array
/// of at most [`MAX_BATCH`] records that each read as [`KindFirst`] and
/// the body spells no NUL. `None` for anything else (a record to reject,
/// an unusual one, not an array, too many records): the caller then reads
/// it record by record, as [`parse_raw`] does, which names what is wrong.
/// Both give the same records; this one saves a pass over the body to find
/// where each record ends.
fn read_batch(body: &[u8]) -> Option<Vec<Record>> {
    if memchr::memmem::find(body, br"\u0000").is_some() {
        return None;
    }
    // Checked as UTF-8 once, so strings are not checked one by one.
    let body = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(body);
    // Presized for records of 512 bytes (the benchmark's are ~600).
    let capacity = (body.len() / 512).min(MAX_BATCH);
    let records = serde::Deserializer::deserialize_seq(&mut de, BatchVisitor { capacity }).ok()?;
    de.end().ok()?;
    Some(records)
}

struct BatchVisitor {
    capacity: usize,
}

impl<'de> serde::de::Visitor<'de> for BatchVisitor {
    type Value = Vec<Record>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of records, each starting with \"kind\"")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Record>, A::Error> {
        let mut records = Vec::with_capacity(self.capacity);
        while let Some(KindFirst(r)) = seq.next_element()? {
            if records.len() == MAX_BATCH {
                return Err(serde::de::Error::custom("too many records"));
            }
            records.push(r);
        }
        Ok(records)
    }
}

/// A record whose first key is `kind`, as serde writes every [`Record`]:
/// read in one pass over its text, the tag and then the rest of the object
/// as that kind's fields. Anything else (the tag later, an escaped key, a
/// second `kind`) is an error here, and [`parse_raw`] takes the slow path.
struct KindFirst(Record);

impl<'de> serde::Deserialize<'de> for KindFirst {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(KindFirstVisitor)
    }
}

struct KindFirstVisitor;

impl<'de> serde::de::Visitor<'de> for KindFirstVisitor {
    type Value = KindFirst;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record object starting with \"kind\"")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<KindFirst, A::Error> {
        use serde::de::{Error, value::MapAccessDeserializer};
        if map.next_key::<&'de str>()? != Some("kind") {
            return Err(A::Error::custom("kind is not the first key"));
        }
        let kind: &'de str = map.next_value()?;
        let rest = MapAccessDeserializer::new(NoSecondKind(map));
        Ok(KindFirst(match kind {
            "usage" => Record::Usage(serde::Deserialize::deserialize(rest)?),
            "request" => Record::Request(serde::Deserialize::deserialize(rest)?),
            "scope" => Record::Scope(serde::Deserialize::deserialize(rest)?),
            _ => return Err(A::Error::custom("unknown kind")),
        }))
    }
}

/// The rest of a record's keys; a second `kind` is an error (the slow path
/// then decides which one counts, as a JSON object does: the last).
struct NoSecondKind<A>(A);

impl<'de, A: serde::de::MapAccess<'de>> serde::de::MapAccess<'de> for NoSecondKind<A> {
    type Error = A::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        use serde::de::{Error, value::BorrowedStrDeserializer};
        match self.0.next_key::<&'de str>()? {
            None => Ok(None),
            Some("kind") => Err(A::Error::custom("kind appears twice")),
            Some(k) => seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some),
        }
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(seed)
    }
}

/// Reads one record straight from its text (no intermediate JSON tree). Any
/// record that is not plainly valid — or that may hold a NUL, which only an
/// escape can spell — takes [`parse_record`], which names what is wrong.
fn parse_raw(raw: &RawValue) -> Result<Record, String> {
    let text = raw.get();
    let fast = || -> Option<Record> {
        if text.contains("\\u0000") {
            return None;
        }
        serde_json::from_str::<KindFirst>(text).ok().map(|k| k.0)
    };
    match fast() {
        Some(r) => Ok(r),
        None => serde_json::from_str::<Value>(text)
            .map_err(|e| e.to_string())
            .and_then(parse_record),
    }
}

/// Reads the `kind` tag, then the record itself, so errors name the field.
fn parse_record(v: Value) -> Result<Record, String> {
    if let Some(path) = find_nul(&v, &mut String::new()) {
        return Err(format!("{path}: contains a NUL character"));
    }
    let kind = match v.get("kind") {
        Some(Value::String(k)) => k.clone(),
        Some(_) => return Err("kind: must be a string (scope, usage or request)".into()),
        None if v.is_object() => return Err("kind: missing (scope, usage or request)".into()),
        None => return Err("a record must be a JSON object".into()),
    };
    match kind.as_str() {
        "usage" => de::<UsageRecord>(v).map(Record::Usage),
        "request" => de::<RequestRecord>(v).map(Record::Request),
        "scope" => de::<ScopeRecord>(v).map(Record::Scope),
        other => Err(format!(
            "kind: {:?} is not a record kind (scope, usage or request)",
            truncate(other)
        )),
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn max_len(field: &str, v: Option<&str>, max: usize) -> Result<(), String> {
    match v {
        Some(s) if s.len() > max => Err(format!(
            "{field}: {} bytes long; at most {max} are allowed",
            s.len()
        )),
        _ => Ok(()),
    }
}

fn duration(field: &str, v: Option<f64>) -> Result<(), String> {
    match v {
        Some(d) if !d.is_finite() || !(0.0..=MAX_DURATION_MS).contains(&d) => Err(format!(
            "{field}: {d} is not a duration in milliseconds (0 to {MAX_DURATION_MS})"
        )),
        _ => Ok(()),
    }
}

fn count(field: &str, v: Option<u64>) -> Result<(), String> {
    match v {
        Some(n) if n > MAX_COUNT => Err(format!("{field}: {n} is larger than {MAX_COUNT}")),
        _ => Ok(()),
    }
}

/// Checks attrs and binds them to the caller's tenant: a tenant's records
/// get its `entity_id`; naming another tenant is refused.
fn check_attrs(attrs: &mut Attrs, scope: &TenantScope) -> Result<(), String> {
    if attrs.len() > MAX_ATTRS {
        return Err(format!(
            "attrs: {} entries; at most {MAX_ATTRS}",
            attrs.len()
        ));
    }
    for (k, v) in attrs.iter() {
        max_len("attrs key", Some(k), MAX_ID_LEN)?;
        let max = if matches!(
            k.as_str(),
            "request_id" | "task_id" | "doc_id" | "entity_id"
        ) {
            MAX_ID_LEN
        } else {
            MAX_ATTR_VALUE
        };
        if v.len() > max {
            max_len(&format!("attrs.{k}"), Some(v), max)?;
        }
    }
    if let TenantScope::Tenant(t) = scope {
        match attrs.get("entity_id") {
            Some(e) if e != t => {
                return Err("attrs.entity_id: names another tenant than the API key's".into());
            }
            Some(_) => {}
            None => {
                attrs.insert("entity_id".into(), t.clone());
            }
        }
    }
    Ok(())
}

fn check_record(mut r: Record, scope: &TenantScope) -> Result<Record, String> {
    match &mut r {
        Record::Usage(u) => {
            check_attrs(&mut u.attrs, scope)?;
            for (f, v) in [
                ("provider", &u.provider),
                ("model", &u.model),
                ("service_type", &u.service_type),
                ("operation", &u.operation),
                ("price_version", &u.price_version),
            ] {
                max_len(f, v.as_deref(), MAX_ID_LEN)?;
            }
            max_len("error_message", u.error_message.as_deref(), MAX_TEXT)?;
            max_len(
                "unpriced_reason",
                u.unpriced_reason.as_deref(),
                MAX_ATTR_VALUE,
            )?;
            for (f, v) in [
                ("input_tokens", u.input_tokens),
                ("output_tokens", u.output_tokens),
                ("cache_read_tokens", u.cache_read_tokens),
                ("cache_write_tokens", u.cache_write_tokens),
                ("reasoning_tokens", u.reasoning_tokens),
            ] {
                count(f, v)?;
            }
            if u.units.len() > MAX_ATTRS {
                return Err(format!(
                    "units: {} entries; at most {MAX_ATTRS}",
                    u.units.len()
                ));
            }
            for (k, v) in &u.units {
                max_len("units key", Some(k), MAX_ID_LEN)?;
                if *v > MAX_COUNT {
                    count(&format!("units.{k}"), Some(*v))?;
                }
            }
            duration("duration_ms", u.duration_ms)?;
            if let Some(usd) = u.cost_usd
                && (!usd.is_finite() || !(0.0..=MAX_COST_USD).contains(&usd))
            {
                return Err(format!(
                    "cost_usd: {usd} is not a cost between 0 and {MAX_COST_USD}"
                ));
            }
            if let Some(n) = u.cost_nanos {
                let max = costtrace_core::usd_to_nanos(MAX_COST_USD).unwrap_or(i64::MAX);
                if !(0..=max).contains(&n) {
                    return Err(format!("cost_nanos: {n} is not a cost between 0 and {max}"));
                }
            }
        }
        Record::Request(q) => {
            if q.request_id.trim().is_empty() {
                return Err("request_id: must not be empty".into());
            }
            for (f, v) in [
                ("request_id", Some(&q.request_id)),
                ("task_id", q.task_id.as_ref()),
                ("doc_id", q.doc_id.as_ref()),
                ("entity_id", q.entity_id.as_ref()),
                ("operation_type", q.operation_type.as_ref()),
                ("task_type", q.task_type.as_ref()),
                ("method", q.method.as_ref()),
            ] {
                max_len(f, v.map(String::as_str), MAX_ID_LEN)?;
            }
            max_len("endpoint", q.endpoint.as_deref(), MAX_ATTR_VALUE)?;
            max_len("error_message", q.error_message.as_deref(), MAX_TEXT)?;
            if let Some(s) = q.status_code
                && !(100..=599).contains(&s)
            {
                return Err(format!("status_code: {s} is not an HTTP status (100–599)"));
            }
            duration("processing_time_ms", q.processing_time_ms)?;
            if let TenantScope::Tenant(t) = scope {
                match &q.entity_id {
                    Some(e) if e != t => {
                        return Err("entity_id: names another tenant than the API key's".into());
                    }
                    Some(_) => {}
                    None => q.entity_id = Some(t.clone()),
                }
            }
        }
        Record::Scope(s) => {
            check_attrs(&mut s.attrs, scope)?;
            max_len("name", Some(&s.name), MAX_ID_LEN)?;
            max_len("error_message", s.error_message.as_deref(), MAX_TEXT)?;
            duration("duration_ms", Some(s.duration_ms))?;
            if s.errors.len() > costtrace_core::MAX_SCOPE_ERRORS {
                return Err(format!(
                    "errors: {} entries; at most {}",
                    s.errors.len(),
                    costtrace_core::MAX_SCOPE_ERRORS
                ));
            }
            for e in &s.errors {
                max_len("errors.item", Some(&e.item), MAX_ATTR_VALUE)?;
                max_len("errors.error", Some(&e.error), MAX_TEXT)?;
            }
        }
    }
    Ok(r)
}

/// Keeps a reported cost; prices usage that has none.
fn price(mut r: Record, state: &AppState) -> Record {
    if let Record::Usage(u) = &mut r {
        match (u.cost_nanos, u.cost_usd) {
            (Some(n), _) => u.cost_usd = Some(costtrace_core::nanos_to_usd(n)),
            (None, Some(usd)) => {
                u.cost_nanos = costtrace_core::usd_to_nanos(usd);
                u.unpriced_reason = None;
            }
            (None, None) => state.catalogue.price_record(u),
        }
        if u.cost_nanos.is_some() {
            u.unpriced_reason = None;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn slow(text: &str) -> Result<Record, String> {
        parse_record(serde_json::from_str(text).unwrap())
    }

    const USAGE: &str = r#""id":"0190c3e0-0000-7000-8000-000000000001","attrs":{"task_id":"t1"},"environment":"production","timestamp":"2025-01-15T10:30:00.000Z","provider":"openai","model":"gpt-4o","input_tokens":10,"units":{"pages":2},"pricing_tier":"standard","cost_usd":0.5"#;

    /// One record of each kind, as a client sends them.
    fn sample_records() -> [String; 3] {
        [
            format!(r#"{{"kind":"usage",{USAGE}}}"#),
            r#"{"kind":"request","request_id":"r1","task_id":"t1","timestamp":"2025-01-15T10:30:00.000Z","status_code":200}"#.to_owned(),
            r#"{"kind":"scope","id":"0190c3e0-0000-7000-8000-000000000002","parent_id":null,"name":"op","attrs":{},"environment":"production","started_at":"2025-01-15T10:30:00.000Z","duration_ms":1.5,"error_occurred":false,"error_message":null,"success_count":1,"failure_count":0,"errors":[],"pricing_tier":"standard","item_count":null}"#.to_owned(),
        ]
    }

    #[test]
    fn one_pass_reading_matches_the_checked_path() {
        let records = sample_records();
        for text in &records {
            let fast = serde_json::from_str::<KindFirst>(text).map(|k| k.0);
            assert_eq!(fast.ok(), slow(text).ok(), "{text}");
            assert_eq!(parse_raw(&raw(text)), slow(text));
        }
        // A serialized record has its tag first, so it takes the one pass.
        let rec = slow(&records[0]).unwrap();
        let text = serde_json::to_string(&rec).unwrap();
        assert!(serde_json::from_str::<KindFirst>(&text).is_ok(), "{text}");
    }

    #[test]
    fn one_pass_batch_matches_record_by_record() {
        let records = sample_records();
        let body = format!(" [ {} ] ", records.join(" ,\n"));
        let one_pass = read_batch(body.as_bytes()).expect("a plain batch takes one pass");
        let by_record: Vec<Record> = records.iter().map(|r| slow(r).unwrap()).collect();
        assert_eq!(one_pass, by_record);
        assert_eq!(read_batch(b"[]"), Some(vec![]));
        // Anything else is read record by record.
        let later = format!(r#"[{{{USAGE},"kind":"usage"}}]"#);
        let nul = format!(r#"[{{"kind":"usage",{USAGE},"operation":"a\u0000b"}}]"#);
        let invalid = format!(r#"[{}, {{"kind":"usage"}}]"#, records[0]);
        let too_many = format!("[{}]", vec![records[1].as_str(); MAX_BATCH + 1].join(","));
        for body in [
            later.as_str(),
            &nul,
            &invalid,
            &too_many,
            r#"{"kind":"usage"}"#,
            "[",
            "[] x",
            "[1]",
        ] {
            assert_eq!(read_batch(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn anything_unusual_takes_the_checked_path() {
        // Tag not first, tag twice (the last counts), an escaped key, bad kind.
        let later = format!(r#"{{{USAGE},"kind":"usage"}}"#);
        let twice = format!(r#"{{"kind":"scope",{USAGE},"kind":"usage"}}"#);
        let escaped = format!(
            r#"{{"kind":"usage",{},"\u006dodel":"gpt-4o-mini"}}"#,
            &USAGE
        );
        for text in [&later, &twice, &escaped] {
            assert!(serde_json::from_str::<KindFirst>(text).is_err(), "{text}");
            assert_eq!(parse_raw(&raw(text)), slow(text), "{text}");
        }
        assert!(matches!(parse_raw(&raw(&twice)), Ok(Record::Usage(_))));
        let bogus = r#"{"kind":"bogus"}"#;
        assert!(
            parse_raw(&raw(bogus))
                .unwrap_err()
                .contains("not a record kind")
        );
    }
}
