//! Bounded waits: a wait that does not end fails its test, naming what it waited for, instead
//! of hanging it.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// Bound on every wait for something the test itself caused.
pub const NO_HANG: Duration = Duration::from_secs(20);

/// How long [`settle`] sleeps between two looks.
const POLL: Duration = Duration::from_millis(10);

/// `f`, or a panic naming `what` after [`NO_HANG`].
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(NO_HANG, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {NO_HANG:?}: {what}"))
}

/// Looks with `probe` until `done` holds for what it saw, for up to [`NO_HANG`], and returns
/// the last look either way: the caller asserts on it, with its own message.
pub async fn settle<T, F, Fut>(mut probe: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + NO_HANG;
    loop {
        let seen = probe().await;
        if done(&seen) || Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it holds; panics naming `what` after [`NO_HANG`].
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        settle(check, |held| *held).await,
        "timed out after {NO_HANG:?} waiting for: {what}"
    );
}

/// The next message on `rx`, bounded by [`NO_HANG`].
pub async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    within(what, rx.recv())
        .await
        .unwrap_or_else(|| panic!("channel closed waiting for {what}"))
}
