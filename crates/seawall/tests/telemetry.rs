//! Gateway request events end to end over loopback: the app runs in-process with a
//! `telemetry` pipeline whose file output the test reads; mock upstreams and a mock flag
//! server are started here. Every decided request (forwarded, rejected, fallback, shed) becomes
//! one NDJSON line; a host whose `seawall.telemetry.enabled` flag is off sends none.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use seawall::app::{App, RunningApp};
use seawall::config::{parse, Secrets};
use seawall::health::Probes;
use serde_json::Value;
use tokio::net::TcpListener;

/// Bounds a wait for something the test caused.
const NO_HANG: Duration = Duration::from_secs(20);

/// A server answering `reply(path)` as JSON to every request.
async fn serve(reply: fn(&str) -> (StatusCode, String)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(move |req: Request<Incoming>| {
                let (status, body) = reply(req.uri().path());
                async move {
                    let _ = req.into_body().collect().await;
                    let resp = Response::builder()
                        .status(status)
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// An upstream: `/fail…` answers 503, anything else 200.
fn upstream_reply(path: &str) -> (StatusCode, String) {
    if path.starts_with("/fail") {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"busy"}"#.into(),
        )
    } else {
        (StatusCode::OK, r#"{"ok":true}"#.into())
    }
}

async fn send(method: Method, addr: SocketAddr, path: &str, body: &str) -> (StatusCode, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    let resp = tokio::time::timeout(NO_HANG, client.request(req))
        .await
        .expect("request hung")
        .unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> StatusCode {
    send(Method::POST, addr, path, body).await.0
}

async fn admin_get(app: &RunningApp, path: &str) -> String {
    let (_, body) = send(Method::GET, app.admin_addr(), path, "").await;
    String::from_utf8(body.to_vec()).unwrap()
}

/// A fresh path in the temporary directory for the file output.
fn events_file(test: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "seawall-{test}-{}-{nanos}.ndjson",
        std::process::id()
    ))
}

/// Waits (bounded) until `path` holds at least `n` lines, and parses them.
async fn until_events(path: &Path, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + NO_HANG;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} events in {}:\n{text}",
            lines.len(),
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let up = serve(upstream_reply).await;
    let path = events_file("events");
    let trip = "circuit_breaker: { failure_threshold: 1, open_timeout: 60s, jitter: 0 }";
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: plain, kind: generic, base_url: 'http://{up}', {trip} }}
  - {{ name: claude, kind: anthropic, base_url: 'http://{up}', per_model: true }}
  - {{ name: flaky, kind: generic, base_url: 'http://{up}', fallbacks: [backup], {trip} }}
  - {{ name: backup, kind: generic, base_url: 'http://{up}' }}
global_health: {{ memory_check_enabled: true, memory_threshold: 1000, check_interval: 20ms }}
{}",
        telemetry(&path)
    );
    let rss = Arc::new(AtomicU64::new(0));
    let probe = {
        let rss = rss.clone();
        move || Some(rss.load(Ordering::SeqCst))
    };
    let probes = Probes {
        memory: Some(Arc::new(probe)),
        queue: None,
    };
    let app = App::start_with(parse(&yaml).unwrap(), Secrets::default(), probes)
        .await
        .unwrap();
    let gw = app.gateway_addr();
    let started = SystemTime::now();

    assert_eq!(post(gw, "/plain/v1/ok?x=1", "{}").await, StatusCode::OK);
    let model = r#"{"model":"opus","max_tokens":1}"#;
    assert_eq!(post(gw, "/claude/v1/messages", model).await, StatusCode::OK);
    // Trips `plain`'s breaker for /fail, then is rejected by it.
    assert_eq!(
        post(gw, "/plain/fail", "{}").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        post(gw, "/plain/fail", "{}").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Trips `flaky`'s breaker for /fail/x, then `backup` serves it.
    assert_eq!(
        post(gw, "/flaky/fail/x", "{}").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(post(gw, "/flaky/ok", "{}").await, StatusCode::OK);
    assert_eq!(
        post(gw, "/flaky/fail/x", "{}").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Requests the gateway does not route produce no event.
    assert_eq!(post(gw, "/nowhere/x", "{}").await, StatusCode::NOT_FOUND);

    rss.store(1000, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + NO_HANG;
    while !admin_get(&app, "/metrics")
        .await
        .contains(r#"seawall_global_health_unhealthy{check="memory"} 1"#)
    {
        assert!(tokio::time::Instant::now() < deadline, "never unhealthy");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        post(gw, "/plain/v1/ok", "{}").await,
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
    assert!(admin_get(&app, "/metrics")
        .await
        .contains(r#"seawall_telemetry_events_total{result="submitted"} 8"#));
    app.shutdown();
    app.wait().await;
    let _ = std::fs::remove_file(&path);
}

/// The port whose host has `seawall.telemetry.enabled: false`.
static QUIET_PORT: AtomicU64 = AtomicU64::new(0);

/// The flag service: telemetry off for the host on [`QUIET_PORT`], on elsewhere.
fn flag_reply(path: &str) -> (StatusCode, String) {
    let quiet = format!(":{}", QUIET_PORT.load(Ordering::SeqCst));
    let value = if path.ends_with(&quiet) {
        "false"
    } else {
        "true"
    };
    let body = format!(
        r#"{{"flags":[{{"name":"seawall.telemetry.enabled","value":"{value}"}}],"ttl_seconds":900}}"#
    );
    (StatusCode::OK, body)
}

#[tokio::test]
async fn a_host_whose_telemetry_flag_is_off_sends_no_events_while_others_do() {
    let flags = serve(flag_reply).await;
    let quiet = serve(upstream_reply).await;
    let loud = serve(upstream_reply).await;
    QUIET_PORT.store(u64::from(quiet.port()), Ordering::SeqCst);
    let path = events_file("flags");
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: quiet, kind: generic, base_url: 'http://{quiet}' }}
  - {{ name: loud, kind: openai, base_url: 'http://{loud}' }}
feature_flags: {{ url: 'http://{flags}/flags/{{host}}' }}
{}",
        telemetry(&path)
    );
    let app = App::start(parse(&yaml).unwrap(), Secrets::default())
        .await
        .unwrap();
    // Wait for both hosts' flags: a cold host reads the default (on).
    let deadline = tokio::time::Instant::now() + NO_HANG;
    loop {
        let flags: Value = serde_json::from_str(&admin_get(&app, "/v1/flags").await).unwrap();
        let fetched = flags["cache"]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| !h["flags"].as_object().unwrap().is_empty())
            .count();
        if fetched == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "flags never fetched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let gw = app.gateway_addr();
    for _ in 0..3 {
        assert_eq!(post(gw, "/quiet/v1/x", "{}").await, StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(post(gw, "/loud/v1/responses", "{}").await, StatusCode::OK);
    }
    // One queue, in order: had `quiet` sent events, they would be ahead of `loud`'s.
    let events = until_events(&path, 2).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events.iter().all(|e| e["provider"] == "loud"),
        "{events:#?}"
    );
    assert!(admin_get(&app, "/metrics")
        .await
        .contains(r#"seawall_telemetry_events_total{result="submitted"} 2"#));
    app.shutdown();
    app.wait().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn without_a_telemetry_section_no_events_are_sent() {
    let up = serve(upstream_reply).await;
    let path = events_file("none");
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
    let app = App::start(parse(&yaml).unwrap(), Secrets::default())
        .await
        .unwrap();
    assert_eq!(
        post(app.gateway_addr(), "/plain/v1/x", "{}").await,
        StatusCode::OK
    );
    app.shutdown();
    app.wait().await;
    // Shutdown drained the pipeline: anything submitted would be in the file by now.
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(text, "");
    let _ = std::fs::remove_file(&path);
}
