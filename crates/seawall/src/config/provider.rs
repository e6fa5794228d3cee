//! `providers:` entries: the upstream APIs the gateway protects.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::breaker::BreakerSettings;
use super::duration;
use super::endpoint::EndpointTemplate;
use super::schema::DurationText;

/// The API family of a provider: decides failure classes, error body shape and key header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Anthropic Messages API: failures 429, 500, 503, 504, 529; key in `x-api-key`.
    Anthropic,
    /// OpenAI-compatible API: failures 429 (not `insufficient_quota`), 500, 503, 504.
    Openai,
    /// Any HTTP API: failures 429, 502, 503, 504.
    Generic,
}

impl ProviderKind {
    /// The kind's name as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anthropic => "anthropic",
            Self::Openai => "openai",
            Self::Generic => "generic",
        }
    }
}

/// One upstream provider, served under the route prefix `/{name}/`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name and route prefix: letters, digits, `-`, `_`, `.`. Required. `ingest` is
    /// reserved for the pipeline input route.
    pub name: String,
    /// API family. Required.
    pub kind: ProviderKind,
    /// Absolute `http://` or `https://` URL requests are forwarded to (no query or fragment),
    /// kept as written: the one-target form. Either this or `targets`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the provider API key injected upstream (the
    /// one-target form). Default: none (client credentials pass through when `auth` is off).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Several deployments or keys of this provider, each with its own breakers, key and
    /// connection pool; requests are balanced over those that admit them. Either this or
    /// `base_url`.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// When a call fails or is refused, try it on another target, then on the `fallbacks`.
    #[serde(default)]
    pub failover: FailoverConfig,
    /// Failover attempts may not exceed this share of first attempts (plus a floor).
    #[serde(default)]
    pub retry_budget: RetryBudgetConfig,
    /// Read the provider's rate-limit fields and skip a target whose quota is spent until it
    /// resets. Default `true`.
    #[serde(default = "default_true")]
    pub rate_limit_headers: bool,
    /// After a target's breaker closes again, ramp its share of requests up over this long.
    /// Default `0s` (at once); at most an hour.
    #[serde(default, with = "duration")]
    #[schemars(with = "DurationText")]
    pub slow_start: Duration,
    /// Also key breakers by the `model` of the JSON request body. Default `false`.
    #[serde(default)]
    pub per_model: bool,
    /// Upper bound on the number of breakers (endpoints × models) for this provider.
    /// Default 1000; at least 1.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// HTTP status codes counted as failures, replacing the kind's classes; each in 100..=599.
    /// Default: none (the kind's classes).
    #[serde(default)]
    pub failure_status: Option<Vec<u16>>,
    /// Upstream timeouts.
    #[serde(default)]
    pub timeouts: ProviderTimeouts,
    /// Breaker settings for every breaker of this provider.
    #[serde(default)]
    pub circuit_breaker: BreakerSettings,
    /// Providers of the same kind tried in order when this provider's breaker rejects.
    /// Default: none.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Endpoint templates (`/v1/threads/{id}/runs`), tried in order before the id heuristic
    /// when a request path becomes a breaker key and metric label; no duplicates. Default: none.
    #[serde(default)]
    pub endpoints: Vec<EndpointTemplate>,
    /// How long a closed breaker may go unused before it and every metric series of its
    /// endpoint are removed. When set: at least `circuit_breaker.window`, at most
    /// [`MAX_IDLE_EVICT`]. Default: see [`ProviderConfig::effective_idle_evict`].
    #[serde(default, with = "duration::option")]
    #[schemars(with = "Option<DurationText>")]
    pub idle_evict: Option<Duration>,
}

impl ProviderConfig {
    /// The provider's targets: `targets`, or the one given by `base_url` and `api_key_env`
    /// (named `""`, so its series carry no `target` label). Unnamed targets are named by
    /// their index.
    pub fn target_list(&self) -> Vec<Target<'_>> {
        if self.targets.is_empty() {
            return vec![Target {
                name: String::new(),
                base_url: self.base_url.as_deref().unwrap_or_default(),
                api_key_env: self.api_key_env.as_deref(),
                weight: 1,
                path: None,
            }];
        }
        self.targets
            .iter()
            .enumerate()
            .map(|(i, t)| Target {
                name: t.name.clone().unwrap_or_else(|| i.to_string()),
                base_url: &t.base_url,
                api_key_env: t.api_key_env.as_deref(),
                weight: t.weight,
                path: Some(i),
            })
            .collect()
    }

    /// `idle_evict` if set, else [`DEFAULT_IDLE_EVICT`] or `circuit_breaker.window`, whichever
    /// is longer (eviction must not forget failures the window still counts).
    pub fn effective_idle_evict(&self) -> Duration {
        self.idle_evict
            .unwrap_or(DEFAULT_IDLE_EVICT.max(self.circuit_breaker.window))
    }
}

fn default_max_keys() -> usize {
    1000
}

fn default_true() -> bool {
    true
}

/// One target of a provider (`providers[].targets[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Name in metrics, `/v1/breakers` and `x-seawall-target`: letters, digits, `-`, `_`, `.`;
    /// unique within the provider. Default: its index (`0`, `1`, …).
    #[serde(default)]
    pub name: Option<String>,
    /// Absolute `http://` or `https://` URL. Required.
    pub base_url: String,
    /// Name of the environment variable holding this target's API key. Default: none.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Relative share of requests, 1..=1000. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A target as the gateway uses it, from either form of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// `""` for the one-target form.
    pub name: String,
    /// Where its requests go.
    pub base_url: &'a str,
    /// The variable holding its key, if any.
    pub api_key_env: Option<&'a str>,
    /// Its relative share of requests.
    pub weight: u32,
    /// Its index in `targets`, or `None` for the one-target form (for error paths).
    pub path: Option<usize>,
}

/// When failing over (`providers[].failover`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FailoverConfig {
    /// What moves a call to another target or a fallback: `rejected` (the breaker refused it)
    /// and `failure` (the attempt failed before any byte reached the client). Default both.
    pub on: Vec<FailoverOn>,
    /// Attempts sent upstream per client request, the first included; 1..=10. Default 3.
    pub max_attempts: u32,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            on: vec![FailoverOn::Rejected, FailoverOn::Failure],
            max_attempts: 3,
        }
    }
}

impl FailoverConfig {
    /// Whether `on` lists `what`.
    pub fn on(&self, what: FailoverOn) -> bool {
        self.on.contains(&what)
    }
}

/// A reason to fail over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailoverOn {
    /// The breaker of the target (or provider) refused the call.
    Rejected,
    /// The attempt failed (a failure status, a connect error, a timeout) before any byte of
    /// the answer reached the client.
    Failure,
}

/// How much failover a provider may do (`providers[].retry_budget`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// Failover attempts allowed per first attempt over the last 10 s, in [0, 1]. Default 0.2.
    pub ratio: f64,
    /// Failover attempts allowed a second whatever the traffic, 0..=10 000. Default 5.
    pub min_per_second: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 5,
        }
    }
}

/// `providers[].idle_evict` when unset (and the window is shorter): ten minutes.
pub const DEFAULT_IDLE_EVICT: Duration = Duration::from_secs(600);

/// Longest `providers[].idle_evict`: a day.
pub const MAX_IDLE_EVICT: Duration = Duration::from_secs(24 * 3600);

/// Upstream timeouts of a provider; each must be > 0.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderTimeouts {
    /// TCP + TLS connect. Default `5s`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub connect: Duration,
    /// From request sent to the first response byte. Default `60s`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub first_byte: Duration,
    /// Longest silence between two body chunks (streams included). Default `60s`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub idle: Duration,
    /// A client request's own deadline for getting an answer's head, over every attempt
    /// (failover included). Default `120s`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub total: Duration,
}

impl Default for ProviderTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(120),
        }
    }
}
