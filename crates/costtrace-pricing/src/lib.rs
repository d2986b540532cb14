#![doc = include_str!("../README.md")]

mod catalogue;
mod cost;
mod lookup;
mod matcher;
mod overrides;
mod rates;
mod services;
mod time;
mod usage;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use catalogue::{Catalogue, ModelInfo};
pub use costtrace_core::{PricingTier, Timestamp};
pub use overrides::OverrideFormat;
pub use rates::{DatedPrices, ModelPrices, PriceConstraint, Rate, Tier};
pub use rust_decimal::Decimal;
pub use services::{FILE_PROCESSOR_USD_PER_PAGE, TRANSFORMER_USD_PER_CHUNK};

/// The upstream commit the bundled data was copied from.
pub const BUNDLED_DATA_COMMIT: &str = "47df840a";

/// One usage to price.
///
/// Token convention (the data's): `input_tokens` is the *total* prompt,
/// cached tokens included; `cache_read_tokens` and `cache_write_tokens` are
/// parts of it that are priced at the cache rates, so the uncached input is
/// `input − cache_read − cache_write`. When the cache counts exceed
/// `input_tokens` the input is taken to be their sum (nothing is counted
/// twice, nothing goes negative). Likewise `cache_write_1h_tokens` is a part
/// of `cache_write_tokens`, the audio input counts are parts of the input and
/// `output_audio_tokens` is a part of `output_tokens`.
///
/// A query with a `model` is priced as a model; one with a `service_type` and
/// no model is priced per unit from the service table.
///
/// ```
/// use costtrace_pricing::{Catalogue, PriceQuery, Timestamp};
/// let q = PriceQuery {
///     provider: Some("openai"),
///     model: Some("gpt-4o"),
///     input_tokens: 1_000_000,
///     output_tokens: 100_000,
///     at: Timestamp::parse("2025-01-15T10:30:00Z").unwrap(),
///     ..PriceQuery::default()
/// };
/// // 1M × $2.5/M + 0.1M × $10/M = $3.50
/// assert_eq!(Catalogue::bundled().price(&q).unwrap().nanos, 3_500_000_000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceQuery<'a> {
    /// Provider id (`openai`), name (`OpenAI`) or alias (`azure_openai`…);
    /// `None` or unknown means "find the provider from the model name".
    pub provider: Option<&'a str>,
    /// The model name as sent to or returned by the API.
    pub model: Option<&'a str>,
    /// A paid non-AI service, e.g. `file_processor` (used when `model` is `None`).
    pub service_type: Option<&'a str>,
    /// Units of the service, e.g. `[("pages", 10)]`.
    pub units: &'a [(&'a str, u64)],
    /// All prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// All output tokens (reasoning included).
    pub output_tokens: u64,
    /// Part of `input_tokens` read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Part of `input_tokens` written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Part of `cache_write_tokens` written with a 1-hour lifetime.
    pub cache_write_1h_tokens: u64,
    /// Part of `input_tokens` that is audio (cached audio included).
    pub input_audio_tokens: u64,
    /// Part of `cache_read_tokens` (and of `input_audio_tokens`) that is audio.
    pub cache_audio_read_tokens: u64,
    /// Part of `output_tokens` that is audio.
    pub output_audio_tokens: u64,
    /// Standard or batch price list.
    pub tier: PricingTier,
    /// When the usage happened: selects dated prices.
    pub at: Timestamp,
}

impl Default for PriceQuery<'_> {
    /// Everything zero or `None`, standard tier, priced as of now.
    fn default() -> Self {
        PriceQuery {
            provider: None,
            model: None,
            service_type: None,
            units: &[],
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            input_audio_tokens: 0,
            cache_audio_read_tokens: 0,
            output_audio_tokens: 0,
            tier: PricingTier::Standard,
            at: Timestamp::now(),
        }
    }
}

/// The cost of one usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    /// Exact cost in nano-USD, rounded once (half away from zero).
    pub nanos: i64,
    /// The provider the usage was matched to (for a service: `service`).
    pub provider_id: String,
    /// The model's id in the catalogue (for a service: the service type).
    pub model_id: String,
    /// Which catalogue produced the cost, so history can be re-priced.
    pub catalogue_version: Arc<str>,
}

impl Price {
    /// The cost in dollars, for display and JSON.
    pub fn usd(&self) -> f64 {
        costtrace_core::nanos_to_usd(self.nanos)
    }
}

/// Why a usage has no cost. Never a zero: an unknown price stays unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpriced {
    /// Starts with `unpriced: `, e.g. `unpriced: no price for provider acme model foo-1`.
    pub reason: String,
}

impl Unpriced {
    pub(crate) fn new(reason: impl fmt::Display) -> Self {
        Unpriced {
            reason: format!("unpriced: {reason}"),
        }
    }
}

impl fmt::Display for Unpriced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Unpriced {}

/// Loading a catalogue or an override file failed.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// The override file could not be read.
    #[error("cannot read price override file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file's extension is neither `.toml` nor `.json`.
    #[error("price override file {} must end in .toml or .json", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid TOML/JSON or does not have the expected shape.
    /// `field` is the path of the offending field (`models[0].prices.input_mtok`)
    /// and `message` includes the line and column.
    #[error("price override file {origin}: invalid {format} at {field}: {message}")]
    Parse {
        /// File name or other origin.
        origin: String,
        /// `TOML` or `JSON`.
        format: &'static str,
        /// Path of the field, `.` for the document root.
        field: String,
        /// What was wrong, with line and column.
        message: String,
    },
    /// The file parsed but a value is not acceptable (negative price, bad
    /// regex or date, discount outside 0–100 …).
    #[error("price override file {origin}: {field}: {message}")]
    Invalid {
        /// File name or other origin.
        origin: String,
        /// Path of the field, e.g. `models[2].prices[0].constraint.start_date`.
        field: String,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// The bundled price data did not load (a packaging bug).
    #[error("bundled price data failed to load: {0}")]
    Bundled(String),
}

/// Totals over many priced usages: the priced total and the number of
/// unpriced records side by side, never an unpriced record counted as $0.
///
/// ```
/// use costtrace_pricing::{CostSummary, Unpriced};
/// let mut s = CostSummary::default();
/// s.add_nanos(Some(20_000_000));
/// s.add_nanos(None);
/// assert_eq!((s.priced_nanos, s.priced_count, s.unpriced_count), (20_000_000, 1, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostSummary {
    /// Sum of the priced records, nano-USD (saturating).
    pub priced_nanos: i64,
    /// How many records had a cost.
    pub priced_count: u64,
    /// How many records had none.
    pub unpriced_count: u64,
}

impl CostSummary {
    /// Adds one record's stored cost (`None` = unpriced).
    pub fn add_nanos(&mut self, nanos: Option<i64>) {
        match nanos {
            Some(n) => {
                self.priced_nanos = self.priced_nanos.saturating_add(n);
                self.priced_count += 1;
            }
            None => self.unpriced_count += 1,
        }
    }

    /// Adds one pricing result.
    pub fn add(&mut self, result: &Result<Price, Unpriced>) {
        self.add_nanos(result.as_ref().ok().map(|p| p.nanos));
    }

    /// The priced total in dollars.
    pub fn priced_usd(&self) -> f64 {
        costtrace_core::nanos_to_usd(self.priced_nanos)
    }
}
