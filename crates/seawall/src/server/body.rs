//! The request body a handler receives: nothing, bytes that arrived with the head, or a
//! stream read from the client connection as the handler pulls it (HTTP/1), or hyper's body
//! for an h2c connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::net::tcp::OwnedReadHalf;

use crate::h1::decode::{Decoded, Decoder, FramingError};
use crate::h1::io::poll_read_buf;
use crate::http::BoxError;

/// The client connection's read side: shared between the connection loop (reading heads) and
/// the current request's streaming body (reading its bytes). Only one of them reads at a time.
pub(super) struct ReadSide {
    pub(super) io: OwnedReadHalf,
    pub(super) buf: BytesMut,
    /// The current request's body, while not read to its end.
    pub(super) body: Option<Decoder>,
}

impl ReadSide {
    /// Reads more bytes into `buf`: `Ready(Ok(0))` at end of file.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        poll_read_buf(&mut self.io, &mut self.buf, cx)
    }
}

/// Locks the read side (a poisoned lock only means a panic elsewhere; the bytes are intact).
pub(super) fn lock(side: &Mutex<ReadSide>) -> std::sync::MutexGuard<'_, ReadSide> {
    side.lock().unwrap_or_else(|p| p.into_inner())
}

/// A client's request body.
pub struct RequestBody {
    kind: Kind,
}

enum Kind {
    /// Whole (possibly empty); `None` once taken.
    Full(Option<Bytes>),
    /// Read from the connection through the shared read side.
    Stream(Arc<Mutex<ReadSide>>),
    /// An h2c request's body.
    H2(Incoming),
}

/// The client's body broke its framing or the connection failed while sending it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestBodyError {
    /// The connection failed or closed early.
    #[error("reading the request body: {0}")]
    Io(#[from] std::io::Error),
    /// The chunked encoding was malformed.
    #[error("request body: {0}")]
    Framing(#[from] FramingError),
}

impl RequestBody {
    pub(super) fn full(bytes: Bytes) -> Self {
        RequestBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    pub(super) fn stream(side: Arc<Mutex<ReadSide>>) -> Self {
        RequestBody {
            kind: Kind::Stream(side),
        }
    }

    pub(super) fn h2(body: Incoming) -> Self {
        RequestBody {
            kind: Kind::H2(body),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::H2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Kind::Stream(side) => poll_stream(&mut lock(side), cx)
                .map(|r| r.map(|r| r.map(Frame::data).map_err(|e| Box::new(e) as BoxError))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::H2(body) => body.is_end_stream(),
            Kind::Stream(side) => lock(side).body.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::H2(body) => body.size_hint(),
            Kind::Stream(side) => match lock(side).body.as_ref().map(Decoder::remaining) {
                None => SizeHint::with_exact(0),
                Some(Some(n)) => SizeHint::with_exact(n),
                Some(None) => SizeHint::default(),
            },
        }
    }
}

fn poll_stream(
    side: &mut ReadSide,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, RequestBodyError>>> {
    loop {
        let Some(decoder) = side.body.as_mut() else {
            return Poll::Ready(None);
        };
        match decoder.decode(&mut side.buf) {
            Ok(Decoded::Data(data)) => {
                if decoder.is_done() {
                    side.body = None;
                }
                return Poll::Ready(Some(Ok(data)));
            }
            Ok(Decoded::End) => {
                side.body = None;
                return Poll::Ready(None);
            }
            Ok(Decoded::NeedMore) => {}
            Err(e) => return Poll::Ready(Some(Err(e.into()))),
        }
        match side.poll_fill(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Ok(0)) => return Poll::Ready(Some(Err(FramingError::Truncated.into()))),
            Poll::Ready(Ok(_)) => {}
        }
    }
}
