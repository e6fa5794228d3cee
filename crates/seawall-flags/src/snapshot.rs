//! What the cache holds, for an admin endpoint (`GET /v1/flags`): hosts, handle counts, values,
//! age, last error and fetch counts. `Serialize` (durations as seconds) with feature `serde`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::FetchCounts;

/// Every host in a cache, sorted by host, and the cache-wide fetch counts.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CacheSnapshot {
    /// One row per cached host, sorted by host.
    pub hosts: Vec<HostSnapshot>,
    /// Fetches by result over the cache's life, evicted hosts included.
    pub fetches: FetchCounts,
}

/// One host's entry as it stands.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct HostSnapshot {
    /// The normalised `host[:port]`.
    pub host: String,
    /// Live handles; `0` while the entry waits out its idle grace.
    pub handles: usize,
    /// The last good values, by name (empty until a fetch succeeds).
    pub flags: BTreeMap<String, String>,
    /// Time since the last successful fetch; `None` while cold.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "age_seconds", serialize_with = "secs::option")
    )]
    pub age: Option<Duration>,
    /// The TTL the values were given (server's, clamped, or the default).
    #[cfg_attr(
        feature = "serde",
        serde(rename = "ttl_seconds", serialize_with = "secs::option")
    )]
    pub ttl: Option<Duration>,
    /// The values are within their TTL.
    pub fresh: bool,
    /// Time until a read starts the next fetch (end of TTL or of back-off); zero when due.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "next_fetch_in_seconds", serialize_with = "secs::plain")
    )]
    pub next_fetch_in: Duration,
    /// A fetch is in flight.
    pub fetching: bool,
    /// Failed fetches since the last success.
    pub consecutive_failures: u32,
    /// The most recent failure, kept after recovery (see `consecutive_failures`).
    pub last_error: Option<String>,
    /// Time since `last_error`.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "last_error_age_seconds", serialize_with = "secs::option")
    )]
    pub last_error_age: Option<Duration>,
    /// Time until an unused entry is evicted; `None` while handles are live.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "evicted_in_seconds", serialize_with = "secs::option")
    )]
    pub evicted_in: Option<Duration>,
    /// Fetches by result for this host.
    pub fetches: FetchCounts,
}

#[cfg(feature = "serde")]
mod secs {
    use std::time::Duration;

    pub(super) fn plain<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn option<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}
