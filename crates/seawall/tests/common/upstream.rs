//! A scripted mock upstream: a real HTTP/1 server on 127.0.0.1 that answers from a queue of
//! replies, then per-path routes, then a default, and logs every request it receives.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use tokio::sync::watch;

use super::serve::{serve, BoxError};
use super::wait::within;

/// A latch the test opens to let held replies and chunks go.
#[derive(Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Gate(Arc::new(watch::channel(false).0))
    }

    /// Lets everything waiting on this gate, now or later, go.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while waiting.
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// One step of a streamed reply body.
#[derive(Clone)]
enum Part {
    Data(Bytes),
    Wait(Gate),
    Pause(Duration),
}

/// What the mock answers to one request.
#[derive(Clone)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    /// Whole body (sent with `content-length`) …
    body: Option<Bytes>,
    /// … or a chunked stream of data, gates and pauses.
    parts: Vec<Part>,
    /// The response head waits for this gate …
    hold: Option<Gate>,
    /// … and then for this long.
    delay: Duration,
    /// Close the connection instead of answering.
    hang_up: bool,
}

impl Reply {
    /// `status` with no body.
    pub fn status(status: u16) -> Self {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Vec::new(),
            body: None,
            parts: Vec::new(),
            hold: None,
            delay: Duration::ZERO,
            hang_up: false,
        }
    }

    /// `200` with the JSON body `{"ok":true}`.
    pub fn ok() -> Self {
        Reply::status(200).json(r#"{"ok":true}"#)
    }

    /// `503` with the JSON body `{"error":"overloaded"}`.
    pub fn overloaded() -> Self {
        Reply::status(503).json(r#"{"error":"overloaded"}"#)
    }

    /// A `text/event-stream` `200` whose body is sent chunk by chunk.
    pub fn sse() -> Self {
        Reply::status(200).header("content-type", "text/event-stream")
    }

    /// No answer: the connection closes once the request is read.
    pub fn hang_up() -> Self {
        Reply {
            hang_up: true,
            ..Reply::status(200)
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A whole `application/json` body.
    pub fn json(self, body: &str) -> Self {
        let mut reply = self.header("content-type", "application/json");
        reply.body = Some(Bytes::copy_from_slice(body.as_bytes()));
        reply
    }

    /// Sends `data` as the next chunk of a streamed body.
    pub fn chunk(mut self, data: &str) -> Self {
        self.parts
            .push(Part::Data(Bytes::copy_from_slice(data.as_bytes())));
        self
    }

    /// The streamed body pauses here until `gate` opens.
    pub fn wait(mut self, gate: &Gate) -> Self {
        self.parts.push(Part::Wait(gate.clone()));
        self
    }

    /// The streamed body pauses here for `pause`.
    pub fn pause(mut self, pause: Duration) -> Self {
        self.parts.push(Part::Pause(pause));
        self
    }

    /// The response head waits until `gate` opens.
    pub fn hold(mut self, gate: &Gate) -> Self {
        self.hold = Some(gate.clone());
        self
    }

    /// The response head waits `delay` (after any [`Reply::hold`]).
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// What the server shares with the test.
struct State {
    /// Answers for the next requests, whatever their path.
    script: Mutex<VecDeque<Reply>>,
    /// Answers by exact path, once the script is empty.
    routes: Mutex<HashMap<String, Reply>>,
    /// The answer to anything else.
    default: Mutex<Reply>,
    received: Mutex<Vec<Received>>,
    /// How many requests arrived, for waiting on.
    count: watch::Sender<usize>,
}

/// A running mock upstream; it stops with the test's runtime.
#[derive(Clone)]
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
}

impl MockUpstream {
    /// Starts a mock that answers `default` unless a scripted or routed reply applies.
    pub async fn start(default: Reply) -> Self {
        let state = Arc::new(State {
            script: Mutex::new(VecDeque::new()),
            routes: Mutex::new(HashMap::new()),
            default: Mutex::new(default),
            received: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        });
        let serving = state.clone();
        let addr = serve(move |req, _| answer(serving.clone(), req)).await;
        MockUpstream { addr, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues `reply` for the next request (queued replies go before routes and the default).
    pub fn push(&self, reply: Reply) {
        self.state.script.lock().unwrap().push_back(reply);
    }

    /// Answers every request for exactly `path` with `reply`.
    pub fn route(&self, path: &str, reply: Reply) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), reply);
    }

    /// Replaces the default reply.
    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = reply;
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        *self.state.count.borrow()
    }

    /// Requests received so far for exactly `path`.
    pub fn hits(&self, path: &str) -> usize {
        let received = self.state.received.lock().unwrap();
        received.iter().filter(|r| r.path() == path).count()
    }

    /// Waits (bounded) until at least `n` requests have been received.
    pub async fn wait_for_count(&self, n: usize) {
        let mut rx = self.state.count.subscribe();
        let what = format!("{n} requests at the upstream");
        let _ = within(&what, rx.wait_for(|c| *c >= n)).await;
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

type MockBody = BoxBody<Bytes, Infallible>;

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<MockBody>, BoxError> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let reply = {
        let next = state.script.lock().unwrap().pop_front();
        let routed = || state.routes.lock().unwrap().get(parts.uri.path()).cloned();
        next.or_else(routed)
            .unwrap_or_else(|| state.default.lock().unwrap().clone())
    };
    state.received.lock().unwrap().push(Received {
        method: parts.method,
        target,
        headers: parts.headers,
        body,
    });
    state.count.send_modify(|c| *c += 1);
    if reply.hang_up {
        return Err("scripted hang-up".into());
    }
    if let Some(gate) = &reply.hold {
        gate.wait().await;
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
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
                Part::Pause(pause) => tokio::time::sleep(pause).await,
            }
        }
    });
    rx.boxed()
}
