//! The pipeline under faults, over loopback: an outage shorter than the buffer loses nothing,
//! bad events are refused at ingest (never poisoning a batch), resent batches keep their id,
//! tiny events stay cheap to hold, and the memory threshold is enforced at admission.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::client::{self, Answer};
use common::collector::{Collector, Mode};
use common::daemon::Daemon;
use common::inproc::{assert_balanced, events, TestPipelines};
use common::ports::closed_port;
use common::probes::Memory;
use common::serve::serve;
use common::wait::eventually;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

fn one_output(url: &str, breaker: &str, extra: &str) -> String {
    format!(
        "pipelines:
  - name: p
    queue: {{ capacity: 20000 }}
    outputs:
      - {{ name: o, type: http, endpoint: '{url}', batch: {{ max_events: 500, linger: 0s }},
          resilience: {{ circuit_breaker: {{ {breaker} }} }} {extra} }}
    fallback: {{ retry_buffer: 20000 }}
"
    )
}

/// POSTs raw `bytes` (not necessarily UTF-8) to `/ingest/p`.
async fn post_bytes(h: &TestPipelines, content_type: Option<&str>, bytes: Vec<u8>) -> Answer {
    let mut req = client::request("POST", &format!("http://{}/ingest/p", h.addr));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    client::send(
        req.body(Full::new(Bytes::from(bytes)).boxed_unsync())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn an_outage_shorter_than_the_buffer_loses_no_event() {
    // One 503 with `retry-after: 1` opens the breaker (reason retry_after), as in the field.
    let c = Collector::start(Mode::Status(503)).await;
    let h = TestPipelines::start(&one_output(&c.url, "failure_threshold: 5", "")).await;
    h.ingest("p", events(0, 500)).await;
    eventually("breaker open", || async {
        h.output("p", "o").endpoints[0].state == "open"
    })
    .await;
    assert_eq!(c.requests(), 1);
    // 10 000 events arrive while it is open.
    for i in 0..20 {
        h.ingest("p", events(500 + i * 500, 500)).await;
    }
    let o = h.output("p", "o");
    assert_balanced(&o);
    assert_eq!(
        (o.pending, o.sampled_out, o.dropped.total, o.sampling_rate),
        (10_500, 0, 0, 1.0),
        "held, not sampled: {o:?}"
    );
    assert!(!o.delivering);
    // The collector is back; the breaker half-opens after its open_timeout (30s, +10% jitter).
    c.set(Mode::Ok);
    h.advance(Duration::from_secs(40));
    eventually("all delivered", || async {
        h.output("p", "o").delivered == 10_500
    })
    .await;
    let o = h.output("p", "o");
    assert_eq!((o.pending, o.sampled_out, o.dropped.total), (0, 0, 0));
    let expected: Vec<String> = events(0, 10_500).lines().map(str::to_owned).collect();
    assert_eq!(c.lines(), expected, "every event, once, in order");
}

#[tokio::test]
async fn invalid_events_are_refused_at_ingest_and_never_reach_the_collector() {
    let c = Collector::start(Mode::Ok).await;
    let h = TestPipelines::start(&one_output(&c.url, "", "")).await;
    let nested = format!("{{\"a\":{}", "[".repeat(10_000));
    let bad: [(&[u8], Option<&str>, &str); 6] = [
        (
            b"{\"ok\":1}\n{\"id\":\"\xff\"}\n",
            None,
            "line 2: invalid unicode code point",
        ),
        (
            nested.as_bytes(),
            None,
            "line 1: nested deeper than max_depth (64)",
        ),
        (b"{}\n\"a string\"\n", None, "line 2: invalid type: string"),
        (
            b"{}\n3\n",
            Some("application/x-ndjson"),
            "line 2: invalid type: integer",
        ),
        (
            b"null",
            Some("application/json"),
            "line 1: invalid type: null",
        ),
        (
            b"[{}, true]",
            Some("application/json"),
            "line 1: invalid type: boolean",
        ),
    ];
    for (body, ct, message) in bad {
        let answer = post_bytes(&h, ct, body.to_vec()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
        let json = answer.json();
        let text = json["error"]["message"].as_str().unwrap();
        assert!(text.starts_with(message), "{text}");
    }
    let (status, json) = h
        .request("POST", "/ingest/p", Some("text/xml"), "<event/>")
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(json["error"]["type"], "unsupported_media_type", "{json}");
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("application/x-ndjson"));
    assert_eq!(h.output("p", "o").accepted, 0, "all or nothing");

    h.ingest("p", "{\"fine\":\"é\"}\n").await;
    eventually("delivered", || async { h.output("p", "o").delivered == 1 }).await;
    assert_eq!(c.lines(), ["{\"fine\":\"é\"}"]);
    assert_eq!(h.output("p", "o").dropped.rejected, 0);
}

#[tokio::test]
async fn a_batch_sent_again_carries_the_same_batch_id() {
    // The collector stores every batch but answers the first only after the output's timeout:
    // the batch may have arrived, so it is held and sent again (at least once), under its id.
    let ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = ids.clone();
    let addr = serve(move |req: http::Request<hyper::body::Incoming>, _| {
        let seen = seen.clone();
        async move {
            let id = req.headers()["x-seawall-batch-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let first = {
                let mut ids = seen.lock().unwrap();
                ids.push(id);
                ids.len() == 1
            };
            let _ = req.into_body().collect().await;
            if first {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }
    })
    .await;
    let url = format!("http://{addr}/ingest");
    let h = TestPipelines::start(&one_output(
        &url,
        "failure_threshold: 1",
        ", timeout: 100ms",
    ))
    .await;
    h.ingest("p", events(0, 3)).await;
    eventually("first send timed out and is held", || async {
        h.output("p", "o").retry_buffer.length == 3
    })
    .await;
    h.advance(Duration::from_secs(40));
    eventually("delivered", || async { h.output("p", "o").delivered == 3 }).await;
    let sent = ids.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0], sent[1], "the resend names the same batch");
    assert_eq!(sent[0].len(), 32);
    assert!(sent[0].bytes().all(|b| b.is_ascii_hexdigit()), "{sent:?}");
    h.ingest("p", events(3, 1)).await;
    eventually("next delivered", || async {
        h.output("p", "o").delivered == 4
    })
    .await;
    assert_ne!(ids.lock().unwrap()[2], sent[0], "another batch, another id");
}

#[tokio::test]
async fn tiny_events_are_held_at_their_own_size() {
    let (dead, _reserved) = closed_port();
    let yaml = format!(
        "pipelines:
  - name: p
    queue: {{ capacity: 2000000 }}
    outputs:
      - {{ name: o, type: http, endpoint: 'http://{dead}/ingest',
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: 1h }} }} }}
"
    );
    let h = TestPipelines::start(&yaml).await;
    let body = "{}\n".repeat(1_000_000);
    assert_eq!(h.ingest("p", body.clone()).await, 1_000_000);
    eventually("held while the output cannot deliver", || async {
        !h.output("p", "o").delivering
    })
    .await;
    // 3 bytes of NDJSON per event and nothing per event besides (it was ~19× with one handle
    // and one queue slot per event). The count is exact: the body and one spare byte.
    let held: u64 = h.metrics().value("seawall_buffered_bytes");
    assert_eq!(held, body.len() as u64 + 1, "{held} bytes held");
    assert_eq!(h.output("p", "o").pending, 1_000_000);
    h.shutdown(Duration::ZERO).await;
    assert_eq!(h.metrics().value::<u64>("seawall_buffered_bytes"), 0);
}

#[tokio::test]
async fn a_body_that_would_pass_the_memory_threshold_is_shed_at_once() {
    let (dead, _reserved) = closed_port();
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0, shutdown_grace: 0s }}
admin: {{ listen: 127.0.0.1:0 }}
pipelines:
  - name: p
    outputs: [{{ name: o, type: http, endpoint: 'http://{dead}/x', batch: {{ linger: 1h }} }}]
global_health: {{ memory_check_enabled: true, memory_threshold: 64KB, check_interval: 1h }}
"
    );
    // The process itself reads 0 bytes: only the held buffers count.
    let daemon = Daemon::start_with_probes(&yaml, Memory::new(0).probes()).await;
    let event = format!("{{\"pad\":\"{}\"}}", "x".repeat(72));
    let body = format!("[{}]", vec![event; 200].join(","));
    for held in ["16 KiB", "32 KiB", "48 KiB"] {
        let answer = daemon.post_json("/ingest/p", &body).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{held} held");
    }
    // The next body would pass 64 KiB: refused now, not at the next check (an hour away).
    let answer = daemon.post_json("/ingest/p", &body).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["error"]["type"], "overloaded");
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains(r#"seawall_shed_requests_total{edge="ingest",check="memory"} 1"#),
        "{}",
        metrics.text()
    );
    assert!(metrics.value::<u64>("seawall_buffered_bytes") >= 48 * 1024);
    daemon.stop().await;
}
