//! What the server and the upstream client both do with a connection: read into its buffer,
//! and bound a wait with a deadline timer the connection keeps.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{Instant, Sleep};

/// Bytes read per system call at most.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// Reads more bytes from `io` into `buf`: `Ready(Ok(0))` at end of file.
pub(crate) fn poll_read_buf<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    buf.reserve(READ_CHUNK);
    std::pin::pin!(io.read_buf(buf)).poll(cx)
}

/// A deadline for the connection's current wait. Its timer lives as long as the connection
/// and is re-armed only when it fires before the deadline (which moves forward with every
/// wait), so a request's deadline costs no timer-wheel update in the usual case.
pub(crate) struct Deadline {
    due: Instant,
    /// Created on the first wait that has to block.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    pub(crate) fn new() -> Self {
        Deadline {
            due: Instant::now(),
            timer: None,
        }
    }

    /// The waits that follow must end within `after` from now.
    pub(crate) fn arm(&mut self, after: Duration) {
        self.due = Instant::now() + after;
    }

    /// Whether the deadline has passed; registers `cx` to be woken when it does.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let due = self.due;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() > due {
            timer.as_mut().reset(due);
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if timer.deadline() >= due {
                return true;
            }
            timer.as_mut().reset(due);
        }
    }
}
