//! End to end: a `FlagCache` with the `HttpFetcher` against a real HTTP flag service on
//! 127.0.0.1, counting the service's requests. Time moves only by `jump` (paused-time advance);
//! socket I/O runs in real time, and nothing asserts on wall-clock durations.

mod support;

use std::time::Duration;

use seawall_flags::{FlagCache, HttpFetcher};
use support::{jump, secs, MockFlagServer, Reply};

const BREAKER: &str = "seawall.circuit_breaker.enabled";
const HOST: &str = "db.example";

/// TTL 300 s within [60 s, 3600 s], grace 120 s, fetch timeout 30 s, back-off 1 s doubling to 300 s.
fn cache_for(server: &MockFlagServer) -> FlagCache {
    FlagCache::builder(HttpFetcher::new(&server.url_template()).unwrap())
        .ttl(secs(300))
        .min_ttl(secs(60))
        .max_ttl(secs(3600))
        .idle_grace(secs(120))
        .fetch_timeout(secs(30))
        .backoff(secs(1), secs(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn fetches_the_normalised_host_with_the_seawall_user_agent() {
    let server = MockFlagServer::start(Reply::flag(BREAKER, "false", None)).await;
    let cache = cache_for(&server);
    let handle = cache
        .acquire("HTTPS://DB.Example:8443/sql/1.0?x=1")
        .unwrap();
    assert!(!handle.get_bool(BREAKER, true).await);
    assert_eq!(server.requests_for("db.example:8443"), 1);
    let agent = format!("seawall/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(server.user_agents(), [agent]);
}

#[tokio::test]
async fn handles_are_counted_and_the_entry_goes_after_the_grace() {
    let server = MockFlagServer::start(Reply::flag(BREAKER, "true", None)).await;
    let cache = cache_for(&server);
    let a = cache.acquire(HOST).unwrap();
    let b = cache.acquire(HOST).unwrap();
    assert!(a.get_bool(BREAKER, false).await);
    assert_eq!(cache.snapshot().hosts[0].handles, 2);
    drop(a);
    assert_eq!(cache.snapshot().hosts[0].handles, 1);
    drop(b);
    assert_eq!(cache.snapshot().hosts[0].handles, 0);

    jump(secs(119)).await;
    let again = cache.acquire(HOST).unwrap();
    assert!(
        again.get_bool(BREAKER, false).await,
        "reused within the grace"
    );
    assert_eq!(server.requests(), 1);
    drop(again);

    jump(secs(121)).await;
    assert_eq!(cache.host_count(), 0, "gone after the grace");
    let cold = cache.acquire(HOST).unwrap();
    assert!(cold.get_bool(BREAKER, false).await);
    assert_eq!(server.requests(), 2, "a new entry fetches again");
}

#[tokio::test]
async fn values_expire_with_the_server_ttl_and_are_refreshed() {
    let server = MockFlagServer::start(Reply::flag(BREAKER, "true", Some(120))).await;
    let cache = cache_for(&server);
    let handle = cache.acquire(HOST).unwrap();
    assert!(handle.get_bool(BREAKER, false).await);
    server.reply(Reply::flag(BREAKER, "false", Some(120)));

    jump(secs(119)).await;
    assert!(
        handle.get_bool(BREAKER, false).await,
        "fresh for the server's 120 s"
    );
    assert_eq!(server.requests(), 1);

    jump(secs(1)).await;
    assert!(!handle.get_bool(BREAKER, true).await, "refreshed at 120 s");
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn server_ttl_is_clamped_to_min_and_max() {
    for (server_ttl, effective) in [(1, 60), (900, 900), (86_400, 3600)] {
        let server = MockFlagServer::start(Reply::flag(BREAKER, "true", Some(server_ttl))).await;
        let cache = cache_for(&server);
        let handle = cache.acquire(HOST).unwrap();
        assert!(handle.get_bool(BREAKER, false).await);
        assert_eq!(handle.snapshot().ttl, Some(secs(effective)));
        jump(secs(effective - 1)).await;
        assert!(handle.get_bool(BREAKER, false).await);
        assert_eq!(server.requests(), 1, "ttl_seconds {server_ttl}");
        jump(secs(1)).await;
        assert!(handle.get_bool(BREAKER, false).await);
        assert_eq!(server.requests(), 2, "ttl_seconds {server_ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cold_readers_cause_exactly_one_request() {
    let server =
        MockFlagServer::start(Reply::Gated(Box::new(Reply::flag(BREAKER, "false", None)))).await;
    let cache = cache_for(&server);
    let readers: Vec<_> = (0..1_000)
        .map(|_| {
            let handle = cache.acquire(HOST).unwrap();
            tokio::spawn(async move { handle.get_bool(BREAKER, true).await })
        })
        .collect();
    server.wait_for_requests(1).await;
    assert!(cache.snapshot().hosts[0].fetching);
    server.release(1_000);
    for reader in readers {
        assert!(!reader.await.unwrap(), "every reader got the fetched value");
    }
    assert_eq!(server.requests(), 1);
    assert_eq!(cache.snapshot().fetches.ok, 1);
}

#[tokio::test]
async fn a_failing_server_keeps_the_stale_value_and_is_not_hammered() {
    let server = MockFlagServer::start(Reply::flag(BREAKER, "false", None)).await;
    let cache = cache_for(&server);
    let handle = cache.acquire(HOST).unwrap();
    assert!(!handle.get_bool(BREAKER, true).await);
    server.reply(Reply::status(500, None));
    jump(secs(300)).await;

    // Ten simulated minutes of reads, one a second, from a handle and from new connections.
    for second in 0..600 {
        assert!(
            !handle.get_bool(BREAKER, true).await,
            "stale value at +{second}s"
        );
        assert!(!handle.get_bool_now(BREAKER, true));
        let connection = cache.acquire(HOST).unwrap();
        assert!(!connection.get_bool(BREAKER, true).await);
        jump(secs(1)).await;
    }
    // Back-off 1, 2, 4, … 256, 300 s: attempts at +0, 1, 3, 7, 15, 31, 63, 127, 255, 511 s.
    let failed = server.requests() - 1;
    assert!(
        (9..=11).contains(&failed),
        "{failed} failed requests in 10 min"
    );
    let row = handle.snapshot();
    assert_eq!(row.consecutive_failures as usize, failed);
    assert_eq!(
        row.last_error.as_deref(),
        Some("flag service answered HTTP 500")
    );
    assert_eq!(row.flags.get(BREAKER).map(String::as_str), Some("false"));
}

#[tokio::test]
async fn retry_after_seconds_are_honoured() {
    let server = MockFlagServer::start(Reply::status(429, Some("600"))).await;
    let cache = cache_for(&server);
    let handle = cache.acquire(HOST).unwrap();
    assert!(
        handle.get_bool(BREAKER, true).await,
        "cold and refused: the default"
    );
    for _ in 0..59 {
        jump(secs(10)).await;
        assert!(handle.get_bool(BREAKER, true).await);
    }
    assert_eq!(server.requests(), 1, "silent for the 600 s asked");
    server.reply(Reply::flag(BREAKER, "false", None));
    jump(secs(10)).await;
    assert!(!handle.get_bool(BREAKER, true).await);
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn hosts_are_independent() {
    let server = MockFlagServer::start(Reply::flag(BREAKER, "false", None)).await;
    server.reply_for("down.example", Reply::status(503, None));
    let cache = cache_for(&server);
    let up = cache.acquire("up.example").unwrap();
    let down = cache.acquire("down.example").unwrap();
    assert!(!up.get_bool(BREAKER, true).await);
    assert!(down.get_bool(BREAKER, true).await);
    jump(secs(1)).await;
    assert!(down.get_bool(BREAKER, true).await);
    assert_eq!(server.requests_for("up.example"), 1);
    assert_eq!(server.requests_for("down.example"), 2);
    let snapshot = cache.snapshot();
    assert_eq!(snapshot.hosts.len(), 2);
    assert_eq!((snapshot.fetches.ok, snapshot.fetches.error), (1, 2));
}

#[tokio::test]
async fn a_flag_that_is_off_does_not_make_new_connections_fetch_again() {
    let server = MockFlagServer::start(Reply::flag(BREAKER, "false", None)).await;
    let cache = cache_for(&server);
    for _ in 0..50 {
        let connection = cache.acquire(HOST).unwrap();
        assert!(!connection.get_bool(BREAKER, true).await);
        assert!(!connection.get_bool_now(BREAKER, true));
        drop(connection);
        jump(secs(1)).await;
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn non_blocking_read_on_a_cold_host_returns_the_default_and_fetches_once() {
    let server =
        MockFlagServer::start(Reply::Gated(Box::new(Reply::flag(BREAKER, "false", None)))).await;
    let cache = cache_for(&server);
    let handle = cache.acquire(HOST).unwrap();
    for _ in 0..100 {
        assert!(
            handle.get_bool_now(BREAKER, true),
            "cold: the default, at once"
        );
    }
    server.wait_for_requests(1).await;
    assert!(
        handle.get_bool_now(BREAKER, true),
        "still cold while the fetch runs"
    );
    server.release(1);
    assert!(
        !handle.get_bool(BREAKER, true).await,
        "joins the running fetch"
    );
    assert!(!handle.get_bool_now(BREAKER, true));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn fetch_timeout_bounds_a_hanging_server() {
    let server = MockFlagServer::start(Reply::Hang).await;
    let cache = cache_for(&server);
    let handle = cache.acquire(HOST).unwrap();
    let reader = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.get_bool(BREAKER, true).await })
    };
    server.wait_for_requests(1).await;
    jump(secs(30)).await;
    assert!(
        reader.await.unwrap(),
        "the default once fetch_timeout passed"
    );
    tokio::task::yield_now().await;
    let row = handle.snapshot();
    assert_eq!(row.fetches.timeout, 1);
    assert!(!row.fetching);
    assert_eq!(row.consecutive_failures, 1);
    assert!(row.next_fetch_in > Duration::ZERO, "then backs off");
}

#[tokio::test]
async fn an_invalid_body_is_a_failure_that_keeps_the_default() {
    let server = MockFlagServer::start(Reply::Answer {
        status: 200,
        body: "<html>".to_owned(),
        retry_after: None,
    })
    .await;
    let cache = cache_for(&server);
    let handle = cache.acquire(HOST).unwrap();
    assert!(handle.get_bool(BREAKER, true).await);
    let row = handle.snapshot();
    assert!(row.last_error.unwrap().starts_with("invalid flag response"));
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn the_snapshot_serialises_for_the_admin_endpoint() {
    let server = MockFlagServer::start(Reply::flag(BREAKER, "false", Some(900))).await;
    let cache = cache_for(&server);
    let handle = cache.acquire(HOST).unwrap();
    handle.get_bool(BREAKER, true).await;
    let json = serde_json::to_value(cache.snapshot()).unwrap();
    let row = &json["hosts"][0];
    assert_eq!(row["host"], HOST);
    assert_eq!(row["handles"], 1);
    assert_eq!(row["flags"][BREAKER], "false");
    assert_eq!(row["ttl_seconds"], 900.0);
    assert!(row["age_seconds"].is_f64());
    assert_eq!(row["last_error"], serde_json::Value::Null);
    assert_eq!(json["fetches"]["ok"], 1);
}
