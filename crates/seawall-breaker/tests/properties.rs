//! Property tests: random interleavings of acquisitions, verdicts, drops, time and operator
//! actions never break the breaker's invariants.

use std::time::Duration;

use proptest::prelude::*;
use seawall_breaker::{CircuitBreaker, Clock, Config, ManualClock, Mode, Outcome, Permit, State};

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    Resolve { index: usize, outcome: Outcome },
    Drop { index: usize },
    Advance { secs: u64 },
    ForceOpen,
    Reset,
    MetricsOnly(bool),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Ignore),
        (1u64..120).prop_map(|s| Outcome::FailureWithRetryAfter(Duration::from_secs(s))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Acquire),
        6 => (any::<usize>(), outcome()).prop_map(|(index, outcome)| Op::Resolve { index, outcome }),
        2 => any::<usize>().prop_map(|index| Op::Drop { index }),
        3 => (0u64..90).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Reset),
        1 => any::<bool>().prop_map(Op::MetricsOnly),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_for_any_sequence(
        max in 1u32..5,
        threshold in 1u32..4,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let clock = ManualClock::new();
        let config = Config::builder()
            .clock(Clock::manual(&clock))
            .failure_threshold(threshold)
            .half_open_max_calls(max)
            .half_open_timeout(Duration::from_secs(45))
            .open_timeout(Duration::from_secs(30))
            .open_timeout_max(Duration::from_secs(240))
            .seed(1)
            .build()
            .unwrap();
        let cb = CircuitBreaker::new(config);
        let mut held: Vec<Permit<'_>> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire => {
                    let before = cb.snapshot();
                    match cb.try_acquire() {
                        Ok(p) => held.push(p),
                        Err(r) => {
                            // Only an open (or full half-open) breaker in normal/forced mode rejects.
                            prop_assert!(before.state != State::Closed || cb.state() != State::Closed);
                            prop_assert!(cb.mode() != Mode::MetricsOnly && cb.mode() != Mode::Disabled);
                            prop_assert!(r.retry_after_secs() >= 1);
                        }
                    }
                }
                Op::Resolve { index, outcome } if !held.is_empty() => {
                    let p = held.remove(index % held.len());
                    p.record(outcome);
                }
                Op::Drop { index } if !held.is_empty() => {
                    drop(held.remove(index % held.len()));
                }
                Op::Advance { secs } => clock.advance(Duration::from_secs(secs)),
                Op::ForceOpen => cb.force_open(),
                Op::Reset => cb.reset(),
                Op::MetricsOnly(on) => cb.set_mode(if on { Mode::MetricsOnly } else { Mode::Normal }),
                _ => {}
            }
            let snap = cb.snapshot();
            let c = snap.counts;
            // The half-open bound, and no underflow into neighbouring bits.
            prop_assert!(c.half_open_in_flight + c.half_open_successes <= max);
            prop_assert!(c.half_open_in_flight as usize <= held.iter().filter(|p| p.is_probe()).count());
            if snap.state != State::HalfOpen {
                prop_assert_eq!((c.half_open_in_flight, c.half_open_successes), (0, 0));
            }
            if snap.state == State::Open && snap.mode != Mode::ForcedOpen {
                let left = snap.open_remaining.unwrap();
                prop_assert!(left > Duration::ZERO && left <= Duration::from_secs(264 + 120));
            }
            if snap.state == State::Closed {
                prop_assert!(c.consecutive_failures < threshold || snap.mode == Mode::Disabled);
            }
        }
        drop(held);
        prop_assert_eq!(cb.snapshot().counts.half_open_in_flight, 0);
    }
}
