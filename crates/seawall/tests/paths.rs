//! End-to-end tests of the path rules (README "Paths"): hostile request targets sent as raw
//! bytes to the running daemon, what reaches the mock upstream, which breaker answers, and the
//! endpoint labels `/metrics` and `/v1/breakers` show, down to idle eviction on a manual clock.

mod common;

use std::time::Duration;

use common::client::Answer;
use common::inproc::TestGateway;
use common::upstream::{MockUpstream, Reply};
use serde_json::Value;

/// A mock upstream answering `200`, and one generic provider in front of it on the test gateway,
/// its breakers tripping on one failure (`extra` goes into its entry).
async fn gateway(extra: &str) -> (MockUpstream, TestGateway) {
    let up = MockUpstream::start(Reply::ok()).await;
    let yaml = format!(
        "providers:
  - {{ name: up, kind: generic, base_url: '{}', {extra}
      circuit_breaker: {{ failure_threshold: 1, open_timeout: 10s, jitter: 0, half_open_max_calls: 1 }} }}
",
        up.url()
    );
    (up, TestGateway::start(&yaml, &[]).await)
}

/// The lines of `gw`'s metrics that carry `endpoint`.
fn series_of(gw: &TestGateway, endpoint: &str) -> Vec<String> {
    let needle = format!("endpoint=\"{endpoint}\"");
    let metrics = gw.metrics();
    metrics
        .text()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

fn status(answer: &Answer) -> u16 {
    answer.status.as_u16()
}

#[tokio::test]
async fn an_evicted_endpoint_takes_every_series_with_it() {
    let (up, gw) = gateway("").await;
    up.push(Reply::overloaded());
    assert_eq!(status(&gw.post("/up/v1/a", "{}").await), 503, "trips");
    assert_eq!(status(&gw.post("/up/v1/a", "{}").await), 503, "rejected");
    gw.advance(Duration::from_secs(11));
    assert_eq!(
        status(&gw.post("/up/v1/a", "{}").await),
        200,
        "the probe closes it"
    );
    assert_eq!(status(&gw.post("/up/v1/b", "{}").await), 200);
    let before = series_of(&gw, "/v1/a").join("\n");
    for family in [
        "seawall_circuit_breaker_state{",
        "seawall_circuit_breaker_trips_total{",
        "seawall_circuit_breaker_rejects_total{",
        "seawall_upstream_requests_total{",
        "seawall_upstream_request_duration_seconds_count{",
    ] {
        assert!(before.contains(family), "no {family} in\n{before}");
    }

    // Ten minutes (the default `idle_evict`) later, only /v1/b was used again.
    gw.clock.advance(Duration::from_secs(600));
    assert_eq!(status(&gw.post("/up/v1/b", "{}").await), 200);
    gw.advance(Duration::ZERO);
    assert_eq!(
        series_of(&gw, "/v1/a"),
        Vec::<String>::new(),
        "\n{}",
        gw.metrics()
    );
    assert!(!series_of(&gw, "/v1/b").is_empty());
    let views = gw.breaker_views();
    let endpoints: Vec<&str> = views.iter().map(|v| v.endpoint.as_str()).collect();
    assert_eq!(endpoints, ["/v1/b"]);
    let evictions = r#"seawall_circuit_breaker_evictions_total{kind="provider",name="up"}"#;
    assert_eq!(gw.metrics().value::<u64>(evictions), 1);

    // Back again, it starts from zero, and every counter counts (no stale cached handle).
    up.push(Reply::overloaded());
    assert_eq!(status(&gw.post("/up/v1/a", "{}").await), 503);
    assert_eq!(status(&gw.post("/up/v1/a", "{}").await), 503);
    let labels = r#"{kind="provider",name="up",endpoint="/v1/a",model=""}"#;
    let metrics = gw.metrics();
    assert_eq!(
        metrics.value::<u64>(&format!("seawall_circuit_breaker_rejects_total{labels}")),
        1
    );
    let trips = r#"seawall_circuit_breaker_trips_total{kind="provider",name="up",endpoint="/v1/a",model="",reason="consecutive_failures"}"#;
    assert_eq!(metrics.value::<u64>(trips), 1);
    let failed = r#"seawall_upstream_requests_total{provider="up",endpoint="/v1/a",code="503"}"#;
    assert_eq!(metrics.value::<u64>(failed), 1);
    assert_eq!(metrics.line(&failed.replace("503", "200")), None);
}

#[tokio::test]
async fn idle_evict_sets_how_long_an_unused_endpoint_is_kept() {
    let (_up, gw) = gateway("idle_evict: 2m,").await;
    assert_eq!(status(&gw.post("/up/v1/a", "{}").await), 200);
    gw.advance(Duration::from_secs(119));
    assert_eq!(gw.breaker_views().len(), 1, "kept for two minutes");
    gw.advance(Duration::from_secs(1));
    assert!(gw.breaker_views().is_empty(), "evicted after two minutes");
    assert_eq!(series_of(&gw, "/v1/a"), Vec::<String>::new());
}

#[tokio::test]
async fn an_endpoint_keeps_its_upstream_series_while_another_models_breaker_uses_it() {
    let (_up, gw) = gateway("per_model: true,").await;
    assert_eq!(status(&gw.post("/up/v1/m", r#"{"model":"a"}"#).await), 200);
    gw.clock.advance(Duration::from_secs(600));
    assert_eq!(status(&gw.post("/up/v1/m", r#"{"model":"b"}"#).await), 200);
    gw.advance(Duration::ZERO);
    let left = series_of(&gw, "/v1/m").join("\n");
    assert!(
        !left.contains(r#"model="a""#),
        "model a's breaker went:\n{left}"
    );
    assert!(left.contains(r#"model="b""#), "{left}");
    let requests = r#"seawall_upstream_requests_total{provider="up",endpoint="/v1/m",code="200"}"#;
    assert_eq!(gw.metrics().value::<u64>(requests), 2, "b still uses /v1/m");

    gw.advance(Duration::from_secs(600));
    assert_eq!(
        series_of(&gw, "/v1/m"),
        Vec::<String>::new(),
        "\n{}",
        gw.metrics()
    );
    let views: Vec<Value> = gw
        .breaker_views()
        .iter()
        .map(|v| serde_json::to_value(v).unwrap())
        .collect();
    assert_eq!(views, Vec::<Value>::new());
}
