//! One breaker per endpoint from a [`Registry`], driven by a manual clock: an overloaded
//! endpoint opens, the others keep working, and the open one recovers after probing.
//!
//! `cargo run -p seawall-breaker --example per_endpoint`

use std::time::Duration;

use seawall_breaker::{Clock, Config, ManualClock, Registry, State};

fn main() {
    let clock = ManualClock::new();
    let template = Config::builder()
        .failure_threshold(3)
        .open_timeout(Duration::from_secs(10))
        .half_open_max_calls(2)
        .jitter(0.0)
        .clock(Clock::manual(&clock))
        .build()
        .expect("a valid policy");
    let registry: Registry<&str> =
        Registry::new(template)
            .max_keys(100)
            .on_state_change(|endpoint, t| {
                println!("{endpoint}: {} -> {} ({})", t.from, t.to, t.reason);
            });

    // `/v1/messages` is overloaded; `/v1/models` is fine.
    for _ in 0..3 {
        let cb = registry.get(&"/v1/messages").expect("under max_keys");
        cb.try_acquire().expect("closed").failure();
        let ok = registry.get(&"/v1/models").expect("under max_keys");
        ok.try_acquire().expect("closed").success();
    }
    let messages = registry.get(&"/v1/messages").expect("under max_keys");
    let rejected = messages.try_acquire().expect_err("open");
    println!(
        "/v1/messages rejected at once: retry after {}s",
        rejected.retry_after_secs()
    );
    assert!(registry
        .get(&"/v1/models")
        .expect("exists")
        .try_acquire()
        .is_ok());

    // Ten seconds later it is half-open: two successful probes close it.
    clock.advance(Duration::from_secs(10));
    for _ in 0..2 {
        messages.try_acquire().expect("a probe").success();
    }
    assert_eq!(messages.state(), State::Closed);
    println!("snapshot: {:?}", messages.snapshot().counts);
}
