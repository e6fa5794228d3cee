//! A scripted NDJSON collector: a real HTTP/1 server on 127.0.0.1 that answers each request
//! as its current `Mode` says and records the lines of every batch it accepted.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// How the collector answers.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// 200, and the lines are kept.
    Ok,
    /// This status (with `retry-after: 1` on 429/503); nothing kept.
    Status(u16),
    /// Never answers.
    Hang,
    /// `ok` requests answered 200, then `fail` answered 503, repeating.
    Bursts { ok: usize, fail: usize },
}

struct State {
    mode: Mode,
    lines: Vec<String>,
    requests: usize,
}

/// A running collector.
#[derive(Clone)]
pub struct Collector {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Collector {
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            mode,
            lines: Vec::new(),
            requests: 0,
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            Ok::<_, Infallible>(answer(&state, &body).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Collector { url, state }
    }

    pub fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Lines of every accepted batch, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        self.state.lock().unwrap().lines.clone()
    }

    /// Requests received (answered or not).
    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }
}

async fn answer(state: &Mutex<State>, body: &Bytes) -> Response<Full<Bytes>> {
    let status = {
        let mut s = state.lock().unwrap();
        let n = s.requests;
        s.requests += 1;
        let status = match s.mode {
            Mode::Ok => Some(200),
            Mode::Status(code) => Some(code),
            Mode::Hang => None,
            Mode::Bursts { ok, fail } => Some(if n % (ok + fail) < ok { 200 } else { 503 }),
        };
        if status == Some(200) {
            let text = std::str::from_utf8(body).unwrap();
            assert!(text.ends_with('\n'), "a batch is NDJSON: {text:?}");
            s.lines.extend(text.lines().map(str::to_owned));
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
            .insert("retry-after", http::HeaderValue::from_static("1"));
    }
    resp
}
