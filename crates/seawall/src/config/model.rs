//! The root `Config` and its small sections (`server`, `admin`, `auth`, `feature_flags`,
//! `telemetry`, `global_health`).

use std::net::SocketAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use super::error::Position;
use super::pipeline::{default_max_body, PipelineConfig};
use super::provider::ProviderConfig;
use super::schema::{DurationText, ListenAddress, SizeText};
use super::spans::SpanMap;
use super::tls::TlsConfig;
use super::{duration, size};

/// The whole daemon configuration, as loaded from one YAML file and validated.
///
/// Obtain it with [`parse`](super::parse) or [`load`](super::load); secrets are resolved
/// separately with [`Config::resolve_secrets`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Gateway listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// Admin listener (`/metrics`, `/v1/breakers`, …).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Client authentication. `None` (section absent): no client auth, which is only allowed
    /// when `server.listen` is a loopback address.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Upstream providers, names unique. Default: none.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Per-host feature flags. `None`: no flags are fetched, every flag keeps its default.
    #[serde(default)]
    pub feature_flags: Option<FeatureFlagsConfig>,
    /// Request telemetry. `None`: the gateway emits no request events.
    #[serde(default)]
    pub telemetry: Option<TelemetryConfig>,
    /// Event pipelines, names unique. Default: none.
    #[serde(default)]
    pub pipelines: Vec<PipelineConfig>,
    /// Load shedding on memory or queue pressure.
    #[serde(default)]
    pub global_health: GlobalHealthConfig,
    /// Breaker state shared by replicas through Redis. `None`: each replica decides alone.
    #[serde(default)]
    pub cluster: Option<super::ClusterConfig>,
    /// Positions of the fields in the source, for errors raised after loading.
    #[serde(skip)]
    pub(crate) spans: SpanMap,
    /// The file it was loaded from (by [`load`](super::load)), which a reload reads again.
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
}

impl Config {
    /// The `line:column` of the field at `path` (for example `server.listen` or
    /// `providers[1].base_url`), or of its nearest ancestor present in the file.
    ///
    /// Lets later stages (binding a listener, opening a file) report positioned errors.
    pub fn position_of(&self, path: &str) -> Option<Position> {
        self.spans.nearest_position(path)
    }
}

/// Gateway listener settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket address (`IP:PORT`) of the gateway. Default `127.0.0.1:8080`.
    #[serde(deserialize_with = "socket_addr")]
    #[schemars(with = "ListenAddress")]
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes. Default `10MB` (10 MiB); at least 1.
    #[serde(with = "size")]
    #[schemars(with = "SizeText")]
    pub max_body: u64,
    /// Time in-flight requests get to finish on shutdown. Default `30s`; `0s` stops at once.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub shutdown_grace: Duration,
    /// Concurrent client connections. Default 10 000; at least 1.
    pub max_connections: usize,
    /// Threads serving the gateway listener, each with its own runtime and listening
    /// socket (like nginx's worker processes). Default: one per CPU. `0` serves it on the
    /// main runtime's shared, work-stealing threads instead (`TOKIO_WORKER_THREADS`).
    pub workers: usize,
    /// How long a client connection may wait at each step.
    pub timeouts: ServerTimeouts,
    /// HTTP/2 (h2c) settings.
    pub h2: H2Config,
    /// Serve the gateway over TLS (ALPN `h2`, `http/1.1`). Default: none, plaintext.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body: default_max_body(),
            shutdown_grace: Duration::from_secs(30),
            max_connections: 10_000,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeouts: ServerTimeouts::default(),
            h2: H2Config::default(),
            tls: None,
        }
    }
}

/// The gateway listener's client timeouts (HTTP/1 and h2c alike); each must be > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServerTimeouts {
    /// From the first byte of a request head to its end (slow-loris guard). Default `30s`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub request_head: Duration,
    /// Longest pause in a request body while it is read; the client gets `408` and the
    /// connection closes. Default `30s`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub request_body_idle: Duration,
    /// Longest pause in writing a response to a client that does not read it; the
    /// connection closes. Default `30s`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub response_write_idle: Duration,
    /// Longest wait for the next request on an idle connection (HTTP/1 keep-alive, an h2c
    /// connection with no open stream). Default `60s`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub keepalive_idle: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        ServerTimeouts {
            request_head: Duration::from_secs(30),
            request_body_idle: Duration::from_secs(30),
            response_write_idle: Duration::from_secs(30),
            keepalive_idle: Duration::from_secs(60),
        }
    }
}

/// HTTP/2 (h2c) settings of the gateway listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct H2Config {
    /// Streams one connection may have open at once. Default 100; at least 1.
    pub max_concurrent_streams: u32,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config {
            max_concurrent_streams: 100,
        }
    }
}

/// Admin listener settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Socket address (`IP:PORT`) of the admin API. Default `127.0.0.1:9090`.
    #[serde(deserialize_with = "socket_addr")]
    #[schemars(with = "ListenAddress")]
    pub listen: SocketAddr,
    /// Name of the environment variable holding the bearer token required by
    /// `POST /v1/breakers/...`. Default: none, and then those endpoints are refused.
    pub token_env: Option<String>,
    /// Serve the admin API over TLS. Default: none, plaintext; `server.tls` is not inherited.
    pub tls: Option<TlsConfig>,
    /// The counters kept for `GET /v1/history` and the dashboard's charts.
    pub history: HistoryConfig,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token_env: None,
            tls: None,
            history: HistoryConfig::default(),
        }
    }
}

/// How the daemon samples its counters for `GET /v1/history`: one sample every `period`,
/// `window / period` samples kept per series (at most 1440).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Time between samples. Default `5s`; from `100ms` to `1h`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub period: Duration,
    /// How far back the history reaches. Default `15m`; at least `period`.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub window: Duration,
}

impl HistoryConfig {
    /// Samples kept per series: `window / period`, rounded up.
    pub fn points(&self) -> usize {
        let period = self.period.as_nanos().max(1);
        usize::try_from(self.window.as_nanos().div_ceil(period)).unwrap_or(usize::MAX)
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            period: Duration::from_secs(5),
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// How clients authenticate to the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Bearer / `x-api-key` tokens read from the variables in `tokens_env` (the default).
    #[default]
    Tokens,
    /// Explicitly no client authentication, allowed on any listen address.
    None,
}

/// `auth:` section: `{ tokens_env: [VAR, …] }` or `{ mode: none }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Default `tokens`.
    pub mode: AuthMode,
    /// Names of environment variables each holding one accepted client token. Required
    /// (non-empty) with `mode: tokens`, forbidden with `mode: none`.
    pub tokens_env: Vec<String>,
}

/// `feature_flags:` section (per-host flag cache).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureFlagsConfig {
    /// `http(s)` URL template; `{host}` is replaced by the upstream `host[:port]`. Required.
    pub url: String,
    /// Cache lifetime when the server sends no `ttl_seconds`. Default `15m`; within
    /// [`min_ttl`, `max_ttl`].
    #[serde(default = "default_ttl", with = "duration")]
    #[schemars(with = "DurationText")]
    pub ttl: Duration,
    /// Lower clamp of the server's `ttl_seconds`. Default `1m`; > 0.
    #[serde(default = "default_min_ttl", with = "duration")]
    #[schemars(with = "DurationText")]
    pub min_ttl: Duration,
    /// Upper clamp of the server's `ttl_seconds`. Default `1h`; not below `min_ttl`.
    #[serde(default = "default_max_ttl", with = "duration")]
    #[schemars(with = "DurationText")]
    pub max_ttl: Duration,
    /// Bound on one flag fetch. Default `5s`; > 0.
    #[serde(default = "default_fetch_timeout", with = "duration")]
    #[schemars(with = "DurationText")]
    pub fetch_timeout: Duration,
    /// How long a host's entry outlives its last handle. Default: `ttl`; see
    /// [`FeatureFlagsConfig::effective_idle_grace`].
    #[serde(default, with = "duration::option")]
    #[schemars(with = "Option<DurationText>")]
    pub idle_grace: Option<Duration>,
}

fn default_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_min_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_max_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_fetch_timeout() -> Duration {
    Duration::from_secs(5)
}

impl FeatureFlagsConfig {
    /// `idle_grace` if set, else `ttl`.
    pub fn effective_idle_grace(&self) -> Duration {
        self.idle_grace.unwrap_or(self.ttl)
    }
}

/// `telemetry:` section: where the gateway sends one event per proxied request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Name of a configured pipeline. Required.
    pub pipeline: String,
}

/// `global_health:` section: shed new work while the process is under pressure.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalHealthConfig {
    /// Master switch. Default `true`.
    pub enabled: bool,
    /// Shed when resident memory exceeds `memory_threshold`. Default `false` (the right
    /// threshold depends on the host).
    pub memory_check_enabled: bool,
    /// Resident memory limit in bytes. Default `1024MB` (1 GiB); at least 1.
    #[serde(with = "size")]
    #[schemars(with = "SizeText")]
    pub memory_threshold: u64,
    /// Shed when any output queue is fuller than `queue_threshold_percent`. Default `true`.
    pub queue_check_enabled: bool,
    /// Queue fill level, in percent of capacity, that sheds. Default 80; in 1..=100.
    pub queue_threshold_percent: u32,
    /// How often the checks run. Default `5s`; > 0.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub check_interval: Duration,
    /// Hysteresis: healthy again once usage falls below this percent of the threshold.
    /// Default 90; in 1..=100.
    pub recover_percent: u32,
}

impl Default for GlobalHealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            memory_check_enabled: false,
            memory_threshold: 1 << 30,
            queue_check_enabled: true,
            queue_threshold_percent: 80,
            check_interval: Duration::from_secs(5),
            recover_percent: 90,
        }
    }
}

fn socket_addr<'de, D: Deserializer<'de>>(de: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(de)?;
    text.trim().parse().map_err(|_| {
        D::Error::custom(format!(
            "invalid listen address {text:?}: expected IP:PORT such as `127.0.0.1:8080` or `[::1]:8080`"
        ))
    })
}
