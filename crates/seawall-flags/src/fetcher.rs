//! Where flag values come from: the async [`Fetcher`] trait, what it returns ([`FlagSet`],
//! [`FetchError`]), and [`from_fn`] to make one from a closure (tests, in-memory sources).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The flags one fetch returned for a host, with the server's TTL if it sent one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagSet {
    /// `(name, value)` pairs; values are strings as on the wire (`"true"`, `"false"`, …).
    /// When a name repeats, the last pair wins.
    pub flags: Vec<(String, String)>,
    /// The server's `ttl_seconds`; the cache clamps it to [`min_ttl`, `max_ttl`] and uses its
    /// configured `ttl` when this is `None`.
    pub ttl: Option<Duration>,
}

impl FlagSet {
    /// A flag set from `(name, value)` pairs, without a server TTL.
    ///
    /// ```
    /// use seawall_flags::FlagSet;
    /// use std::time::Duration;
    ///
    /// let set = FlagSet::new([("a", "true")]).with_ttl(Duration::from_secs(900));
    /// assert_eq!(set.flags, vec![("a".to_owned(), "true".to_owned())]);
    /// ```
    pub fn new<N, V>(flags: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<String>,
        V: Into<String>,
    {
        FlagSet {
            flags: flags
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
            ttl: None,
        }
    }

    /// Sets the server TTL.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// Why a fetch failed. The cache keeps the host's last good values, counts the failure and
/// backs off; [`retry_after`](FetchError::retry_after) lengthens that back-off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The flag service answered with a non-success HTTP status.
    #[error("flag service answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The response's `Retry-After`, if it had one in seconds.
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or the response not read (DNS, connect, TLS, reset).
    #[error("flag service unreachable: {0}")]
    Transport(String),
    /// The response body was not the expected JSON.
    #[error("invalid flag response: {0}")]
    Decode(String),
    /// The fetch did not finish within the cache's `fetch_timeout`.
    #[error("flag fetch timed out after {0:?}")]
    Timeout(Duration),
    /// Any other failure, from a custom fetcher.
    #[error("{message}")]
    Other {
        /// What went wrong.
        message: String,
        /// How long the source asked not to be asked again, if it did.
        retry_after: Option<Duration>,
    },
}

impl FetchError {
    /// A custom failure without a retry hint.
    pub fn other(message: impl Into<String>) -> Self {
        FetchError::Other {
            message: message.into(),
            retry_after: None,
        }
    }

    /// How long the source asked the cache to wait before the next fetch, if it did.
    ///
    /// ```
    /// use seawall_flags::FetchError;
    /// use std::time::Duration;
    ///
    /// let e = FetchError::Status { status: 429, retry_after: Some(Duration::from_secs(30)) };
    /// assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    /// assert_eq!(FetchError::other("down").retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } | FetchError::Other { retry_after, .. } => {
                *retry_after
            }
            FetchError::Transport(_) | FetchError::Decode(_) | FetchError::Timeout(_) => None,
        }
    }
}

/// A source of flag values for a host. The cache calls it at most once at a time per host, with
/// the normalised `host[:port]`, and bounds each call by its `fetch_timeout`.
///
/// Implement it with an `async fn`, or use [`from_fn`]:
///
/// ```
/// use seawall_flags::{FetchError, Fetcher, FlagSet};
///
/// struct Static;
///
/// impl Fetcher for Static {
///     async fn fetch(&self, host: &str) -> Result<FlagSet, FetchError> {
///         Ok(FlagSet::new([("seawall.telemetry.enabled", (host != "quiet.example").to_string())]))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = seawall_flags::FlagCache::builder(Static).build().unwrap();
/// let quiet = cache.acquire("quiet.example").unwrap();
/// assert!(!quiet.get_bool("seawall.telemetry.enabled", true).await);
/// # }
/// ```
pub trait Fetcher: Send + Sync + 'static {
    /// Fetches the flags for `host` (normalised `host[:port]`).
    fn fetch(&self, host: &str) -> impl Future<Output = Result<FlagSet, FetchError>> + Send;
}

/// A boxed fetch future, so the cache can hold any [`Fetcher`] behind one pointer.
pub(crate) type BoxFetch<'a> =
    Pin<Box<dyn Future<Output = Result<FlagSet, FetchError>> + Send + 'a>>;

/// The object-safe face of [`Fetcher`] the cache stores.
pub(crate) trait DynFetcher: Send + Sync + 'static {
    /// [`Fetcher::fetch`], boxed.
    fn fetch_boxed<'a>(&'a self, host: &'a str) -> BoxFetch<'a>;
}

impl<F: Fetcher> DynFetcher for F {
    fn fetch_boxed<'a>(&'a self, host: &'a str) -> BoxFetch<'a> {
        Box::pin(self.fetch(host))
    }
}

/// A [`Fetcher`] made from a closure by [`from_fn`].
#[derive(Debug, Clone)]
pub struct FnFetcher<F>(F);

/// Makes a [`Fetcher`] from a closure that takes the normalised host and returns a future.
///
/// ```
/// use seawall_flags::{fetcher, FlagSet};
///
/// let fetcher = fetcher::from_fn(|host: String| async move {
///     Ok(FlagSet::new([("served.by", host)]))
/// });
/// # let _ = seawall_flags::FlagCache::builder(fetcher).build().unwrap();
/// ```
pub fn from_fn<F, Fut>(f: F) -> FnFetcher<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<FlagSet, FetchError>> + Send + 'static,
{
    FnFetcher(f)
}

impl<F, Fut> Fetcher for FnFetcher<F>
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<FlagSet, FetchError>> + Send + 'static,
{
    fn fetch(&self, host: &str) -> impl Future<Output = Result<FlagSet, FetchError>> + Send {
        (self.0)(host.to_owned())
    }
}
