//! The fleet over a real `redis-server` and real `seawall` processes: a storm on one replica
//! opens all; failures spread over the replicas add up; a quorum of two ignores one replica's trip; one probe round for the whole fleet;
//! an operator's action on one replica applies to all; Redis killed and restarted mid-storm,
//! or hung, fails no request and the fleet converges; a replica started mid-outage rejects at once.
//!
//! Skipped (with a message) when `redis-server` is missing, except under CI.

mod common;

use common::redis::Redis;
use common::replica::Replica;
use common::upstream::{Gate, MockUpstream, Reply};
use common::wait::eventually;
use serde_json::Value;

/// The YAML of a replica named `node` of a fleet with `quorum`, forwarding provider `p` to
/// `upstream` (breakers: three failures trip, `open` open, two probes).
fn fleet_yaml(upstream: &MockUpstream, node: &str, quorum: u32, open: &str) -> String {
    format!(
        "providers:
  - name: p
    kind: generic
    base_url: '{}'
    circuit_breaker: {{ failure_threshold: 3, open_timeout: {open}, jitter: 0, half_open_max_calls: 2 }}
cluster: {{ redis_url_env: SEAWALL_REDIS_URL, node_id: {node}, trip_quorum: {quorum} }}
",
        upstream.url()
    )
}

/// Starts replicas `names` (the real binary; a blocking start, off the runtime's threads).
async fn replicas(
    redis: &Redis,
    upstream: &MockUpstream,
    names: &[&str],
    quorum: u32,
    open: &str,
) -> Vec<Replica> {
    let mut started = Vec::new();
    for name in names {
        let yaml = fleet_yaml(upstream, name, quorum, open);
        let url = redis.url();
        let replica = tokio::task::spawn_blocking(move || Replica::start(&yaml, &url))
            .await
            .unwrap();
        started.push(replica);
    }
    started
}

/// Whether `replica`'s breaker of `/p{endpoint}` is open.
async fn is_open(replica: &Replica, endpoint: &str) -> bool {
    let b = replica.breaker("p", endpoint).await;
    b.is_some_and(|b| b["state"] == "open")
}

/// The value of the sample `series` in `text`, or 0.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Trips `/p{endpoint}` on `replica` with three failing calls (the upstream must fail them).
async fn trip(replica: &Replica, endpoint: &str) {
    for _ in 0..3 {
        assert_eq!(replica.post(&format!("/p{endpoint}")).await, 503);
    }
    assert!(is_open(replica, endpoint).await);
}

#[tokio::test]
async fn a_storm_on_one_replica_opens_the_whole_fleet() {
    let Some(redis) = Redis::start() else { return };
    let upstream = MockUpstream::start(Reply::status(503)).await;
    let fleet = replicas(&redis, &upstream, &["a", "b", "c"], 1, "60s").await;
    trip(&fleet[0], "/v1/messages").await;
    for replica in &fleet[1..] {
        eventually("the others open the breaker", || {
            is_open(replica, "/v1/messages")
        })
        .await;
        let b = replica.breaker("p", "/v1/messages").await.unwrap();
        assert_eq!(b["reason"], "remote", "{b}");
        assert_eq!(b["tripped_by"], "a", "{b}");
    }
    // The failures that reached the provider: the threshold, not three times it.
    assert_eq!(upstream.count(), 3);
    for replica in &fleet[1..] {
        for _ in 0..5 {
            assert_eq!(replica.post("/p/v1/messages").await, 503);
        }
    }
    assert_eq!(upstream.count(), 3, "the others rejected without calling");
    let metrics = fleet[1].metrics().await;
    let remote = r#"seawall_circuit_breaker_trips_total{kind="provider",name="p",endpoint="/v1/messages",model="",reason="remote"}"#;
    assert_eq!(sample(&metrics, remote), 1.0, "{metrics}");
    let received = r#"seawall_cluster_messages_total{direction="received",type="trip"}"#;
    assert_eq!(sample(&metrics, received), 1.0);
    assert_eq!(sample(&metrics, "seawall_cluster_connected"), 1.0);
    assert!(sample(&metrics, "seawall_cluster_propagation_seconds_count") >= 1.0);
    let view = fleet[2].admin_json("/v1/cluster").await;
    assert_eq!(view["open"][0]["first"], "a", "{view}");
    let nodes: Vec<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["a", "b", "c"], "{view}");
}

#[tokio::test]
async fn failures_spread_over_the_fleet_add_up_to_the_threshold() {
    let Some(redis) = Redis::start() else { return };
    let upstream = MockUpstream::start(Reply::status(503)).await;
    let fleet = replicas(&redis, &upstream, &["a", "b", "c"], 1, "60s").await;
    // One failure on each replica, as a load balancer spreads a storm: three in all.
    for replica in &fleet {
        assert_eq!(replica.post("/p/v1/messages").await, 503);
    }
    for replica in &fleet {
        eventually("the fleet opens on three failures in all", || {
            is_open(replica, "/v1/messages")
        })
        .await;
    }
    assert_eq!(
        upstream.count(),
        3,
        "failure_threshold failures reached the provider, no more"
    );
    let b = fleet[2].breaker("p", "/v1/messages").await.unwrap();
    assert_eq!(
        b["tripped_by"], "a",
        "the replica whose run began first: {b}"
    );
}

#[tokio::test]
async fn a_quorum_of_two_ignores_a_single_replicas_trip() {
    let Some(redis) = Redis::start() else { return };
    let upstream = MockUpstream::start(Reply::status(503)).await;
    // A 429 with a hint opens the fleet whatever the quorum: the barrier below.
    upstream.route("/v1/hinted", Reply::status(429).header("retry-after", "60"));
    let fleet = replicas(&redis, &upstream, &["a", "b", "c"], 2, "60s").await;
    trip(&fleet[0], "/v1/messages").await;
    assert_eq!(fleet[0].post("/p/v1/hinted").await, 429);
    eventually("the hinted trip reaches b", || {
        is_open(&fleet[1], "/v1/hinted")
    })
    .await;
    // One replica's messages arrive in order: the first trip, had it been told, came first.
    assert!(!is_open(&fleet[1], "/v1/messages").await);
    assert!(!is_open(&fleet[2], "/v1/messages").await);
    // A second replica's trip reaches the quorum: the third follows.
    trip(&fleet[1], "/v1/messages").await;
    eventually("c follows the quorum", || {
        is_open(&fleet[2], "/v1/messages")
    })
    .await;
    let b = fleet[2].breaker("p", "/v1/messages").await.unwrap();
    assert_eq!(b["tripped_by"], "a", "the first of the quorum: {b}");
}

#[tokio::test]
async fn the_fleet_probes_once_per_round() {
    let Some(redis) = Redis::start() else { return };
    let upstream = MockUpstream::start(Reply::status(503)).await;
    let fleet = replicas(&redis, &upstream, &["a", "b", "c"], 1, "1s").await;
    trip(&fleet[0], "/v1/messages").await;
    for replica in &fleet[1..] {
        eventually("the fleet opens", || is_open(replica, "/v1/messages")).await;
    }
    // The provider recovers; probes are held at its door until the test lets them answer.
    let gate = Gate::new();
    upstream.set_default(Reply::ok().hold(&gate));
    let before = upstream.count();
    let mut calls = Vec::new();
    let fleet = std::sync::Arc::new(fleet);
    let send_round = |calls: &mut Vec<tokio::task::JoinHandle<u16>>| {
        for i in 0..3 {
            let fleet = fleet.clone();
            calls.push(tokio::spawn(async move {
                fleet[i].post("/p/v1/messages").await
            }));
        }
    };
    // Every replica asks until one of them probes (after the open second).
    let started = std::time::Instant::now();
    while upstream.count() == before {
        assert!(
            started.elapsed().as_secs() < 20,
            "no probe ever reached the provider"
        );
        send_round(&mut calls);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        send_round(&mut calls);
    }
    // Everything not admitted as a probe is answered (rejected) without waiting for the gate.
    eventually("every call but the probes is answered", || {
        let unanswered = calls.iter().filter(|c| !c.is_finished()).count();
        let probes = upstream.count() - before;
        async move { unanswered == probes }
    })
    .await;
    let probes = upstream.count() - before;
    assert!(
        (1..=2).contains(&probes),
        "{probes} probes reached the provider; half_open_max_calls is 2 for the whole fleet"
    );
    gate.open();
    for replica in fleet.iter() {
        let closed =
            || async { replica.breaker("p", "/v1/messages").await.unwrap()["state"] == "closed" };
        eventually("the round's result closes every replica", closed).await;
    }
    for call in calls {
        let status = call.await.unwrap();
        assert!(status == 200 || status == 503, "{status}");
    }
    for replica in fleet.iter() {
        assert_eq!(replica.post("/p/v1/messages").await, 200);
    }
}

#[tokio::test]
async fn an_operators_action_on_one_replica_applies_to_all() {
    let Some(redis) = Redis::start() else { return };
    let upstream = MockUpstream::start(Reply::ok()).await;
    let fleet = replicas(&redis, &upstream, &["a", "b", "c"], 1, "60s").await;
    assert_eq!(fleet[0].post("/p/v1/messages").await, 200);
    let id = fleet[0].breaker("p", "/v1/messages").await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = fleet[0].act(&id, "force-open").await;
    assert_eq!(answer["fleet"], true, "{answer}");
    for replica in &fleet[1..] {
        let forced = || async {
            replica
                .breaker("p", "/v1/messages")
                .await
                .is_some_and(|b| b["mode"] == "forced_open")
        };
        eventually("the others are forced open", forced).await;
    }
    let before = upstream.count();
    assert_eq!(fleet[2].post("/p/v1/messages").await, 503);
    assert_eq!(upstream.count(), before);
    // A reset anywhere resets everywhere, also for a replica started later.
    fleet[1].act(&id, "reset").await;
    for replica in [&fleet[0], &fleet[2]] {
        let normal = || async {
            let b: Option<Value> = replica.breaker("p", "/v1/messages").await;
            b.is_some_and(|b| b["mode"] == "normal" && b["state"] == "closed")
        };
        eventually("the reset applies everywhere", normal).await;
    }
    assert_eq!(fleet[2].post("/p/v1/messages").await, 200);
}

#[tokio::test]
async fn redis_killed_mid_storm_fails_no_request_and_the_fleet_converges() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let upstream = MockUpstream::start(Reply::ok()).await;
    upstream.route("/v1/down", Reply::status(503));
    let fleet = std::sync::Arc::new(replicas(&redis, &upstream, &["a", "b", "c"], 1, "60s").await);
    // Steady traffic through every replica for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (fleet, stop) = (fleet.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                statuses.push(fleet[i % 3].post("/p/v1/messages").await);
                i += 1;
            }
            statuses
        })
    };
    redis.kill();
    for replica in fleet.iter() {
        eventually("every replica notices Redis is gone", || {
            connected(replica, 0.0)
        })
        .await;
    }
    // An outage while Redis is down: the replica that sees it protects itself alone.
    trip(&fleet[0], "/v1/down").await;
    assert!(!is_open(&fleet[1], "/v1/down").await);
    redis.restart();
    for replica in fleet.iter() {
        eventually("every replica reconnects", || connected(replica, 1.0)).await;
    }
    // Caught up on reconnect: the others learn of the trip they missed.
    for replica in &fleet[1..] {
        eventually("the missed trip reaches the others", || {
            is_open(replica, "/v1/down")
        })
        .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.await.unwrap();
    assert!(statuses.len() > 10, "the load ran: {}", statuses.len());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "no request failed because Redis did: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_replica_started_mid_outage_rejects_at_once() {
    let Some(redis) = Redis::start() else { return };
    let upstream = MockUpstream::start(Reply::status(503)).await;
    let fleet = replicas(&redis, &upstream, &["a"], 1, "60s").await;
    trip(&fleet[0], "/v1/messages").await;
    let told = || async {
        let view = fleet[0].admin_json("/v1/cluster").await;
        view["open"].as_array().is_some_and(|o| o.len() == 1)
    };
    eventually("the fleet holds the breaker open", told).await;
    let late = replicas(&redis, &upstream, &["d"], 1, "60s").await;
    let before = upstream.count();
    assert_eq!(late[0].post("/p/v1/messages").await, 503);
    assert_eq!(
        upstream.count(),
        before,
        "its very first request was rejected"
    );
    let b = late[0].breaker("p", "/v1/messages").await.unwrap();
    assert_eq!(
        (b["state"].as_str(), b["reason"].as_str()),
        (Some("open"), Some("remote"))
    );
}

/// Whether `replica` says it is (1) or is not (0) connected to Redis.
async fn connected(replica: &Replica, want: f64) -> bool {
    sample(&replica.metrics().await, "seawall_cluster_connected") == want
}

#[tokio::test]
async fn an_output_breaker_opens_for_the_whole_fleet_too() {
    use common::collector::{Collector, Mode};
    let Some(redis) = Redis::start() else { return };
    let collector = Collector::start(Mode::Status(500)).await;
    let yaml = |node: &str| {
        format!(
            "pipelines:
  - name: events
    outputs:
      - {{ name: o, type: http, endpoint: '{}', batch: {{ linger: 0s }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: 60s }} }} }}
cluster: {{ redis_url_env: SEAWALL_REDIS_URL, node_id: {node} }}
",
            collector.url
        )
    };
    let mut fleet = Vec::new();
    for node in ["a", "b"] {
        let (yaml, url) = (yaml(node), redis.url());
        fleet.push(
            tokio::task::spawn_blocking(move || Replica::start(&yaml, &url))
                .await
                .unwrap(),
        );
    }
    assert_eq!(fleet[0].post("/ingest/events").await, 202);
    let url = collector.url.as_str();
    eventually("a's output trips on the collector's 500", || {
        output_open(&fleet[0], url)
    })
    .await;
    eventually("b's output opens with it", || output_open(&fleet[1], url)).await;
    let b = fleet[1].breaker("o", &collector.url).await.unwrap();
    assert_eq!(
        (b["reason"].as_str(), b["tripped_by"].as_str()),
        (Some("remote"), Some("a"))
    );
    assert_eq!(
        collector.requests(),
        1,
        "only a's batch reached the collector"
    );
}

/// Whether `replica`'s breaker of output `o` at `url` is open.
async fn output_open(replica: &Replica, url: &str) -> bool {
    let b = replica.breaker("o", url).await;
    b.is_some_and(|b| b["state"] == "open")
}

#[tokio::test]
async fn a_hung_redis_fails_no_request_and_the_fleet_catches_up() {
    let Some(redis) = Redis::start() else { return };
    let upstream = MockUpstream::start(Reply::ok()).await;
    upstream.route("/v1/down", Reply::status(503));
    let fleet = replicas(&redis, &upstream, &["a", "b"], 1, "60s").await;
    redis.freeze();
    // Requests go on while Redis answers nothing; the replicas notice within their timeouts.
    for _ in 0..20 {
        for replica in &fleet {
            assert_eq!(replica.post("/p/v1/messages").await, 200);
        }
    }
    for replica in &fleet {
        eventually("the replicas give the hung Redis up", || {
            connected(replica, 0.0)
        })
        .await;
    }
    trip(&fleet[0], "/v1/down").await;
    assert_eq!(fleet[1].post("/p/v1/messages").await, 200);
    redis.thaw();
    for replica in &fleet {
        eventually("they reconnect", || connected(replica, 1.0)).await;
    }
    eventually("the trip made meanwhile reaches the other", || {
        is_open(&fleet[1], "/v1/down")
    })
    .await;
}
