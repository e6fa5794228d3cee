//! The upstream response body: decoded straight out of the connection's read buffer in the
//! task that polls it, and the connection handed back to its pool the moment the body ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::conn::UpstreamConn;
use super::Pool;
use crate::http1::codec::decode::{Decoded, Decoder, FramingError};

/// The upstream connection failed while sending a response body.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResponseBodyError {
    #[error("reading the upstream response: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream response body: {0}")]
    Framing(#[from] FramingError),
}

/// A response body read from a pooled upstream connection.
pub(crate) struct ResponseBody {
    /// `None` once the body has ended (the connection went back to the pool or was closed).
    conn: Option<UpstreamConn>,
    decoder: Decoder,
    /// Where the connection goes when the body ends, if it may be reused.
    pool: Option<Arc<Pool>>,
}

impl ResponseBody {
    pub(super) fn new(conn: UpstreamConn, decoder: Decoder, pool: Option<Arc<Pool>>) -> Self {
        let mut body = ResponseBody {
            conn: Some(conn),
            decoder,
            pool,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// A body with nothing in it (the answer to an upgrade, whose connection moved on).
    pub(super) fn empty() -> Self {
        ResponseBody {
            conn: None,
            decoder: Decoder::new(crate::http1::codec::decode::Framing::Length(0)),
            pool: None,
        }
    }

    /// The body ended: the connection goes back to its pool if it may be reused.
    fn finish(&mut self) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.take()) {
            if conn.buf.is_empty() {
                pool.put(conn);
            }
        }
    }

    fn fail(
        &mut self,
        error: ResponseBodyError,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        self.conn = None;
        self.pool = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ResponseBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut conn.buf) {
                Ok(Decoded::Data(data)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Decoded::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => return this.fail(e.into()),
            }
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return this.fail(e.into()),
                Poll::Ready(Ok(0)) => {
                    // The server closed: the end of a close-delimited body, else truncation.
                    this.pool = None;
                    return match this.decoder.at_eof() {
                        Ok(()) => {
                            this.conn = None;
                            Poll::Ready(None)
                        }
                        Err(e) => this.fail(e.into()),
                    };
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
