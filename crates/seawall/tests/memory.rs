//! The real `seawall` binary under a burst of ingest with its output down and the memory check
//! on: bodies are refused at admission once they would pass `memory_threshold` (resident memory
//! stays within the threshold plus one `max_body`), and once the output is back and has
//! drained, shedding ends within a check or two.

mod common;

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use common::client;
use common::collector::{Collector, Mode};
use common::ports::free_port;
use common::process::{run, wait_ready};
use common::wait::eventually;

const MIB: u64 = 1 << 20;
const THRESHOLD: u64 = 96 * MIB;
const MAX_BODY: u64 = 10 * MIB;

fn rss(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn a_burst_is_shed_at_admission_within_the_threshold_and_shedding_ends_after_the_drain() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = runtime.block_on(Collector::start(Mode::Status(503)));
    let gateway = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (mut child, config) = run(
        &format!(
            "server: {{ listen: '{gateway}', shutdown_grace: 0s }}
admin: {{ listen: '{admin}' }}
pipelines:
  - name: p
    max_body: {MAX_BODY}
    queue: {{ capacity: 10000000 }}
    fallback: {{ retry_buffer: 10000000 }}
    outputs:
      - {{ name: o, type: http, endpoint: '{}', batch: {{ max_events: 5000, max_bytes: 4MB }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: 100ms,
                                             check_interval: 100ms }} }} }}
global_health: {{ memory_check_enabled: true, memory_threshold: {THRESHOLD},
                 queue_check_enabled: false, check_interval: 500ms }}
",
            collector.url
        ),
        "error",
    );
    wait_ready(&mut child, admin, Duration::from_secs(20));
    let ingest = format!("http://{gateway}/ingest/p");
    let post = |body: &str| runtime.block_on(client::post(&ingest, "application/x-ndjson", body));

    // 1 MiB bodies of ~110-byte events while the collector refuses everything.
    let line = format!("{{\"msg\":\"{}\"}}\n", "x".repeat(100));
    let body = line.repeat((MIB as usize) / line.len());
    let (mut accepted, mut shed, mut peak) = (0, 0, rss(&child));
    for _ in 0..200 {
        let answer = post(&body);
        match answer.status.as_u16() {
            202 => accepted += 1,
            503 => {
                assert_eq!(answer.json()["error"]["type"], "overloaded");
                shed += 1;
            }
            other => panic!("{other}: {}", answer.text()),
        }
        peak = peak.max(rss(&child));
    }
    assert!(accepted >= 40, "accepted {accepted} MiB");
    assert!(shed >= 100, "shed {shed}");
    assert!(
        peak <= THRESHOLD + MAX_BODY,
        "resident {} MiB past the threshold {} MiB + max_body {} MiB",
        peak / MIB,
        THRESHOLD / MIB,
        MAX_BODY / MIB
    );

    // The collector is back: the output drains, the memory is freed, shedding ends.
    collector.set(Mode::Ok);
    let views = format!("http://{admin}/v1/pipelines");
    runtime.block_on(eventually("drained", || async {
        client::get(&views).await.json()[0]["outputs"][0]["pending"] == 0
    }));
    let drained = Instant::now();
    while post(&line).status != 202 {
        assert!(
            drained.elapsed() < Duration::from_secs(10),
            "still shedding"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let waited = drained.elapsed();
    assert!(
        waited <= Duration::from_millis(1500),
        "shedding lasted {waited:?} after the drain (check_interval 500ms)"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(config);
}
