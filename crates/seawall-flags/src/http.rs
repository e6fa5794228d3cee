//! The HTTP [`Fetcher`]: `GET` the flag service URL for a host and decode the Databricks-shaped
//! JSON, over hyper 1 with rustls (ring provider, webpki roots).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::{Error, FetchError, Fetcher, FlagSet};

/// The flag service URL the default [`FlagCache::global`](crate::FlagCache::global) uses.
pub const DEFAULT_URL_TEMPLATE: &str =
    "https://{host}/api/2.0/connector-service/feature-flags/SEAWALL/1";

/// The `user-agent` of every flag request: `seawall/<crate version>`.
pub const USER_AGENT: &str = concat!("seawall/", env!("CARGO_PKG_VERSION"));

/// The largest response body read; a flag set is a few kilobytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// Fetches `GET {url with {host} substituted}` and decodes
/// `{"flags":[{"name":"…","value":"true"}],"ttl_seconds":900}`.
///
/// A non-2xx answer is a [`FetchError::Status`] carrying its `Retry-After` (in seconds);
/// connection failures are [`FetchError::Transport`], bad JSON [`FetchError::Decode`].
/// Connections are pooled per flag service host.
///
/// ```
/// use seawall_flags::{FlagCache, HttpFetcher};
/// use hyper::header::{HeaderValue, AUTHORIZATION};
///
/// let fetcher = HttpFetcher::new("https://{host}/api/2.0/connector-service/feature-flags/SEAWALL/1")?
///     .with_header(AUTHORIZATION, HeaderValue::from_static("Bearer dapi-example"));
/// assert_eq!(
///     fetcher.url("db.example:8443"),
///     "https://db.example:8443/api/2.0/connector-service/feature-flags/SEAWALL/1",
/// );
/// let cache = FlagCache::builder(fetcher).build()?;
/// # drop(cache);
/// # Ok::<(), seawall_flags::Error>(())
/// ```
#[derive(Clone)]
pub struct HttpFetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    template: Arc<str>,
    headers: Arc<HeaderMap>,
}

impl std::fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

impl HttpFetcher {
    /// A fetcher for `url_template`, an `http` or `https` URL in which `{host}` stands for the
    /// normalised `host[:port]`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] if the template does not make an `http`/`https` URL;
    /// [`Error::Tls`] if rustls refuses its configuration.
    pub fn new(url_template: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: url_template.to_owned(),
            reason,
        };
        let probe: Uri = url_template
            .replace("{host}", "example.com")
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| invalid(e.to_string()))?;
        if !matches!(probe.scheme_str(), Some("http" | "https")) {
            return Err(invalid("the scheme must be http or https".to_owned()));
        }
        if probe.authority().is_none() {
            return Err(invalid("no host".to_owned()));
        }
        // hyper-rustls sets the ALPN protocols itself (`enable_http1`).
        let tls =
            seawall_http::tls::client_config(None, &[]).map_err(|e| Error::Tls(e.to_string()))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(HttpFetcher {
            client,
            template: url_template.into(),
            headers: Arc::default(),
        })
    }

    /// Adds a header to every request, e.g. `authorization` (mark secrets with
    /// [`HeaderValue::set_sensitive`]).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        Arc::make_mut(&mut self.headers).append(name, value);
        self
    }

    /// The URL fetched for `host` (already normalised).
    pub fn url(&self, host: &str) -> String {
        self.template.replace("{host}", host)
    }
}

impl Fetcher for HttpFetcher {
    async fn fetch(&self, host: &str) -> Result<FlagSet, FetchError> {
        let url = self.url(host);
        let uri: Uri = url
            .parse()
            .map_err(|e| FetchError::Transport(format!("bad URL {url:?}: {e}")))?;
        let mut request = Request::get(uri)
            .body(Empty::new())
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in self.headers.iter() {
            headers.append(name, value.clone());
        }

        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Transport(describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
                retry_after: seawall_http::retry_after(response.headers(), SystemTime::now()),
            });
        }
        let body = seawall_http::read_limited(response.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|e| FetchError::Transport(describe(&e)))?;
        FlagSet::from_json(&body)
    }
}

/// An error with its sources, since hyper's outermost messages say little.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_must_be_http_urls() {
        assert!(HttpFetcher::new("https://{host}/flags").is_ok());
        assert!(HttpFetcher::new("http://127.0.0.1:9/flags/{host}").is_ok());
        for bad in ["ftp://{host}/x", "/{host}/flags", "https://exa mple/{host}"] {
            assert!(
                matches!(HttpFetcher::new(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
        assert_eq!(USER_AGENT, format!("seawall/{}", env!("CARGO_PKG_VERSION")));
    }
}
