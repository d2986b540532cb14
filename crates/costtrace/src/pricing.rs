//! The bridge to the pricing engine: usage is priced on the recorder's
//! thread, never on the caller's.

use std::path::Path;
use std::sync::Arc;

use costtrace_core::UsageRecord;
use costtrace_pricing::Catalogue;

/// Prices usage records at materialization time.
#[derive(Clone, Debug)]
pub(crate) struct Pricer {
    catalogue: Arc<Catalogue>,
}

impl Default for Pricer {
    /// The shipped price list (parsed once per process, about 1.3 ms).
    fn default() -> Self {
        Pricer {
            catalogue: Catalogue::bundled(),
        }
    }
}

impl Pricer {
    pub(crate) fn new(catalogue: Arc<Catalogue>) -> Self {
        Pricer { catalogue }
    }

    pub(crate) fn from_file(path: &Path) -> Result<Self, crate::Error> {
        Ok(Pricer::new(Arc::new(Catalogue::from_override_file(path)?)))
    }

    /// Sets `cost_nanos`, `cost_usd`, `price_version`, or `unpriced_reason`.
    pub(crate) fn price(&self, rec: &mut UsageRecord) {
        self.catalogue.price_record(rec);
    }
}
