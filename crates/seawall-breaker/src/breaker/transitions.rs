//! Transitions: every state change, made under the lock and announced to listeners after it
//! is released.

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use super::*;

impl Inner {
    /// Timed transitions that are due.
    pub(super) fn advance(&self) {
        let w = self.load();
        match w.state() {
            State::Open if w.mode() != Mode::ForcedOpen && !self.probes_held() => {
                let now = self.now();
                if now >= self.open_until.load(Acquire) {
                    self.to_half_open(w.generation(), now);
                }
            }
            State::HalfOpen => {
                let now = self.now();
                if now >= self.probe_deadline.load(Acquire) {
                    self.expire_probes(w.generation(), now);
                }
            }
            _ => {}
        }
    }

    /// How long a trip keeps the breaker open: the upstream's hint when the trip carries one
    /// (capped by `retry_after_max`: the provider knows when it recovers, so neither the
    /// backoff nor `open_timeout` lengthens it), else `open_timeout` doubled per trip in a row
    /// (capped by `open_timeout_max`), plus jitter.
    pub(super) fn open_period(&self, ctl: &mut Control, hint: Option<Duration>) -> Duration {
        let policy = self.policy();
        let cfg = &policy.config;
        if let Some(hint) = hint {
            return hint.min(cfg.retry_after_max);
        }
        let factor = 1u32 << ctl.trips_in_a_row.min(31);
        let base = cfg
            .open_timeout
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(cfg.open_timeout_max);
        if cfg.jitter > 0.0 {
            base.mul_f64(1.0 + cfg.jitter * ctl.rng.f64())
        } else {
            base
        }
    }

    /// Opens the breaker if it is still in `from` at `generation`.
    pub(super) fn trip(
        &self,
        generation: u32,
        from: State,
        reason: Reason,
        now: u64,
        hint: Option<Duration>,
    ) {
        let mut ctl = self.lock();
        let cur = self.load();
        if cur.generation() != generation
            || cur.state() != from
            || matches!(cur.mode(), Mode::Disabled | Mode::ForcedOpen)
        {
            return;
        }
        let open_for = self.open_period(&mut ctl, hint);
        self.open_until
            .store(now.saturating_add(saturating_nanos(open_for)), Release);
        self.consecutive_failures.store(0, Relaxed);
        let swapped = self.publish(cur, State::Open, cur.mode());
        ctl.trips_in_a_row = ctl.trips_in_a_row.saturating_add(1);
        ctl.trips += 1;
        self.notify(ctl, swapped, reason, now, Some(open_for));
    }

    pub(super) fn to_half_open(&self, generation: u32, now: u64) {
        let ctl = self.lock();
        let cur = self.load();
        if cur.generation() != generation
            || cur.state() != State::Open
            || cur.mode() == Mode::ForcedOpen
            || now < self.open_until.load(Acquire)
            || self.probes_held()
        {
            return;
        }
        self.probe_deadline.store(NEVER, Release);
        let swapped = self.publish(cur, State::HalfOpen, cur.mode());
        self.notify(ctl, swapped, Reason::OpenTimeoutElapsed, now, None);
    }

    pub(super) fn start_probe_clock(&self, generation: u32, now: u64) {
        let _ctl = self.lock();
        let cur = self.load();
        if cur.generation() == generation
            && cur.state() == State::HalfOpen
            && self.probe_deadline.load(Acquire) == NEVER
        {
            let deadline =
                now.saturating_add(saturating_nanos(self.policy().config.half_open_timeout));
            self.probe_deadline.store(deadline, Release);
        }
    }

    pub(super) fn expire_probes(&self, generation: u32, now: u64) {
        // The deadline belongs to `generation` (it is only set under the lock for the current
        // generation), so `trip` re-checking the generation is enough.
        self.trip(
            generation,
            State::HalfOpen,
            Reason::HalfOpenTimeout,
            now,
            None,
        );
    }

    pub(super) fn close(&self, generation: u32, now: u64) {
        let mut ctl = self.lock();
        let cur = self.load();
        if cur.generation() != generation
            || cur.state() != State::HalfOpen
            || cur.successes() < self.policy().config.half_open_max_calls
        {
            return;
        }
        self.clear_counts();
        ctl.trips_in_a_row = 0;
        let swapped = self.publish(cur, State::Closed, cur.mode());
        self.notify(ctl, swapped, Reason::ProbesSucceeded, now, None);
    }

    pub(super) fn reset(&self, reason: Reason) {
        let mut ctl = self.lock();
        let cur = self.load();
        self.clear_counts();
        ctl.trips_in_a_row = 0;
        if cur.state() == State::Closed && cur.mode() == Mode::Normal {
            return;
        }
        let swapped = self.publish(cur, State::Closed, Mode::Normal);
        self.notify(ctl, swapped, reason, self.now(), None);
    }

    pub(super) fn set_mode(&self, mode: Mode, reason: Reason) {
        let mut ctl = self.lock();
        let cur = self.load();
        if cur.mode() == mode {
            return;
        }
        let state = match mode {
            Mode::ForcedOpen => State::Open,
            Mode::Disabled => State::Closed,
            Mode::Normal | Mode::MetricsOnly => match cur.mode() {
                Mode::ForcedOpen | Mode::Disabled => State::Closed,
                _ => cur.state(),
            },
        };
        if mode == Mode::ForcedOpen {
            self.open_until.store(NEVER, Release);
            // A transition to open like any trip, counted alike (listeners count it too).
            if cur.state() != State::Open {
                ctl.trips += 1;
            }
        }
        if state == State::Closed {
            self.clear_counts();
        }
        if state == State::HalfOpen {
            self.probe_deadline.store(NEVER, Release);
        }
        let swapped = self.publish(cur, state, mode);
        self.notify(ctl, swapped, reason, self.now(), None);
    }

    pub(super) fn clear_counts(&self) {
        self.consecutive_failures.store(0, Relaxed);
        if let Some(w) = &self.policy().window {
            w.clear();
        }
    }

    /// Replaces the word with the next generation's; returns (replaced, new). Called under the lock, where only the
    /// lock-free probe counters can change under us, so the loop ends.
    pub(super) fn publish(&self, mut cur: Word, state: State, mode: Mode) -> (Word, Word) {
        loop {
            let next = cur.next(state, mode);
            match self.word.compare_exchange(cur.0, next.0, AcqRel, Acquire) {
                Ok(_) => return (cur, next),
                Err(actual) => cur = Word(actual),
            }
        }
    }

    /// Records the transition and calls the listeners after releasing the lock.
    pub(super) fn notify(
        &self,
        mut ctl: MutexGuard<'_, Control>,
        (prev, next): (Word, Word),
        reason: Reason,
        now: u64,
        open_for: Option<Duration>,
    ) {
        ctl.reason = Some(reason);
        ctl.since = now;
        ctl.transitions += 1;
        let listeners = ctl.listeners.clone();
        drop(ctl);
        if listeners.is_empty() {
            return;
        }
        let event = Transition {
            from: prev.state(),
            to: next.state(),
            mode: next.mode(),
            reason,
            at: Duration::from_nanos(now),
            open_for,
            generation: next.generation(),
        };
        for listener in listeners.iter() {
            listener(&event);
        }
    }
}
