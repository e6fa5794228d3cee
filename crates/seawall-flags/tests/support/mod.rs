//! A flag service on 127.0.0.1 for the end-to-end tests: answers what the test scripts, counts
//! requests per host, and helpers to move Tokio time without real sleeps.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

/// What the mock flag service answers.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `status` with `body` and an optional `Retry-After`.
    Answer {
        status: u16,
        body: String,
        retry_after: Option<&'static str>,
    },
    /// Like `Answer`, but only once the test calls [`MockFlagServer::release`].
    Gated(Box<Reply>),
    /// Never answers.
    Hang,
}

impl Reply {
    /// A 200 with one flag and an optional `ttl_seconds`.
    pub fn flag(name: &str, value: &str, ttl_seconds: Option<u64>) -> Reply {
        let ttl = ttl_seconds.map_or(String::new(), |t| format!(r#","ttl_seconds":{t}"#));
        Reply::Answer {
            status: 200,
            body: format!(r#"{{"flags":[{{"name":"{name}","value":"{value}"}}]{ttl}}}"#),
            retry_after: None,
        }
    }

    /// An error status without a body.
    pub fn status(status: u16, retry_after: Option<&'static str>) -> Reply {
        Reply::Answer {
            status,
            body: String::new(),
            retry_after,
        }
    }
}

#[derive(Default)]
struct Log {
    /// Requests by the `{host}` part of the path.
    by_host: HashMap<String, usize>,
    /// Every request's user agent.
    user_agents: Vec<String>,
}

struct State {
    replies: Mutex<HashMap<String, Reply>>,
    default_reply: Mutex<Reply>,
    log: Mutex<Log>,
    arrived: Notify,
    gate: Semaphore,
}

/// The mock flag service. URL: `http://127.0.0.1:PORT/flags/{host}`.
#[derive(Clone)]
pub struct MockFlagServer {
    addr: SocketAddr,
    state: Arc<State>,
}

impl MockFlagServer {
    /// Binds 127.0.0.1 on a free port and serves on the current runtime.
    pub async fn start(reply: Reply) -> MockFlagServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = MockFlagServer {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(State {
                replies: Mutex::default(),
                default_reply: Mutex::new(reply),
                log: Mutex::default(),
                arrived: Notify::new(),
                gate: Semaphore::new(0),
            }),
        };
        let state = Arc::clone(&server.state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    /// The URL template for the cache's `HttpFetcher`.
    pub fn url_template(&self) -> String {
        format!("http://{}/flags/{{host}}", self.addr)
    }

    /// Answers `reply` from now on, for every host without its own reply.
    pub fn reply(&self, reply: Reply) {
        *self.state.default_reply.lock().unwrap() = reply;
    }

    /// Answers `reply` from now on for `host`.
    pub fn reply_for(&self, host: &str, reply: Reply) {
        self.state
            .replies
            .lock()
            .unwrap()
            .insert(host.to_owned(), reply);
    }

    /// Lets `n` gated requests answer.
    pub fn release(&self, n: usize) {
        self.state.gate.add_permits(n);
    }

    /// Requests received, all hosts.
    pub fn requests(&self) -> usize {
        self.state.log.lock().unwrap().by_host.values().sum()
    }

    /// Requests received for `host`.
    pub fn requests_for(&self, host: &str) -> usize {
        let log = self.state.log.lock().unwrap();
        log.by_host.get(host).copied().unwrap_or(0)
    }

    /// The user agents seen.
    pub fn user_agents(&self) -> Vec<String> {
        self.state.log.lock().unwrap().user_agents.clone()
    }

    /// Waits (on socket I/O, not on time) until `n` requests have arrived.
    pub async fn wait_for_requests(&self, n: usize) {
        loop {
            let arrived = self.state.arrived.notified();
            if self.requests() >= n {
                return;
            }
            arrived.await;
        }
    }
}

async fn answer(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let host = request
        .uri()
        .path()
        .strip_prefix("/flags/")
        .unwrap_or_default()
        .to_owned();
    let reply = {
        let mut log = state.log.lock().unwrap();
        *log.by_host.entry(host.clone()).or_default() += 1;
        let agent = request.headers().get("user-agent");
        let agent = agent.and_then(|v| v.to_str().ok()).unwrap_or_default();
        log.user_agents.push(agent.to_owned());
        let replies = state.replies.lock().unwrap();
        let reply = replies.get(&host).cloned();
        reply.unwrap_or_else(|| state.default_reply.lock().unwrap().clone())
    };
    state.arrived.notify_waiters();
    let mut reply = reply;
    loop {
        match reply {
            Reply::Answer {
                status,
                body,
                retry_after,
            } => {
                let mut response = Response::builder().status(status);
                if let Some(seconds) = retry_after {
                    response = response.header("retry-after", seconds);
                }
                return response.body(Full::new(Bytes::from(body))).unwrap();
            }
            Reply::Gated(inner) => {
                state.gate.acquire().await.unwrap().forget();
                reply = *inner;
            }
            Reply::Hang => std::future::pending::<()>().await,
        }
    }
}

/// Moves Tokio time forward by `by` at once: timers due by then fire, socket I/O stays in real
/// time. The test runtime must be current-thread and not paused.
pub async fn jump(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::task::yield_now().await; // let the tasks those timers woke (TTL alarms) run
    tokio::time::resume();
}

/// `s` seconds.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
