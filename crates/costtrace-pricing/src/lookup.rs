//! Resolving a query's `(provider, model)` strings to a catalogue model, with
//! a cache so the match clauses only run on a name's first sighting.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::catalogue::{Catalogue, MAX_CACHED_LOOKUPS};

/// Query provider (`""` for none) → query model → resolution. Two levels
/// so a hit can be looked up with borrowed `&str`s, without allocating.
pub(crate) type LookupCache = HashMap<Box<str>, HashMap<Box<str>, Resolved>>;

#[derive(Clone, Debug)]
pub(crate) enum Resolved {
    /// `provider` is who the usage was matched to; `owner` holds the model
    /// (they differ when a provider falls back to another's models).
    Found {
        provider: usize,
        owner: usize,
        model: usize,
    },
    Missing(Arc<str>),
}

impl Catalogue {
    /// Cached resolution: a read lock and two hash probes on a hit.
    pub(crate) fn lookup(&self, provider: Option<&str>, model: &str) -> Resolved {
        let pkey = provider.unwrap_or("");
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = cache.get(pkey).and_then(|m| m.get(model)) {
                return r.clone();
            }
        }
        let resolved = self.resolve(provider, model);
        if self.cache_len.load(Ordering::Relaxed) < MAX_CACHED_LOOKUPS {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            let models = cache.entry(pkey.into()).or_default();
            if models.insert(model.into(), resolved.clone()).is_none() {
                self.cache_len.fetch_add(1, Ordering::Relaxed);
            }
        }
        resolved
    }

    /// The matching rules (uncached):
    /// 1. the provider by exact id, name or alias (case-insensitive), then by
    ///    the data's `provider_match`, in data order;
    /// 2. if no provider was given or none matched, the first provider whose
    ///    `model_match` claims the model name;
    /// 3. the first of that provider's models whose `match` accepts the
    ///    lower-cased model name (override models come first), then the
    ///    models of its `fallback_model_providers` (one step).
    pub(crate) fn resolve(&self, provider: Option<&str>, model: &str) -> Resolved {
        let model_l = model.trim().to_lowercase();
        let mut provider_l = provider
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty());
        let mut model_ref = model_l.as_str();
        // LiteLLM-style "openai/gpt-4o" under provider "litellm".
        if provider_l.as_deref() == Some("litellm")
            && let Some((p, m)) = model_l.split_once('/')
        {
            provider_l = Some(p.to_owned());
            model_ref = m;
        }
        let by_provider = provider_l.as_deref().and_then(|p| self.find_provider(p));
        let pidx = by_provider.or_else(|| {
            self.providers.iter().position(|p| {
                p.model_match
                    .as_ref()
                    .is_some_and(|c| c.is_match(model_ref))
            })
        });
        let missing = || {
            Resolved::Missing(Arc::from(match provider {
                Some(p) => format!("no price for provider {p} model {model}"),
                None => format!("no price for model {model} (no provider given)"),
            }))
        };
        let Some(pidx) = pidx else { return missing() };
        let p = &self.providers[pidx];
        if let Some(mi) = p.models.iter().position(|m| m.clause.is_match(model_ref)) {
            return Resolved::Found {
                provider: pidx,
                owner: pidx,
                model: mi,
            };
        }
        for fb in &p.fallback_model_providers {
            let Some(fi) = self.providers.iter().position(|x| &x.id == fb) else {
                continue;
            };
            if let Some(mi) = self.providers[fi]
                .models
                .iter()
                .position(|m| m.clause.is_match(model_ref))
            {
                return Resolved::Found {
                    provider: pidx,
                    owner: fi,
                    model: mi,
                };
            }
        }
        missing()
    }

    fn find_provider(&self, p: &str) -> Option<usize> {
        self.by_name.get(p).copied().or_else(|| {
            self.providers
                .iter()
                .position(|x| x.provider_match.as_ref().is_some_and(|c| c.is_match(p)))
        })
    }
}
