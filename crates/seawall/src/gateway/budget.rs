//! The retry budget of a provider (as Envoy's `retry_budget`, linkerd's and Finagle's): failover
//! attempts may not exceed `ratio` of the first attempts over the last 10 seconds, plus
//! `min_per_second` a second, so failover can never multiply an overload. Lock-free: one
//! bucket per second, each counting first attempts and failover attempts.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// Seconds the budget looks back.
pub(crate) const WINDOW_SECS: u64 = 10;

/// One second's counts: the second it is for, first attempts, failover attempts.
#[derive(Default)]
struct Bucket {
    second: AtomicU64,
    firsts: AtomicU64,
    retries: AtomicU64,
}

/// How much failover a provider may do.
pub(crate) struct RetryBudget {
    ratio: f64,
    min_per_second: f64,
    started: Instant,
    buckets: [Bucket; WINDOW_SECS as usize],
}

impl RetryBudget {
    pub(crate) fn new(ratio: f64, min_per_second: u32) -> Self {
        RetryBudget {
            ratio,
            min_per_second: f64::from(min_per_second),
            started: Instant::now(),
            buckets: Default::default(),
        }
    }

    /// Counts a client request's first attempt (it earns `ratio` of a retry).
    pub(crate) fn first_attempt(&self) {
        self.bucket(self.second())
            .firsts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one failover attempt from the budget: `false` when it is spent (then nothing is
    /// counted and the failure goes back to the client).
    pub(crate) fn try_retry(&self) -> bool {
        let now = self.second();
        let (mut firsts, mut retries) = (0u64, 0u64);
        for bucket in &self.buckets {
            let second = bucket.second.load(Ordering::Acquire);
            if now.saturating_sub(second) < WINDOW_SECS {
                firsts += bucket.firsts.load(Ordering::Relaxed);
                retries += bucket.retries.load(Ordering::Relaxed);
            }
        }
        let allowed = self.ratio * firsts as f64 + self.min_per_second * WINDOW_SECS as f64;
        if retries as f64 + 1.0 > allowed {
            return false;
        }
        self.bucket(now).retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// This second's bucket, cleared when it last held an older second.
    fn bucket(&self, second: u64) -> &Bucket {
        let bucket = &self.buckets[(second % WINDOW_SECS) as usize];
        let held = bucket.second.load(Ordering::Acquire);
        if held != second
            && bucket
                .second
                .compare_exchange(held, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // Counts that land between the swap and the resets are lost: a budget, not a ledger.
            bucket.firsts.store(0, Ordering::Relaxed);
            bucket.retries.store(0, Ordering::Relaxed);
        }
        bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn retries_are_a_share_of_first_attempts_plus_a_floor() {
        let budget = RetryBudget::new(0.2, 0);
        for _ in 0..100 {
            budget.first_attempt();
        }
        let granted = (0..50).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 20, "20 % of 100");
        // The floor allows a few even with no traffic.
        let quiet = RetryBudget::new(0.2, 1);
        assert_eq!(
            (0..50).filter(|_| quiet.try_retry()).count(),
            10,
            "1 a second over 10 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides() {
        let budget = RetryBudget::new(1.0, 0);
        for _ in 0..5 {
            budget.first_attempt();
        }
        assert_eq!((0..10).filter(|_| budget.try_retry()).count(), 5);
        tokio::time::advance(Duration::from_secs(WINDOW_SECS)).await;
        assert!(
            !budget.try_retry(),
            "the old first attempts have left the window"
        );
        budget.first_attempt();
        assert!(budget.try_retry());
    }
}
