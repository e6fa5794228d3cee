//! Metrics hooks: a [`FlagObserver`] the daemon plugs Prometheus into
//! (`seawall_feature_flag_fetches_total{host,result}`, hosts cached, handles per host), and the
//! fetch counters the snapshot reports.

use std::sync::atomic::{AtomicU64, Ordering};

/// How one fetch ended; [`as_str`](FetchResult::as_str) is the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "snake_case")
)]
pub enum FetchResult {
    /// New values were stored.
    Ok,
    /// The fetcher failed; the last good values were kept.
    Error,
    /// The fetch ran past `fetch_timeout`; the last good values were kept.
    Timeout,
}

impl FetchResult {
    /// The metric label: `"ok"`, `"error"` or `"timeout"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchResult::Ok => "ok",
            FetchResult::Error => "error",
            FetchResult::Timeout => "timeout",
        }
    }
}

/// Receives the cache's events. Every method has a no-op default, so implement only what you
/// export. Calls are made while the cache holds a short internal lock (which keeps gauge updates
/// in order): keep them quick and do not call back into the cache from them.
///
/// ```
/// use seawall_flags::{FetchResult, FlagObserver};
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// #[derive(Default)]
/// struct Fetches(AtomicUsize);
///
/// impl FlagObserver for Fetches {
///     fn fetch_finished(&self, host: &str, result: FetchResult) {
///         // e.g. FETCHES.with_label_values(&[host, result.as_str()]).inc();
///         let _ = (host, result);
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
/// # let _ = seawall_flags::FlagCache::builder(seawall_flags::fetcher::from_fn(|_| async {
/// #     Ok(seawall_flags::FlagSet::default())
/// # })).observer(Fetches::default()).build().unwrap();
/// ```
pub trait FlagObserver: Send + Sync + 'static {
    /// A fetch for `host` finished with `result`.
    fn fetch_finished(&self, host: &str, result: FetchResult) {
        let _ = (host, result);
    }

    /// The number of hosts in the cache changed to `hosts`.
    fn hosts_changed(&self, hosts: usize) {
        let _ = hosts;
    }

    /// The number of live handles for `host` changed to `handles`.
    fn handles_changed(&self, host: &str, handles: usize) {
        let _ = (host, handles);
    }

    /// `host`'s entry was evicted after its idle grace, so per-host series can be dropped.
    fn host_evicted(&self, host: &str) {
        let _ = host;
    }
}

/// The unit observer ignores every event; it is the builder's default.
impl FlagObserver for () {}

/// Fetches counted by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FetchCounts {
    /// Fetches that stored new values.
    pub ok: u64,
    /// Fetches that failed.
    pub error: u64,
    /// Fetches that timed out.
    pub timeout: u64,
}

impl FetchCounts {
    /// All fetches, whatever their result.
    pub fn total(&self) -> u64 {
        self.ok + self.error + self.timeout
    }
}

/// Lock-free fetch counters behind [`FetchCounts`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    ok: AtomicU64,
    error: AtomicU64,
    timeout: AtomicU64,
}

impl Counters {
    /// Counts one fetch.
    pub(crate) fn record(&self, result: FetchResult) {
        let counter = match result {
            FetchResult::Ok => &self.ok,
            FetchResult::Error => &self.error,
            FetchResult::Timeout => &self.timeout,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub(crate) fn read(&self) -> FetchCounts {
        FetchCounts {
            ok: self.ok.load(Ordering::Relaxed),
            error: self.error.load(Ordering::Relaxed),
            timeout: self.timeout.load(Ordering::Relaxed),
        }
    }
}
