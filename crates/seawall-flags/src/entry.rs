//! One host's state: its values behind `arc-swap` (lock-free reads), the single fetch in flight,
//! and the failure count that drives the back-off.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

use crate::config::Config;
use crate::fetcher::DynFetcher;
use crate::metrics::Counters;
use crate::{FetchError, FetchResult, FlagObserver, FlagSet, HostSnapshot};

/// What every entry of one cache shares: settings, the fetcher, the observer, cache-wide counts.
pub(crate) struct Shared {
    /// The cache's settings.
    pub(crate) config: Config,
    /// Where values come from.
    fetcher: Arc<dyn DynFetcher>,
    /// Where metrics go.
    pub(crate) observer: Arc<dyn FlagObserver>,
    /// Fetch results over all hosts, evicted ones included.
    pub(crate) counters: Counters,
}

impl Shared {
    /// Bundles a cache's parts.
    pub(crate) fn new(
        config: Config,
        fetcher: Arc<dyn DynFetcher>,
        observer: Arc<dyn FlagObserver>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            config,
            fetcher,
            observer,
            counters: Counters::default(),
        })
    }
}

/// Tokio's timer resolution.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// `now + d`, saturating at a far future instead of overflowing.
pub(crate) fn after(now: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    now.checked_add(d.min(FAR)).unwrap_or(now)
}

/// One flag's value, its boolean reading parsed once at fetch time.
#[derive(Debug)]
struct FlagValue {
    /// The value as sent.
    text: Arc<str>,
    /// `Some` when the text is `true`/`false` (any case, surrounding blanks ignored).
    as_bool: Option<bool>,
}

/// The order flags are kept in: by length, then bytes, so most comparisons of a lookup end at
/// the length.
#[inline]
fn key(name: &str) -> (usize, &[u8]) {
    (name.len(), name.as_bytes())
}

/// A host's flags, sorted by [`key`] so a read is a binary search without hashing or allocating.
#[derive(Debug, Default)]
pub(crate) struct FlagMap(Box<[(Box<str>, FlagValue)]>);

impl FlagMap {
    /// Builds the map; of repeated names the last one wins.
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut pairs: Vec<_> = pairs.into_iter().rev().collect();
        pairs.sort_by(|a, b| key(&a.0).cmp(&key(&b.0))); // stable: the last pair stays first
        pairs.dedup_by(|later, first| later.0 == first.0);
        FlagMap(
            pairs
                .into_iter()
                .map(|(name, text)| {
                    let trimmed = text.trim();
                    let as_bool = if trimmed.eq_ignore_ascii_case("true") {
                        Some(true)
                    } else if trimmed.eq_ignore_ascii_case("false") {
                        Some(false)
                    } else {
                        None
                    };
                    let value = FlagValue {
                        text: text.into(),
                        as_bool,
                    };
                    (name.into_boxed_str(), value)
                })
                .collect(),
        )
    }

    #[inline]
    fn find(&self, name: &str) -> Option<&FlagValue> {
        self.0
            .binary_search_by(|(n, _)| key(n).cmp(&key(name)))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// The flag as a boolean, or `default` when absent or not `true`/`false`.
    #[inline]
    pub(crate) fn get_bool(&self, name: &str, default: bool) -> bool {
        self.find(name).and_then(|v| v.as_bool).unwrap_or(default)
    }

    /// The flag's text, if present.
    #[inline]
    pub(crate) fn get_str(&self, name: &str) -> Option<Arc<str>> {
        self.find(name).map(|v| Arc::clone(&v.text))
    }
}

/// An immutable view of a host's values, swapped whole on every fetch.
#[derive(Debug)]
pub(crate) struct Values {
    /// The last good flags (empty until the first successful fetch).
    pub(crate) flags: Arc<FlagMap>,
    /// When `flags` were fetched; `None` while cold.
    fetched_at: Option<Instant>,
    /// The TTL `flags` were given.
    ttl: Option<Duration>,
    /// Reads before this use the values as they are; reads from it on start a fetch. It is the
    /// end of the TTL after a success and the end of the back-off after a failure.
    refresh_at: Instant,
}

/// Bookkeeping of the fetch side, under a mutex only fetches and snapshots take.
#[derive(Debug, Default)]
struct FetchState {
    /// A fetch task is running; no other may start.
    in_flight: bool,
    /// Consecutive failures, for the back-off exponent.
    failures: u32,
    /// The last failure and when it happened, kept after recovery for the admin view.
    last_error: Option<(String, Instant)>,
}

/// One host's cache entry. Handles hold an `Arc` to it, so reads never touch the host map.
pub(crate) struct Entry {
    /// The normalised `host[:port]`.
    pub(crate) host: Arc<str>,
    /// What readers see; replaced, never mutated.
    values: ArcSwap<Values>,
    /// A hint that `values` may be due, so fresh reads need no clock: cleared when values are
    /// stored (only if an alarm was armed for their `refresh_at`) and set by that alarm. It may
    /// be set spuriously, never cleared wrongly; reads that see it check the clock.
    due: AtomicBool,
    /// Counts stored values; an alarm only sets `due` for the values it was armed for.
    generation: AtomicU64,
    /// Single-flight and back-off state.
    state: Mutex<FetchState>,
    /// Ticks when a fetch finishes, waking the readers that wait for it.
    done: watch::Sender<u64>,
    /// Fetch results for this host.
    counters: Counters,
    /// Settings, fetcher, observer.
    shared: Arc<Shared>,
}

impl Entry {
    /// A cold entry: no values, a fetch due at once.
    pub(crate) fn new(host: Arc<str>, shared: Arc<Shared>) -> Self {
        Entry {
            host,
            values: ArcSwap::from_pointee(Values {
                flags: Arc::default(),
                fetched_at: None,
                ttl: None,
                refresh_at: Instant::now(),
            }),
            due: AtomicBool::new(true),
            generation: AtomicU64::new(0),
            state: Mutex::default(),
            done: watch::Sender::new(0),
            counters: Counters::default(),
            shared,
        }
    }

    /// Whether a fetch is due for `values`: the alarm hint first, the clock only when it is set.
    #[inline]
    fn is_due(&self, values: &Values) -> bool {
        self.due.load(Ordering::Acquire) && Instant::now() >= values.refresh_at
    }

    /// The values, if no fetch is due (fresh, or backing off after a failure).
    #[inline]
    pub(crate) fn settled(&self) -> Option<Guard<Arc<Values>>> {
        let values = self.values.load();
        (!self.is_due(&values)).then_some(values)
    }

    /// The values as they are, starting a background fetch if one is due. Never waits.
    #[inline]
    pub(crate) fn load_now(self: &Arc<Self>) -> Guard<Arc<Values>> {
        let values = self.values.load();
        if self.is_due(&values) {
            self.start_fetch();
        }
        values
    }

    /// The values after the due fetch (started here or joined) finished, or after
    /// `fetch_timeout`, whichever comes first.
    pub(crate) async fn load_refreshed(self: &Arc<Self>) -> Arc<Values> {
        if let Some(mut done) = self.start_fetch() {
            // A timeout leaves the values as they are: last good, or empty for the default.
            let _ = timeout(self.shared.config.fetch_timeout, done.changed()).await;
        }
        self.values.load_full()
    }

    /// Starts the fetch if it is due and none is running, and returns a receiver that ticks when
    /// the running one finishes; `None` if no fetch is due or there is no Tokio runtime.
    fn start_fetch(self: &Arc<Self>) -> Option<watch::Receiver<u64>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let mut state = self.lock_state();
        if !state.in_flight {
            if Instant::now() < self.values.load().refresh_at {
                return None; // a fetch finished between the caller's look and this lock
            }
            state.in_flight = true;
            runtime.spawn(Arc::clone(self).fetch());
        }
        Some(self.done.subscribe())
    }

    /// The one fetch in flight for this host.
    async fn fetch(self: Arc<Self>) {
        let mut in_flight = InFlight {
            entry: &self,
            finished: false,
        };
        let config = &self.shared.config;
        let fetch = self.shared.fetcher.fetch_boxed(&self.host);
        let result = match timeout(config.fetch_timeout, fetch).await {
            Ok(Ok(set)) => {
                self.succeed(set);
                FetchResult::Ok
            }
            Ok(Err(error)) => {
                self.fail(&error);
                FetchResult::Error
            }
            Err(_) => {
                self.fail(&FetchError::Timeout(config.fetch_timeout));
                FetchResult::Timeout
            }
        };
        self.counters.record(result);
        self.shared.counters.record(result);
        self.shared.observer.fetch_finished(&self.host, result);
        in_flight.finished = true;
    }

    /// Stores a successful fetch's flags, fresh for the clamped TTL.
    fn succeed(self: &Arc<Self>, set: FlagSet) {
        let now = Instant::now();
        let ttl = self.shared.config.effective_ttl(set.ttl);
        self.lock_state().failures = 0;
        self.publish(Values {
            flags: Arc::new(FlagMap::from_pairs(set.flags)),
            fetched_at: Some(now),
            ttl: Some(ttl),
            refresh_at: after(now, ttl),
        });
    }

    /// Keeps the last good flags and postpones the next fetch by the back-off.
    fn fail(self: &Arc<Self>, error: &FetchError) {
        let now = Instant::now();
        let mut state = self.lock_state();
        state.failures = state.failures.saturating_add(1);
        state.last_error = Some((error.to_string(), now));
        let delay = self
            .shared
            .config
            .backoff(state.failures, error.retry_after());
        drop(state);
        let old = self.values.load_full();
        self.publish(Values {
            flags: Arc::clone(&old.flags),
            fetched_at: old.fetched_at,
            ttl: old.ttl,
            refresh_at: after(now, delay),
        });
    }

    /// Stores `values` and arms the alarm that marks them due at their `refresh_at`. Without a
    /// runtime to run the alarm, `due` stays set and reads check the clock.
    fn publish(self: &Arc<Self>, values: Values) {
        let refresh_at = values.refresh_at;
        self.values.store(Arc::new(values));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let alarm = Alarm {
                entry: Arc::downgrade(self),
                generation,
            };
            self.due.store(false, Ordering::Release);
            // Tokio rounds timers up to its 1 ms tick; ringing a tick early keeps expiry exact,
            // as the reads in that last tick check the clock.
            let ring_at = refresh_at.checked_sub(TIMER_TICK).unwrap_or(refresh_at);
            runtime.spawn(async move {
                tokio::time::sleep_until(ring_at).await;
                drop(alarm);
            });
        }
    }

    /// This entry's part of the admin view.
    pub(crate) fn snapshot(&self, handles: usize, idle_until: Option<Instant>) -> HostSnapshot {
        let now = Instant::now();
        let values = self.values.load();
        let state = self.lock_state();
        HostSnapshot {
            host: self.host.to_string(),
            handles,
            flags: values
                .flags
                .0
                .iter()
                .map(|(name, value)| (name.to_string(), value.text.to_string()))
                .collect(),
            age: values.fetched_at.map(|at| now - at),
            ttl: values.ttl,
            fresh: values
                .fetched_at
                .zip(values.ttl)
                .is_some_and(|(at, ttl)| now < after(at, ttl)),
            next_fetch_in: values.refresh_at.saturating_duration_since(now),
            fetching: state.in_flight,
            consecutive_failures: state.failures,
            last_error: state.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_age: state.last_error.as_ref().map(|(_, at)| now - *at),
            evicted_in: idle_until.map(|at| at.saturating_duration_since(now)),
            fetches: self.counters.read(),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks its entry's values due when dropped: at their `refresh_at`, or earlier if the runtime
/// drops the alarm task (so a cache outliving a runtime falls back to reading the clock).
struct Alarm {
    entry: Weak<Entry>,
    generation: u64,
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.upgrade() {
            if entry.generation.load(Ordering::Acquire) == self.generation {
                entry.due.store(true, Ordering::Release);
            }
        }
    }
}

/// Ends a fetch however its task ends: clears `in_flight` and wakes the waiting readers. A task
/// that did not finish (the fetcher panicked, the runtime shut down) counts as a failure, so
/// the next fetch still waits out a back-off.
struct InFlight<'a> {
    entry: &'a Arc<Entry>,
    finished: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.entry.fail(&FetchError::other("flag fetch aborted"));
            self.entry.counters.record(FetchResult::Error);
            self.entry.shared.counters.record(FetchResult::Error);
            let observer = &self.entry.shared.observer;
            observer.fetch_finished(&self.entry.host, FetchResult::Error);
        }
        self.entry.lock_state().in_flight = false;
        self.entry
            .done
            .send_modify(|tick| *tick = tick.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::FlagMap;

    fn map(pairs: &[(&str, &str)]) -> FlagMap {
        FlagMap::from_pairs(
            pairs
                .iter()
                .map(|&(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    #[test]
    fn booleans_parse_loosely_and_anything_else_reads_as_the_default() {
        let flags = map(&[("a", "true"), ("b", " FALSE "), ("c", "yes"), ("d", "")]);
        assert!(flags.get_bool("a", false));
        assert!(!flags.get_bool("b", true));
        assert!(flags.get_bool("c", true) && !flags.get_bool("c", false));
        assert!(flags.get_bool("d", true));
        assert!(flags.get_bool("missing", true));
        assert_eq!(flags.get_str("c").as_deref(), Some("yes"));
        assert_eq!(flags.get_str("missing"), None);
    }

    #[test]
    fn the_last_of_repeated_names_wins() {
        let flags = map(&[("x", "1"), ("y", "2"), ("x", "3")]);
        assert_eq!(flags.get_str("x").as_deref(), Some("3"));
        assert_eq!(flags.get_str("y").as_deref(), Some("2"));
        assert_eq!(flags.0.len(), 2);
    }
}
