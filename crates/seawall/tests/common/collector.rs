//! A scripted collector for pipeline `http` outputs: a real HTTP/1 server on 127.0.0.1 that
//! answers each batch as its current [`Mode`] says and keeps the batches it accepted.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::serve::serve;

/// How the collector answers.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// 200, and the batch is kept.
    Ok,
    /// This status (with `retry-after: 1` on 429 and 503); nothing kept.
    Status(u16),
    /// Never answers.
    Hang,
    /// Keeps the batch, then never answers: a collector whose answer is lost.
    KeepThenHang,
    /// `ok` requests answered 200, then `fail` answered 503, repeating.
    Bursts { ok: usize, fail: usize },
}

struct State {
    mode: Mode,
    /// The lines of each accepted batch, in arrival order.
    batches: Vec<Vec<String>>,
    /// The `x-seawall-batch-id` of each accepted batch (empty when absent).
    ids: Vec<String>,
    /// Requests received, answered or not.
    requests: usize,
}

/// A running collector; it stops with the test's runtime.
#[derive(Clone)]
pub struct Collector {
    /// `http://127.0.0.1:PORT/ingest`, for an output's `endpoint` or `alternates`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Collector {
    /// Starts a collector answering as `mode` says.
    pub async fn start(mode: Mode) -> Self {
        let state = Arc::new(Mutex::new(State {
            mode,
            batches: Vec::new(),
            ids: Vec::new(),
            requests: 0,
        }));
        let shared = state.clone();
        let addr = serve(move |req: http::Request<hyper::body::Incoming>, _| {
            let state = shared.clone();
            async move {
                let id = req
                    .headers()
                    .get("x-seawall-batch-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = req.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>(answer(&state, id, &body).await)
            }
        })
        .await;
        Collector {
            url: format!("http://{addr}/ingest"),
            state,
        }
    }

    /// `n` collectors, each answering as `mode` says.
    pub async fn several(n: usize, mode: Mode) -> Vec<Collector> {
        let mut all = Vec::new();
        for _ in 0..n {
            all.push(Collector::start(mode).await);
        }
        all
    }

    /// Answers as `mode` says from the next request on.
    pub fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Every accepted batch, as its lines, in arrival order.
    pub fn batches(&self) -> Vec<Vec<String>> {
        self.state.lock().unwrap().batches.clone()
    }

    /// Every accepted batch with its `x-seawall-batch-id`, in arrival order.
    pub fn batches_with_ids(&self) -> Vec<(String, Vec<String>)> {
        let s = self.state.lock().unwrap();
        s.ids
            .iter()
            .cloned()
            .zip(s.batches.iter().cloned())
            .collect()
    }

    /// Lines of every accepted batch, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.batches().concat()
    }

    /// Requests received (answered or not).
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

async fn answer(state: &Mutex<State>, id: String, body: &Bytes) -> Response<Full<Bytes>> {
    let status = {
        let mut s = state.lock().unwrap();
        let n = s.requests;
        s.requests += 1;
        let status = match s.mode {
            Mode::Ok => Some(200),
            Mode::Status(code) => Some(code),
            Mode::Hang => None,
            Mode::KeepThenHang => {
                let text = std::str::from_utf8(body).unwrap();
                s.batches.push(text.lines().map(str::to_owned).collect());
                s.ids.push(id.clone());
                None
            }
            Mode::Bursts { ok, fail } => Some(if n % (ok + fail) < ok { 200 } else { 503 }),
        };
        if status == Some(200) {
            let text = std::str::from_utf8(body).unwrap();
            assert!(text.ends_with('\n'), "a batch is NDJSON: {text:?}");
            s.batches.push(text.lines().map(str::to_owned).collect());
            s.ids.push(id);
        }
        status
    };
    let Some(code) = status else {
        return std::future::pending().await;
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap();
    if code == 429 || code == 503 {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    resp
}
