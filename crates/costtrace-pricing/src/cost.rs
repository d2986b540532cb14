//! The arithmetic: token counts × exact rates → exact nano-USD (unrounded).
//!
//! USD = rate_per_million × tokens / 10⁶, so nano-USD = rate × tokens × 10³.
//! Everything stays a `Decimal` until the caller rounds once.

use rust_decimal::Decimal;

use crate::PriceQuery;
use crate::rates::{ModelPrices, Rate};

const NANOS_PER_MTOK_UNIT: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);
const NANOS_PER_KREQUEST_UNIT: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);
const TWO: Decimal = Decimal::TWO;

/// Token counts split so that no token is priced twice.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    /// The whole prompt: what context-length tiers look at.
    total_input: u64,
    uncached_text: u64,
    cache_read_text: u64,
    cache_write_5m: u64,
    cache_write_1h: u64,
    uncached_audio: u64,
    cache_read_audio: u64,
    output_text: u64,
    output_audio: u64,
}

fn split(q: &PriceQuery<'_>) -> Split {
    // Parts larger than their whole grow the whole (saturating, never negative).
    let cache_write = q.cache_write_tokens.max(q.cache_write_1h_tokens);
    let cache_read = q.cache_read_tokens.max(q.cache_audio_read_tokens);
    let input_audio = q.input_audio_tokens.max(q.cache_audio_read_tokens);
    let uncached_audio = input_audio - q.cache_audio_read_tokens;
    let parts = cache_read
        .saturating_add(cache_write)
        .saturating_add(uncached_audio);
    let total_input = q.input_tokens.max(parts);
    let output = q.output_tokens.max(q.output_audio_tokens);
    Split {
        total_input,
        uncached_text: total_input - parts,
        cache_read_text: cache_read - q.cache_audio_read_tokens,
        cache_write_5m: cache_write - q.cache_write_1h_tokens,
        cache_write_1h: q.cache_write_1h_tokens,
        uncached_audio,
        cache_read_audio: q.cache_audio_read_tokens,
        output_text: output - q.output_audio_tokens,
        output_audio: q.output_audio_tokens,
    }
}

/// The exact cost in nano-USD, or what price is missing.
///
/// Missing cache prices fall back to the input price (the tokens are then
/// priced as ordinary input, which is what a provider without prompt caching
/// charges); a 1-hour cache write without its own price costs 2 × input.
/// Any other token kind with tokens but no price makes the usage unpriced.
pub(crate) fn exact_nanos(p: &ModelPrices, q: &PriceQuery<'_>) -> Result<Decimal, String> {
    let s = split(q);
    let t = s.total_input;
    let mut total = Decimal::ZERO;
    let mut add = |tokens: u64, rate: Option<&Rate>, name: &str| -> Result<(), String> {
        if tokens == 0 {
            return Ok(());
        }
        let rate = rate.ok_or_else(|| format!("{tokens} {name} tokens but no {name} price"))?;
        total = rate
            .at(t)
            .checked_mul(Decimal::from(tokens))
            .and_then(|x| x.checked_mul(NANOS_PER_MTOK_UNIT))
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| "the cost overflows".to_owned())?;
        Ok(())
    };
    let input = p.input_mtok.as_ref();
    add(s.uncached_text, input, "input")?;
    add(
        s.cache_read_text,
        p.cache_read_mtok.as_ref().or(input),
        "cache_read",
    )?;
    add(
        s.cache_write_5m,
        p.cache_write_mtok.as_ref().or(input),
        "cache_write",
    )?;
    let derived_1h;
    let write_1h = match (&p.cache_write_1h_mtok, input) {
        (Some(r), _) => Some(r),
        (None, Some(i)) => {
            derived_1h = i.scaled(TWO);
            Some(&derived_1h)
        }
        (None, None) => None,
    };
    add(s.cache_write_1h, write_1h, "cache_write_1h")?;
    add(s.uncached_audio, p.input_audio_mtok.as_ref(), "input_audio")?;
    add(
        s.cache_read_audio,
        p.cache_audio_read_mtok
            .as_ref()
            .or(p.input_audio_mtok.as_ref()),
        "cache_audio_read",
    )?;
    add(s.output_text, p.output_mtok.as_ref(), "output")?;
    add(s.output_audio, p.output_audio_mtok.as_ref(), "output_audio")?;
    if let Some(k) = p.requests_kcount {
        // One usage is one request: $k per thousand = k × 10⁶ nano-USD each.
        total = k
            .checked_mul(NANOS_PER_KREQUEST_UNIT)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| "the cost overflows".to_owned())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_are_a_part_of_input() {
        let q = PriceQuery {
            input_tokens: 1000,
            cache_read_tokens: 600,
            cache_write_tokens: 300,
            cache_write_1h_tokens: 100,
            output_tokens: 50,
            ..PriceQuery::default()
        };
        let s = split(&q);
        assert_eq!(s.total_input, 1000);
        assert_eq!(s.uncached_text, 100);
        assert_eq!(
            (s.cache_read_text, s.cache_write_5m, s.cache_write_1h),
            (600, 200, 100)
        );
    }

    #[test]
    fn cache_larger_than_input_means_input_is_their_sum() {
        let q = PriceQuery {
            input_tokens: 10,
            cache_read_tokens: 600,
            cache_write_tokens: 300,
            ..PriceQuery::default()
        };
        let s = split(&q);
        assert_eq!((s.total_input, s.uncached_text), (900, 0));
    }
}
