//! `costtrace prices calc` and `costtrace prices show`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use costtrace_core::{PricingTier, Timestamp};
use costtrace_pricing::{Catalogue, Decimal, ModelInfo, ModelPrices, PriceQuery};
use serde_json::{Map, Value, json};

use crate::{Outcome, load_catalogue};

/// `costtrace prices …`
#[derive(Debug, Args)]
pub(crate) struct PricesArgs {
    #[command(subcommand)]
    command: PricesCommand,
}

#[derive(Debug, Subcommand)]
enum PricesCommand {
    /// Price one usage; exits with 2 when it cannot be priced.
    Calc(CalcArgs),
    /// Show the model a provider/model pair resolves to, and its prices.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
struct CalcArgs {
    /// Provider id, name or alias (e.g. openai, anthropic, bedrock).
    #[arg(long)]
    provider: String,
    /// Model name as sent to the API (e.g. gpt-4o).
    #[arg(long)]
    model: String,
    /// All prompt tokens, cached ones included.
    #[arg(long, default_value_t = 0)]
    input_tokens: u64,
    /// Output tokens (reasoning included).
    #[arg(long, default_value_t = 0)]
    output_tokens: u64,
    /// Part of the input read from the prompt cache.
    #[arg(long, default_value_t = 0)]
    cache_read_tokens: u64,
    /// Part of the input written to the prompt cache.
    #[arg(long, default_value_t = 0)]
    cache_write_tokens: u64,
    /// Use the batch price list.
    #[arg(long)]
    batch: bool,
    /// When the usage happened (RFC 3339); selects dated prices. Default: now.
    #[arg(long, value_parser = parse_timestamp, value_name = "RFC3339")]
    at: Option<Timestamp>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// Provider id, name or alias.
    provider: String,
    /// Model name.
    model: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s)
}

pub(crate) fn run(args: &PricesArgs, prices: Option<&PathBuf>) -> anyhow::Result<Outcome> {
    let catalogue = load_catalogue(prices)?;
    let mut out = std::io::stdout().lock();
    match &args.command {
        PricesCommand::Calc(a) => calc(&catalogue, a, &mut out),
        PricesCommand::Show(a) => show(&catalogue, a, &mut out),
    }
}

/// Exact dollars from nano-USD, e.g. 4_500_000 → `0.004500000`.
fn exact_usd(nanos: i64) -> Decimal {
    Decimal::new(nanos, 9)
}

fn calc(catalogue: &Catalogue, a: &CalcArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let at = a.at.unwrap_or_else(Timestamp::now);
    let tier = if a.batch {
        PricingTier::Batch
    } else {
        PricingTier::Standard
    };
    let q = PriceQuery {
        provider: Some(&a.provider),
        model: Some(&a.model),
        input_tokens: a.input_tokens,
        output_tokens: a.output_tokens,
        cache_read_tokens: a.cache_read_tokens,
        cache_write_tokens: a.cache_write_tokens,
        tier,
        at,
        ..PriceQuery::default()
    };
    match catalogue.price(&q) {
        Ok(p) => {
            if a.json {
                let v = json!({
                    "cost_usd": p.usd(),
                    "cost_nanos": p.nanos,
                    "provider_id": p.provider_id,
                    "model_id": p.model_id,
                    "pricing_tier": tier.as_str(),
                    "at": at.to_rfc3339(),
                    "catalogue_version": &*p.catalogue_version,
                    "input_tokens": a.input_tokens,
                    "output_tokens": a.output_tokens,
                    "cache_read_tokens": a.cache_read_tokens,
                    "cache_write_tokens": a.cache_write_tokens,
                });
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "${} ({} nano-USD) for {} {} ({tier}, prices in force at {})",
                    exact_usd(p.nanos),
                    p.nanos,
                    p.provider_id,
                    p.model_id,
                    at.to_rfc3339()
                )?;
                writeln!(out, "catalogue: {}", p.catalogue_version)?;
            }
            Ok(Outcome::Ok)
        }
        Err(u) => {
            if a.json {
                let v = json!({
                    "cost_usd": null,
                    "cost_nanos": null,
                    "unpriced_reason": u.reason,
                    "provider": a.provider,
                    "model": a.model,
                    "catalogue_version": catalogue.version(),
                });
                writeln!(out, "{v}")?;
            }
            eprintln!("costtrace: {u}");
            Ok(Outcome::Unpriced)
        }
    }
}

fn show(catalogue: &Catalogue, a: &ShowArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let Some(m) = catalogue.find_model(&a.provider, &a.model) else {
        eprintln!(
            "costtrace: unpriced: no price for provider {} model {} (see `costtrace prices show --help`)",
            a.provider, a.model
        );
        return Ok(Outcome::Unpriced);
    };
    if a.json {
        writeln!(out, "{}", show_json(&m, catalogue.version()))?;
        return Ok(Outcome::Ok);
    }
    writeln!(out, "provider:  {} ({})", m.provider_id, m.provider_name)?;
    if m.prices_from_provider_id != m.provider_id {
        writeln!(
            out,
            "prices:    from provider {} (fallback)",
            m.prices_from_provider_id
        )?;
    }
    let name = m
        .model_name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    writeln!(out, "model:     {}{name}", m.model_id)?;
    writeln!(out, "matches:   {}", m.match_rule)?;
    if let Some(cw) = m.context_window {
        writeln!(out, "context:   {cw} tokens")?;
    }
    if m.from_overrides {
        writeln!(out, "source:    price override file")?;
    }
    writeln!(out, "prices (USD per million tokens):")?;
    for dated in &m.prices {
        writeln!(out, "  {}:", dated.constraint)?;
        write_prices(out, &dated.prices)?;
    }
    match &m.batch_prices {
        Some(bp) => {
            writeln!(out, "  batch:")?;
            write_prices(out, bp)?;
        }
        None => writeln!(
            out,
            "  batch: standard prices less {}%",
            m.batch_discount_percent.normalize()
        )?,
    }
    if let Some(c) = &m.price_comments {
        writeln!(out, "note:      {c}")?;
    }
    writeln!(out, "catalogue: {}", catalogue.version())?;
    Ok(Outcome::Ok)
}

fn write_prices(out: &mut impl Write, p: &ModelPrices) -> std::io::Result<()> {
    for (name, rate) in p.rates() {
        if let Some(r) = rate {
            writeln!(out, "    {name:<22} {r}")?;
        }
    }
    if let Some(k) = p.requests_kcount {
        writeln!(
            out,
            "    {:<22} ${} per thousand requests",
            "requests_kcount",
            k.normalize()
        )?;
    }
    Ok(())
}

fn prices_json(p: &ModelPrices) -> Value {
    let mut map = Map::new();
    for (name, rate) in p.rates() {
        if let Some(r) = rate {
            let v = match r {
                costtrace_pricing::Rate::Flat(d) => json!(d.normalize().to_string()),
                costtrace_pricing::Rate::Tiered { base, tiers } => json!({
                    "base": base.normalize().to_string(),
                    "tiers": tiers.iter().map(|t| json!({"start": t.start, "price": t.price.normalize().to_string()})).collect::<Vec<_>>(),
                }),
            };
            map.insert(name.to_owned(), v);
        }
    }
    if let Some(k) = p.requests_kcount {
        map.insert("requests_kcount".into(), json!(k.normalize().to_string()));
    }
    Value::Object(map)
}

fn show_json(m: &ModelInfo, version: &str) -> Value {
    json!({
        "provider_id": m.provider_id,
        "provider_name": m.provider_name,
        "prices_from_provider_id": m.prices_from_provider_id,
        "model_id": m.model_id,
        "model_name": m.model_name,
        "match": m.match_rule,
        "context_window": m.context_window,
        "from_overrides": m.from_overrides,
        "prices": m.prices.iter().map(|d| json!({
            "when": d.constraint.to_string(),
            "prices": prices_json(&d.prices),
        })).collect::<Vec<_>>(),
        "batch_prices": m.batch_prices.as_ref().map(prices_json),
        "batch_discount_percent": m.batch_discount_percent.normalize().to_string(),
        "catalogue_version": version,
    })
}
