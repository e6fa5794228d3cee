//! Cache settings: the [`Builder`] returned by [`FlagCache::builder`](crate::FlagCache::builder)
//! and the defaults it starts from.

use std::sync::Arc;
use std::time::Duration;

use crate::entry::Shared;
use crate::fetcher::{DynFetcher, Fetcher};
use crate::{Error, FlagCache, FlagObserver};

/// How long fetched values stay fresh when the server sends no `ttl_seconds`: 15 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);
/// The shortest TTL honoured, whatever the server says: 1 minute.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(60);
/// The longest TTL honoured, whatever the server says: 1 hour.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(60 * 60);
/// How long one fetch may take before it counts as failed: 10 seconds.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The back-off after the first failed fetch, doubled per further failure: 1 second.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest back-off between failed fetches (a `Retry-After` may ask for more): 5 minutes.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// The settings one cache runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Freshness of fetched values when the server sends no TTL.
    pub(crate) ttl: Duration,
    /// Lower clamp for the server's TTL.
    pub(crate) min_ttl: Duration,
    /// Upper clamp for the server's TTL, and for a `Retry-After`.
    pub(crate) max_ttl: Duration,
    /// How long an entry outlives its last handle.
    pub(crate) idle_grace: Duration,
    /// Bound on one fetch, and so on how long a cold reader waits.
    pub(crate) fetch_timeout: Duration,
    /// First back-off after a failure.
    pub(crate) initial_backoff: Duration,
    /// Cap of the exponential back-off.
    pub(crate) max_backoff: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ttl: DEFAULT_TTL,
            min_ttl: DEFAULT_MIN_TTL,
            max_ttl: DEFAULT_MAX_TTL,
            idle_grace: DEFAULT_TTL,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

impl Config {
    /// The delay before the next fetch after `failures` consecutive failures:
    /// `initial_backoff · 2^(failures−1)` capped at `max_backoff`, or the server's
    /// `retry_after` (capped at `max_ttl`) when that is longer.
    pub(crate) fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let exponential = self
            .initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff);
        retry_after.map_or(exponential, |r| exponential.max(r.min(self.max_ttl)))
    }

    /// The TTL to use for a fetch that returned `server_ttl`.
    pub(crate) fn effective_ttl(&self, server_ttl: Option<Duration>) -> Duration {
        server_ttl
            .unwrap_or(self.ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }
}

/// Configures a [`FlagCache`]. Every setting has a default (see the `DEFAULT_*` constants);
/// `idle_grace` defaults to the `ttl`.
///
/// ```
/// use seawall_flags::{fetcher, FlagCache, FlagSet};
/// use std::time::Duration;
///
/// let cache = FlagCache::builder(fetcher::from_fn(|_| async { Ok(FlagSet::default()) }))
///     .ttl(Duration::from_secs(600))
///     .min_ttl(Duration::from_secs(30))
///     .max_ttl(Duration::from_secs(3600))
///     .idle_grace(Duration::from_secs(120))
///     .fetch_timeout(Duration::from_secs(5))
///     .backoff(Duration::from_secs(2), Duration::from_secs(600))
///     .build()
///     .unwrap();
/// # drop(cache);
/// ```
pub struct Builder {
    fetcher: Arc<dyn DynFetcher>,
    observer: Arc<dyn FlagObserver>,
    config: Config,
    idle_grace: Option<Duration>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("idle_grace", &self.idle_grace)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// A builder with every default, fetching with `fetcher`.
    pub fn new(fetcher: impl Fetcher) -> Self {
        Builder {
            fetcher: Arc::new(fetcher),
            observer: Arc::new(()),
            config: Config::default(),
            idle_grace: None,
        }
    }

    /// How long values stay fresh when the server sends no `ttl_seconds`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// The shortest TTL honoured; a server asking for less gets this.
    pub fn min_ttl(mut self, min_ttl: Duration) -> Self {
        self.config.min_ttl = min_ttl;
        self
    }

    /// The longest TTL honoured; a server asking for more gets this. It also caps how long a
    /// `Retry-After` can silence a host.
    pub fn max_ttl(mut self, max_ttl: Duration) -> Self {
        self.config.max_ttl = max_ttl;
        self
    }

    /// How long an entry outlives its last handle (default: the `ttl`), so a re-connect reuses
    /// its values without fetching.
    pub fn idle_grace(mut self, idle_grace: Duration) -> Self {
        self.idle_grace = Some(idle_grace);
        self
    }

    /// The longest one fetch may take, and so the longest a cold reader waits.
    pub fn fetch_timeout(mut self, fetch_timeout: Duration) -> Self {
        self.config.fetch_timeout = fetch_timeout;
        self
    }

    /// The back-off after the first failure (doubled per further failure) and its cap.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.initial_backoff = initial;
        self.config.max_backoff = max;
        self
    }

    /// Receives fetch results and host/handle counts, e.g. to export Prometheus metrics.
    pub fn observer(mut self, observer: impl FlagObserver) -> Self {
        self.observer = Arc::new(observer);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `min_ttl` is zero or above `max_ttl`, `ttl` is outside
    /// [`min_ttl`, `max_ttl`], `fetch_timeout` or the initial back-off is zero, or the initial
    /// back-off exceeds its cap.
    pub fn build(self) -> Result<FlagCache, Error> {
        let mut config = self.config;
        config.idle_grace = self.idle_grace.unwrap_or(config.ttl);
        let refuse = |field, reason| Err(Error::InvalidConfig { field, reason });
        if config.min_ttl.is_zero() {
            return refuse("min_ttl", "must be positive");
        }
        if config.min_ttl > config.max_ttl {
            return refuse("min_ttl", "must not exceed max_ttl");
        }
        if config.ttl < config.min_ttl || config.ttl > config.max_ttl {
            return refuse("ttl", "must lie within [min_ttl, max_ttl]");
        }
        if config.fetch_timeout.is_zero() {
            return refuse("fetch_timeout", "must be positive");
        }
        if config.initial_backoff.is_zero() {
            return refuse("backoff", "initial back-off must be positive");
        }
        if config.initial_backoff > config.max_backoff {
            return refuse("backoff", "initial back-off must not exceed its cap");
        }
        Ok(FlagCache::from_shared(Shared::new(
            config,
            self.fetcher,
            self.observer,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetcher::from_fn;
    use crate::FlagSet;

    fn builder() -> Builder {
        Builder::new(from_fn(|_| async { Ok(FlagSet::default()) }))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn backoff_doubles_from_initial_up_to_the_cap() {
        let config = builder().config;
        let schedule: Vec<u64> = (1..=11)
            .map(|n| config.backoff(n, None).as_secs())
            .collect();
        assert_eq!(schedule, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(config.backoff(u32::MAX, None), DEFAULT_MAX_BACKOFF);
    }

    #[test]
    fn retry_after_lengthens_backoff_but_is_capped_at_max_ttl() {
        let config = builder().config;
        assert_eq!(config.backoff(1, Some(secs(30))), secs(30));
        assert_eq!(config.backoff(10, Some(secs(30))), DEFAULT_MAX_BACKOFF);
        assert_eq!(config.backoff(1, Some(secs(86_400))), DEFAULT_MAX_TTL);
    }

    #[test]
    fn server_ttl_is_clamped_and_default_used_without_one() {
        let config = builder().config;
        assert_eq!(config.effective_ttl(None), DEFAULT_TTL);
        assert_eq!(config.effective_ttl(Some(secs(1))), DEFAULT_MIN_TTL);
        assert_eq!(config.effective_ttl(Some(secs(900))), secs(900));
        assert_eq!(config.effective_ttl(Some(secs(99_999))), DEFAULT_MAX_TTL);
    }

    #[test]
    fn out_of_range_settings_are_refused_with_their_field() {
        let field = |b: Builder| match b.build() {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        };
        assert_eq!(field(builder().min_ttl(Duration::ZERO)), "min_ttl");
        assert_eq!(
            field(builder().min_ttl(secs(10)).max_ttl(secs(5))),
            "min_ttl"
        );
        assert_eq!(field(builder().ttl(secs(10))), "ttl");
        assert_eq!(
            field(builder().fetch_timeout(Duration::ZERO)),
            "fetch_timeout"
        );
        assert_eq!(field(builder().backoff(Duration::ZERO, secs(1))), "backoff");
        assert_eq!(field(builder().backoff(secs(2), secs(1))), "backoff");
    }

    #[test]
    fn idle_grace_defaults_to_the_ttl() {
        let cache = builder().ttl(secs(120)).build().unwrap();
        assert_eq!(cache.shared().config.idle_grace, secs(120));
        let cache = builder().idle_grace(secs(5)).build().unwrap();
        assert_eq!(cache.shared().config.idle_grace, secs(5));
    }
}
