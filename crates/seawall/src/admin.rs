//! The admin listener's routes: `/metrics`, `/healthz`, `/readyz`, `GET /v1/breakers` (provider
//! and output breakers), `GET /v1/flags`, `GET /v1/pipelines`, `GET /v1/transitions` (recent
//! breaker transitions, newest first), `GET /v1/history` (sampled counters), the dashboard at `GET /ui` (also served at `/`) and the
//! token-protected `POST /v1/breakers/{id}/{force-open|disable|reset}` (fleet-wide with
//! `cluster`), `/v1/cluster`, and the token-protected `POST /v1/reload` (served by a
//! [`Reload`], the app's reloader).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use arc_swap::ArcSwapOption;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;

use crate::breakers::{breaker_id, BreakerView, Breakers};
use crate::cluster::{AdminAction, Cluster};
use crate::config::Secret;
use crate::exposition::Format;
use crate::flags::Flags;
use crate::history::History;
use crate::message::{full, json, json_error, Body};
use crate::metrics::{BreakerLabels, Metrics};
use crate::pipeline::Pipelines;
use seawall_breaker::CircuitBreaker;

/// Where the process is in its life, as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

impl Readiness {
    /// Listeners are bound: `/readyz` answers 200.
    pub fn set_ready(&self) {
        // Never leaves draining: a late `set_ready` must not undo a shutdown.
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Shutdown has begun: `/readyz` answers 503 from now on.
    pub fn set_draining(&self) {
        self.0.store(DRAINING, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) == READY
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire) == DRAINING
    }
}

/// What serves `POST /v1/reload`: the app's reloader.
pub trait Reload: Send + Sync {
    /// Reloads the configuration; whether it was applied, and what to answer.
    fn reload(&self) -> Pin<Box<dyn Future<Output = (bool, serde_json::Value)> + Send + '_>>;
}

/// What `POST /v1/breakers/{id}/{action}` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    ForceOpen,
    Disable,
    Reset,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "force-open" => Some(Self::ForceOpen),
            "disable" => Some(Self::Disable),
            "reset" => Some(Self::Reset),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::ForceOpen => "force-open",
            Self::Disable => "disable",
            Self::Reset => "reset",
        }
    }
}

/// The admin API. Cheap to share behind an [`Arc`]; [`Admin::handle`] serves one request.
pub struct Admin {
    /// Source of `/v1/breakers` and target of the breaker actions.
    breakers: Arc<Breakers>,
    /// Encoded for `/metrics`.
    metrics: Arc<Metrics>,
    /// `admin.token_env`'s value; `None` disables the `POST` actions. A reload may change it.
    token: Arc<ArcSwapOption<Secret>>,
    /// Drives `/readyz`.
    readiness: Arc<Readiness>,
    /// Source of `/v1/flags`; `None` when `feature_flags` is not configured.
    flags: Option<Arc<Flags>>,
    /// Source of `/v1/pipelines` and of the output breakers; `None` without pipelines.
    pipelines: Option<Arc<Pipelines>>,
    /// Source of `/v1/cluster`, told of breaker actions; `None` without `cluster`.
    cluster: Option<Arc<Cluster>>,
    /// Source of `/v1/history`; `None` until [`Admin::with_history`].
    history: Option<Arc<History>>,
    /// Serves `POST /v1/reload`; unset for a daemon not started from a file.
    reloader: OnceLock<Weak<dyn Reload>>,
}

impl Admin {
    /// The admin API over `breakers` and `metrics`, with the actions guarded by `token`.
    pub fn new(
        breakers: Arc<Breakers>,
        metrics: Arc<Metrics>,
        token: Option<Secret>,
        readiness: Arc<Readiness>,
    ) -> Self {
        Admin {
            breakers,
            metrics,
            token: Arc::new(ArcSwapOption::from(token.map(Arc::new))),
            readiness,
            flags: None,
            pipelines: None,
            cluster: None,
            history: None,
            reloader: OnceLock::new(),
        }
    }

    /// Serves `GET /v1/cluster` from `cluster`, says in `/v1/breakers` which replica tripped
    /// a fleet-open breaker, and applies breaker actions fleet-wide.
    pub fn with_cluster(mut self, cluster: Arc<Cluster>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Serves `GET /v1/pipelines` from `pipelines` and lists (and acts on) their output
    /// breakers alongside the providers'.
    pub fn with_pipelines(mut self, pipelines: Arc<Pipelines>) -> Self {
        self.pipelines = Some(pipelines);
        self
    }

    /// Serves `GET /v1/history` from `history`.
    pub fn with_history(mut self, history: Arc<History>) -> Self {
        self.history = Some(history);
        self
    }

    /// Serves `GET /v1/flags` from `flags`.
    pub fn with_flags(mut self, flags: Arc<Flags>) -> Self {
        self.flags = Some(flags);
        self
    }

    /// Answers one admin request from `remote`. No route reads the request body.
    pub fn handle<B>(&self, req: &Request<B>, remote: SocketAddr) -> Response<Body> {
        let path = req.uri().path();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let get = |f: &dyn Fn() -> Response<Body>| match *req.method() {
            Method::GET | Method::HEAD => f(),
            _ => method_not_allowed("GET, HEAD"),
        };
        match segments.as_slice() {
            [""] | ["ui"] => get(&crate::ui::dashboard),
            ["metrics"] => get(&|| self.metrics(req)),
            ["healthz"] => get(&|| json(StatusCode::OK, &json!({ "status": "ok" }))),
            ["readyz"] => get(&|| self.readyz()),
            ["v1", "breakers"] => get(&|| json(StatusCode::OK, &self.breaker_views())),
            ["v1", "flags"] => get(&|| self.flags()),
            ["v1", "pipelines"] => get(&|| self.pipelines()),
            ["v1", "cluster"] => get(&|| self.cluster()),
            ["v1", "history"] => get(&|| self.history(req.uri().query())),
            ["v1", "transitions"] => {
                get(&|| json(StatusCode::OK, &self.metrics.timeline().recent()))
            }
            ["v1", "breakers", id, action] => match Action::parse(action) {
                None => json_error(
                    StatusCode::NOT_FOUND,
                    "unknown_action",
                    &format!(
                        "unknown breaker action `{action}`: expected force-open, disable or reset"
                    ),
                ),
                Some(_) if req.method() != Method::POST => method_not_allowed("POST"),
                Some(action) => self.act(req, remote, id, action),
            },
            _ => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no admin route at `{path}`"),
            ),
        }
    }

    /// Provider breakers, then output breakers.
    fn breaker_views(&self) -> Vec<BreakerView> {
        let mut views = self.breakers.views();
        if let Some(p) = &self.pipelines {
            views.extend(
                p.breakers()
                    .iter()
                    .map(|(l, b)| BreakerView::new(l, &b.snapshot())),
            );
        }
        if let Some(cluster) = &self.cluster {
            for v in &mut views {
                v.tripped_by = cluster.tripped_by(&v.id);
            }
        }
        views
    }

    fn cluster(&self) -> Response<Body> {
        match &self.cluster {
            Some(c) => json(StatusCode::OK, &c.view()),
            None => json_error(
                StatusCode::NOT_FOUND,
                "cluster_off",
                "this replica is not in a cluster: `cluster` is not configured",
            ),
        }
    }

    /// The provider or output breaker whose [`breaker_id`] is `id`.
    fn find_breaker(&self, id: &str) -> Option<(BreakerLabels, CircuitBreaker)> {
        self.breakers.find(id).or_else(|| {
            self.pipelines
                .as_ref()
                .and_then(|p| p.breakers().into_iter().find(|(l, _)| breaker_id(l) == id))
        })
    }

    fn pipelines(&self) -> Response<Body> {
        match &self.pipelines {
            Some(p) => json(StatusCode::OK, &p.views()),
            None => json(StatusCode::OK, &json!([])),
        }
    }

    /// `GET /v1/history`, of one breaker with `?breaker=ID`.
    fn history(&self, query: Option<&str>) -> Response<Body> {
        let Some(history) = &self.history else {
            return json_error(
                StatusCode::NOT_FOUND,
                "history_off",
                "this admin API keeps no history",
            );
        };
        let breaker = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("breaker="));
        match history.view(breaker) {
            Some(view) => json(StatusCode::OK, &view),
            None => json_error(
                StatusCode::NOT_FOUND,
                "unknown_breaker",
                &format!(
                    "no history of a breaker with id `{}`; list them with GET /v1/breakers",
                    breaker.unwrap_or_default()
                ),
            ),
        }
    }

    fn flags(&self) -> Response<Body> {
        let body = match &self.flags {
            Some(flags) => json!({ "enabled": true, "cache": flags.snapshot() }),
            None => json!({ "enabled": false, "cache": { "hosts": [] } }),
        };
        json(StatusCode::OK, &body)
    }

    /// The metrics in the format the client's `accept` asks for (see [`Format::negotiate`]).
    fn metrics<B>(&self, req: &Request<B>) -> Response<Body> {
        let format = Format::negotiate(req.headers().get(header::ACCEPT));
        let mut resp = Response::new(full(format.render(self.metrics.encode())));
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        headers.insert(header::VARY, HeaderValue::from_static("accept"));
        resp
    }

    fn readyz(&self) -> Response<Body> {
        if self.readiness.is_ready() {
            json(StatusCode::OK, &json!({ "status": "ready" }))
        } else if self.readiness.is_draining() {
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                "shutting down: in-flight requests are draining",
            )
        } else {
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting",
                "listeners are not bound yet",
            )
        }
    }

    /// The admin token's cell, which a reload updates.
    pub(crate) fn token_cell(&self) -> Arc<ArcSwapOption<Secret>> {
        self.token.clone()
    }

    /// Serves one admin request, `POST /v1/reload` included (it waits for the reload).
    pub async fn serve<B>(&self, req: Request<B>, remote: SocketAddr) -> Response<Body> {
        let reload = req.uri().path().trim_end_matches('/') == "/v1/reload";
        let reloader = self.reloader.get().and_then(Weak::upgrade);
        match (reload, reloader) {
            (false, _) => self.handle(&req, remote),
            (true, _) if req.method() != Method::POST => method_not_allowed("POST"),
            (true, None) => json_error(
                StatusCode::NOT_FOUND,
                "reload_unavailable",
                "this daemon was not started from a configuration file; nothing to reload",
            ),
            (true, Some(reloader)) => {
                if let Some(refused) = self.refusal(&req, remote, "reload", "-") {
                    return refused;
                }
                tracing::info!(%remote, "configuration reload requested");
                let (applied, outcome) = reloader.reload().await;
                let status = if applied {
                    StatusCode::OK
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                json(status, &outcome)
            }
        }
    }

    /// Serves `POST /v1/reload` with `reloader` (held weakly: it holds the listeners, which
    /// hold this). Set once.
    pub fn set_reloader(&self, reloader: Weak<dyn Reload>) {
        let _ = self.reloader.set(reloader);
    }

    /// The answer refusing `action` unless `req` carries the admin token.
    fn refusal<B>(
        &self,
        req: &Request<B>,
        remote: SocketAddr,
        action: &str,
        id: &str,
    ) -> Option<Response<Body>> {
        let token = self.token.load_full();
        let Some(token) = token.as_deref() else {
            tracing::warn!(%remote, action, breaker = id,
                "admin action refused: no admin token configured");
            return Some(json_error(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "admin actions are disabled until `admin.token_env` is set",
            ));
        };
        if !bearer_matches(req, token) {
            tracing::warn!(%remote, action, breaker = id,
                "admin action refused: missing or wrong token");
            let mut resp = json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong admin token: send `authorization: Bearer <token>`",
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return Some(resp);
        }
        None
    }

    fn act<B>(
        &self,
        req: &Request<B>,
        remote: SocketAddr,
        id: &str,
        action: Action,
    ) -> Response<Body> {
        if let Some(refused) = self.refusal(req, remote, action.as_str(), id) {
            return refused;
        }
        let Some((labels, breaker)) = self.find_breaker(id) else {
            return json_error(
                StatusCode::NOT_FOUND,
                "unknown_breaker",
                &format!("no breaker with id `{id}`; list them with GET /v1/breakers"),
            );
        };
        let fleet_action = match action {
            Action::ForceOpen => {
                breaker.force_open();
                AdminAction::ForceOpen
            }
            Action::Disable => {
                breaker.disable();
                AdminAction::Disable
            }
            Action::Reset => {
                breaker.reset();
                AdminAction::Reset
            }
        };
        // Fleet-wide when the cluster is reachable; else here only, and the answer says so.
        let fleet = self
            .cluster
            .as_ref()
            .map(|c| c.admin(&labels, fleet_action));
        tracing::info!(%remote, action = action.as_str(), breaker = id, kind = labels.kind,
            name = %labels.name, endpoint = %labels.endpoint, model = %labels.model, ?fleet,
            "admin action applied");
        let view = BreakerView::new(&labels, &breaker.snapshot());
        match fleet {
            None => json(StatusCode::OK, &view),
            Some(fleet) => {
                let mut body = serde_json::to_value(&view).unwrap_or_default();
                body["fleet"] = json!(fleet);
                json(StatusCode::OK, &body)
            }
        }
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this route accepts {allow}"),
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Whether `authorization: Bearer <token>` carries `token`, compared in constant time.
fn bearer_matches<B>(req: &Request<B>, token: &Secret) -> bool {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let scheme = b"bearer ";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return false;
    }
    constant_time_eq(
        value[scheme.len()..].trim_ascii(),
        token.expose().as_bytes(),
    )
}

/// Byte equality whose running time depends on the lengths only, not on where the inputs
/// differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakers::tokio_clock;
    use crate::config::parse;
    use http_body_util::BodyExt;

    fn admin(token: Option<&str>) -> (Admin, Arc<Breakers>, Arc<Readiness>) {
        let config =
            parse("providers: [{ name: p, kind: generic, base_url: 'http://127.0.0.1:1' }]")
                .unwrap();
        let metrics = Arc::new(Metrics::new());
        let breakers =
            Arc::new(Breakers::new(&config.providers, tokio_clock(), metrics.clone()).unwrap());
        let token = token.map(secret);
        let readiness = Arc::new(Readiness::default());
        let admin = Admin::new(breakers.clone(), metrics, token, readiness.clone());
        (admin, breakers, readiness)
    }

    fn secret(value: &str) -> Secret {
        let config = parse("admin: { token_env: T }").unwrap();
        let value = value.to_owned();
        config
            .resolve_secrets(move |_| Some(value.clone()))
            .unwrap()
            .admin_token
            .unwrap()
    }

    fn req(method: Method, path: &str, auth: Option<&str>) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            b = b.header(header::AUTHORIZATION, auth);
        }
        b.body(()).unwrap()
    }

    async fn body(resp: Response<Body>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    const REMOTE: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);

    #[tokio::test]
    async fn readyz_follows_the_lifecycle() {
        let (admin, _, readiness) = admin(None);
        let check = || {
            admin
                .handle(&req(Method::GET, "/readyz", None), REMOTE)
                .status()
        };
        assert_eq!(check(), StatusCode::SERVICE_UNAVAILABLE);
        readiness.set_ready();
        assert_eq!(check(), StatusCode::OK);
        readiness.set_draining();
        readiness.set_ready();
        let resp = admin.handle(&req(Method::GET, "/readyz", None), REMOTE);
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(resp).await["error"]["type"], "draining");
    }

    #[tokio::test]
    async fn actions_check_the_token_then_the_id() {
        let (admin, breakers, _) = admin(Some("s3cret"));
        let (cb, labels) = breakers.provider("p").unwrap().get("/v1/x", None);
        let id = crate::breakers::breaker_id(&labels);
        let path = format!("/v1/breakers/{id}/force-open");
        let status = |auth: Option<&str>, path: &str| {
            admin
                .handle(&req(Method::POST, path, auth), REMOTE)
                .status()
        };
        assert_eq!(status(None, &path), StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(Some("Bearer s3cres"), &path),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(Some("Bearer s3cret2"), &path),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(Some("Basic s3cret"), &path),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(Some("Bearer s3cret"), "/v1/breakers/nope/force-open"),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status(Some("Bearer s3cret"), &format!("/v1/breakers/{id}/explode")),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status(Some("bearer s3cret"), &path), StatusCode::OK);
        assert_eq!(cb.mode().as_str(), "forced_open");
        let resp = admin.handle(&req(Method::GET, &path, Some("Bearer s3cret")), REMOTE);
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "POST");
    }

    #[tokio::test]
    async fn transitions_list_newest_first_and_the_ui_is_html() {
        let (admin, breakers, _) = admin(None);
        let (cb, _) = breakers.provider("p").unwrap().get("/v1/x", None);
        cb.force_open();
        cb.reset();
        let resp = admin.handle(&req(Method::GET, "/v1/transitions", None), REMOTE);
        assert_eq!(resp.status(), StatusCode::OK);
        let list = body(resp).await;
        assert_eq!(list[0]["to"], "closed", "{list}");
        assert_eq!(list[1]["to"], "open", "{list}");
        assert_eq!(list[1]["mode"], "forced_open", "{list}");
        assert_eq!(list[1]["endpoint"], "/v1/x", "{list}");
        for path in ["/ui", "/"] {
            let resp = admin.handle(&req(Method::GET, path, None), REMOTE);
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(
                resp.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
        }
    }

    #[tokio::test]
    async fn history_serves_every_series_or_one_breaker() {
        let (admin, breakers, _) = admin(None);
        let resp = admin.handle(&req(Method::GET, "/v1/history", None), REMOTE);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let history = Arc::new(History::new(&Default::default()));
        let admin = admin.with_history(history.clone());
        let (cb, labels) = breakers.provider("p").unwrap().get("/v1/x", None);
        cb.try_acquire().unwrap().failure();
        history.sample(&breakers, None);
        let all = body(admin.handle(&req(Method::GET, "/v1/history", None), REMOTE)).await;
        assert_eq!(all["period_seconds"], 5.0, "{all}");
        assert_eq!(all["points"], 180, "{all}");
        assert_eq!(all["breakers"][0]["failures"], json!([1]), "{all}");
        assert_eq!(all["breakers"][0]["states"], json!(["closed"]), "{all}");
        let id = breaker_id(&labels);
        let path = format!("/v1/history?breaker={id}");
        let one = body(admin.handle(&req(Method::GET, &path, None), REMOTE)).await;
        assert_eq!(one["breakers"][0]["id"], id.as_str(), "{one}");
        let resp = admin.handle(&req(Method::GET, "/v1/history?breaker=0", None), REMOTE);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(resp).await["error"]["type"], "unknown_breaker");
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
