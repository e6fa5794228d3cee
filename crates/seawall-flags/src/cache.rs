//! The cache and its handles: one entry per normalised host, counted handles, and eviction of an
//! entry `idle_grace` after its last handle went.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use tokio::time::Instant;

use crate::config::{Builder, Config};
use crate::entry::{after, Entry, Shared};
use crate::fetcher::{from_fn, DynFetcher, Fetcher};
use crate::host::normalize_host;
use crate::{CacheSnapshot, Error, FetchError, HostSnapshot};

/// A per-host feature-flag cache. Cloning is cheap and shares the cache.
///
/// ```
/// use seawall_flags::{fetcher, FlagCache, FlagSet};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = FlagCache::builder(fetcher::from_fn(|_| async {
///     Ok(FlagSet::new([("seawall.telemetry.enabled", "true")]))
/// }))
/// .build()
/// .unwrap();
///
/// let a = cache.acquire("https://db.example/sql").unwrap();
/// let b = cache.acquire("DB.EXAMPLE").unwrap(); // same host, same entry
/// assert!(a.get_bool("seawall.telemetry.enabled", false).await);
///
/// let snapshot = cache.snapshot();
/// assert_eq!(snapshot.hosts.len(), 1);
/// assert_eq!(snapshot.hosts[0].handles, 2);
/// assert_eq!(snapshot.fetches.ok, 1);
/// # drop(b);
/// # }
/// ```
#[derive(Clone)]
pub struct FlagCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FlagCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagCache")
            .field("config", &self.inner.shared.config)
            .field("hosts", &self.host_count())
            .finish_non_exhaustive()
    }
}

/// The cache proper, shared by the `FlagCache` clones and by every handle.
struct Inner {
    /// Settings, fetcher, observer and counters, shared with every entry.
    shared: Arc<Shared>,
    /// The entries by normalised host.
    hosts: Mutex<HashMap<Arc<str>, Slot>>,
}

/// A host's place in the map.
struct Slot {
    /// The entry the handles read.
    entry: Arc<Entry>,
    /// Live handles.
    handles: usize,
    /// When an unused entry goes; `None` while handles are live (or for a grace too long to
    /// represent).
    idle_until: Option<Instant>,
}

static GLOBAL: OnceLock<FlagCache> = OnceLock::new();

impl FlagCache {
    /// Starts configuring a cache that fetches with `fetcher`.
    pub fn builder(fetcher: impl Fetcher) -> Builder {
        Builder::new(fetcher)
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        FlagCache {
            inner: Arc::new(Inner {
                shared,
                hosts: Mutex::default(),
            }),
        }
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The process-wide cache. It is the one given to [`set_global`](Self::set_global) if that
    /// ran first; otherwise one with default settings that fetches from
    /// `DEFAULT_URL_TEMPLATE` (without feature `http`, its
    /// fetches fail and every read returns its default).
    ///
    /// ```
    /// let flags = seawall_flags::FlagCache::global();
    /// assert!(std::ptr::eq(flags, seawall_flags::FlagCache::global()));
    /// ```
    pub fn global() -> &'static FlagCache {
        GLOBAL.get_or_init(default_global)
    }

    /// Installs `cache` as the process-wide cache; call it before the first
    /// [`global`](Self::global).
    ///
    /// # Errors
    /// Gives `cache` back if a global cache already exists.
    pub fn set_global(cache: FlagCache) -> Result<(), FlagCache> {
        GLOBAL.set(cache)
    }

    /// A handle on `host`'s entry, creating the entry if needed; the host's handle count goes up
    /// by one until the handle drops. Never fetches: values are fetched on the first read.
    ///
    /// # Errors
    /// [`Error::InvalidHost`] if `host` does not normalise (see
    /// [`normalize_host`](crate::host::normalize_host)).
    pub fn acquire(&self, host: &str) -> Result<FlagHandle, Error> {
        let host = normalize_host(host)?;
        let inner = &self.inner;
        let observer = &inner.shared.observer;
        let mut hosts = inner.lock_hosts();
        inner.evict_idle(&mut hosts, Instant::now());
        let host: Arc<str> = host.into();
        let (before, mut created) = (hosts.len(), false);
        let slot = hosts.entry(Arc::clone(&host)).or_insert_with(|| {
            created = true;
            Slot {
                entry: Arc::new(Entry::new(host, Arc::clone(&inner.shared))),
                handles: 0,
                idle_until: None,
            }
        });
        if created {
            observer.hosts_changed(before + 1);
        }
        slot.handles += 1;
        slot.idle_until = None;
        observer.handles_changed(&slot.entry.host, slot.handles);
        Ok(FlagHandle {
            entry: Arc::clone(&slot.entry),
            cache: Arc::clone(inner),
        })
    }

    /// Every cached host with its handles, values, age, last error and fetch counts.
    pub fn snapshot(&self) -> CacheSnapshot {
        let mut hosts = self.inner.lock_hosts();
        self.inner.evict_idle(&mut hosts, Instant::now());
        let mut rows: Vec<HostSnapshot> = hosts
            .values()
            .map(|slot| slot.entry.snapshot(slot.handles, slot.idle_until))
            .collect();
        drop(hosts);
        rows.sort_by(|a, b| a.host.cmp(&b.host));
        CacheSnapshot {
            hosts: rows,
            fetches: self.inner.shared.counters.read(),
        }
    }

    /// The number of cached hosts, idle ones within their grace included.
    pub fn host_count(&self) -> usize {
        let mut hosts = self.inner.lock_hosts();
        self.inner.evict_idle(&mut hosts, Instant::now());
        hosts.len()
    }
}

/// The default process-wide cache (see [`FlagCache::global`]).
fn default_global() -> FlagCache {
    #[cfg(feature = "http")]
    let fetcher: Arc<dyn DynFetcher> = match crate::HttpFetcher::new(crate::DEFAULT_URL_TEMPLATE) {
        Ok(http) => Arc::new(http),
        Err(error) => Arc::new(unavailable(error.to_string())),
    };
    #[cfg(not(feature = "http"))]
    let fetcher: Arc<dyn DynFetcher> = Arc::new(unavailable(
        "no flag fetcher configured (feature `http` is off)".to_owned(),
    ));
    FlagCache::from_shared(Shared::new(Config::default(), fetcher, Arc::new(())))
}

/// A fetcher whose every fetch fails with `reason`.
fn unavailable(reason: String) -> impl Fetcher {
    from_fn(move |_| {
        let error = FetchError::other(reason.clone());
        async move { Err(error) }
    })
}

impl Inner {
    fn lock_hosts(&self) -> MutexGuard<'_, HashMap<Arc<str>, Slot>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the entries whose idle grace ended by `now`.
    fn evict_idle(&self, hosts: &mut HashMap<Arc<str>, Slot>, now: Instant) {
        let before = hosts.len();
        let observer = &self.shared.observer;
        hosts.retain(|host, slot| {
            let keep = slot.handles > 0 || slot.idle_until.is_none_or(|at| now < at);
            if !keep {
                observer.host_evicted(host);
            }
            keep
        });
        if hosts.len() != before {
            observer.hosts_changed(hosts.len());
        }
    }

    /// One handle on `entry` went: count it down and, at zero, start the idle grace.
    fn release(self: &Arc<Self>, entry: &Arc<Entry>) {
        let mut hosts = self.lock_hosts();
        let Some(slot) = hosts.get_mut(&entry.host) else {
            return;
        };
        slot.handles = slot.handles.saturating_sub(1);
        self.shared
            .observer
            .handles_changed(&entry.host, slot.handles);
        if slot.handles > 0 {
            return;
        }
        let now = Instant::now();
        let grace = self.shared.config.idle_grace;
        let deadline = after(now, grace);
        slot.idle_until = Some(deadline);
        if grace.is_zero() {
            self.evict_idle(&mut hosts, now);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Without a runtime the entry goes at the next acquire or snapshot after its grace.
            let cache = Arc::downgrade(self);
            runtime.spawn(evict_after(cache, deadline));
        }
    }
}

/// Evicts the idle entries at `deadline`, unless the cache is gone by then.
async fn evict_after(cache: Weak<Inner>, deadline: Instant) {
    tokio::time::sleep_until(deadline).await;
    if let Some(inner) = cache.upgrade() {
        let mut hosts = inner.lock_hosts();
        inner.evict_idle(&mut hosts, Instant::now());
    }
}

/// A user's share of one host's entry: reads its flags; dropping it counts the host's handles
/// down. Clone it to count one more user.
///
/// Reads of fresh values take no lock and do not allocate. When values are due for a fetch
/// (cold, or past their TTL and not backing off), the `async` reads start it, or join the one
/// already running, and wait for it at most `fetch_timeout`; the `*_now` reads never wait: they
/// answer from what is cached (the default while cold) and start the fetch in the background.
/// While a host backs off after failures, every read answers from its last good values.
///
/// A fresh read reads no clock either: a timer marks the values due at the end of their TTL
/// (or back-off), so they turn due once the runtime has run that timer's task.
pub struct FlagHandle {
    entry: Arc<Entry>,
    cache: Arc<Inner>,
}

impl std::fmt::Debug for FlagHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagHandle")
            .field("host", &self.host())
            .finish_non_exhaustive()
    }
}

impl FlagHandle {
    /// The normalised `host[:port]` this handle reads.
    pub fn host(&self) -> &str {
        &self.entry.host
    }

    /// The flag as a boolean (`true`/`false`, any case), fetching first if the values are due;
    /// `default` when the flag is absent, not a boolean, or no fetch has succeeded yet.
    ///
    /// ```
    /// # use seawall_flags::{fetcher, FlagCache, FlagSet};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let cache = FlagCache::builder(fetcher::from_fn(|_| async {
    /// #     Ok(FlagSet::new([("seawall.circuit_breaker.enabled", "false")]))
    /// # })).build().unwrap();
    /// let handle = cache.acquire("db.example").unwrap();
    /// let breaker_on = handle.get_bool("seawall.circuit_breaker.enabled", true).await;
    /// assert!(!breaker_on);
    /// # }
    /// ```
    ///
    /// # Panics
    /// If it has to wait for a fetch on a Tokio runtime without time enabled. Outside any
    /// runtime it does not fetch and answers from the cache.
    pub async fn get_bool(&self, name: &str, default: bool) -> bool {
        if let Some(values) = self.entry.settled() {
            return values.flags.get_bool(name, default);
        }
        self.entry
            .load_refreshed()
            .await
            .flags
            .get_bool(name, default)
    }

    /// The flag's text, fetching first if the values are due; `None` when absent.
    ///
    /// ```
    /// # use seawall_flags::{fetcher, FlagCache, FlagSet};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let cache = FlagCache::builder(fetcher::from_fn(|_| async {
    /// #     Ok(FlagSet::new([("seawall.mode", "strict")]))
    /// # })).build().unwrap();
    /// let handle = cache.acquire("db.example").unwrap();
    /// assert_eq!(handle.get_str("seawall.mode").await.as_deref(), Some("strict"));
    /// assert_eq!(handle.get_str("other").await.as_deref().unwrap_or("lax"), "lax");
    /// # }
    /// ```
    ///
    /// # Panics
    /// If it has to wait for a fetch on a Tokio runtime without time enabled. Outside any
    /// runtime it does not fetch and answers from the cache.
    pub async fn get_str(&self, name: &str) -> Option<Arc<str>> {
        if let Some(values) = self.entry.settled() {
            return values.flags.get_str(name);
        }
        self.entry.load_refreshed().await.flags.get_str(name)
    }

    /// [`get_bool`](Self::get_bool) without waiting: answers from the cached values (`default`
    /// while cold) and, if they are due, starts the fetch in the background (only inside a Tokio
    /// runtime; outside one nothing is fetched).
    ///
    /// ```
    /// # use seawall_flags::{fetcher, FlagCache, FlagSet};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let cache = FlagCache::builder(fetcher::from_fn(|_| async {
    /// #     Ok(FlagSet::new([("seawall.telemetry.enabled", "false")]))
    /// # })).build().unwrap();
    /// let handle = cache.acquire("db.example").unwrap();
    /// assert!(handle.get_bool_now("seawall.telemetry.enabled", true)); // cold: the default
    /// tokio::task::yield_now().await; // let the background fetch run
    /// assert!(!handle.get_bool_now("seawall.telemetry.enabled", true));
    /// # }
    /// ```
    #[inline]
    pub fn get_bool_now(&self, name: &str, default: bool) -> bool {
        self.entry.load_now().flags.get_bool(name, default)
    }

    /// [`get_str`](Self::get_str) without waiting, as [`get_bool_now`](Self::get_bool_now).
    #[inline]
    pub fn get_str_now(&self, name: &str) -> Option<Arc<str>> {
        self.entry.load_now().flags.get_str(name)
    }

    /// This host's row of [`FlagCache::snapshot`].
    pub fn snapshot(&self) -> HostSnapshot {
        let hosts = self.cache.lock_hosts();
        let (handles, idle_until) = hosts
            .get(&self.entry.host)
            .map_or((0, None), |slot| (slot.handles, slot.idle_until));
        drop(hosts);
        self.entry.snapshot(handles, idle_until)
    }
}

impl Clone for FlagHandle {
    fn clone(&self) -> Self {
        let mut hosts = self.cache.lock_hosts();
        if let Some(slot) = hosts.get_mut(&self.entry.host) {
            slot.handles += 1;
            self.cache
                .shared
                .observer
                .handles_changed(&self.entry.host, slot.handles);
        }
        FlagHandle {
            entry: Arc::clone(&self.entry),
            cache: Arc::clone(&self.cache),
        }
    }
}

impl Drop for FlagHandle {
    fn drop(&mut self) {
        self.cache.release(&self.entry);
    }
}

#[cfg(test)]
mod tests;
