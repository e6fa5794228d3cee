//! Admission: the closed fast path, rejection while open, and the bounded half-open probes.

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use super::*;

impl Inner {
    #[inline(always)]
    pub(super) fn ticket(&self, w: Word, kind: TicketKind) -> Ticket {
        let started = if self.timed.load(Relaxed) {
            self.start_time()
        } else {
            0
        };
        Ticket::new(w.generation(), kind, started)
    }

    /// The clock reading that times a call; out of line so that the common policy (no
    /// slow-call tracking) keeps admission small enough to inline.
    #[inline(never)]
    pub(super) fn start_time(&self) -> u32 {
        millis(self.now())
    }

    #[inline(always)]
    pub(crate) fn acquire(&self) -> Result<Ticket, Rejected> {
        let w = self.word.load(Acquire);
        if w & STATE_MASK == 0 {
            return Ok(self.ticket(Word(w), TicketKind::Closed));
        }
        if w & STATE_MODE_MASK == OPEN_NORMAL {
            // Open and enforcing: reject inline while the open period lasts.
            let now = self.now();
            let until = self.open_until.load(Acquire);
            if now < until {
                self.rejected.increment();
                return Err(Rejected {
                    retry_after_nanos: until - now,
                    forced: false,
                });
            }
        }
        self.acquire_slow(Word(w))
    }

    #[cold]
    pub(super) fn acquire_slow(&self, mut w: Word) -> Result<Ticket, Rejected> {
        loop {
            match w.state() {
                State::Closed => return Ok(self.ticket(w, TicketKind::Closed)),
                State::Open if w.mode() == Mode::ForcedOpen => {
                    self.rejected.increment();
                    return Err(Rejected {
                        retry_after_nanos: saturating_nanos(self.policy().config.open_timeout),
                        forced: true,
                    });
                }
                State::Open => {
                    let now = self.now();
                    let until = self.open_until.load(Acquire);
                    if now < until {
                        return self.refuse(w, Duration::from_nanos(until - now));
                    }
                    if self.probes_held() {
                        return self.refuse(w, PROBES_BUSY_HINT);
                    }
                    self.to_half_open(w.generation(), now);
                }
                State::HalfOpen => {
                    let now = self.now();
                    let deadline = self.probe_deadline.load(Acquire);
                    if now >= deadline {
                        self.expire_probes(w.generation(), now);
                    } else if self.probes_held() {
                        return self.refuse(w, PROBES_BUSY_HINT);
                    } else if w.in_flight() + w.successes()
                        < self.policy().config.half_open_max_calls
                    {
                        let next = w.0 + IN_FLIGHT_ONE;
                        match self.word.compare_exchange(w.0, next, AcqRel, Acquire) {
                            Ok(_) => {
                                if deadline == NEVER {
                                    self.start_probe_clock(w.generation(), now);
                                }
                                return Ok(self.ticket(w, TicketKind::Probe));
                            }
                            Err(actual) => {
                                w = Word(actual);
                                continue;
                            }
                        }
                    } else {
                        return self.refuse(w, PROBES_BUSY_HINT);
                    }
                }
            }
            w = self.load();
        }
    }

    /// What [`acquire`](Self::acquire) would answer now, changing nothing.
    pub(super) fn check(&self) -> Result<(), Rejected> {
        let w = self.load();
        let refused = |retry_after: Duration, forced| {
            if w.mode() == Mode::MetricsOnly {
                Ok(())
            } else {
                Err(Rejected {
                    retry_after_nanos: saturating_nanos(retry_after),
                    forced,
                })
            }
        };
        match w.state() {
            State::Closed => Ok(()),
            State::Open if w.mode() == Mode::ForcedOpen => {
                refused(self.policy().config.open_timeout, true)
            }
            State::Open => {
                let (now, until) = (self.now(), self.open_until.load(Acquire));
                if now < until {
                    refused(Duration::from_nanos(until - now), false)
                } else if self.probes_held() {
                    refused(PROBES_BUSY_HINT, false)
                } else {
                    Ok(())
                }
            }
            State::HalfOpen => {
                let expired = self.now() >= self.probe_deadline.load(Acquire);
                let room = w.in_flight() + w.successes() < self.policy().config.half_open_max_calls;
                if expired || (room && !self.probes_held()) {
                    Ok(())
                } else {
                    refused(PROBES_BUSY_HINT, false)
                }
            }
        }
    }

    /// Rejects, or in `MetricsOnly` admits a call whose outcome is not counted.
    pub(super) fn refuse(&self, w: Word, retry_after: Duration) -> Result<Ticket, Rejected> {
        if w.mode() == Mode::MetricsOnly {
            self.would_reject.increment();
            return Ok(Ticket::new(w.generation(), TicketKind::Shadow, 0));
        }
        self.rejected.increment();
        Err(Rejected {
            retry_after_nanos: saturating_nanos(retry_after),
            forced: false,
        })
    }
}
