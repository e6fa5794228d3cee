//! The breaker's states, administrative modes, transition reasons, and the packed state word
//! that the hot path reads with one atomic load.

use std::fmt;

/// Where the breaker is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until the open deadline passes.
    Open,
    /// A bounded number of probe calls test whether the dependency recovered.
    HalfOpen,
}

impl State {
    /// The lowercase name used in logs, metrics and JSON (`closed`, `open`, `half_open`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// The gauge value of `seawall_circuit_breaker_state`: 0 closed, 0.5 half-open, 1 open.
    pub fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::HalfOpen => 0.5,
            State::Open => 1.0,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the breaker enforces its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Trips, rejects and recovers as configured.
    #[default]
    Normal,
    /// Rejects every call until reset (an operator's override).
    ForcedOpen,
    /// Admits every call and never trips, but still counts outcomes.
    Disabled,
    /// Runs the state machine (trips, recoveries, listeners) but admits every call, counting
    /// the calls it would have rejected. For trying a policy out on live traffic.
    MetricsOnly,
}

impl Mode {
    /// The lowercase name used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::ForcedOpen => "forced_open",
            Mode::Disabled => "disabled",
            Mode::MetricsOnly => "metrics_only",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `failure_threshold` consecutive failures.
    ConsecutiveFailures,
    /// The failure rate over the window reached `failure_rate_threshold`.
    FailureRate,
    /// The slow-call rate over the window reached `slow_call_rate_threshold`.
    SlowCallRate,
    /// The upstream asked for a pause with `Retry-After`.
    RetryAfter,
    /// The process is under memory or queue pressure.
    GlobalHealth,
    /// An operator or the program changed the breaker by hand.
    Manual,
    /// A half-open probe failed.
    HalfOpenFailure,
    /// Half-open probes did not resolve within `half_open_timeout`.
    HalfOpenTimeout,
    /// The open period ended (open → half-open).
    OpenTimeoutElapsed,
    /// Every half-open probe succeeded (half-open → closed).
    ProbesSucceeded,
    /// Another replica decided it (a fleet sharing breaker state; see
    /// [`CircuitBreaker::open_for`](crate::CircuitBreaker::open_for)).
    Remote,
}

impl Reason {
    /// The snake_case name used in logs and in the `reason` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConsecutiveFailures => "consecutive_failures",
            Reason::FailureRate => "failure_rate",
            Reason::SlowCallRate => "slow_call_rate",
            Reason::RetryAfter => "retry_after",
            Reason::GlobalHealth => "global_health",
            Reason::Manual => "manual",
            Reason::HalfOpenFailure => "half_open_failure",
            Reason::HalfOpenTimeout => "half_open_timeout",
            Reason::OpenTimeoutElapsed => "open_timeout_elapsed",
            Reason::ProbesSucceeded => "probes_succeeded",
            Reason::Remote => "remote",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The packed state word. Layout (low to high bits):
/// `state:2 | mode:2 | unused:4 | in_flight:12 | successes:12 | generation:32`.
/// `in_flight` and `successes` count half-open probes of the current generation; the
/// generation changes on every transition, so a CAS on the whole word can never apply a
/// stale permit's release to a newer round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

pub(crate) const STATE_MASK: u64 = 0b11;
/// State and mode bits together; equal to [`OPEN_NORMAL`] when open in normal mode.
pub(crate) const STATE_MODE_MASK: u64 = 0b1111;
pub(crate) const OPEN_NORMAL: u64 = 0b0001;
const MODE_SHIFT: u32 = 2;
const IN_FLIGHT_SHIFT: u32 = 8;
const SUCCESS_SHIFT: u32 = 20;
const COUNT_MASK: u64 = 0xFFF;
const GEN_SHIFT: u32 = 32;
/// The largest `half_open_max_calls` the word can hold.
pub(crate) const MAX_PROBES: u32 = COUNT_MASK as u32;
pub(crate) const IN_FLIGHT_ONE: u64 = 1 << IN_FLIGHT_SHIFT;
pub(crate) const SUCCESS_ONE: u64 = 1 << SUCCESS_SHIFT;

impl Word {
    pub(crate) fn new(state: State, mode: Mode, generation: u32) -> Word {
        let s = match state {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        };
        let m = match mode {
            Mode::Normal => 0,
            Mode::ForcedOpen => 1,
            Mode::Disabled => 2,
            Mode::MetricsOnly => 3,
        };
        Word(s | (m << MODE_SHIFT) | ((generation as u64) << GEN_SHIFT))
    }

    #[inline]
    pub(crate) fn state(self) -> State {
        match self.0 & STATE_MASK {
            0 => State::Closed,
            1 => State::Open,
            _ => State::HalfOpen,
        }
    }

    #[inline]
    pub(crate) fn mode(self) -> Mode {
        match (self.0 >> MODE_SHIFT) & 0b11 {
            0 => Mode::Normal,
            1 => Mode::ForcedOpen,
            2 => Mode::Disabled,
            _ => Mode::MetricsOnly,
        }
    }

    #[inline]
    pub(crate) fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }

    #[inline]
    pub(crate) fn in_flight(self) -> u32 {
        ((self.0 >> IN_FLIGHT_SHIFT) & COUNT_MASK) as u32
    }

    #[inline]
    pub(crate) fn successes(self) -> u32 {
        ((self.0 >> SUCCESS_SHIFT) & COUNT_MASK) as u32
    }

    /// The word of the next generation in `state` and `mode`, with empty probe counts.
    pub(crate) fn next(self, state: State, mode: Mode) -> Word {
        Word::new(state, mode, self.generation().wrapping_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_round_trips_every_field() {
        for state in [State::Closed, State::Open, State::HalfOpen] {
            for mode in [
                Mode::Normal,
                Mode::ForcedOpen,
                Mode::Disabled,
                Mode::MetricsOnly,
            ] {
                let w = Word::new(state, mode, u32::MAX);
                let w = Word(w.0 + 5 * IN_FLIGHT_ONE + 7 * SUCCESS_ONE);
                assert_eq!(
                    (w.state(), w.mode(), w.generation()),
                    (state, mode, u32::MAX)
                );
                assert_eq!((w.in_flight(), w.successes()), (5, 7));
            }
        }
    }

    #[test]
    fn next_generation_wraps_and_clears_counts() {
        let w = Word(Word::new(State::HalfOpen, Mode::Normal, u32::MAX).0 + IN_FLIGHT_ONE);
        let n = w.next(State::Open, Mode::Normal);
        assert_eq!(
            (n.generation(), n.in_flight(), n.state()),
            (0, 0, State::Open)
        );
    }
}
