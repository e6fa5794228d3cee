//! Memory stays flat across a million transitions. In its own test binary so that no other
//! test allocates beside it while resident memory is measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use seawall_breaker::{CircuitBreaker, Clock, Config, ManualClock};

#[test]
fn a_million_transitions_keep_memory_flat() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .clock(Clock::manual(&clock))
        .failure_threshold(1)
        .half_open_max_calls(1)
        .build()
        .unwrap();
    let cb = CircuitBreaker::new(config);
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    cb.on_state_change(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
    });
    let cycle = |n: usize| {
        for _ in 0..n {
            cb.try_acquire().unwrap().failure(); // closed -> open
            clock.advance(cb.snapshot().open_remaining.unwrap());
            cb.try_acquire().unwrap().success(); // open -> half-open -> closed
        }
    };
    cycle(10_000); // warm up allocator pools
    let before = resident_kib();
    cycle(333_334);
    let after = resident_kib();
    assert!(count.load(Ordering::Relaxed) >= 1_000_000);
    if let (Some(b), Some(a)) = (before, after) {
        assert!(
            a <= b + 1024,
            "resident memory grew from {b} KiB to {a} KiB"
        );
    }
}

fn resident_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}
