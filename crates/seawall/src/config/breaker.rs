//! `BreakerSettings`: the circuit-breaker block shared by providers (`circuit_breaker`) and
//! pipeline outputs (`resilience.circuit_breaker`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use super::duration;
use super::schema::DurationText;

/// Default `open_timeout_max` when the key is absent (raised to `open_timeout` if that is longer).
pub const DEFAULT_OPEN_TIMEOUT_MAX: Duration = Duration::from_secs(5 * 60);

/// Circuit-breaker settings. Every key is optional; the defaults below apply to providers and
/// outputs alike. Trip conditions: `failure_threshold` always applies; the rate-based ones only
/// when their threshold is set.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// `false` → the breaker never rejects (it still counts). Default `true`.
    pub enabled: bool,
    /// Consecutive failures that open the breaker. Default 5; must be at least 1.
    pub failure_threshold: u32,
    /// Failure share over `window` (after `minimum_calls`) that opens the breaker, in (0, 1].
    /// Default: none (rate-based tripping off).
    pub failure_rate_threshold: Option<f64>,
    /// Length of the rolling window for the rate thresholds. Default `10s`; must be > 0.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub window: Duration,
    /// Number of buckets the window is divided into. Default 10; at least 1 and at most one
    /// bucket per millisecond of `window`.
    pub window_buckets: u32,
    /// Calls in the window before a rate threshold is evaluated. Default 20; at least 1.
    pub minimum_calls: u32,
    /// Share of calls slower than `slow_call_duration` that opens the breaker, in (0, 1].
    /// Default: none (slow-call tripping off).
    pub slow_call_rate_threshold: Option<f64>,
    /// A call taking at least this long counts as slow. Default `30s`; must be > 0.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub slow_call_duration: Duration,
    /// How long the breaker stays open after its first trip. Default `30s`; must be > 0.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub open_timeout: Duration,
    /// Cap of the exponential back-off of consecutive trips. Default: `5m`, or `open_timeout`
    /// when that is longer; see [`BreakerSettings::effective_open_timeout_max`]. Must not be
    /// shorter than `open_timeout`.
    #[serde(with = "duration::option")]
    #[schemars(with = "Option<DurationText>")]
    pub open_timeout_max: Option<Duration>,
    /// Random spread applied to open durations, as a fraction in [0, 1]. Default 0.1.
    pub jitter: f64,
    /// Probe calls admitted while half-open. Default 3; must be at least 1.
    pub half_open_max_calls: u32,
    /// Probes unresolved after this long re-open the breaker. Default `90s`; must be > 0.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub half_open_timeout: Duration,
    /// Period of the timer that moves open breakers to half-open. Default `1s`; must be > 0.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub check_interval: Duration,
    /// Upper bound on an upstream `Retry-After` hint, which sets how long a trip carrying one
    /// stays open. Default `10m`; must be > 0.
    #[serde(with = "duration")]
    #[schemars(with = "DurationText")]
    pub retry_after_max: Duration,
    /// Whether one failure carrying `Retry-After` (a 429 usually does) trips the breaker at
    /// once, whatever `failure_threshold` says. Default `true`.
    pub trip_on_retry_after: bool,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            failure_rate_threshold: None,
            window: Duration::from_secs(10),
            window_buckets: 10,
            minimum_calls: 20,
            slow_call_rate_threshold: None,
            slow_call_duration: Duration::from_secs(30),
            open_timeout: Duration::from_secs(30),
            open_timeout_max: None,
            jitter: 0.1,
            half_open_max_calls: 3,
            half_open_timeout: Duration::from_secs(90),
            check_interval: Duration::from_secs(1),
            retry_after_max: Duration::from_secs(10 * 60),
            trip_on_retry_after: true,
        }
    }
}

impl BreakerSettings {
    /// The back-off cap in force: `open_timeout_max` if set, else the longer of
    /// [`DEFAULT_OPEN_TIMEOUT_MAX`] and `open_timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut b = seawall::config::BreakerSettings::default();
    /// assert_eq!(b.effective_open_timeout_max(), Duration::from_secs(300));
    /// b.open_timeout = Duration::from_secs(600);
    /// assert_eq!(b.effective_open_timeout_max(), Duration::from_secs(600));
    /// ```
    pub fn effective_open_timeout_max(&self) -> Duration {
        self.open_timeout_max
            .unwrap_or_else(|| DEFAULT_OPEN_TIMEOUT_MAX.max(self.open_timeout))
    }
}
