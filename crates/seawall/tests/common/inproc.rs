//! The daemon's library parts served in-process with breaker time on a manual clock, for tests
//! that move time by hand: the one place that builds `Gateway`, `Breakers` and `Pipelines`
//! itself and serves their responses.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use seawall::breakers::{BreakerView, Breakers};
use seawall::config::Config;
use seawall::gateway::Gateway;
use seawall::metrics::Metrics;
use seawall::pipeline::{OutputView, PipelineError, PipelineView, Pipelines};
use seawall_breaker::{Clock, ManualClock};
use serde_json::Value;

use super::client::{body, request, Answer, Client, ClientBody};
use super::exposition::Exposition;
use super::serve::serve;

/// A gateway serving on a loopback port, with the handles a test inspects.
pub struct TestGateway {
    pub addr: SocketAddr,
    /// The parsed config, for the settings a test derives its expectations from.
    pub config: Config,
    /// Breaker time: advance it to end open periods.
    pub clock: ManualClock,
    metrics: Arc<Metrics>,
    breakers: Arc<Breakers>,
    client: Client,
}

impl TestGateway {
    /// Parses `yaml`, resolves secrets from `env`, and serves the gateway.
    pub async fn start(yaml: &str, env: &[(&str, &str)]) -> Self {
        let config = seawall::config::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let env: BTreeMap<&str, &str> = env.iter().copied().collect();
        let secrets = config
            .resolve_secrets(|k| env.get(k).map(|v| v.to_string()))
            .unwrap();
        let clock = ManualClock::new();
        let metrics = Arc::new(Metrics::new());
        let breakers = Arc::new(
            Breakers::new(&config.providers, Clock::manual(&clock), metrics.clone()).unwrap(),
        );
        let gateway = Gateway::new(&config, &secrets, breakers.clone(), metrics.clone()).unwrap();
        let addr = serve_in_process(move |req, remote| {
            let gateway = gateway.clone();
            async move { gateway.handle(req, remote).await.into_http() }
        })
        .await;
        TestGateway {
            addr,
            config,
            clock,
            metrics,
            breakers,
            client: Client::new(),
        }
    }

    /// Moves breaker time on by `by` and runs what the daemon's breaker tick runs (timed
    /// transitions, idle eviction).
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.breakers.tick();
    }

    /// Every breaker as `GET /v1/breakers` shows it.
    pub fn breaker_views(&self) -> Vec<BreakerView> {
        self.breakers.views()
    }

    /// A request builder for `path` on this gateway.
    pub fn request(&self, method: &str, path: &str) -> http::request::Builder {
        request(method, &format!("http://{}{path}", self.addr))
    }

    /// Sends `req`, returning the response with its body still streaming.
    pub async fn stream(&self, req: Request<ClientBody>) -> Response<Incoming> {
        self.client.stream(req).await
    }

    /// Sends `req` and reads the whole response.
    pub async fn call(&self, req: Request<ClientBody>) -> Answer {
        self.client.send(req).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, json: &str) -> Answer {
        let req = self
            .request("POST", path)
            .header("content-type", "application/json")
            .body(body(json))
            .unwrap();
        self.call(req).await
    }

    /// The gateway's metrics, as `/metrics` would show them.
    pub fn metrics(&self) -> Exposition {
        Exposition::new(self.metrics.encode())
    }
}

/// Pipelines from YAML, serving `POST /ingest/{name}` on a loopback port.
#[derive(Clone)]
pub struct TestPipelines {
    /// Where `POST /ingest/{name}` is served.
    pub addr: SocketAddr,
    pipelines: Arc<Pipelines>,
    metrics: Arc<Metrics>,
    /// Breaker time: [`TestPipelines::advance`] moves it.
    clock: ManualClock,
    client: Client,
}

impl TestPipelines {
    /// Starts the pipelines of `yaml` (a whole config file).
    pub async fn start(yaml: &str) -> Self {
        Self::try_start(yaml).await.unwrap()
    }

    /// [`TestPipelines::start`], returning why the pipelines could not start.
    pub async fn try_start(yaml: &str) -> Result<Self, PipelineError> {
        let config = seawall::config::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let clock = ManualClock::new();
        let metrics = Arc::new(Metrics::new());
        let pipelines =
            Pipelines::start(&config.pipelines, Clock::manual(&clock), metrics.clone())?;
        let served = pipelines.clone();
        let addr = serve_in_process(move |req, _| {
            let pipelines = served.clone();
            async move { pipelines.ingest(req).await }
        })
        .await;
        Ok(TestPipelines {
            addr,
            pipelines,
            metrics,
            clock,
            client: Client::new(),
        })
    }

    /// Sends `text` with `method` to `path`; returns the status and the JSON answer.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        text: impl AsRef<str>,
    ) -> (StatusCode, Value) {
        let mut req = request(method, &format!("http://{}{path}", self.addr));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let answer = self
            .client
            .send(req.body(body(text.as_ref())).unwrap())
            .await;
        (answer.status, answer.json())
    }

    /// POSTs NDJSON to `/ingest/{pipeline}` and expects it accepted whole.
    pub async fn ingest(&self, pipeline: &str, ndjson: impl AsRef<str>) -> u64 {
        let path = format!("/ingest/{pipeline}");
        let (status, json) = self
            .request("POST", &path, Some("application/x-ndjson"), ndjson)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        json["accepted"].as_u64().unwrap()
    }

    /// Every pipeline's view.
    pub fn views(&self) -> Vec<PipelineView> {
        self.pipelines.views()
    }

    /// The view of output `output` of pipeline `pipeline`.
    pub fn output(&self, pipeline: &str, output: &str) -> OutputView {
        let views = self.views();
        let p = views.iter().find(|p| p.name == pipeline).expect("pipeline");
        p.outputs
            .iter()
            .find(|o| o.name == output)
            .expect("output")
            .clone()
    }

    /// Submits one event to `pipeline` as the gateway's telemetry does.
    pub fn submit(&self, pipeline: &str, event: Value) -> bool {
        self.pipelines.submit(pipeline, event)
    }

    /// Moves breaker time on by `by` and runs the timed transitions.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.pipelines.tick();
    }

    /// Drains the pipelines, giving up on what is left after `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.pipelines.shutdown(grace).await;
    }

    /// The pipelines' metrics, as `/metrics` would show them.
    pub fn metrics(&self) -> Exposition {
        Exposition::new(self.metrics.encode())
    }
}

/// Asserts the accounting invariant on one output's view.
#[track_caller]
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

/// Serves a library handler's responses (the daemon's own response type) over loopback.
async fn serve_in_process<F, Fut, B>(handle: F) -> SocketAddr
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<super::serve::BoxError>,
{
    serve(move |req, remote| {
        let answer = handle(req, remote);
        async move { Ok::<_, Infallible>(answer.await) }
    })
    .await
}
