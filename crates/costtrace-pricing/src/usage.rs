//! Pricing a stored [`UsageRecord`] (at record time, or again when re-pricing
//! history after a catalogue fix).

use costtrace_core::{UsageRecord, token_units};

use crate::{Catalogue, Price, PriceQuery, Unpriced};

impl Catalogue {
    /// Prices a usage record from its raw counts, tier and timestamp. A
    /// model usage's units named in [`costtrace_core::token_units`] (1-hour
    /// cache writes, audio tokens) are the parts of its token counts priced
    /// at their own rates.
    ///
    /// Unknown counts (`None`) are handled so that nothing unknown is priced
    /// as free: a model usage with neither `input_tokens` nor `output_tokens`
    /// is unpriced; otherwise a missing count is taken as 0, and missing
    /// cache counts mean "not cached" (all input at the full input price, an
    /// over- rather than an under-estimate).
    ///
    /// ```
    /// # use costtrace_pricing::Catalogue;
    /// # fn demo(mut rec: costtrace_core::UsageRecord) {
    /// Catalogue::bundled().price_record(&mut rec);
    /// assert!(rec.cost_nanos.is_some() || rec.unpriced_reason.is_some());
    /// # }
    /// ```
    pub fn price_usage(&self, rec: &UsageRecord) -> Result<Price, Unpriced> {
        let has_model = rec.model.as_deref().is_some_and(|m| !m.trim().is_empty());
        if has_model && rec.input_tokens.is_none() && rec.output_tokens.is_none() {
            return Err(Unpriced::new(format_args!(
                "token counts unknown for provider {} model {}",
                rec.provider.as_deref().unwrap_or("(none)"),
                rec.model.as_deref().unwrap_or_default()
            )));
        }
        let units: Vec<(&str, u64)> = rec.units.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        // A model usage's detailed token counts (see `token_units`).
        let part = |name: &str| {
            if has_model {
                rec.units.get(name).copied().unwrap_or(0)
            } else {
                0
            }
        };
        self.price(&PriceQuery {
            provider: rec.provider.as_deref(),
            model: rec.model.as_deref(),
            service_type: rec.service_type.as_deref(),
            units: &units,
            input_tokens: rec.input_tokens.unwrap_or(0),
            output_tokens: rec.output_tokens.unwrap_or(0),
            cache_read_tokens: rec.cache_read_tokens.unwrap_or(0),
            cache_write_tokens: rec.cache_write_tokens.unwrap_or(0),
            cache_write_1h_tokens: part(token_units::CACHE_WRITE_1H),
            input_audio_tokens: part(token_units::INPUT_AUDIO),
            cache_audio_read_tokens: part(token_units::CACHE_AUDIO_READ),
            output_audio_tokens: part(token_units::OUTPUT_AUDIO),
            tier: rec.pricing_tier,
            at: rec.timestamp,
        })
    }

    /// Prices a record in place: sets `cost_nanos`, `cost_usd` and
    /// `price_version`, or clears them and sets `unpriced_reason`.
    pub fn price_record(&self, rec: &mut UsageRecord) {
        match self.price_usage(rec) {
            Ok(p) => {
                rec.cost_nanos = Some(p.nanos);
                rec.cost_usd = Some(p.usd());
                rec.unpriced_reason = None;
                rec.price_version = Some(p.catalogue_version.to_string());
            }
            Err(u) => {
                rec.cost_nanos = None;
                rec.cost_usd = None;
                rec.unpriced_reason = Some(u.reason);
                rec.price_version = Some(self.version().to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use costtrace_core::{Environment, PricingTier, Timestamp};

    use super::*;

    fn record() -> UsageRecord {
        UsageRecord {
            id: costtrace_core::new_id(),
            scope_id: None,
            attrs: BTreeMap::new(),
            environment: Environment::Development,
            timestamp: Timestamp::parse("2025-01-15T10:30:00Z").unwrap(),
            provider: Some("openai".into()),
            model: Some("gpt-4o".into()),
            service_type: None,
            operation: None,
            input_tokens: Some(1_000),
            output_tokens: Some(200),
            cache_read_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            units: BTreeMap::new(),
            pricing_tier: PricingTier::Batch,
            cost_usd: None,
            cost_nanos: None,
            unpriced_reason: Some("stale".into()),
            price_version: None,
            duration_ms: None,
            error_message: None,
            partial: false,
        }
    }

    #[test]
    fn prices_a_record_in_place() {
        let mut r = record();
        Catalogue::bundled().price_record(&mut r);
        // batch: (1_000 × $2.5/M + 200 × $10/M) / 2
        assert_eq!(r.cost_nanos, Some((1_000 * 2_500 + 200 * 10_000) / 2));
        assert_eq!(r.cost_usd, Some(0.00225));
        assert_eq!(r.unpriced_reason, None);
        assert_eq!(r.price_version.as_deref(), Some("genai-prices@47df840a"));
    }

    #[test]
    fn unknown_counts_are_not_free() {
        let mut r = record();
        r.input_tokens = None;
        r.output_tokens = None;
        Catalogue::bundled().price_record(&mut r);
        assert_eq!(r.cost_nanos, None);
        assert_eq!(
            r.unpriced_reason.as_deref(),
            Some("unpriced: token counts unknown for provider openai model gpt-4o")
        );
    }

    #[test]
    fn service_records_use_their_units() {
        let mut r = record();
        r.model = None;
        r.provider = None;
        r.service_type = Some("transformer".into());
        r.units = BTreeMap::from([("chunks".to_owned(), 50)]);
        r.pricing_tier = PricingTier::Standard;
        Catalogue::bundled().price_record(&mut r);
        // 50 chunks × $0.003 = $0.15 (seed 004's example)
        assert_eq!(r.cost_nanos, Some(50 * 3_000_000));
        assert_eq!(r.cost_usd, Some(0.15));
    }
}
