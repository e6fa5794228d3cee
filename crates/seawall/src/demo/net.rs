//! Plumbing shared by the demo's simulated servers and its clients: a tiny hyper accept loop,
//! a channel-fed streaming body (for slow SSE) and the HTTP client.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::message::{full, Body, BoxError};

/// The demo's HTTP client (plain HTTP over loopback).
pub(super) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new client with a small idle pool.
pub(super) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(16)
        .build_http()
}

/// A boxed future answering one request.
pub(super) type Reply = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// A request handler of a simulated server.
pub(super) type Handler = Arc<dyn Fn(Request<Incoming>) -> Reply + Send + Sync>;

/// A running simulated server.
pub(super) struct Simulated<S> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<S>,
    /// Its accept loop.
    pub task: JoinHandle<()>,
}

/// A server on `127.0.0.1:0`; returns its address and its accept task (abort to stop it).
pub(super) async fn serve(handler: Handler) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let service = service_fn(move |req| {
                let reply = handler(req);
                async move { Ok::<_, Infallible>(reply.await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Ok((addr, task))
}

/// A JSON response with `status` and optional `retry-after` seconds.
pub(super) fn json_reply(
    status: StatusCode,
    retry_after: Option<u64>,
    body: String,
) -> Response<Body> {
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(secs) = retry_after {
        resp = resp.header(header::RETRY_AFTER, secs.to_string());
    }
    resp.body(full(body))
        .unwrap_or_else(|_| Response::new(full("")))
}

/// A body whose chunks arrive through a channel: the sender paces the stream.
pub(super) struct ChannelBody(mpsc::Receiver<Bytes>);

impl ChannelBody {
    /// The body and the sender feeding it; dropping the sender ends the body.
    pub(super) fn channel() -> (mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = mpsc::channel(8);
        (tx, ChannelBody(rx).boxed())
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// Reads a GET answer from `addr` as JSON; `None` on any failure.
pub(super) async fn get_json(
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
) -> Option<serde_json::Value> {
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .ok()?;
    let resp = client.request(req).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}
