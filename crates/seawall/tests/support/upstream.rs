//! A scripted mock upstream: a real hyper HTTP/1 server on 127.0.0.1 that answers from a
//! queue of replies (then a default), can hold a reply or a chunk until a gate opens, and
//! records every request it receives.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A latch the test opens to let a held reply or chunk go.
#[derive(Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    pub fn new() -> Self {
        Gate(Arc::new(watch::channel(false).0))
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while waiting.
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// One part of a reply body.
#[derive(Clone)]
enum Part {
    Data(Bytes),
    Wait(Gate),
}

/// What the mock answers to one request.
#[derive(Clone)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    /// Whole body (sent with `content-length`) …
    body: Option<Bytes>,
    /// … or a stream of chunks and pauses.
    parts: Vec<Part>,
    /// Response headers wait for this gate.
    hold: Option<Gate>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Vec::new(),
            body: None,
            parts: Vec::new(),
            hold: None,
        }
    }

    /// `200` with a small JSON body.
    pub fn ok() -> Self {
        Reply::status(200).json(r#"{"ok":true}"#)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json(self, body: &str) -> Self {
        let mut r = self.header("content-type", "application/json");
        r.body = Some(Bytes::copy_from_slice(body.as_bytes()));
        r
    }

    /// A `text/event-stream` reply whose body is streamed chunk by chunk.
    pub fn sse() -> Self {
        Reply::status(200).header("content-type", "text/event-stream")
    }

    pub fn chunk(mut self, data: &str) -> Self {
        self.parts
            .push(Part::Data(Bytes::copy_from_slice(data.as_bytes())));
        self
    }

    /// The stream pauses here until `gate` opens.
    pub fn wait(mut self, gate: &Gate) -> Self {
        self.parts.push(Part::Wait(gate.clone()));
        self
    }

    /// The response headers wait until `gate` opens.
    pub fn hold(mut self, gate: &Gate) -> Self {
        self.hold = Some(gate.clone());
        self
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

struct State {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    received: Mutex<Vec<Received>>,
    count: watch::Sender<usize>,
}

/// A running mock upstream; it stops with the test's runtime.
#[derive(Clone)]
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
}

impl MockUpstream {
    /// Starts a mock that answers `default` unless a scripted reply is queued.
    pub async fn start(default: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            received: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        });
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockUpstream { addr, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues `reply` for the next request (scripted replies go before the default).
    pub fn push(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    /// Replaces the default reply.
    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = reply;
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        *self.state.count.borrow()
    }

    /// Waits until at least `n` requests have been received.
    pub async fn wait_for_count(&self, n: usize) {
        let mut rx = self.state.count.subscribe();
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

type MockBody = BoxBody<Bytes, Infallible>;

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let reply = {
        let next = state.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| state.default.lock().unwrap().clone())
    };
    state.received.lock().unwrap().push(Received {
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    });
    state.count.send_modify(|c| *c += 1);
    if let Some(gate) = &reply.hold {
        gate.wait().await;
    }
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value);
    }
    let body = match reply.body {
        Some(bytes) => Full::new(bytes).boxed(),
        None => streamed(reply.parts),
    };
    Ok(builder.body(body).unwrap())
}

fn streamed(parts: Vec<Part>) -> MockBody {
    let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, Infallible>::new(1);
    tokio::spawn(async move {
        for part in parts {
            match part {
                Part::Data(bytes) => {
                    if tx.send(Frame::data(bytes)).await.is_err() {
                        return;
                    }
                }
                Part::Wait(gate) => gate.wait().await,
            }
        }
    });
    rx.boxed()
}
