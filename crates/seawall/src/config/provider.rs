//! `providers:` entries: the upstream APIs the gateway protects.

use std::time::Duration;

use serde::Deserialize;

use super::breaker::BreakerSettings;
use super::duration;
use super::endpoint::EndpointTemplate;

/// The API family of a provider: decides failure classes, error body shape and key header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name and route prefix: letters, digits, `-`, `_`, `.`. Required. `ingest` is
    /// reserved for the pipeline input route.
    pub name: String,
    /// API family. Required.
    pub kind: ProviderKind,
    /// Absolute `http://` or `https://` URL requests are forwarded to (no query or fragment),
    /// kept as written. Required.
    pub base_url: String,
    /// Name of the environment variable holding the provider API key injected upstream.
    /// Default: none (client credentials pass through when `auth` is off).
    #[serde(default)]
    pub api_key_env: Option<String>,
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
    pub idle_evict: Option<Duration>,
}

impl ProviderConfig {
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

/// `providers[].idle_evict` when unset (and the window is shorter): ten minutes.
pub const DEFAULT_IDLE_EVICT: Duration = Duration::from_secs(600);

/// Longest `providers[].idle_evict`: a day.
pub const MAX_IDLE_EVICT: Duration = Duration::from_secs(24 * 3600);

/// Upstream timeouts of a provider; each must be > 0.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderTimeouts {
    /// TCP + TLS connect. Default `5s`.
    #[serde(with = "duration")]
    pub connect: Duration,
    /// From request sent to the first response byte. Default `60s`.
    #[serde(with = "duration")]
    pub first_byte: Duration,
    /// Longest silence between two body chunks (streams included). Default `60s`.
    #[serde(with = "duration")]
    pub idle: Duration,
}

impl Default for ProviderTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}
