//! Paid non-AI services priced per unit (seed 004): shipped defaults plus
//! whatever the override file adds.

use rust_decimal::Decimal;

/// Shipped default: `file_processor` costs $0.02 per page (seed 004).
pub const FILE_PROCESSOR_USD_PER_PAGE: Decimal = Decimal::from_parts(2, 0, 0, false, 2);
/// Shipped default: `transformer` costs $0.003 per chunk (seed 004).
pub const TRANSFORMER_USD_PER_CHUNK: Decimal = Decimal::from_parts(3, 0, 0, false, 3);

#[derive(Clone, Debug)]
pub(crate) struct ServiceRate {
    pub(crate) service: String,
    pub(crate) unit: String,
    pub(crate) usd_per_unit: Decimal,
}

/// A small table scanned linearly (case-insensitively): there are a handful
/// of services, and scanning avoids allocating a lower-cased key per query.
#[derive(Clone, Debug)]
pub(crate) struct ServiceTable(Vec<ServiceRate>);

impl ServiceTable {
    pub(crate) fn shipped() -> ServiceTable {
        ServiceTable(vec![
            ServiceRate {
                service: "file_processor".into(),
                unit: "pages".into(),
                usd_per_unit: FILE_PROCESSOR_USD_PER_PAGE,
            },
            ServiceRate {
                service: "transformer".into(),
                unit: "chunks".into(),
                usd_per_unit: TRANSFORMER_USD_PER_CHUNK,
            },
        ])
    }

    /// Adds or replaces the price of one (service, unit).
    pub(crate) fn set(&mut self, service: &str, unit: &str, usd_per_unit: Decimal) {
        let found = self
            .0
            .iter_mut()
            .find(|r| r.service.eq_ignore_ascii_case(service) && r.unit.eq_ignore_ascii_case(unit));
        match found {
            Some(r) => r.usd_per_unit = usd_per_unit,
            None => self.0.push(ServiceRate {
                service: service.to_owned(),
                unit: unit.to_owned(),
                usd_per_unit,
            }),
        }
    }

    /// USD per unit, or why there is none (without the `unpriced: ` prefix).
    pub(crate) fn rate(&self, service: &str, unit: &str) -> Result<Decimal, String> {
        let mut known_service = false;
        for r in &self.0 {
            if r.service.eq_ignore_ascii_case(service) {
                known_service = true;
                if r.unit.eq_ignore_ascii_case(unit) {
                    return Ok(r.usd_per_unit);
                }
            }
        }
        Err(if known_service {
            format!("no price for service {service} unit {unit}")
        } else {
            format!("no price for service {service}")
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ServiceRate> {
        self.0.iter()
    }
}
