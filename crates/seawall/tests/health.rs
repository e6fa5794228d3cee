//! Global health end to end over loopback: the app runs in-process with an injected memory
//! probe (or its real pipeline queues), mock upstreams and a mock collector are started here.
//! Under pressure the gateway answers provider-shaped 503s and ingest answers `overloaded`,
//! both with `retry-after`, without contacting anyone; recovery needs the level to fall below
//! `recover_percent` of the threshold. The monitor itself is checked on paused time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use seawall::app::{App, RunningApp};
use seawall::config::{parse, GlobalHealthConfig, Secrets};
use seawall::health::{Check, Edge, Health, Probes};
use seawall::metrics::Metrics;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Bounds a wait for something the test caused.
const NO_HANG: Duration = Duration::from_secs(20);

/// A server answering 200 `{"ok":true}` to every request once `open` is true, counting them.
async fn serve(open: watch::Receiver<bool>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (counter, open) = (counter.clone(), open.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                let (counter, mut open) = (counter.clone(), open.clone());
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = req.into_body().collect().await;
                    let _ = open.wait_for(|o| *o).await;
                    let resp = Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from_static(br#"{"ok":true}"#)))
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
    (addr, hits)
}

/// A server that answers at once.
async fn serve_open() -> (SocketAddr, Arc<AtomicUsize>) {
    let (tx, rx) = watch::channel(true);
    // The server keeps serving once the sender is gone; `wait_for` sees the last value.
    drop(tx);
    serve(rx).await
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

async fn send(method: Method, addr: SocketAddr, path: &str, body: &str) -> Reply {
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
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    send(Method::POST, addr, path, body).await
}

async fn metrics(app: &RunningApp) -> String {
    let reply = send(Method::GET, app.admin_addr(), "/metrics", "").await;
    String::from_utf8(reply.body.to_vec()).unwrap()
}

/// Polls `POST path` until it answers `status`, bounded by [`NO_HANG`].
async fn until_status(addr: SocketAddr, path: &str, body: &str, status: StatusCode) -> Reply {
    let deadline = tokio::time::Instant::now() + NO_HANG;
    loop {
        let reply = post(addr, path, body).await;
        if reply.status == status {
            return reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {status}; last {} {:?}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The shed body a provider of `kind` answers under `pressure` of `check`.
fn shed_body(kind: &str, provider: &str, check: &str, pressure: &str) -> Value {
    let message = format!(
        "seawall: shedding load under {pressure}: global health check `{check}` is failing, so provider `{provider}` is not contacted; retry after 1s"
    );
    match kind {
        "anthropic" => {
            json!({"type":"error","error":{"type":"overloaded_error","message":message}})
        }
        "openai" => {
            json!({"error":{"message":message,"type":"server_error","param":null,"code":"service_unavailable"}})
        }
        _ => json!({"error":{"type":"circuit_open","message":message}}),
    }
}

#[track_caller]
fn assert_shed(reply: &Reply, kind: &str, provider: &str, check: &str, pressure: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.header("retry-after"), "1");
    assert_eq!(reply.header("x-seawall-circuit"), "open");
    assert_eq!(reply.json(), shed_body(kind, provider, check, pressure));
}

#[track_caller]
fn assert_ingest_shed(reply: &Reply, check: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.header("retry-after"), "1");
    let body = reply.json();
    assert_eq!(body["error"]["type"], "overloaded", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("`{check}`")), "{message}");
}

#[tokio::test]
async fn memory_pressure_sheds_gateway_and_ingest_in_each_providers_shape_until_recovered() {
    let (up, hits) = serve_open().await;
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
    let rss = Arc::new(AtomicU64::new(100));
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
    assert_eq!(post(gw, "/plain/v1/x", "{}").await.status, StatusCode::OK);
    assert_eq!(
        post(gw, "/ingest/events", r#"{"a":1}"#).await.status,
        StatusCode::ACCEPTED
    );

    rss.store(1000, Ordering::SeqCst);
    let shed = until_status(gw, "/plain/v1/x", "{}", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_shed(&shed, "generic", "plain", "memory", "memory pressure");
    let before = hits.load(Ordering::SeqCst);
    for (kind, provider) in [("anthropic", "claude"), ("openai", "gpt")] {
        let reply = post(gw, &format!("/{provider}/v1/messages"), "{}").await;
        assert_shed(&reply, kind, provider, "memory", "memory pressure");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before,
        "no upstream was contacted"
    );
    assert_ingest_shed(&post(gw, "/ingest/events", r#"{"a":2}"#).await, "memory");
    let text = metrics(&app).await;
    for needle in [
        r#"seawall_global_health_unhealthy{check="memory"} 1"#,
        r#"seawall_shed_requests_total{edge="ingest",check="memory"} 1"#,
        r#"seawall_shed_requests_total{edge="gateway",check="memory"} 3"#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // Below the threshold but above 80% of it: still shedding, check after check.
    rss.store(850, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_shed(
        &post(gw, "/plain/v1/x", "{}").await,
        "generic",
        "plain",
        "memory",
        "memory pressure",
    );

    rss.store(799, Ordering::SeqCst);
    until_status(gw, "/plain/v1/x", "{}", StatusCode::OK).await;
    assert_eq!(
        post(gw, "/ingest/events", r#"{"a":3}"#).await.status,
        StatusCode::ACCEPTED
    );
    assert!(metrics(&app)
        .await
        .contains(r#"seawall_global_health_unhealthy{check="memory"} 0"#));
    app.shutdown();
    app.wait().await;
}

#[tokio::test]
async fn a_full_output_queue_sheds_until_the_output_drains_it() {
    let (up, _) = serve_open().await;
    let (open, opened) = watch::channel(false);
    let (collector, collected) = serve(opened).await;
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
    let app = App::start(parse(&yaml).unwrap(), Secrets::default())
        .await
        .unwrap();
    let gw = app.gateway_addr();
    assert_eq!(post(gw, "/plain/v1/x", "{}").await.status, StatusCode::OK);

    // The collector holds the first batch, so the queue behind it fills.
    let events: Vec<Value> = (0..30).map(|n| json!({ "n": n })).collect();
    let events = serde_json::to_string(&events).unwrap();
    assert_eq!(
        post(gw, "/ingest/events", &events).await.status,
        StatusCode::ACCEPTED
    );
    let shed = until_status(gw, "/plain/v1/x", "{}", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_shed(&shed, "generic", "plain", "queue", "output queue pressure");
    assert_ingest_shed(&post(gw, "/ingest/events", r#"{"n":99}"#).await, "queue");
    assert!(collected.load(Ordering::SeqCst) >= 1);
    assert!(metrics(&app)
        .await
        .contains(r#"seawall_global_health_unhealthy{check="queue"} 1"#));

    // The collector answers again: the output drains its queue and the daemon recovers.
    open.send_replace(true);
    until_status(gw, "/plain/v1/x", "{}", StatusCode::OK).await;
    until_status(gw, "/ingest/events", r#"{"n":100}"#, StatusCode::ACCEPTED).await;
    assert!(metrics(&app)
        .await
        .contains(r#"seawall_global_health_unhealthy{check="queue"} 0"#));
    app.shutdown();
    app.wait().await;
}

#[tokio::test]
async fn with_global_health_disabled_nothing_is_shed() {
    let (up, _) = serve_open().await;
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: plain, kind: generic, base_url: 'http://{up}' }}
global_health: {{ enabled: false, memory_check_enabled: true, memory_threshold: 1 }}
"
    );
    let probes = Probes {
        memory: Some(Arc::new(|| Some(u64::MAX))),
        queue: None,
    };
    let app = App::start_with(parse(&yaml).unwrap(), Secrets::default(), probes)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gw = app.gateway_addr();
    assert_eq!(post(gw, "/plain/v1/x", "{}").await.status, StatusCode::OK);
    let ingest = post(gw, "/ingest/events", "{}").await;
    assert_eq!(
        ingest.status,
        StatusCode::NOT_FOUND,
        "no pipelines configured"
    );
    assert_eq!(ingest.json()["error"]["type"], "unknown_pipeline");
    assert!(!metrics(&app)
        .await
        .contains("seawall_global_health_unhealthy"));
    app.shutdown();
    app.wait().await;
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
    let script = Arc::new(Mutex::new(readings.to_vec()));
    let next = Arc::new(AtomicUsize::new(0));
    let memory = {
        let (script, next) = (script.clone(), next.clone());
        move || {
            let script = script.lock().unwrap();
            let i = next.load(Ordering::SeqCst).min(script.len() - 1);
            Some(script[i].0)
        }
    };
    let queue = {
        let (script, next) = (script.clone(), next.clone());
        move || {
            // The queue probe is read second: move on to the next reading.
            let script = script.lock().unwrap();
            let i = next.fetch_add(1, Ordering::SeqCst).min(script.len() - 1);
            Some(script[i].1)
        }
    };
    let probes = Probes {
        memory: Some(Arc::new(memory)),
        queue: Some(Arc::new(queue)),
    };
    let task = tokio::spawn(health.clone().monitor(probes));
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
        let check = health.shed(Edge::Ingest).unwrap();
        let resp = health.ingest_rejection(check);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], secs.to_string().as_str());
    }
}
