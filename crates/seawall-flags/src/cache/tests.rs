//! The cache's behaviour over paused Tokio time with a scripted in-memory fetcher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::sleep;

use crate::{FetchError, FetchResult, Fetcher, FlagCache, FlagObserver, FlagSet};

const FLAG: &str = "seawall.circuit_breaker.enabled";

/// What the scripted fetcher answers next.
#[derive(Clone)]
enum Reply {
    Flags(FlagSet),
    Fail(FetchError),
    Hang,
    Panic,
}

/// A fetcher that answers `reply` (after `delay`) and counts its calls.
#[derive(Clone)]
struct Script {
    calls: Arc<AtomicUsize>,
    reply: Arc<Mutex<Reply>>,
    delay: Duration,
}

impl Script {
    fn new(reply: Reply) -> Self {
        Script {
            calls: Arc::default(),
            reply: Arc::new(Mutex::new(reply)),
            delay: Duration::ZERO,
        }
    }

    fn flag(value: &str) -> Self {
        Script::new(flags(value))
    }

    fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn flags(value: &str) -> Reply {
    Reply::Flags(FlagSet::new([(FLAG, value)]))
}

fn down() -> Reply {
    Reply::Fail(FetchError::other("flag service down"))
}

impl Fetcher for Script {
    async fn fetch(&self, _host: &str) -> Result<FlagSet, FetchError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let reply = self.reply.lock().unwrap().clone();
        if !self.delay.is_zero() {
            sleep(self.delay).await;
        }
        match reply {
            Reply::Flags(set) => Ok(set),
            Reply::Fail(error) => Err(error),
            Reply::Hang => std::future::pending().await,
            Reply::Panic => panic!("scripted fetcher panic"),
        }
    }
}

/// Moves paused time by `by` and lets the timers due by then run (the cache's TTL alarms too).
async fn elapse(by: Duration) {
    tokio::time::advance(by).await;
    tokio::task::yield_now().await;
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cache(script: &Script) -> FlagCache {
    FlagCache::builder(script.clone())
        .ttl(secs(60))
        .min_ttl(secs(10))
        .max_ttl(secs(600))
        .idle_grace(secs(30))
        .fetch_timeout(secs(5))
        .build()
        .unwrap()
}

fn handles(cache: &FlagCache, host: &str) -> Option<usize> {
    let snapshot = cache.snapshot();
    let row = snapshot.hosts.iter().find(|row| row.host == host)?;
    Some(row.handles)
}

#[tokio::test(start_paused = true)]
async fn handles_count_up_on_acquire_and_clone_and_down_on_drop() {
    let script = Script::flag("true");
    let cache = cache(&script);
    let a = cache.acquire("db.example").unwrap();
    let b = cache.acquire("HTTPS://DB.example:443/x").unwrap();
    let c = b.clone();
    assert_eq!(handles(&cache, "db.example"), Some(3));
    assert_eq!(cache.host_count(), 1);
    drop(b);
    assert_eq!(a.snapshot().handles, 2);
    drop((a, c));
    assert_eq!(handles(&cache, "db.example"), Some(0));
    assert_eq!(script.calls(), 0, "acquiring never fetches");
}

#[tokio::test(start_paused = true)]
async fn entry_outlives_its_last_handle_by_the_grace_then_goes() {
    let script = Script::flag("true");
    let cache = cache(&script);
    drop(cache.acquire("db.example").unwrap());
    sleep(secs(29)).await;
    assert_eq!(cache.host_count(), 1);
    assert_eq!(
        cache.snapshot().hosts[0].evicted_in,
        Some(secs(1)),
        "the admin view shows when the idle entry goes"
    );
    sleep(secs(2)).await;
    assert_eq!(cache.host_count(), 0);
    assert!(cache.snapshot().hosts.is_empty());
}

#[tokio::test(start_paused = true)]
async fn reacquire_within_grace_reuses_entry_and_values_without_fetching() {
    let script = Script::flag("false");
    let cache = cache(&script);
    let first = cache.acquire("db.example").unwrap();
    assert!(!first.get_bool(FLAG, true).await);
    drop(first);
    elapse(secs(20)).await;
    let again = cache.acquire("db.example").unwrap();
    assert!(!again.get_bool(FLAG, true).await);
    assert!(!again.get_bool_now(FLAG, true));
    assert_eq!(script.calls(), 1);
    assert_eq!(again.snapshot().evicted_in, None);
}

#[tokio::test(start_paused = true)]
async fn reacquire_after_grace_starts_cold() {
    let script = Script::flag("false");
    let cache = cache(&script);
    let first = cache.acquire("db.example").unwrap();
    assert!(!first.get_bool(FLAG, true).await);
    drop(first);
    sleep(secs(31)).await;
    let again = cache.acquire("db.example").unwrap();
    assert!(again.get_bool_now(FLAG, true), "a new entry is cold");
    assert!(!again.get_bool(FLAG, true).await);
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn values_expire_after_the_ttl_and_are_fetched_again() {
    let script = Script::flag("true");
    let cache = cache(&script);
    let handle = cache.acquire("db.example").unwrap();
    assert!(handle.get_bool(FLAG, false).await);
    script.set(flags("false"));
    elapse(secs(59)).await;
    assert!(handle.get_bool(FLAG, false).await, "still fresh");
    assert_eq!(script.calls(), 1);
    elapse(secs(1)).await;
    assert!(!handle.get_bool(FLAG, true).await, "expired: fetched again");
    assert_eq!(script.calls(), 2);
    let row = handle.snapshot();
    assert!(row.fresh);
    assert_eq!((row.age, row.ttl), (Some(Duration::ZERO), Some(secs(60))));
}

#[tokio::test(start_paused = true)]
async fn server_ttl_wins_within_min_and_max() {
    for (server, effective) in [(5, 10), (120, 120), (3_600, 600)] {
        let script = Script::new(Reply::Flags(
            FlagSet::new([(FLAG, "true")]).with_ttl(secs(server)),
        ));
        let cache = cache(&script);
        let handle = cache.acquire("db.example").unwrap();
        assert!(handle.get_bool(FLAG, false).await);
        assert_eq!(handle.snapshot().ttl, Some(secs(effective)));
        elapse(secs(effective - 1)).await;
        assert!(handle.get_bool(FLAG, false).await);
        assert_eq!(script.calls(), 1, "server ttl {server}s");
        elapse(secs(1)).await;
        assert!(handle.get_bool(FLAG, false).await);
        assert_eq!(script.calls(), 2, "server ttl {server}s");
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_cold_readers_share_one_fetch() {
    let mut script = Script::flag("false");
    script.delay = secs(1);
    let cache = cache(&script);
    let readers: Vec<_> = (0..1_000)
        .map(|_| {
            let handle = cache.acquire("db.example").unwrap();
            tokio::spawn(async move { handle.get_bool(FLAG, true).await })
        })
        .collect();
    for reader in readers {
        assert!(!reader.await.unwrap());
    }
    assert_eq!(script.calls(), 1);
    assert_eq!(cache.snapshot().fetches.ok, 1);
}

#[tokio::test(start_paused = true)]
async fn failed_fetch_keeps_last_good_values_and_backs_off_exponentially() {
    let script = Script::flag("false");
    let cache = cache(&script);
    let handle = cache.acquire("db.example").unwrap();
    assert!(!handle.get_bool(FLAG, true).await);
    script.set(down());
    elapse(secs(60)).await;
    // Read every second for ten minutes: fetches at +0, 1, 3, 7, 15, 31, 63, 127, 255, 511 s.
    for _ in 0..600 {
        assert!(
            !handle.get_bool(FLAG, true).await,
            "the stale value is kept"
        );
        assert!(!handle.get_bool_now(FLAG, true));
        elapse(secs(1)).await;
    }
    assert_eq!(script.calls(), 1 + 10);
    let row = handle.snapshot();
    assert_eq!(row.consecutive_failures, 10);
    assert_eq!(row.last_error.as_deref(), Some("flag service down"));
    assert_eq!(row.fetches.error, 10);
    assert!(!row.fresh);

    script.set(flags("true"));
    elapse(row.next_fetch_in).await;
    assert!(
        handle.get_bool(FLAG, false).await,
        "recovers after the back-off"
    );
    assert_eq!(handle.snapshot().consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn retry_after_postpones_the_next_fetch() {
    let script = Script::new(Reply::Fail(FetchError::Status {
        status: 429,
        retry_after: Some(secs(120)),
    }));
    let cache = cache(&script);
    let handle = cache.acquire("db.example").unwrap();
    assert!(
        handle.get_bool(FLAG, true).await,
        "cold and failing: the default"
    );
    assert_eq!(handle.snapshot().next_fetch_in, secs(120));
    for _ in 0..119 {
        elapse(secs(1)).await;
        handle.get_bool(FLAG, true).await;
    }
    assert_eq!(script.calls(), 1);
    elapse(secs(1)).await;
    handle.get_bool(FLAG, true).await;
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn hosts_are_independent() {
    let script = Script::flag("true");
    let cache = cache(&script);
    let a = cache.acquire("a.example").unwrap();
    let b = cache.acquire("b.example").unwrap();
    assert!(a.get_bool(FLAG, false).await);
    script.set(down());
    assert!(!b.get_bool(FLAG, false).await, "b's failure is b's");
    assert!(a.get_bool(FLAG, false).await);
    let snapshot = cache.snapshot();
    let hosts: Vec<_> = snapshot.hosts.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(hosts, ["a.example", "b.example"]);
    assert_eq!(snapshot.hosts[0].consecutive_failures, 0);
    assert_eq!(snapshot.hosts[1].consecutive_failures, 1);
    assert_eq!((snapshot.fetches.ok, snapshot.fetches.error), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn non_blocking_read_on_a_cold_host_returns_the_default_and_fetches_once() {
    let mut script = Script::flag("false");
    script.delay = secs(1);
    let cache = cache(&script);
    let handle = cache.acquire("db.example").unwrap();
    for _ in 0..100 {
        assert!(handle.get_bool_now(FLAG, true));
        assert_eq!(handle.get_str_now(FLAG), None);
    }
    tokio::task::yield_now().await;
    assert!(handle.snapshot().fetching);
    sleep(secs(2)).await;
    assert!(!handle.get_bool_now(FLAG, true));
    assert_eq!(handle.get_str_now(FLAG).as_deref(), Some("false"));
    assert_eq!(script.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn non_blocking_read_serves_stale_values_while_refreshing() {
    let script = Script::flag("false");
    let cache = cache(&script);
    let handle = cache.acquire("db.example").unwrap();
    assert!(!handle.get_bool(FLAG, true).await);
    script.set(flags("true"));
    elapse(secs(60)).await;
    assert!(!handle.get_bool_now(FLAG, false), "stale, refresh started");
    tokio::task::yield_now().await;
    assert!(handle.get_bool_now(FLAG, false));
    assert_eq!(script.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn fetch_timeout_bounds_a_hanging_fetcher() {
    let script = Script::new(Reply::Hang);
    let cache = cache(&script);
    let handle = cache.acquire("db.example").unwrap();
    let started = tokio::time::Instant::now();
    assert!(handle.get_bool(FLAG, true).await);
    assert_eq!(
        started.elapsed(),
        secs(5),
        "waited exactly fetch_timeout (paused time)"
    );
    tokio::task::yield_now().await;
    let row = handle.snapshot();
    assert_eq!(row.fetches.timeout, 1);
    assert!(!row.fetching);
    assert!(row.last_error.unwrap().contains("timed out"));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_fetcher_counts_as_a_failure_and_backs_off() {
    let script = Script::new(Reply::Panic);
    let cache = cache(&script);
    let handle = cache.acquire("db.example").unwrap();
    assert!(handle.get_bool(FLAG, true).await);
    assert!(handle.get_bool(FLAG, true).await);
    assert_eq!(script.calls(), 1, "no second fetch inside the back-off");
    let row = handle.snapshot();
    assert_eq!((row.consecutive_failures, row.fetches.error), (1, 1));
    assert!(!row.fetching);
}

#[test]
fn handles_and_caches_can_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<FlagCache>();
    send_sync::<crate::FlagHandle>();
}

#[test]
fn reads_outside_a_runtime_answer_from_the_cache_without_fetching() {
    let script = Script::flag("false");
    let cache = cache(&script);
    let handle = cache.acquire("db.example").unwrap();
    assert!(handle.get_bool_now(FLAG, true));
    drop(handle);
    assert_eq!(script.calls(), 0);
    assert_eq!(
        cache.host_count(),
        1,
        "idle until an acquire or snapshot after the grace"
    );
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl FlagObserver for Arc<Recorder> {
    fn fetch_finished(&self, host: &str, result: FetchResult) {
        self.push(format!("fetch {host} {}", result.as_str()));
    }
    fn hosts_changed(&self, hosts: usize) {
        self.push(format!("hosts {hosts}"));
    }
    fn handles_changed(&self, host: &str, handles: usize) {
        self.push(format!("handles {host} {handles}"));
    }
    fn host_evicted(&self, host: &str) {
        self.push(format!("evicted {host}"));
    }
}

impl Recorder {
    fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
}

#[tokio::test(start_paused = true)]
async fn the_observer_sees_fetches_hosts_and_handles() {
    let recorder = Arc::new(Recorder::default());
    let script = Script::flag("true");
    let cache = FlagCache::builder(script.clone())
        .idle_grace(secs(30))
        .observer(Arc::clone(&recorder))
        .build()
        .unwrap();
    let handle = cache.acquire("db.example").unwrap();
    handle.get_bool(FLAG, false).await;
    let twin = handle.clone();
    drop((handle, twin));
    sleep(secs(31)).await;
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            "hosts 1",
            "handles db.example 1",
            "fetch db.example ok",
            "handles db.example 2",
            "handles db.example 1",
            "handles db.example 0",
            "evicted db.example",
            "hosts 0",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_hosts_are_refused_at_acquire() {
    let cache = cache(&Script::flag("true"));
    assert!(matches!(
        cache.acquire("ftp://db.example"),
        Err(crate::Error::InvalidHost { .. })
    ));
    assert_eq!(cache.host_count(), 0);
}
