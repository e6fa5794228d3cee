//! After a `101 Switching Protocols`: bytes flow both ways between the client and the
//! upstream until either side closes (what it sent is passed on first), or neither sends
//! anything for `keepalive_idle`.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::conn::ClientConn;
use crate::http1::io::Deadline;
use crate::message::Tunnel;

/// Bytes moved per read.
const CHUNK: usize = 16 * 1024;

impl ClientConn<'_> {
    /// Joins the client's socket (and what it sent after its request) to `tunnel`.
    pub(super) async fn tunnel(&mut self, tunnel: Tunnel) {
        let Tunnel(mut io) = tunnel;
        let idle = self.timeouts.keepalive_idle;
        let mut up = Direction::new(std::mem::take(&mut self.sock.buf).to_vec());
        let mut down = Direction::new(Vec::new());
        let client = self.sock.io_mut();
        let mut deadline = Deadline::new();
        deadline.arm(idle);
        let ended = poll_fn(|cx| {
            let moved_up = up.poll(client, &mut *io, cx);
            let moved_down = down.poll(&mut *io, client, cx);
            match (moved_up, moved_down) {
                (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => return Poll::Ready(Err(e)),
                (Poll::Ready(Ok(true)), _) | (_, Poll::Ready(Ok(true))) => deadline.arm(idle),
                _ => {}
            }
            // A protocol switched to over HTTP/1 has no use for a half-open connection.
            if up.closed || down.closed {
                return Poll::Ready(Ok(()));
            }
            if deadline.poll_expired(cx) {
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
            Poll::Pending
        })
        .await;
        if let Err(error) = ended {
            tracing::debug!(%error, "tunnel ended");
        }
    }
}

/// One direction of a tunnel: read from one side, write to the other, pass on the close.
struct Direction {
    /// Read but not yet written.
    buf: Vec<u8>,
    at: usize,
    /// The reading side closed; once `buf` is written the writing side is shut down.
    eof: bool,
    closed: bool,
}

impl Direction {
    fn new(first: Vec<u8>) -> Self {
        Direction {
            buf: first,
            at: 0,
            eof: false,
            closed: false,
        }
    }

    /// Moves what it can; `Ready(Ok(true))` when bytes moved, `Pending` when waiting.
    fn poll(
        &mut self,
        from: &mut (impl AsyncRead + Unpin + ?Sized),
        to: &mut (impl AsyncWrite + Unpin + ?Sized),
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<bool>> {
        let mut moved = false;
        loop {
            if self.closed {
                return if moved {
                    Poll::Ready(Ok(true))
                } else {
                    Poll::Pending
                };
            }
            if self.at < self.buf.len() {
                match Pin::new(&mut *to).poll_write(cx, &self.buf[self.at..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        self.at += n;
                        moved = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if self.eof {
                match Pin::new(&mut *to).poll_shutdown(cx) {
                    Poll::Ready(_) => self.closed = true,
                    Poll::Pending => break,
                }
                continue;
            }
            self.buf.clear();
            self.at = 0;
            self.buf.resize(CHUNK, 0);
            let mut read = ReadBuf::new(&mut self.buf);
            match Pin::new(&mut *from).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    self.buf.truncate(n);
                    self.eof = n == 0;
                    moved |= n > 0;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.buf.clear();
                    break;
                }
            }
        }
        if moved {
            Poll::Ready(Ok(true))
        } else {
            Poll::Pending
        }
    }
}
