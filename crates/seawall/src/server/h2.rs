//! HTTP/2: h2c with prior knowledge (a plaintext connection that opens with the HTTP/2
//! preface, the bytes already read replayed in front of the socket) or h2 over TLS (ALPN
//! settled on `h2`), handed to hyper's HTTP/2 server. Replies are written from a map
//! ([`Reply::into_http`]).
//!
//! The same limits as HTTP/1: heads of at most 64 KiB, request bodies that pause longer than
//! `request_body_idle` fail, a connection with no open stream closes after `keepalive_idle`,
//! and one whose writes stall longer than `response_write_idle` is dropped. At most
//! `server.h2.max_concurrent_streams` streams are open at once.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::Request;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::Limits;
use crate::http1::codec::head::MAX_HEAD_BYTES;
use crate::http1::inbound::ClientStream;
use crate::http1::io::Deadline;
use crate::message::{Body, BoxError, Reply, RequestBody};

/// How long an idle connection's GOAWAY gets to go out before the connection is dropped.
const IDLE_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves an HTTP/2 connection until it ends; once `stopping` resolves, the connection is
/// told to finish its streams and close.
pub(super) async fn serve<H, F>(
    stream: ClientStream,
    read: Bytes,
    remote: SocketAddr,
    handler: H,
    stopping: Pin<&mut (dyn Future<Output = ()> + Send)>,
    limits: Limits,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let timeouts = limits.timeouts;
    let streams = Arc::new(Streams::default());
    let counted = streams.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let (parts, body) = req.into_parts();
        let body = RequestBody::h2(body, timeouts.request_body_idle);
        let open = Open::new(counted.clone());
        let reply = handler(Request::from_parts(parts, body), remote);
        async move {
            let reply = reply.await.into_http();
            // The stream stays open until its body is sent (or reset).
            Ok::<_, Infallible>(reply.map(|body| Tracked { body, _open: open }.boxed()))
        }
    });
    let io = Rewind {
        read,
        inner: stream,
        write_stall: Deadline::new(),
        stalled: false,
        write_idle: timeouts.response_write_idle,
    };
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = stopping;
    let idle = streams.idle_for(timeouts.keepalive_idle);
    tokio::pin!(idle);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%remote, %error, "h2c connection ended with an error");
            }
            return;
        }
        () = stopping.as_mut() => conn.as_mut().graceful_shutdown(),
        () = idle.as_mut() => {
            // No stream is open, so nothing is lost: a GOAWAY, and the close does not wait
            // for the peer (a graceful close waits for its PING acknowledgement).
            tracing::debug!(%remote, "h2c connection idle: closing");
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, conn).await;
            return;
        }
    }
    if let Err(error) = conn.await {
        tracing::debug!(%remote, %error, "h2c connection ended with an error");
    }
}

/// How many streams of one connection are open (from request to the end of the reply).
#[derive(Default)]
struct Streams(watch::Sender<usize>);

impl Streams {
    /// Resolves once no stream has been open for `idle`.
    async fn idle_for(&self, idle: std::time::Duration) {
        let mut open = self.0.subscribe();
        loop {
            let _ = open.wait_for(|n| *n == 0).await;
            if tokio::time::timeout(idle, open.wait_for(|n| *n > 0))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// One open stream; dropping it closes it.
struct Open(Arc<Streams>);

impl Open {
    fn new(streams: Arc<Streams>) -> Self {
        streams.0.send_modify(|n| *n += 1);
        Open(streams)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0 .0.send_modify(|n| *n -= 1);
    }
}

pin_project_lite::pin_project! {
    /// A reply body that keeps its stream counted as open until it is dropped.
    struct Tracked {
        #[pin]
        body: Body,
        _open: Open,
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Bytes already read, then the socket; a write that cannot progress for `write_idle` fails
/// (the client does not read what it asked for).
struct Rewind {
    read: Bytes,
    inner: ClientStream,
    write_stall: Deadline,
    /// A write is waiting for the socket: the stall timer runs.
    stalled: bool,
    write_idle: std::time::Duration,
}

impl Rewind {
    /// Turns a pending write into an error once it has waited `write_idle`.
    fn stall<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = false;
            return poll;
        }
        if !self.stalled {
            self.stalled = true;
            self.write_stall.arm(self.write_idle);
        }
        if self.write_stall.poll_expired(cx) {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        Poll::Pending
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.stall(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.stall(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.stall(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
