//! Starts a `Gateway` from YAML on 127.0.0.1:0 with breakers on a manual clock, and a plain
//! HTTP/1 client to call it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use seawall::breakers::Breakers;
use seawall::config::Config;
use seawall::gateway::Gateway;
use seawall::metrics::Metrics;
use seawall_breaker::{Clock, ManualClock};
use serde_json::Value;
use tokio::net::TcpListener;

/// A request body the test client can send: whole or streamed.
pub type ClientBody = UnsyncBoxBody<Bytes, Infallible>;

/// A gateway serving on a loopback port, with the handles a test inspects.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    /// Breaker time: advance it to end open periods.
    pub clock: ManualClock,
    client: Client<HttpConnector, ClientBody>,
}

/// A response read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl TestGateway {
    /// Parses `yaml`, resolves secrets from `env`, and serves the gateway.
    pub async fn start(yaml: &str, env: &[(&str, &str)]) -> Self {
        let config = seawall::config::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let secrets = config.resolve_secrets(|k| env.get(k).cloned()).unwrap();
        let clock = ManualClock::new();
        let metrics = Arc::new(Metrics::new());
        let breakers = Arc::new(
            Breakers::new(&config.providers, Clock::manual(&clock), metrics.clone()).unwrap(),
        );
        let gateway = Gateway::new(&config, &secrets, breakers, metrics.clone()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, remote)) = listener.accept().await else {
                    continue;
                };
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let gateway = gateway.clone();
                        async move { Ok::<_, Infallible>(gateway.handle(req, remote).await.into_http()) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        TestGateway {
            addr,
            config,
            metrics,
            clock,
            client,
        }
    }

    /// A request builder for `path` on this gateway.
    pub fn request(&self, method: &str, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
    }

    /// Sends `req`, returning the response with its body still streaming.
    pub async fn send(&self, req: Request<ClientBody>) -> Response<Incoming> {
        self.client.request(req).await.unwrap()
    }

    /// Sends `req` and reads the whole response.
    pub async fn call(&self, req: Request<ClientBody>) -> Answer {
        let resp = self.send(req).await;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
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

    /// The exposition line of `series` (name with labels), or `None`.
    pub fn metric(&self, series: &str) -> Option<String> {
        let text = self.metrics.encode();
        text.lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series))
            .map(str::to_owned)
    }
}

/// A whole request body.
pub fn body(text: &str) -> ClientBody {
    Full::new(Bytes::copy_from_slice(text.as_bytes())).boxed_unsync()
}

/// An address nothing listens on: a bound socket that never listens, so connections are
/// refused and the port cannot be handed to another test while the socket lives.
pub fn closed_port() -> (SocketAddr, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
}
