//! Feature flags in the daemon, end to end over loopback: a real mock flag server, a real
//! mock upstream, the app in-process. `seawall.circuit_breaker.enabled: false` turns a host's
//! breakers to metrics-only; every provider host is fetched once, not once per request; no
//! `feature_flags` section means no fetching at all.

mod common;

use common::client::{get, post};
use common::daemon::Daemon;
use common::flags::FlagServer;
use common::upstream::{MockUpstream, Reply};
use common::wait::settle;
use http::StatusCode;

const ENABLED: &str = "seawall.circuit_breaker.enabled";

/// A mock upstream answering every request with 503.
async fn always_503() -> MockUpstream {
    MockUpstream::start(Reply::overloaded()).await
}

#[tokio::test]
async fn a_flag_that_is_off_puts_the_hosts_breakers_in_metrics_only() {
    let (off, on) = (always_503().await, always_503().await);
    let (off_addr, on_addr) = (off.addr(), on.addr());
    let flag_server = FlagServer::off_for(ENABLED, &off_addr.to_string()).await;
    let flag_url = flag_server.url();
    let app = Daemon::start(&format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
feature_flags: {{ url: '{flag_url}', ttl: 15m }}
providers:
  - {{ name: relaxed, kind: generic, base_url: 'http://{off_addr}',
      circuit_breaker: {{ failure_threshold: 1, check_interval: 50ms }} }}
  - {{ name: strict, kind: generic, base_url: 'http://{on_addr}',
      circuit_breaker: {{ failure_threshold: 1, check_interval: 50ms }} }}
"
    ))
    .await;
    let flags = app.flags_fetched(2).await;
    // The watcher applies fetched values every check_interval: wait (bounded) until a
    // warm-up endpoint's breaker shows it.
    let warmed_up = || async {
        get(&app.gateway("/relaxed/warmup")).await;
        let breakers = app.admin_json("/v1/breakers").await;
        breakers.as_array().unwrap().iter().any(|b| {
            b["name"] == "relaxed" && b["endpoint"] == "/warmup" && b["mode"] == "metrics_only"
        })
    };
    let applied = settle(warmed_up, |applied| *applied).await;
    assert!(applied, "the flag was never applied");
    for _ in 0..3 {
        assert_eq!(
            get(&app.gateway("/relaxed/v1/x")).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            get(&app.gateway("/strict/v1/x")).await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // Metrics-only: every request reached the upstream although the breaker tripped.
    assert_eq!(off.hits("/v1/x"), 3);
    // Enforced: the first failure tripped the breaker, the rest were rejected.
    assert_eq!(on.hits("/v1/x"), 1);

    let breakers = app.admin_json("/v1/breakers").await;
    let relaxed = breakers
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "relaxed" && b["endpoint"] == "/v1/x")
        .unwrap();
    assert_eq!(relaxed["mode"], "metrics_only");
    assert_eq!(relaxed["state"], "open");
    assert_eq!(relaxed["counts"]["would_reject"], 2);

    // One fetch per host however many requests and watcher passes happened.
    let hits = flag_server.hits();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.values().all(|&n| n == 1), "{hits:?}");

    // The admin view lists each host with its handle count and values.
    let hosts = flags["cache"]["hosts"].as_array().unwrap();
    let off_host = format!("127.0.0.1:{}", off_addr.port());
    let entry = hosts
        .iter()
        .find(|h| h["host"] == off_host.as_str())
        .unwrap();
    assert_eq!(entry["handles"], 1);
    assert_eq!(entry["flags"]["seawall.circuit_breaker.enabled"], "false");

    let metrics = app.metrics().await;
    let line = format!(r#"seawall_feature_flag_fetches_total{{host="{off_host}",result="ok"}} 1"#);
    assert!(metrics.contains(&line), "{metrics}");
    app.stop().await;
}

#[tokio::test]
async fn without_a_feature_flags_section_nothing_is_fetched() {
    let up_addr = always_503().await.addr();
    let app = Daemon::start(&format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: p, kind: generic, base_url: 'http://{up_addr}', circuit_breaker: {{ failure_threshold: 1 }} }}
"
    ))
    .await;
    assert_eq!(
        get(&app.gateway("/p/v1/x")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let flags = app.admin_json("/v1/flags").await;
    assert_eq!(flags["enabled"], false);
    assert_eq!(flags["cache"]["hosts"], serde_json::json!([]));
    let metrics = app.metrics().await;
    assert!(
        !metrics.contains("seawall_feature_flag_fetches_total{"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_flag_that_is_off_for_an_output_host_makes_its_breaker_observe_only() {
    let sink = always_503().await;
    let sink_addr = sink.addr();
    let flag_server = FlagServer::off_for(ENABLED, &sink_addr.to_string()).await;
    let flag_url = flag_server.url();
    let app = Daemon::start(&format!(
        "server: {{ listen: 127.0.0.1:0, shutdown_grace: 1s }}
admin: {{ listen: 127.0.0.1:0 }}
feature_flags: {{ url: '{flag_url}' }}
pipelines:
  - name: events
    outputs:
      - {{ name: sink, type: http, endpoint: 'http://{sink_addr}/ingest',
          batch: {{ max_events: 1, linger: 1ms }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, check_interval: 50ms }} }} }}
"
    ))
    .await;
    let url = format!("http://{sink_addr}/ingest");
    let observing = || async {
        let breakers = app.admin_json("/v1/breakers").await;
        breakers.as_array().unwrap().iter().any(|b| {
            b["kind"] == "output" && b["endpoint"] == url.as_str() && b["mode"] == "metrics_only"
        })
    };
    let applied = settle(observing, |applied| *applied).await;
    assert!(applied, "the output host's flag was never applied");
    for _ in 0..5 {
        let ingest = app.gateway("/ingest/events");
        assert_eq!(
            post(&ingest, "application/x-ndjson", "{\"n\":1}\n")
                .await
                .status,
            StatusCode::ACCEPTED
        );
    }
    // Observe-only: the breaker tripped on the first 503, yet every batch was still sent (an
    // enforcing breaker would have let only the first through; retries may add more).
    let sent = settle(|| async { sink.hits("/ingest") }, |sent| *sent >= 5).await;
    assert!(sent >= 5, "only {sent} of 5 batches reached the endpoint");
    let host = format!("127.0.0.1:{}", sink_addr.port());
    assert_eq!(flag_server.hits().get(&host).copied(), Some(1));
    app.stop().await;
}
