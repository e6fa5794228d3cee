//! The request body a handler receives: bytes that arrived with the head (possibly none), a
//! body the HTTP/1 connection pumps as the handler reads it, or hyper's body for an h2c
//! connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::pipe::PipeReceiver;
use crate::http1::BoxError;

/// A client's request body.
pub struct RequestBody {
    kind: Kind,
}

enum Kind {
    /// Whole (possibly empty); `None` once taken.
    Full(Option<Bytes>),
    /// Pumped by the HTTP/1 connection as it is read.
    Piped(PipeReceiver),
    /// An h2c request's body.
    H2(Incoming),
}

impl RequestBody {
    /// A body that is all here already.
    pub(crate) fn full(bytes: Bytes) -> Self {
        RequestBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// A body the connection feeds through `pipe`.
    pub(crate) fn piped(pipe: PipeReceiver) -> Self {
        RequestBody {
            kind: Kind::Piped(pipe),
        }
    }

    /// An h2c request's body.
    pub(crate) fn h2(body: Incoming) -> Self {
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
            Kind::Piped(pipe) => pipe.poll_piece(cx).map(|r| r.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::H2(body) => body.is_end_stream(),
            Kind::Piped(pipe) => pipe.is_end(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::H2(body) => body.size_hint(),
            Kind::Piped(pipe) => match pipe.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}
