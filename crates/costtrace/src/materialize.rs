//! Turns events into records, on the recorder's thread: flattens attributes,
//! applies the secrets guard, prices usage.

use std::sync::atomic::Ordering;

use costtrace_core::secrets::{guard_attr, redact_text};
use costtrace_core::{
    Attrs, Environment, PricingTier, Record, ScopeRecord, Timestamp, UsageRecord, nanos_to_usd,
    usd_to_nanos,
};

use crate::attrs::{self, AttrBuf};
use crate::context::Frame;
use crate::dispatch::{Event, ScopeDone, UsageEvent};
use crate::pricer::Pricer;

pub(crate) struct Materializer {
    pub(crate) environment: Environment,
    pub(crate) pricer: Pricer,
}

fn attrs_of(frame: Option<&Frame>) -> Attrs {
    attrs_with(frame, None)
}

/// The attributes of `frame`'s chain with `own` on top, through the secrets
/// guard.
fn attrs_with(frame: Option<&Frame>, own: Option<&str>) -> Attrs {
    let texts = own.into_iter().chain(
        frame
            .into_iter()
            .flat_map(Frame::attr_bufs)
            .map(AttrBuf::as_str),
    );
    attrs::flatten(texts)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), guard_attr(k, v).to_owned()))
        .collect()
}

impl Materializer {
    /// Builds the record for `ev`. Takes the event by reference so that the
    /// event's memory can go back to the thread that allocated it.
    pub(crate) fn record(&self, ev: &Event) -> Option<Record> {
        match ev {
            Event::ScopeEnd { frame, duration } => {
                let s = frame.scope.as_ref()?;
                let error_message = s.error_message().map(|m| redact_text(&m));
                Some(Record::Scope(ScopeRecord {
                    id: s.id,
                    parent_id: frame.parent_scope_id,
                    name: s.name.to_string(),
                    attrs: attrs_of(Some(frame)),
                    environment: self.environment,
                    started_at: Timestamp(s.started_micros),
                    duration_ms: duration.as_secs_f64() * 1000.0,
                    error_occurred: error_message.is_some(),
                    error_message,
                    success_count: s.success_count(),
                    failure_count: s.failure_count(),
                    errors: s
                        .item_errors()
                        .into_iter()
                        .map(|mut e| {
                            e.error = redact_text(&e.error);
                            e
                        })
                        .collect(),
                    pricing_tier: frame.tier,
                    item_count: s.item_count,
                }))
            }
            Event::ScopeDone(d) => Some(Record::Scope(self.scope_done(d))),
            Event::Usage(u) => Some(Record::Usage(self.usage(u))),
            Event::Record(r) => {
                let mut r = (**r).clone();
                if let Record::Request(req) = &mut r {
                    req.environment = self.environment;
                }
                Some(r)
            }
        }
    }

    fn scope_done(&self, d: &ScopeDone) -> ScopeRecord {
        let rare = d.rare.as_deref();
        let outcome = rare.and_then(|r| r.outcome.as_deref());
        let error_message = outcome.and_then(|o| {
            o.error
                .lock()
                .ok()
                .and_then(|e| e.as_deref().map(redact_text))
        });
        let errors = outcome
            .and_then(|o| o.errors.lock().ok().map(|e| e.clone()))
            .unwrap_or_default()
            .into_iter()
            .map(|mut e| {
                e.error = redact_text(&e.error);
                e
            })
            .collect();
        ScopeRecord {
            // A scope that ended without a frame gets its id here, off the
            // application thread (nothing there could have asked for it).
            id: if d.id.is_nil() {
                crate::id::v7_at(d.started_micros)
            } else {
                d.id
            },
            parent_id: d.parent_id(),
            name: d.name().to_owned(),
            attrs: attrs_with(d.parent.as_deref(), Some(d.attrs.text())),
            environment: self.environment,
            started_at: Timestamp(d.started_micros),
            duration_ms: d.duration_nanos as f64 / 1e6,
            error_occurred: error_message.is_some(),
            error_message,
            success_count: outcome.map_or(0, |o| o.success.load(Ordering::Relaxed)),
            failure_count: outcome.map_or(0, |o| o.failure.load(Ordering::Relaxed)),
            errors,
            pricing_tier: d.tier(),
            item_count: rare.and_then(|r| r.item_count),
        }
    }

    fn usage(&self, ev: &UsageEvent) -> UsageRecord {
        let UsageEvent {
            id,
            micros,
            frame,
            usage: u,
        } = ev;
        let (id, micros) = (*id, *micros);
        let tier = frame.as_ref().map_or(PricingTier::Standard, |f| f.tier);
        let reported = u.reported_cost().and_then(usd_to_nanos).filter(|n| *n >= 0);
        let mut attrs = attrs_of(frame.as_deref());
        for (k, v) in u.own_attrs() {
            attrs.insert(k.to_string(), guard_attr(k, v).to_owned());
        }
        let mut rec = UsageRecord {
            id,
            scope_id: frame.as_ref().and_then(|f| f.scope_id),
            attrs,
            environment: self.environment,
            timestamp: Timestamp(micros),
            provider: u.provider.as_deref().map(String::from),
            model: u.model.as_deref().map(String::from),
            service_type: u.service_type.as_deref().map(String::from),
            operation: u.operation.as_deref().map(String::from),
            input_tokens: u.input(),
            output_tokens: u.output(),
            cache_read_tokens: u.cache_read(),
            cache_write_tokens: u.cache_write(),
            reasoning_tokens: u.reasoning(),
            units: u
                .unit_counts()
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            pricing_tier: tier,
            cost_usd: None,
            cost_nanos: None,
            unpriced_reason: None,
            price_version: None,
            duration_ms: u.duration_value().map(|d| d.as_secs_f64() * 1000.0),
            error_message: u.error_message().map(redact_text),
            partial: u.is_partial(),
        };
        match reported {
            Some(n) => {
                rec.cost_nanos = Some(n);
                rec.price_version = Some("reported".to_owned());
            }
            None => self.pricer.price(&mut rec),
        }
        rec.cost_usd = rec.cost_nanos.map(nanos_to_usd);
        rec
    }
}
