//! Outcomes: what a verdict on an admitted call changes (failure streaks, rolling windows,
//! half-open rounds), and when it trips the breaker.

use std::sync::atomic::Ordering::*;

use super::*;

impl Inner {
    #[inline(always)]
    pub(crate) fn record(&self, t: Ticket, outcome: Outcome) {
        if self.counted.load(Relaxed) {
            self.count(outcome);
        }
        if t.kind() == TicketKind::Closed && self.simple.load(Relaxed) {
            match outcome {
                Outcome::Success => {
                    // The hot path: two loads, and a store only after a failure streak.
                    if self.load().generation() == t.generation()
                        && self.consecutive_failures.load(Relaxed) != 0
                    {
                        self.consecutive_failures.store(0, Relaxed);
                        self.tell_streak(0);
                    }
                    return;
                }
                Outcome::Ignore => return,
                _ => {}
            }
        }
        self.record_slow(t, outcome);
    }

    /// Adds `outcome` to the lifetime totals (with `count_outcomes`). Every verdict counts,
    /// stale or not: the totals say what the calls did, not what moved the breaker.
    #[inline(never)]
    fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.successes.increment(),
            Outcome::Failure | Outcome::FailureWithRetryAfter(_) => self.failures.increment(),
            Outcome::Ignore => {}
        }
    }

    /// Tells the streak watcher, if any, the run's new length.
    #[inline(never)]
    fn tell_streak(&self, streak: u32) {
        if let Some(watch) = self.streak_watcher.get() {
            watch(streak);
        }
    }

    #[inline(never)]
    pub(super) fn record_slow(&self, t: Ticket, outcome: Outcome) {
        match t.kind() {
            TicketKind::Closed if outcome != Outcome::Ignore => self.record_closed(t, outcome),
            TicketKind::Closed | TicketKind::Shadow => {}
            TicketKind::Probe => self.record_probe(t, outcome),
        }
    }

    pub(super) fn is_slow(&self, t: Ticket, now: u64) -> bool {
        let policy = self.policy();
        let elapsed_ms = millis(now).wrapping_sub(t.started_ms()) & STARTED_MASK;
        policy.track_slow && u64::from(elapsed_ms) * 1_000_000 >= policy.slow_call_nanos
    }

    pub(super) fn record_closed(&self, t: Ticket, outcome: Outcome) {
        if self.load().generation() != t.generation() {
            return; // admitted before the last transition: stale
        }
        let now = self.now();
        let slow = self.is_slow(t, now);
        let (failure, hint) = match outcome {
            Outcome::Success => (false, None),
            Outcome::Failure => (true, None),
            Outcome::FailureWithRetryAfter(d) => (true, Some(d).filter(|d| !d.is_zero())),
            Outcome::Ignore => return,
        };
        let streak = if failure {
            let streak = self.consecutive_failures.fetch_add(1, AcqRel) + 1;
            self.tell_streak(streak);
            streak
        } else {
            if self.consecutive_failures.swap(0, Relaxed) != 0 {
                self.tell_streak(0);
            }
            0
        };
        let policy = self.policy();
        let totals = policy.window.as_ref().map(|w| w.record(now, failure, slow));
        let cfg = &policy.config;
        let over = |count: u64, threshold: Option<f64>| match (totals, threshold) {
            (Some(t), Some(th)) => {
                t.calls >= u64::from(cfg.minimum_calls) && count as f64 >= th * t.calls as f64
            }
            _ => false,
        };
        let reason = if hint.is_some() && cfg.trip_on_retry_after {
            Some(Reason::RetryAfter)
        } else if streak >= cfg.failure_threshold {
            Some(Reason::ConsecutiveFailures)
        } else if failure && over(totals.map_or(0, |t| t.failures), cfg.failure_rate_threshold) {
            Some(Reason::FailureRate)
        } else if slow && over(totals.map_or(0, |t| t.slow), cfg.slow_call_rate_threshold) {
            Some(Reason::SlowCallRate)
        } else {
            None
        };
        if let Some(reason) = reason {
            self.trip(t.generation(), State::Closed, reason, now, hint);
        }
    }

    pub(super) fn record_probe(&self, t: Ticket, outcome: Outcome) {
        let now = self.now();
        match outcome {
            Outcome::Ignore => {
                self.update_probes(t.generation(), |w| w.0 - IN_FLIGHT_ONE);
            }
            Outcome::Success if self.is_slow(t, now) => {
                self.trip(
                    t.generation(),
                    State::HalfOpen,
                    Reason::SlowCallRate,
                    now,
                    None,
                );
            }
            Outcome::Success => {
                let after =
                    self.update_probes(t.generation(), |w| w.0 - IN_FLIGHT_ONE + SUCCESS_ONE);
                if after.is_some_and(|w| w.successes() >= self.policy().config.half_open_max_calls)
                {
                    self.close(t.generation(), now);
                }
            }
            Outcome::Failure => {
                self.trip(
                    t.generation(),
                    State::HalfOpen,
                    Reason::HalfOpenFailure,
                    now,
                    None,
                );
            }
            Outcome::FailureWithRetryAfter(d) => {
                let hint = Some(d).filter(|d| !d.is_zero());
                let reason = if hint.is_some() {
                    Reason::RetryAfter
                } else {
                    Reason::HalfOpenFailure
                };
                self.trip(t.generation(), State::HalfOpen, reason, now, hint);
            }
        }
    }

    /// Lock-free update of a half-open round's probe counts, only while the word is still of
    /// `generation` and has a probe in flight. Returns the new word.
    pub(super) fn update_probes(&self, generation: u32, f: impl Fn(Word) -> u64) -> Option<Word> {
        let mut cur = self.load();
        loop {
            if cur.generation() != generation
                || cur.state() != State::HalfOpen
                || cur.in_flight() == 0
            {
                return None;
            }
            let next = f(cur);
            match self.word.compare_exchange(cur.0, next, AcqRel, Acquire) {
                Ok(_) => return Some(Word(next)),
                Err(actual) => cur = Word(actual),
            }
        }
    }
}
