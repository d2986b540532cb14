//! The user's override file: self-hosted and fine-tuned models, negotiated
//! rates, service prices and the batch discount. Overrides win over the
//! shipped data. See the crate README for the format.

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::PricingError;
use crate::catalogue::{Catalogue, Model, Provider};
use crate::matcher::{Clause, RawClause};
use crate::rates::{ModelPrices, RawPrices, decimal, opt_decimal};

/// How an override file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideFormat {
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverrideFile {
    #[serde(default, deserialize_with = "opt_decimal")]
    batch_discount_percent: Option<Decimal>,
    #[serde(default)]
    providers: Vec<ProviderOverride>,
    #[serde(default)]
    models: Vec<ModelOverride>,
    #[serde(default)]
    services: Vec<ServiceOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderOverride {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default, rename = "match")]
    provider_match: Option<RawClause>,
    #[serde(default)]
    fallback_model_providers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelOverride {
    provider: String,
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "match")]
    clause: Option<RawClause>,
    #[serde(default)]
    context_window: Option<u64>,
    prices: RawPrices,
    #[serde(default)]
    batch_prices: Option<ModelPrices>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceOverride {
    service_type: String,
    unit: String,
    #[serde(deserialize_with = "decimal")]
    usd_per_unit: Decimal,
}

fn parse_error(origin: &str, format: &'static str, field: String, message: String) -> PricingError {
    PricingError::Parse {
        origin: origin.to_owned(),
        format,
        field,
        message,
    }
}

fn path_or_root(path: String) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path
    }
}

/// Parses the file; errors carry the field path and the line/column.
pub(crate) fn parse(
    text: &str,
    format: OverrideFormat,
    origin: &str,
) -> Result<OverrideFile, PricingError> {
    match format {
        OverrideFormat::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            let file: OverrideFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                parse_error(
                    origin,
                    "JSON",
                    path_or_root(e.path().to_string()),
                    e.inner().to_string(),
                )
            })?;
            de.end()
                .map_err(|e| parse_error(origin, "JSON", ".".into(), e.to_string()))?;
            Ok(file)
        }
        OverrideFormat::Toml => {
            let de = toml::Deserializer::parse(text)
                .map_err(|e| parse_error(origin, "TOML", ".".into(), e.to_string()))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                parse_error(
                    origin,
                    "TOML",
                    path_or_root(e.path().to_string()),
                    e.inner().to_string().trim_end().to_owned(),
                )
            })
        }
    }
}

/// Applies a parsed file to a copy of the bundled catalogue.
pub(crate) fn apply(
    c: &mut Catalogue,
    file: OverrideFile,
    origin: &str,
) -> Result<(), PricingError> {
    let invalid = |field: String, message: String| PricingError::Invalid {
        origin: origin.to_owned(),
        field,
        message,
    };
    if let Some(d) = file.batch_discount_percent {
        if d < Decimal::ZERO || d > Decimal::ONE_HUNDRED {
            return Err(invalid(
                "batch_discount_percent".into(),
                format!("{d} is not a percentage between 0 and 100"),
            ));
        }
        c.batch_discount_percent = d;
    }

    for (i, po) in file.providers.into_iter().enumerate() {
        let field = |f: &str| format!("providers[{i}].{f}");
        if po.id.trim().is_empty() {
            return Err(invalid(field("id"), "must not be empty".into()));
        }
        let provider_match = po
            .provider_match
            .as_ref()
            .map(Clause::compile)
            .transpose()
            .map_err(|e| invalid(field("match"), e))?;
        let providers = c.providers_mut();
        let idx = match find_provider(providers, &po.id) {
            Some(idx) => idx,
            None => {
                providers.push(new_provider(&po.id));
                providers.len() - 1
            }
        };
        let p = &mut providers[idx];
        if let Some(name) = po.name {
            // Keep the data's name findable too.
            p.aliases.push(std::mem::replace(&mut p.name, name));
        }
        p.aliases.extend(po.aliases);
        if provider_match.is_some() {
            p.provider_match = provider_match;
        }
        p.fallback_model_providers
            .extend(po.fallback_model_providers);
    }

    for (i, mo) in file.models.into_iter().enumerate() {
        let field = |f: &str| format!("models[{i}].{f}");
        if mo.id.trim().is_empty() {
            return Err(invalid(field("id"), "must not be empty".into()));
        }
        if mo.provider.trim().is_empty() {
            return Err(invalid(field("provider"), "must not be empty".into()));
        }
        let prices = mo
            .prices
            .compile()
            .map_err(|(f, e)| invalid(field(&f), e))?;
        if let Some(bp) = &mo.batch_prices {
            bp.validate()
                .map_err(|(f, e)| invalid(field(&format!("batch_prices.{f}")), e))?;
        }
        let explicit = mo
            .clause
            .as_ref()
            .map(Clause::compile)
            .transpose()
            .map_err(|e| invalid(field("match"), e))?;
        let providers = c.providers_mut();
        let idx = match find_provider(providers, &mo.provider) {
            Some(idx) => idx,
            None => {
                providers.push(new_provider(&mo.provider));
                providers.len() - 1
            }
        };
        let p = &mut providers[idx];
        // Replacing a shipped model keeps its match rule (so its dated ids
        // still find the negotiated price) unless the override gives one.
        let replaced = p
            .models
            .iter()
            .position(|m| m.id.eq_ignore_ascii_case(&mo.id))
            .map(|pos| p.models.remove(pos));
        let clause = match (explicit, replaced) {
            (Some(c), _) => c,
            (None, Some(old)) => old.clause,
            (None, None) => Clause::Equals(mo.id.to_lowercase().into_boxed_str()),
        };
        let at = p.models.iter().take_while(|m| m.from_overrides).count();
        p.models.insert(
            at,
            Model {
                id: mo.id,
                name: mo.name,
                clause,
                context_window: mo.context_window,
                price_comments: None,
                prices,
                batch_prices: mo.batch_prices,
                from_overrides: true,
            },
        );
    }

    for (i, so) in file.services.into_iter().enumerate() {
        let field = |f: &str| format!("services[{i}].{f}");
        if so.service_type.trim().is_empty() {
            return Err(invalid(field("service_type"), "must not be empty".into()));
        }
        if so.unit.trim().is_empty() {
            return Err(invalid(field("unit"), "must not be empty".into()));
        }
        if so.usd_per_unit.is_sign_negative() {
            return Err(invalid(
                field("usd_per_unit"),
                "a price must not be negative".into(),
            ));
        }
        c.services
            .set(so.service_type.trim(), so.unit.trim(), so.usd_per_unit);
    }
    Ok(())
}

fn find_provider(providers: &[Provider], id: &str) -> Option<usize> {
    let id = id.trim();
    providers
        .iter()
        .position(|p| p.id.eq_ignore_ascii_case(id))
        .or_else(|| {
            providers
                .iter()
                .position(|p| p.aliases.iter().any(|a| a.eq_ignore_ascii_case(id)))
        })
}

fn new_provider(id: &str) -> Provider {
    Provider {
        id: id.trim().to_owned(),
        name: id.trim().to_owned(),
        provider_match: None,
        model_match: None,
        aliases: Vec::new(),
        fallback_model_providers: Vec::new(),
        models: Vec::new(),
    }
}
