//! The `cluster:` section: replicas that share breaker state through Redis (or Valkey).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::duration;
use super::schema::DurationText;

/// `cluster:` section. Absent: every replica decides alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Environment variable holding the Redis URL (`redis://host:6379/0`, `rediss://` for
    /// TLS; it may carry a password, hence from the environment). Required.
    pub redis_url_env: String,
    /// Prefix of every key and channel, so several fleets can share one Redis. Default
    /// `seawall`; letters, digits, `-`, `_`, `.`, `:`; at most 64 bytes.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// This replica's name in the fleet. Default: the host name and the process id
    /// (`host-1234`); at most 128 bytes.
    #[serde(default)]
    pub node_id: Option<String>,
    /// How many replicas must trip a breaker (within `quorum_window`) before the whole fleet
    /// opens it. Default 1; in 1..=64. A trip carrying `Retry-After` and an operator's action
    /// apply fleet-wide at once whatever the quorum.
    #[serde(default = "default_quorum")]
    pub trip_quorum: u32,
    /// How long a replica's trip counts toward `trip_quorum`. Default `30s`.
    #[serde(default = "default_quorum_window", with = "duration")]
    #[schemars(with = "DurationText")]
    pub quorum_window: Duration,
    /// How long one replica may hold the fleet's probe round before another takes it over
    /// (the holder renews it while it is alive and has traffic to probe with). Default `5s`.
    #[serde(default = "default_probe_lease", with = "duration")]
    #[schemars(with = "DurationText")]
    pub probe_lease: Duration,
    /// How long start-up waits for Redis to load the fleet's open breakers before serving
    /// anyway (deciding alone until Redis answers). Default `2s`.
    #[serde(default = "default_connect_timeout", with = "duration")]
    #[schemars(with = "DurationText")]
    pub connect_timeout: Duration,
}

fn default_prefix() -> String {
    "seawall".into()
}

fn default_quorum() -> u32 {
    1
}

fn default_quorum_window() -> Duration {
    Duration::from_secs(30)
}

fn default_probe_lease() -> Duration {
    Duration::from_secs(5)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}

/// Longest `cluster.key_prefix`.
pub const MAX_PREFIX: usize = 64;
/// Longest `cluster.node_id`.
pub const MAX_NODE_ID: usize = 128;
/// Largest `cluster.trip_quorum`.
pub const MAX_QUORUM: u64 = 64;
