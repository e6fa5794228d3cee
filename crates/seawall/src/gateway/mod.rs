//! The HTTP gateway (DESIGN §2): `/{provider}/{rest}` → `{base_url}/{rest}` behind a circuit
//! breaker per provider × endpoint (× model), with client auth, fallbacks and streamed bodies.
//!
//! A request is authenticated (`auth.rs`), routed (`route.rs`), its body bounded or buffered
//! (`request.rs`), admitted by a breaker or a fallback's (`admit.rs`), sent with the provider's
//! timeouts through one pooled client (`client.rs`, `forward.rs`), and its response judged
//! (`classify.rs`) and streamed back with the permit held to the end (`body.rs`, `sse.rs`).
//! What the gateway answers itself is in `reply.rs`.

mod admit;
mod auth;
mod body;
mod classify;
mod client;
mod error;
mod forward;
mod headers;
mod reply;
mod request;
mod route;
mod sse;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};

pub use error::GatewayError;

use self::admit::Refused;
use self::auth::ClientAuth;
use self::client::UpstreamClient;
use self::forward::Forwarder;
use self::request::BodyError;
use self::route::Route;
use self::upstream::Upstream;
use crate::breakers::Breakers;
use crate::config::{Config, Secrets};
use crate::http::{Body, BoxError};
use crate::metrics::Metrics;

/// The gateway: cheap to clone, one per daemon, shared by every connection.
///
/// ```no_run
/// # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use seawall::breakers::{tokio_clock, Breakers};
/// use seawall::gateway::Gateway;
/// use seawall::metrics::Metrics;
///
/// let yaml = "providers: [{ name: anthropic, kind: anthropic, base_url: 'https://api.anthropic.com' }]";
/// let config = seawall::config::parse(yaml)?;
/// let secrets = config.resolve_secrets_from_env()?;
/// let metrics = Arc::new(Metrics::new());
/// let breakers = Breakers::new(&config.providers, tokio_clock(), metrics.clone())
///     .map_err(|(provider, e)| format!("provider {provider}: {e}"))?;
/// let gateway = Gateway::new(&config, &secrets, Arc::new(breakers), metrics)?;
/// // Per request, in a hyper service: `gateway.handle(request, remote_addr).await`.
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

struct Shared {
    /// Providers by route name.
    upstreams: HashMap<String, Upstream>,
    breakers: Arc<Breakers>,
    metrics: Arc<Metrics>,
    /// One connection pool for every upstream.
    client: UpstreamClient,
    auth: ClientAuth,
    /// `server.max_body`.
    max_body: u64,
}

impl Gateway {
    /// A gateway for `config`'s providers, with keys and client tokens from `secrets`, using
    /// `breakers` (built from the same providers) and recording into `metrics`.
    pub fn new(
        config: &Config,
        secrets: &Secrets,
        breakers: Arc<Breakers>,
        metrics: Arc<Metrics>,
    ) -> Result<Gateway, GatewayError> {
        let mut upstreams = HashMap::new();
        for p in &config.providers {
            if breakers.provider(&p.name).is_none() {
                return Err(GatewayError::MissingBreakers {
                    provider: p.name.clone(),
                });
            }
            let upstream = Upstream::new(p, secrets.provider_keys.get(&p.name))?;
            upstreams.insert(p.name.clone(), upstream);
        }
        let connect: Vec<_> = upstreams
            .values()
            .map(|u| (u.base(), u.timeouts.connect))
            .collect();
        Ok(Gateway {
            shared: Arc::new(Shared {
                client: client::build(&connect)?,
                upstreams,
                breakers,
                metrics,
                auth: ClientAuth::new(config, secrets),
                max_body: config.server.max_body,
            }),
        })
    }

    /// Serves one client request from `remote`. Never fails: problems become JSON responses.
    ///
    /// The server passes `hyper::body::Incoming`; any streaming body works.
    pub async fn handle<B>(&self, req: Request<B>, remote: SocketAddr) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let s = &*self.shared;
        if !s.auth.admits(req.headers()) {
            return reply::unauthorized();
        }
        let (parts, body) = req.into_parts();
        let uri = parts.uri.clone();
        let Some(route) = Route::parse(&uri) else {
            return reply::unknown_provider(None);
        };
        let Some(primary) = s.upstreams.get(route.provider) else {
            return reply::unknown_provider(Some(route.provider));
        };
        if request::declared_length(&parts.headers).is_some_and(|n| n > s.max_body) {
            return reply::too_large(s.max_body);
        }
        let (body, model) = if s.wants_model(primary) {
            match request::buffered(body, s.max_body).await {
                Ok(read) => read,
                Err(BodyError::TooLarge) => return reply::too_large(s.max_body),
                Err(BodyError::Unreadable) => {
                    return reply::bad_request("the request body could not be read")
                }
            }
        } else {
            (request::streamed(body, s.max_body), None)
        };
        let call = admit::admit(
            &s.upstreams,
            &s.breakers,
            primary,
            route.endpoint,
            model.as_deref(),
        );
        let call = match call {
            Ok(call) => call,
            Err(Refused::Rejected(rejected)) => {
                return reply::rejection(primary.kind, &primary.name, route.endpoint, &rejected)
            }
            Err(Refused::NoBreakers) => return reply::unknown_provider(Some(route.provider)),
        };
        let forwarder = Forwarder {
            client: &s.client,
            metrics: &s.metrics,
            auth_on: s.auth.is_on(),
            max_body: s.max_body,
        };
        forwarder
            .forward(call, parts, body, route, remote.ip())
            .await
    }
}

impl Shared {
    /// Whether the body must be read for its `model` (the provider or a fallback is per model).
    fn wants_model(&self, primary: &Upstream) -> bool {
        primary.per_model
            || primary
                .fallbacks
                .iter()
                .any(|f| self.upstreams.get(f).is_some_and(|u| u.per_model))
    }
}
