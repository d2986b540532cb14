//! Rates: exact decimal prices per million tokens, context-length tiers, and
//! the constraints (start date, time of day) that select a price list.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::time;

/// A price in USD per million tokens: flat, or tiered by context length.
///
/// Tiers follow the data's "cliff" model: once the request's total input
/// tokens exceed a tier's `start`, *every* token of the request is priced at
/// that tier's rate, not only the tokens above the threshold.
///
/// ```
/// use costtrace_pricing::{Rate, Tier};
/// use rust_decimal::Decimal;
/// let r = Rate::Tiered { base: Decimal::from(3), tiers: vec![Tier { start: 200_000, price: Decimal::from(6) }] };
/// assert_eq!(r.at(200_000), Decimal::from(3));
/// assert_eq!(r.at(200_001), Decimal::from(6));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rate {
    /// One price whatever the request size.
    Flat(Decimal),
    /// `base` until the total input crosses a tier's `start`.
    Tiered {
        /// Price below the first tier.
        base: Decimal,
        /// Tiers, sorted by `start` ascending.
        tiers: Vec<Tier>,
    },
}

/// One context-length tier of a [`Rate::Tiered`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Applies when the request's total input tokens are greater than this.
    pub start: u64,
    /// USD per million tokens within this tier.
    #[serde(deserialize_with = "decimal")]
    pub price: Decimal,
}

impl Rate {
    /// The price per million tokens for a request with `total_input` tokens.
    pub fn at(&self, total_input: u64) -> Decimal {
        match self {
            Rate::Flat(p) => *p,
            Rate::Tiered { base, tiers } => tiers
                .iter()
                .rev()
                .find(|t| total_input > t.start)
                .map_or(*base, |t| t.price),
        }
    }

    /// The rate multiplied by an exact factor (used for derived prices).
    pub(crate) fn scaled(&self, factor: Decimal) -> Rate {
        match self {
            Rate::Flat(p) => Rate::Flat(p * factor),
            Rate::Tiered { base, tiers } => Rate::Tiered {
                base: base * factor,
                tiers: tiers
                    .iter()
                    .map(|t| Tier {
                        start: t.start,
                        price: t.price * factor,
                    })
                    .collect(),
            },
        }
    }

    fn validate(&self) -> Result<(), String> {
        let (base, tiers) = match self {
            Rate::Flat(p) => (p, &[][..]),
            Rate::Tiered { base, tiers } => (base, &tiers[..]),
        };
        if base.is_sign_negative() || tiers.iter().any(|t| t.price.is_sign_negative()) {
            return Err("a price must not be negative".into());
        }
        Ok(())
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Flat(p) => write!(f, "${}", p.normalize()),
            Rate::Tiered { base, tiers } => {
                write!(f, "${}", base.normalize())?;
                for t in tiers {
                    write!(
                        f,
                        ", ${} above {} input tokens",
                        t.price.normalize(),
                        t.start
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RateVisitor;
        impl<'de> Visitor<'de> for RateVisitor {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a price in USD per million tokens (a number) or {base, tiers}")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                DecimalVisitor.visit_f64(v).map(Rate::Flat)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                Ok(Rate::Flat(Decimal::from(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                Ok(Rate::Flat(Decimal::from(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                DecimalVisitor.visit_str(v).map(Rate::Flat)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Rate, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct RawTiered {
                    #[serde(deserialize_with = "decimal")]
                    base: Decimal,
                    tiers: Vec<Tier>,
                }
                let mut t = RawTiered::deserialize(de::value::MapAccessDeserializer::new(map))?;
                t.tiers.sort_by_key(|t| t.start);
                Ok(Rate::Tiered {
                    base: t.base,
                    tiers: t.tiers,
                })
            }
        }
        d.deserialize_any(RateVisitor)
    }
}

struct DecimalVisitor;

impl Visitor<'_> for DecimalVisitor {
    type Value = Decimal;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal number")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        // Rust prints the shortest decimal that round-trips, so a JSON/TOML
        // literal such as 0.01875 becomes exactly 0.01875, not its binary
        // approximation.
        if !v.is_finite() {
            return Err(E::custom(format!("{v} is not a finite number")));
        }
        Decimal::from_str(&v.to_string()).map_err(|e| E::custom(format!("{v}: {e}")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        Decimal::from_str(v.trim())
            .map_err(|e| E::custom(format!("{v:?} is not a decimal number ({e})")))
    }
}

/// `deserialize_with` helper: a number or numeric string as an exact decimal.
pub(crate) fn decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(DecimalVisitor)
}

/// `deserialize_with` helper for optional decimals.
pub(crate) fn opt_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    decimal(d).map(Some)
}

/// One price list: USD per million tokens of each kind, plus a per-request
/// price. `None` means the data has no such price.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrices {
    /// Uncached text input.
    pub input_mtok: Option<Rate>,
    /// Output (reasoning included).
    pub output_mtok: Option<Rate>,
    /// Input read from the prompt cache.
    pub cache_read_mtok: Option<Rate>,
    /// Input written to the prompt cache (default, 5-minute lifetime).
    pub cache_write_mtok: Option<Rate>,
    /// Input written to the 1-hour prompt cache. Not in the shipped data;
    /// when absent it is derived as 2 × `input_mtok` (Anthropic's rule).
    pub cache_write_1h_mtok: Option<Rate>,
    /// Uncached audio input.
    pub input_audio_mtok: Option<Rate>,
    /// Audio input read from the cache.
    pub cache_audio_read_mtok: Option<Rate>,
    /// Audio output.
    pub output_audio_mtok: Option<Rate>,
    /// USD per thousand requests (each priced usage is one request).
    #[serde(default, deserialize_with = "opt_decimal")]
    pub requests_kcount: Option<Decimal>,
}

impl ModelPrices {
    /// Checks every price is non-negative; errors are `(field, message)`.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        for (name, rate) in self.rates() {
            if let Some(r) = rate {
                r.validate().map_err(|e| (name.to_owned(), e))?;
            }
        }
        if self.requests_kcount.is_some_and(|r| r.is_sign_negative()) {
            return Err((
                "requests_kcount".into(),
                "a price must not be negative".into(),
            ));
        }
        Ok(())
    }

    /// Every token rate with its field name, for display and validation.
    pub fn rates(&self) -> [(&'static str, &Option<Rate>); 8] {
        [
            ("input_mtok", &self.input_mtok),
            ("output_mtok", &self.output_mtok),
            ("cache_read_mtok", &self.cache_read_mtok),
            ("cache_write_mtok", &self.cache_write_mtok),
            ("cache_write_1h_mtok", &self.cache_write_1h_mtok),
            ("input_audio_mtok", &self.input_audio_mtok),
            ("cache_audio_read_mtok", &self.cache_audio_read_mtok),
            ("output_audio_mtok", &self.output_audio_mtok),
        ]
    }
}

/// When a price list applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriceConstraint {
    /// Always (the first, undated entry).
    Always,
    /// From the start of this UTC day (days since 1970-01-01) onwards.
    StartDate {
        /// Days since the Unix epoch.
        day: i64,
        /// As written in the data, e.g. `2025-06-10`.
        text: String,
    },
    /// Daily, from `start` (inclusive) to `end` (exclusive), UTC, in
    /// microseconds since midnight: off-peak pricing such as DeepSeek's.
    TimeOfDay {
        /// Microseconds since midnight UTC.
        start: i64,
        /// Microseconds since midnight UTC.
        end: i64,
        /// As written in the data, e.g. `00:30:00Z-16:30:00Z`.
        text: String,
    },
}

impl PriceConstraint {
    /// True when a usage at `micros` (since the Unix epoch) falls under it.
    pub fn is_active(&self, micros: i64) -> bool {
        match self {
            PriceConstraint::Always => true,
            PriceConstraint::StartDate { day, .. } => time::day_of(micros) >= *day,
            PriceConstraint::TimeOfDay { start, end, .. } => {
                let t = time::micros_of_day(micros);
                *start <= t && t < *end
            }
        }
    }
}

impl fmt::Display for PriceConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriceConstraint::Always => f.write_str("default"),
            PriceConstraint::StartDate { text, .. } => write!(f, "from {text}"),
            PriceConstraint::TimeOfDay { text, .. } => write!(f, "daily {text} UTC"),
        }
    }
}

/// A price list and when it applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatedPrices {
    /// When this list is in force.
    pub constraint: PriceConstraint,
    /// The prices.
    pub prices: ModelPrices,
}

/// The data's `prices`: one price list, or a list of `{constraint, prices}`.
#[derive(Debug)]
pub(crate) struct RawPrices {
    list: Vec<RawConditional>,
    /// Written as one table rather than a list (for error paths).
    single: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConditional {
    #[serde(default)]
    constraint: Option<RawConstraint>,
    prices: ModelPrices,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConstraint {
    start_date: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
}

impl<'de> Deserialize<'de> for RawPrices {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPrices;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a price table or a list of {constraint, prices}")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawPrices, A::Error> {
                let prices = ModelPrices::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawPrices {
                    list: vec![RawConditional {
                        constraint: None,
                        prices,
                    }],
                    single: true,
                })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<RawPrices, A::Error> {
                Vec::<RawConditional>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(
                    |list| RawPrices {
                        list,
                        single: false,
                    },
                )
            }
        }
        d.deserialize_any(V)
    }
}

impl RawPrices {
    /// Validates and converts; errors are `(field path, message)`, the path
    /// relative to the model (`prices[1].constraint.start_date`).
    pub(crate) fn compile(self) -> Result<Vec<DatedPrices>, (String, String)> {
        if self.list.is_empty() {
            return Err(("prices".into(), "the list is empty".into()));
        }
        let single = self.single;
        let at = |i: usize, f: &str| {
            let base = if single {
                "prices".to_owned()
            } else {
                format!("prices[{i}].prices")
            };
            if single {
                format!("{base}.{f}")
            } else if f.starts_with("constraint") {
                format!("prices[{i}].{f}")
            } else {
                format!("{base}.{f}")
            }
        };
        self.list
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.prices.validate().map_err(|(f, e)| (at(i, &f), e))?;
                let constraint = match c.constraint {
                    None => PriceConstraint::Always,
                    Some(RawConstraint {
                        start_date: Some(d),
                        start_time: None,
                        end_time: None,
                    }) => PriceConstraint::StartDate {
                        day: time::parse_date(&d)
                            .map_err(|e| (at(i, "constraint.start_date"), e))?,
                        text: d,
                    },
                    Some(RawConstraint {
                        start_date: None,
                        start_time: Some(s),
                        end_time: Some(e),
                    }) => {
                        let start = time::parse_time_of_day(&s)
                            .map_err(|m| (at(i, "constraint.start_time"), m))?;
                        let end = time::parse_time_of_day(&e)
                            .map_err(|m| (at(i, "constraint.end_time"), m))?;
                        PriceConstraint::TimeOfDay {
                            start,
                            end,
                            text: format!("{s}-{e}"),
                        }
                    }
                    Some(_) => {
                        return Err((
                            at(i, "constraint"),
                            "use either start_date or start_time + end_time".into(),
                        ));
                    }
                };
                Ok(DatedPrices {
                    constraint,
                    prices: c.prices,
                })
            })
            .collect()
    }
}

/// The list in force at `micros`: the last entry whose constraint holds,
/// else the first (the data's rule).
pub(crate) fn select(list: &[DatedPrices], micros: i64) -> Option<&DatedPrices> {
    if let [only] = list {
        return Some(only);
    }
    list.iter()
        .rev()
        .find(|p| p.constraint.is_active(micros))
        .or_else(|| list.first())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_floats_become_exact_decimals() {
        let p: ModelPrices =
            serde_json::from_str(r#"{"input_mtok": 0.01875, "output_mtok": "2.5"}"#).unwrap();
        assert_eq!(
            p.input_mtok,
            Some(Rate::Flat(Decimal::from_str("0.01875").unwrap()))
        );
        assert_eq!(
            p.output_mtok,
            Some(Rate::Flat(Decimal::from_str("2.5").unwrap()))
        );
    }

    #[test]
    fn tiers_are_a_cliff_on_total_input() {
        let r: Rate = serde_json::from_str(
            r#"{"base": 1, "tiers": [{"start": 20, "price": 3}, {"start": 10, "price": 2}]}"#,
        )
        .unwrap();
        assert_eq!(r.at(10), Decimal::from(1));
        assert_eq!(r.at(11), Decimal::from(2));
        assert_eq!(r.at(21), Decimal::from(3));
    }

    #[test]
    fn unknown_price_keys_are_rejected() {
        let e = serde_json::from_str::<ModelPrices>(r#"{"inptu_mtok": 1}"#).unwrap_err();
        assert!(e.to_string().contains("inptu_mtok"), "{e}");
    }
}
