//! The breaker's policy: what trips it, how long it stays open, how it probes.

use std::time::Duration;

use crate::clock::Clock;
use crate::state::MAX_PROBES;

/// The longest period a policy may set (`open_timeout_max`, `half_open_timeout`,
/// `retry_after_max`, `slow_call_duration`, a time window): 365 days. Within it an open period,
/// doubled by the largest jitter, still fits a [`Duration`], so no trip can overflow.
pub(crate) const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

/// The span over which failure and slow-call rates are measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last `n` calls (a sliding count window).
    Count(u32),
    /// The last `duration`, split into `buckets` slices that expire one at a time.
    Time {
        /// Total span of the window.
        duration: Duration,
        /// Number of slices; more slices slide more smoothly.
        buckets: u32,
    },
}

/// A breaker's policy. Build one with [`Config::builder`] or start from [`Config::default`].
///
/// Defaults: trip after 5 consecutive failures, or at once on a failure carrying a
/// `Retry-After` hint; no rate-based tripping; open for 30 s, doubling on consecutive trips up
/// to 5 min with up to 10 % extra jitter; open for exactly the hint (up to 10 min) when a trip
/// carries one; 3 half-open probes that must resolve within 60 s.
///
/// ```
/// use seawall_breaker::{Config, Window};
/// use std::time::Duration;
///
/// let config = Config::builder()
///     .failure_threshold(10)
///     .failure_rate_threshold(0.5)
///     .window(Window::Time { duration: Duration::from_secs(10), buckets: 10 })
///     .minimum_calls(20)
///     .open_timeout(Duration::from_secs(30))
///     .half_open_max_calls(5)
///     .build()
///     .expect("a valid policy");
/// assert_eq!(config.half_open_max_calls(), 5);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) failure_threshold: u32,
    pub(crate) failure_rate_threshold: Option<f64>,
    pub(crate) slow_call_rate_threshold: Option<f64>,
    pub(crate) slow_call_duration: Duration,
    pub(crate) window: Window,
    pub(crate) minimum_calls: u32,
    pub(crate) open_timeout: Duration,
    pub(crate) open_timeout_max: Duration,
    pub(crate) jitter: f64,
    pub(crate) half_open_max_calls: u32,
    pub(crate) half_open_timeout: Duration,
    pub(crate) retry_after_max: Duration,
    pub(crate) trip_on_retry_after: bool,
    pub(crate) count_outcomes: bool,
    pub(crate) seed: Option<u64>,
    pub(crate) clock: Clock,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            failure_threshold: 5,
            failure_rate_threshold: None,
            slow_call_rate_threshold: None,
            slow_call_duration: Duration::from_secs(60),
            window: Window::Time {
                duration: Duration::from_secs(10),
                buckets: 10,
            },
            minimum_calls: 20,
            open_timeout: Duration::from_secs(30),
            open_timeout_max: Duration::from_secs(300),
            jitter: 0.1,
            half_open_max_calls: 3,
            half_open_timeout: Duration::from_secs(60),
            retry_after_max: Duration::from_secs(600),
            trip_on_retry_after: true,
            count_outcomes: false,
            seed: None,
            clock: Clock::system(),
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// Consecutive failures that trip the breaker.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }
    /// Failure rate (0..=1) over the window that trips the breaker, if enabled.
    pub fn failure_rate_threshold(&self) -> Option<f64> {
        self.failure_rate_threshold
    }
    /// Slow-call rate (0..=1) over the window that trips the breaker, if enabled.
    pub fn slow_call_rate_threshold(&self) -> Option<f64> {
        self.slow_call_rate_threshold
    }
    /// A call slower than this counts as slow.
    pub fn slow_call_duration(&self) -> Duration {
        self.slow_call_duration
    }
    /// The window over which rates are measured.
    pub fn window(&self) -> Window {
        self.window
    }
    /// Calls the window must hold before a rate can trip the breaker.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }
    /// How long the first trip keeps the breaker open.
    pub fn open_timeout(&self) -> Duration {
        self.open_timeout
    }
    /// The cap of the exponential backoff over consecutive trips.
    pub fn open_timeout_max(&self) -> Duration {
        self.open_timeout_max
    }
    /// Extra random share (0..=1) added to each open period.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
    /// The most probe calls admitted while half-open.
    pub fn half_open_max_calls(&self) -> u32 {
        self.half_open_max_calls
    }
    /// How long half-open probes may stay unresolved before the breaker re-opens.
    pub fn half_open_timeout(&self) -> Duration {
        self.half_open_timeout
    }
    /// The cap on an upstream `Retry-After` hint.
    pub fn retry_after_max(&self) -> Duration {
        self.retry_after_max
    }
    /// Whether one failure with a `Retry-After` hint trips the breaker at once.
    pub fn trip_on_retry_after(&self) -> bool {
        self.trip_on_retry_after
    }
    /// Whether the breaker keeps lifetime `successes` and `failures` in its
    /// [`Counts`](crate::Counts).
    pub fn count_outcomes(&self) -> bool {
        self.count_outcomes
    }
    /// The time source.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn tracks_window(&self) -> bool {
        self.failure_rate_threshold.is_some() || self.slow_call_rate_threshold.is_some()
    }

    pub(crate) fn tracks_slow_calls(&self) -> bool {
        self.slow_call_rate_threshold.is_some()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let rate_ok = |r: Option<f64>| r.is_none_or(|r| r > 0.0 && r <= 1.0);
        if self.failure_threshold == 0 {
            return Err(ConfigError::new("failure_threshold", "must be at least 1"));
        }
        if !rate_ok(self.failure_rate_threshold) {
            return Err(ConfigError::new(
                "failure_rate_threshold",
                "must be in (0, 1]",
            ));
        }
        if !rate_ok(self.slow_call_rate_threshold) {
            return Err(ConfigError::new(
                "slow_call_rate_threshold",
                "must be in (0, 1]",
            ));
        }
        match self.window {
            Window::Count(0) => {
                return Err(ConfigError::new("window", "must hold at least 1 call"))
            }
            Window::Time { duration, buckets } => {
                if buckets == 0 || buckets > 1000 {
                    return Err(ConfigError::new("window_buckets", "must be in 1..=1000"));
                }
                if duration.as_nanos() < buckets as u128 * 1_000_000 {
                    return Err(ConfigError::new(
                        "window",
                        "must give each bucket at least 1 ms",
                    ));
                }
                if duration > MAX_PERIOD {
                    return Err(ConfigError::new("window", "must be at most 365 days"));
                }
            }
            Window::Count(_) => {}
        }
        if self.open_timeout.is_zero() {
            return Err(ConfigError::new(
                "open_timeout",
                "must be greater than zero",
            ));
        }
        if self.open_timeout_max < self.open_timeout {
            return Err(ConfigError::new(
                "open_timeout_max",
                "must not be shorter than open_timeout",
            ));
        }
        let periods = [
            ("open_timeout_max", self.open_timeout_max),
            ("half_open_timeout", self.half_open_timeout),
            ("retry_after_max", self.retry_after_max),
            ("slow_call_duration", self.slow_call_duration),
        ];
        if let Some((field, _)) = periods.iter().find(|(_, d)| *d > MAX_PERIOD) {
            return Err(ConfigError::new(field, "must be at most 365 days"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::new("jitter", "must be in [0, 1]"));
        }
        if self.half_open_max_calls == 0 || self.half_open_max_calls > MAX_PROBES {
            return Err(ConfigError::new(
                "half_open_max_calls",
                "must be in 1..=4095",
            ));
        }
        if self.half_open_timeout.is_zero() {
            return Err(ConfigError::new(
                "half_open_timeout",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// Builds a validated [`Config`].
#[derive(Clone, Debug)]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// Trip after this many consecutive failures (at least 1). Default 5.
    pub fn failure_threshold(mut self, n: u32) -> Self {
        self.0.failure_threshold = n;
        self
    }
    /// Also trip when the failure rate over the window reaches `rate` (0 < rate ≤ 1).
    pub fn failure_rate_threshold(mut self, rate: f64) -> Self {
        self.0.failure_rate_threshold = Some(rate);
        self
    }
    /// Also trip when the share of calls slower than `slow_call_duration` reaches `rate`.
    pub fn slow_call_rate_threshold(mut self, rate: f64) -> Self {
        self.0.slow_call_rate_threshold = Some(rate);
        self
    }
    /// A call slower than this counts as slow. Default 60 s.
    pub fn slow_call_duration(mut self, d: Duration) -> Self {
        self.0.slow_call_duration = d;
        self
    }
    /// The window for rates. Default 10 s in 10 buckets.
    pub fn window(mut self, w: Window) -> Self {
        self.0.window = w;
        self
    }
    /// Calls the window must hold before a rate may trip. Default 20.
    pub fn minimum_calls(mut self, n: u32) -> Self {
        self.0.minimum_calls = n;
        self
    }
    /// The first open period. Default 30 s.
    pub fn open_timeout(mut self, d: Duration) -> Self {
        self.0.open_timeout = d;
        self
    }
    /// The longest open period after repeated trips. Default 5 min.
    pub fn open_timeout_max(mut self, d: Duration) -> Self {
        self.0.open_timeout_max = d;
        self
    }
    /// Random extra share added to each open period, in [0, 1]. Default 0.1.
    pub fn jitter(mut self, j: f64) -> Self {
        self.0.jitter = j;
        self
    }
    /// Probes admitted while half-open (1..=4095). Default 3.
    pub fn half_open_max_calls(mut self, n: u32) -> Self {
        self.0.half_open_max_calls = n;
        self
    }
    /// How long probes may stay unresolved. Default 60 s.
    pub fn half_open_timeout(mut self, d: Duration) -> Self {
        self.0.half_open_timeout = d;
        self
    }
    /// Cap on upstream `Retry-After` hints. Default 10 min.
    pub fn retry_after_max(mut self, d: Duration) -> Self {
        self.0.retry_after_max = d;
        self
    }
    /// Whether one failure carrying a `Retry-After` hint trips the breaker at once (the
    /// upstream said "stop", as a 429 does), whatever the thresholds say. Default `true`.
    /// With `false`, such a failure counts like any other, and the hint only sets how long
    /// the breaker stays open once it trips.
    pub fn trip_on_retry_after(mut self, trip: bool) -> Self {
        self.0.trip_on_retry_after = trip;
        self
    }
    /// Keep lifetime `successes` and `failures` in [`Counts`](crate::Counts), for dashboards
    /// and request rates. Default `false`: counting costs every verdict an atomic add (a few
    /// nanoseconds on the closed-success path, which otherwise makes two loads); without it
    /// both totals stay 0.
    pub fn count_outcomes(mut self, on: bool) -> Self {
        self.0.count_outcomes = on;
        self
    }
    /// Seed for the jitter, for reproducible open periods.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = Some(seed);
        self
    }
    /// The time source. Default [`Clock::system`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.0.clock = clock;
        self
    }
    /// Checks the policy and returns it.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.0.validate()?;
        Ok(self.0)
    }
}

/// A policy value that cannot work, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid breaker setting `{field}`: {problem}")]
pub struct ConfigError {
    field: &'static str,
    problem: &'static str,
}

impl ConfigError {
    fn new(field: &'static str, problem: &'static str) -> Self {
        ConfigError { field, problem }
    }

    /// The setting at fault, as named in configuration files.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &'static str {
        self.problem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_periods_survive_a_jittered_trip() {
        let cb = crate::CircuitBreaker::new(
            Config::builder()
                .failure_threshold(1)
                .open_timeout(MAX_PERIOD)
                .open_timeout_max(MAX_PERIOD)
                .jitter(1.0)
                .retry_after_max(MAX_PERIOD)
                .half_open_timeout(MAX_PERIOD)
                .build()
                .unwrap(),
        );
        cb.try_acquire().unwrap().failure();
        assert_eq!(cb.state(), crate::State::Open);
        let wait = cb.try_acquire().unwrap_err().retry_after();
        assert!(wait >= MAX_PERIOD && wait <= MAX_PERIOD * 2, "{wait:?}");
    }

    #[test]
    fn default_config_is_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn impossible_values_name_their_field() {
        let cases = [
            (Config::builder().failure_threshold(0), "failure_threshold"),
            (
                Config::builder().failure_rate_threshold(1.5),
                "failure_rate_threshold",
            ),
            (
                Config::builder().slow_call_rate_threshold(0.0),
                "slow_call_rate_threshold",
            ),
            (Config::builder().window(Window::Count(0)), "window"),
            (
                Config::builder().half_open_max_calls(0),
                "half_open_max_calls",
            ),
            (
                Config::builder().half_open_max_calls(5000),
                "half_open_max_calls",
            ),
            (
                Config::builder().open_timeout(Duration::ZERO),
                "open_timeout",
            ),
            (
                Config::builder().open_timeout(Duration::from_secs(600)),
                "open_timeout_max",
            ),
            (Config::builder().jitter(-0.1), "jitter"),
            (
                Config::builder()
                    .open_timeout(MAX_PERIOD * 2)
                    .open_timeout_max(MAX_PERIOD * 2),
                "open_timeout_max",
            ),
            (
                Config::builder().half_open_timeout(Duration::MAX),
                "half_open_timeout",
            ),
            (
                Config::builder().retry_after_max(MAX_PERIOD + Duration::from_secs(1)),
                "retry_after_max",
            ),
            (
                Config::builder().slow_call_duration(Duration::MAX),
                "slow_call_duration",
            ),
            (
                Config::builder().window(Window::Time {
                    duration: Duration::MAX,
                    buckets: 10,
                }),
                "window",
            ),
        ];
        for (builder, field) in cases {
            assert_eq!(builder.build().unwrap_err().field(), field);
        }
    }
}
