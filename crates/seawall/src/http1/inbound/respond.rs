//! Writing a [`Reply`]: the status line, the daemon's fields, an upstream's passed-through
//! fields, the connection's own framing, then the body: whole in one write when it is ready,
//! else batch by batch as it comes (chunked when its length is unknown). A complete reply to
//! a kept-alive connection whose next request is already buffered (pipelining) is held back,
//! up to [`WRITE_BATCH`] bytes, so the answers to a pipelined batch leave in one write.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::task::Poll;

use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Method, StatusCode, Version};
use hyper::body::Body as _;

use super::conn::ClientConn;
use crate::http1::codec::encode::{gather, next_batch};
use crate::http1::codec::head;
use crate::message::BoxError;
use crate::message::{Body, Reply};

/// Response bytes gathered before a write.
const WRITE_BATCH: usize = 64 * 1024;

impl ClientConn<'_> {
    /// Writes `reply` (after any held-back answers); `Ok(keep)` tells whether the connection
    /// stays open. An error means the client is gone or stopped reading.
    pub(super) async fn respond(
        &mut self,
        method: &Method,
        version: Version,
        reply: Reply,
        mut keep: bool,
    ) -> io::Result<bool> {
        let (parts, passed, mut body) = reply.into_parts();
        let out = &mut self.out.bytes;
        head::write_status_line(out, parts.status);
        head::write_headers(out, &parts.headers);
        passed.write(out);
        if passed.get("date").is_none() {
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
            match length.or_else(|| passed.get("content-length")) {
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
        if status == StatusCode::SWITCHING_PROTOCOLS {
            // The reply's own fields name the protocol (`upgrade: …`).
            out.extend_from_slice(b"connection: upgrade\r\n");
        } else if !keep {
            out.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if bodiless || head_only {
            if !self.holds(keep) {
                self.write_out().await?;
            }
            return Ok(keep);
        }
        let mut batch = gather(&mut body, &mut self.out.bytes, chunked, WRITE_BATCH);
        loop {
            if matches!(batch, Ok(true)) && self.holds(keep) {
                return Ok(true);
            }
            self.write_out().await?;
            match batch {
                Ok(true) => return Ok(keep),
                // The body broke (an upstream failed mid-stream): end the response early; the
                // missing last chunk or short length tells the client.
                Err(_) => return Ok(false),
                Ok(false) => {}
            }
            batch = self.next_batch_watching(&mut body, chunked).await?;
        }
    }

    /// Whether a complete reply waits for the next one: the connection stays open, the batch
    /// is small, and bytes of another request are already buffered.
    fn holds(&self, keep: bool) -> bool {
        keep && self.out.bytes.len() < WRITE_BATCH && !self.sock.buf.is_empty()
    }

    /// The body's next batch, or an error when the client leaves while the body waits (an
    /// event stream, say, whose upstream is quiet).
    async fn next_batch_watching(
        &mut self,
        body: &mut Body,
        chunked: bool,
    ) -> io::Result<Result<bool, BoxError>> {
        let sock = &mut self.sock;
        let mut next = pin!(next_batch(body, &mut self.out.bytes, chunked, WRITE_BATCH));
        poll_fn(|cx| {
            if let Poll::Ready(batch) = next.as_mut().poll(cx) {
                return Poll::Ready(Ok(batch));
            }
            if sock.poll_gone(cx) {
                return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
            }
            Poll::Pending
        })
        .await
    }
}
