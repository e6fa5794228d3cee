//! The HTTP gateway: `/{provider}/{rest}` → `{base_url}/{rest}` behind a circuit
//! breaker per provider × endpoint (× model), with client auth, fallbacks and streamed bodies.
//!
//! A request is authenticated (`auth.rs`), routed with its path in normal form (`route.rs`,
//! `path.rs`, which also makes the bounded endpoint label), its body bounded or buffered
//! (`request.rs`), admitted by a breaker or a fallback's (`admit.rs`), sent with the provider's
//! timeouts through the daemon's pooled client (`crate::http1::outbound`, `forward.rs`), given
//! the breaker's verdict in one place (`verdict.rs`, with `quota.rs` for OpenAI's
//! `insufficient_quota`), and streamed back with the permit held to the end (`body.rs`,
//! `sse.rs`). What the gateway answers itself is in `answers.rs`. While global health
//! fails, requests are shed before any breaker or upstream is asked; a request event per
//! decided request goes to the telemetry pipeline (see [`crate::telemetry`]).

mod admit;
mod answers;
mod auth;
mod body;
mod budget;
mod error;
mod forward;
mod headers;
mod metrics;
mod path;
mod picker;
mod quota;
mod ratelimit;
mod request;
mod route;
mod sse;
mod target;
mod upstream;
mod verdict;
mod warn;
mod websocket;

use arc_swap::ArcSwap;
use foldhash::HashMap;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use seawall_breaker::CircuitBreaker;
use tokio::time::Instant;

pub use error::GatewayError;

use self::admit::{Candidates, Refused};
use self::auth::ClientAuth;
use self::forward::{Attempt, Forwarder};
use self::request::BodyError;
use self::route::Route;
use self::upstream::Upstream;
use crate::breakers::Breakers;
use crate::config::{Config, FailoverOn, Secrets};
use crate::health::{Edge, Health};
use crate::http1::outbound::Pools;
use crate::message::BoxError;
use crate::message::{Reply, UpgradeRequest};
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
    /// What a request is served with; a reload swaps it, a request keeps the one it began
    /// with to its end.
    shared: Arc<ArcSwap<Shared>>,
    /// Global health: while it fails, requests are shed. `None`: never shed.
    health: Option<Arc<Health>>,
    /// Where request events go. `None`: no events.
    telemetry: Option<Arc<Telemetry>>,
}

struct Shared {
    /// Providers by route name (an unchanged one is kept across reloads).
    upstreams: HashMap<String, Arc<Upstream>>,
    /// The daemon's upstream connection pools (shared with the other outbound calls).
    pools: Arc<Pools>,
    /// The gateway's metric families (registered once).
    families: Arc<metrics::Families>,
    metrics: Arc<Metrics>,
    auth: ClientAuth,
    /// `server.max_body`.
    max_body: u64,
}

/// What [`Gateway::reload`] did to the providers, by name.
#[derive(Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct GatewayReload {
    /// Providers served as before (their targets' state, picker and retry budget kept).
    pub kept: Vec<String>,
    /// Providers prepared anew (new, or more than their breaker settings changed).
    pub rebuilt: Vec<String>,
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
        let pools = Arc::new(Pools::new()?);
        Self::with_pools(config, secrets, breakers, metrics, pools)
    }

    /// [`Gateway::new`], sending through `pools` (the daemon shares one set).
    pub(crate) fn with_pools(
        config: &Config,
        secrets: &Secrets,
        breakers: Arc<Breakers>,
        metrics: Arc<Metrics>,
        pools: Arc<Pools>,
    ) -> Result<Gateway, GatewayError> {
        let families = Arc::new(metrics::Families::register(&metrics));
        let (shared, _) =
            Shared::build(config, secrets, &breakers, metrics, pools, families, None)?;
        Ok(Gateway {
            shared: Arc::new(ArcSwap::from_pointee(shared)),
            health: None,
            telemetry: None,
        })
    }

    /// Serves `config` from now on (requests in flight finish with what they began with):
    /// providers whose only change is their breaker settings, which `breakers` already
    /// applied, are kept as they are; the others are prepared anew; client tokens and
    /// `server.max_body` are `config`'s. Nothing changes on an error.
    pub fn reload(
        &self,
        config: &Config,
        secrets: &Secrets,
        breakers: &Breakers,
    ) -> Result<GatewayReload, GatewayError> {
        let current = self.shared.load_full();
        let (shared, report) = Shared::build(
            config,
            secrets,
            breakers,
            current.metrics.clone(),
            current.pools.clone(),
            current.families.clone(),
            Some(&current.upstreams),
        )?;
        self.shared.store(Arc::new(shared));
        Ok(report)
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
        self.shared.load().pools.sweep();
    }

    /// `None` when `headers` carry an accepted client credential (or client auth is off),
    /// else the `401` to answer: for other routes of the gateway listener (`/ingest/…`).
    pub fn refuse_client(&self, headers: &http::HeaderMap) -> Option<Reply> {
        (!self.shared.load().auth.admits(headers)).then(|| answers::unauthorized().into())
    }

    /// Serves one client request from `remote`. Never fails: problems become JSON replies.
    ///
    /// Any streaming body works (the server passes its own). With telemetry, the request's
    /// event is emitted once the response head is known (a streamed body may still flow).
    pub async fn handle<B>(&self, req: Request<B>, remote: SocketAddr) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let Some(telemetry) = &self.telemetry else {
            return self.serve(req, remote).await.0;
        };
        let started = Instant::now();
        let (reply, event) = self.serve(req, remote).await;
        if let Some(event) = event {
            telemetry.emit(event, reply.status().as_u16(), started.elapsed());
        }
        reply
    }

    /// Serves one request; with it, its event when telemetry wants one for its provider and
    /// the request reached a decision (shed, rejected, forwarded).
    async fn serve<B>(&self, req: Request<B>, remote: SocketAddr) -> (Reply, Option<RequestEvent>)
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let s = self.shared.load_full();
        if !s.auth.admits(req.headers()) {
            return (answers::unauthorized().into(), None);
        }
        let (parts, body) = req.into_parts();
        let uri = parts.uri.clone();
        let route = match Route::parse(&uri) {
            Ok(route) => route,
            Err(unrouted) => return (unrouted.answer(&uri, &s.metrics).into(), None),
        };
        let Some(primary) = s.upstreams.get(route.provider()) else {
            return (
                answers::unknown_provider(Some(route.provider())).into(),
                None,
            );
        };
        // Dropped before it ends (the client went away; the transport drops the request's
        // future, and with it the upstream call): counted for the provider.
        let mut leaving = Leaving(Some(&primary.metrics.disconnects));
        let served = self
            .serve_routed(&s, parts, body, route, primary, remote)
            .await;
        leaving.0 = None;
        served
    }

    /// Serves a request routed to `primary`.
    async fn serve_routed<B>(
        &self,
        s: &Shared,
        parts: http::request::Parts,
        body: B,
        route: Route<'_>,
        primary: &Upstream,
        remote: SocketAddr,
    ) -> (Reply, Option<RequestEvent>)
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let endpoint = primary.endpoint(route.path());
        let wants_event = self
            .telemetry
            .as_ref()
            .is_some_and(|t| t.enabled_for(&primary.name));
        let event = |model: Option<String>, outcome, breaker_state: Option<&'static str>| {
            wants_event.then(|| RequestEvent {
                model,
                outcome: Some(outcome),
                breaker_state,
                ..RequestEvent::new(&primary.name, &endpoint)
            })
        };
        if let Some(health) = &self.health {
            if let Some(check) = health.shed(Edge::Gateway) {
                let secs = health.retry_after_secs();
                let reply = answers::shed(primary.kind, &primary.name, check, secs);
                return (reply.into(), event(None, Outcome::Shed, None));
            }
        }
        if request::declared_length(&parts.headers).is_some_and(|n| n > s.max_body) {
            return (answers::too_large(s.max_body).into(), None);
        }
        let wants_model = s.wants_model(primary);
        let path = route.path();
        // A request every candidate would refuse is refused before its body is read (so its
        // client is never invited to upload); the refusal itself goes through the candidates,
        // which count it (and admit the call after all if a breaker recovered meanwhile).
        let mut early = None;
        let mut early_candidates = None;
        if !wants_model && admit::would_refuse(&s.upstreams, primary, path, &endpoint) {
            let mut candidates = Candidates::new(&s.upstreams, primary, path, &endpoint, None);
            match candidates.next() {
                Ok(call) => early = Some(call),
                Err(refused) => return self.refusal(primary, &endpoint, refused, None, &event),
            }
            early_candidates = Some(candidates);
        }
        // Read whole before the call is admitted: a slow uploader holds no permit, and an
        // attempt can be sent again. `100 Continue` goes out now, when it is first read.
        let body = match request::read(body, s.max_body).await {
            Ok(body) => body,
            Err(error) => {
                if let Some(call) = early {
                    verdict::judge(verdict::Happened::ClientBodyFailed, &[]).apply(call.permit);
                }
                return (unreadable(error, s.max_body), None);
            }
        };
        // Read from the body, for a provider whose breakers are per model.
        let model = if wants_model {
            request::model_of(&body)
        } else {
            None
        };
        let mut candidates = early_candidates.unwrap_or_else(|| {
            let model = model.as_deref();
            Candidates::new(&s.upstreams, primary, path, &endpoint, model)
        });
        let mut parts = parts;
        let upgrade = parts.extensions.remove::<UpgradeRequest>().map(|u| u.0);
        // Failover needs the client's fields again for every attempt; else they are moved.
        let retries = upgrade.is_none()
            && primary.may_fail_over()
            && primary.failover.on(FailoverOn::Failure);
        let deadline = Instant::now() + primary.timeouts.total;
        let forwarder = Forwarder {
            metrics: &s.metrics,
            auth_on: s.auth.is_on(),
        };
        let mut attempts = 0;
        // The answer to the last failed attempt, and who failed and why.
        let mut last: Option<(Reply, Outcome, Option<CircuitBreaker>)> = None;
        let mut failed_at: Option<(&Upstream, &str, Cow<'static, str>)> = None;
        loop {
            let call = match early.take().map(Ok).unwrap_or_else(|| candidates.next()) {
                Ok(call) => call,
                Err(refused) => match last {
                    Some((reply, outcome, breaker)) => {
                        let state = breaker.map(|b| b.state().as_str());
                        return (reply, event(model, outcome, state));
                    }
                    None => return self.refusal(primary, &endpoint, refused, model, &event),
                },
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if attempts > 0 {
                let budget = !left.is_zero() && primary.budget.try_retry();
                if let (true, Some((upstream, target, reason))) = (budget, failed_at.take()) {
                    upstream
                        .metrics
                        .count_failover(&upstream.name, target, &reason);
                }
                if !budget {
                    if !left.is_zero() {
                        primary.metrics.budget_exhausted.inc();
                    }
                    // The call is not made: its permit goes back unjudged.
                    drop(call);
                    let (reply, outcome, breaker) = last.take().expect("a failed attempt");
                    let state = breaker.map(|b| b.state().as_str());
                    return (reply, event(model, outcome, state));
                }
            } else {
                primary.budget.first_attempt();
            }
            attempts += 1;
            // Read once the response head is known: the call may have tripped it.
            let breaker = wants_event.then(|| call.permit.breaker().clone());
            let outcome = if call.fallback {
                Outcome::Fallback
            } else {
                Outcome::Forwarded
            };
            let (upstream, target) = (call.upstream, call.target.name.as_str());
            let headers = if retries {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            let attempt = Attempt {
                method: &parts.method,
                headers,
                upgrade: upgrade.as_ref(),
                body: body.clone(),
                route: &route,
                client_ip: remote.ip(),
                first_byte: upstream.first_byte_within(left),
            };
            let answered = forwarder.forward(call, attempt).await;
            match answered.failed {
                Some(reason) if retries && attempts < primary.failover.max_attempts => {
                    failed_at = Some((upstream, target, reason));
                    last = Some((answered.reply, outcome, breaker));
                }
                _ => {
                    let state = breaker.map(|b| b.state().as_str());
                    return (answered.reply, event(model, outcome, state));
                }
            }
        }
    }

    /// The answer when no candidate takes the call: the primary's breaker rejection, or, with
    /// every target's quota spent, a provider-shaped 429 until the earliest reset.
    fn refusal(
        &self,
        primary: &Upstream,
        endpoint: &str,
        refused: Refused,
        model: Option<String>,
        event: &impl Fn(Option<String>, Outcome, Option<&'static str>) -> Option<RequestEvent>,
    ) -> (Reply, Option<RequestEvent>) {
        match refused {
            Refused::Rejected(rejected, state) => {
                let reply = answers::rejection(primary.kind, &primary.name, endpoint, &rejected);
                let event = event(model, Outcome::Rejected, Some(state.as_str()));
                (reply.into(), event)
            }
            Refused::RateLimited(until) => {
                let now = Instant::now();
                let secs = until.saturating_duration_since(now).as_secs_f64().ceil() as u64;
                let mut quota = http::HeaderMap::new();
                let soonest = primary
                    .targets
                    .iter()
                    .filter_map(|t| t.limits.as_ref())
                    .min_by_key(|l| l.exhausted_until(now));
                if let Some(limits) = soonest {
                    limits.headers(&mut quota, now);
                }
                let reply = answers::rate_limited(primary.kind, &primary.name, secs.max(1), quota);
                (reply.into(), event(model, Outcome::Rejected, None))
            }
            Refused::Exhausted => (answers::bad_gateway(&primary.name).into(), None),
        }
    }
}

impl Shared {
    /// What serves `config`, keeping the upstreams of `before` that may stay.
    fn build(
        config: &Config,
        secrets: &Secrets,
        breakers: &Breakers,
        metrics: Arc<Metrics>,
        pools: Arc<Pools>,
        families: Arc<metrics::Families>,
        before: Option<&HashMap<String, Arc<Upstream>>>,
    ) -> Result<(Shared, GatewayReload), GatewayError> {
        let mut upstreams = HashMap::default();
        let mut report = GatewayReload::default();
        for p in &config.providers {
            let Some(pb) = breakers.provider(&p.name) else {
                return Err(GatewayError::MissingBreakers {
                    provider: p.name.clone(),
                });
            };
            let kept = before
                .and_then(|b| b.get(&p.name))
                .filter(|u| u.serves(p, secrets, &pb));
            let upstream = match kept {
                Some(u) => {
                    report.kept.push(p.name.clone());
                    u.clone()
                }
                None => {
                    report.rebuilt.push(p.name.clone());
                    let upstream = Upstream::new(p, secrets, &pools, &families, pb.clone())?;
                    // A target whose breaker closes after probing gets its share back over
                    // `slow_start`.
                    for (target, tb) in upstream.targets.iter().zip(pb.targets()) {
                        let (picker, load) = (upstream.picker.clone(), target.load.clone());
                        tb.on_recovered(move || picker.recovered(&load));
                    }
                    Arc::new(upstream)
                }
            };
            upstreams.insert(p.name.clone(), upstream);
        }
        let shared = Shared {
            upstreams,
            pools,
            families,
            metrics,
            auth: ClientAuth::new(config, secrets),
            max_body: config.server.max_body,
        };
        Ok((shared, report))
    }
}

/// Counts a client that left before its request was served, when dropped armed.
struct Leaving<'a>(Option<&'a prometheus_client::metrics::counter::Counter>);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        if let Some(disconnects) = self.0 {
            disconnects.inc();
        }
    }
}

/// What the client is told when its request body could not be read.
fn unreadable(error: BodyError, max_body: u64) -> Reply {
    match error {
        BodyError::TooLarge => answers::too_large(max_body),
        BodyError::TimedOut => crate::message::body_timeout(),
        // Nobody reads the answer to a client that left; it is written for the log's sake.
        BodyError::ClientGone | BodyError::Unreadable => {
            answers::bad_request("the request body could not be read")
        }
    }
    .into()
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
