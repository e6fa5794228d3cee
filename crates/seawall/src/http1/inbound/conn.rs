//! A client connection's state: the socket with its read buffer, the bytes waiting to be
//! written, the timeouts and their timers. Only the connection's task touches the socket:
//! it reads heads, pumps request bodies ([`BodyPump`]), and while a handler works it keeps
//! reading to notice a client that went away.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::pump::BodyPump;
use super::stream::ClientStream;
use super::Timeouts;
use crate::http1::codec::decode::{Decoder, Framing};
use crate::http1::codec::head::{self, HeadError, RequestHead, MAX_HEAD_BYTES};
use crate::http1::io::{poll_read_buf, Deadline};
use crate::message::{pipe, Reply, RequestBody};

/// After answering a request whose body was not read, unread bytes are drained for this long
/// (at most [`LINGER_BYTES`]) before closing, so the client reads the answer instead of a reset.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// The client's socket and what has been read from it but not used yet.
pub(super) struct Socket {
    io: ClientStream,
    pub(super) buf: BytesMut,
    /// The client closed its side (or the connection failed): nothing more will arrive.
    pub(super) eof: bool,
}

impl Socket {
    /// Reads more bytes into `buf`: `Ready(Ok(0))` at end of file (then `eof` is set).
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let read = poll_read_buf(&mut self.io, &mut self.buf, cx);
        if matches!(read, Poll::Ready(Ok(0) | Err(_))) {
            self.eof = true;
        }
        read
    }

    /// The socket itself, for a tunnel.
    pub(super) fn io_mut(&mut self) -> &mut ClientStream {
        &mut self.io
    }

    /// Reads whatever the client sends while nobody else reads (a pipelined request, say, up
    /// to a head's worth): `true` once the client has closed or reset the connection.
    pub(super) fn poll_gone(&mut self, cx: &mut Context<'_>) -> bool {
        while !self.eof && self.buf.len() < MAX_HEAD_BYTES {
            if self.poll_fill(cx).is_pending() {
                return false;
            }
        }
        self.eof
    }
}

/// Bytes to write: held-back answers, a `100 Continue`, a reply's head and body batches.
#[derive(Default)]
pub(super) struct Out {
    pub(super) bytes: Vec<u8>,
    /// How much of `bytes` is written.
    at: usize,
    /// The write timer runs for the current wait.
    waiting: bool,
}

impl Out {
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// One client connection.
pub(super) struct ClientConn<'s> {
    pub(super) sock: Socket,
    pub(super) out: Out,
    pub(super) timeouts: Timeouts,
    /// Bounds the current read wait (a head, a body piece).
    pub(super) read_deadline: Deadline,
    /// Bounds the current write wait.
    write_deadline: Deadline,
    /// Resolves when the server starts shutting down.
    stopping: Pin<&'s mut (dyn Future<Output = ()> + Send)>,
    /// Set when shutdown starts: checked between requests without polling `stopping`.
    stopping_now: &'s AtomicBool,
    stopped: bool,
}

impl<'s> ClientConn<'s> {
    pub(super) fn new(
        io: ClientStream,
        buf: BytesMut,
        timeouts: Timeouts,
        stopping: Pin<&'s mut (dyn Future<Output = ()> + Send)>,
        stopping_now: &'s AtomicBool,
    ) -> Self {
        ClientConn {
            sock: Socket {
                io,
                buf,
                eof: false,
            },
            out: Out {
                bytes: Vec::with_capacity(4096),
                ..Out::default()
            },
            timeouts,
            read_deadline: Deadline::new(),
            write_deadline: Deadline::new(),
            stopping,
            stopping_now,
            stopped: false,
        }
    }

    /// Whether shutdown has started (checked without waiting).
    pub(super) fn is_stopping(&mut self) -> bool {
        self.stopped = self.stopped || self.stopping_now.load(Ordering::Relaxed);
        self.stopped
    }

    /// The next request head: `None` when the client closed or went silent, or when the
    /// server is stopping and no request has begun. Answers held back for pipelining wait
    /// only while the next head is already buffered.
    pub(super) async fn next_head(&mut self) -> Result<Option<RequestHead>, HeadError> {
        if !self.out.is_empty() {
            if let Some(head) = head::parse_request(&mut self.sock.buf)? {
                return Ok(Some(head));
            }
            if self.write_out().await.is_err() {
                return Ok(None);
            }
        }
        self.read_head().await
    }

    /// Waits for a whole head: the first byte within `keepalive_idle`, the rest within
    /// `request_head` of it.
    async fn read_head(&mut self) -> Result<Option<RequestHead>, HeadError> {
        let Timeouts {
            keepalive_idle,
            request_head,
            ..
        } = self.timeouts;
        let idle = self.sock.buf.is_empty();
        self.read_deadline
            .arm(if idle { keepalive_idle } else { request_head });
        poll_fn(|cx| loop {
            if !self.sock.buf.is_empty() {
                if let Some(head) = head::parse_request(&mut self.sock.buf)? {
                    return Poll::Ready(Ok(Some(head)));
                }
            }
            if self.sock.eof {
                return Poll::Ready(Ok(None));
            }
            let was_idle = self.sock.buf.is_empty();
            match self.sock.poll_fill(cx) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(Ok(None)),
                Poll::Ready(Ok(_)) => {
                    if was_idle {
                        self.read_deadline.arm(request_head);
                    }
                }
                Poll::Pending => {
                    let idle = self.sock.buf.is_empty();
                    if idle && !self.stopped && self.stopping.as_mut().poll(cx).is_ready() {
                        self.stopped = true;
                    }
                    if (idle && self.stopped) || self.read_deadline.poll_expired(cx) {
                        return Poll::Ready(Ok(None));
                    }
                    return Poll::Pending;
                }
            }
        })
        .await
    }

    /// The request's body: whole when it is already buffered, else pumped as it is read.
    pub(super) fn request_body(
        &mut self,
        framing: Framing,
        expects_continue: bool,
    ) -> (RequestBody, Option<BodyPump>) {
        match framing {
            Framing::Length(n) if self.sock.buf.len() as u64 >= n => {
                let bytes = self.sock.buf.split_to(n as usize).freeze();
                (RequestBody::full(bytes), None)
            }
            _ => {
                let length = match framing {
                    Framing::Length(n) => Some(n),
                    _ => None,
                };
                let (sender, receiver) = pipe(length);
                let pump = BodyPump::new(Decoder::new(framing), sender, expects_continue);
                (RequestBody::piped(receiver), Some(pump))
            }
        }
    }

    /// Runs the handler's future to its reply, meanwhile writing held-back answers, pumping
    /// the request body and watching the client. `None` when the client went away (the
    /// handler's future is dropped) or could not be written to. The handler comes pinned
    /// where the caller made it: the gateway's future is kilobytes, and moving it into this
    /// one cost a copy of it per request.
    pub(super) async fn run<H: Future<Output = Reply>>(
        &mut self,
        mut handler: Pin<&mut H>,
        mut pump: Option<&mut BodyPump>,
    ) -> Option<Reply> {
        poll_fn(|cx| {
            if let Poll::Ready(reply) = handler.as_mut().poll(cx) {
                return Poll::Ready(Some(reply));
            }
            // Held-back answers (and a `100 Continue`) go out while the handler waits.
            if let Poll::Ready(Err(_)) = self.poll_write_out(cx) {
                return Poll::Ready(None);
            }
            let mut reading = false;
            if let Some(pump) = pump.as_deref_mut() {
                if pump.poll(self, cx).is_ready() && pump.client_gone() {
                    return Poll::Ready(None);
                }
                reading = pump.is_reading();
            }
            if !reading && self.sock.poll_gone(cx) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }

    /// Writes out `out`, bounded by `response_write_idle` between progress.
    pub(super) async fn write_out(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_out(cx)).await
    }

    pub(super) fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let out = &mut self.out;
        while out.at < out.bytes.len() {
            match Pin::new(&mut self.sock.io).poll_write(cx, &out.bytes[out.at..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    out.at += n;
                    out.waiting = false;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if !out.waiting {
                        out.waiting = true;
                        self.write_deadline.arm(self.timeouts.response_write_idle);
                    }
                    if self.write_deadline.poll_expired(cx) {
                        return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                    }
                    return Poll::Pending;
                }
            }
        }
        out.bytes.clear();
        out.at = 0;
        Poll::Ready(Ok(()))
    }

    /// Closes after a final answer: half-closes, and drains a little of what the client may
    /// still be sending so it reads the answer rather than a reset.
    pub(super) async fn close(&mut self) {
        let _ = self.sock.io.shutdown().await;
        let mut total = 0;
        let sock = &mut self.sock;
        let drain = poll_fn(|cx| loop {
            sock.buf.clear();
            match sock.poll_fill(cx) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => {
                    total += n;
                    if total >= LINGER_BYTES {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        });
        let _ = tokio::time::timeout(LINGER, drain).await;
    }
}
