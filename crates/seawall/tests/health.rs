//! Global health end to end over loopback: the app runs in-process with an injected memory
//! probe (or its real pipeline queues), mock upstreams and a mock collector are started here.
//! Under pressure the gateway answers provider-shaped 503s and ingest answers `overloaded`,
//! both with `retry-after`, without contacting anyone; recovery needs the level to fall below
//! `recover_percent` of the threshold. The monitor itself is checked on paused time.

mod common;

use std::time::Duration;

use common::bodies::{assert_ingest_shed, assert_shed};
use common::client::Answer;
use common::daemon::Daemon;
use common::probes::{constant_memory, scripted, Memory};
use common::upstream::{Gate, MockUpstream, Reply};
use common::wait::settle;
use http::StatusCode;
use seawall::config::GlobalHealthConfig;
use seawall::health::{Check, Edge, Health};
use seawall::metrics::Metrics;
use serde_json::{json, Value};

/// Polls `POST path` on the gateway until it answers `status`, bounded.
async fn until_status(app: &Daemon, path: &str, body: &str, status: StatusCode) -> Answer {
    let reply = settle(|| app.post_json(path, body), |r| r.status == status).await;
    assert_eq!(
        reply.status, status,
        "{path} never answered {status}; last {:?}",
        reply.body
    );
    reply
}

#[tokio::test]
async fn memory_pressure_sheds_gateway_and_ingest_in_each_providers_shape_until_recovered() {
    let upstream = MockUpstream::start(Reply::ok()).await;
    let up = upstream.addr();
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: claude, kind: anthropic, base_url: 'http://{up}' }}
  - {{ name: gpt, kind: openai, base_url: 'http://{up}' }}
  - {{ name: plain, kind: generic, base_url: 'http://{up}' }}
pipelines:
  - {{ name: events, outputs: [{{ name: sink, type: blackhole }}] }}
global_health: {{ memory_check_enabled: true, memory_threshold: 1000, queue_check_enabled: false,
                 check_interval: 50ms, recover_percent: 80 }}
"
    );
    let memory = Memory::new(100);
    let app = Daemon::start_with_probes(&yaml, memory.probes()).await;
    assert_eq!(
        app.post_json("/plain/v1/x", "{}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.post_json("/ingest/events", r#"{"a":1}"#).await.status,
        StatusCode::ACCEPTED
    );

    memory.set(1000);
    let shed = until_status(&app, "/plain/v1/x", "{}", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_shed(&shed, "generic", "plain", "memory", "memory pressure");
    let before = upstream.count();
    for (kind, provider) in [("anthropic", "claude"), ("openai", "gpt")] {
        let reply = app
            .post_json(&format!("/{provider}/v1/messages"), "{}")
            .await;
        assert_shed(&reply, kind, provider, "memory", "memory pressure");
    }
    assert_eq!(upstream.count(), before, "no upstream was contacted");
    assert_ingest_shed(
        &app.post_json("/ingest/events", r#"{"a":2}"#).await,
        "memory",
    );
    let text = app.metrics().await;
    for needle in [
        r#"seawall_global_health_unhealthy{check="memory"} 1"#,
        r#"seawall_shed_requests_total{edge="ingest",check="memory"} 1"#,
        r#"seawall_shed_requests_total{edge="gateway",check="memory"} 3"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // Below the threshold but above 80% of it: still shedding, check after check.
    memory.set(850);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_shed(
        &app.post_json("/plain/v1/x", "{}").await,
        "generic",
        "plain",
        "memory",
        "memory pressure",
    );

    memory.set(799);
    until_status(&app, "/plain/v1/x", "{}", StatusCode::OK).await;
    assert_eq!(
        app.post_json("/ingest/events", r#"{"a":3}"#).await.status,
        StatusCode::ACCEPTED
    );
    assert!(app
        .metrics()
        .await
        .contains(r#"seawall_global_health_unhealthy{check="memory"} 0"#));
    app.stop().await;
}

#[tokio::test]
async fn a_full_output_queue_sheds_until_the_output_drains_it() {
    let up = MockUpstream::start(Reply::ok()).await.addr();
    let open = Gate::new();
    let collecting = MockUpstream::start(Reply::ok().hold(&open)).await;
    let collector = collecting.addr();
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: plain, kind: generic, base_url: 'http://{up}' }}
pipelines:
  - name: events
    queue: {{ capacity: 10 }}
    outputs:
      - {{ name: collector, type: http, endpoint: 'http://{collector}/ingest', timeout: 60s,
          batch: {{ max_events: 1, linger: 0s }} }}
global_health: {{ queue_threshold_percent: 50, check_interval: 50ms, recover_percent: 50 }}
"
    );
    let app = Daemon::start(&yaml).await;
    assert_eq!(
        app.post_json("/plain/v1/x", "{}").await.status,
        StatusCode::OK
    );

    // The collector holds the first batch, so the queue behind it fills.
    let events: Vec<Value> = (0..30).map(|n| json!({ "n": n })).collect();
    let events = serde_json::to_string(&events).unwrap();
    assert_eq!(
        app.post_json("/ingest/events", &events).await.status,
        StatusCode::ACCEPTED
    );
    let shed = until_status(&app, "/plain/v1/x", "{}", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_shed(&shed, "generic", "plain", "queue", "output queue pressure");
    assert_ingest_shed(
        &app.post_json("/ingest/events", r#"{"n":99}"#).await,
        "queue",
    );
    assert!(collecting.count() >= 1);
    assert!(app
        .metrics()
        .await
        .contains(r#"seawall_global_health_unhealthy{check="queue"} 1"#));

    // The collector answers again: the output drains its queue and the daemon recovers.
    open.open();
    until_status(&app, "/plain/v1/x", "{}", StatusCode::OK).await;
    until_status(&app, "/ingest/events", r#"{"n":100}"#, StatusCode::ACCEPTED).await;
    assert!(app
        .metrics()
        .await
        .contains(r#"seawall_global_health_unhealthy{check="queue"} 0"#));
    app.stop().await;
}

#[tokio::test]
async fn with_global_health_disabled_nothing_is_shed() {
    let up = MockUpstream::start(Reply::ok()).await.addr();
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: plain, kind: generic, base_url: 'http://{up}' }}
global_health: {{ enabled: false, memory_check_enabled: true, memory_threshold: 1 }}
"
    );
    let app = Daemon::start_with_probes(&yaml, constant_memory(u64::MAX)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.post_json("/plain/v1/x", "{}").await.status,
        StatusCode::OK
    );
    let ingest = app.post_json("/ingest/events", "{}").await;
    assert_eq!(
        ingest.status,
        StatusCode::NOT_FOUND,
        "no pipelines configured"
    );
    assert_eq!(ingest.json()["error"]["type"], "unknown_pipeline");
    assert!(!app
        .metrics()
        .await
        .contains("seawall_global_health_unhealthy"));
    app.stop().await;
}

fn config(check_interval: Duration) -> GlobalHealthConfig {
    GlobalHealthConfig {
        memory_check_enabled: true,
        memory_threshold: 1000,
        queue_threshold_percent: 80,
        check_interval,
        recover_percent: 90,
        ..GlobalHealthConfig::default()
    }
}

/// Runs the monitor over `readings` (one per check), returning the verdict after each.
async fn verdicts(readings: &[(u64, f64)]) -> Vec<Option<Check>> {
    let every = Duration::from_secs(5);
    let health = Health::new(&config(every), &Metrics::new());
    let task = tokio::spawn(health.clone().monitor(scripted(readings)));
    let mut out = Vec::new();
    // The first check runs at once, then one per interval; sample half-way between checks.
    tokio::time::sleep(every / 2).await;
    for _ in readings {
        out.push(health.failing());
        tokio::time::sleep(every).await;
    }
    task.abort();
    out
}

#[tokio::test(start_paused = true)]
async fn levels_between_the_recover_level_and_the_threshold_do_not_flap() {
    // Memory: trips at 1000, recovers below 900. Queue: trips at 80%, recovers below 72%.
    let readings = [
        (999, 0.0),
        (900, 0.79),
        (1000, 0.0),
        (950, 0.0),
        (999, 0.0),
        (900, 0.0),
        (899, 0.0),
        (999, 0.0),
        (0, 0.8),
        (0, 0.75),
        (0, 0.73),
        (0, 0.71),
    ];
    let m = Some(Check::Memory);
    let q = Some(Check::Queue);
    assert_eq!(
        verdicts(&readings).await,
        [None, None, m, m, m, m, None, None, q, q, q, None]
    );
}

#[tokio::test(start_paused = true)]
async fn shed_responses_ask_to_retry_after_the_check_interval() {
    for (interval, secs) in [(250, 1), (1000, 1), (1500, 2), (30_000, 30)] {
        let health = Health::new(&config(Duration::from_millis(interval)), &Metrics::new());
        assert_eq!(health.retry_after_secs(), secs, "{interval}ms");
        health.observe(Some(5000), None);
        assert_eq!(health.shed(Edge::Ingest), Some(Check::Memory));
    }
}
