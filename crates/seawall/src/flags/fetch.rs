//! Flag sets fetched over the daemon's own upstream client: the flag service's host gets a
//! pool like any provider's (pooled connections, TLS with the webpki roots, timeouts), so the
//! daemon runs one HTTP client stack for all its outbound calls.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Uri};
use seawall_flags::{FetchError, Fetcher, FlagSet};

use crate::http1::outbound::{Outgoing, Pools};

/// The largest flag service answer read; a flag set is a few kilobytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// `GET {url with {host} substituted}` through the daemon's pools.
pub(crate) struct PooledFetcher {
    pools: Arc<Pools>,
    template: String,
    /// Bounds connecting and the wait for the answer's head (the cache bounds the whole fetch).
    timeout: Duration,
    headers: HeaderMap,
}

impl PooledFetcher {
    /// A fetcher for `template`, an `http(s)` URL in which `{host}` stands for the host.
    pub(crate) fn new(
        template: &str,
        pools: Arc<Pools>,
        timeout: Duration,
    ) -> Result<Self, seawall_flags::Error> {
        let invalid = |reason: &str| seawall_flags::Error::InvalidUrl {
            url: template.to_owned(),
            reason: reason.to_owned(),
        };
        let probe: Uri = template
            .replace("{host}", "example.com")
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        if !matches!(probe.scheme_str(), Some("http" | "https")) {
            return Err(invalid("the scheme must be http or https"));
        }
        if probe.authority().is_none() {
            return Err(invalid("no host"));
        }
        let mut headers = HeaderMap::new();
        let agent = concat!("seawall/", env!("CARGO_PKG_VERSION"));
        headers.insert(USER_AGENT, HeaderValue::from_static(agent));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Ok(PooledFetcher {
            pools,
            template: template.to_owned(),
            timeout,
            headers,
        })
    }
}

impl Fetcher for PooledFetcher {
    async fn fetch(&self, host: &str) -> Result<FlagSet, FetchError> {
        let url = self.template.replace("{host}", host);
        let uri: Uri = url
            .parse()
            .map_err(|e| FetchError::Transport(format!("bad URL {url:?}: {e}")))?;
        let pool = self.pools.pool_for(&uri).map_err(FetchError::Transport)?;
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Outgoing {
            method: &Method::GET,
            target: [target, "", "", ""],
            headers: &self.headers,
            upgrade: None,
        };
        let response = pool
            .send(request, Bytes::new(), self.timeout, self.timeout)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        if !response.status.is_success() {
            return Err(FetchError::Status {
                status: response.status.as_u16(),
                retry_after: seawall_http::retry_after(&response.headers, SystemTime::now()),
            });
        }
        let body = seawall_http::read_limited(response.body, MAX_BODY_BYTES)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        FlagSet::from_json(&body)
    }
}
