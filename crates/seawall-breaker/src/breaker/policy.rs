//! The breaker's policy and what is derived from it (the rolling window, slow-call timing),
//! replaced whole when the breaker is reconfigured: state, counters, listeners and clock stay.

use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::*;

/// A policy with its derived parts.
pub(crate) struct Policy {
    pub(crate) config: Config,
    /// Outcomes over the rolling window, only when a rate threshold is configured.
    pub(crate) window: Option<Arc<Rolling>>,
    /// Whether permits time their calls (a slow-call threshold is configured).
    pub(crate) track_slow: bool,
    pub(crate) slow_call_nanos: u64,
}

impl Policy {
    /// The policy of `config`, keeping `window` (and what it counted) when the new policy
    /// measures over the same window.
    pub(crate) fn new(config: Config, old: Option<&Policy>) -> Policy {
        let window = config.tracks_window().then(|| {
            old.and_then(|o| {
                o.window
                    .clone()
                    .filter(|_| o.config.window == config.window)
            })
            .unwrap_or_else(|| Arc::new(Rolling::new(config.window)))
        });
        Policy {
            track_slow: config.tracks_slow_calls(),
            slow_call_nanos: saturating_nanos(config.slow_call_duration),
            window,
            config,
        }
    }

    /// Whether a closed call's outcome changes only the failure streak.
    pub(crate) fn is_simple(&self) -> bool {
        self.window.is_none() && !self.track_slow
    }
}

/// Where the current policy is: read lock-free by every slow path, replaced by
/// [`CircuitBreaker::reconfigure`].
pub(crate) struct PolicyCell(ArcSwap<Policy>);

impl PolicyCell {
    pub(crate) fn new(policy: Policy) -> Self {
        PolicyCell(ArcSwap::from_pointee(policy))
    }
}

impl Inner {
    /// The current policy.
    #[inline]
    pub(crate) fn policy(&self) -> Guard<Arc<Policy>> {
        self.policy.0.load()
    }

    /// Copies what the admission and success paths read of the policy into their flags.
    pub(super) fn publish_policy_flags(&self) {
        let policy = self.policy();
        self.simple.store(policy.is_simple(), Release);
        self.timed.store(policy.track_slow, Release);
        self.counted.store(policy.config.count_outcomes, Release);
    }
}

impl CircuitBreaker {
    /// Applies a new policy to this breaker, keeping its state, counters, listeners and
    /// clock (the clock of `config` is ignored). The current open period or probe round runs
    /// on; the new thresholds, periods and probe counts apply from the next outcome or
    /// transition. Failure and slow-call rates keep what they counted when the window is the
    /// same, and start empty when it changed.
    ///
    /// ```
    /// use seawall_breaker::{CircuitBreaker, Config};
    ///
    /// let cb = CircuitBreaker::new(Config::builder().failure_threshold(5).build().unwrap());
    /// cb.try_acquire().unwrap().failure();
    /// cb.reconfigure(Config::builder().failure_threshold(2).build().unwrap());
    /// cb.try_acquire().unwrap().failure();
    /// assert_eq!(cb.state(), seawall_breaker::State::Open, "the second failure in a row of two");
    /// ```
    pub fn reconfigure(&self, mut config: Config) {
        let inner = &*self.inner;
        let _ctl = inner.lock();
        config.clock = inner.clock.clone();
        let old = inner.policy();
        let policy = Policy::new(config, Some(&old));
        inner.policy.0.store(Arc::new(policy));
        inner.publish_policy_flags();
    }
}

#[cfg(test)]
mod tests {
    use crate::{CircuitBreaker, Clock, Config, ManualClock, Registry, State, Window};
    use std::time::Duration;

    fn config(clock: &ManualClock) -> crate::ConfigBuilder {
        Config::builder()
            .jitter(0.0)
            .open_timeout(Duration::from_secs(10))
            .clock(Clock::manual(clock))
    }

    #[test]
    fn an_open_breaker_stays_open_and_the_new_periods_apply_from_the_next_trip() {
        let clock = ManualClock::new();
        let cb = CircuitBreaker::new(config(&clock).failure_threshold(1).build().unwrap());
        cb.try_acquire().unwrap().failure();
        // Another clock in the new policy is ignored: the breaker keeps its own.
        let other = ManualClock::new();
        other.advance(Duration::from_secs(1000));
        let shorter = Config::builder()
            .failure_threshold(1)
            .jitter(0.0)
            .open_timeout(Duration::from_secs(2))
            .half_open_max_calls(1)
            .clock(Clock::manual(&other))
            .build()
            .unwrap();
        cb.reconfigure(shorter);
        assert_eq!(cb.state(), State::Open, "the current open period runs on");
        clock.advance(Duration::from_secs(10));
        cb.try_acquire().unwrap().failure();
        // The second trip in a row: the new 2 s, doubled by the backoff.
        clock.advance(Duration::from_millis(3900));
        assert_eq!(cb.state(), State::Open);
        clock.advance(Duration::from_millis(200));
        assert_eq!(cb.state(), State::HalfOpen);
    }

    #[test]
    fn the_window_is_kept_when_unchanged_and_restarted_when_changed() {
        let clock = ManualClock::new();
        let rate = |window: Window| {
            config(&clock)
                .failure_threshold(100)
                .failure_rate_threshold(0.5)
                .minimum_calls(4)
                .window(window)
                .build()
                .unwrap()
        };
        let ten = Window::Count(10);
        let cb = CircuitBreaker::new(rate(ten));
        for _ in 0..3 {
            cb.try_acquire().unwrap().failure();
        }
        cb.reconfigure(rate(ten));
        assert_eq!(
            cb.snapshot().counts.window_failures,
            3,
            "same window: counts kept"
        );
        cb.reconfigure(rate(Window::Count(20)));
        assert_eq!(
            cb.snapshot().counts.window_calls,
            0,
            "another window starts empty"
        );
        cb.reconfigure(config(&clock).failure_threshold(4).build().unwrap());
        cb.try_acquire().unwrap().failure();
        assert_eq!(
            cb.state(),
            State::Open,
            "no window now: the streak, kept, decides (3 + 1)"
        );
    }

    #[test]
    fn a_registry_reconfigures_its_breakers_and_makes_new_ones_from_the_new_template() {
        let clock = ManualClock::new();
        let registry: Registry<String> =
            Registry::new(config(&clock).failure_threshold(5).build().unwrap());
        let old = registry.get("a").unwrap();
        registry.reconfigure(config(&clock).failure_threshold(1).build().unwrap());
        old.try_acquire().unwrap().failure();
        assert_eq!(old.state(), State::Open);
        let new = registry.get("b").unwrap();
        new.try_acquire().unwrap().failure();
        assert_eq!(new.state(), State::Open);
        assert_eq!(registry.template().failure_threshold(), 1);
    }
}
