//! End-to-end tests of the path rules (README "Paths"): hostile request targets sent as raw
//! bytes to the running daemon, what reaches the mock upstream, which breaker answers, and the
//! endpoint labels `/metrics` and `/v1/breakers` show, down to idle eviction on a manual clock.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::client::Answer;
use common::daemon::Daemon;
use common::exposition::Exposition;
use common::inproc::TestGateway;
use common::upstream::{MockUpstream, Reply};
use common::wire::{Resp, Wire};
use serde_json::Value;

/// A mock upstream answering `reply`, and a daemon with two providers in front of it, each under
/// its own base path and with its own key (`extra` goes into `up`'s entry).
async fn two_providers(reply: Reply, extra: &str) -> (MockUpstream, Daemon) {
    let up = MockUpstream::start(reply).await;
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, workers: 0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: anth, kind: anthropic, base_url: '{url}/anth-base', api_key_env: ANTH_KEY }}
  - {{ name: up, kind: generic, base_url: '{url}/up-base/', api_key_env: UP_KEY, {extra} }}
",
        url = up.url()
    );
    let env = [("ANTH_KEY", "anth-secret"), ("UP_KEY", "up-secret")];
    (up, Daemon::start_with_env(&yaml, &env).await)
}

/// Breakers that open on the first failure, for a minute.
const TRIP_ON_ONE_FAILURE: &str =
    "circuit_breaker: { failure_threshold: 1, open_timeout: 60s, jitter: 0 }";

/// `GET target` as raw bytes on a fresh connection, and the whole answer.
async fn get(app: &Daemon, target: &str) -> Resp {
    let mut wire = Wire::connect(app.gateway_addr()).await;
    let head = format!("GET {target} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n");
    wire.send(head.as_bytes()).await;
    wire.response("GET").await
}

/// `GET target` over h2c (hyper's client: a lenient request-target reader, as another
/// server in front of Seawall might be), and the answer's status and JSON body.
async fn get_h2(app: &Daemon, target: &str) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(app.gateway_addr())
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let uri = format!("http://{}{target}", app.gateway_addr());
    let req = http::Request::get(uri)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// Asserts that HTTP/1 refuses each of `targets` at the transport (outside RFC 9112's
/// request-target grammar: `400 invalid_request_error`), none reaching the upstream.
async fn assert_refused_by_the_transport(targets: &[&str]) {
    let (up, app) = two_providers(Reply::ok(), "").await;
    for target in targets {
        let resp = get(&app, target).await;
        assert_eq!(resp.head.status, 400, "{target}: {}", resp.text());
        let body = resp.json();
        assert_eq!(
            body["error"]["type"], "invalid_request_error",
            "{target}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("invalid request target"),
            "{target}: {message}"
        );
    }
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    app.stop().await;
}

/// Sends each of `targets` to a fresh daemon and asserts each is answered `400 invalid_path`
/// naming `why`, that none reached the upstream, and that all count under `reason`.
async fn assert_refused(reason: &str, why: &str, targets: &[&str]) {
    let (up, app) = two_providers(Reply::ok(), "").await;
    for target in targets {
        let resp = get(&app, target).await;
        assert_eq!(resp.head.status, 400, "{target}: {}", resp.text());
        assert_eq!(resp.head.header("content-type"), Some("application/json"));
        let body = resp.json();
        assert_eq!(body["error"]["type"], "invalid_path", "{target}: {body}");
        assert_eq!(body["error"]["reason"], reason, "{target}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{target}: {message}");
    }
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    let refused = format!(r#"seawall_refused_paths_total{{reason="{reason}"}}"#);
    assert_eq!(
        app.metrics().await.value::<u64>(&refused),
        targets.len() as u64
    );
    app.stop().await;
}

/// The distinct `endpoint` label values in `metrics`.
fn endpoint_labels(metrics: &Exposition) -> BTreeSet<String> {
    metrics
        .text()
        .lines()
        .filter(|l| l.starts_with("seawall_"))
        .filter_map(|l| l.split("endpoint=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The `endpoint` of every provider breaker in `GET /v1/breakers`.
async fn breaker_endpoints(app: &Daemon) -> BTreeSet<String> {
    let views = app.admin_json("/v1/breakers").await;
    views
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["endpoint"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends the target of each of `cases` (answered `200`), then asserts that the breakers in
/// `/v1/breakers` and the `endpoint` labels in `/metrics` are exactly the cases' endpoints.
async fn assert_endpoints(app: &Daemon, cases: &[(&str, &str)]) {
    for (target, _) in cases {
        assert_eq!(get(app, target).await.head.status, 200, "{target}");
    }
    let expected: BTreeSet<String> = cases.iter().map(|(_, e)| e.to_string()).collect();
    assert_eq!(breaker_endpoints(app).await, expected);
    let metrics = app.metrics().await;
    assert_eq!(endpoint_labels(&metrics), expected, "\n{metrics}");
}

#[tokio::test]
async fn a_dot_segment_that_would_leave_its_provider_is_refused_and_never_forwarded() {
    assert_refused(
        "escapes_provider",
        "would leave the provider",
        &[
            "/anth/../up-base/x",
            "/anth/%2e%2e/up-base/x",
            "/anth/%2E%2E/up-base/x",
            "/anth/.%2e/up-base/x",
            "/anth/v1/../../up-base/x",
            "/anth//..//up-base/x",
            "/anth/..",
            "/../anth/v1/messages",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_dot_segment_hidden_behind_an_encoded_slash_a_backslash_or_a_parameter_is_refused() {
    assert_refused(
        "ambiguous_segment",
        "hides a dot segment",
        &[
            "/anth/..%2Fup-base/x",
            "/anth/..%2fup-base/x",
            "/anth/..%5Cup-base/x",
            "/anth/..;/up-base/x",
            "/anth/.%2E;x/up-base/x",
            "/anth/%252e%252e/up-base/x",
            "/anth/v1/x%2F..%2F..%2Fy",
        ],
    )
    .await;
    // A raw backslash is no request-target at all: refused before any path rule.
    assert_refused_by_the_transport(&["/anth/..\\up-base/x"]).await;
}

/// A `%` without two hex digits is outside the request-target grammar: HTTP/1 refuses it at
/// the transport; a request that arrives another way (h2c here) meets the path rule, which
/// refuses it too, as `invalid_encoding`.
#[tokio::test]
async fn a_malformed_percent_escape_is_refused() {
    let targets = [
        "/up/v1/%zz",
        "/up/v1/%4",
        "/up/v1/x%",
        "/up/%g1/x",
        "/u%p/v1",
    ];
    assert_refused_by_the_transport(&targets).await;
    let (up, app) = two_providers(Reply::ok(), "").await;
    for target in targets {
        let (status, body) = get_h2(&app, target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert_eq!(body["error"]["type"], "invalid_path", "{target}: {body}");
        assert_eq!(
            body["error"]["reason"], "invalid_encoding",
            "{target}: {body}"
        );
    }
    assert_eq!(up.count(), 0, "nothing reached the upstream");
    app.stop().await;
}

#[tokio::test]
async fn the_normalised_path_is_forwarded_under_the_base_path_with_the_query_untouched() {
    let (up, app) = two_providers(Reply::ok(), "").await;
    let cases = [
        (
            "/up/v1/%7euser/./a//b/%c3%a9/?q=%2e%2e/../x&r=%7e",
            "/up-base/v1/~user/a/b/%C3%A9/?q=%2e%2e/../x&r=%7e",
        ),
        ("/up/v1/a/../b/%41%2d%5F", "/up-base/v1/b/A-_"),
        ("//up///v1/x", "/up-base/v1/x"),
        ("/%75p/v1/x", "/up-base/v1/x"),
        ("/up/v1/a%2Fb", "/up-base/v1/a%2Fb"),
        ("/up/v1/.well-known/x", "/up-base/v1/.well-known/x"),
        ("/up", "/up-base/"),
        ("/anth/v1/messages/./", "/anth-base/v1/messages/"),
    ];
    for (i, (target, expected)) in cases.iter().enumerate() {
        let resp = get(&app, target).await;
        assert_eq!(resp.head.status, 200, "{target}: {}", resp.text());
        let received = &up.received()[i];
        assert_eq!(&received.target, expected, "{target}");
        let key = received
            .headers
            .get("authorization")
            .or(received.headers.get("x-api-key"));
        let wanted = if expected.starts_with("/up-base/") {
            "Bearer up-secret"
        } else {
            "anth-secret"
        };
        assert_eq!(
            key.unwrap(),
            wanted,
            "{target}: the key of its own provider"
        );
    }
    app.stop().await;
    // Raw bytes outside the grammar (non-ASCII, braces) are refused by the HTTP/1 transport.
    assert_refused_by_the_transport(&["/up/v1/caf\u{e9}/{x}"]).await;
}

#[tokio::test]
async fn every_spelling_of_an_open_endpoint_meets_its_breaker() {
    let (up, app) = two_providers(Reply::overloaded(), TRIP_ON_ONE_FAILURE).await;
    let first = get(&app, "/up/v1/x").await;
    assert_eq!(first.head.status, 503);
    assert_eq!(
        first.head.header("x-seawall-circuit"),
        None,
        "the upstream's own 503"
    );
    assert_eq!(up.count(), 1);
    for target in [
        "/up/v1/x",
        "/up//v1/x",
        "//up/v1/x",
        "/up/v1/./x",
        "/up/v1/x/",
        "/up/v1/x//",
        "/up/v1/%78",
        "/up/%761/%78",
        "/up/v1/y/../x",
        "/up/v1/x?stream=true",
    ] {
        let resp = get(&app, target).await;
        assert_eq!(resp.head.status, 503, "{target}: {}", resp.text());
        assert_eq!(
            resp.head.header("x-seawall-circuit"),
            Some("open"),
            "{target}: rejected by the breaker of /v1/x"
        );
    }
    assert_eq!(up.count(), 1, "no other spelling reached the upstream");
    assert_eq!(
        breaker_endpoints(&app).await,
        BTreeSet::from(["/v1/x".into()])
    );
    app.stop().await;
}

#[tokio::test]
async fn id_segments_share_one_breaker_and_one_label() {
    let (up, app) = two_providers(Reply::ok(), TRIP_ON_ONE_FAILURE).await;
    assert_endpoints(
        &app,
        &[
            (
                "/up/v1/threads/thread_Ak0Hk5cvGHaZyaLhlE4kFZ1X/runs",
                "/v1/threads/{id}/runs",
            ),
            ("/up/v1/threads/thread_abc123/runs", "/v1/threads/{id}/runs"),
            ("/up/v1/threads/12345/runs/", "/v1/threads/{id}/runs"),
            (
                "/up/v1/threads/0b4f3c1e-8a8b-4c59-9d7e-3f6b9e2a1c44/runs",
                "/v1/threads/{id}/runs",
            ),
            (
                "/up/v1/messages/msg_01XFDUDYJgAACzvnptvVoYEL",
                "/v1/messages/{id}",
            ),
            (
                "/up/v1/files/file-BK7bzQj3FfZFXr7DbL6xJwfo/content",
                "/v1/files/{id}/content",
            ),
            ("/up/v1/models/gpt-4o", "/v1/models/gpt-4o"),
            (
                "/up/v1/models/claude-3-5-sonnet-20241022",
                "/v1/models/claude-3-5-sonnet-20241022",
            ),
            (
                "/up/v1/models/gpt-4o-mini-2024-07-18",
                "/v1/models/gpt-4o-mini-2024-07-18",
            ),
        ],
    )
    .await;
    let metrics = app.metrics().await;
    let runs = r#"seawall_upstream_requests_total{provider="up",endpoint="/v1/threads/{id}/runs",code="200"}"#;
    assert_eq!(metrics.value::<u64>(runs), 4);

    up.push(Reply::overloaded());
    let failing = "/up/v1/threads/thread_Ak0Hk5cvGHaZyaLhlE4kFZ1X/runs";
    assert_eq!(get(&app, failing).await.head.status, 503);
    let other = get(&app, "/up/v1/threads/thread_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2/runs").await;
    assert_eq!(
        other.head.header("x-seawall-circuit"),
        Some("open"),
        "another thread id meets the same open breaker"
    );
    let body = other.json();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("endpoint `/v1/threads/{id}/runs`"),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test]
async fn configured_endpoint_templates_win_over_the_id_heuristic() {
    let templates = "endpoints: ['/v1/items/{item}/parts', '/v1/models/{model}']";
    let (_up, app) = two_providers(Reply::ok(), templates).await;
    assert_endpoints(
        &app,
        &[
            ("/up/v1/items/short/parts", "/v1/items/{item}/parts"),
            ("/up/v1/items/other/parts/", "/v1/items/{item}/parts"),
            ("/up/v1/models/gpt-4o", "/v1/models/{model}"),
            ("/up/v1/items/short/other", "/v1/items/short/other"),
            ("/up/v1/items/12345/other", "/v1/items/{id}/other"),
        ],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn labels_of_huge_paths_stay_short_and_metrics_stay_small() {
    let (up, app) = two_providers(Reply::ok(), "").await;
    let words: String = (0..6000).map(|j| format!("/w{}", j % 7)).collect();
    for i in 0..20 {
        let target = format!("/up{words}/x{i}");
        assert!(target.len() > 15_000);
        assert_eq!(get(&app, &target).await.head.status, 200);
        let one_segment = format!("/up/v1/{}{i}", "a".repeat(20_000));
        assert_eq!(get(&app, &one_segment).await.head.status, 200);
    }
    let metrics = app.metrics().await;
    let labels = endpoint_labels(&metrics);
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(labels.contains("/v1/{id}"), "{labels:?}");
    for label in &labels {
        assert!(label.len() <= 128, "{} bytes: {label}", label.len());
    }
    assert!(
        metrics.text().len() < 32 * 1024,
        "one scrape is {} bytes",
        metrics.text().len()
    );
    assert_eq!(up.count(), 40);
    app.stop().await;
}

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
