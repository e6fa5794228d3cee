//! The crate's error type: what can go wrong building a cache, a fetcher, or naming a host.

/// An error from configuring the cache, building an `HttpFetcher`, or
/// normalising a host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host given to [`FlagCache::acquire`](crate::FlagCache::acquire) or
    /// [`normalize_host`](crate::host::normalize_host) is not a usable `host[:port]`.
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A [`Builder`](crate::Builder) setting is out of range.
    #[error("invalid flag cache config `{field}`: {reason}")]
    InvalidConfig {
        /// The setting's name, e.g. `min_ttl`.
        field: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The flag service URL template does not make a valid `http`/`https` URL.
    #[error("invalid flag service URL {url:?}: {reason}")]
    InvalidUrl {
        /// The template as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}
