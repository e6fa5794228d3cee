//! Permits: the right to make one call, and the verdict on it.

use std::fmt;
use std::time::Duration;

use crate::breaker::{CircuitBreaker, Inner};

/// The verdict on a call admitted by a [`Permit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call worked.
    Success,
    /// The call failed in a way the breaker should count.
    Failure,
    /// The call failed and the upstream asked for a pause (`Retry-After`): the breaker opens
    /// for at least this long (capped by `retry_after_max`).
    FailureWithRetryAfter(Duration),
    /// The call says nothing about the dependency's health (a client error, a cancellation).
    Ignore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TicketKind {
    /// Admitted while closed; its outcome feeds the closed-state counters.
    Closed = 0,
    /// A half-open probe holding one of the bounded slots.
    Probe = 1,
    /// Admitted only because the breaker is in `MetricsOnly`; its outcome is not counted.
    Shadow = 2,
}

/// What a permit remembers about its admission, packed in one word so that permits travel in
/// registers: `generation:32 | started_ms:30 | kind:2`. `started_ms` is the admission time in
/// milliseconds (modulo 2^30, about 12 days), recorded only when slow calls are tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

pub(crate) const STARTED_MASK: u32 = (1 << 30) - 1;

impl Ticket {
    #[inline(always)]
    pub(crate) fn new(generation: u32, kind: TicketKind, started_ms: u32) -> Ticket {
        Ticket(
            (u64::from(generation) << 32)
                | (u64::from(started_ms & STARTED_MASK) << 2)
                | kind as u64,
        )
    }

    #[inline(always)]
    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    #[inline(always)]
    pub(crate) fn kind(self) -> TicketKind {
        match self.0 & 0b11 {
            0 => TicketKind::Closed,
            1 => TicketKind::Probe,
            _ => TicketKind::Shadow,
        }
    }

    pub(crate) fn started_ms(self) -> u32 {
        (self.0 >> 2) as u32 & STARTED_MASK
    }
}

/// Permission to make one call. Report how it went with [`success`](Permit::success),
/// [`failure`](Permit::failure), [`failure_with_retry_after`](Permit::failure_with_retry_after)
/// or [`ignore`](Permit::ignore). Dropping it without a verdict counts as ignored and frees its
/// half-open slot, so cancelled calls never leak probe capacity.
///
/// A verdict that arrives after the breaker changed state (the call was admitted in an older
/// generation) is discarded.
#[must_use = "a permit reports nothing unless given a verdict; dropping it counts as ignored"]
pub struct Permit<'a> {
    breaker: &'a Inner,
    ticket: Ticket,
}

impl<'a> Permit<'a> {
    #[inline(always)]
    pub(crate) fn new(breaker: &'a Inner, ticket: Ticket) -> Self {
        Permit { breaker, ticket }
    }

    /// The call worked.
    #[inline(always)]
    pub fn success(self) {
        self.record(Outcome::Success)
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(Outcome::Failure)
    }

    /// The call failed and the upstream asked to wait `retry_after` before trying again.
    pub fn failure_with_retry_after(self, retry_after: Duration) {
        self.record(Outcome::FailureWithRetryAfter(retry_after))
    }

    /// The call says nothing about the dependency's health.
    pub fn ignore(self) {
        self.record(Outcome::Ignore)
    }

    /// Reports `outcome`.
    #[inline(always)]
    pub fn record(self, outcome: Outcome) {
        let (breaker, ticket) = (self.breaker, self.ticket);
        // The verdict replaces the drop's "ignored"; nothing else in a permit needs dropping.
        std::mem::forget(self);
        breaker.record(ticket, outcome);
    }

    /// Whether this permit is one of the bounded half-open probes.
    pub fn is_probe(&self) -> bool {
        self.ticket.kind() == TicketKind::Probe
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.breaker.record(self.ticket, Outcome::Ignore);
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// A [`Permit`] that owns a handle to its breaker, so it can move into a `'static` future
/// (what the tower layer uses). Same verdicts, same drop behaviour.
#[must_use = "a permit reports nothing unless given a verdict; dropping it counts as ignored"]
pub struct OwnedPermit {
    breaker: CircuitBreaker,
    ticket: Option<Ticket>,
}

impl OwnedPermit {
    pub(crate) fn new(breaker: CircuitBreaker, ticket: Ticket) -> Self {
        OwnedPermit {
            breaker,
            ticket: Some(ticket),
        }
    }

    /// The call worked.
    pub fn success(self) {
        self.record(Outcome::Success)
    }

    /// The call failed.
    pub fn failure(self) {
        self.record(Outcome::Failure)
    }

    /// The call failed and the upstream asked to wait `retry_after`.
    pub fn failure_with_retry_after(self, retry_after: Duration) {
        self.record(Outcome::FailureWithRetryAfter(retry_after))
    }

    /// The call says nothing about the dependency's health.
    pub fn ignore(self) {
        self.record(Outcome::Ignore)
    }

    /// Reports `outcome`.
    pub fn record(mut self, outcome: Outcome) {
        if let Some(t) = self.ticket.take() {
            self.breaker.inner().record(t, outcome);
        }
    }

    /// Whether this permit is one of the bounded half-open probes.
    pub fn is_probe(&self) -> bool {
        matches!(self.ticket, Some(t) if t.kind() == TicketKind::Probe)
    }

    /// The breaker that issued this permit.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.breaker.inner().record(t, Outcome::Ignore);
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// The breaker refused a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is open; retry after {}s", self.retry_after_secs())]
pub struct Rejected {
    pub(crate) retry_after_nanos: u64,
    pub(crate) forced: bool,
}

fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Rejected {
    /// How long until the breaker may admit calls again (the rest of the open period; for a
    /// half-open breaker whose probe slots are taken, a short hint).
    pub fn retry_after(&self) -> Duration {
        Duration::from_nanos(self.retry_after_nanos)
    }

    /// [`retry_after`](Rejected::retry_after) in whole seconds, rounded up, at least 1: what an
    /// HTTP `Retry-After` header should carry.
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after()).max(1)
    }

    /// Whether an operator forced the breaker open.
    pub fn is_forced(&self) -> bool {
        self.forced
    }
}
