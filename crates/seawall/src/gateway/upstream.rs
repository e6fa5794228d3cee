//! One provider as the gateway uses it: where to send requests, which statuses are failures,
//! which key to inject, where to fall back.

use std::time::Duration;

use http::header::{HeaderName, AUTHORIZATION};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, StatusCode, Uri};

use super::GatewayError;
use crate::config::{ProviderConfig, ProviderKind, ProviderTimeouts, Secret};

/// `x-api-key`, Anthropic's key header (and an accepted client credential header).
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A configured provider, prepared for forwarding.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
    scheme: Scheme,
    authority: Authority,
    /// The base URL's path without a trailing `/` (empty for a bare host).
    prefix: String,
    /// Statuses counted as breaker failures.
    failure_status: Vec<u16>,
    pub(crate) timeouts: ProviderTimeouts,
    /// Header carrying the provider key upstream, marked sensitive, if a key is configured.
    pub(crate) key: Option<(HeaderName, HeaderValue)>,
    pub(crate) per_model: bool,
    pub(crate) fallbacks: Vec<String>,
}

impl Upstream {
    /// Prepares `config`, with its key if one is configured.
    pub(crate) fn new(config: &ProviderConfig, key: Option<&Secret>) -> Result<Self, GatewayError> {
        let invalid = |reason: &str| GatewayError::InvalidBaseUrl {
            provider: config.name.clone(),
            url: config.base_url.clone(),
            reason: reason.to_owned(),
        };
        let uri: Uri = config
            .base_url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| invalid("no scheme"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(invalid("the scheme must be http or https"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        let key = key
            .map(|secret| {
                let (name, value) = match config.kind {
                    ProviderKind::Anthropic => (X_API_KEY, secret.expose().to_owned()),
                    _ => (AUTHORIZATION, format!("Bearer {}", secret.expose())),
                };
                let mut value =
                    HeaderValue::try_from(value).map_err(|_| GatewayError::InvalidApiKey {
                        provider: config.name.clone(),
                    })?;
                value.set_sensitive(true);
                Ok::<_, GatewayError>((name, value))
            })
            .transpose()?;
        Ok(Upstream {
            name: config.name.clone(),
            kind: config.kind,
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            failure_status: config
                .failure_status
                .clone()
                .unwrap_or_else(|| default_failure_status(config.kind).to_vec()),
            timeouts: config.timeouts.clone(),
            key,
            per_model: config.per_model,
            fallbacks: config.fallbacks.clone(),
        })
    }

    /// The upstream URL for `endpoint` (with its leading `/`) and `query`.
    pub(crate) fn uri(&self, endpoint: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let path = match query {
            Some(q) => format!("{}{endpoint}?{q}", self.prefix),
            None => format!("{}{endpoint}", self.prefix),
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(path)?)
            .build()
    }

    /// The base URL, for the connector's timeout table.
    pub(crate) fn base(&self) -> Uri {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .expect("scheme and authority come from a valid URI")
    }

    /// Whether a response with `status` counts as a breaker failure.
    pub(crate) fn is_failure(&self, status: StatusCode) -> bool {
        self.failure_status.contains(&status.as_u16())
    }

    /// Time allowed from handing the request to the pool until response headers: a new
    /// connection's set-up counts against `connect`, the wait for headers against `first_byte`.
    pub(crate) fn headers_deadline(&self) -> Duration {
        self.timeouts.connect + self.timeouts.first_byte
    }
}

/// The statuses each kind counts as failures (DESIGN §2).
fn default_failure_status(kind: ProviderKind) -> &'static [u16] {
    match kind {
        ProviderKind::Anthropic => &[429, 500, 503, 504, 529],
        ProviderKind::Openai => &[429, 500, 503, 504],
        ProviderKind::Generic => &[429, 502, 503, 504],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn upstream(base: &str, kind: &str) -> Upstream {
        let yaml = format!("providers: [{{ name: p, kind: {kind}, base_url: '{base}' }}]");
        Upstream::new(&parse(&yaml).unwrap().providers[0], None).unwrap()
    }

    #[test]
    fn joins_base_path_endpoint_and_query() {
        let u = upstream("https://api.example.com/openai/", "openai");
        assert_eq!(
            u.uri("/v1/chat/completions", Some("a=1"))
                .unwrap()
                .to_string(),
            "https://api.example.com/openai/v1/chat/completions?a=1"
        );
        let u = upstream("http://127.0.0.1:8000", "generic");
        assert_eq!(
            u.uri("/x", None).unwrap().to_string(),
            "http://127.0.0.1:8000/x"
        );
    }

    #[test]
    fn failure_classes_follow_the_kind() {
        let a = upstream("https://a.example", "anthropic");
        assert!(a.is_failure(StatusCode::from_u16(529).unwrap()));
        assert!(!a.is_failure(StatusCode::BAD_GATEWAY));
        let g = upstream("https://g.example", "generic");
        assert!(g.is_failure(StatusCode::BAD_GATEWAY));
        assert!(!g.is_failure(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
