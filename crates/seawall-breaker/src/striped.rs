//! A counter split across cache lines so that threads incrementing it do not contend.

use std::sync::atomic::Ordering;

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, AtomicUsize};

#[cfg(loom)]
use crate::sync::AtomicU64;

#[cfg(not(loom))]
const STRIPES: usize = 8;
// Under loom one stripe suffices: the model explores interleavings, not cache lines.
#[cfg(loom)]
const STRIPES: usize = 1;

#[repr(align(128))]
struct Cell(AtomicU64);

impl Default for Cell {
    fn default() -> Self {
        Cell(AtomicU64::new(0))
    }
}

/// A monotonic counter whose increments from different threads land on different cache lines
/// (the idea of Java's `LongAdder`). Reads sum the stripes.
pub(crate) struct StripedCounter {
    cells: [Cell; STRIPES],
}

impl Default for StripedCounter {
    fn default() -> Self {
        StripedCounter {
            cells: std::array::from_fn(|_| Cell::default()),
        }
    }
}

#[cfg(loom)]
fn stripe() -> usize {
    0
}

#[cfg(not(loom))]
#[inline(always)]
fn stripe() -> usize {
    use std::cell::Cell;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Const-initialised: no lazy-init check on access; assigned round-robin on first use.
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let i = s.get();
        if i != usize::MAX {
            return i;
        }
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(i);
        i
    })
}

impl StripedCounter {
    #[inline(always)]
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

#[cfg(all(test, not(loom)))]
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
