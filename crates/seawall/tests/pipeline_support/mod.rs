//! Helpers for the pipeline tests: `Pipelines` served on a loopback port with breakers on a
//! manual clock, scripted HTTP collectors, and bounded polling.

pub mod collector;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use seawall::metrics::Metrics;
use seawall::pipeline::{OutputView, Pipelines};
use seawall_breaker::{Clock, ManualClock};
use serde_json::Value;
use tokio::net::TcpListener;

/// Pipelines from YAML, serving `POST /ingest/{name}` on a loopback port.
pub struct Harness {
    pub pipelines: Arc<Pipelines>,
    pub metrics: Arc<Metrics>,
    /// Breaker time: advance it (then `tick`) to end open periods.
    pub clock: ManualClock,
    pub addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Harness {
    /// Starts the pipelines of `yaml` (a whole config file).
    pub async fn start(yaml: &str) -> Self {
        let config = seawall::config::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let clock = ManualClock::new();
        let metrics = Arc::new(Metrics::new());
        let pipelines =
            Pipelines::start(&config.pipelines, Clock::manual(&clock), metrics.clone()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = pipelines.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let p = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let p = p.clone();
                        async move { Ok::<_, Infallible>(p.ingest(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        Harness {
            pipelines,
            metrics,
            clock,
            addr,
            client,
        }
    }

    /// Sends `body` with `method` to `path`; returns the status and the JSON answer.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = self
            .client
            .request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, json)
    }

    /// POSTs NDJSON to `/ingest/{pipeline}` and expects it accepted whole.
    pub async fn ingest(&self, pipeline: &str, body: impl Into<Bytes>) -> u64 {
        let path = format!("/ingest/{pipeline}");
        let (status, json) = self
            .request("POST", &path, Some("application/x-ndjson"), body)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        json["accepted"].as_u64().unwrap()
    }

    /// The view of output `output` of pipeline `pipeline`.
    pub fn output(&self, pipeline: &str, output: &str) -> OutputView {
        let views = self.pipelines.views();
        let p = views.iter().find(|p| p.name == pipeline).expect("pipeline");
        p.outputs
            .iter()
            .find(|o| o.name == output)
            .expect("output")
            .clone()
    }

    /// Moves breaker time on by `by` and runs the timed transitions.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.pipelines.tick();
    }
}

/// Asserts the accounting invariant on one view.
pub fn assert_balanced(o: &OutputView) {
    assert_eq!(
        o.accepted,
        o.delivered + o.sampled_out + o.dropped.total + o.pending,
        "accounting broken: {o:?}"
    );
    let by_reason =
        o.dropped.queue_full + o.dropped.buffer_full + o.dropped.rejected + o.dropped.shutdown;
    assert_eq!(o.dropped.total, by_reason, "{o:?}");
}

/// `n` NDJSON events `{"seq":i}` for i in `from..from + n`.
pub fn events(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("{{\"seq\":{i}}}\n"))
        .collect()
}

/// Polls `check` every 10 ms for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A fresh empty directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "seawall-pipeline-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback address where nothing listens (connections are refused).
pub async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/ingest")
}
