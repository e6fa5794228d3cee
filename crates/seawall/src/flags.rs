//! Feature flags per upstream host: while the daemon runs it holds one flag-cache handle per
//! provider, so every provider on a host shares one cached flag set, and it applies
//! `seawall.circuit_breaker.enabled` (false → that provider's breakers observe but never
//! reject). Without `feature_flags` in the config nothing is fetched at all.

use std::sync::Arc;
use std::time::Duration;

use seawall_flags::{CacheSnapshot, FetchResult, FlagCache, FlagHandle, FlagObserver, HttpFetcher};

use crate::breakers::Breakers;
use crate::config::{FeatureFlagsConfig, ProviderConfig};
use crate::metrics::Metrics;

/// The flag that turns a host's breaker enforcement on (default) or off.
pub const CIRCUIT_BREAKER_ENABLED: &str = "seawall.circuit_breaker.enabled";

/// The daemon's flag cache and its handles, one per provider.
pub struct Flags {
    cache: FlagCache,
    /// (provider name, handle on its `base_url` host), in configuration order.
    handles: Vec<(String, FlagHandle)>,
}

/// Why the flag cache could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("feature flags: {0}")]
pub struct FlagsError(#[from] seawall_flags::Error);

/// Counts fetches in `seawall_feature_flag_fetches_total{host,result}`.
struct FetchMetrics(Arc<Metrics>);

impl FlagObserver for FetchMetrics {
    fn fetch_finished(&self, host: &str, result: FetchResult) {
        self.0.count_flag_fetch(host, result.as_str());
    }
}

impl Flags {
    /// A cache fetching from `config.url` and a handle for each provider's host.
    pub fn new(
        config: &FeatureFlagsConfig,
        providers: &[ProviderConfig],
        metrics: Arc<Metrics>,
    ) -> Result<Flags, FlagsError> {
        let mut builder = FlagCache::builder(HttpFetcher::new(&config.url)?)
            .ttl(config.ttl)
            .min_ttl(config.min_ttl)
            .max_ttl(config.max_ttl)
            .fetch_timeout(config.fetch_timeout)
            .observer(FetchMetrics(metrics));
        if let Some(grace) = config.idle_grace {
            builder = builder.idle_grace(grace);
        }
        Self::with_cache(builder.build()?, providers)
    }

    /// Handles on `cache` for each provider's host (for tests and embedders that bring
    /// their own fetcher).
    pub fn with_cache(cache: FlagCache, providers: &[ProviderConfig]) -> Result<Flags, FlagsError> {
        let handles = providers
            .iter()
            .map(|p| Ok((p.name.clone(), cache.acquire(&p.base_url)?)))
            .collect::<Result<_, seawall_flags::Error>>()?;
        Ok(Flags { cache, handles })
    }

    /// Reads each provider's `seawall.circuit_breaker.enabled` (waiting for a cold host's
    /// first fetch, at most `fetch_timeout`) and sets its breakers' enforcement.
    pub async fn apply(&self, breakers: &Breakers) {
        for (provider, handle) in &self.handles {
            let enabled = handle.get_bool(CIRCUIT_BREAKER_ENABLED, true).await;
            if let Some(b) = breakers.provider(provider) {
                b.set_metrics_only(!enabled);
            }
        }
    }

    /// Hosts, handle counts, values, ages and errors, for `GET /v1/flags`.
    pub fn snapshot(&self) -> CacheSnapshot {
        self.cache.snapshot()
    }
}

/// Applies the flags every `every` until the task is aborted.
pub async fn watch(flags: Arc<Flags>, breakers: Arc<Breakers>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        flags.apply(&breakers).await;
    }
}
