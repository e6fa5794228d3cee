//! A per-host feature-flag cache: one shared, lazily fetched flag set per host, reference-counted
//! handles, TTL, exactly one fetch in flight per host, and stale values kept when a fetch fails.
//!
//! Drivers and gateways open many connections to the same host. Asking a flag service for the
//! flags on every connection gets them rate-limited, so a [`FlagCache`] keeps one entry per
//! normalised host and hands out [`FlagHandle`]s that share it.
//!
//! ```
//! use seawall_flags::{fetcher, FlagCache, FlagSet};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), seawall_flags::Error> {
//! let cache = FlagCache::builder(fetcher::from_fn(|_host: String| async {
//!     Ok(FlagSet::new([("seawall.circuit_breaker.enabled", "false")]))
//! }))
//! .build()?;
//!
//! let handle = cache.acquire("HTTPS://Example.com:443/sql/1.0")?;
//! assert_eq!(handle.host(), "example.com");
//! assert!(!handle.get_bool("seawall.circuit_breaker.enabled", true).await);
//! assert!(handle.get_bool("seawall.telemetry.enabled", true).await); // absent: the default
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`host`]: host normalisation, so `HTTPS://Example.com:443/` and `example.com` share an entry.
//! - [`config`]: the [`Builder`] and its defaults (TTL, clamps, grace, timeout, backoff).
//! - `cache`: [`FlagCache`] (the host map, idle eviction) and [`FlagHandle`] (reads).
//! - `entry`: one host's state: values behind `arc-swap`, the single-flight fetch, backoff.
//! - [`fetcher`]: the [`Fetcher`] trait, [`FlagSet`], [`FetchError`] and closure fetchers.
//! - `json` (feature `json`): `FlagSet::from_json`, the flag service's response shape.
//! - `http` (feature `http`, on by default, implies `json`): `HttpFetcher`, hyper + rustls
//!   (ring), with the `Retry-After`, body-limit and TLS helpers of `seawall-http`.
//! - [`metrics`]: the [`FlagObserver`] hook and fetch counters.
//! - [`snapshot`]: [`CacheSnapshot`], what an admin endpoint lists (`Serialize` with `serde`).

pub mod config;
pub mod fetcher;
pub mod host;
pub mod metrics;
pub mod snapshot;

mod cache;
mod entry;
mod error;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "json")]
mod json;

pub use cache::{FlagCache, FlagHandle};
pub use config::Builder;
pub use error::Error;
pub use fetcher::{FetchError, Fetcher, FlagSet};
#[cfg(feature = "http")]
pub use http::{HttpFetcher, DEFAULT_URL_TEMPLATE, USER_AGENT};
pub use metrics::{FetchCounts, FetchResult, FlagObserver};
pub use snapshot::{CacheSnapshot, HostSnapshot};
