//! A counter split across cache lines so that threads incrementing it do not contend.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const STRIPES: usize = 8;

#[repr(align(128))]
#[derive(Default)]
struct Cell(AtomicU64);

/// A monotonic counter whose increments from different threads land on different cache lines
/// (the idea of Java's `LongAdder`). Reads sum the stripes.
#[derive(Default)]
pub(crate) struct StripedCounter {
    cells: [Cell; STRIPES],
}

fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl StripedCounter {
    #[inline]
    pub(crate) fn increment(&self) {
        self.cells[stripe()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.cells
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_increments_from_many_threads() {
        let c = StripedCounter::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| (0..1000).for_each(|_| c.increment()));
            }
        });
        assert_eq!(c.sum(), 4000);
    }
}
