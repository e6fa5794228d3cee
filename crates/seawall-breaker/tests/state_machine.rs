//! The breaker's state machine driven by a manual clock: every trip condition, the open
//! period and its backoff, half-open probing, modes, snapshots and listeners.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall_breaker::{
    CircuitBreaker, Clock, Config, ConfigBuilder, ManualClock, Mode, Reason, State, Transition,
    Window,
};

const SEC: Duration = Duration::from_secs(1);

fn builder(clock: &ManualClock) -> ConfigBuilder {
    Config::builder()
        .clock(Clock::manual(clock))
        .jitter(0.0)
        .open_timeout(30 * SEC)
}

fn breaker(b: ConfigBuilder) -> CircuitBreaker {
    CircuitBreaker::new(b.build().unwrap())
}

fn fail(cb: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        cb.try_acquire().expect("admitted").failure();
    }
}

fn succeed(cb: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        cb.try_acquire().expect("admitted").success();
    }
}

fn recorder(cb: &CircuitBreaker) -> Arc<Mutex<Vec<Transition>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    cb.on_state_change(move |t| log.lock().unwrap().push(t.clone()));
    seen
}

#[test]
fn trips_after_consecutive_failures_and_a_success_resets_the_streak() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(3));
    fail(&cb, 2);
    succeed(&cb, 1);
    fail(&cb, 2);
    assert_eq!(cb.state(), State::Closed);
    fail(&cb, 1);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.snapshot().reason, Some(Reason::ConsecutiveFailures));
}

#[test]
fn open_rejects_with_the_time_left_then_goes_half_open_without_traffic() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1));
    let seen = recorder(&cb);
    fail(&cb, 1);
    clock.advance(10 * SEC);
    let rejected = cb.try_acquire().unwrap_err();
    assert_eq!(rejected.retry_after(), 20 * SEC);
    assert_eq!(rejected.retry_after_secs(), 20);
    clock.advance(20 * SEC);
    // No call is made: reading the state is enough to move it.
    assert_eq!(cb.state(), State::HalfOpen);
    let seen = seen.lock().unwrap();
    let path: Vec<_> = seen.iter().map(|t| (t.from, t.to, t.reason)).collect();
    assert_eq!(
        path,
        [
            (State::Closed, State::Open, Reason::ConsecutiveFailures),
            (State::Open, State::HalfOpen, Reason::OpenTimeoutElapsed),
        ]
    );
    assert_eq!(seen[0].open_for, Some(30 * SEC));
}

#[test]
fn tick_moves_timed_transitions_for_listeners() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1));
    let seen = recorder(&cb);
    fail(&cb, 1);
    clock.advance(30 * SEC);
    cb.tick();
    assert_eq!(seen.lock().unwrap().last().unwrap().to, State::HalfOpen);
}

#[test]
fn half_open_admits_at_most_max_calls_and_closes_when_all_succeed() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1).half_open_max_calls(3));
    fail(&cb, 1);
    clock.advance(30 * SEC);
    let probes: Vec<_> = (0..3).map(|_| cb.try_acquire().unwrap()).collect();
    assert!(probes.iter().all(|p| p.is_probe()));
    let busy = cb.try_acquire().unwrap_err();
    assert_eq!(busy.retry_after(), SEC);
    let mut probes = probes.into_iter();
    probes.next().unwrap().success();
    probes.next().unwrap().success();
    // Two successes, one in flight: still half-open and still full.
    assert_eq!(cb.state(), State::HalfOpen);
    assert!(cb.try_acquire().is_err());
    probes.next().unwrap().success();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.snapshot().reason, Some(Reason::ProbesSucceeded));
}

#[test]
fn a_failed_probe_reopens_with_a_doubled_open_period() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(1)
            .open_timeout_max(100 * SEC),
    );
    let seen = recorder(&cb);
    fail(&cb, 1);
    clock.advance(30 * SEC);
    cb.try_acquire().unwrap().failure();
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.snapshot().open_remaining, Some(60 * SEC));
    clock.advance(60 * SEC);
    cb.try_acquire().unwrap().failure();
    // 120 s is capped at open_timeout_max.
    assert_eq!(cb.snapshot().open_remaining, Some(100 * SEC));
    let reasons: Vec<_> = seen.lock().unwrap().iter().map(|t| t.reason).collect();
    assert_eq!(reasons[2], Reason::HalfOpenFailure);
    assert_eq!(cb.snapshot().counts.trips, 3);
}

#[test]
fn closing_resets_the_backoff() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1).half_open_max_calls(1));
    fail(&cb, 1);
    clock.advance(30 * SEC);
    cb.try_acquire().unwrap().failure(); // 60 s
    clock.advance(60 * SEC);
    cb.try_acquire().unwrap().success();
    assert_eq!(cb.state(), State::Closed);
    fail(&cb, 1);
    assert_eq!(cb.snapshot().open_remaining, Some(30 * SEC));
}

#[test]
fn jitter_lengthens_the_open_period_within_its_share() {
    let clock = ManualClock::new();
    for seed in 0..50 {
        let cb = breaker(builder(&clock).failure_threshold(1).jitter(0.5).seed(seed));
        fail(&cb, 1);
        let open = cb.snapshot().open_remaining.unwrap();
        assert!(open >= 30 * SEC && open < 45 * SEC, "{open:?}");
    }
    let a = breaker(builder(&clock).failure_threshold(1).jitter(0.5).seed(7));
    let b = breaker(builder(&clock).failure_threshold(1).jitter(0.5).seed(7));
    fail(&a, 1);
    fail(&b, 1);
    assert_eq!(a.snapshot().open_remaining, b.snapshot().open_remaining);
}

#[test]
fn unresolved_probes_time_out_back_to_open() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(1)
            .half_open_timeout(10 * SEC),
    );
    fail(&cb, 1);
    clock.advance(30 * SEC);
    // Half-open with no traffic waits for traffic: no timeout without a probe.
    clock.advance(100 * SEC);
    assert_eq!(cb.state(), State::HalfOpen);
    let hung = cb.try_acquire().unwrap();
    clock.advance(10 * SEC);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.snapshot().reason, Some(Reason::HalfOpenTimeout));
    // The hung probe's late verdict belongs to an old generation and changes nothing.
    hung.success();
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn retry_after_sets_the_open_period_capped() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(100)
            .retry_after_max(120 * SEC),
    );
    cb.try_acquire().unwrap().failure_with_retry_after(90 * SEC);
    let snap = cb.snapshot();
    assert_eq!(
        (snap.state, snap.reason),
        (State::Open, Some(Reason::RetryAfter))
    );
    assert_eq!(snap.open_remaining, Some(90 * SEC));

    let cb = breaker(
        builder(&clock)
            .failure_threshold(100)
            .retry_after_max(120 * SEC),
    );
    cb.try_acquire()
        .unwrap()
        .failure_with_retry_after(3600 * SEC);
    assert_eq!(cb.snapshot().open_remaining, Some(120 * SEC));

    // A hint shorter than the open period is the open period: the provider said when.
    let cb = breaker(builder(&clock).failure_threshold(100));
    cb.try_acquire().unwrap().failure_with_retry_after(2 * SEC);
    assert_eq!(cb.snapshot().open_remaining, Some(2 * SEC));
}

#[test]
fn a_failed_probe_with_a_hint_reopens_for_the_hint_not_the_doubled_backoff() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1).open_timeout(5 * SEC));
    cb.try_acquire().unwrap().failure_with_retry_after(5 * SEC);
    clock.advance(5 * SEC);
    cb.try_acquire().unwrap().failure_with_retry_after(5 * SEC);
    assert_eq!(cb.snapshot().open_remaining, Some(5 * SEC));
    // Without a hint the backoff applies: the third trip in a row stays open 4 × 5 s.
    clock.advance(5 * SEC);
    fail(&cb, 1);
    assert_eq!(cb.snapshot().open_remaining, Some(20 * SEC));
}

#[test]
fn without_trip_on_retry_after_a_hinted_failure_counts_like_any_other() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(3)
            .trip_on_retry_after(false),
    );
    for _ in 0..2 {
        cb.try_acquire().unwrap().failure_with_retry_after(7 * SEC);
    }
    assert_eq!(cb.state(), State::Closed, "two failures of three");
    cb.try_acquire().unwrap().failure_with_retry_after(7 * SEC);
    let snap = cb.snapshot();
    assert_eq!(
        (snap.state, snap.reason),
        (State::Open, Some(Reason::ConsecutiveFailures))
    );
    assert_eq!(
        snap.open_remaining,
        Some(7 * SEC),
        "the trip's hint sets the period"
    );
}

#[test]
fn retry_after_on_a_probe_reopens_for_the_hint() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1));
    fail(&cb, 1);
    clock.advance(30 * SEC);
    cb.try_acquire()
        .unwrap()
        .failure_with_retry_after(300 * SEC);
    let snap = cb.snapshot();
    assert_eq!(snap.reason, Some(Reason::RetryAfter));
    assert_eq!(snap.open_remaining, Some(300 * SEC));
}

#[test]
fn count_window_slides_1000_successes_then_200_failures_trip() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(1_000_000)
            .failure_rate_threshold(0.5)
            .window(Window::Count(10))
            .minimum_calls(10),
    );
    succeed(&cb, 1000);
    let mut tripped_after = None;
    for i in 1..=200 {
        match cb.try_acquire() {
            Ok(p) => p.failure(),
            Err(_) => {
                tripped_after = Some(i - 1);
                break;
            }
        }
    }
    // 5 failures among the last 10 calls reach 50 %.
    assert_eq!(tripped_after, Some(5));
    assert_eq!(cb.snapshot().reason, Some(Reason::FailureRate));
}

#[test]
fn time_window_rate_needs_minimum_calls_and_forgets_old_calls() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(1_000_000)
            .failure_rate_threshold(0.5)
            .window(Window::Time {
                duration: 10 * SEC,
                buckets: 10,
            })
            .minimum_calls(10),
    );
    succeed(&cb, 1000);
    fail(&cb, 200); // 200 / 1200 < 50 %
    assert_eq!(cb.state(), State::Closed);
    clock.advance(10 * SEC); // the window has moved past all of it
    fail(&cb, 9);
    assert_eq!(cb.state(), State::Closed, "below minimum_calls");
    fail(&cb, 1);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.snapshot().reason, Some(Reason::FailureRate));
}

#[test]
fn slow_call_rate_trips_on_slow_successes() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(1_000_000)
            .slow_call_rate_threshold(0.5)
            .slow_call_duration(2 * SEC)
            .window(Window::Count(4))
            .minimum_calls(4),
    );
    succeed(&cb, 2);
    for _ in 0..2 {
        let p = cb.try_acquire().unwrap();
        clock.advance(3 * SEC);
        p.success();
    }
    let snap = cb.snapshot();
    assert_eq!(
        (snap.state, snap.reason),
        (State::Open, Some(Reason::SlowCallRate))
    );
}

#[test]
fn a_dropped_permit_is_ignored_and_frees_its_probe_slot() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(2).half_open_max_calls(1));
    fail(&cb, 1);
    drop(cb.try_acquire().unwrap()); // ignored: the streak stays at 1
    assert_eq!(cb.snapshot().counts.consecutive_failures, 1);
    fail(&cb, 1);
    clock.advance(30 * SEC);
    let probe = cb.try_acquire().unwrap();
    assert!(cb.try_acquire().is_err());
    drop(probe);
    assert!(cb.try_acquire().unwrap().is_probe());
}

#[test]
fn stale_outcomes_from_an_older_generation_are_discarded() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(2).half_open_max_calls(1));
    let old = cb.try_acquire().unwrap();
    fail(&cb, 2);
    clock.advance(30 * SEC);
    cb.try_acquire().unwrap().success();
    assert_eq!(cb.state(), State::Closed);
    fail(&cb, 1);
    // Admitted before the trip: its failure must not complete the new streak.
    old.failure();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.snapshot().counts.consecutive_failures, 1);
}

#[test]
fn forced_open_rejects_until_reset() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock));
    let seen = recorder(&cb);
    cb.force_open();
    clock.advance(3600 * SEC);
    let r = cb.try_acquire().unwrap_err();
    assert!(r.is_forced());
    assert_eq!((cb.state(), cb.mode()), (State::Open, Mode::ForcedOpen));
    cb.reset();
    assert_eq!((cb.state(), cb.mode()), (State::Closed, Mode::Normal));
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|t| t.reason == Reason::Manual));
    assert_eq!(seen.len(), 2);
}

#[test]
fn forcing_open_counts_a_trip_unless_already_open() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1));
    cb.force_open();
    assert_eq!(cb.snapshot().counts.trips, 1);
    cb.reset();
    fail(&cb, 1);
    assert_eq!(cb.snapshot().counts.trips, 2);
    cb.force_open();
    assert_eq!(
        cb.snapshot().counts.trips,
        2,
        "already open: no transition to open"
    );
}

#[test]
fn reset_clears_what_decides_a_trip_and_keeps_the_lifetime_totals() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(3)
            .failure_rate_threshold(0.9)
            .minimum_calls(100),
    );
    fail(&cb, 2);
    cb.force_open();
    for _ in 0..4 {
        assert!(cb.try_acquire().is_err());
    }
    cb.reset();
    let counts = cb.snapshot().counts;
    assert_eq!(
        (
            counts.consecutive_failures,
            counts.window_calls,
            counts.window_failures
        ),
        (0, 0, 0)
    );
    assert_eq!((counts.rejected, counts.trips), (4, 1));
    assert_eq!(counts.transitions, 2);
}

#[test]
fn every_verdict_counts_in_the_lifetime_totals_but_ignored_calls() {
    let clock = ManualClock::new();
    let cb = breaker(
        builder(&clock)
            .failure_threshold(2)
            .half_open_max_calls(1)
            .count_outcomes(true),
    );
    succeed(&cb, 3);
    cb.try_acquire().unwrap().ignore();
    drop(cb.try_acquire().unwrap());
    let stale = cb.try_acquire().unwrap();
    fail(&cb, 2);
    // Admitted before the trip: its verdict no longer moves the breaker, but it happened.
    stale.success();
    assert_eq!(cb.state(), State::Open);
    clock.advance(30 * SEC);
    cb.try_acquire().unwrap().failure_with_retry_after(SEC);
    let counts = cb.snapshot().counts;
    assert_eq!((counts.successes, counts.failures), (4, 3));
    cb.reset();
    let counts = cb.snapshot().counts;
    assert_eq!((counts.successes, counts.failures), (4, 3), "kept by reset");
}

#[test]
fn without_count_outcomes_the_totals_stay_zero() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(3));
    succeed(&cb, 2);
    fail(&cb, 1);
    let counts = cb.snapshot().counts;
    assert_eq!((counts.successes, counts.failures), (0, 0));
    cb.reconfigure(
        builder(&clock)
            .failure_threshold(3)
            .count_outcomes(true)
            .build()
            .unwrap(),
    );
    succeed(&cb, 1);
    assert_eq!(cb.snapshot().counts.successes, 1);
}

#[test]
fn disabled_admits_everything_and_never_trips_but_counts() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1));
    cb.disable();
    fail(&cb, 10);
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.snapshot().counts.consecutive_failures, 10);
}

#[test]
fn metrics_only_runs_the_state_machine_but_never_rejects() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(2).half_open_max_calls(1));
    cb.set_mode(Mode::MetricsOnly);
    let seen = recorder(&cb);
    fail(&cb, 2);
    assert_eq!(cb.state(), State::Open);
    for _ in 0..5 {
        cb.try_acquire().expect("metrics-only admits").failure();
    }
    let snap = cb.snapshot();
    assert_eq!((snap.counts.rejected, snap.counts.would_reject), (0, 5));
    // Shadow calls' failures did not extend or re-trip anything.
    assert_eq!(snap.counts.trips, 1);
    clock.advance(30 * SEC);
    cb.try_acquire().unwrap().success();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(seen.lock().unwrap().len(), 3);
    // Back to normal: the next trip rejects for real.
    cb.set_mode(Mode::Normal);
    fail(&cb, 2);
    assert!(cb.try_acquire().is_err());
}

#[test]
fn manual_trip_uses_the_given_reason() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock));
    cb.trip(Reason::GlobalHealth);
    let snap = cb.snapshot();
    assert_eq!(
        (snap.state, snap.reason),
        (State::Open, Some(Reason::GlobalHealth))
    );
    assert_eq!(snap.open_remaining, Some(30 * SEC));
}

#[test]
fn snapshot_reports_counts_and_time_since_change() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(3));
    fail(&cb, 2);
    clock.advance(5 * SEC);
    let snap = cb.snapshot();
    assert_eq!(snap.counts.consecutive_failures, 2);
    assert_eq!(snap.since_change, 5 * SEC);
    fail(&cb, 1);
    let _ = cb.try_acquire();
    let _ = cb.try_acquire();
    let snap = cb.snapshot();
    assert_eq!(
        (snap.counts.rejected, snap.counts.trips, snap.generation),
        (2, 1, 1)
    );
    assert_eq!(snap.since_change, Duration::ZERO);
}

#[test]
fn a_listener_may_call_back_into_the_breaker_without_deadlock() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1));
    let inner = cb.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    cb.on_state_change(move |t| {
        // Reads, snapshots and even another transition from inside the listener.
        let snap = inner.snapshot();
        log.lock().unwrap().push((t.to, snap.state));
        if t.to == State::Open && t.reason != Reason::Manual {
            inner.reset();
        }
    });
    fail(&cb, 1);
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(
        *seen.lock().unwrap(),
        [(State::Open, State::Open), (State::Closed, State::Closed)]
    );
}

#[test]
fn check_answers_as_admission_would_without_changing_or_counting_anything() {
    let clock = ManualClock::new();
    let cb = breaker(builder(&clock).failure_threshold(1).half_open_max_calls(1));
    assert!(cb.check().is_ok());
    fail(&cb, 1);
    let open = cb.check().unwrap_err();
    assert_eq!(open.retry_after(), 30 * SEC);
    assert_eq!(
        cb.snapshot().counts.rejected,
        0,
        "a check is not a rejection"
    );
    clock.advance(30 * SEC);
    // The open period is over: a call would be admitted.
    assert!(cb.check().is_ok());
    let probe = cb.try_acquire().unwrap();
    assert_eq!(
        cb.check().unwrap_err().retry_after(),
        SEC,
        "the only probe is taken"
    );
    probe.success();
    assert!(cb.check().is_ok());
    cb.force_open();
    assert!(cb.check().unwrap_err().is_forced());
    cb.set_mode(Mode::MetricsOnly);
    cb.trip(Reason::Manual);
    assert!(cb.check().is_ok(), "metrics-only never rejects");
}
