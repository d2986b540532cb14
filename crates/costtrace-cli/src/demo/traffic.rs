//! The demo traffic: a fixed, seeded set of events placed in the last 14
//! days before "now".
//!
//! Which events exist and their ids depend only on the seed, never on the
//! clock, so running the demo again (today or next week) inserts nothing
//! twice: the store ignores ids it has. Only timestamps follow the clock.

use std::collections::BTreeMap;

use costtrace_core::{
    Attrs, Environment, NANOS_PER_USD, PricingTier, Record, RequestRecord, Timestamp, UsageRecord,
};
use costtrace_pricing::Catalogue;
use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

/// The seed of the demo data. Changing it changes every id.
pub(crate) const SEED: u64 = 0x00c0_5774_ace0_0004;

/// Days of history.
pub(crate) const DAYS: i64 = 14;

const MICROS_PER_SEC: i64 = 1_000_000;
const DAY_SECS: i64 = 86_400;

/// Tenants (entity ids) and how busy each is.
pub(crate) const TENANTS: [(&str, f64); 4] = [
    ("acme", 1.0),
    ("globex", 0.6),
    ("initech", 0.35),
    ("umbrella", 0.2),
];

/// A model the demo calls: provider, model, typical input and output tokens.
type Model = (&'static str, &'static str, u64, u64);

const CHAT_MODELS: [Model; 4] = [
    ("openai", "gpt-4o", 1_800, 350),
    ("openai", "gpt-4o-mini", 1_200, 250),
    ("anthropic", "claude-3-5-haiku-latest", 1_500, 300),
    ("anthropic", "claude-sonnet-4-5", 2_500, 600),
];

/// A self-hosted fine-tune the catalogue does not know: always unpriced.
const UNPRICED_MODEL: Model = ("acme-selfhosted", "llama-finetune-7", 5_000, 800);

/// Busyness per age in days (index 0 is the last 24 hours): two quiet
/// weekends and a slow growth, so the charts have a shape.
const DAY_FACTOR: [f64; DAYS as usize] = [
    1.3, 1.25, 0.5, 0.45, 1.15, 1.1, 1.2, 0.95, 0.4, 0.35, 0.9, 0.85, 0.8, 0.75,
];

/// splitmix64: small, seedable, good enough for sample data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// `base` ± 40 %.
    fn around(&mut self, base: u64) -> u64 {
        self.range(base * 6 / 10, base * 14 / 10)
    }
}

/// A stable record id: a hash of the seed and the record's name.
fn stable_id(name: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(SEED.to_le_bytes())
        .chain_update(name.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Builder::from_custom_bytes(bytes).into_uuid()
}

/// Builds the records of the demo, priced with `catalogue`.
struct Gen<'a> {
    rng: Rng,
    now: i64,
    catalogue: &'a Catalogue,
    records: Vec<Record>,
}

/// Where an event belongs.
#[derive(Clone, Default)]
struct Links {
    entity: String,
    request: Option<String>,
    task: Option<String>,
    doc: Option<String>,
    extra: Vec<(&'static str, String)>,
}

impl Links {
    fn attrs(&self) -> Attrs {
        let mut a = Attrs::new();
        a.insert("entity_id".into(), self.entity.clone());
        let opt = [
            ("request_id", &self.request),
            ("task_id", &self.task),
            ("doc_id", &self.doc),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                a.insert(k.into(), v.clone());
            }
        }
        for (k, v) in &self.extra {
            a.insert((*k).into(), v.clone());
        }
        a
    }
}

/// What a usage is: a model call (tokens) or a service (units).
enum Kind {
    Llm(Model, &'static str),
    Service(&'static str, &'static str, u64),
}

impl Gen<'_> {
    fn at(&self, age_secs: i64) -> Timestamp {
        Timestamp(self.now - age_secs * MICROS_PER_SEC)
    }

    fn usage(
        &mut self,
        name: &str,
        age_secs: i64,
        links: &Links,
        kind: Kind,
        tier: PricingTier,
        error: Option<&str>,
    ) {
        let mut u = UsageRecord {
            id: stable_id(name),
            scope_id: None,
            attrs: links.attrs(),
            environment: Environment::Production,
            timestamp: self.at(age_secs),
            provider: None,
            model: None,
            service_type: None,
            operation: None,
            input_tokens: None,
            output_tokens: None,
            cache_read_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            units: BTreeMap::new(),
            pricing_tier: tier,
            cost_usd: None,
            cost_nanos: None,
            unpriced_reason: None,
            price_version: None,
            duration_ms: Some(self.rng.range(300, 9_000) as f64),
            error_message: error.map(str::to_owned),
            partial: false,
        };
        match kind {
            Kind::Llm((provider, model, input, output), operation) => {
                u.provider = Some(provider.into());
                u.model = Some(model.into());
                u.operation = Some(operation.into());
                let input = self.rng.around(input);
                u.input_tokens = Some(input);
                // A failed call produced no output.
                u.output_tokens = Some(if error.is_some() {
                    0
                } else {
                    self.rng.around(output)
                });
                if self.rng.chance(0.3) {
                    u.cache_read_tokens = Some(input / 2);
                }
            }
            Kind::Service(service, unit, n) => {
                u.service_type = Some(service.into());
                u.units.insert(unit.into(), n);
                u.duration_ms = Some(n as f64 * 40.0);
            }
        }
        self.catalogue.price_record(&mut u);
        self.records.push(Record::Usage(u));
    }

    fn request(&mut self, id: &str, age_secs: i64, links: &Links, shape: RequestShape) {
        self.records.push(Record::Request(RequestRecord {
            request_id: id.to_owned(),
            task_id: links.task.clone(),
            doc_id: links.doc.clone(),
            entity_id: Some(links.entity.clone()),
            operation_type: Some(shape.operation.into()),
            task_type: shape.task_type.map(str::to_owned),
            endpoint: Some(shape.endpoint.replace("{entity_id}", &links.entity)),
            method: Some("POST".into()),
            status_code: shape.status,
            timestamp: self.at(age_secs),
            processing_time_ms: shape.status.map(|_| self.rng.range(200, 12_000) as f64),
            error_message: shape.error.map(str::to_owned),
            environment: Environment::Production,
        }));
    }

    /// One chat request with one or two model calls.
    fn chat(&mut self, tag: &str, age: i64, tenant: &str) {
        let id = format!("req_{tag}");
        let links = Links {
            entity: tenant.into(),
            request: Some(id.clone()),
            extra: vec![("user_id", format!("{tenant}-user-{}", self.rng.range(1, 9)))],
            ..Links::default()
        };
        let failed = self.rng.chance(0.05);
        let model = if tenant == "initech" && self.rng.chance(0.4) {
            UNPRICED_MODEL
        } else {
            CHAT_MODELS[(self.rng.next() % CHAT_MODELS.len() as u64) as usize]
        };
        let error = failed.then_some("upstream timeout: the provider did not answer in 30 s");
        self.usage(
            &format!("{tag}/llm"),
            age,
            &links,
            Kind::Llm(model, "chat"),
            PricingTier::Standard,
            error,
        );
        if !failed && self.rng.chance(0.35) {
            self.usage(
                &format!("{tag}/followup"),
                age - 2,
                &links,
                Kind::Llm(CHAT_MODELS[1], "chat"),
                PricingTier::Standard,
                None,
            );
        }
        self.request(
            &id,
            age,
            &links,
            RequestShape {
                operation: "chat",
                task_type: None,
                endpoint: "/api/chat",
                status: Some(if failed { 500 } else { 200 }),
                error,
            },
        );
    }

    /// A seed-004 upload task: one request per chunk of the file, each with
    /// file_processor pages, transformer chunks and a summary call.
    fn upload(&mut self, tag: &str, age: i64, tenant: &str, running: bool) {
        let task = format!("upload_{tag}");
        let doc = format!("doc_{tag}");
        let parts = if running { 1 } else { self.rng.range(1, 3) };
        let fails_at = (!running && self.rng.chance(0.08)).then(|| self.rng.range(1, parts));
        for part in 1..=parts {
            let id = format!("req_{tag}_{part}");
            let links = Links {
                entity: tenant.into(),
                request: Some(id.clone()),
                task: Some(task.clone()),
                doc: Some(doc.clone()),
                extra: Vec::new(),
            };
            let at = age - (part as i64 - 1) * 20;
            let pages = self.rng.range(4, 60);
            self.usage(
                &format!("{tag}/{part}/pages"),
                at,
                &links,
                Kind::Service("file_processor", "pages", pages),
                PricingTier::Standard,
                None,
            );
            let failed = fails_at == Some(part);
            let error = failed.then_some("could not parse page 7: unsupported PDF encryption");
            if !running && !failed {
                let chunks = self.rng.range(20, 300);
                self.usage(
                    &format!("{tag}/{part}/chunks"),
                    at - 5,
                    &links,
                    Kind::Service("transformer", "chunks", chunks),
                    PricingTier::Standard,
                    None,
                );
                self.usage(
                    &format!("{tag}/{part}/summary"),
                    at - 8,
                    &links,
                    Kind::Llm(CHAT_MODELS[1], "summarize"),
                    PricingTier::Standard,
                    None,
                );
            }
            let status = if running {
                None
            } else if failed {
                Some(500)
            } else {
                Some(200)
            };
            self.request(
                &id,
                at,
                &links,
                RequestShape {
                    operation: "file_upload",
                    task_type: Some("upload"),
                    endpoint: "/api/entities/{entity_id}/files",
                    status,
                    error,
                },
            );
            if failed {
                break;
            }
        }
    }

    /// A nightly batch job priced at the batch tier.
    fn batch(&mut self, tag: &str, age: i64, tenant: &str) {
        let id = format!("req_{tag}");
        let links = Links {
            entity: tenant.into(),
            request: Some(id.clone()),
            task: Some(format!("batch_{tag}")),
            doc: None,
            extra: vec![
                ("batch_id", format!("batch_{tag}")),
                ("job_id", "nightly-classify".into()),
            ],
        };
        let model = if tenant == "acme" {
            CHAT_MODELS[1]
        } else {
            CHAT_MODELS[2]
        };
        let items = self.rng.range(20, 40);
        for i in 0..items {
            self.usage(
                &format!("{tag}/item/{i}"),
                age - i as i64,
                &links,
                Kind::Llm(model, "classify"),
                PricingTier::Batch,
                None,
            );
        }
        self.request(
            &id,
            age,
            &links,
            RequestShape {
                operation: "batch_classification",
                task_type: Some("batch"),
                endpoint: "/api/batch",
                status: Some(200),
                error: None,
            },
        );
    }
}

struct RequestShape {
    operation: &'static str,
    task_type: Option<&'static str>,
    endpoint: &'static str,
    status: Option<u16>,
    error: Option<&'static str>,
}

/// Every demo record, priced, with timestamps in the [`DAYS`] days before
/// `now`. Request records are returned last so each request's usage is
/// stored by the time the request shows up.
pub(crate) fn generate(now: Timestamp, catalogue: &Catalogue) -> Vec<Record> {
    let mut g = Gen {
        rng: Rng(SEED),
        now: now.as_micros(),
        catalogue,
        records: Vec::new(),
    };
    for (day, factor) in DAY_FACTOR.iter().enumerate() {
        let day = day as i64;
        for (tenant, weight) in TENANTS {
            let chats = (12.0 * weight * factor).round() as u64;
            for i in 0..chats {
                let a = day * DAY_SECS + g_age(&mut g.rng);
                g.chat(&format!("{tenant}_d{day}_c{i}"), a, tenant);
            }
            let uploads = (3.0 * weight * factor).round().max(1.0) as u64;
            for i in 0..uploads {
                let a = day * DAY_SECS + g_age(&mut g.rng);
                g.upload(&format!("{tenant}_d{day}_u{i}"), a, tenant, false);
            }
            if day % 2 == 1 && weight >= 0.6 {
                let a = day * DAY_SECS + g_age(&mut g.rng);
                g.batch(&format!("{tenant}_d{day}_b"), a, tenant);
            }
        }
    }
    // Still running: the file is processed, the transformer has not run yet.
    g.upload("acme_live", 90, "acme", true);
    let (mut records, requests): (Vec<Record>, Vec<Record>) = g
        .records
        .into_iter()
        .partition(|r| !matches!(r, Record::Request(_)));
    records.extend(requests);
    records
}

/// Seconds into a day, between 30 minutes and 24 hours (at least 30
/// minutes old, so the last minutes belong to the running task).
fn g_age(rng: &mut Rng) -> i64 {
    rng.range(1_800, DAY_SECS as u64 - 1) as i64
}

/// What the demo holds, computed from the records themselves.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) records: u64,
    pub(crate) usage: u64,
    pub(crate) requests: u64,
    pub(crate) tenants: u64,
    pub(crate) priced_nanos: i64,
    pub(crate) unpriced: u64,
}

impl Totals {
    pub(crate) fn of(records: &[Record]) -> Totals {
        let mut t = Totals {
            records: records.len() as u64,
            ..Totals::default()
        };
        let mut tenants = std::collections::BTreeSet::new();
        for r in records {
            match r {
                Record::Usage(u) => {
                    t.usage += 1;
                    match u.cost_nanos {
                        Some(n) => t.priced_nanos += n,
                        None => t.unpriced += 1,
                    }
                    if let Some(e) = u.attrs.get("entity_id") {
                        tenants.insert(e.as_str());
                    }
                }
                Record::Request(q) => {
                    t.requests += 1;
                    if let Some(e) = &q.entity_id {
                        tenants.insert(e.as_str());
                    }
                }
                Record::Scope(_) => {}
            }
        }
        t.tenants = tenants.len() as u64;
        t
    }

    /// The priced total in dollars, for people.
    pub(crate) fn usd(&self) -> f64 {
        self.priced_nanos as f64 / NANOS_PER_USD as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-22T12:00:00Z").unwrap_or_default()
    }

    #[test]
    fn ids_do_not_depend_on_the_clock() {
        let c = Catalogue::bundled();
        let a = generate(now(), &c);
        let b = generate(
            Timestamp(now().as_micros() + 7 * 86_400 * MICROS_PER_SEC),
            &c,
        );
        let keys = |r: &[Record]| r.iter().map(Record::key).collect::<Vec<_>>();
        assert_eq!(keys(&a), keys(&b));
        let unique: std::collections::BTreeSet<_> = keys(&a).into_iter().collect();
        assert_eq!(unique.len(), a.len(), "ids must be unique");
    }

    #[test]
    fn has_every_kind_of_traffic() {
        let records = generate(now(), &Catalogue::bundled());
        let usage: Vec<&UsageRecord> = records.iter().filter_map(Record::as_usage).collect();
        let reqs: Vec<&RequestRecord> = records.iter().filter_map(Record::as_request).collect();
        let t = Totals::of(&records);
        assert_eq!(t.tenants, 4);
        assert!(t.priced_nanos > 0);
        let unpriced: Vec<_> = usage.iter().filter(|u| u.cost_nanos.is_none()).collect();
        assert!(!unpriced.is_empty());
        for u in &unpriced {
            assert_eq!(u.model.as_deref(), Some("llama-finetune-7"), "{u:?}");
            assert!(u.unpriced_reason.is_some());
        }
        assert!(usage.iter().any(|u| u.pricing_tier == PricingTier::Batch));
        for s in ["file_processor", "transformer"] {
            assert!(usage.iter().any(|u| u.service_type.as_deref() == Some(s)));
        }
        assert!(reqs.iter().any(|r| r.status_code == Some(500)));
        assert!(
            reqs.iter().any(|r| r.status_code.is_none()),
            "a running task"
        );
        let oldest = usage.iter().map(|u| u.timestamp).min().unwrap_or_default();
        assert!(now().as_micros() - oldest.as_micros() > 12 * 86_400 * MICROS_PER_SEC);
        assert!(usage.iter().all(|u| u.timestamp <= now()));
        // A multi-request task.
        let mut per_task: BTreeMap<&str, u32> = BTreeMap::new();
        for r in &reqs {
            if let Some(t) = &r.task_id {
                *per_task.entry(t).or_default() += 1;
            }
        }
        assert!(per_task.values().any(|n| *n > 1));
    }
}
