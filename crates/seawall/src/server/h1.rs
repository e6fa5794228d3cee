//! One HTTP/1.1 client connection, served in its own task: read a head, call the handler,
//! write the response (small ones in one write, streamed ones frame by frame as they come),
//! repeat while the connection may be kept open. Answers to pipelined requests that are ready
//! at once (rejections, say) are held back while the next request is already buffered and
//! leave together, before the connection or a handler has to wait.
//!
//! Limits: a complete request head must arrive within [`HEADER_READ_TIMEOUT`] of the previous
//! response (or of the connection opening), heads are bounded by `h1::head`. Bad heads get a
//! JSON `400` (`431` when too large) and the connection closes. A request body the handler did
//! not read to its end closes the connection after the response (its end is unknown).

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::Body as _;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::body::{lock, ReadSide, RequestBody};
use crate::h1::decode::{Decoder, Framing};
use crate::h1::encode::{gather, next_batch};
use crate::h1::fields::WireHeaders;
use crate::h1::head::{self, HeadError, RequestHead};
use crate::h1::io::Deadline;
use crate::http::{json_error, Body};

/// Longest time a client may take to send a request head, counted from the previous response
/// (slow-loris guard; also closes idle keep-alive connections).
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Response bytes gathered before a write.
const WRITE_BATCH: usize = 64 * 1024;

/// After answering a request whose body was not read, unread bytes are drained for this long
/// (at most [`LINGER_BYTES`]) before closing, so the client reads the answer instead of a reset.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// Serves HTTP/1 requests on `stream` (whose first bytes are already in `buf`) until the
/// client closes, asks to close, errs, idles out, or `stopping` resolves between requests.
pub(super) async fn serve<H, F>(
    stream: TcpStream,
    buf: BytesMut,
    remote: SocketAddr,
    handler: &H,
    stopping: Pin<&mut (dyn Future<Output = ()> + Send)>,
    stopping_now: &AtomicBool,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F,
    F: Future<Output = Response<Body>>,
{
    let (read, mut write) = stream.into_split();
    let side = Arc::new(Mutex::new(ReadSide {
        io: read,
        buf,
        body: None,
    }));
    let mut conn = Conn {
        side,
        out: Vec::with_capacity(4096),
        deadline: Deadline::new(),
        stopping,
        stopping_now,
        stopped: false,
    };
    loop {
        // Responses held back for pipelined requests (see `respond`) go out before the
        // connection waits for the client.
        let buffered = if conn.out.is_empty() {
            None
        } else {
            conn.parse_buffered_head()
        };
        let head = match buffered {
            Some(parsed) => parsed,
            None => {
                if conn.flush(&mut write).await.is_err() {
                    return;
                }
                conn.read_head().await
            }
        };
        let head = match head {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(error) => {
                let status = if error == HeadError::TooLarge {
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                tracing::debug!(%remote, %error, "refused a request head");
                let reply = json_error(status, "invalid_request_error", &error.to_string());
                let _ = conn
                    .respond(&mut write, &Method::GET, Version::HTTP_11, reply, false)
                    .await;
                conn.close(&mut write).await;
                return;
            }
        };
        let RequestHead {
            parts,
            framing,
            keep_alive,
            expects_continue,
        } = head;
        let (method, version) = (parts.method.clone(), parts.version);
        let body = {
            let mut side = lock(&conn.side);
            match framing {
                Framing::Length(n) if side.buf.len() as u64 >= n => {
                    RequestBody::full(side.buf.split_to(n as usize).freeze())
                }
                _ => {
                    side.body = Some(Decoder::new(framing));
                    RequestBody::stream(conn.side.clone())
                }
            }
        };
        if expects_continue && !body.is_end_stream() {
            conn.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if conn.flush(&mut write).await.is_err() {
                return;
            }
        }
        let request = Request::from_parts(parts, body);
        let reply = if conn.out.is_empty() {
            handler(request, remote).await
        } else {
            // Answered at once (a rejection, say), this reply joins the held-back ones;
            // otherwise they go out before the handler waits.
            let mut reply = std::pin::pin!(handler(request, remote));
            match poll_fn(|cx| Poll::Ready(reply.as_mut().poll(cx))).await {
                Poll::Ready(reply) => reply,
                Poll::Pending => {
                    if conn.flush(&mut write).await.is_err() {
                        return;
                    }
                    reply.await
                }
            }
        };
        // A body left unread hides where the next request starts.
        let unread = lock(&conn.side).body.is_some();
        let keep = keep_alive && !unread && !conn.is_stopping();
        match conn
            .respond(&mut write, &method, version, reply, keep)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                conn.close(&mut write).await;
                return;
            }
            Err(_) => return,
        }
    }
}

/// Whether bytes of another request (a pipelined one) are already buffered. Whether they
/// make a whole head is found when it is parsed; if not, held-back answers go out then.
fn next_request_buffered(side: &Mutex<ReadSide>) -> bool {
    let side = lock(side);
    side.body.is_none() && !side.buf.is_empty()
}

/// A connection's state between requests.
struct Conn<'s> {
    side: Arc<Mutex<ReadSide>>,
    /// Reused for every response head (and small bodies).
    out: Vec<u8>,
    /// Bounds the wait for each request head ([`HEADER_READ_TIMEOUT`]).
    deadline: Deadline,
    /// Resolves when the server starts shutting down.
    stopping: Pin<&'s mut (dyn Future<Output = ()> + Send)>,
    /// Set when shutdown starts: checked between requests without polling `stopping`.
    stopping_now: &'s AtomicBool,
    stopped: bool,
}

impl Conn<'_> {
    /// Whether shutdown has started (checked without waiting).
    fn is_stopping(&mut self) -> bool {
        self.stopped = self.stopped || self.stopping_now.load(Ordering::Relaxed);
        self.stopped
    }

    /// The next request head: `None` when the client closed or went silent, or when the
    /// server is stopping and no request has begun.
    async fn read_head(&mut self) -> Result<Option<RequestHead>, HeadError> {
        self.deadline.arm(HEADER_READ_TIMEOUT);
        poll_fn(|cx| {
            let mut side = lock(&self.side);
            loop {
                if !side.buf.is_empty() {
                    if let Some(head) = head::parse_request(&mut side.buf)? {
                        return Poll::Ready(Ok(Some(head)));
                    }
                }
                match side.poll_fill(cx) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Ok(None)),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => {
                        let idle = side.buf.is_empty();
                        if idle && !self.stopped && self.stopping.as_mut().poll(cx).is_ready() {
                            self.stopped = true;
                        }
                        if (idle && self.stopped) || self.deadline.poll_expired(cx) {
                            return Poll::Ready(Ok(None));
                        }
                        return Poll::Pending;
                    }
                }
            }
        })
        .await
    }

    /// Parses a request head already in the read buffer, without waiting for more bytes:
    /// `None` when there is no complete one.
    fn parse_buffered_head(&mut self) -> Option<Result<Option<RequestHead>, HeadError>> {
        let mut side = lock(&self.side);
        match head::parse_request(&mut side.buf) {
            Ok(Some(head)) => Some(Ok(Some(head))),
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        }
    }

    /// Writes out the responses held back so far.
    async fn flush(&mut self, write: &mut OwnedWriteHalf) -> io::Result<()> {
        if !self.out.is_empty() {
            write.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes `reply` (after any held-back responses); `Ok(keep)` tells whether the
    /// connection stays open. A complete response to a kept-alive connection whose next
    /// request has already begun to arrive (pipelining) is held back instead, up to
    /// [`WRITE_BATCH`] bytes, so the answers to a pipelined batch leave in one write.
    async fn respond(
        &mut self,
        write: &mut OwnedWriteHalf,
        method: &Method,
        version: Version,
        reply: Response<Body>,
        mut keep: bool,
    ) -> io::Result<bool> {
        let (parts, mut body) = reply.into_parts();
        // An upstream's fields, passed through as they arrived.
        let wire = parts.extensions.get::<WireHeaders>();
        let out = &mut self.out;
        head::write_status_line(out, parts.status);
        head::write_headers(out, &parts.headers);
        if let Some(wire) = wire {
            wire.write(out);
        }
        if wire.is_none_or(|w| w.get("date").is_none()) {
            head::write_date(out, &parts.headers);
        }
        let status = parts.status;
        let bodiless = status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let head_only = *method == Method::HEAD;
        let mut chunked = false;
        if head_only || status == StatusCode::NOT_MODIFIED {
            // No body follows; a length, if any, is the one a GET would get.
            let length = parts.headers.get(CONTENT_LENGTH).map(HeaderValue::as_bytes);
            match length.or_else(|| wire.and_then(|w| w.get("content-length"))) {
                Some(length) => {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(length);
                    out.extend_from_slice(b"\r\n");
                }
                None => match body.size_hint().exact() {
                    Some(n) if n > 0 && head_only => head::write_content_length(out, n),
                    _ => {}
                },
            }
        } else if !bodiless {
            match body.size_hint().exact() {
                Some(n) => head::write_content_length(out, n),
                None if version == Version::HTTP_11 => {
                    out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                    chunked = true;
                }
                // An HTTP/1.0 client reads until the close.
                None => keep = false,
            }
        }
        if !keep {
            out.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let hold =
            |out: &Vec<u8>| keep && out.len() < WRITE_BATCH && next_request_buffered(&self.side);
        if bodiless || head_only {
            if !hold(out) {
                write.write_all(out).await?;
                out.clear();
            }
            return Ok(keep);
        }
        let mut batch = gather(&mut body, out, chunked, WRITE_BATCH);
        loop {
            if matches!(batch, Ok(true)) && hold(out) {
                return Ok(true);
            }
            if !out.is_empty() {
                write.write_all(out).await?;
                out.clear();
            }
            match batch {
                Ok(true) => return Ok(keep),
                // The body broke (an upstream failed mid-stream): end the response early; the
                // missing last chunk or short length tells the client.
                Err(_) => return Ok(false),
                Ok(false) => {}
            }
            batch = next_batch(&mut body, out, chunked, WRITE_BATCH).await;
        }
    }

    /// Closes after a final response: flushes, half-closes, and drains a little of what the
    /// client may still be sending so it reads the answer rather than a reset.
    async fn close(&mut self, write: &mut OwnedWriteHalf) {
        let _ = write.shutdown().await;
        let side = self.side.clone();
        let mut total = 0;
        let drain = poll_fn(move |cx| {
            let mut side = lock(&side);
            loop {
                side.buf.clear();
                match side.poll_fill(cx) {
                    Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
                    Poll::Ready(Ok(n)) => {
                        total += n;
                        if total >= LINGER_BYTES {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}
