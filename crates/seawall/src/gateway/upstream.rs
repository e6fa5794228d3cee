//! One provider as the gateway uses it: where to send requests, which statuses are failures,
//! which key to inject, where to fall back.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{HeaderName, AUTHORIZATION};
use http::uri::Scheme;
use http::{HeaderValue, StatusCode, Uri};

use super::metrics::{Families, ProviderMetrics};
use super::{path, GatewayError};
use crate::config::{EndpointTemplate, ProviderConfig, ProviderKind, ProviderTimeouts, Secret};
use crate::http1::outbound::{Pool, Pools};

/// `x-api-key`, Anthropic's key header (and an accepted client credential header).
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A configured provider, prepared for forwarding.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) kind: ProviderKind,
    /// Idle connections to the base URL's destination (shared with other providers there).
    pub(crate) pool: Arc<Pool>,
    /// The base URL's path without a trailing `/` (empty for a bare host).
    prefix: String,
    /// Statuses counted as breaker failures.
    pub(crate) failure_status: Vec<u16>,
    pub(crate) timeouts: ProviderTimeouts,
    /// Header carrying the provider key upstream, marked sensitive, if a key is configured.
    pub(crate) key: Option<(HeaderName, HeaderValue)>,
    pub(crate) per_model: bool,
    pub(crate) fallbacks: Vec<String>,
    /// Client disconnects and WebSocket tunnels of this provider.
    pub(crate) metrics: ProviderMetrics,
    /// `endpoints`: templates tried before the id heuristic when labelling an endpoint.
    endpoints: Vec<EndpointTemplate>,
}

impl Upstream {
    /// Prepares `config`, with its key if one is configured.
    pub(crate) fn new(
        config: &ProviderConfig,
        key: Option<&Secret>,
        pools: &Pools,
        families: &Families,
    ) -> Result<Self, GatewayError> {
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
        if uri.authority().is_none() {
            return Err(invalid("no host"));
        }
        let pool = pools.pool_for(&uri).map_err(|reason| invalid(&reason))?;
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
            pool,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            failure_status: config
                .failure_status
                .clone()
                .unwrap_or_else(|| default_failure_status(config.kind).to_vec()),
            timeouts: config.timeouts.clone(),
            key,
            per_model: config.per_model,
            fallbacks: config.fallbacks.clone(),
            metrics: families.of(&config.name),
            endpoints: config.endpoints.clone(),
        })
    }

    /// The request target for the normal `path` (with its leading `/`) and `query`, in pieces
    /// to write one after the other: the base URL's path, the path, `?` and the query.
    pub(crate) fn target<'a>(&'a self, path: &'a str, query: Option<&'a str>) -> [&'a str; 4] {
        match query {
            Some(q) => [&self.prefix, path, "?", q],
            None => [&self.prefix, path, "", ""],
        }
    }

    /// The endpoint label of the normal request `path`: this provider's breaker key and the
    /// `endpoint` of its metric series (see [`path::endpoint`]).
    pub(crate) fn endpoint<'a>(&'a self, path: &'a str) -> Cow<'a, str> {
        path::endpoint(path, &self.endpoints)
    }

    /// Whether a response with `status` counts as a breaker failure.
    pub(crate) fn is_failure(&self, status: StatusCode) -> bool {
        self.failure_status.contains(&status.as_u16())
    }
}

/// The statuses each kind counts as failures (the README's provider table).
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
        let pools = Pools::new().unwrap();
        let families = Families::register(&crate::metrics::Metrics::new());
        Upstream::new(&parse(&yaml).unwrap().providers[0], None, &pools, &families).unwrap()
    }

    #[test]
    fn joins_base_path_endpoint_and_query() {
        let u = upstream("https://api.example.com/openai/", "openai");
        assert_eq!(
            u.target("/v1/chat/completions", Some("a=1")).concat(),
            "/openai/v1/chat/completions?a=1"
        );
        let u = upstream("http://127.0.0.1:8000", "generic");
        assert_eq!(u.target("/x", None).concat(), "/x");
    }

    #[test]
    fn endpoints_follow_the_providers_own_templates() {
        let yaml = "providers: [{ name: p, kind: generic, base_url: 'http://127.0.0.1:1', \
                    endpoints: ['/v1/items/{item}'] }]";
        let pools = Pools::new().unwrap();
        let families = Families::register(&crate::metrics::Metrics::new());
        let u = Upstream::new(&parse(yaml).unwrap().providers[0], None, &pools, &families).unwrap();
        assert_eq!(u.endpoint("/v1/items/short/"), "/v1/items/{item}");
        assert_eq!(u.endpoint("/v1/other/123"), "/v1/other/{id}");
        assert_eq!(
            upstream("http://127.0.0.1:1", "generic").endpoint("/v1/items/short"),
            "/v1/items/short"
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
