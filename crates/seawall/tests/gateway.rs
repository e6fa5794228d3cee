//! End-to-end tests of the gateway over loopback sockets: real hyper mock upstreams, the
//! gateway served on 127.0.0.1:0, breaker time on a manual clock.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::bodies::assert_rejected;
use common::client::{body, Answer};
use common::inproc::TestGateway;
use common::ports::closed_port;
use common::upstream::{Gate, MockUpstream, Reply};
use common::wait::NO_HANG;
use http_body_util::BodyExt;
use tokio::task::JoinSet;

/// One `providers:` entry in flow style.
fn provider(name: &str, kind: &str, url: &str, extra: &str) -> String {
    format!("  - {{ name: {name}, kind: {kind}, base_url: '{url}', {extra} }}\n")
}

fn providers(entries: &[String]) -> String {
    format!("providers:\n{}", entries.concat())
}

fn breaker(threshold: u32, open: &str, half_open_max: u32) -> String {
    format!(
        "circuit_breaker: {{ failure_threshold: {threshold}, open_timeout: {open}, jitter: 0, half_open_max_calls: {half_open_max} }}"
    )
}

fn retry_after(a: &Answer) -> Duration {
    Duration::from_secs(a.header("retry-after").unwrap().parse().unwrap())
}

fn assert_metric(gw: &TestGateway, series: &str, value: &str) {
    let expected = format!("{series} {value}");
    let metrics = gw.metrics();
    assert_eq!(metrics.line(series), Some(expected.as_str()), "\n{metrics}");
}

/// Trip after exactly `failure_threshold` failures → rejected without reaching the upstream →
/// half-open after `open_timeout` → probe succeeds → closed → trips again.
async fn full_cycle(kind: &str, endpoint: &str, failing: u16) {
    let up = MockUpstream::start(Reply::status(failing).json(r#"{"error":"busy"}"#)).await;
    let yaml = providers(&[provider(kind, kind, &up.url(), &breaker(3, "30s", 1))]);
    let gw = TestGateway::start(&yaml, &[]).await;
    let settings = &gw.config.providers[0].circuit_breaker;
    let threshold = settings.failure_threshold as usize;
    let path = format!("/{kind}{endpoint}");

    for i in 1..=threshold {
        let a = gw.post(&path, "{}").await;
        assert_eq!(
            a.status, failing,
            "failure {i} passes the upstream's answer through"
        );
    }
    assert_eq!(up.count(), threshold);
    let rejected = gw.post(&path, "{}").await;
    assert_rejected(
        &rejected,
        kind,
        kind,
        endpoint,
        settings.open_timeout.as_secs(),
    );
    assert_eq!(
        up.count(),
        threshold,
        "a rejected call never reaches the upstream"
    );

    gw.clock
        .advance(settings.open_timeout + Duration::from_secs(1));
    up.set_default(Reply::ok());
    let probe = gw.post(&path, "{}").await;
    assert_eq!(probe.status, 200);
    assert_eq!(probe.body, r#"{"ok":true}"#);
    assert_eq!(up.count(), threshold + 1);
    let labels = format!(r#"{{kind="provider",name="{kind}",endpoint="{endpoint}",model=""}}"#);
    assert_metric(
        &gw,
        &format!("seawall_circuit_breaker_state{labels}"),
        "0.0",
    );

    up.set_default(Reply::status(failing));
    for _ in 0..threshold {
        assert_eq!(gw.post(&path, "{}").await.status, failing);
    }
    assert_eq!(gw.post(&path, "{}").await.status, 503);
    assert_eq!(up.count(), 2 * threshold + 1);

    let trips = format!(
        r#"seawall_circuit_breaker_trips_total{{kind="provider",name="{kind}",endpoint="{endpoint}",model="",reason="consecutive_failures"}}"#
    );
    assert_metric(&gw, &trips, "2");
    assert_metric(
        &gw,
        &format!("seawall_circuit_breaker_rejects_total{labels}"),
        "2",
    );
    assert_metric(
        &gw,
        &format!("seawall_circuit_breaker_state{labels}"),
        "1.0",
    );
    let requests = |code: u16| {
        format!(
            r#"seawall_upstream_requests_total{{provider="{kind}",endpoint="{endpoint}",code="{code}"}}"#
        )
    };
    assert_metric(&gw, &requests(failing), &(2 * threshold).to_string());
    assert_metric(&gw, &requests(200), "1");
}

#[tokio::test]
async fn anthropic_breaker_trips_rejects_recovers_through_a_probe_and_trips_again() {
    full_cycle("anthropic", "/v1/messages", 529).await;
}

#[tokio::test]
async fn openai_breaker_trips_rejects_recovers_through_a_probe_and_trips_again() {
    full_cycle("openai", "/v1/chat/completions", 500).await;
}

#[tokio::test]
async fn generic_breaker_trips_rejects_recovers_through_a_probe_and_trips_again() {
    full_cycle("generic", "/api/items", 502).await;
}

/// A failed half-open probe re-opens the breaker: two trips, the second `half_open_failure`.
async fn failed_probe_reopens(kind: &str, failing: u16) {
    let up = MockUpstream::start(Reply::status(failing)).await;
    let yaml = providers(&[provider(kind, kind, &up.url(), &breaker(1, "10s", 1))]);
    let gw = TestGateway::start(&yaml, &[]).await;
    assert_eq!(
        gw.post(&format!("/{kind}/v1/x"), "{}").await.status,
        failing
    );
    let rejected = gw.post(&format!("/{kind}/v1/x"), "{}").await;
    assert_eq!(rejected.status, 503);
    gw.clock.advance(retry_after(&rejected));
    assert_eq!(
        gw.post(&format!("/{kind}/v1/x"), "{}").await.status,
        failing,
        "the probe"
    );
    assert_eq!(gw.post(&format!("/{kind}/v1/x"), "{}").await.status, 503);
    assert_eq!(up.count(), 2);
    let trips = |reason: &str| {
        format!(
            r#"seawall_circuit_breaker_trips_total{{kind="provider",name="{kind}",endpoint="/v1/x",model="",reason="{reason}"}}"#
        )
    };
    assert_metric(&gw, &trips("consecutive_failures"), "1");
    assert_metric(&gw, &trips("half_open_failure"), "1");
}

#[tokio::test]
async fn anthropic_failed_probe_reopens_the_breaker() {
    failed_probe_reopens("anthropic", 503).await;
}

#[tokio::test]
async fn openai_failed_probe_reopens_the_breaker() {
    failed_probe_reopens("openai", 503).await;
}

#[tokio::test]
async fn generic_failed_probe_reopens_the_breaker() {
    failed_probe_reopens("generic", 504).await;
}

#[tokio::test]
async fn half_open_admits_at_most_max_calls_concurrent_probes() {
    let up = MockUpstream::start(Reply::status(529)).await;
    let yaml = providers(&[provider(
        "anthropic",
        "anthropic",
        &up.url(),
        &breaker(1, "10s", 2),
    )]);
    let gw = Arc::new(TestGateway::start(&yaml, &[]).await);
    let max = gw.config.providers[0].circuit_breaker.half_open_max_calls as usize;
    assert_eq!(gw.post("/anthropic/v1/messages", "{}").await.status, 529);
    gw.clock.advance(Duration::from_secs(11));

    let release = Gate::new();
    up.set_default(Reply::ok().hold(&release));
    let mut calls = JoinSet::new();
    for _ in 0..10 {
        let gw = gw.clone();
        calls.spawn(async move { gw.post("/anthropic/v1/messages", "{}").await.status });
    }
    // The probes are held by the upstream, so only rejections can complete now.
    for _ in 0..10 - max {
        let status = tokio::time::timeout(NO_HANG, calls.join_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(status, 503);
    }
    up.wait_for_count(1 + max).await;
    assert_eq!(up.count(), 1 + max);
    release.open();
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(
        up.count(),
        1 + max,
        "exactly half_open_max_calls probes reached the upstream"
    );
    assert_eq!(
        gw.post("/anthropic/v1/messages", "{}").await.status,
        200,
        "closed again"
    );
}

#[tokio::test]
async fn breakers_are_isolated_per_endpoint_model_and_provider() {
    let a = MockUpstream::start(Reply::ok()).await;
    let b = MockUpstream::start(Reply::ok()).await;
    let yaml = providers(&[
        provider(
            "a",
            "anthropic",
            &a.url(),
            &format!("per_model: true, {}", breaker(1, "30s", 1)),
        ),
        provider("b", "anthropic", &b.url(), &breaker(1, "30s", 1)),
    ]);
    let gw = TestGateway::start(&yaml, &[]).await;
    a.push(Reply::status(529));
    b.push(Reply::status(529));
    assert_eq!(
        gw.post("/a/v1/messages", r#"{"model":"opus"}"#)
            .await
            .status,
        529
    );
    assert_eq!(
        gw.post("/b/v1/messages", r#"{"model":"opus"}"#)
            .await
            .status,
        529
    );

    assert_eq!(
        gw.post("/a/v1/messages", r#"{"model":"opus"}"#)
            .await
            .status,
        503
    );
    assert_eq!(
        gw.post("/a/v1/messages", r#"{"model":"haiku"}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        gw.post("/a/v1/complete", r#"{"model":"opus"}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        gw.post("/b/v1/messages", r#"{"model":"haiku"}"#)
            .await
            .status,
        503,
        "b is not per model"
    );
    assert_eq!(gw.post("/b/v1/other", "{}").await.status, 200);
    assert_eq!((a.count(), b.count()), (3, 2));
    assert_eq!(
        a.received()[1].body,
        r#"{"model":"haiku"}"#,
        "the buffered body is forwarded"
    );
    assert!(gw
        .metrics()
        .line(r#"seawall_circuit_breaker_trips_total{kind="provider",name="a",endpoint="/v1/messages",model="opus",reason="consecutive_failures"}"#)
        .is_some());
}

#[tokio::test]
async fn sse_reaches_the_client_event_by_event() {
    let release = Gate::new();
    let first = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n";
    let rest =
        "event: content_block_delta\ndata: {\"text\":\"hi\"}\n\nevent: message_stop\ndata: {}\n\n";
    let up = MockUpstream::start(Reply::sse().chunk(first).wait(&release).chunk(rest)).await;
    let yaml = providers(&[provider(
        "anthropic",
        "anthropic",
        &up.url(),
        &breaker(1, "30s", 1),
    )]);
    let gw = TestGateway::start(&yaml, &[]).await;
    let req = gw
        .request("POST", "/anthropic/v1/messages")
        .body(body("{}"))
        .unwrap();
    let resp = gw.stream(req).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(resp.headers().get("content-length").is_none());
    let mut stream = resp.into_body();
    let mut got = Vec::new();
    while got.len() < first.len() {
        let frame = tokio::time::timeout(NO_HANG, stream.frame())
            .await
            .expect("the first event arrives before the upstream sends the rest")
            .unwrap()
            .unwrap();
        got.extend_from_slice(&frame.into_data().unwrap());
    }
    assert_eq!(got, first.as_bytes());
    release.open();
    let tail = stream.collect().await.unwrap().to_bytes();
    assert_eq!(tail, rest.as_bytes());
    assert_eq!(
        gw.post("/anthropic/v1/messages", "{}").await.status,
        200,
        "a clean stream is a success"
    );
}

/// A `200` stream carrying an error event trips a threshold-1 breaker.
async fn mid_stream_error_trips(kind: &str, events: &str) {
    let up = MockUpstream::start(
        Reply::sse()
            .chunk("data: {\"delta\":\"a\"}\n\n")
            .chunk(events),
    )
    .await;
    let yaml = providers(&[provider(kind, kind, &up.url(), &breaker(1, "30s", 1))]);
    let gw = TestGateway::start(&yaml, &[]).await;
    let streamed = gw.post(&format!("/{kind}/v1/stream"), "{}").await;
    assert_eq!(streamed.status, 200);
    assert!(
        streamed.body.ends_with(events.as_bytes()),
        "the error event reaches the client"
    );
    let next = gw.post(&format!("/{kind}/v1/stream"), "{}").await;
    assert_rejected(&next, kind, kind, "/v1/stream", 30);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn anthropic_error_event_mid_stream_counts_as_a_failure() {
    mid_stream_error_trips(
        "anthropic",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
    )
    .await;
}

#[tokio::test]
async fn openai_error_data_mid_stream_counts_as_a_failure() {
    mid_stream_error_trips(
        "openai",
        "data: {\"error\":{\"message\":\"server overloaded\"}}\n\n",
    )
    .await;
}

#[tokio::test]
async fn openai_response_failed_mid_stream_counts_as_a_failure() {
    mid_stream_error_trips(
        "openai",
        "event: response.failed\ndata: {\"type\":\"response.failed\"}\n\n",
    )
    .await;
}

#[tokio::test]
async fn retry_after_extends_the_open_period() {
    let up = MockUpstream::start(Reply::status(429).header("retry-after", "120")).await;
    let yaml = providers(&[provider(
        "anthropic",
        "anthropic",
        &up.url(),
        &breaker(1, "5s", 1),
    )]);
    let gw = TestGateway::start(&yaml, &[]).await;
    assert_eq!(gw.post("/anthropic/v1/messages", "{}").await.status, 429);
    gw.clock.advance(Duration::from_secs(60));
    let rejected = gw.post("/anthropic/v1/messages", "{}").await;
    assert_rejected(&rejected, "anthropic", "anthropic", "/v1/messages", 60);
    assert_eq!(up.count(), 1);
    gw.clock.advance(Duration::from_secs(61));
    up.set_default(Reply::ok());
    assert_eq!(gw.post("/anthropic/v1/messages", "{}").await.status, 200);
}

#[tokio::test]
async fn openai_insufficient_quota_429_is_not_a_failure() {
    let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let up = MockUpstream::start(Reply::status(429).json(quota)).await;
    let yaml = providers(&[provider(
        "openai",
        "openai",
        &up.url(),
        &breaker(1, "30s", 1),
    )]);
    let gw = TestGateway::start(&yaml, &[]).await;
    for _ in 0..3 {
        let a = gw.post("/openai/v1/chat/completions", "{}").await;
        assert_eq!(a.status, 429);
        assert_eq!(a.body, quota, "the peeked body is forwarded whole");
    }
    assert_eq!(up.count(), 3);
    up.set_default(
        Reply::status(429).json(r#"{"error":{"type":"requests","code":"rate_limit_exceeded"}}"#),
    );
    assert_eq!(
        gw.post("/openai/v1/chat/completions", "{}").await.status,
        429
    );
    assert_eq!(
        gw.post("/openai/v1/chat/completions", "{}").await.status,
        503,
        "a rate limit counts"
    );
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn fallback_serves_while_the_primary_is_open() {
    let a = MockUpstream::start(Reply::status(529)).await;
    let b = MockUpstream::start(Reply::ok()).await;
    // Failing over on refusals only: a failure goes back to the client (see tests/failover.rs
    // for failover on failures, the default).
    let yaml = providers(&[
        provider(
            "a",
            "anthropic",
            &a.url(),
            &format!(
                "fallbacks: [b], failover: {{ on: [rejected] }}, {}",
                breaker(1, "30s", 1)
            ),
        ),
        provider("b", "anthropic", &b.url(), &breaker(1, "30s", 1)),
    ]);
    let gw = TestGateway::start(&yaml, &[]).await;
    let first = gw.post("/a/v1/messages", "{}").await;
    assert_eq!(first.status, 529);
    assert_eq!(first.header("x-seawall-fallback"), None);
    let served = gw.post("/a/v1/messages", "{}").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("x-seawall-fallback"), Some("b"));
    assert_eq!((a.count(), b.count()), (1, 1));

    b.set_default(Reply::status(529));
    assert_eq!(gw.post("/b/v1/messages", "{}").await.status, 529);
    let rejected = gw.post("/a/v1/messages", "{}").await;
    assert_rejected(&rejected, "anthropic", "a", "/v1/messages", 30);
    assert_eq!((a.count(), b.count()), (1, 2));
    assert_metric(
        &gw,
        r#"seawall_circuit_breaker_rejects_total{kind="provider",name="a",endpoint="/v1/messages",model=""}"#,
        "2",
    );
    assert_metric(
        &gw,
        r#"seawall_circuit_breaker_rejects_total{kind="provider",name="b",endpoint="/v1/messages",model=""}"#,
        "1",
    );
}

/// Collects everything tracing writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn client_tokens_are_checked_and_provider_keys_injected_without_leaking_secrets() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // With a single registered dispatcher, tracing computes a new callsite's interest from the
    // registering thread's default only, so a parallel test could cache "never" for the
    // gateway's log lines. A second (silent) dispatcher makes it consult every dispatcher.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());

    let ant = MockUpstream::start(Reply::ok()).await;
    let oai = MockUpstream::start(Reply::ok()).await;
    let yaml = format!(
        "auth: {{ tokens_env: [CLIENT_TOKEN] }}\n{}",
        providers(&[
            provider("anthropic", "anthropic", &ant.url(), "api_key_env: ANT_KEY"),
            provider("openai", "openai", &oai.url(), "api_key_env: OAI_KEY"),
        ])
    );
    let (token, ant_key, oai_key) = ("client-tok-7f3a", "sk-ant-secret-91", "sk-oai-secret-42");
    let env = [
        ("CLIENT_TOKEN", token),
        ("ANT_KEY", ant_key),
        ("OAI_KEY", oai_key),
    ];
    let gw = TestGateway::start(&yaml, &env).await;

    let missing = gw.post("/anthropic/v1/messages", "{}").await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["type"], "authentication_error");
    let wrong = gw
        .call(
            gw.request("POST", "/anthropic/v1/messages")
                .header("x-api-key", "client-tok-7f3b")
                .body(body("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("content-type"), Some("application/json"));
    assert_eq!(ant.count() + oai.count(), 0);

    let bearer = format!("Bearer {token}");
    let ok = gw
        .call(
            gw.request("POST", "/anthropic/v1/messages")
                .header("authorization", &bearer)
                .body(body("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(ok.status, 200);
    let ok = gw
        .call(
            gw.request("POST", "/openai/v1/chat/completions")
                .header("x-api-key", token)
                .body(body("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(ok.status, 200);

    let seen = &ant.received()[0].headers;
    assert_eq!(seen["x-api-key"], ant_key);
    assert!(seen.get("authorization").is_none());
    let seen = &oai.received()[0].headers;
    assert_eq!(seen["authorization"], format!("Bearer {oai_key}").as_str());
    assert!(seen.get("x-api-key").is_none());
    for r in ant.received().iter().chain(oai.received().iter()) {
        assert!(r.headers.values().all(|v| !v
            .as_bytes()
            .windows(token.len())
            .any(|w| w == token.as_bytes())));
    }

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("upstream response"),
        "logs were captured:\n{text}"
    );
    for secret in [token, ant_key, oai_key] {
        assert!(!text.contains(secret), "secret in logs:\n{text}");
    }
}

#[tokio::test]
async fn without_auth_client_credentials_pass_through() {
    let up = MockUpstream::start(Reply::ok()).await;
    let yaml = providers(&[provider("openai", "openai", &up.url(), "per_model: false")]);
    let gw = TestGateway::start(&yaml, &[]).await;
    let req = gw
        .request("POST", "/openai/v1/chat/completions")
        .header("authorization", "Bearer sk-client-own")
        .body(body("{}"))
        .unwrap();
    assert_eq!(gw.call(req).await.status, 200);
    assert_eq!(
        up.received()[0].headers["authorization"],
        "Bearer sk-client-own"
    );
}

#[tokio::test]
async fn requests_are_rewritten_for_the_upstream() {
    let up = MockUpstream::start(
        Reply::ok()
            .header("x-upstream", "yes")
            .header("keep-alive", "timeout=5"),
    )
    .await;
    let yaml = providers(&[provider(
        "g",
        "generic",
        &format!("{}/base/", up.url()),
        "per_model: false",
    )]);
    let gw = TestGateway::start(&yaml, &[]).await;
    let req = gw
        .request("POST", "/g/v1/items?limit=5&q=a%20b")
        .header("connection", "x-private")
        .header("x-private", "1")
        .header("proxy-authorization", "Basic abc")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-custom", "kept")
        .body(body(r#"{"n":1}"#))
        .unwrap();
    let a = gw.call(req).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-upstream"), Some("yes"));
    assert_eq!(a.header("keep-alive"), None);
    let r = &up.received()[0];
    assert_eq!(r.target, "/base/v1/items?limit=5&q=a%20b");
    assert_eq!(r.headers["host"], up.addr().to_string().as_str());
    assert_eq!(r.headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(r.headers["x-custom"], "kept");
    assert!(r.headers.get("x-private").is_none());
    assert!(r.headers.get("proxy-authorization").is_none());
    assert_eq!(r.body, r#"{"n":1}"#);
}

#[tokio::test]
async fn unknown_provider_is_a_404_json_error() {
    let up = MockUpstream::start(Reply::ok()).await;
    let gw = TestGateway::start(
        &providers(&[provider("a", "generic", &up.url(), "per_model: false")]),
        &[],
    )
    .await;
    let a = gw.post("/nope/v1/x", "{}").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["type"], "not_found");
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nope"));
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn bodies_over_max_body_are_refused_with_413() {
    let up = MockUpstream::start(Reply::ok()).await;
    let yaml = format!(
        "server: {{ max_body: 16 }}\n{}",
        providers(&[
            provider("s", "generic", &up.url(), "per_model: false"),
            provider("m", "openai", &up.url(), "per_model: true"),
        ])
    );
    let gw = TestGateway::start(&yaml, &[]).await;
    let big = r#"{"model":"m","padding":"xxxxxxxxxxxxxxxx"}"#;
    for path in ["/s/v1/x", "/m/v1/x"] {
        let a = gw.post(path, big).await;
        assert_eq!(a.status, 413, "{path}");
        assert_eq!(a.json()["error"]["type"], "request_too_large");
    }
    // Without content-length, the limit applies while streaming.
    let (mut tx, streamed) =
        http_body_util::channel::Channel::<bytes::Bytes, std::convert::Infallible>::new(4);
    tx.send_data(bytes::Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    tx.send_data(bytes::Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    drop(tx);
    let req = gw
        .request("POST", "/m/v1/x")
        .body(streamed.boxed_unsync())
        .unwrap();
    assert_eq!(gw.call(req).await.status, 413);
    assert_eq!(up.count(), 0);
    assert_eq!(gw.post("/s/v1/x", "{}").await.status, 200);
}

#[tokio::test]
async fn connect_failure_is_a_502_counted_as_a_failure() {
    let (dead, _reserved) = closed_port();
    let yaml = providers(&[provider(
        "g",
        "generic",
        &format!("http://{dead}"),
        &breaker(1, "30s", 1),
    )]);
    let gw = TestGateway::start(&yaml, &[]).await;
    let a = gw.post("/g/v1/x", "{}").await;
    assert_eq!(a.status, 502);
    assert_eq!(a.json()["error"]["type"], "upstream_unavailable");
    assert_rejected(&gw.post("/g/v1/x", "{}").await, "generic", "g", "/v1/x", 30);
    assert_metric(
        &gw,
        r#"seawall_upstream_requests_total{provider="g",endpoint="/v1/x",code="error"}"#,
        "1",
    );
}

#[tokio::test]
async fn no_response_headers_in_time_is_a_504_counted_as_a_failure() {
    let never = Gate::new();
    let up = MockUpstream::start(Reply::ok().hold(&never)).await;
    let extra = format!(
        "timeouts: {{ connect: 100ms, first_byte: 200ms }}, {}",
        breaker(1, "30s", 1)
    );
    let gw = TestGateway::start(
        &providers(&[provider("g", "generic", &up.url(), &extra)]),
        &[],
    )
    .await;
    let a = gw.post("/g/v1/x", "{}").await;
    assert_eq!(a.status, 504);
    assert_eq!(a.json()["error"]["type"], "upstream_timeout");
    assert_eq!(gw.post("/g/v1/x", "{}").await.status, 503);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn a_stream_idle_past_the_timeout_ends_and_counts_as_a_failure() {
    let never = Gate::new();
    let up = MockUpstream::start(Reply::sse().chunk("data: {}\n\n").wait(&never)).await;
    let extra = format!("timeouts: {{ idle: 200ms }}, {}", breaker(1, "30s", 1));
    let gw = TestGateway::start(
        &providers(&[provider("openai", "openai", &up.url(), &extra)]),
        &[],
    )
    .await;
    let req = gw
        .request("POST", "/openai/v1/chat/completions")
        .body(body("{}"))
        .unwrap();
    let resp = gw.stream(req).await;
    assert_eq!(resp.status(), 200);
    let result = tokio::time::timeout(NO_HANG, resp.into_body().collect())
        .await
        .unwrap();
    assert!(result.is_err(), "the client sees the stream break");
    assert_eq!(
        gw.post("/openai/v1/chat/completions", "{}").await.status,
        503
    );
    assert_eq!(up.count(), 1);
}
