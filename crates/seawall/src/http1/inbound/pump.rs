//! Moves a request body from the client's socket to the handler, a piece each time the
//! handler asks ([`PipeSender::poll_want`]). The first ask sends `100 Continue` when the client
//! waits for one, so a request the handler refuses first (auth, routing, admission, size) is
//! never invited to upload. A pause longer than `request_body_idle` while the handler waits
//! fails the body.

use std::task::{Context, Poll};

use super::conn::ClientConn;
use crate::http1::codec::decode::{Decoded, Decoder};
use crate::message::{PipeSender, RequestBodyError, Want};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where the pump is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The handler has not asked for (more of) the body.
    Idle,
    /// The handler asked and the pump waits for the client's bytes.
    Reading,
    /// The body was handed over to its end.
    Complete,
    /// The handler dropped the body before its end.
    Abandoned,
    /// The body broke (see [`RequestBodyError`]).
    Failed(RequestBodyError),
}

/// One request body on its way to the handler.
pub(super) struct BodyPump {
    decoder: Decoder,
    pipe: PipeSender,
    /// `100 Continue` is owed before the first read (the client waits for it).
    continue_owed: bool,
    state: State,
}

impl BodyPump {
    pub(super) fn new(decoder: Decoder, pipe: PipeSender, expects_continue: bool) -> Self {
        BodyPump {
            decoder,
            pipe,
            continue_owed: expects_continue,
            state: State::Idle,
        }
    }

    /// Whether the whole body reached the handler (so the next request starts after it).
    pub(super) fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// Whether the pump is waiting on the socket (so it notices a client that leaves).
    pub(super) fn is_reading(&self) -> bool {
        self.state == State::Reading
    }

    /// Whether the body failed because the client went away.
    pub(super) fn client_gone(&self) -> bool {
        self.state == State::Failed(RequestBodyError::ClientGone)
    }

    /// Moves body bytes while the handler asks for them. `Ready` once the pump has finished
    /// (complete, abandoned or failed); `Pending` while the handler has not asked or the
    /// client has not sent.
    pub(super) fn poll(&mut self, conn: &mut ClientConn<'_>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !matches!(self.state, State::Idle | State::Reading) {
                return Poll::Ready(());
            }
            match self.pipe.poll_want(cx) {
                Poll::Pending => {
                    self.state = State::Idle;
                    return Poll::Pending;
                }
                Poll::Ready(Want::Gone) => {
                    self.state = State::Abandoned;
                    return Poll::Ready(());
                }
                Poll::Ready(Want::More) => {}
            }
            if self.state == State::Idle {
                // The handler just asked: the idle timer counts from now.
                self.state = State::Reading;
                conn.read_deadline.arm(conn.timeouts.request_body_idle);
                if std::mem::take(&mut self.continue_owed) {
                    conn.out.bytes.extend_from_slice(CONTINUE);
                    let _ = conn.poll_write_out(cx);
                }
            }
            match self.decoder.decode(&mut conn.sock.buf) {
                Ok(Decoded::Data(piece)) => {
                    self.pipe.send(piece);
                    if self.decoder.is_done() {
                        self.pipe.finish();
                        self.state = State::Complete;
                    } else {
                        self.state = State::Idle;
                    }
                }
                Ok(Decoded::End) => {
                    self.pipe.finish();
                    self.state = State::Complete;
                }
                Ok(Decoded::NeedMore) => {
                    if conn.sock.eof {
                        self.fail(RequestBodyError::ClientGone);
                        continue;
                    }
                    match conn.sock.poll_fill(cx) {
                        Poll::Ready(Ok(0) | Err(_)) => self.fail(RequestBodyError::ClientGone),
                        Poll::Ready(Ok(_)) => {
                            conn.read_deadline.arm(conn.timeouts.request_body_idle);
                        }
                        Poll::Pending => {
                            if !conn.read_deadline.poll_expired(cx) {
                                return Poll::Pending;
                            }
                            self.fail(RequestBodyError::TimedOut);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "malformed request body");
                    self.fail(RequestBodyError::Framing);
                }
            }
        }
    }

    fn fail(&mut self, error: RequestBodyError) {
        self.pipe.fail(Box::new(error));
        self.state = State::Failed(error);
    }
}

impl Drop for BodyPump {
    fn drop(&mut self) {
        if matches!(self.state, State::Idle | State::Reading) {
            // The connection is ending: whoever still holds the body must not wait forever.
            self.pipe.fail(Box::new(RequestBodyError::ClientGone));
        }
    }
}
