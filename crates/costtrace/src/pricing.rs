//! The bridge to the pricing engine.

use costtrace_core::UsageRecord;

/// Prices usage records at materialization time.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pricer {}

impl Pricer {
    pub(crate) fn price(&self, rec: &mut UsageRecord) {
        rec.cost_nanos = None;
        rec.unpriced_reason = Some("unpriced: no pricing engine configured".to_owned());
    }
}
