//! One provider as the gateway uses it: its targets and how to choose among them, which
//! statuses are failures, where and how much to fail over.

use std::borrow::Cow;
use std::sync::Arc;

use http::StatusCode;
use tokio::time::Duration;

use super::budget::RetryBudget;
use super::metrics::{Families, ProviderMetrics};
use super::picker::Picker;
use super::target::Target;
use super::{path, GatewayError};
use crate::breakers::ProviderBreakers;
use crate::config::{
    EndpointTemplate, FailoverConfig, ProviderConfig, ProviderKind, ProviderTimeouts, Secret,
    Secrets,
};
use crate::http1::outbound::Pools;

/// A configured provider, prepared for forwarding.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
    /// Where requests go: one target for a provider given by `base_url`.
    pub(crate) targets: Vec<Target>,
    /// Chooses among the targets.
    pub(crate) picker: Arc<Picker>,
    /// Statuses counted as breaker failures.
    pub(crate) failure_status: Vec<u16>,
    pub(crate) timeouts: ProviderTimeouts,
    pub(crate) per_model: bool,
    pub(crate) fallbacks: Vec<String>,
    pub(crate) failover: FailoverConfig,
    /// How much failover it may do.
    pub(crate) budget: RetryBudget,
    /// Client disconnects, WebSocket tunnels, failover of this provider.
    pub(crate) metrics: ProviderMetrics,
    /// `endpoints`: templates tried before the id heuristic when labelling an endpoint.
    endpoints: Vec<EndpointTemplate>,
    /// Its breakers, one set per target.
    pub(crate) breakers: Arc<ProviderBreakers>,
    /// What it was made from, so a reload can tell whether it may stay.
    source: (ProviderConfig, Vec<Option<Secret>>),
}

impl Upstream {
    /// Prepares `config`, with its targets' keys from `secrets`.
    pub(crate) fn new(
        config: &ProviderConfig,
        secrets: &Secrets,
        pools: &Pools,
        families: &Families,
        breakers: Arc<ProviderBreakers>,
    ) -> Result<Self, GatewayError> {
        let keys = keys_of(config, secrets);
        let targets = config
            .target_list()
            .iter()
            .zip(&keys)
            .map(|(t, key)| Target::new(config, t, key.as_ref(), pools, families))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Upstream {
            name: config.name.clone(),
            kind: config.kind,
            picker: Arc::new(Picker::new(targets.len(), config.slow_start)),
            targets,
            failure_status: config
                .failure_status
                .clone()
                .unwrap_or_else(|| default_failure_status(config.kind).to_vec()),
            timeouts: config.timeouts.clone(),
            per_model: config.per_model,
            fallbacks: config.fallbacks.clone(),
            failover: config.failover.clone(),
            budget: RetryBudget::new(
                config.retry_budget.ratio,
                config.retry_budget.min_per_second,
            ),
            metrics: families.of(&config.name),
            endpoints: config.endpoints.clone(),
            breakers,
            source: (config.clone(), keys),
        })
    }

    /// Whether a reload may keep this upstream (its target state, picker and budget) for
    /// `config`: nothing but breaker settings changed, its keys did not, and the breakers
    /// are the same set.
    pub(crate) fn serves(
        &self,
        config: &ProviderConfig,
        secrets: &Secrets,
        breakers: &Arc<ProviderBreakers>,
    ) -> bool {
        let (was, keys) = &self.source;
        let mut now = config.clone();
        now.circuit_breaker = was.circuit_breaker.clone();
        now.max_keys = was.max_keys;
        now.idle_evict = was.idle_evict;
        now == *was && *keys == keys_of(config, secrets) && Arc::ptr_eq(&self.breakers, breakers)
    }

    /// The endpoint label of the normal request `path`: this provider's breaker key and the
    /// `endpoint` of its metric series (see [`path::endpoint`]).
    pub(crate) fn endpoint<'a>(&'a self, path: &'a str) -> Cow<'a, str> {
        path::endpoint(path, &self.endpoints)
    }

    /// Whether a response with `status` counts as a breaker failure.
    pub(crate) fn is_failure(&self, status: StatusCode) -> bool {
        self.failure_status.contains(&status.as_u16())
    }

    /// Whether a failed call may be tried elsewhere: another target or a fallback exists.
    pub(crate) fn may_fail_over(&self) -> bool {
        self.targets.len() > 1 || !self.fallbacks.is_empty()
    }

    /// How long one attempt may wait for an answer's head, given what is left of the
    /// request's `total` deadline.
    pub(crate) fn first_byte_within(&self, left: Duration) -> Duration {
        self.timeouts.first_byte.min(left)
    }
}

/// The keys of `config`'s targets, in order.
fn keys_of(config: &ProviderConfig, secrets: &Secrets) -> Vec<Option<Secret>> {
    config
        .target_list()
        .iter()
        .map(|t| {
            secrets
                .provider_keys
                .get(&(config.name.clone(), t.name.clone()))
                .cloned()
        })
        .collect()
}

/// The statuses each kind counts as failures (the README's provider table).
fn default_failure_status(kind: ProviderKind) -> &'static [u16] {
    match kind {
        ProviderKind::Anthropic => &[429, 500, 503, 504, 529],
        ProviderKind::Openai => &[429, 500, 503, 504],
        ProviderKind::Generic => &[429, 502, 503, 504],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn upstream(base: &str, kind: &str) -> Upstream {
        let yaml = format!("providers: [{{ name: p, kind: {kind}, base_url: '{base}' }}]");
        of(&yaml)
    }

    /// The upstream of the first provider of `yaml`.
    fn of(yaml: &str) -> Upstream {
        let pools = Pools::new().unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let families = Families::register(&metrics);
        let config = parse(yaml).unwrap();
        let p = &config.providers[0];
        let clock = crate::breakers::tokio_clock();
        let breakers = Arc::new(ProviderBreakers::new(p, clock, metrics).unwrap());
        Upstream::new(p, &Secrets::default(), &pools, &families, breakers).unwrap()
    }

    #[test]
    fn joins_base_path_endpoint_and_query() {
        let u = upstream("https://api.example.com/openai/", "openai");
        assert_eq!(
            u.targets[0]
                .target("/v1/chat/completions", Some("a=1"))
                .concat(),
            "/openai/v1/chat/completions?a=1"
        );
        let u = upstream("http://127.0.0.1:8000", "generic");
        assert_eq!(u.targets[0].target("/x", None).concat(), "/x");
    }

    #[test]
    fn endpoints_follow_the_providers_own_templates() {
        let yaml = "providers: [{ name: p, kind: generic, base_url: 'http://127.0.0.1:1', \
                    endpoints: ['/v1/items/{item}'] }]";
        let u = of(yaml);
        assert_eq!(u.endpoint("/v1/items/short/"), "/v1/items/{item}");
        assert_eq!(u.endpoint("/v1/other/123"), "/v1/other/{id}");
        assert_eq!(
            upstream("http://127.0.0.1:1", "generic").endpoint("/v1/items/short"),
            "/v1/items/short"
        );
    }

    #[test]
    fn failure_classes_follow_the_kind() {
        let a = upstream("https://a.example", "anthropic");
        assert!(a.is_failure(StatusCode::from_u16(529).unwrap()));
        assert!(!a.is_failure(StatusCode::BAD_GATEWAY));
        let g = upstream("https://g.example", "generic");
        assert!(g.is_failure(StatusCode::BAD_GATEWAY));
        assert!(!g.is_failure(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
