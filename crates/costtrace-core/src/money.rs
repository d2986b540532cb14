//! Money is an integer count of nano-USD (10⁻⁹ USD).
//!
//! Micro-USD would round a 40-token embedding call to zero; nano-USD keeps it,
//! and an `i64` still holds over nine billion dollars.

/// Nano-USD in one US dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// Converts nano-USD to a dollar amount for display and JSON. Lossy only
/// beyond 2⁵³ nanos (about nine million dollars in one record).
///
/// ```
/// assert_eq!(costtrace_core::nanos_to_usd(20_000_000), 0.02);
/// ```
pub fn nanos_to_usd(nanos: i64) -> f64 {
    // Split to keep the fractional part exact for typical amounts.
    let whole = (nanos / NANOS_PER_USD) as f64;
    let frac = (nanos % NANOS_PER_USD) as f64 / NANOS_PER_USD as f64;
    whole + frac
}

/// Converts a dollar amount (for example a provider-reported cost) to
/// nano-USD, rounding half away from zero. `None` for NaN, infinities and
/// amounts beyond ±9.2 billion dollars.
///
/// ```
/// assert_eq!(costtrace_core::usd_to_nanos(0.17), Some(170_000_000));
/// assert_eq!(costtrace_core::usd_to_nanos(f64::NAN), None);
/// ```
pub fn usd_to_nanos(usd: f64) -> Option<i64> {
    if !usd.is_finite() {
        return None;
    }
    let nanos = (usd * NANOS_PER_USD as f64).round();
    if nanos.abs() >= 9.2e18 {
        return None;
    }
    Some(nanos as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_common_amounts() {
        for nanos in [
            0,
            1,
            999,
            20_000_000,
            150_000_000,
            170_000_000,
            12_345_678_901,
        ] {
            assert_eq!(usd_to_nanos(nanos_to_usd(nanos)), Some(nanos));
        }
        assert_eq!(nanos_to_usd(-1_500_000_000), -1.5);
    }

    #[test]
    fn rejects_absurd_amounts() {
        assert_eq!(usd_to_nanos(f64::INFINITY), None);
        assert_eq!(usd_to_nanos(1e12), None);
        assert_eq!(usd_to_nanos(-1e12), None);
    }
}
