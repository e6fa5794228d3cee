//! Feature flags in the daemon, end to end over loopback: a real mock flag server, a real
//! mock upstream, the app in-process. `seawall.circuit_breaker.enabled: false` turns a host's
//! breakers to metrics-only; every provider host is fetched once, not once per request; no
//! `feature_flags` section means no fetching at all.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use seawall::app::{App, RunningApp};
use seawall::config::{parse, Secrets};
use serde_json::Value;
use tokio::net::TcpListener;

/// Requests received, by path.
type Hits = Arc<Mutex<HashMap<String, usize>>>;

/// How a mock server answers a request for a path.
type Reply = Arc<dyn Fn(&str) -> (StatusCode, String) + Send + Sync>;

/// A server answering every request with `reply(path)`, counting requests by path.
async fn serve(reply: Reply) -> (SocketAddr, Hits) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits: Hits = Arc::default();
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (counter, reply) = (counter.clone(), reply.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                let path = req.uri().path().to_owned();
                *counter.lock().unwrap().entry(path.clone()).or_default() += 1;
                let (status, body) = reply(&path);
                let resp = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                async move { Ok::<_, Infallible>(resp) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, hits)
}

/// The flag service: breaker enforcement off for the host on port `off`, on elsewhere.
fn flags_off_for(off: u16) -> Reply {
    Arc::new(move |path: &str| {
        let value = if path.ends_with(&format!(":{off}")) {
            "false"
        } else {
            "true"
        };
        let body = format!(
            r#"{{"flags":[{{"name":"seawall.circuit_breaker.enabled","value":"{value}"}}],"ttl_seconds":900}}"#
        );
        (StatusCode::OK, body)
    })
}

fn always_503() -> Reply {
    Arc::new(|_: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"overloaded"}"#.into(),
        )
    })
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client
        .get(format!("http://{addr}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn post(addr: SocketAddr, path: &str, body: &'static str) -> StatusCode {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/x-ndjson")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    client.request(req).await.unwrap().status()
}

async fn json(addr: SocketAddr, path: &str) -> Value {
    serde_json::from_slice(&get(addr, path).await.1).unwrap()
}

async fn start(yaml: &str) -> RunningApp {
    App::start(parse(yaml).unwrap(), Secrets::default())
        .await
        .unwrap()
}

/// Waits (bounded) until the flag cache holds values for `hosts` hosts.
async fn until_fetched(app: &RunningApp, hosts: usize) -> Value {
    for _ in 0..200 {
        let flags = json(app.admin_addr(), "/v1/flags").await;
        let fetched = flags["cache"]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| !h["flags"].as_object().unwrap().is_empty())
            .count();
        if fetched == hosts {
            return flags;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("flags were not fetched");
}

#[tokio::test]
async fn a_flag_that_is_off_puts_the_hosts_breakers_in_metrics_only() {
    let (off_addr, off_hits) = serve(always_503()).await;
    let (on_addr, on_hits) = serve(always_503()).await;
    let (flag_addr, flag_hits) = serve(flags_off_for(off_addr.port())).await;
    let app = start(&format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
feature_flags: {{ url: 'http://{flag_addr}/flags/{{host}}', ttl: 15m }}
providers:
  - {{ name: relaxed, kind: generic, base_url: 'http://{off_addr}',
      circuit_breaker: {{ failure_threshold: 1, check_interval: 50ms }} }}
  - {{ name: strict, kind: generic, base_url: 'http://{on_addr}',
      circuit_breaker: {{ failure_threshold: 1, check_interval: 50ms }} }}
"
    ))
    .await;
    let flags = until_fetched(&app, 2).await;
    let gw = app.gateway_addr();
    // The watcher applies fetched values every check_interval: wait (bounded) until a
    // warm-up endpoint's breaker shows it.
    let mut applied = false;
    for _ in 0..200 {
        get(gw, "/relaxed/warmup").await;
        let breakers = json(app.admin_addr(), "/v1/breakers").await;
        applied = breakers.as_array().unwrap().iter().any(|b| {
            b["name"] == "relaxed" && b["endpoint"] == "/warmup" && b["mode"] == "metrics_only"
        });
        if applied {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(applied, "the flag was never applied");
    for _ in 0..3 {
        assert_eq!(
            get(gw, "/relaxed/v1/x").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            get(gw, "/strict/v1/x").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // Metrics-only: every request reached the upstream although the breaker tripped.
    assert_eq!(off_hits.lock().unwrap()["/v1/x"], 3);
    // Enforced: the first failure tripped the breaker, the rest were rejected.
    assert_eq!(on_hits.lock().unwrap()["/v1/x"], 1);

    let breakers = json(app.admin_addr(), "/v1/breakers").await;
    let relaxed = breakers
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "relaxed" && b["endpoint"] == "/v1/x")
        .unwrap();
    assert_eq!(relaxed["mode"], "metrics_only");
    assert_eq!(relaxed["state"], "open");
    assert_eq!(relaxed["counts"]["would_reject"], 2);

    // One fetch per host however many requests and watcher passes happened.
    let hits = flag_hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.values().all(|&n| n == 1), "{hits:?}");

    // The admin view lists each host with its handle count and values.
    let hosts = flags["cache"]["hosts"].as_array().unwrap();
    let off_host = format!("127.0.0.1:{}", off_addr.port());
    let entry = hosts
        .iter()
        .find(|h| h["host"] == off_host.as_str())
        .unwrap();
    assert_eq!(entry["handles"], 1);
    assert_eq!(entry["flags"]["seawall.circuit_breaker.enabled"], "false");

    let metrics = String::from_utf8(get(app.admin_addr(), "/metrics").await.1.to_vec()).unwrap();
    let line = format!(r#"seawall_feature_flag_fetches_total{{host="{off_host}",result="ok"}} 1"#);
    assert!(metrics.contains(&line), "{metrics}");
    app.shutdown();
    app.wait().await;
}

#[tokio::test]
async fn without_a_feature_flags_section_nothing_is_fetched() {
    let (up_addr, _) = serve(always_503()).await;
    let app = start(&format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: p, kind: generic, base_url: 'http://{up_addr}', circuit_breaker: {{ failure_threshold: 1 }} }}
"
    ))
    .await;
    assert_eq!(
        get(app.gateway_addr(), "/p/v1/x").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let flags = json(app.admin_addr(), "/v1/flags").await;
    assert_eq!(flags["enabled"], false);
    assert_eq!(flags["cache"]["hosts"], serde_json::json!([]));
    let metrics = String::from_utf8(get(app.admin_addr(), "/metrics").await.1.to_vec()).unwrap();
    assert!(
        !metrics.contains("seawall_feature_flag_fetches_total{"),
        "{metrics}"
    );
    app.shutdown();
    app.wait().await;
}

#[tokio::test]
async fn a_flag_that_is_off_for_an_output_host_makes_its_breaker_observe_only() {
    let (sink_addr, sink_hits) = serve(always_503()).await;
    let (flag_addr, flag_hits) = serve(flags_off_for(sink_addr.port())).await;
    let app = start(&format!(
        "server: {{ listen: 127.0.0.1:0, shutdown_grace: 1s }}
admin: {{ listen: 127.0.0.1:0 }}
feature_flags: {{ url: 'http://{flag_addr}/flags/{{host}}' }}
pipelines:
  - name: events
    outputs:
      - {{ name: sink, type: http, endpoint: 'http://{sink_addr}/ingest',
          batch: {{ max_events: 1, linger: 1ms }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, check_interval: 50ms }} }} }}
"
    ))
    .await;
    let url = format!("http://{sink_addr}/ingest");
    let mut applied = false;
    for _ in 0..200 {
        let breakers = json(app.admin_addr(), "/v1/breakers").await;
        applied = breakers.as_array().unwrap().iter().any(|b| {
            b["kind"] == "output" && b["endpoint"] == url.as_str() && b["mode"] == "metrics_only"
        });
        if applied {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(applied, "the output host's flag was never applied");
    for _ in 0..5 {
        assert_eq!(
            post(app.gateway_addr(), "/ingest/events", "{\"n\":1}\n").await,
            StatusCode::ACCEPTED
        );
    }
    // Observe-only: the breaker tripped on the first 503, yet every batch was still sent (an
    // enforcing breaker would have let only the first through; retries may add more).
    let mut sent = 0;
    for _ in 0..200 {
        sent = sink_hits
            .lock()
            .unwrap()
            .get("/ingest")
            .copied()
            .unwrap_or(0);
        if sent >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sent >= 5, "only {sent} of 5 batches reached the endpoint");
    let host = format!("/flags/127.0.0.1:{}", sink_addr.port());
    assert_eq!(flag_hits.lock().unwrap().get(&host).copied(), Some(1));
    app.shutdown();
    app.wait().await;
}
