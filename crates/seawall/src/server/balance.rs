//! Spreads the connections of the gateway's shared listening socket evenly over its worker
//! threads. A worker accepts only while it holds at most [`slack`] more connections than the
//! least busy worker; otherwise it waits until a count changes.
//!
//! Without this, whichever worker happens to be awake takes a whole burst of connections
//! (a client pool opening 32 at once all landed on one of two workers in about half the
//! runs, and that worker's thread became the bottleneck while the other idled). Kernel
//! `SO_REUSEPORT` hashing would spread them, but blind to how many each worker already holds.
//! A worker waits for [`Balance::my_turn`] before accepting and keeps the [`Seat`] it gets
//! for the accepted connection until that closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

/// Open connections per worker, and a signal for workers waiting for their turn.
pub(crate) struct Balance {
    /// Worker `i`'s open client connections (also exported as a metric).
    open: Box<[Gauge]>,
    /// Workers that failed to start: the others do not wait for them.
    retired: Box<[AtomicBool]>,
    /// Notified whenever a count changes.
    changed: Notify,
}

/// How many connections above the least busy worker's count a worker may still accept:
/// one, plus an eighth of that count, so large, churning counts do not make workers wait
/// for each other on every connection.
fn slack(least: i64) -> i64 {
    1 + least / 8
}

impl Balance {
    /// One count per worker; each gauge must be its own (not clones of one gauge).
    pub(crate) fn new(open: Vec<Gauge>) -> Arc<Self> {
        Arc::new(Balance {
            retired: open.iter().map(|_| AtomicBool::new(false)).collect(),
            open: open.into_boxed_slice(),
            changed: Notify::new(),
        })
    }

    /// Whether `worker` may accept a connection now.
    fn may_accept(&self, worker: usize) -> bool {
        let least = (self.open.iter().zip(&self.retired))
            .filter(|(_, retired)| !retired.load(Ordering::Relaxed))
            .map(|(open, _)| open.get())
            .min()
            .unwrap_or(0);
        self.open[worker].get() <= least + slack(least)
    }

    /// Resolves once `worker` may accept a connection.
    pub(crate) async fn my_turn(&self, worker: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before checking, so a change in between still wakes this worker.
            changed.as_mut().enable();
            if self.may_accept(worker) {
                return;
            }
            changed.await;
        }
    }

    /// Leaves `worker` out: it is not serving (its thread or runtime failed to start), so
    /// the others must not wait for it to catch up.
    pub(crate) fn retire(&self, worker: usize) {
        self.retired[worker].store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Worker `worker`'s open connections.
    #[cfg(test)]
    pub(crate) fn open(&self, worker: usize) -> i64 {
        self.open[worker].get()
    }

    /// Counts a connection `worker` accepted, until the returned seat is dropped.
    pub(crate) fn seat(self: &Arc<Self>, worker: usize) -> Seat {
        self.open[worker].inc();
        self.changed.notify_waiters();
        Seat {
            balance: self.clone(),
            worker,
        }
    }
}

/// One open connection of a worker; dropping it (the connection closed) frees the place.
pub(crate) struct Seat {
    balance: Arc<Balance>,
    worker: usize,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.balance.open[self.worker].dec();
        self.balance.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn balance(workers: usize) -> Arc<Balance> {
        Balance::new((0..workers).map(|_| Gauge::default()).collect())
    }

    #[test]
    fn slack_grows_with_the_least_count() {
        assert_eq!(slack(0), 1);
        assert_eq!(slack(7), 1);
        assert_eq!(slack(16), 3);
    }

    #[tokio::test]
    async fn a_worker_ahead_by_more_than_the_slack_waits_until_the_others_catch_up() {
        let b = balance(2);
        let mut seats = Vec::new();
        for _ in 0..2 {
            b.my_turn(0).await;
            seats.push(b.seat(0));
        }
        // Worker 0 holds 2, worker 1 none: 2 > 0 + 1.
        assert!(!b.may_accept(0));
        assert!(b.may_accept(1));
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.my_turn(0).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        // Worker 1 accepting one brings worker 0 back within the slack.
        let other = b.seat(1);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("worker 0's turn comes")
            .unwrap();
        drop(other);
        assert!(!b.may_accept(0));
        // So does worker 0 closing one of its own.
        seats.pop();
        assert!(b.may_accept(0));
        assert_eq!((b.open(0), b.open(1)), (1, 0));
    }

    #[tokio::test]
    async fn a_retired_worker_is_not_waited_for() {
        let b = balance(2);
        let _seats = [b.seat(0), b.seat(0)];
        assert!(!b.may_accept(0));
        b.retire(1);
        tokio::time::timeout(Duration::from_secs(5), b.my_turn(0))
            .await
            .expect("worker 0 no longer waits for worker 1");
    }
}
