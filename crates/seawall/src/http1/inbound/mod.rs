//! One client's HTTP/1.1 connection, served in its own task, which owns the socket: read a
//! head, hand the handler a request whose body is pumped to it as it reads, write the reply
//! (small ones in one write, streamed ones frame by frame as they come), repeat while the
//! connection may be kept open.
//!
//! - `conn`: the socket, its read buffer and its output buffer; reading heads, writing
//!   bytes, noticing a client that went away.
//! - `pump`: moves request body bytes from the socket to the handler when it asks.
//! - `respond`: writes a [`Reply`](crate::message::Reply): head, framing, body.
//! - `tunnel`: after a `101`, carries bytes both ways between the client and the upstream.
//! - `stream`: the client's connection, plain TCP or TLS.
//!
//! While the handler works, the connection keeps reading the socket: a client that closes or
//! resets its connection is gone, and the handler's future is dropped (which cancels an
//! upstream request). Answers to pipelined requests that are ready at once are held back
//! while the next request is already buffered and leave together, before the connection or
//! a handler has to wait. Bad heads get a JSON `400` (`431` when too large) and the
//! connection closes; so does a connection whose request body was not read to its end.

mod conn;
mod pump;
mod respond;
mod stream;
mod tunnel;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use self::conn::ClientConn;
pub(crate) use self::stream::ClientStream;
use crate::http1::codec::head::{HeadError, RequestHead};
use crate::message::{json_error, Reply, RequestBody, UpgradeRequest};
use bytes::BytesMut;
use http::{Method, Request, StatusCode, Version};

/// How long a client connection may wait at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for the first byte of a request (on a new or kept-alive connection).
    pub keepalive_idle: Duration,
    /// Longest time from the first byte of a request head to its end (slow-loris guard).
    pub request_head: Duration,
    /// Longest pause in a request body while the handler waits for it.
    pub request_body_idle: Duration,
    /// Longest pause in writing a reply to a client that does not read it.
    pub response_write_idle: Duration,
}

impl Default for Timeouts {
    /// The defaults of `server.timeouts`.
    fn default() -> Self {
        Timeouts {
            keepalive_idle: Duration::from_secs(60),
            request_head: Duration::from_secs(30),
            request_body_idle: Duration::from_secs(30),
            response_write_idle: Duration::from_secs(30),
        }
    }
}

/// Serves HTTP/1 requests on `stream` (whose first bytes are already in `buf`) until the
/// client closes, asks to close, errs, idles out, or `stopping` resolves between requests.
pub(crate) async fn serve<H, F>(
    stream: ClientStream,
    buf: BytesMut,
    remote: SocketAddr,
    handler: &H,
    stopping: Pin<&mut (dyn Future<Output = ()> + Send)>,
    stopping_now: &AtomicBool,
    timeouts: Timeouts,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F,
    F: Future<Output = Reply>,
{
    let mut conn = ClientConn::new(stream, buf, timeouts, stopping, stopping_now);
    loop {
        let head = match conn.next_head().await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(error) => return refuse(&mut conn, remote, error).await,
        };
        let RequestHead {
            mut parts,
            framing,
            keep_alive,
            expects_continue,
            upgrade,
        } = head;
        if let Some(protocol) = upgrade {
            parts.extensions.insert(UpgradeRequest(protocol));
        }
        let (method, version) = (parts.method.clone(), parts.version);
        let (body, mut pump) = conn.request_body(framing, expects_continue);
        let request = Request::from_parts(parts, body);
        let answered = {
            // Dropped here, when it answered or its client went away.
            let handling = std::pin::pin!(handler(request, remote));
            conn.run(handling, pump.as_mut()).await
        };
        let Some(mut reply) = answered else {
            tracing::debug!(%remote, "client went away before its answer");
            return;
        };
        // A body left unread hides where the next request starts.
        let unread = pump.is_some_and(|p| !p.is_complete());
        let tunnel = reply.take_tunnel();
        let keep = keep_alive && !unread && !conn.is_stopping();
        match (conn.respond(&method, version, reply, keep).await, tunnel) {
            (Ok(_), Some(tunnel)) => return conn.tunnel(tunnel).await,
            (Ok(true), None) => {}
            (Ok(false), None) => return conn.close().await,
            (Err(_), _) => return,
        }
    }
}

/// Answers a head that could not be parsed, then closes.
async fn refuse(conn: &mut ClientConn<'_>, remote: SocketAddr, error: HeadError) {
    let status = match error {
        HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        HeadError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        HeadError::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::BAD_REQUEST,
    };
    tracing::debug!(%remote, %error, "refused a request head");
    let reply = json_error(status, "invalid_request_error", &error.to_string());
    let _ = conn
        .respond(&Method::GET, Version::HTTP_11, reply.into(), false)
        .await;
    conn.close().await;
}
