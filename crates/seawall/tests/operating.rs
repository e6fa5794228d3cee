//! What an operator meets first, end to end over loopback: `/metrics` in the format each
//! scraper asks for (checked by Prometheus's own `promtool`), trip and rejection series that
//! exist before their first increment, breaker counts that agree with the metrics through
//! `force-open` and `reset`, a forced-open breaker's answer, and 502/504 answers and log lines
//! that name their cause.
//!
//! The `promtool` test needs `promtool` on the `PATH` (Debian's `prometheus` package). Without
//! it the test is skipped with a message, except under CI (`CI` set), where it fails.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::client::{self, Answer};
use common::daemon::Daemon;
use common::exposition::Exposition;
use common::ports::{closed_port, free_port};
use common::process::{read_all, run, wait_exit, wait_ready};
use common::upstream::{Gate, MockUpstream, Reply};
use serde_json::Value;

const TOKEN: &str = "operator-token";
const TOKEN_ENV: &str = "SEAWALL_TEST_ADMIN_TOKEN";

/// The daemon in front of `upstream` as provider `p` (breaker tripping on the first failure,
/// open for 45 s), with a blackhole pipeline `events` and the admin token set.
async fn start(upstream: SocketAddr, provider: &str) -> Daemon {
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0, token_env: {TOKEN_ENV} }}
providers:
  - {{ name: p, kind: openai, base_url: 'http://{upstream}',
      circuit_breaker: {{ failure_threshold: 1, open_timeout: 45s, jitter: 0 }}{provider} }}
pipelines:
  - name: events
    outputs: [{{ name: sink, type: blackhole, batch: {{ linger: 0s }} }}]
"
    );
    Daemon::start_with_env(&yaml, &[(TOKEN_ENV, TOKEN)]).await
}

/// `GET /metrics` with `accept` (none when `None`).
async fn metrics(app: &Daemon, accept: Option<&str>) -> Answer {
    let mut req = client::request("GET", &app.admin("/metrics"));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    client::send(req.body(client::body("")).unwrap()).await
}

/// `POST /v1/breakers/{id}/{action}` with the admin token; the breaker's new view.
async fn act(app: &Daemon, id: &str, action: &str) -> Value {
    let req = client::request("POST", &app.admin(&format!("/v1/breakers/{id}/{action}")))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(client::body(""))
        .unwrap();
    let answer = client::send(req).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// The view of provider `p`'s breaker of `/v1/chat/completions`.
async fn view(app: &Daemon) -> Value {
    let list = app.admin_json("/v1/breakers").await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "p" && v["endpoint"] == "/v1/chat/completions")
        .cloned()
        .unwrap_or_else(|| panic!("no breaker of p in {list}"))
}

async fn chat(app: &Daemon) -> Answer {
    app.post_json("/p/v1/chat/completions", r#"{"model":"m","messages":[]}"#)
        .await
}

const BREAKER: &str = r#"kind="provider",name="p",endpoint="/v1/chat/completions",model="""#;

fn trips(metrics: &Exposition, reason: &str) -> u64 {
    metrics.value(&format!(
        "seawall_circuit_breaker_trips_total{{{BREAKER},reason=\"{reason}\"}}"
    ))
}

fn rejects(metrics: &Exposition) -> u64 {
    metrics.value(&format!(
        "seawall_circuit_breaker_rejects_total{{{BREAKER}}}"
    ))
}

/// `promtool` when installed; `None` (after a loud message) when it is missing outside CI.
/// Panics when it is missing under CI.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|path| path.is_file())
    });
    if found.is_some() {
        return found;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "promtool is missing but CI is set: .ci/run must install it \
             (apt-get install -y prometheus) before `cargo test --workspace`"
        );
    }
    eprintln!(
        "\n\
         ********************************************************************\n\
         * SKIPPED promtool check of /metrics: promtool is not installed.\n\
         * Install it to run the check: apt-get install -y prometheus\n\
         ********************************************************************\n"
    );
    None
}

#[tokio::test]
async fn metrics_come_in_the_format_asked_for_and_pass_promtool() {
    let upstream = MockUpstream::start(Reply::overloaded()).await;
    let app = start(upstream.addr(), "").await;
    // A trip, a rejection, an upstream histogram, pipeline counters.
    assert_eq!(chat(&app).await.status, 503);
    assert_eq!(chat(&app).await.status, 503);
    let ingest = app.gateway("/ingest/events");
    let ingested = client::post(&ingest, "application/json", r#"{"n":1}"#).await;
    assert_eq!(ingested.status, 202);

    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let openmetrics = metrics(&app, Some(prometheus)).await;
    assert_eq!(
        openmetrics.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(openmetrics.header("vary"), Some("accept"));
    let om = openmetrics.text();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE seawall_circuit_breaker_trips counter\n"),
        "{om}"
    );

    for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
        let text = metrics(&app, accept).await;
        assert_eq!(
            text.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{accept:?}"
        );
        let body = text.text();
        assert!(!body.contains("# EOF"), "{body}");
        assert!(
            body.contains("# TYPE seawall_circuit_breaker_trips_total counter\n"),
            "{body}"
        );
        // The same samples in both formats.
        let samples = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(samples(&body), samples(&om), "{accept:?}");
    }

    if let Some(promtool) = promtool() {
        let text = metrics(&app, Some("text/plain")).await.text();
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool check metrics ({}):\n{}{}\non:\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn trip_and_reject_series_start_at_zero_with_their_breaker() {
    let upstream = MockUpstream::start(Reply::ok()).await;
    let app = start(upstream.addr(), "").await;
    assert_eq!(chat(&app).await.status, 200);
    let metrics = app.metrics().await;
    for reason in [
        "consecutive_failures",
        "failure_rate",
        "slow_call_rate",
        "retry_after",
        "manual",
        "half_open_failure",
        "half_open_timeout",
        "remote",
    ] {
        assert_eq!(trips(&metrics, reason), 0, "{reason}");
    }
    assert_eq!(rejects(&metrics), 0);
    // Output breakers too, from the start.
    assert!(
        metrics.contains(
            r#"seawall_circuit_breaker_rejects_total{kind="output",name="sink",endpoint="blackhole",model=""} 0"#
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn breaker_counts_agree_with_the_metrics_through_force_open_and_reset() {
    let upstream = MockUpstream::start(Reply::ok()).await;
    let app = start(upstream.addr(), "").await;
    assert_eq!(chat(&app).await.status, 200);
    let id = view(&app).await["id"].as_str().unwrap().to_owned();

    let forced = act(&app, &id, "force-open").await;
    assert_eq!(forced["counts"]["trips"], 1, "{forced}");
    for _ in 0..3 {
        assert_eq!(chat(&app).await.status, 503);
    }
    let metrics = app.metrics().await;
    assert_eq!(trips(&metrics, "manual"), 1);
    assert_eq!(rejects(&metrics), 3);
    assert_eq!(view(&app).await["counts"]["rejected"], 3);

    // Reset clears what decides the next trip, never the totals the counters carry.
    let reset = act(&app, &id, "reset").await;
    assert_eq!(
        (reset["state"].as_str(), reset["mode"].as_str()),
        (Some("closed"), Some("normal"))
    );
    assert_eq!(reset["counts"]["consecutive_failures"], 0);
    assert_eq!(
        (&reset["counts"]["trips"], &reset["counts"]["rejected"]),
        (&Value::from(1), &Value::from(3)),
        "{reset}"
    );
    let metrics = app.metrics().await;
    assert_eq!((trips(&metrics, "manual"), rejects(&metrics)), (1, 3));
    assert_eq!(chat(&app).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn a_forced_open_breaker_says_so_and_asks_the_sdks_not_to_retry() {
    let upstream = MockUpstream::start(Reply::ok()).await;
    let app = start(upstream.addr(), "").await;
    assert_eq!(chat(&app).await.status, 200);
    let id = view(&app).await["id"].as_str().unwrap().to_owned();
    act(&app, &id, "force-open").await;
    let forced = chat(&app).await;
    assert_eq!(forced.status, 503);
    assert_eq!(forced.header("retry-after"), Some("60"));
    assert_eq!(forced.header("x-should-retry"), Some("false"));
    assert_eq!(forced.header("x-seawall-circuit"), Some("open"));
    assert_eq!(
        forced.json()["error"]["message"],
        "seawall: the circuit breaker for provider `p` endpoint `/v1/chat/completions` was forced open by an operator and stays open until it is reset; retry after 60s"
    );

    // A breaker open after failures tells the time left and lets the SDKs retry.
    act(&app, &id, "reset").await;
    upstream.set_default(Reply::overloaded());
    assert_eq!(chat(&app).await.status, 503);
    let open = chat(&app).await;
    assert_eq!(open.header("retry-after"), Some("45"));
    assert_eq!(open.header("x-should-retry"), None);
    let message = open.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("is open after upstream failures"),
        "{message}"
    );
    app.stop().await;
}

/// `{"error":{"type","cause","message"}}` of a 502/504 the gateway wrote.
#[track_caller]
fn assert_cause(answer: &Answer, status: u16, r#type: &str, cause: &str) -> String {
    assert_eq!(answer.status, status, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["error"]["type"], r#type, "{body}");
    assert_eq!(body["error"]["cause"], cause, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_502_names_a_refused_connection_and_a_failed_tls_handshake() {
    let (refused, _held) = closed_port();
    let app = start(refused, "").await;
    let message = assert_cause(&chat(&app).await, 502, "upstream_unavailable", "refused");
    assert_eq!(
        message,
        format!("seawall: no answer from provider `p`: connection to {refused} refused")
    );
    app.stop().await;

    // `https` to a server that speaks plain HTTP: the handshake fails.
    let plain = MockUpstream::start(Reply::ok()).await;
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers: [{{ name: p, kind: openai, base_url: 'https://localhost:{}' }}]
",
        plain.addr().port()
    );
    let app = Daemon::start(&yaml).await;
    let message = assert_cause(&chat(&app).await, 502, "upstream_unavailable", "tls");
    assert!(
        message.starts_with(
            "seawall: no answer from provider `p`: TLS handshake with `localhost` failed: "
        ),
        "{message}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_504_names_the_deadline_that_passed() {
    let upstream = MockUpstream::start(Reply::ok()).await;
    let never = Gate::new();
    upstream.set_default(Reply::ok().hold(&never));
    let app = start(upstream.addr(), ", timeouts: { first_byte: 200ms }").await;
    let message = assert_cause(
        &chat(&app).await,
        504,
        "upstream_timeout",
        "first_byte_timeout",
    );
    assert!(message.contains("no response headers in time"), "{message}");
    never.open();
    app.stop().await;
}

#[test]
fn an_unanswered_request_is_logged_at_warn_with_its_cause_once_per_period() {
    let (refused, _held) = closed_port();
    let (gateway, admin) = (free_port(), free_port());
    let (mut child, config) = run(
        &format!(
            "server: {{ listen: '127.0.0.1:{gateway}' }}
admin: {{ listen: '127.0.0.1:{admin}' }}
providers:
  - {{ name: p, kind: generic, base_url: 'http://{refused}', circuit_breaker: {{ enabled: false }} }}
"
        ),
        "warn",
    );
    let admin = SocketAddr::from(([127, 0, 0, 1], admin));
    wait_ready(&mut child, admin, Duration::from_secs(20));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://127.0.0.1:{gateway}/p/v1/x");
    for _ in 0..3 {
        let answer = runtime.block_on(client::get(&url));
        assert_eq!(answer.status, 502, "{}", answer.text());
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_exit(&mut child, Duration::from_secs(10));
    let logs = read_all(child.stderr.take());
    let warned: Vec<Value> = logs
        .lines()
        .filter(|l| l.contains("upstream request failed without an answer"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Three failures within the period: one line, the others held back for the next.
    assert_eq!(warned.len(), 1, "{logs}");
    let fields = &warned[0]["fields"];
    assert_eq!(warned[0]["level"], "WARN", "{logs}");
    assert_eq!(
        (fields["provider"].as_str(), fields["cause"].as_str()),
        (Some("p"), Some("refused")),
        "{logs}"
    );
    assert_eq!(
        fields["error"].as_str(),
        Some(format!("connection to {refused} refused").as_str())
    );
    let _ = std::fs::remove_file(config);
}
