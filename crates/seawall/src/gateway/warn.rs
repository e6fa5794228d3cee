//! [`WarnLimit`]: at most one warn line per period for a recurring problem (an upstream that
//! cannot be reached fails every request sent to it), counting the lines held back.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How often a target's unanswered requests may be logged at `warn`.
pub(crate) const WARN_PERIOD: Duration = Duration::from_secs(10);

/// Lets one line through per `period`; the others are counted and reported with the next.
#[derive(Debug)]
pub(crate) struct WarnLimit {
    period: Duration,
    /// When a line last went out, and how many were held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl WarnLimit {
    /// A limit of one line per `period`.
    pub(crate) fn new(period: Duration) -> Self {
        WarnLimit {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(held back since the last line)` when a line may go out now; `None` (and one
    /// more held back) otherwise.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, held) = &mut *state;
        if last.is_some_and(|at| now.duration_since(at) < self.period) {
            *held += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_period_and_the_next_counts_what_was_held_back() {
        let limit = WarnLimit::new(WARN_PERIOD);
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        tokio::time::advance(WARN_PERIOD - Duration::from_millis(1)).await;
        assert_eq!(limit.allow(), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(limit.allow(), Some(3));
        assert_eq!(limit.allow(), None);
        tokio::time::advance(WARN_PERIOD).await;
        assert_eq!(limit.allow(), Some(1));
    }
}
