//! Races: the half-open bound under many threads, stale releases across generations, and
//! exact counting when threads share one breaker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::Duration;

use seawall_breaker::{CircuitBreaker, Clock, Config, ManualClock, Permit, State, Window};

const SEC: Duration = Duration::from_secs(1);

fn half_open(clock: &ManualClock, max: u32) -> CircuitBreaker {
    let config = Config::builder()
        .clock(Clock::manual(clock))
        .jitter(0.0)
        .failure_threshold(1)
        .half_open_max_calls(max)
        .half_open_timeout(3600 * SEC)
        .build()
        .unwrap();
    let cb = CircuitBreaker::new(config);
    cb.try_acquire().unwrap().failure();
    clock.advance(30 * SEC);
    assert_eq!(cb.state(), State::HalfOpen);
    cb
}

#[test]
fn half_open_bound_holds_with_eight_threads_acquiring_and_dropping() {
    let clock = ManualClock::new();
    let cb = half_open(&clock, 3);
    let held = AtomicUsize::new(0);
    let most = AtomicUsize::new(0);
    let admitted = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (cb, held, most, admitted) = (&cb, &held, &most, &admitted);
            s.spawn(move || {
                for i in 0..20_000 {
                    if let Ok(p) = cb.try_acquire() {
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        admitted.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                        held.fetch_sub(1, Ordering::SeqCst);
                        if (i + t) % 2 == 0 {
                            p.ignore();
                        } else {
                            drop(p); // cancellation
                        }
                    }
                }
            });
        }
    });
    assert!(
        most.load(Ordering::SeqCst) <= 3,
        "{} probes at once",
        most.load(Ordering::SeqCst)
    );
    assert!(admitted.load(Ordering::Relaxed) >= 3);
    let snap = cb.snapshot();
    assert_eq!(
        (snap.state, snap.counts.half_open_in_flight),
        (State::HalfOpen, 0)
    );
}

#[test]
fn stale_releases_never_enlarge_a_later_round() {
    let clock = ManualClock::new();
    let cb = half_open(&clock, 2);
    // Round 1: two probes taken, then the round fails through a third party.
    let a = cb.try_acquire().unwrap();
    let b = cb.try_acquire().unwrap();
    cb.trip(seawall_breaker::Reason::Manual);
    clock.advance(120 * SEC);
    assert_eq!(cb.state(), State::HalfOpen);
    // Round 2: fill it, then release round 1's permits late.
    let c = cb.try_acquire().unwrap();
    let d = cb.try_acquire().unwrap();
    drop(a);
    b.ignore();
    assert!(
        cb.try_acquire().is_err(),
        "stale releases must not free round-2 slots"
    );
    assert_eq!(cb.snapshot().counts.half_open_in_flight, 2);
    drop((c, d));
    assert_eq!(cb.snapshot().counts.half_open_in_flight, 0);
}

#[test]
fn bound_holds_while_another_thread_cycles_the_breaker() {
    let clock = ManualClock::new();
    let cb = half_open(&clock, 2);
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(5);
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (cb, stop, barrier) = (&cb, &stop, &barrier);
            s.spawn(move || {
                barrier.wait();
                let mut kept: Vec<Permit<'_>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(p) = cb.try_acquire() {
                        kept.push(p);
                    }
                    if kept.len() > 3 {
                        // Release late, possibly generations later.
                        kept.remove(0).ignore();
                    }
                    let snap = cb.snapshot();
                    assert!(snap.counts.half_open_in_flight + snap.counts.half_open_successes <= 2);
                }
            });
        }
        barrier.wait();
        for _ in 0..2_000 {
            cb.trip(seawall_breaker::Reason::Manual);
            clock.advance(3600 * SEC);
            cb.tick();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let snap = cb.snapshot();
    assert!(snap.counts.half_open_in_flight <= 2);
    assert_eq!(snap.counts.half_open_successes, 0);
}

#[test]
fn consecutive_failures_are_counted_exactly_across_threads() {
    let config = Config::builder().failure_threshold(4_000).build().unwrap();
    let cb = CircuitBreaker::new(config);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..999 {
                    cb.try_acquire().unwrap().failure();
                }
            });
        }
    });
    assert_eq!(cb.snapshot().counts.consecutive_failures, 3_996);
    for _ in 0..4 {
        cb.try_acquire().unwrap().failure();
    }
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn count_window_totals_are_exact_across_threads() {
    let config = Config::builder()
        .failure_threshold(u32::MAX)
        .failure_rate_threshold(1.0)
        .window(Window::Count(1_000))
        .minimum_calls(1_000)
        .build()
        .unwrap();
    let cb = CircuitBreaker::new(config);
    std::thread::scope(|s| {
        for t in 0..4 {
            let cb = &cb;
            s.spawn(move || {
                for i in 0..5_000 {
                    let p = cb.try_acquire().unwrap();
                    if (i + t) % 4 == 0 {
                        p.failure()
                    } else {
                        p.success()
                    }
                }
            });
        }
    });
    let c = cb.snapshot().counts;
    assert_eq!(c.window_calls, 1_000);
    assert!(c.window_failures <= 1_000);
    assert_eq!(cb.state(), State::Closed);
}
