//! `check` guarantees `run`: `seawall check` refuses values past their documented bound (the
//! field and its line:column named) and a file output in a missing directory; and a property
//! test draws every numeric field of a configuration within its bounds, runs the daemon
//! in-process, trips a provider breaker and an output breaker, lingers and shuts down, and
//! expects no panic, a complete shutdown and exact accounting.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::client::{self, body, request};
use common::collector::{Collector, Mode};
use common::process::seawall;
use common::temp::temp_path;
use http::StatusCode;
use proptest::prelude::*;
use seawall::app::App;
use serde_json::Value;

fn check(yaml: &str) -> (Option<i32>, String) {
    let path = temp_path("bounds.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = seawall().args(["check", "-c"]).arg(&path).output().unwrap();
    let _ = std::fs::remove_file(path);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_refuses_durations_past_their_bound_naming_field_and_position() {
    let cases = [
        (
            "pipelines:\n  - name: p\n    outputs: [{ name: o, type: blackhole, batch: { linger: 550000000000y } }]\n",
            "config error: pipelines[0].outputs[0].batch.linger at 3:60: 550000000000years is too long: must be at most 1h",
        ),
        (
            "server: { shutdown_grace: 550000000000y }\n",
            "config error: server.shutdown_grace at 1:27: 550000000000years is too long: must be at most 1h",
        ),
        (
            "pipelines:\n  - name: p\n    outputs:\n      - name: o\n        type: blackhole\n        resilience: { circuit_breaker: { open_timeout: 550000000000y, jitter: 0.5 } }\n",
            "config error: pipelines[0].outputs[0].resilience.circuit_breaker.open_timeout at 6:56: 550000000000years is too long: must be at most 1day",
        ),
    ];
    for (yaml, error) in cases {
        let (code, stderr) = check(yaml);
        assert_eq!((code, stderr.trim_end()), (Some(2), error));
    }
}

#[test]
fn check_refuses_a_file_output_whose_directory_does_not_exist() {
    let yaml = "pipelines:\n  - name: p\n    outputs:\n      - { name: f, type: file, path: /nonexistent-seawall-dir/e.ndjson }\n";
    let (code, stderr) = check(yaml);
    assert_eq!(
        (code, stderr.trim_end()),
        (
            Some(2),
            "config error: pipelines[0].outputs[0].path at 4:38: directory /nonexistent-seawall-dir does not exist"
        )
    );
}

/// A duration in milliseconds from `min` to `max`, the bounds themselves often, and now and
/// then one far past `max` (which `check` must refuse, naming the field).
fn millis(min: u64, max: u64) -> impl Strategy<Value = String> {
    let ms = |ms: u64| format!("{ms}ms");
    prop_oneof![
        10 => Just(ms(min)),
        10 => Just(ms(max)),
        20 => (min..=max).prop_map(ms),
        1 => Just("550000000000y".to_owned()),
    ]
}

fn count(min: u64, max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![Just(min), Just(max), min..=max]
}

const SECOND: u64 = 1000;
const HOUR: u64 = 3600 * SECOND;
const DAY: u64 = 24 * HOUR;

/// A `circuit_breaker` block with every numeric key drawn within its bounds. It trips on the
/// first failure so that each case trips.
fn breaker() -> impl Strategy<Value = String> {
    let periods = (
        count(1, DAY),
        0.0..=1.0f64,
        millis(1, DAY),
        millis(1, DAY),
        millis(1, HOUR),
        millis(1, HOUR),
    );
    let window = (1u64..=1000, count(1, 1000), count(1, 4095));
    (periods, window, count(1, DAY)).prop_map(
        |((open, jitter, half_open, retry_max, slow, check), (buckets, min_calls, probes), max)| {
            format!(
                "{{ failure_threshold: 1, open_timeout: {open}ms, jitter: {jitter}, \
                 half_open_timeout: {half_open}, retry_after_max: {retry_max}, \
                 slow_call_duration: {slow}, check_interval: {check}, window: {}ms, \
                 window_buckets: {buckets}, minimum_calls: {min_calls}, \
                 half_open_max_calls: {probes}, failure_rate_threshold: 0.5, \
                 slow_call_rate_threshold: 1.0, open_timeout_max: {}ms }}",
                HOUR.max(buckets),
                max.max(open)
            )
        },
    )
}

/// The whole configuration with the drawn values; `UP_URL` and `COLLECTOR_URL` stand for the
/// addresses of an upstream and a collector that fail.
fn config() -> impl Strategy<Value = String> {
    let server = (
        count(1 << 10, 1 << 30),
        millis(0, HOUR),
        count(8, 1_000_000),
        0u64..=2,
    );
    let timeouts = (
        millis(1, 300 * SECOND),
        millis(SECOND, HOUR),
        millis(SECOND, HOUR),
    );
    let pipeline = (
        count(1, 100_000_000),
        count(1, 100),
        count(0, 100_000_000),
        count(0, 100),
        0.0..=1.0f64,
        0u32..=5,
    );
    let output = (
        millis(SECOND, HOUR),
        count(1, 1_000_000),
        count(1, 256 << 20),
        millis(0, HOUR),
    );
    let health = (
        count(1, 1 << 40),
        count(1, 100),
        millis(1, HOUR),
        count(1, 100),
    );
    (
        server,
        timeouts,
        pipeline,
        output,
        health,
        breaker(),
        breaker(),
    )
        .prop_map(
            |(server, timeouts, pipeline, output, health, provider_cb, output_cb)| {
                let (max_body, grace, conns, workers) = server;
                let (connect, first_byte, idle) = timeouts;
                let (capacity, depth, buffer, start, min_rate, attempts) = pipeline;
                let (timeout, max_events, max_bytes, linger) = output;
                let (memory, queue_pct, interval, recover) = health;
                format!(
                    "server: {{ listen: 127.0.0.1:0, max_body: {max_body}, shutdown_grace: {grace},
           max_connections: {conns}, workers: {workers} }}
admin: {{ listen: 127.0.0.1:0, token_env: ADMIN_TOKEN }}
providers:
  - name: up
    kind: generic
    base_url: 'UP_URL'
    max_keys: 1000000
    timeouts: {{ connect: {connect}, first_byte: {first_byte}, idle: {idle} }}
    circuit_breaker: {provider_cb}
pipelines:
  - name: p
    queue: {{ capacity: {capacity} }}
    max_body: {max_body}
    max_depth: {depth}
    fallback: {{ retry_buffer: {buffer}, reroute: {{ max_attempts: {attempts} }},
                sampling: {{ start_percent: {start}, min_rate: {min_rate} }} }}
    outputs:
      - {{ name: o, type: http, endpoint: 'COLLECTOR_URL', timeout: {timeout},
          batch: {{ max_events: {max_events}, max_bytes: {max_bytes}, linger: {linger} }},
          resilience: {{ circuit_breaker: {output_cb} }} }}
global_health: {{ memory_threshold: {memory}, queue_threshold_percent: {queue_pct},
                 check_interval: {interval}, recover_percent: {recover} }}
"
                )
            },
        )
}

/// Sends three events (or nothing for a GET); `(status, JSON)`, or `None` when the server is
/// gone (the admin listener stops at the end of a shutdown).
async fn send(method: &str, url: String, auth: Option<&str>) -> Option<(StatusCode, Value)> {
    let mut req = request(method, &url);
    if let Some(token) = auth {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let events = "{\"seq\":1}\n{\"seq\":2}\n{\"seq\":3}\n";
    let answer = client::try_send(req.body(body(events)).unwrap())
        .await
        .ok()?;
    let json = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    Some((answer.status, json))
}

/// Counts panics on any thread (a panicking worker task does not fail the test by itself).
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// One case: start, trip both breakers, let a batch linger, shut down while the output is
/// failing, then let it recover (resetting its breaker) so the drain can finish.
async fn survive(yaml: String, up: Collector, collector: Collector) -> Result<(), TestCaseError> {
    let config = match seawall::config::parse(&yaml) {
        Ok(config) => config,
        Err(e) => {
            // Refused by `check`: then with the field and its position.
            prop_assert!(e.path().is_some() && e.position().is_some(), "{e}");
            prop_assert!(e.message().contains("too long"), "{e}\n{yaml}");
            return Ok(());
        }
    };
    let secrets = config
        .resolve_secrets(|_| Some("token".to_owned()))
        .unwrap();
    let app = App::start(config, secrets)
        .await
        .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
    let (gw, admin) = (app.gateway_addr(), app.admin_addr());
    // A provider breaker trips (the upstream answers 503 with retry-after).
    let (status, _) = send("POST", format!("http://{gw}/up/v1/x"), None)
        .await
        .unwrap();
    prop_assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, json) = send("POST", format!("http://{gw}/ingest/p"), None)
        .await
        .unwrap();
    prop_assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::SERVICE_UNAVAILABLE,
        "{status} {json}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.shutdown();
    let done = tokio::spawn(app.wait());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done.is_finished() {
        prop_assert!(
            tokio::time::Instant::now() < deadline,
            "no shutdown\n{yaml}"
        );
        if collector.requests() > 0 {
            collector.set(Mode::Ok);
        }
        let breakers = send("GET", format!("http://{admin}/v1/breakers"), None).await;
        let breakers = breakers.map(|(_, json)| json).unwrap_or_default();
        for b in breakers.as_array().into_iter().flatten() {
            if b["kind"] == "output" && b["state"] != "closed" {
                let id = b["id"].as_str().unwrap_or_default();
                let url = format!("http://{admin}/v1/breakers/{id}/reset");
                send("POST", url, Some("token")).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.await.unwrap();
    prop_assert!(up.requests() >= 1);
    prop_assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a task panicked\n{}",
        yaml
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn anything_check_accepts_starts_and_survives_a_trip_a_linger_and_a_shutdown(
        template in config(),
    ) {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let result = runtime.block_on(async {
            let up = Collector::start(Mode::Status(503)).await;
            let collector = Collector::start(Mode::Status(503)).await;
            let yaml = template
                .replace("UP_URL", up.url.trim_end_matches("/ingest"))
                .replace("COLLECTOR_URL", &collector.url);
            survive(yaml, up, collector).await
        });
        let _ = std::panic::take_hook();
        result?;
    }
}
