//! Gateway request events end to end over loopback: the app runs in-process with a
//! `telemetry` pipeline whose file output the test reads; mock upstreams and a mock flag
//! server are started here. Every decided request (forwarded, rejected, fallback, shed) becomes
//! one NDJSON line; a host whose `seawall.telemetry.enabled` flag is off sends none.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::daemon::Daemon;
use common::flags::FlagServer;
use common::probes::Memory;
use common::temp::temp_path;
use common::upstream::{MockUpstream, Reply};
use common::wait::settle;
use http::StatusCode;
use serde_json::Value;

/// An upstream: `/fail` and `/fail/x` answer 503, anything else 200.
async fn upstream() -> MockUpstream {
    let up = MockUpstream::start(Reply::ok()).await;
    for path in ["/fail", "/fail/x"] {
        up.route(path, Reply::status(503).json(r#"{"error":"busy"}"#));
    }
    up
}

/// Waits (bounded) until `path` holds at least `n` lines, and parses them.
async fn until_events(path: &Path, n: usize) -> Vec<Value> {
    let read = || async {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (text, lines)
    };
    let (text, lines) = settle(read, |(_, lines)| lines.len() >= n).await;
    assert!(
        lines.len() >= n,
        "only {} of {n} events in {}:\n{text}",
        lines.len(),
        path.display()
    );
    lines
}

/// The telemetry pipeline and its file output, in YAML.
fn telemetry(path: &Path) -> String {
    format!(
        "telemetry: {{ pipeline: requests }}
pipelines:
  - name: requests
    outputs: [{{ name: archive, type: file, path: '{}', batch: {{ linger: 0s }} }}]
",
        path.display()
    )
}

#[tokio::test]
async fn every_decided_request_reaches_the_file_output_as_an_event() {
    let up = upstream().await.addr();
    let path = temp_path("telemetry-events");
    let trip = "circuit_breaker: { failure_threshold: 1, open_timeout: 60s, jitter: 0 }";
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: plain, kind: generic, base_url: 'http://{up}', {trip} }}
  - {{ name: claude, kind: anthropic, base_url: 'http://{up}', per_model: true }}
  - {{ name: flaky, kind: generic, base_url: 'http://{up}', fallbacks: [backup], failover: {{ on: [rejected] }}, {trip} }}
  - {{ name: backup, kind: generic, base_url: 'http://{up}' }}
global_health: {{ memory_check_enabled: true, memory_threshold: 1000, check_interval: 20ms }}
{}",
        telemetry(&path)
    );
    let memory = Memory::new(0);
    let app = Daemon::start_with_probes(&yaml, memory.probes()).await;
    let started = SystemTime::now();

    assert_eq!(
        app.post_json("/plain/v1/ok?x=1", "{}").await.status,
        StatusCode::OK
    );
    let model = r#"{"model":"opus","max_tokens":1}"#;
    assert_eq!(
        app.post_json("/claude/v1/messages", model).await.status,
        StatusCode::OK
    );
    // Trips `plain`'s breaker for /fail, then is rejected by it.
    assert_eq!(
        app.post_json("/plain/fail", "{}").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        app.post_json("/plain/fail", "{}").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Trips `flaky`'s breaker for /fail/x, then `backup` serves it.
    assert_eq!(
        app.post_json("/flaky/fail/x", "{}").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        app.post_json("/flaky/ok", "{}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.post_json("/flaky/fail/x", "{}").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Requests the gateway does not route produce no event.
    assert_eq!(
        app.post_json("/nowhere/x", "{}").await.status,
        StatusCode::NOT_FOUND
    );

    memory.set(1000);
    let unhealthy = || async {
        app.metrics()
            .await
            .contains(r#"seawall_global_health_unhealthy{check="memory"} 1"#)
    };
    assert!(settle(unhealthy, |u| *u).await, "never unhealthy");
    assert_eq!(
        app.post_json("/plain/v1/ok", "{}").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let events = until_events(&path, 8).await;
    let expected = [
        ("plain", "/v1/ok", None, 200, Some("closed"), "forwarded"),
        (
            "claude",
            "/v1/messages",
            Some("opus"),
            200,
            Some("closed"),
            "forwarded",
        ),
        ("plain", "/fail", None, 503, Some("open"), "forwarded"),
        ("plain", "/fail", None, 503, Some("open"), "rejected"),
        ("flaky", "/fail/x", None, 503, Some("open"), "forwarded"),
        ("flaky", "/ok", None, 200, Some("closed"), "forwarded"),
        // The serving breaker's state: `backup`'s, one failure below its threshold.
        ("flaky", "/fail/x", None, 503, Some("closed"), "fallback"),
        ("plain", "/v1/ok", None, 503, None, "shed"),
    ];
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (event, (provider, endpoint, model, status, breaker, outcome)) in
        events.iter().zip(expected)
    {
        let mut keys: Vec<&str> = event.as_object().unwrap().keys().map(|k| &**k).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "breaker_state",
                "endpoint",
                "latency_ms",
                "model",
                "outcome",
                "provider",
                "status",
                "ts"
            ]
        );
        assert_eq!(event["provider"], provider, "{event}");
        assert_eq!(event["endpoint"], endpoint, "{event}");
        assert_eq!(event["model"].as_str(), model, "{event}");
        assert_eq!(event["status"], status, "{event}");
        assert_eq!(event["breaker_state"].as_str(), breaker, "{event}");
        assert_eq!(event["outcome"], outcome, "{event}");
        let latency = event["latency_ms"].as_f64().unwrap();
        assert!((0.0..20_000.0).contains(&latency), "{event}");
        let ts = humantime::parse_rfc3339(event["ts"].as_str().unwrap()).unwrap();
        assert!(
            ts + Duration::from_secs(1) >= started && ts <= SystemTime::now(),
            "{event}"
        );
    }
    assert!(app
        .metrics()
        .await
        .contains(r#"seawall_telemetry_events_total{result="submitted"} 8"#));
    app.stop().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_host_whose_telemetry_flag_is_off_sends_no_events_while_others_do() {
    let quiet = upstream().await.addr();
    let loud = upstream().await.addr();
    let flag_server = FlagServer::off_for("seawall.telemetry.enabled", &quiet.to_string()).await;
    let flags = flag_server.url();
    let path = temp_path("telemetry-flags");
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: quiet, kind: generic, base_url: 'http://{quiet}' }}
  - {{ name: loud, kind: openai, base_url: 'http://{loud}' }}
feature_flags: {{ url: '{flags}' }}
{}",
        telemetry(&path)
    );
    let app = Daemon::start(&yaml).await;
    // Wait for both hosts' flags: a cold host reads the default (on).
    app.flags_fetched(2).await;

    for _ in 0..3 {
        assert_eq!(
            app.post_json("/quiet/v1/x", "{}").await.status,
            StatusCode::OK
        );
    }
    for _ in 0..2 {
        assert_eq!(
            app.post_json("/loud/v1/responses", "{}").await.status,
            StatusCode::OK
        );
    }
    // One queue, in order: had `quiet` sent events, they would be ahead of `loud`'s.
    let events = until_events(&path, 2).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events.iter().all(|e| e["provider"] == "loud"),
        "{events:#?}"
    );
    assert!(app
        .metrics()
        .await
        .contains(r#"seawall_telemetry_events_total{result="submitted"} 2"#));
    app.stop().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn without_a_telemetry_section_no_events_are_sent() {
    let up = upstream().await.addr();
    let path = temp_path("telemetry-none");
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: plain, kind: generic, base_url: 'http://{up}' }}
pipelines:
  - name: requests
    outputs: [{{ name: archive, type: file, path: '{}', batch: {{ linger: 0s }} }}]
",
        path.display()
    );
    let app = Daemon::start(&yaml).await;
    assert_eq!(
        app.post_json("/plain/v1/x", "{}").await.status,
        StatusCode::OK
    );
    app.stop().await;
    // Shutdown drained the pipeline: anything submitted would be in the file by now.
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(text, "");
    let _ = std::fs::remove_file(&path);
}
