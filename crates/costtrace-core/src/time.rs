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
        match jiff::Timestamp::from_microsecond(self.0) {
            Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            Err(_) => String::from("1970-01-01T00:00:00.000Z"),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
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
    fn rejects_garbage_with_a_hint() {
        let e = Timestamp::parse("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
