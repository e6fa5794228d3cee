//! Failover before the first byte, over real sockets: several targets per provider, a failure
//! retried on another target within the retry budget, a stream failed over only before it
//! began, targets skipped while their quota is spent, and an open period set by the
//! provider's `Retry-After`.

mod common;

use std::time::Duration;

use common::daemon::Daemon;
use common::upstream::{MockUpstream, Reply};
use common::wait::within;
use common::wire::Wire;

/// A daemon with provider `p` of `kind` over `targets` (`(name, url, weight)`), with `extra`
/// provider keys.
async fn daemon(kind: &str, targets: &[(&str, String, u32)], extra: &str) -> Daemon {
    let targets: Vec<String> = targets
        .iter()
        .map(|(name, url, weight)| {
            format!(
                "{{ name: {name}, base_url: '{url}', api_key_env: KEY_{name}, weight: {weight} }}"
            )
        })
        .collect();
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, workers: 0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: p, kind: {kind}, targets: [{}], {extra} }}
",
        targets.join(", ")
    );
    let keys = [("KEY_a", "key-a"), ("KEY_b", "key-b"), ("KEY_c", "key-c")];
    Daemon::start_with_env(&yaml, &keys).await
}

/// `POST /p{path}` with a small JSON body; the whole answer.
async fn post(app: &Daemon, path: &str) -> common::wire::Resp {
    let mut wire = Wire::connect(app.gateway_addr()).await;
    let req = format!(
        "POST /p{path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    wire.send(req.as_bytes()).await;
    wire.response("POST").await
}

/// The value of the Prometheus sample `series`, or 0 when absent.
async fn sample(app: &Daemon, series: &str) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The heavier target is asked first: a 529 there, and the same request succeeds on the
/// second target, one attempt at each, with each target's own key.
#[tokio::test]
async fn a_529_on_one_target_is_answered_by_the_next_one() {
    let a = MockUpstream::start(Reply::status(529).json(r#"{"type":"error"}"#)).await;
    let b = MockUpstream::start(Reply::ok()).await;
    let app = daemon("anthropic", &[("a", a.url(), 3), ("b", b.url(), 1)], "").await;
    let reply = post(&app, "/v1/messages").await;
    assert_eq!(reply.head.status, 200, "{reply:?}");
    assert_eq!(reply.head.header("x-seawall-target"), Some("b"));
    assert_eq!((a.count(), b.count()), (1, 1));
    assert_eq!(a.received()[0].headers["x-api-key"], "key-a");
    assert_eq!(b.received()[0].headers["x-api-key"], "key-b");
    let failover =
        r#"seawall_failover_attempts_total{provider="p",target="a",reason="status_529"}"#;
    assert_eq!(sample(&app, failover).await, 1);
    // Each target has its own breakers, labelled with the target.
    let views = app.admin_json("/v1/breakers").await;
    let targets: Vec<&str> = views
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["a", "b"], "{views}");
}

/// A stream that fails before its first byte (a 529 head) fails over; one that fails after
/// its head went to the client (an error event mid-stream) does not.
#[tokio::test]
async fn a_stream_fails_over_only_before_its_first_byte() {
    let a = MockUpstream::start(Reply::status(529)).await;
    let b = MockUpstream::start(Reply::sse().chunk("event: message_start\ndata: {}\n\n")).await;
    let app = daemon("anthropic", &[("a", a.url(), 3), ("b", b.url(), 1)], "").await;
    let reply = post(&app, "/v1/messages").await;
    assert_eq!(reply.head.status, 200);
    assert!(reply.text().contains("message_start"), "{reply:?}");
    assert_eq!((a.count(), b.count()), (1, 1));

    a.set_default(
        Reply::sse()
            .chunk("event: message_start\ndata: {}\n\n")
            .chunk("event: error\ndata: {\"type\":\"overloaded_error\"}\n\n"),
    );
    let reply = post(&app, "/v1/messages").await;
    assert_eq!(reply.head.status, 200);
    assert!(
        reply.text().contains("event: error"),
        "the client sees the stream it got"
    );
    assert_eq!(b.count(), 1, "not sent again once bytes went to the client");
}

/// With both targets failing, failover could double the load on the provider. The retry
/// budget (20 % of first attempts, no floor here) caps the extra attempts, and every failure
/// beyond it goes back to the client.
#[tokio::test]
async fn the_retry_budget_keeps_failover_from_doubling_a_storm() {
    let a = MockUpstream::start(Reply::status(529)).await;
    let b = MockUpstream::start(Reply::status(529)).await;
    let app = daemon(
        "anthropic",
        &[("a", a.url(), 1), ("b", b.url(), 1)],
        "retry_budget: { ratio: 0.2, min_per_second: 0 }, circuit_breaker: { failure_threshold: 1000 }",
    )
    .await;
    let requests = 50;
    for _ in 0..requests {
        assert_eq!(post(&app, "/v1/messages").await.head.status, 529);
    }
    let sent = a.count() + b.count();
    assert!(
        (requests..=requests + requests / 5).contains(&sent),
        "{sent} attempts for {requests} requests"
    );
    let exhausted = sample(
        &app,
        r#"seawall_retry_budget_exhausted_total{provider="p"}"#,
    )
    .await;
    assert_eq!(exhausted as usize, requests - (sent - requests));
}

/// A target whose answers said its requests quota is spent is skipped until the quota resets,
/// before any 429 arrives; with every target spent, the client gets a provider-shaped 429 with
/// `retry-after` at the earliest reset and the provider's own rate-limit fields.
#[tokio::test]
async fn a_spent_quota_steers_away_before_any_429() {
    let spent = |reset: &str| {
        Reply::ok()
            .header("x-ratelimit-remaining-requests", "0")
            .header("x-ratelimit-reset-requests", reset)
    };
    let a = MockUpstream::start(spent("1m0s")).await;
    let b = MockUpstream::start(Reply::ok().header("x-ratelimit-remaining-requests", "100")).await;
    let app = daemon("openai", &[("a", a.url(), 3), ("b", b.url(), 1)], "").await;
    for _ in 0..6 {
        assert_eq!(post(&app, "/v1/chat/completions").await.head.status, 200);
    }
    assert_eq!(
        (a.count(), b.count()),
        (1, 5),
        "a was spent after its first answer"
    );
    let remaining =
        r#"seawall_target_rate_limit_remaining{provider="p",target="a",resource="requests"}"#;
    assert_eq!(sample(&app, remaining).await, 0);

    b.set_default(spent("20s"));
    assert_eq!(post(&app, "/v1/chat/completions").await.head.status, 200);
    let reply = post(&app, "/v1/chat/completions").await;
    assert_eq!(reply.head.status, 429, "{reply:?}");
    assert_eq!(reply.json()["error"]["code"], "rate_limit_exceeded");
    let retry_after: u64 = reply.head.header("retry-after").unwrap().parse().unwrap();
    assert!((19..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(
        reply.head.header("x-ratelimit-remaining-requests"),
        Some("0")
    );
    assert_eq!((a.count(), b.count()), (1, 6), "nothing was sent");
}

/// A 429 carrying `retry-after: 2` opens the target's breaker for exactly 2 s, not
/// `open_timeout` (5 s) nor a doubled back-off, and takes only that target out.
#[tokio::test(start_paused = true)]
async fn the_providers_hint_decides_the_open_time() {
    let a = MockUpstream::start(Reply::status(429).header("retry-after", "2")).await;
    let b = MockUpstream::start(Reply::ok()).await;
    let app = daemon(
        "anthropic",
        &[("a", a.url(), 1), ("b", b.url(), 1)],
        "failover: { on: [rejected] }, circuit_breaker: { open_timeout: 5s, jitter: 0 }",
    )
    .await;
    // Round robin: `a` first, its 429 goes back to the client (failover on refusals only).
    assert_eq!(post(&app, "/v1/messages").await.head.status, 429);
    let view = app.admin_json("/v1/breakers").await;
    let open = view
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["target"] == "a")
        .cloned()
        .unwrap();
    assert_eq!(open["state"], "open", "{open}");
    assert_eq!(open["reason"], "retry_after", "{open}");
    let transitions = app.admin_json("/v1/transitions").await;
    assert_eq!(transitions[0]["target"], "a", "{transitions}");
    assert_eq!(transitions[0]["to"], "open", "{transitions}");
    // While `a` is open, `b` serves everything.
    for _ in 0..3 {
        let reply = post(&app, "/v1/messages").await;
        assert_eq!(reply.head.header("x-seawall-target"), Some("b"));
    }
    // `a` was passed over, not asked: no rejection, no failover from it.
    let metrics = app.metrics().await.text().to_owned();
    let a_series = |name: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(r#"target="a""#))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let rejects = a_series("seawall_circuit_breaker_rejects_total");
    assert!(rejects.iter().all(|v| v == "0"), "{metrics}");
    assert!(
        a_series("seawall_failover_attempts_total").is_empty(),
        "{metrics}"
    );
    within(
        "the hint's 2 s",
        tokio::time::sleep(Duration::from_millis(2100)),
    )
    .await;
    a.set_default(Reply::ok());
    let mut served_by_a = 0;
    for _ in 0..4 {
        let reply = post(&app, "/v1/messages").await;
        assert_eq!(reply.head.status, 200);
        served_by_a += usize::from(reply.head.header("x-seawall-target") == Some("a"));
    }
    assert!(
        served_by_a > 0,
        "a is back after 2 s, well before open_timeout's 5 s"
    );
}
