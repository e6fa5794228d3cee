//! Model checks of the races that matter, under every interleaving loom can find. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p seawall-breaker --test loom --release`.
#![cfg(loom)]

use std::time::Duration;

use loom::thread;
use seawall_breaker::{CircuitBreaker, Clock, Config, ManualClock, Reason, State};

fn breaker(clock: &ManualClock, threshold: u32, max: u32) -> CircuitBreaker {
    CircuitBreaker::new(
        Config::builder()
            .clock(Clock::manual(clock))
            .failure_threshold(threshold)
            .half_open_max_calls(max)
            .jitter(0.0)
            .build()
            .unwrap(),
    )
}

fn to_half_open(cb: &CircuitBreaker, clock: &ManualClock) {
    cb.trip(Reason::Manual);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(cb.state(), State::HalfOpen);
}

#[test]
fn two_threads_race_for_one_probe_slot() {
    loom::model(|| {
        let clock = ManualClock::new();
        let cb = breaker(&clock, 1, 1);
        to_half_open(&cb, &clock);
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let cb = cb.clone();
                thread::spawn(move || cb.try_acquire_owned().map(std::mem::forget).is_ok())
            })
            .collect();
        let won: usize = handles
            .into_iter()
            .map(|h| h.join().unwrap() as usize)
            .sum();
        assert_eq!(won, 1);
    });
}

#[test]
fn a_stale_release_racing_a_new_round_never_frees_its_slots() {
    loom::model(|| {
        let clock = ManualClock::new();
        let cb = breaker(&clock, 1, 1);
        to_half_open(&cb, &clock);
        let old = cb.try_acquire_owned().unwrap();
        let releaser = thread::spawn(move || drop(old));
        // Meanwhile the round fails and a new round starts and fills.
        cb.trip(Reason::Manual);
        clock.advance(Duration::from_secs(3600));
        let fresh = cb.try_acquire_owned();
        releaser.join().unwrap();
        let snap = cb.snapshot();
        assert!(snap.counts.half_open_in_flight <= 1);
        if let Ok(p) = fresh {
            assert!(p.is_probe());
            assert!(
                cb.try_acquire().is_err(),
                "the stale release freed a new-round slot"
            );
        }
    });
}

#[test]
fn concurrent_failures_trip_exactly_once() {
    loom::model(|| {
        let clock = ManualClock::new();
        let cb = breaker(&clock, 2, 1);
        let p1 = cb.try_acquire_owned().unwrap();
        let p2 = cb.try_acquire_owned().unwrap();
        let t = thread::spawn(move || p1.failure());
        p2.failure();
        t.join().unwrap();
        let snap = cb.snapshot();
        assert_eq!((snap.state, snap.counts.trips), (State::Open, 1));
    });
}

#[test]
fn a_probe_success_racing_a_probe_failure_ends_consistent() {
    loom::model(|| {
        let clock = ManualClock::new();
        let cb = breaker(&clock, 1, 2);
        to_half_open(&cb, &clock);
        let ok = cb.try_acquire_owned().unwrap();
        let bad = cb.try_acquire_owned().unwrap();
        let t = thread::spawn(move || ok.success());
        bad.failure();
        t.join().unwrap();
        let snap = cb.snapshot();
        // The failure wins whatever the order: two successes are needed to close.
        assert_eq!(snap.state, State::Open);
        assert_eq!(snap.counts.half_open_in_flight, 0);
    });
}
