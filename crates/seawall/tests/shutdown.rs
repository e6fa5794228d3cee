//! The real `seawall` binary shutting down with an output down: from the first SIGTERM ingest
//! answers `503 shutting_down` (a request in flight included), admin and `/metrics` answer
//! until the process exits, and each output logs its final accounting.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::client;
use common::exposition::Exposition;
use common::ports::free_port;
use common::process::{read_all, run, wait_exit, wait_ready};
use common::wait::eventually;
use common::wire::Wire;
use serde_json::Value;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn sigterm_answers_ingest_503_shutting_down_keeps_metrics_up_and_logs_final_accounting() {
    let (gateway, admin, dead) = (local(free_port()), local(free_port()), free_port());
    let (mut child, config) = run(
        &format!(
            "server: {{ listen: '{gateway}', shutdown_grace: 3s }}
admin: {{ listen: '{admin}' }}
pipelines:
  - name: p
    outputs:
      - {{ name: down, type: http, endpoint: 'http://127.0.0.1:{dead}/ingest', batch: {{ linger: 0s }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: 1h }} }} }}
      - {{ name: sink, type: blackhole, batch: {{ linger: 0s }} }}
"
        ),
        "info",
    );
    wait_ready(&mut child, admin, Duration::from_secs(20));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ingest = format!("http://{gateway}/ingest/p");
    let events = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n";
    let accepted = runtime.block_on(client::post(&ingest, "application/x-ndjson", events));
    assert_eq!(accepted.status, 202, "{}", accepted.text());
    runtime.block_on(eventually("held by the down output", || async {
        client::output_view(admin, "down").await["retry_buffer"]["length"] == 5
    }));

    // A request in flight: its head and part of its body are sent before the signal.
    let body = "{\"late\":1}\n{\"late\":2}\n";
    let mut in_flight = runtime.block_on(Wire::connect(gateway));
    let head = format!(
        "POST /ingest/p HTTP/1.1\r\nhost: seawall\r\ncontent-type: application/x-ndjson\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    runtime.block_on(in_flight.send(head.as_bytes()));
    runtime.block_on(in_flight.send(&body.as_bytes()[..5]));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    runtime.block_on(eventually("draining", || async {
        client::get(&format!("http://{admin}/readyz")).await.status == 503
    }));
    runtime.block_on(in_flight.send(&body.as_bytes()[5..]));
    let answer = runtime.block_on(in_flight.response("POST"));
    assert_eq!(answer.head.status, 503, "{}", answer.text());
    assert_eq!(answer.head.header("retry-after"), Some("1"));
    assert_eq!(answer.json()["error"]["type"], "shutting_down");

    // The output still holds its events while the drain lasts, and it can be seen.
    let metrics = runtime.block_on(client::get(&format!("http://{admin}/metrics")));
    let metrics = Exposition::new(metrics.text());
    assert_eq!(
        metrics.value::<u64>(r#"seawall_output_pending_events{pipeline="p",output="down"}"#),
        5
    );

    let status = wait_exit(&mut child, Duration::from_secs(20));
    let logs = read_all(child.stderr.take());
    assert_eq!(status.code(), Some(0), "{logs}");
    let finals: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "output stopped: final accounting")
        .map(|l| l["fields"].clone())
        .collect();
    assert_eq!(finals.len(), 2, "one line per output: {logs}");
    let down = finals.iter().find(|f| f["output"] == "down").unwrap();
    for (field, value) in [
        ("accepted", 5),
        ("delivered", 0),
        ("sampled_out", 0),
        ("queue_full", 0),
        ("shutdown", 5),
        ("left_pending", 5),
    ] {
        assert_eq!(down[field], value, "{field}: {down}");
    }
    let sink = finals.iter().find(|f| f["output"] == "sink").unwrap();
    assert_eq!(
        (&sink["delivered"], &sink["left_pending"]),
        (&5.into(), &0.into())
    );
    let _ = std::fs::remove_file(config);
}
