//! The HTTP gateway (DESIGN §2): `/{provider}/{rest}` → `{base_url}/{rest}` behind a circuit
//! breaker per provider × endpoint (× model), with client auth, fallbacks and streamed bodies.
//!
//! A request is authenticated (`auth.rs`), routed (`route.rs`), its body bounded or buffered
//! (`request.rs`), admitted by a breaker or a fallback's (`admit.rs`), sent with the provider's
//! timeouts through one pooled client (`client.rs`, `forward.rs`), and its response judged
//! (`classify.rs`) and streamed back with the permit held to the end (`body.rs`, `sse.rs`).
//! What the gateway answers itself is in `reply.rs`. While global health fails, requests are
//! shed before any breaker or upstream is asked; a request event per decided request goes to
//! the telemetry pipeline (see [`crate::telemetry`]).

mod admit;
mod auth;
mod body;
mod classify;
pub(crate) mod client;
mod error;
mod forward;
mod headers;
mod reply;
mod request;
mod route;
mod sse;
mod upstream;

use foldhash::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use tokio::time::Instant;

pub use error::GatewayError;

use self::admit::Refused;
use self::auth::ClientAuth;
use self::client::Pools;
use self::forward::Forwarder;
use self::request::BodyError;
use self::route::Route;
use self::upstream::Upstream;
use crate::breakers::Breakers;
use crate::config::{Config, Secrets};
use crate::h1::fields;
use crate::health::{Edge, Health};
use crate::http::{Body, BoxError};
use crate::metrics::Metrics;
use crate::telemetry::{Outcome, RequestEvent, Telemetry};

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
/// // Per request (for example from `seawall::server::serve`): `gateway.handle(request, remote_addr).await`.
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
    /// Global health: while it fails, requests are shed. `None`: never shed.
    health: Option<Arc<Health>>,
    /// Where request events go. `None`: no events.
    telemetry: Option<Arc<Telemetry>>,
}

struct Shared {
    /// Providers by route name.
    upstreams: HashMap<String, Upstream>,
    breakers: Arc<Breakers>,
    metrics: Arc<Metrics>,
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
        let mut upstreams = HashMap::default();
        let mut pools = Pools::new()?;
        for p in &config.providers {
            if breakers.provider(&p.name).is_none() {
                return Err(GatewayError::MissingBreakers {
                    provider: p.name.clone(),
                });
            }
            let upstream = Upstream::new(p, secrets.provider_keys.get(&p.name), &mut pools)?;
            upstreams.insert(p.name.clone(), upstream);
        }
        Ok(Gateway {
            shared: Arc::new(Shared {
                upstreams,
                breakers,
                metrics,
                auth: ClientAuth::new(config, secrets),
                max_body: config.server.max_body,
            }),
            health: None,
            telemetry: None,
        })
    }

    /// Sheds requests (provider-shaped `503`) while `health` fails.
    pub fn with_health(mut self, health: Arc<Health>) -> Self {
        self.health = Some(health);
        self
    }

    /// Emits a request event per decided request through `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Closes pooled upstream connections that idled too long or that their server closed;
    /// call it now and then (the daemon does on every breaker tick).
    pub fn sweep_idle_connections(&self) {
        for upstream in self.shared.upstreams.values() {
            upstream.pool.sweep();
        }
    }

    /// `None` when `headers` carry an accepted client credential (or client auth is off),
    /// else the `401` to answer: for other routes of the gateway listener (`/ingest/…`).
    pub fn refuse_client(&self, headers: &http::HeaderMap) -> Option<Response<Body>> {
        (!self.shared.auth.admits(headers)).then(reply::unauthorized)
    }

    /// Serves one client request from `remote`. Never fails: problems become JSON responses.
    ///
    /// Any streaming body works (the server passes its own). With telemetry,
    /// the request's event is emitted once the response headers are known (a streamed body
    /// may still be flowing).
    pub async fn handle<B>(&self, req: Request<B>, remote: SocketAddr) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut resp = self.handle_passing_fields(req, remote).await;
        fields::merge_into_map(&mut resp);
        resp
    }

    /// [`Gateway::handle`], except that an upstream response's fields stay as they arrived,
    /// in the response's extensions ([`fields::WireHeaders`]), for `crate::server` to write out
    /// without building a header map.
    pub(crate) async fn handle_passing_fields<B>(
        &self,
        req: Request<B>,
        remote: SocketAddr,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // One `serve` call site: each `.await` of it would take its own room in this future,
        // and every request moves this future whole.
        let started = self.telemetry.as_ref().map(|_| Instant::now());
        let mut event = None;
        let resp = self.serve(req, remote, &mut event).await;
        if let (Some(telemetry), Some(started), Some(event)) = (&self.telemetry, started, event) {
            telemetry.emit(event, resp.status().as_u16(), started.elapsed());
        }
        resp
    }

    /// Serves one request, filling `event` (when telemetry wants one for its provider) as
    /// the request is decided.
    async fn serve<B>(
        &self,
        req: Request<B>,
        remote: SocketAddr,
        event: &mut Option<RequestEvent>,
    ) -> Response<Body>
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
        if self
            .telemetry
            .as_ref()
            .is_some_and(|t| t.enabled_for(&primary.name))
        {
            *event = Some(RequestEvent::new(&primary.name, route.endpoint));
        }
        if let Some(health) = &self.health {
            if let Some(check) = health.shed(Edge::Gateway) {
                decide(event, Outcome::Shed, None);
                let secs = health.retry_after_secs();
                return reply::shed(primary.kind, &primary.name, check, secs);
            }
        }
        if request::declared_length(&parts.headers).is_some_and(|n| n > s.max_body) {
            return reply::too_large(s.max_body);
        }
        let (body, model) = if s.wants_model(primary) {
            // Boxed: per-model reading is the rarer path; its state stays off the hot future.
            match Box::pin(request::buffered(body, s.max_body)).await {
                Ok(read) => read,
                Err(BodyError::TooLarge) => return reply::too_large(s.max_body),
                Err(BodyError::Unreadable) => {
                    return reply::bad_request("the request body could not be read")
                }
            }
        } else {
            (request::streamed(body, s.max_body), None)
        };
        if let Some(e) = event.as_mut() {
            e.model.clone_from(&model);
        }
        let call = admit::admit(
            &s.upstreams,
            &s.breakers,
            primary,
            route.endpoint,
            model.as_deref(),
        );
        let call = match call {
            Ok(call) => call,
            Err(Refused::Rejected(rejected, state)) => {
                decide(event, Outcome::Rejected, Some(state.as_str()));
                return reply::rejection(primary.kind, &primary.name, route.endpoint, &rejected);
            }
            Err(Refused::NoBreakers) => return reply::unknown_provider(Some(route.provider)),
        };
        let forwarder = Forwarder {
            metrics: &s.metrics,
            auth_on: s.auth.is_on(),
            max_body: s.max_body,
        };
        // Read again once the response is known: the call may have tripped it.
        let breaker = event.is_some().then(|| call.permit.breaker().clone());
        let outcome = if call.fallback {
            Outcome::Fallback
        } else {
            Outcome::Forwarded
        };
        let resp = forwarder
            .forward(call, parts, body, route, remote.ip())
            .await;
        if let Some(breaker) = breaker {
            decide(event, outcome, Some(breaker.state().as_str()));
        }
        resp
    }
}

/// Records how the request was decided in its event, if it has one.
fn decide(event: &mut Option<RequestEvent>, outcome: Outcome, breaker_state: Option<&'static str>) {
    if let Some(e) = event.as_mut() {
        e.outcome = Some(outcome);
        e.breaker_state = breaker_state;
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
