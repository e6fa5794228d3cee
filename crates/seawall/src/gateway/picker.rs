//! Which of a provider's targets a request goes to: smooth weighted round robin (nginx's) over
//! the targets still in the running, each weight divided by the target's requests in flight plus
//! one (so a slow or busy target gets less), and ramped up over `slow_start` after its breaker
//! closed again (so a recovered target is not flooded at once).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The smallest share a recovering target gets while it ramps up.
const RAMP_FLOOR: f64 = 0.1;

/// One target's load, as the picker sees it.
pub(crate) struct Load {
    weight: f64,
    in_flight: AtomicUsize,
    /// When a breaker of the target last closed after probing, in nanoseconds after the
    /// picker's epoch; 0: not recovering.
    recovered_at: AtomicU64,
}

impl Load {
    pub(crate) fn new(weight: u32) -> Self {
        Load {
            weight: f64::from(weight.max(1)),
            in_flight: AtomicUsize::new(0),
            recovered_at: AtomicU64::new(0),
        }
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub(crate) fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }
}

/// A request in flight on a target.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The round-robin state of one provider's targets.
pub(crate) struct Picker {
    epoch: Instant,
    slow_start: Duration,
    /// Each target's current weight in the smooth round robin.
    current: Mutex<Vec<f64>>,
}

impl Picker {
    pub(crate) fn new(targets: usize, slow_start: Duration) -> Self {
        Picker {
            epoch: Instant::now(),
            slow_start,
            current: Mutex::new(vec![0.0; targets]),
        }
    }

    /// Notes that a breaker of `load`'s target closed after probing: its share ramps up.
    pub(crate) fn recovered(&self, load: &Load) {
        let at = self.epoch.elapsed().as_nanos().max(1);
        load.recovered_at
            .store(u64::try_from(at).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// The next target among `loads` for which `eligible` holds, or `None` when none does.
    pub(crate) fn pick(
        &self,
        loads: &[&Load],
        mut eligible: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let now = self.epoch.elapsed();
        let effective: Vec<Option<f64>> = loads
            .iter()
            .enumerate()
            .map(|(i, load)| eligible(i).then(|| self.effective(load, now)))
            .collect();
        let total: f64 = effective.iter().flatten().sum();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut best: Option<usize> = None;
        for (i, weight) in effective.iter().enumerate() {
            if let Some(w) = weight {
                current[i] += w;
                if best.is_none_or(|b| current[i] > current[b]) {
                    best = Some(i);
                }
            }
        }
        if let Some(b) = best {
            current[b] -= total;
        }
        best
    }

    fn effective(&self, load: &Load, now: Duration) -> f64 {
        let busy = load.in_flight.load(Ordering::Relaxed) as f64 + 1.0;
        load.weight * self.ramp(load, now) / busy
    }

    /// The share of a target ramping up after recovery: from [`RAMP_FLOOR`] to 1 over
    /// `slow_start`.
    fn ramp(&self, load: &Load, now: Duration) -> f64 {
        let at = load.recovered_at.load(Ordering::Relaxed);
        if at == 0 || self.slow_start.is_zero() {
            return 1.0;
        }
        let since = now.saturating_sub(Duration::from_nanos(at));
        if since >= self.slow_start {
            load.recovered_at.store(0, Ordering::Relaxed);
            return 1.0;
        }
        (since.as_secs_f64() / self.slow_start.as_secs_f64()).max(RAMP_FLOOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(picker: &Picker, loads: &[&Load], n: usize) -> Vec<usize> {
        let mut seen = vec![0; loads.len()];
        for _ in 0..n {
            seen[picker.pick(loads, |_| true).unwrap()] += 1;
        }
        seen
    }

    #[tokio::test(start_paused = true)]
    async fn weights_share_the_requests_smoothly() {
        let (a, b) = (Load::new(2), Load::new(1));
        let picker = Picker::new(2, Duration::ZERO);
        let order: Vec<usize> = (0..6)
            .map(|_| picker.pick(&[&a, &b], |_| true).unwrap())
            .collect();
        assert_eq!(order, [0, 1, 0, 0, 1, 0], "interleaved, two for one");
        assert_eq!(counts(&picker, &[&a, &b], 300), [200, 100]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_target_gets_less_and_an_ineligible_one_nothing() {
        let (a, b) = (Load::new(1), Load::new(1));
        let picker = Picker::new(2, Duration::ZERO);
        let _held: Vec<_> = (0..3).map(|_| a.start()).collect();
        let seen = counts(&picker, &[&a, &b], 100);
        assert!(seen[1] > 3 * seen[0], "{seen:?}");
        assert_eq!(picker.pick(&[&a, &b], |i| i == 0), Some(0));
        assert_eq!(picker.pick(&[&a, &b], |_| false), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_recovered_target_ramps_up_over_slow_start() {
        let (a, b) = (Load::new(1), Load::new(1));
        let picker = Picker::new(2, Duration::from_secs(10));
        picker.recovered(&b);
        let early = counts(&picker, &[&a, &b], 110);
        assert!(early[1] <= 11, "about a tenth at first: {early:?}");
        tokio::time::advance(Duration::from_secs(5)).await;
        let half = counts(&picker, &[&a, &b], 150);
        assert!(
            (45..=55).contains(&half[1]),
            "about a third at half way: {half:?}"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(counts(&picker, &[&a, &b], 100), [50, 50]);
    }
}
