//! Timestamps: integer microseconds since the Unix epoch inside, RFC 3339 UTC
//! with milliseconds (`2025-01-15T10:30:45.123Z`) on the wire, as seed 004 shows.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(jiff::Timestamp::now().as_microsecond())
    }

    pub fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (any offset; converted to UTC).
    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse::<jiff::Timestamp>()
            .map(|t| Timestamp(t.as_microsecond()))
            .map_err(|e| {
                format!(
                    "{s:?} is not an RFC 3339 timestamp ({e}); use e.g. 2025-01-15T10:30:45.123Z"
                )
            })
    }

    /// RFC 3339 UTC with exactly three fractional digits.
    pub fn to_rfc3339(self) -> String {
        match self.rfc3339_bytes() {
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
            None => self.to_rfc3339_jiff(),
        }
    }

    /// The general (slow) path: any year jiff can represent.
    fn to_rfc3339_jiff(self) -> String {
        match jiff::Timestamp::from_microsecond(self.0) {
            Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            Err(_) => String::from("1970-01-01T00:00:00.000Z"),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` without allocating, for years 0–9998
    /// (`None` outside them; jiff's range ends inside year 9999). Every API answer formats a few timestamps per
    /// row, and jiff's `strftime` interprets its format string each time.
    fn rfc3339_bytes(self) -> Option<[u8; 24]> {
        let secs = self.0.div_euclid(1_000_000);
        let millis = self.0.rem_euclid(1_000_000) / 1_000;
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Days to civil date (H. Hinnant, "chrono-Compatible Low-Level Date
        // Algorithms"), proleptic Gregorian like jiff.
        let z = days.checked_add(719_468)?;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(0..=9998).contains(&year) {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                // 0–9 always fits a byte.
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, sod / 3_600);
        put(14, 2, sod / 60 % 60);
        put(17, 2, sod % 60);
        put(20, 3, millis);
        Some(b)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rfc3339_bytes() {
            Some(b) => f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?),
            None => f.write_str(&self.to_rfc3339_jiff()),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339_bytes() {
            Some(b) => s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?),
            None => s.serialize_str(&self.to_rfc3339_jiff()),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339, UTC, with milliseconds"))
            .examples([serde_json::json!("2025-01-15T10:30:00.000Z")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_in_utc() {
        let t = Timestamp::parse("2025-01-15T11:30:45.123456+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-01-15T10:30:45.123Z");
        assert_eq!(t.as_micros() % 1_000_000, 123_456);
    }

    #[test]
    fn fast_formatting_matches_jiff() {
        // Around the epoch, leap days, year boundaries, the ends of the
        // fast path's range, and a spread of instants in between.
        let day = 86_400_000_000i64;
        let mut cases = vec![
            0,
            -1,
            1,
            999,
            1_000,
            -1_000,
            -1_001,
            day - 1,
            -day,
            951_782_400_000_000,     // 2000-02-29
            4_107_542_399_999_999,   // 2100-02-28T23:59:59.999999
            4_107_542_400_000_000,   // 2100-03-01
            -62_167_219_200_000_000, // 0000-01-01
            -62_167_219_200_000_001, // -0001-12-31T23:59:59.999999
            253_370_764_799_999_999, // 9998-12-31T23:59:59.999999
            253_370_764_800_000_000, // 9999-01-01
            253_402_300_799_999_999, // 9999-12-31T23:59:59.999999
        ];
        let mut x: i64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x % 253_402_300_800_000_000);
        }
        for us in cases {
            let t = Timestamp(us);
            assert_eq!(t.to_rfc3339(), t.to_rfc3339_jiff(), "{us}");
            assert_eq!(t.to_string(), t.to_rfc3339_jiff(), "{us}");
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.to_rfc3339_jiff()),
                "{us}"
            );
        }
        // Outside years 0–9998 the general path answers.
        let far = Timestamp(-62_167_219_200_000_001);
        assert!(far.rfc3339_bytes().is_none());
        assert_eq!(far.to_rfc3339(), far.to_rfc3339_jiff());
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let e = Timestamp::parse("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
