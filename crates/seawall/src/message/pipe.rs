//! The pipe a client connection feeds a request body through. The connection owns the socket;
//! it reads body bytes only when the handler asks for them ([`PipeSender::poll_want`]) and hands
//! each piece over; the handler reads them as its request's body ([`PipeReceiver`]). So a
//! handler that never reads the body (a rejection, say) never has it read for it, and
//! `100 Continue` can wait until the handler first asks.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::message::BoxError;

/// A new pipe for a body of `length` bytes (`None`: unknown, chunked).
pub(crate) fn pipe(length: Option<u64>) -> (PipeSender, PipeReceiver) {
    let shared = Arc::new(Mutex::new(State {
        piece: None,
        end: End::Open,
        wanted: false,
        receiver_gone: false,
        sender: None,
        receiver: None,
        remaining: length,
    }));
    (
        PipeSender {
            shared: shared.clone(),
        },
        PipeReceiver { shared },
    )
}

/// What the sender learns from the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// The receiver waits for the next piece.
    More,
    /// The receiver was dropped: nobody will read the rest.
    Gone,
}

/// The connection's end.
pub(crate) struct PipeSender {
    shared: Arc<Mutex<State>>,
}

/// The handler's end, inside [`RequestBody`](super::RequestBody).
pub(crate) struct PipeReceiver {
    shared: Arc<Mutex<State>>,
}

enum End {
    Open,
    /// The body ended cleanly.
    Done,
    /// The body broke; the error is handed to the receiver once.
    Failed(Option<BoxError>),
}

struct State {
    /// A piece handed over and not yet taken.
    piece: Option<Bytes>,
    end: End,
    /// The receiver asked for a piece and has none.
    wanted: bool,
    receiver_gone: bool,
    sender: Option<Waker>,
    receiver: Option<Waker>,
    /// Bytes still to come, when the length is known.
    remaining: Option<u64>,
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // A poisoned lock only means a panic elsewhere; the state is still consistent.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

fn wake(waker: &mut Option<Waker>) {
    if let Some(w) = waker.take() {
        w.wake();
    }
}

impl PipeSender {
    /// Ready when the receiver wants a piece or is gone; registers `cx` otherwise.
    pub(crate) fn poll_want(&self, cx: &mut Context<'_>) -> Poll<Want> {
        let mut st = lock(&self.shared);
        if st.receiver_gone {
            return Poll::Ready(Want::Gone);
        }
        if st.wanted && st.piece.is_none() {
            return Poll::Ready(Want::More);
        }
        if !st.sender.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.sender = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Hands over the next piece of the body (never empty).
    pub(crate) fn send(&self, piece: Bytes) {
        let mut st = lock(&self.shared);
        st.wanted = false;
        st.piece = Some(piece);
        wake(&mut st.receiver);
    }

    /// The body ended cleanly.
    pub(crate) fn finish(&self) {
        let mut st = lock(&self.shared);
        st.end = End::Done;
        wake(&mut st.receiver);
    }

    /// The body broke (the client vanished, stalled or broke the framing).
    pub(crate) fn fail(&self, error: BoxError) {
        let mut st = lock(&self.shared);
        st.end = End::Failed(Some(error));
        wake(&mut st.receiver);
    }
}

impl PipeReceiver {
    /// The next piece: `Ready(None)` at the end.
    pub(crate) fn poll_piece(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        let mut st = lock(&self.shared);
        if let Some(piece) = st.piece.take() {
            if let Some(left) = st.remaining.as_mut() {
                *left = left.saturating_sub(piece.len() as u64);
            }
            return Poll::Ready(Some(Ok(piece)));
        }
        match &mut st.end {
            End::Done => return Poll::Ready(None),
            End::Failed(error) => return Poll::Ready(error.take().map(Err)),
            End::Open => {}
        }
        st.wanted = true;
        if !st
            .receiver
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            st.receiver = Some(cx.waker().clone());
        }
        wake(&mut st.sender);
        Poll::Pending
    }

    /// Whether the body has ended (nothing more will come).
    pub(crate) fn is_end(&self) -> bool {
        let st = lock(&self.shared);
        st.piece.is_none() && !matches!(st.end, End::Open)
    }

    /// Bytes still to come, when the length is known.
    pub(crate) fn remaining(&self) -> Option<u64> {
        lock(&self.shared).remaining
    }
}

impl Drop for PipeReceiver {
    fn drop(&mut self) {
        let mut st = lock(&self.shared);
        st.receiver_gone = true;
        wake(&mut st.sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn pieces_flow_only_when_asked_for() {
        let (tx, rx) = pipe(Some(5));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(tx.poll_want(&mut cx).is_pending(), "nobody asked yet");
        assert!(rx.poll_piece(&mut cx).is_pending());
        assert_eq!(tx.poll_want(&mut cx), Poll::Ready(Want::More));
        tx.send(Bytes::from_static(b"hel"));
        assert!(tx.poll_want(&mut cx).is_pending(), "one piece at a time");
        let piece = poll_fn(|cx| rx.poll_piece(cx)).await.unwrap().unwrap();
        assert_eq!((&piece[..], rx.remaining()), (&b"hel"[..], Some(2)));
        tx.send(Bytes::from_static(b"lo"));
        tx.finish();
        assert!(!rx.is_end(), "a piece is still waiting");
        assert_eq!(
            &poll_fn(|cx| rx.poll_piece(cx)).await.unwrap().unwrap()[..],
            b"lo"
        );
        assert!(rx.is_end());
        assert!(poll_fn(|cx| rx.poll_piece(cx)).await.is_none());
        drop(rx);
        assert_eq!(tx.poll_want(&mut cx), Poll::Ready(Want::Gone));
    }

    #[tokio::test]
    async fn a_failure_reaches_the_receiver_once() {
        let (tx, rx) = pipe(None);
        tx.fail("client gone".into());
        let err = poll_fn(|cx| rx.poll_piece(cx)).await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "client gone");
        assert!(poll_fn(|cx| rx.poll_piece(cx)).await.is_none());
    }
}
