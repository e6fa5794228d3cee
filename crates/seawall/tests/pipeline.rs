//! End-to-end tests of the event pipeline over loopback sockets: ingest, fan-out, the fallback
//! chain (reroute → buffer → sampling → drop), recovery, shutdown, and exact accounting
//! throughout.

mod common;

use std::time::Duration;

use common::collector::{Collector, Mode};
use common::inproc::{assert_balanced, events, TestPipelines};
use common::ports::closed_port;
use common::temp::temp_dir;
use common::wait::eventually;
use common::wire::Wire;
use http::StatusCode;

/// One pipeline `p` with one `http` output `o` to `urls` (first = endpoint, rest = alternates).
fn http_yaml(urls: &[&str], breaker: &str, fallback: &str, extra: &str) -> String {
    let alternates = urls[1..]
        .iter()
        .map(|u| format!("'{u}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "pipelines:
  - name: p
    outputs:
      - {{ name: o, type: http, endpoint: '{}', alternates: [{alternates}],
          batch: {{ max_events: 10, linger: 0s }}, {extra}
          resilience: {{ circuit_breaker: {{ {breaker} }} }} }}
    fallback: {{ {fallback} }}
",
        urls[0]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_adds_up_on_every_snapshot_while_an_endpoint_fails_in_bursts() {
    let collector = Collector::start(Mode::Bursts { ok: 3, fail: 2 }).await;
    let yaml = http_yaml(
        &[&collector.url],
        "failure_threshold: 2, open_timeout: 1s, half_open_max_calls: 1",
        "sampling: { min_rate: 0.5, seed: 7 }, retry_buffer: 300",
        "",
    );
    let h = TestPipelines::start(&yaml).await;
    let watcher = {
        let p = h.clone();
        tokio::spawn(async move {
            let mut seen = 0u32;
            loop {
                for view in p.views() {
                    for o in &view.outputs {
                        assert_balanced(o);
                    }
                }
                seen += 1;
                if seen.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
                if seen == 200_000 {
                    return seen;
                }
            }
        })
    };
    let mut sent = 0;
    for round in 0..40 {
        sent += h.ingest("p", events(sent as usize, 25)).await;
        assert_balanced(&h.output("p", "o"));
        if round % 4 == 3 {
            h.advance(Duration::from_secs(2));
        }
    }
    collector.set(Mode::Ok);
    eventually("everything settled", || async {
        h.advance(Duration::from_secs(2));
        let o = h.output("p", "o");
        assert_balanced(&o);
        o.pending == 0
    })
    .await;
    assert!(watcher.await.unwrap() >= 200_000);
    let o = h.output("p", "o");
    assert_eq!(o.accepted, sent);
    assert_eq!(o.accepted, o.delivered + o.sampled_out + o.dropped.total);
    assert_eq!(
        o.delivered,
        collector.lines().len() as u64,
        "delivered = what arrived"
    );
    assert_eq!(
        (o.delivered, o.sampled_out, o.dropped.total),
        (sent, 0, 0),
        "buffered through every failure, nothing lost: {o:?}"
    );
    let text = h.metrics();
    let metric = |name: &str| -> u64 { text.value(name) };
    let accepted = metric(r#"seawall_pipeline_events_accepted_total{pipeline="p"}"#);
    let delivered =
        metric(r#"seawall_output_events_total{pipeline="p",output="o",outcome="delivered"}"#);
    let sampled =
        metric(r#"seawall_output_events_total{pipeline="p",output="o",outcome="sampled_out"}"#);
    let dropped =
        metric(r#"seawall_output_events_total{pipeline="p",output="o",outcome="dropped"}"#);
    let pending = metric(r#"seawall_output_pending_events{pipeline="p",output="o"}"#);
    assert_eq!(accepted, delivered + sampled + dropped + pending);
    assert_eq!((delivered, pending), (o.delivered, 0));
}

#[tokio::test]
async fn reroute_visits_each_endpoint_once_and_at_most_max_attempts() {
    let failing: Vec<Collector> = Collector::several(4, Mode::Status(500)).await;
    let urls: Vec<&str> = failing.iter().map(|c| c.url.as_str()).collect();
    let yaml = http_yaml(
        &urls,
        "failure_threshold: 100",
        "reroute: { max_attempts: 2 }, retry_buffer: 0",
        "",
    );
    let h = TestPipelines::start(&yaml).await;
    h.ingest("p", events(0, 1)).await;
    eventually("batch settled", || async {
        h.output("p", "o").pending == 0
    })
    .await;
    let hits: Vec<usize> = failing.iter().map(Collector::requests).collect();
    assert_eq!(
        hits,
        [1, 1, 1, 0],
        "primary + 2 reroutes, each endpoint once"
    );
    let o = h.output("p", "o");
    assert_eq!((o.reroutes, o.dropped.buffer_full), (2, 1));

    // More attempts allowed than endpoints: still each endpoint once.
    let three = Collector::several(3, Mode::Status(503)).await;
    let urls: Vec<&str> = three.iter().map(|c| c.url.as_str()).collect();
    let yaml = http_yaml(
        &urls,
        "failure_threshold: 100",
        "reroute: { max_attempts: 10 }, retry_buffer: 0",
        "",
    );
    let h = TestPipelines::start(&yaml).await;
    h.ingest("p", events(0, 1)).await;
    eventually("batch settled", || async {
        h.output("p", "o").pending == 0
    })
    .await;
    let hits: Vec<usize> = three.iter().map(Collector::requests).collect();
    assert_eq!(hits, [1, 1, 1]);
    assert_eq!(h.output("p", "o").reroutes, 2);
}

#[tokio::test]
async fn a_connect_error_reroutes_but_a_timeout_does_not() {
    let good = Collector::start(Mode::Ok).await;
    let (dead, _reserved) = closed_port();
    let dead = format!("http://{dead}/ingest");
    let yaml = http_yaml(&[&dead, &good.url], "failure_threshold: 100", "", "");
    let h = TestPipelines::start(&yaml).await;
    h.ingest("p", events(0, 3)).await;
    eventually("delivered via the alternate", || async {
        h.output("p", "o").delivered == 3
    })
    .await;
    assert_eq!(h.output("p", "o").reroutes, 1);
    assert_eq!(good.lines(), ["{\"seq\":0}", "{\"seq\":1}", "{\"seq\":2}"]);

    let hanging = Collector::start(Mode::Hang).await;
    let spare = Collector::start(Mode::Ok).await;
    let yaml = http_yaml(
        &[&hanging.url, &spare.url],
        "failure_threshold: 100",
        "retry_buffer: 0",
        "timeout: 200ms,",
    );
    let h = TestPipelines::start(&yaml).await;
    h.ingest("p", events(0, 1)).await;
    eventually("timed out batch settled", || async {
        h.output("p", "o").pending == 0
    })
    .await;
    let o = h.output("p", "o");
    assert_eq!((o.reroutes, o.delivered, o.dropped.buffer_full), (0, 0, 1));
    assert_eq!(
        spare.requests(),
        0,
        "a batch that may have arrived is not sent twice"
    );
    assert_eq!(hanging.requests(), 1);
}

#[tokio::test]
async fn sampling_starts_past_start_percent_at_a_rate_set_by_health_and_fill() {
    let (dead, _reserved) = closed_port();
    let yaml = format!(
        "pipelines:
  - name: p
    queue: {{ capacity: 100 }}
    outputs:
      - {{ name: o, type: http, endpoint: 'http://{dead}/ingest',
          batch: {{ max_events: 10, linger: 0s }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: 1h }} }} }}
    fallback: {{ sampling: {{ start_percent: 50, min_rate: 0.2, seed: 42 }}, retry_buffer: 100 }}
"
    );
    let h = TestPipelines::start(&yaml).await;
    // The first batch fails and opens the only breaker: healthy share 0, nothing delivers.
    assert_eq!(h.ingest("p", events(0, 100)).await, 100);
    eventually("held in the retry buffer", || async {
        let o = h.output("p", "o");
        (o.endpoints[0].state, o.queue.length, o.retry_buffer.length) == ("open", 0, 100)
    })
    .await;
    // Holding 100 of 200 = start_percent: still every event kept.
    h.ingest("p", events(100, 50)).await;
    let o = h.output("p", "o");
    assert_eq!((o.pending, o.sampled_out, o.dropped.total), (150, 0, 0));
    // At 75%, halfway from the start to full: keep 1 - (1 - 0.2) × 0.5 = 0.6.
    assert_eq!(o.sampling_rate, 0.6);
    h.ingest("p", events(150, 40)).await;
    let mut rng = fastrand::Rng::with_seed(42);
    let kept = (0..40).filter(|_| rng.f64() < 0.6).count() as u64;
    let o = h.output("p", "o");
    assert_balanced(&o);
    assert_eq!((o.pending, o.sampled_out), (150 + kept, 40 - kept), "{o:?}");
    assert!((15..=32).contains(&kept), "about 60%: {kept}");
    assert!(h
        .metrics()
        .contains(r#"seawall_sampling_rate{pipeline="p",output="o"} 0.6"#));
}

#[tokio::test]
async fn a_failed_batch_larger_than_the_retry_buffer_keeps_what_fits() {
    let (dead, _reserved) = closed_port();
    let dead = format!("http://{dead}/ingest");
    let yaml = http_yaml(&[&dead], "failure_threshold: 1", "retry_buffer: 5", "");
    let h = TestPipelines::start(&yaml).await;
    h.ingest("p", events(0, 20)).await;
    eventually("first batch failed", || async {
        h.output("p", "o").retry_buffer.length == 5
    })
    .await;
    let o = h.output("p", "o");
    assert_balanced(&o);
    // A batch of 10 failed: 5 held, 5 dropped; the other 10 wait in the queue.
    assert_eq!(
        (o.dropped.buffer_full, o.queue.length, o.pending),
        (5, 10, 15)
    );
    assert_eq!(o.sampled_out, 0);
}

#[tokio::test]
async fn recovery_drains_the_retry_buffer() {
    let c = Collector::start(Mode::Status(503)).await;
    let yaml = http_yaml(
        &[&c.url],
        "failure_threshold: 1, open_timeout: 10s, half_open_max_calls: 1",
        "sampling: { min_rate: 1.0 }, retry_buffer: 1000",
        "",
    );
    let h = TestPipelines::start(&yaml).await;
    h.ingest("p", events(0, 50)).await;
    eventually("all buffered", || async {
        h.output("p", "o").retry_buffer.length == 50
    })
    .await;
    assert_eq!(h.output("p", "o").endpoints[0].state, "open");
    c.set(Mode::Ok);
    h.advance(Duration::from_secs(11));
    eventually("buffer delivered", || async {
        h.output("p", "o").delivered == 50
    })
    .await;
    let o = h.output("p", "o");
    assert_eq!((o.pending, o.sampled_out, o.dropped.total), (0, 0, 0));
    assert_eq!(o.endpoints[0].state, "closed");
    let expected: Vec<String> = events(0, 50).lines().map(str::to_owned).collect();
    assert_eq!(c.lines(), expected, "every event, once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_output_does_not_slow_the_others() {
    let hang = Collector::start(Mode::Hang).await;
    let dir = temp_dir("pipeline");
    let file = dir.join("events.ndjson");
    let yaml = format!(
        "pipelines:
  - name: p
    queue: {{ capacity: 1000 }}
    outputs:
      - {{ name: dead, type: http, endpoint: '{}', timeout: 1h, batch: {{ max_events: 10 }} }}
      - {{ name: archive, type: file, path: '{}', batch: {{ linger: 10ms }} }}
",
        hang.url,
        file.display()
    );
    let h = TestPipelines::start(&yaml).await;
    let started = std::time::Instant::now();
    for i in 0..20 {
        h.ingest("p", events(i * 50, 50)).await;
    }
    eventually("file has every event", || async {
        h.output("p", "archive").delivered == 1000
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let expected = events(0, 1000);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
    let dead = h.output("p", "dead");
    assert_balanced(&dead);
    assert_eq!(dead.delivered, 0);
    assert_eq!(dead.pending, 1000, "held in its own queue: {dead:?}");
    h.shutdown(Duration::from_millis(100)).await;
    let dead = h.output("p", "dead");
    assert_eq!((dead.pending, dead.delivered), (0, 0));
    assert_eq!(dead.dropped.queue_full + dead.dropped.shutdown, 1000);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn shutdown_counts_what_is_left_as_dropped_shutdown() {
    let (dead, _reserved) = closed_port();
    let dead = format!("http://{dead}/ingest");
    let yaml = format!(
        "pipelines:
  - name: p
    outputs:
      - {{ name: o, type: http, endpoint: '{dead}', batch: {{ linger: 0s }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1 }} }} }}
      - {{ name: sink, type: blackhole, batch: {{ linger: 1h }} }}
    fallback: {{ sampling: {{ min_rate: 1.0 }} }}
"
    );
    let h = TestPipelines::start(&yaml).await;
    h.ingest("p", events(0, 30)).await;
    eventually("buffered", || async {
        h.output("p", "o").retry_buffer.length == 30
    })
    .await;
    h.shutdown(Duration::from_millis(200)).await;
    let o = h.output("p", "o");
    assert_eq!((o.pending, o.delivered, o.dropped.shutdown), (0, 0, 30));
    assert_balanced(&o);
    let sink = h.output("p", "sink");
    assert_eq!(
        (sink.delivered, sink.pending),
        (30, 0),
        "drain skips linger"
    );
    let (status, _) = h.request("POST", "/ingest/p", None, events(0, 1)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!h.submit("p", serde_json::json!({"late": true})));
}

const SMALL: &str = "pipelines:
  - name: p
    max_body: 100
    outputs: [{ name: o, type: blackhole }]
";

#[tokio::test]
async fn a_bad_line_rejects_the_whole_request_naming_the_line() {
    let h = TestPipelines::start(SMALL).await;
    let (status, json) = h
        .request("POST", "/ingest/p", None, "{}\n\n{\"a\":}\n{}\n")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json["error"]["message"],
        "line 3: expected value at column 6"
    );
    let (status, json) = h
        .request("POST", "/ingest/p", Some("application/json"), "[1,\n2,\n}")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("line 3: "));
    assert_eq!(h.output("p", "o").accepted, 0, "all or nothing");
    let (status, _) = h.request("GET", "/ingest/p", None, "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = h.request("POST", "/ingest/nope", None, "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!h.submit("nope", serde_json::json!({})));
    assert!(h.submit("p", serde_json::json!({"ok": 1})));
    assert_eq!(h.output("p", "o").accepted, 1);
}

#[tokio::test]
async fn oversized_bodies_get_413_announced_or_streamed() {
    let h = TestPipelines::start(SMALL).await;
    let big = events(0, 20);
    let (status, json) = h.request("POST", "/ingest/p", None, big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    // Chunked, so the size is only found while reading.
    let mut s = Wire::connect(h.addr).await;
    let head = "POST /ingest/p HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    s.send(head.as_bytes()).await;
    for chunk in big.as_bytes().chunks(40) {
        let framed = format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        );
        if !s.try_send(framed.as_bytes()).await {
            break;
        }
    }
    let _ = s.try_send(b"0\r\n\r\n").await;
    let answer = String::from_utf8_lossy(&s.rest().await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(h.output("p", "o").accepted, 0);
}

#[tokio::test]
async fn json_arrays_and_ndjson_land_in_the_file_as_exact_ndjson() {
    let dir = temp_dir("pipeline");
    let file = dir.join("out.ndjson");
    let yaml = format!(
        "pipelines:
  - name: p
    outputs: [{{ name: f, type: file, path: '{}', batch: {{ linger: 0s }} }}]
",
        file.display()
    );
    let h = TestPipelines::start(&yaml).await;
    let array = "[\n  {\"a\": 1,\n   \"b\": [1, 2]},\n  {\"s\": \"x,y\"},\n  {}\n]";
    let (status, json) = h
        .request("POST", "/ingest/p", Some("application/json"), array)
        .await;
    assert_eq!(
        (status, json["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(3))
    );
    let (status, json) = h.request("POST", "/ingest/p", None, "[{\"t\":true}]").await;
    assert_eq!(
        (status, json["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1))
    );
    h.ingest("p", "{\"n\":1}\r\n\n{\"n\":2}").await;
    eventually("file written", || async {
        h.output("p", "f").delivered == 6
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "{\"a\": 1,   \"b\": [1, 2]}\n{\"s\": \"x,y\"}\n{}\n{\"t\":true}\n{\"n\":1}\n{\"n\":2}\n"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_file_output_in_a_missing_directory_fails_to_start() {
    let yaml = "pipelines:
  - name: p
    outputs: [{ name: f, type: file, path: /nonexistent-seawall-dir/x.ndjson }]
";
    let err = TestPipelines::try_start(yaml)
        .await
        .err()
        .expect("must fail");
    assert_eq!(
        err.to_string(),
        "pipeline `p`, output `f`: directory /nonexistent-seawall-dir does not exist"
    );
}
