//! Time sources for the breaker: a cheap monotonic system clock, a precise one, and a manual
//! clock for deterministic tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A monotonic time source, read as a [`Duration`] since an arbitrary fixed origin.
///
/// Cloning is cheap. The breaker reads the clock only when it needs the time (open deadlines,
/// rolling windows, slow-call timing), never on a closed-state call with the default policy.
///
/// ```
/// use seawall_breaker::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let manual = ManualClock::new();
/// let clock = Clock::manual(&manual);
/// let before = clock.now();
/// manual.advance(Duration::from_secs(5));
/// assert_eq!(clock.now() - before, Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    Coarse,
    Precise,
    Manual(Arc<AtomicU64>),
    Custom(Arc<dyn Fn() -> Duration + Send + Sync>),
}

impl Clock {
    /// The default clock: `CLOCK_MONOTONIC_COARSE` on Linux (a few nanoseconds to read, no
    /// syscall; resolution of one scheduler tick, 1–4 ms), [`Instant`] elsewhere.
    pub fn system() -> Self {
        Clock(Source::Coarse)
    }

    /// A clock backed by [`Instant::now`]: nanosecond resolution, slower to read. Use it when
    /// `slow_call_duration` is shorter than a few milliseconds.
    pub fn precise() -> Self {
        Clock(Source::Precise)
    }

    /// A clock driven by hand through `manual`, for tests.
    pub fn manual(manual: &ManualClock) -> Self {
        Clock(Source::Manual(manual.0.clone()))
    }

    /// A clock backed by a function, e.g. `tokio::time::Instant` so that paused tokio time
    /// drives the breaker. The function must be monotonic.
    pub fn from_fn(now: impl Fn() -> Duration + Send + Sync + 'static) -> Self {
        Clock(Source::Custom(Arc::new(now)))
    }

    /// The current time since this clock's origin.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        match &self.0 {
            Source::Coarse => coarse_nanos(),
            Source::Precise => precise_nanos(),
            Source::Manual(t) => t.load(Ordering::Acquire),
            Source::Custom(f) => saturating_nanos(f()),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            Source::Coarse => "system",
            Source::Precise => "precise",
            Source::Manual(_) => "manual",
            Source::Custom(_) => "custom",
        };
        f.debug_tuple("Clock").field(&kind).finish()
    }
}

/// A hand-driven clock for tests. Starts at one hour so that subtracting short durations
/// from "now" never underflows.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A new manual clock.
    pub fn new() -> Self {
        ManualClock(Arc::new(AtomicU64::new(3_600_000_000_000)))
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(saturating_nanos(by), Ordering::AcqRel);
    }

    /// The current reading.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

pub(crate) fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn precise_nanos() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    // One hour offset keeps "now - short duration" positive, as with the manual clock.
    saturating_nanos(origin.elapsed()) + 3_600_000_000_000
}

#[cfg(target_os = "linux")]
#[inline]
fn coarse_nanos() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
        .saturating_add(3_600_000_000_000)
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn coarse_nanos() -> u64 {
    precise_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let c = Clock::system();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
    }

    #[test]
    fn manual_clock_moves_only_by_hand() {
        let m = ManualClock::new();
        let c = Clock::manual(&m);
        let a = c.now();
        assert_eq!(c.now(), a);
        m.advance(Duration::from_millis(1500));
        assert_eq!(c.now() - a, Duration::from_millis(1500));
    }

    #[test]
    fn custom_clock_reads_the_function() {
        let c = Clock::from_fn(|| Duration::from_secs(42));
        assert_eq!(c.now(), Duration::from_secs(42));
    }
}
