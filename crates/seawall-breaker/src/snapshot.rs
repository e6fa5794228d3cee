//! A consistent read of a breaker's state and counters, for admin endpoints and metrics.

use std::time::Duration;

use crate::state::{Mode, Reason, State};

/// A breaker's state and counters at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The state.
    pub state: State,
    /// The administrative mode.
    pub mode: Mode,
    /// The reason of the last transition, `None` before the first.
    pub reason: Option<Reason>,
    /// Time since the last transition (or since creation).
    pub since_change: Duration,
    /// While open (and not forced open): time until half-open.
    pub open_remaining: Option<Duration>,
    /// The generation: how many transitions the breaker has made, wrapping.
    pub generation: u32,
    /// Counters.
    pub counts: Counts,
}

/// A breaker's counters. [`reset`](crate::CircuitBreaker::reset) clears those that decide
/// the next trip; the totals marked "ever" are never cleared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Failures since the last success while closed.
    pub consecutive_failures: u32,
    /// Calls in the rolling window (0 when no rate threshold is configured).
    pub window_calls: u64,
    /// Failures in the rolling window.
    pub window_failures: u64,
    /// Slow calls in the rolling window.
    pub window_slow_calls: u64,
    /// Half-open probes admitted and not yet resolved.
    pub half_open_in_flight: u32,
    /// Half-open probes that succeeded this round.
    pub half_open_successes: u32,
    /// Calls rejected, ever.
    pub rejected: u64,
    /// Calls a `MetricsOnly` breaker admitted but would have rejected, ever.
    pub would_reject: u64,
    /// Calls reported a success, ever (stale verdicts included; ignored calls are not), while
    /// the policy's [`count_outcomes`](crate::ConfigBuilder::count_outcomes) is on; else 0.
    pub successes: u64,
    /// Calls reported a failure, ever (stale verdicts included), while `count_outcomes` is on.
    pub failures: u64,
    /// Transitions to open, ever, forced ones included.
    pub trips: u64,
    /// Transitions of any kind, ever.
    pub transitions: u64,
}
