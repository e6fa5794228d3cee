//! The request body a handler receives: bytes that arrived with the head (possibly none), a
//! body the HTTP/1 connection pumps as the handler reads it, or hyper's body for an h2c
//! connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use super::pipe::PipeReceiver;
use crate::message::BoxError;

/// Why a request body could not be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestBodyError {
    /// The client closed or reset the connection mid-body.
    #[error("the client closed the connection before the request body ended")]
    ClientGone,
    /// The client sent nothing for longer than `server.timeouts.request_body_idle`.
    #[error("the request body stalled past the server's timeout")]
    TimedOut,
    /// The chunked encoding was malformed.
    #[error("the request body's chunked encoding is malformed")]
    Framing,
}

impl RequestBodyError {
    /// The request body error behind `error`, if that is what it is (looking through the
    /// errors it wraps).
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Option<RequestBodyError> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(found) = e.downcast_ref::<RequestBodyError>() {
                return Some(*found);
            }
            next = e.source();
        }
        None
    }
}

/// A client's request body.
pub struct RequestBody {
    kind: Kind,
}

enum Kind {
    /// Whole (possibly empty); `None` once taken.
    Full(Option<Bytes>),
    /// Pumped by the HTTP/1 connection as it is read.
    Piped(PipeReceiver),
    /// An h2c request's body, failing when it pauses longer than `idle`.
    H2 {
        body: Incoming,
        idle: Duration,
        /// Runs while the body waits for the client.
        timer: Option<Pin<Box<Sleep>>>,
    },
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

    /// An h2c request's body; a pause longer than `idle` fails it.
    pub(crate) fn h2(body: Incoming, idle: Duration) -> Self {
        RequestBody {
            kind: Kind::H2 {
                body,
                idle,
                timer: None,
            },
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
            Kind::H2 { body, idle, timer } => match Pin::new(body).poll_frame(cx) {
                Poll::Pending => {
                    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(*idle)));
                    match timer.as_mut().poll(cx) {
                        Poll::Ready(()) => {
                            Poll::Ready(Some(Err(Box::new(RequestBodyError::TimedOut))))
                        }
                        Poll::Pending => Poll::Pending,
                    }
                }
                ready => {
                    *timer = None;
                    ready.map_err(Into::into)
                }
            },
            Kind::Piped(pipe) => pipe.poll_piece(cx).map(|r| r.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::H2 { body, .. } => body.is_end_stream(),
            Kind::Piped(pipe) => pipe.is_end(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::H2 { body, .. } => body.size_hint(),
            Kind::Piped(pipe) => match pipe.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}
