//! Rolling windows of call outcomes, lock-free: a sliding count window and a bucketed time
//! window. Both answer "how many calls, failures and slow calls lately".

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

use crate::clock::saturating_nanos;
use crate::config::Window;

/// Totals over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

pub(crate) enum Rolling {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Rolling {
    pub(crate) fn new(window: Window) -> Rolling {
        match window {
            Window::Count(n) => Rolling::Count(CountWindow::new(n)),
            Window::Time { duration, buckets } => {
                Rolling::Time(TimeWindow::new(saturating_nanos(duration), buckets))
            }
        }
    }

    pub(crate) fn record(&self, now: u64, failure: bool, slow: bool) -> Totals {
        match self {
            Rolling::Count(w) => w.record(failure, slow),
            Rolling::Time(w) => w.record(now, failure, slow),
        }
    }

    pub(crate) fn totals(&self, now: u64) -> Totals {
        match self {
            Rolling::Count(w) => w.totals(),
            Rolling::Time(w) => w.totals(now),
        }
    }

    pub(crate) fn clear(&self) {
        match self {
            Rolling::Count(w) => w.clear(),
            Rolling::Time(w) => w.clear(),
        }
    }
}

const FILLED: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

/// The last `n` outcomes in a ring. Each slot's contribution is added when it is written and
/// removed when it is overwritten, so the totals slide with every call.
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    cursor: AtomicU64,
    calls: AtomicI64,
    failures: AtomicI64,
    slow: AtomicI64,
}

impl CountWindow {
    fn new(n: u32) -> Self {
        CountWindow {
            slots: (0..n.max(1)).map(|_| AtomicU8::new(0)).collect(),
            cursor: AtomicU64::new(0),
            calls: AtomicI64::new(0),
            failures: AtomicI64::new(0),
            slow: AtomicI64::new(0),
        }
    }

    fn record(&self, failure: bool, slow: bool) -> Totals {
        let new = FILLED | if failure { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let i = self.cursor.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let old = self.slots[i as usize].swap(new, Ordering::AcqRel);
        let delta = |bit: u8| i64::from(new & bit != 0) - i64::from(old & bit != 0);
        let calls = self.calls.fetch_add(delta(FILLED), Ordering::AcqRel) + delta(FILLED);
        let failures = self.failures.fetch_add(delta(FAILED), Ordering::AcqRel) + delta(FAILED);
        let slow = self.slow.fetch_add(delta(SLOW), Ordering::AcqRel) + delta(SLOW);
        Totals {
            calls: calls.max(0) as u64,
            failures: failures.max(0) as u64,
            slow: slow.max(0) as u64,
        }
    }

    fn totals(&self) -> Totals {
        let read = |a: &AtomicI64| a.load(Ordering::Acquire).max(0) as u64;
        Totals {
            calls: read(&self.calls),
            failures: read(&self.failures),
            slow: read(&self.slow),
        }
    }

    fn clear(&self) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
        self.calls.store(0, Ordering::Release);
        self.failures.store(0, Ordering::Release);
        self.slow.store(0, Ordering::Release);
    }
}

/// Counts per time slice. Each counter packs the slice's epoch (upper 24 bits) with its count
/// (lower 40 bits), so a counter that belongs to an expired slice restarts at the first write
/// of the new slice, exactly, with one CAS.
pub(crate) struct TimeWindow {
    bucket_nanos: u64,
    buckets: Box<[Bucket]>,
}

#[derive(Default)]
struct Bucket {
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const EPOCH_MASK: u64 = (1 << (64 - COUNT_BITS)) - 1;

fn tag(epoch: u64) -> u64 {
    (epoch & EPOCH_MASK) << COUNT_BITS
}

fn bump(counter: &AtomicU64, epoch: u64) {
    let t = tag(epoch);
    let mut cur = counter.load(Ordering::Relaxed);
    loop {
        let next = if cur & !COUNT_MASK == t {
            t | ((cur & COUNT_MASK) + 1).min(COUNT_MASK)
        } else {
            t | 1
        };
        match counter.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

impl TimeWindow {
    fn new(duration_nanos: u64, buckets: u32) -> Self {
        let n = buckets.max(1);
        TimeWindow {
            bucket_nanos: (duration_nanos / n as u64).max(1),
            buckets: (0..n).map(|_| Bucket::default()).collect(),
        }
    }

    fn record(&self, now: u64, failure: bool, slow: bool) -> Totals {
        let epoch = now / self.bucket_nanos;
        let b = &self.buckets[(epoch % self.buckets.len() as u64) as usize];
        bump(&b.calls, epoch);
        if failure {
            bump(&b.failures, epoch);
        }
        if slow {
            bump(&b.slow, epoch);
        }
        self.totals(now)
    }

    fn totals(&self, now: u64) -> Totals {
        let epoch = now / self.bucket_nanos;
        let n = self.buckets.len() as u64;
        let live = |v: u64| {
            let e = v >> COUNT_BITS;
            // Live when the slice's epoch is one of the last n (compared modulo the tag width).
            let age = (epoch & EPOCH_MASK).wrapping_sub(e) & EPOCH_MASK;
            if age < n {
                v & COUNT_MASK
            } else {
                0
            }
        };
        let mut t = Totals::default();
        for b in self.buckets.iter() {
            t.calls += live(b.calls.load(Ordering::Acquire));
            t.failures += live(b.failures.load(Ordering::Acquire));
            t.slow += live(b.slow.load(Ordering::Acquire));
        }
        t
    }

    fn clear(&self) {
        // A zero count is empty whatever its epoch tag; the next write restarts it.
        for b in self.buckets.iter() {
            b.calls.store(0, Ordering::Release);
            b.failures.store(0, Ordering::Release);
            b.slow.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_slides_past_old_successes() {
        let w = CountWindow::new(10);
        for _ in 0..1000 {
            w.record(false, false);
        }
        let mut t = Totals::default();
        for _ in 0..10 {
            t = w.record(true, false);
        }
        assert_eq!((t.calls, t.failures), (10, 10));
    }

    #[test]
    fn count_window_fills_up_before_it_slides() {
        let w = CountWindow::new(4);
        assert_eq!(w.record(true, true).calls, 1);
        w.record(false, false);
        let t = w.record(false, false);
        assert_eq!((t.calls, t.failures, t.slow), (3, 1, 1));
        w.record(false, false);
        let t = w.record(false, false);
        assert_eq!((t.calls, t.failures, t.slow), (4, 0, 0));
    }

    #[test]
    fn time_window_forgets_expired_buckets() {
        let sec = 1_000_000_000;
        let w = TimeWindow::new(10 * sec, 10);
        let t0 = 3600 * sec;
        for _ in 0..1000 {
            w.record(t0, false, false);
        }
        assert_eq!(w.totals(t0 + 9 * sec).calls, 1000);
        // Ten seconds later the successes have expired; only the new failures count.
        let t = w.record(t0 + 10 * sec, true, false);
        assert_eq!((t.calls, t.failures), (1, 1));
    }

    #[test]
    fn time_window_reuses_a_slot_for_a_new_epoch() {
        let sec = 1_000_000_000;
        let w = TimeWindow::new(2 * sec, 2);
        w.record(0, true, false);
        w.record(2 * sec, false, false); // same slot, new epoch: restarts at 1
        let t = w.totals(2 * sec);
        assert_eq!((t.calls, t.failures), (1, 0));
    }

    #[test]
    fn clear_empties_both_windows() {
        let w = Rolling::new(Window::Count(3));
        w.record(0, true, true);
        w.clear();
        assert_eq!(w.totals(0), Totals::default());
        let w = Rolling::new(Window::Time {
            duration: std::time::Duration::from_secs(1),
            buckets: 1,
        });
        w.record(5, true, true);
        w.clear();
        assert_eq!(w.totals(5), Totals::default());
    }
}
