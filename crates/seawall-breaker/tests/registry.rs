//! The keyed registry: one breaker per key, the `max_keys` bound, idle eviction, and the
//! key passed to listeners.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall_breaker::{Clock, Config, ManualClock, Registry, RegistryFull, State};

fn template(clock: &ManualClock) -> Config {
    Config::builder()
        .clock(Clock::manual(clock))
        .failure_threshold(1)
        .build()
        .unwrap()
}

#[test]
fn keys_get_independent_breakers() {
    let clock = ManualClock::new();
    let reg: Registry<String> = Registry::new(template(&clock));
    reg.get("a").unwrap().try_acquire().unwrap().failure();
    assert_eq!(reg.get("a").unwrap().state(), State::Open);
    assert_eq!(reg.get("b").unwrap().state(), State::Closed);
    assert_eq!(reg.len(), 2);
}

#[test]
fn full_registry_evicts_idle_closed_breakers_first() {
    let clock = ManualClock::new();
    let reg: Registry<u32> = Registry::new(template(&clock))
        .max_keys(2)
        .idle_after(Duration::from_secs(60));
    reg.get(&1).unwrap();
    reg.get(&2).unwrap().try_acquire().unwrap().failure(); // open: never evicted
    assert_eq!(reg.get(&3).unwrap_err(), RegistryFull { max_keys: 2 });
    clock.advance(Duration::from_secs(61));
    reg.get(&3).expect("key 1 was idle and closed");
    assert!(reg.find(&1).is_none());
    assert_ne!(
        reg.find(&2).unwrap().state(),
        State::Closed,
        "tripped key kept"
    );
}

#[test]
fn a_breaker_still_held_elsewhere_is_not_evicted() {
    let clock = ManualClock::new();
    let reg: Registry<u32> = Registry::new(template(&clock)).idle_after(Duration::from_secs(1));
    let held = reg.get(&1).unwrap();
    reg.get(&2).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(reg.evict_idle(), 1);
    assert!(reg.find(&1).unwrap().ptr_eq(&held));
}

#[test]
fn listeners_are_told_the_key() {
    let clock = ManualClock::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let reg: Registry<&'static str> = Registry::new(template(&clock))
        .on_state_change(move |k, t| log.lock().unwrap().push((*k, t.to)));
    reg.get(&"anthropic /v1/messages")
        .unwrap()
        .try_acquire()
        .unwrap()
        .failure();
    clock.advance(Duration::from_secs(40));
    reg.tick();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("anthropic /v1/messages", State::Open),
            ("anthropic /v1/messages", State::HalfOpen)
        ]
    );
}

#[test]
fn create_and_evict_hooks_see_each_key_once() {
    let clock = ManualClock::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (c, e) = (log.clone(), log.clone());
    let reg: Registry<u32> = Registry::new(template(&clock))
        .idle_after(Duration::from_secs(1))
        .on_create(move |k, b| {
            b.set_mode(seawall_breaker::Mode::MetricsOnly);
            c.lock().unwrap().push(("create", *k));
        })
        .on_evict(move |k, _| e.lock().unwrap().push(("evict", *k)));
    assert_eq!(
        reg.get(&7).unwrap().mode(),
        seawall_breaker::Mode::MetricsOnly
    );
    reg.get(&7).unwrap();
    clock.advance(Duration::from_secs(2));
    reg.evict_idle();
    assert_eq!(*log.lock().unwrap(), [("create", 7), ("evict", 7)]);
}
