//! The catalogue: providers, their models and price lists, the service price
//! table, and the indexed lookup `price()` uses.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock, RwLock};

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

use crate::lookup::{LookupCache, Resolved};
use crate::matcher::{Clause, RawClause};
use crate::rates::{self, DatedPrices, ModelPrices, RawPrices};
use crate::services::ServiceTable;
use crate::{Price, PriceQuery, PricingError, PricingTier, Unpriced, cost, overrides};

const BUNDLED_JSON: &str = include_str!("../data/genai-prices/data.json");

/// Resolved `(provider, model)` pairs are cached up to this many entries;
/// beyond it lookups still work, they just are not remembered.
pub(crate) const MAX_CACHED_LOOKUPS: usize = 65_536;

/// The default batch discount when the data has no batch prices (seed 000 §6).
const DEFAULT_BATCH_DISCOUNT_PERCENT: u32 = 50;

/// The price catalogue: the shipped genai-prices data, the shipped service
/// prices, and any user overrides. Cheap to share (`Arc`), safe to use from
/// many threads.
///
/// ```
/// use costtrace_pricing::Catalogue;
/// let c = Catalogue::bundled();
/// assert!(c.version().starts_with("genai-prices@"));
/// assert_eq!(c.find_model("anthropic", "claude-3-5-haiku-latest").unwrap().model_id, "claude-3-5-haiku-latest");
/// ```
pub struct Catalogue {
    pub(crate) providers: Vec<Provider>,
    /// Lower-cased provider ids, names and aliases → index into `providers`.
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) services: ServiceTable,
    pub(crate) batch_discount_percent: Decimal,
    version: Arc<str>,
    /// Set when the bundled data failed to load: every price is then unpriced
    /// with this reason rather than silently zero.
    load_error: Option<String>,
    pub(crate) cache: RwLock<LookupCache>,
    pub(crate) cache_len: AtomicUsize,
}

#[derive(Clone, Debug)]
pub(crate) struct Provider {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) provider_match: Option<Clause>,
    pub(crate) model_match: Option<Clause>,
    pub(crate) aliases: Vec<String>,
    pub(crate) fallback_model_providers: Vec<String>,
    pub(crate) models: Vec<Model>,
}

#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) clause: Clause,
    pub(crate) context_window: Option<u64>,
    pub(crate) price_comments: Option<String>,
    pub(crate) prices: Vec<DatedPrices>,
    pub(crate) batch_prices: Option<ModelPrices>,
    pub(crate) from_overrides: bool,
}

/// A model as the catalogue knows it, for `costtrace prices show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// The provider the query was matched to.
    pub provider_id: String,
    /// Its display name.
    pub provider_name: String,
    /// The provider whose price list holds the model (differs from
    /// `provider_id` when e.g. Azure falls back to OpenAI's prices).
    pub prices_from_provider_id: String,
    /// The model's id in the catalogue.
    pub model_id: String,
    /// Its display name, when the data has one.
    pub model_name: Option<String>,
    /// Which names match this model.
    pub match_rule: String,
    /// Maximum input tokens, when known.
    pub context_window: Option<u64>,
    /// Caveats noted in the data.
    pub price_comments: Option<String>,
    /// Price lists with the dates or times they apply.
    pub prices: Vec<DatedPrices>,
    /// Explicit batch prices, if any; otherwise batch is the standard price
    /// less `batch_discount_percent`.
    pub batch_prices: Option<ModelPrices>,
    /// The catalogue's batch discount.
    pub batch_discount_percent: Decimal,
    /// True when the model comes from the user's override file.
    pub from_overrides: bool,
}

// The shape of the genai-prices data; fields the engine does not use
// (extractors, pricing_urls, descriptions) are skipped.
#[derive(Deserialize)]
struct RawProvider {
    id: String,
    name: String,
    #[serde(default)]
    provider_match: Option<RawClause>,
    #[serde(default)]
    model_match: Option<RawClause>,
    #[serde(default)]
    fallback_model_providers: Vec<String>,
    models: Vec<RawModel>,
}

#[derive(Deserialize)]
struct RawModel {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "match")]
    clause: RawClause,
    #[serde(default)]
    context_window: Option<u64>,
    #[serde(default)]
    price_comments: Option<String>,
    prices: RawPrices,
}

impl Catalogue {
    /// The shipped catalogue (bundled genai-prices data + shipped service
    /// prices), parsed on first use and shared afterwards.
    ///
    /// Should the bundled data ever fail to load, this still returns a
    /// catalogue: one that prices nothing and says why in every
    /// [`Unpriced`] reason.
    pub fn bundled() -> Arc<Catalogue> {
        static BUNDLED: OnceLock<Arc<Catalogue>> = OnceLock::new();
        BUNDLED
            .get_or_init(|| {
                Arc::new(Catalogue::load_bundled().unwrap_or_else(|e| {
                    let mut c = Catalogue::empty();
                    c.load_error = Some(e.to_string());
                    c
                }))
            })
            .clone()
    }

    /// Parses the bundled data afresh (what [`Catalogue::bundled`] does once).
    pub fn load_bundled() -> Result<Catalogue, PricingError> {
        let raw: Vec<RawProvider> =
            serde_json::from_str(BUNDLED_JSON).map_err(|e| PricingError::Bundled(e.to_string()))?;
        let mut providers = Vec::with_capacity(raw.len());
        for p in raw {
            providers.push(Provider::compile(p).map_err(PricingError::Bundled)?);
        }
        let mut c = Catalogue::empty();
        c.providers = providers;
        c.reindex();
        Ok(c)
    }

    fn empty() -> Catalogue {
        Catalogue {
            providers: Vec::new(),
            by_name: HashMap::new(),
            services: ServiceTable::shipped(),
            batch_discount_percent: Decimal::from(DEFAULT_BATCH_DISCOUNT_PERCENT),
            version: Arc::from(format!("genai-prices@{}", crate::BUNDLED_DATA_COMMIT)),
            load_error: None,
            cache: RwLock::new(HashMap::new()),
            cache_len: AtomicUsize::new(0),
        }
    }

    /// The bundled catalogue with the overrides in `path` applied (TOML or
    /// JSON, chosen by the extension). Overrides win over the shipped data.
    /// A malformed file is an error naming the field and line, never a
    /// silent fallback to the shipped prices.
    pub fn from_override_file(path: &Path) -> Result<Catalogue, PricingError> {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("toml") => overrides::OverrideFormat::Toml,
            Some(e) if e.eq_ignore_ascii_case("json") => overrides::OverrideFormat::Json,
            _ => {
                return Err(PricingError::UnknownFormat {
                    path: path.to_path_buf(),
                });
            }
        };
        let text = std::fs::read_to_string(path).map_err(|source| PricingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Catalogue::from_override_str(&text, format, &path.display().to_string())
    }

    /// Like [`Catalogue::from_override_file`], from text; `origin` names the
    /// source in error messages.
    pub fn from_override_str(
        text: &str,
        format: overrides::OverrideFormat,
        origin: &str,
    ) -> Result<Catalogue, PricingError> {
        let file = overrides::parse(text, format, origin)?;
        let base = Catalogue::bundled();
        if let Some(e) = &base.load_error {
            return Err(PricingError::Bundled(e.clone()));
        }
        let mut c = base.fresh_copy();
        overrides::apply(&mut c, file, origin)?;
        c.version = Arc::from(format!(
            "genai-prices@{}+overrides:{:016x}",
            crate::BUNDLED_DATA_COMMIT,
            fnv1a(text.as_bytes())
        ));
        c.reindex();
        Ok(c)
    }

    /// A copy without the lookup cache.
    fn fresh_copy(&self) -> Catalogue {
        Catalogue {
            providers: self.providers.clone(),
            by_name: self.by_name.clone(),
            services: self.services.clone(),
            batch_discount_percent: self.batch_discount_percent,
            version: self.version.clone(),
            load_error: self.load_error.clone(),
            cache: RwLock::new(HashMap::new()),
            cache_len: AtomicUsize::new(0),
        }
    }

    pub(crate) fn reindex(&mut self) {
        let mut by_name = HashMap::new();
        // Earlier entries win; ids first, then names and aliases.
        for (i, p) in self.providers.iter().enumerate() {
            by_name.entry(p.id.to_lowercase()).or_insert(i);
        }
        for (i, p) in self.providers.iter().enumerate() {
            by_name.entry(p.name.to_lowercase()).or_insert(i);
            for a in &p.aliases {
                by_name.entry(a.to_lowercase()).or_insert(i);
            }
        }
        self.by_name = by_name;
        self.cache = RwLock::new(HashMap::new());
        self.cache_len = AtomicUsize::new(0);
    }

    pub(crate) fn providers_mut(&mut self) -> &mut Vec<Provider> {
        &mut self.providers
    }

    /// Identifies the catalogue, e.g. `genai-prices@47df840a` or
    /// `genai-prices@47df840a+overrides:<hash of the override file>`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// How many providers and models the catalogue holds.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.providers.len(),
            self.providers.iter().map(|p| p.models.len()).sum(),
        )
    }

    /// The batch discount applied where a model has no batch prices.
    pub fn batch_discount_percent(&self) -> Decimal {
        self.batch_discount_percent
    }

    /// USD per unit of a paid service, e.g. (`file_processor`, `pages`) → 0.02.
    pub fn service_price(&self, service_type: &str, unit: &str) -> Option<Decimal> {
        self.services.rate(service_type, unit).ok()
    }

    /// The service price table: `(service_type, unit, USD per unit)`.
    pub fn service_prices(&self) -> impl Iterator<Item = (&str, &str, Decimal)> {
        self.services
            .iter()
            .map(|r| (r.service.as_str(), r.unit.as_str(), r.usd_per_unit))
    }

    /// Prices one usage. See [`PriceQuery`] for the token convention.
    ///
    /// The result is rounded once, half away from zero, to whole nano-USD.
    pub fn price(&self, q: &PriceQuery<'_>) -> Result<Price, Unpriced> {
        if let Some(e) = &self.load_error {
            return Err(Unpriced::new(format_args!(
                "price catalogue failed to load ({e})"
            )));
        }
        let model = q.model.map(str::trim).filter(|m| !m.is_empty());
        let Some(model) = model else {
            return match q.service_type.map(str::trim).filter(|s| !s.is_empty()) {
                Some(service) => self.price_service(service, q),
                None => Err(Unpriced::new(
                    "the usage names neither a model nor a service_type",
                )),
            };
        };
        let (provider_idx, owner, model_idx) = match self.lookup(q.provider, model) {
            Resolved::Found {
                provider,
                owner,
                model,
            } => (provider, owner, model),
            Resolved::Missing(reason) => return Err(Unpriced::new(reason)),
        };
        let provider = &self.providers[provider_idx];
        let m = &self.providers[owner].models[model_idx];
        let describe = || format!("provider {} model {}", provider.id, m.id);

        let batch = q.tier == PricingTier::Batch;
        let (prices, factor) = match (&m.batch_prices, batch) {
            (Some(bp), true) => (bp, Decimal::ONE),
            (_, true) => {
                let list = rates::select(&m.prices, q.at.as_micros()).ok_or_else(|| {
                    Unpriced::new(format_args!("no price list for {}", describe()))
                })?;
                (
                    &list.prices,
                    (Decimal::ONE_HUNDRED - self.batch_discount_percent) / Decimal::ONE_HUNDRED,
                )
            }
            (_, false) => {
                let list = rates::select(&m.prices, q.at.as_micros()).ok_or_else(|| {
                    Unpriced::new(format_args!("no price list for {}", describe()))
                })?;
                (&list.prices, Decimal::ONE)
            }
        };
        let exact = cost::exact_nanos(prices, q)
            .map_err(|what| Unpriced::new(format_args!("{what} for {}", describe())))?;
        let nanos = round_nanos(exact.checked_mul(factor))
            .ok_or_else(|| Unpriced::new(format_args!("cost overflows for {}", describe())))?;
        Ok(Price {
            nanos,
            provider_id: provider.id.clone(),
            model_id: m.id.clone(),
            catalogue_version: self.version.clone(),
        })
    }

    fn price_service(&self, service: &str, q: &PriceQuery<'_>) -> Result<Price, Unpriced> {
        if q.units.is_empty() {
            return Err(Unpriced::new(format_args!(
                "service {service} recorded no units"
            )));
        }
        let mut total = Decimal::ZERO;
        for (unit, count) in q.units {
            let rate = self.services.rate(service, unit).map_err(Unpriced::new)?;
            total = rate
                .checked_mul(Decimal::from(*count))
                .and_then(|usd| usd.checked_mul(Decimal::from(costtrace_core::NANOS_PER_USD)))
                .and_then(|n| total.checked_add(n))
                .ok_or_else(|| {
                    Unpriced::new(format_args!("cost overflows for service {service}"))
                })?;
        }
        let nanos = round_nanos(Some(total))
            .ok_or_else(|| Unpriced::new(format_args!("cost overflows for service {service}")))?;
        Ok(Price {
            nanos,
            provider_id: "service".to_owned(),
            model_id: service.to_owned(),
            catalogue_version: self.version.clone(),
        })
    }

    /// Finds the model a `(provider, model)` pair resolves to, with the same
    /// matching `price()` uses. An empty `provider` means "none given".
    pub fn find_model(&self, provider: &str, model: &str) -> Option<ModelInfo> {
        let provider = Some(provider.trim()).filter(|p| !p.is_empty());
        let Resolved::Found {
            provider,
            owner,
            model,
        } = self.resolve(provider, model)
        else {
            return None;
        };
        let p = &self.providers[provider];
        let m = &self.providers[owner].models[model];
        Some(ModelInfo {
            provider_id: p.id.clone(),
            provider_name: p.name.clone(),
            prices_from_provider_id: self.providers[owner].id.clone(),
            model_id: m.id.clone(),
            model_name: m.name.clone(),
            match_rule: m.clause.to_string(),
            context_window: m.context_window,
            price_comments: m.price_comments.clone(),
            prices: m.prices.clone(),
            batch_prices: m.batch_prices.clone(),
            batch_discount_percent: self.batch_discount_percent,
            from_overrides: m.from_overrides,
        })
    }
}

impl fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (providers, models) = self.counts();
        f.debug_struct("Catalogue")
            .field("version", &self.version)
            .field("providers", &providers)
            .field("models", &models)
            .field("batch_discount_percent", &self.batch_discount_percent)
            .field("load_error", &self.load_error)
            .finish_non_exhaustive()
    }
}

impl Provider {
    fn compile(p: RawProvider) -> Result<Provider, String> {
        let ctx = |e: String| format!("provider {}: {e}", p.id);
        let provider_match = p
            .provider_match
            .as_ref()
            .map(Clause::compile)
            .transpose()
            .map_err(ctx)?;
        let model_match = p
            .model_match
            .as_ref()
            .map(Clause::compile)
            .transpose()
            .map_err(ctx)?;
        let mut models = Vec::with_capacity(p.models.len());
        for m in p.models {
            let mctx = |e: String| format!("provider {} model {}: {e}", p.id, m.id);
            models.push(Model {
                clause: Clause::compile(&m.clause).map_err(mctx)?,
                prices: m
                    .prices
                    .compile()
                    .map_err(|(f, e)| format!("provider {} model {}: {f}: {e}", p.id, m.id))?,
                id: m.id,
                name: m.name,
                context_window: m.context_window,
                price_comments: m.price_comments,
                batch_prices: None,
                from_overrides: false,
            });
        }
        Ok(Provider {
            id: p.id,
            name: p.name,
            provider_match,
            model_match,
            aliases: Vec::new(),
            fallback_model_providers: p.fallback_model_providers,
            models,
        })
    }
}

/// The one rounding step: exact nano-USD to whole nano-USD, half away from zero.
fn round_nanos(exact: Option<Decimal>) -> Option<i64> {
    exact?
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_i64()
}

/// FNV-1a, 64-bit: a stable, dependency-free fingerprint of an override file.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn bundled_data_loads_completely() {
        let c = Catalogue::load_bundled().unwrap();
        let (providers, models) = c.counts();
        assert_eq!(providers, 34);
        assert_eq!(models, 1442);
        assert_eq!(c.version(), "genai-prices@47df840a");
    }

    #[test]
    fn catalogue_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Catalogue>();
        let c = Catalogue::bundled();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let q = PriceQuery {
                        provider: Some("openai"),
                        model: Some("gpt-4o-mini"),
                        input_tokens: 1_000,
                        ..PriceQuery::default()
                    };
                    c.price(&q).map(|p| p.nanos)
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), Ok(1_000 * 150));
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_nanos(Some(Decimal::new(25, 1))), Some(3));
        assert_eq!(round_nanos(Some(Decimal::new(24, 1))), Some(2));
        assert_eq!(round_nanos(Some(Decimal::new(-25, 1))), Some(-3));
    }

    #[test]
    fn lookups_are_cached_including_misses() {
        let c = Catalogue::load_bundled().unwrap();
        let q = PriceQuery {
            provider: Some("openai"),
            model: Some("gpt-4o"),
            ..Default::default()
        };
        assert!(c.price(&q).is_ok());
        let q2 = PriceQuery {
            provider: Some("openai"),
            model: Some("nope"),
            ..Default::default()
        };
        assert!(c.price(&q2).is_err());
        assert_eq!(c.cache_len.load(Ordering::Relaxed), 2);
        assert!(c.price(&q).is_ok());
        assert_eq!(c.cache_len.load(Ordering::Relaxed), 2);
    }
}
