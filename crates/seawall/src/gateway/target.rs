//! One target of a provider (`providers[].targets[]`, or the provider's own `base_url`):
//! where its requests go, which key they carry, its connection pool, its load and what its
//! answers said about its rate limits.

use std::sync::Arc;

use http::header::{HeaderName, AUTHORIZATION};
use http::uri::Scheme;
use http::{HeaderValue, Uri};

use super::metrics::Families;
use super::picker::Load;
use super::ratelimit::RateLimits;
use super::warn::{WarnLimit, WARN_PERIOD};
use super::GatewayError;
use crate::config::{ProviderConfig, ProviderKind, Secret, Target as TargetConfig};
use crate::http1::outbound::{Pool, Pools};

/// `x-api-key`, Anthropic's key header (and an accepted client credential header).
pub(crate) const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// A target, prepared for forwarding.
pub(crate) struct Target {
    /// `""` for a provider given by `base_url`.
    pub(crate) name: String,
    /// Idle connections to the base URL's destination (shared with others sent there).
    pub(crate) pool: Arc<Pool>,
    /// The base URL's path without a trailing `/` (empty for a bare host).
    prefix: String,
    /// Header carrying the key upstream, marked sensitive, if a key is configured.
    pub(crate) key: Option<(HeaderName, HeaderValue)>,
    /// `x-seawall-target` for answers it served, when the provider has several targets.
    pub(crate) served_by: Option<HeaderValue>,
    /// Requests in flight, weight, recovery ramp.
    pub(crate) load: Arc<Load>,
    /// What its answers said about its quota (`rate_limit_headers`).
    pub(crate) limits: Option<RateLimits>,
    /// Bounds the warn lines of requests it left unanswered (one per `WARN_PERIOD`).
    pub(crate) unanswered: WarnLimit,
}

impl Target {
    /// Prepares `target` of `provider`, with its key if one is configured.
    pub(crate) fn new(
        provider: &ProviderConfig,
        target: &TargetConfig<'_>,
        key: Option<&Secret>,
        pools: &Pools,
        families: &Families,
    ) -> Result<Self, GatewayError> {
        let invalid = |reason: &str| GatewayError::InvalidBaseUrl {
            provider: provider.name.clone(),
            url: target.base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = target
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
                let (name, value) = match provider.kind {
                    ProviderKind::Anthropic => (X_API_KEY, secret.expose().to_owned()),
                    _ => (AUTHORIZATION, format!("Bearer {}", secret.expose())),
                };
                let mut value =
                    HeaderValue::try_from(value).map_err(|_| GatewayError::InvalidApiKey {
                        provider: provider.name.clone(),
                    })?;
                value.set_sensitive(true);
                Ok::<_, GatewayError>((name, value))
            })
            .transpose()?;
        let served_by = (!target.name.is_empty())
            .then(|| HeaderValue::try_from(target.name.as_str()).ok())
            .flatten();
        let limits = provider.rate_limit_headers.then(|| {
            let gauges = families.rate_limit_gauges(&provider.name, &target.name);
            RateLimits::new(provider.kind, gauges)
        });
        Ok(Target {
            name: target.name.clone(),
            pool,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            key,
            served_by,
            load: Arc::new(Load::new(target.weight)),
            limits,
            unanswered: WarnLimit::new(WARN_PERIOD),
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
}
