//! Feature flags per upstream host: while the daemon runs it holds one flag-cache handle per
//! provider target and per `http` output endpoint, so everything on a host shares one cached flag
//! set, and it applies `seawall.circuit_breaker.enabled` (false → that host's provider and
//! output breakers observe but never reject) and `seawall.telemetry.enabled` (false → no
//! request events for that provider).
//! Without `feature_flags` in the config nothing is fetched at all. Fetches go through the
//! daemon's own upstream client (`fetch.rs`).

mod fetch;

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::Duration;

use seawall_flags::{CacheSnapshot, FetchResult, FlagCache, FlagHandle, FlagObserver};

use self::fetch::PooledFetcher;
use crate::breakers::{set_enforcement, Breakers};
use crate::config::{FeatureFlagsConfig, OutputType, PipelineConfig, ProviderConfig};
use crate::http1::outbound::Pools;
use crate::metrics::Metrics;
use crate::pipeline::Pipelines;

/// The flag that turns a host's breaker enforcement on (default) or off.
pub const CIRCUIT_BREAKER_ENABLED: &str = "seawall.circuit_breaker.enabled";

/// The flag that turns a host's gateway request events on (default) or off.
pub const TELEMETRY_ENABLED: &str = "seawall.telemetry.enabled";

/// The daemon's flag cache and its handles, one per provider and per output endpoint.
pub struct Flags {
    cache: FlagCache,
    /// The handles; a reload replaces them (new hosts acquired before old ones are let go).
    handles: ArcSwap<Handles>,
}

/// One handle per provider target and per `http` output endpoint.
struct Handles {
    /// (provider name, target name, handle on the target's host), in configuration order.
    providers: Vec<(String, String, FlagHandle)>,
    /// (`http` output endpoint URL, handle on its host), endpoints and alternates alike.
    outputs: Vec<(String, FlagHandle)>,
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
    /// A cache fetching from `config.url` through `pools`, and a handle for each provider's
    /// and each `http` output endpoint's host.
    pub(crate) fn new(
        config: &FeatureFlagsConfig,
        providers: &[ProviderConfig],
        pipelines: &[PipelineConfig],
        metrics: Arc<Metrics>,
        pools: Arc<Pools>,
    ) -> Result<Flags, FlagsError> {
        let fetcher = PooledFetcher::new(&config.url, pools, config.fetch_timeout)?;
        let mut builder = FlagCache::builder(fetcher)
            .ttl(config.ttl)
            .min_ttl(config.min_ttl)
            .max_ttl(config.max_ttl)
            .fetch_timeout(config.fetch_timeout)
            .observer(FetchMetrics(metrics));
        if let Some(grace) = config.idle_grace {
            builder = builder.idle_grace(grace);
        }
        Self::with_cache(builder.build()?, providers, pipelines)
    }

    /// Handles on `cache` for each provider's and output endpoint's host (for tests and
    /// embedders that bring their own fetcher).
    pub fn with_cache(
        cache: FlagCache,
        providers: &[ProviderConfig],
        pipelines: &[PipelineConfig],
    ) -> Result<Flags, FlagsError> {
        let handles = Handles::acquire(&cache, providers, pipelines)?;
        Ok(Flags {
            cache,
            handles: ArcSwap::from_pointee(handles),
        })
    }

    /// Holds handles for the hosts of `providers` and `pipelines` from now on (a reloaded
    /// configuration): a host that stays keeps its cached flags; one no longer named is let
    /// go like any handle dropped.
    pub fn rehandle(
        &self,
        providers: &[ProviderConfig],
        pipelines: &[PipelineConfig],
    ) -> Result<(), FlagsError> {
        let handles = Handles::acquire(&self.cache, providers, pipelines)?;
        self.handles.store(Arc::new(handles));
        Ok(())
    }

    /// Reads each host's `seawall.circuit_breaker.enabled` (waiting for a cold host's first
    /// fetch, at most `fetch_timeout`) and sets the enforcement of the providers' breakers and
    /// of the output endpoints' breakers on that host.
    pub async fn apply(&self, breakers: &Breakers, pipelines: Option<&Pipelines>) {
        let handles = self.handles.load_full();
        for (provider, target, handle) in &handles.providers {
            let enabled = handle.get_bool(CIRCUIT_BREAKER_ENABLED, true).await;
            if let Some(p) = breakers.provider(provider) {
                if let Some(b) = p.target(target) {
                    b.set_metrics_only(!enabled);
                }
            }
        }
        let Some(pipelines) = pipelines else { return };
        let output_breakers = pipelines.breakers();
        for (url, handle) in &handles.outputs {
            let enabled = handle.get_bool(CIRCUIT_BREAKER_ENABLED, true).await;
            for (labels, breaker) in &output_breakers {
                if labels.endpoint == *url {
                    set_enforcement(breaker, enabled);
                }
            }
        }
    }

    /// `seawall.telemetry.enabled` for `provider`'s host (its first target's) as cached right
    /// now, never waiting (a cold host answers the default, `true`, and starts its fetch).
    /// `true` for a provider without a handle.
    pub fn telemetry_enabled(&self, provider: &str) -> bool {
        self.handles
            .load()
            .providers
            .iter()
            .find(|(name, _, _)| name == provider)
            .is_none_or(|(_, _, handle)| handle.get_bool_now(TELEMETRY_ENABLED, true))
    }

    /// Hosts, handle counts, values, ages and errors, for `GET /v1/flags`.
    pub fn snapshot(&self) -> CacheSnapshot {
        self.cache.snapshot()
    }
}

impl Handles {
    fn acquire(
        cache: &FlagCache,
        providers: &[ProviderConfig],
        pipelines: &[PipelineConfig],
    ) -> Result<Handles, FlagsError> {
        let providers = providers
            .iter()
            .flat_map(|p| p.target_list().into_iter().map(move |t| (p, t)))
            .map(|(p, t)| Ok((p.name.clone(), t.name, cache.acquire(t.base_url)?)))
            .collect::<Result<_, seawall_flags::Error>>()?;
        let outputs = pipelines
            .iter()
            .flat_map(|p| &p.outputs)
            .filter(|o| matches!(o.kind, OutputType::Http | OutputType::Otlp))
            .flat_map(|o| o.endpoint.iter().chain(&o.alternates))
            .map(|url| Ok((url.clone(), cache.acquire(url)?)))
            .collect::<Result<_, seawall_flags::Error>>()?;
        Ok(Handles { providers, outputs })
    }
}

/// Applies the flags every `every` until the task is aborted.
pub async fn watch(
    flags: Arc<Flags>,
    breakers: Arc<Breakers>,
    pipelines: Option<Arc<Pipelines>>,
    every: Duration,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        flags.apply(&breakers, pipelines.as_deref()).await;
    }
}
