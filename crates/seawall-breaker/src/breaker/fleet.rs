//! Decisions made elsewhere: replicas that share breaker state (Seawall's `cluster`) apply
//! another replica's trip, recovery or operator action here, and hold this replica's probes
//! while another one probes for the whole fleet. None of this touches the admission path.

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use super::*;

impl CircuitBreaker {
    /// Opens now for exactly `open_for` (no backoff, no jitter), for a decision made elsewhere
    /// (`reason` is then usually [`Reason::Remote`]). An open breaker stays open until the
    /// later of its own deadline and this one, without a new transition. No effect when
    /// forced open or disabled.
    ///
    /// ```
    /// use seawall_breaker::{CircuitBreaker, Config, Reason, State};
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::new(Config::default());
    /// cb.open_for(Duration::from_secs(5), Reason::Remote);
    /// assert_eq!(cb.state(), State::Open);
    /// assert!(cb.try_acquire().unwrap_err().retry_after() <= Duration::from_secs(5));
    /// ```
    pub fn open_for(&self, open_for: Duration, reason: Reason) {
        let inner = &*self.inner;
        let mut ctl = inner.lock();
        let cur = inner.load();
        if matches!(cur.mode(), Mode::Disabled | Mode::ForcedOpen) {
            return;
        }
        let now = inner.now();
        let until = now.saturating_add(saturating_nanos(open_for));
        if cur.state() == State::Open {
            inner.open_until.fetch_max(until, AcqRel);
            return;
        }
        inner.open_until.store(until, Release);
        inner.consecutive_failures.store(0, Relaxed);
        let swapped = inner.publish(cur, State::Open, cur.mode());
        ctl.trips_in_a_row = ctl.trips_in_a_row.saturating_add(1);
        ctl.trips += 1;
        inner.notify(ctl, swapped, reason, now, Some(open_for));
    }

    /// Closes an open or half-open breaker now, with cleared counters, for a recovery seen
    /// elsewhere (another replica's probes succeeded). No effect when closed, forced open or
    /// disabled.
    pub fn close_with(&self, reason: Reason) {
        let inner = &*self.inner;
        let mut ctl = inner.lock();
        let cur = inner.load();
        if cur.state() == State::Closed || matches!(cur.mode(), Mode::Disabled | Mode::ForcedOpen) {
            return;
        }
        inner.clear_counts();
        ctl.trips_in_a_row = 0;
        let swapped = inner.publish(cur, State::Closed, cur.mode());
        inner.notify(ctl, swapped, reason, inner.now(), None);
    }

    /// Switches the administrative mode like [`set_mode`](Self::set_mode), announcing
    /// `reason` instead of `manual` (an operator's action taken on another replica).
    pub fn set_mode_with(&self, mode: Mode, reason: Reason) {
        if mode == Mode::Normal && matches!(self.mode(), Mode::ForcedOpen | Mode::Disabled) {
            self.inner.reset(reason);
        } else {
            self.inner.set_mode(mode, reason);
        }
    }

    /// Like [`reset`](Self::reset), announcing `reason` instead of `manual`.
    pub fn reset_with(&self, reason: Reason) {
        self.inner.reset(reason);
    }

    /// Holds (`true`) or releases this breaker's probes. While held, an ended open period
    /// does not go half-open and a half-open round admits no new probe: calls are rejected
    /// with a one-second hint, as when probe slots are all taken. For a fleet in which one
    /// replica probes for all; release it on the replica that is to probe, and everywhere when
    /// the fleet can no longer coordinate.
    ///
    /// ```
    /// use seawall_breaker::{CircuitBreaker, Config, Reason, State};
    /// use std::time::Duration;
    ///
    /// let cb = CircuitBreaker::new(Config::default());
    /// cb.hold_probes(true);
    /// cb.open_for(Duration::ZERO, Reason::Remote);
    /// assert!(cb.try_acquire().is_err(), "held: no probe although the period ended");
    /// assert_eq!(cb.state(), State::Open);
    /// cb.hold_probes(false);
    /// assert!(cb.try_acquire().is_ok(), "released: this call is the probe");
    /// assert_eq!(cb.state(), State::HalfOpen);
    /// ```
    pub fn hold_probes(&self, hold: bool) {
        self.inner.probes_held.store(hold, Release);
    }

    /// Has `watch` told the length of the current run of failures while closed: the new
    /// length after each failure, and 0 when a success ends a run. Replicas that add their
    /// runs up can open together after `failure_threshold` failures in all, not on each.
    /// One watcher per breaker; later calls are ignored. It runs on the caller's thread,
    /// only on failures and on the first success after them, never on a plain success.
    ///
    /// ```
    /// use seawall_breaker::{CircuitBreaker, Config};
    /// use std::sync::{Arc, Mutex};
    ///
    /// let cb = CircuitBreaker::new(Config::default());
    /// let runs = Arc::new(Mutex::new(Vec::new()));
    /// let seen = runs.clone();
    /// cb.on_failure_streak(move |n| seen.lock().unwrap().push(n));
    /// cb.try_acquire().unwrap().failure();
    /// cb.try_acquire().unwrap().failure();
    /// cb.try_acquire().unwrap().success();
    /// cb.try_acquire().unwrap().success();
    /// assert_eq!(*runs.lock().unwrap(), [1, 2, 0]);
    /// ```
    pub fn on_failure_streak(&self, watch: impl Fn(u32) + Send + Sync + 'static) {
        let _ = self.inner.streak_watcher.set(Box::new(watch));
    }

    /// Whether probes are held ([`hold_probes`](Self::hold_probes)).
    pub fn probes_held(&self) -> bool {
        self.inner.probes_held()
    }
}

impl Inner {
    #[inline]
    pub(super) fn probes_held(&self) -> bool {
        self.probes_held.load(Acquire)
    }
}

#[cfg(test)]
mod tests {
    use crate::{CircuitBreaker, Clock, Config, ManualClock, Mode, Reason, State};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn breaker() -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new();
        let config = Config::builder()
            .failure_threshold(1)
            .half_open_max_calls(1)
            .jitter(0.0)
            .clock(Clock::manual(&clock))
            .build()
            .unwrap();
        (CircuitBreaker::new(config), clock)
    }

    #[test]
    fn open_for_opens_exactly_that_long_and_only_extends_an_open_breaker() {
        let (cb, clock) = breaker();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        cb.on_state_change(move |t| log.lock().unwrap().push((t.to, t.reason, t.open_for)));
        cb.open_for(Duration::from_secs(3), Reason::Remote);
        cb.open_for(Duration::from_secs(7), Reason::Remote);
        cb.open_for(Duration::from_secs(1), Reason::Remote);
        assert_eq!(
            *seen.lock().unwrap(),
            [(State::Open, Reason::Remote, Some(Duration::from_secs(3)))],
            "one transition; later calls only move the deadline"
        );
        assert_eq!(cb.snapshot().counts.trips, 1);
        clock.advance(Duration::from_secs(6));
        assert!(
            cb.try_acquire().is_err(),
            "extended to 7 s, never shortened"
        );
        clock.advance(Duration::from_secs(1));
        assert!(cb.try_acquire().is_ok());
    }

    #[test]
    fn operator_modes_win_over_remote_decisions() {
        let (cb, _clock) = breaker();
        cb.force_open();
        cb.close_with(Reason::Remote);
        assert_eq!(cb.mode(), Mode::ForcedOpen);
        cb.reset();
        cb.disable();
        cb.open_for(Duration::from_secs(5), Reason::Remote);
        assert_eq!((cb.state(), cb.mode()), (State::Closed, Mode::Disabled));
        cb.set_mode_with(Mode::Normal, Reason::Remote);
        assert_eq!(cb.snapshot().reason, Some(Reason::Remote));
        assert_eq!(cb.mode(), Mode::Normal);
    }

    #[test]
    fn held_probes_keep_it_open_and_a_remote_close_ends_the_hold_round() {
        let (cb, clock) = breaker();
        cb.try_acquire().unwrap().failure();
        cb.hold_probes(true);
        clock.advance(Duration::from_secs(3600));
        cb.tick();
        assert_eq!(cb.state(), State::Open, "no half-open while held");
        let rejected = cb.try_acquire().unwrap_err();
        assert_eq!(rejected.retry_after(), Duration::from_secs(1));
        assert!(cb.check().is_err());
        cb.close_with(Reason::Remote);
        assert_eq!(cb.state(), State::Closed);
        assert!(cb.try_acquire().is_ok(), "closed admits even while held");
    }

    #[test]
    fn a_hold_stops_new_probes_of_a_half_open_round() {
        let (cb, clock) = breaker();
        let config_probes = 1;
        cb.try_acquire().unwrap().failure();
        clock.advance(Duration::from_secs(3600));
        assert_eq!(cb.state(), State::HalfOpen);
        cb.hold_probes(true);
        assert!(cb.try_acquire().is_err());
        cb.hold_probes(false);
        let probe = cb.try_acquire().unwrap();
        assert_eq!(cb.snapshot().counts.half_open_in_flight, config_probes);
        probe.success();
        assert_eq!(cb.state(), State::Closed);
    }
}
