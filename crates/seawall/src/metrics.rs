//! Prometheus metrics of the daemon (prefix `seawall_`, listed in the README), encoded in
//! the OpenMetrics text format for the admin `/metrics` endpoint.

use foldhash::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use seawall_breaker::{Reason, State, Transition};
use std::sync::atomic::AtomicU64;

pub use crate::labels::BreakerLabels;
use crate::timeline::Timeline;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TripLabels {
    #[prometheus(flatten)]
    breaker: BreakerLabels,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    provider: String,
    endpoint: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    worker: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    provider: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EvictionLabels {
    kind: &'static str,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedPathLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlagFetchLabels {
    host: String,
    result: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    breaker_state: Family<BreakerLabels, Gauge<f64, AtomicU64>>,
    breaker_trips: Family<TripLabels, Counter>,
    breaker_rejects: Family<BreakerLabels, Counter>,
    breaker_evictions: Family<EvictionLabels, Counter>,
    upstream_requests: Family<UpstreamLabels, Counter>,
    upstream_duration: Family<RouteLabels, Histogram>,
    refused_paths: Family<RefusedPathLabels, Counter>,
    flag_fetches: Family<FlagFetchLabels, Counter>,
    /// Handles into the two upstream families by provider, then endpoint, so a request
    /// records without building label sets (the endpoints are bounded by the breakers').
    routes: RwLock<HashMap<String, HashMap<String, Arc<RouteMetrics>>>>,
    /// Recent breaker transitions, recorded next to the state gauges.
    timeline: Timeline,
    /// Told of every breaker transition and failure run (the cluster, when on).
    watcher: OnceLock<Box<dyn BreakerWatcher>>,
    /// `seawall_gateway_worker_connections`, registered with the first worker listener.
    worker_connections: OnceLock<Family<WorkerLabels, Gauge>>,
}

/// What watches every breaker of the daemon (see [`Metrics::watch_breakers`]): the cluster.
/// Both calls run on the thread that caused them; keep them short and never blocking.
pub trait BreakerWatcher: Send + Sync {
    /// A breaker changed state (after its log line, metrics and timeline entry).
    fn transition(&self, labels: &BreakerLabels, t: &Transition);
    /// A closed breaker's run of failures is now `streak` long (0: a success ended it).
    fn streak(&self, labels: &BreakerLabels, streak: u32);
}

/// One route's upstream metrics.
struct RouteMetrics {
    duration: Histogram,
    /// By response code (a few per route).
    requests: RwLock<Vec<(Box<str>, Counter)>>,
}

impl Metrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("seawall");
        let breaker_state = Family::<BreakerLabels, Gauge<f64, AtomicU64>>::default();
        let breaker_trips = Family::<TripLabels, Counter>::default();
        let breaker_rejects = Family::<BreakerLabels, Counter>::default();
        let breaker_evictions = Family::<EvictionLabels, Counter>::default();
        let upstream_requests = Family::<UpstreamLabels, Counter>::default();
        let upstream_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let refused_paths = Family::<RefusedPathLabels, Counter>::default();
        let flag_fetches = Family::<FlagFetchLabels, Counter>::default();
        registry.register(
            "circuit_breaker_state",
            "Circuit breaker state: 0 closed, 0.5 half-open, 1 open",
            breaker_state.clone(),
        );
        registry.register(
            "circuit_breaker_trips",
            "Transitions to open, by reason",
            breaker_trips.clone(),
        );
        registry.register(
            "circuit_breaker_rejects",
            "Calls rejected by an open or full half-open breaker",
            breaker_rejects.clone(),
        );
        registry.register(
            "circuit_breaker_evictions",
            "Breakers evicted as idle, every series of theirs removed",
            breaker_evictions.clone(),
        );
        registry.register(
            "upstream_requests",
            "Requests forwarded upstream, by response status (or `error` for transport failures)",
            upstream_requests.clone(),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Time from forwarding a request to the upstream's response headers",
            upstream_duration.clone(),
        );
        registry.register(
            "refused_paths",
            "Gateway requests refused with 400 because of their path, by reason",
            refused_paths.clone(),
        );
        registry.register(
            "feature_flag_fetches",
            "Feature-flag fetches, by host and result",
            flag_fetches.clone(),
        );
        registry.register(
            "build",
            "The running binary's version and git revision",
            Info::new(vec![
                ("version", crate::version::VERSION),
                ("revision", crate::version::REVISION),
            ]),
        );
        Metrics {
            registry: Mutex::new(registry),
            breaker_state,
            breaker_trips,
            breaker_rejects,
            breaker_evictions,
            upstream_requests,
            upstream_duration,
            refused_paths,
            flag_fetches,
            routes: RwLock::new(HashMap::default()),
            timeline: Timeline::new(),
            watcher: OnceLock::new(),
            worker_connections: OnceLock::new(),
        }
    }

    /// Has `watcher` told of every breaker transition and failure run from now on (one
    /// watcher per daemon: the cluster). Ignored if one is set.
    pub fn watch_breakers(&self, watcher: Box<dyn BreakerWatcher>) {
        let _ = self.watcher.set(watcher);
    }

    /// Tells the watcher, if any, of transition `t`.
    pub(crate) fn tell_transition(&self, labels: &BreakerLabels, t: &Transition) {
        if let Some(watcher) = self.watcher.get() {
            watcher.transition(labels, t);
        }
    }

    /// Tells the watcher, if any, of a failure run's new length.
    pub(crate) fn tell_streak(&self, labels: &BreakerLabels, streak: u32) {
        if let Some(watcher) = self.watcher.get() {
            watcher.streak(labels, streak);
        }
    }

    /// The recent breaker transitions (`GET /v1/transitions`, the dashboard).
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Sets a breaker's state gauge. The first time, when the breaker is created, its
    /// rejection series and a trip series for each reason it can trip for are created at
    /// zero, so that `rate()` and `increase()` count its first trip and first rejection.
    pub fn set_breaker_state(&self, labels: &BreakerLabels, state: State) {
        if self.breaker_state.get(labels).is_none() {
            for reason in TRIP_REASONS {
                let _created = self
                    .breaker_trips
                    .get_or_create(&trip_labels(labels, reason));
            }
            let _created = self.breaker_rejects.get_or_create(labels);
        }
        self.breaker_state.get_or_create(labels).set(state.gauge());
    }

    /// Counts a trip of a breaker.
    pub fn count_trip(&self, labels: &BreakerLabels, reason: Reason) {
        self.breaker_trips
            .get_or_create(&trip_labels(labels, reason))
            .inc();
    }

    /// Counts a rejected call.
    pub fn count_reject(&self, labels: &BreakerLabels) {
        self.breaker_rejects.get_or_create(labels).inc();
    }

    /// The rejection counter of the breaker with `labels`, to keep and increment directly.
    pub fn reject_counter(&self, labels: &BreakerLabels) -> Counter {
        self.breaker_rejects.get_or_create(labels).clone()
    }

    /// Drops every series of a breaker that no longer exists: its state gauge, its rejection
    /// counter and its trip counters. A handle kept from [`Metrics::reject_counter`] no longer
    /// counts into `/metrics`: drop it too.
    pub fn forget_breaker(&self, labels: &BreakerLabels) {
        self.breaker_state.remove(labels);
        self.breaker_rejects.remove(labels);
        for reason in REASONS {
            self.breaker_trips.remove(&trip_labels(labels, reason));
        }
    }

    /// Counts a breaker evicted as idle.
    pub fn count_eviction(&self, labels: &BreakerLabels) {
        let l = EvictionLabels {
            kind: labels.kind,
            name: labels.name.clone(),
        };
        self.breaker_evictions.get_or_create(&l).inc();
    }

    /// Drops the upstream series of `provider`'s `endpoint` (request counters of every code,
    /// the duration histogram) and their cached handles.
    pub fn forget_route(&self, provider: &str, endpoint: &str) {
        let route = {
            let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
            let endpoints = routes.get_mut(provider);
            let route = endpoints.and_then(|e| e.remove(endpoint));
            if routes.get(provider).is_some_and(HashMap::is_empty) {
                routes.remove(provider);
            }
            route
        };
        self.upstream_duration.remove(&RouteLabels {
            provider: provider.to_owned(),
            endpoint: endpoint.to_owned(),
        });
        let Some(route) = route else { return };
        let codes = route
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for (code, _) in codes.iter() {
            self.upstream_requests.remove(&UpstreamLabels {
                provider: provider.to_owned(),
                endpoint: endpoint.to_owned(),
                code: code.to_string(),
            });
        }
    }

    /// Counts a gateway request refused because of its path (`reason` as
    /// `gateway::path::PathError` names it).
    pub(crate) fn count_refused_path(&self, reason: &'static str) {
        self.refused_paths
            .get_or_create(&RefusedPathLabels { reason })
            .inc();
    }

    /// Counts a forwarded request and its latency to response headers. `code` is the status
    /// or `error`.
    pub fn observe_upstream(&self, provider: &str, endpoint: &str, code: &str, seconds: f64) {
        let route = self.route(provider, endpoint);
        route.duration.observe(seconds);
        let counted = route
            .requests
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(c, _)| &**c == code)
            .map(|(_, counter)| counter.inc());
        if counted.is_none() {
            let l = UpstreamLabels {
                provider: provider.to_owned(),
                endpoint: endpoint.to_owned(),
                code: code.to_owned(),
            };
            let counter = self.upstream_requests.get_or_create(&l).clone();
            counter.inc();
            let mut requests = route
                .requests
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if !requests.iter().any(|(c, _)| &**c == code) {
                requests.push((code.into(), counter));
            }
        }
    }

    /// The handles of `provider`'s `endpoint`, created on first use.
    fn route(&self, provider: &str, endpoint: &str) -> Arc<RouteMetrics> {
        let found = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .and_then(|endpoints| endpoints.get(endpoint).cloned());
        if let Some(route) = found {
            return route;
        }
        let r = RouteLabels {
            provider: provider.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        let created = Arc::new(RouteMetrics {
            duration: self.upstream_duration.get_or_create(&r).clone(),
            requests: RwLock::new(Vec::new()),
        });
        self.routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(r.provider)
            .or_default()
            .entry(r.endpoint)
            .or_insert(created)
            .clone()
    }

    /// Counts a feature-flag fetch.
    pub fn count_flag_fetch(&self, host: &str, result: &str) {
        let l = FlagFetchLabels {
            host: host.to_owned(),
            result: result.to_owned(),
        };
        self.flag_fetches.get_or_create(&l).inc();
    }

    /// Registers a module's own metric family (name without the `seawall_` prefix; counters
    /// get `_total` appended on exposition). Keep the returned family to update it.
    ///
    /// ```
    /// use prometheus_client::metrics::counter::Counter;
    /// let metrics = seawall::metrics::Metrics::new();
    /// let drops: Counter = Counter::default();
    /// metrics.register("example_drops", "Example drops", drops.clone());
    /// drops.inc();
    /// assert!(metrics.encode().contains("seawall_example_drops_total 1"));
    /// ```
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.register(name, help, metric);
    }

    /// One gauge per gateway worker thread, counting its open client connections
    /// (`seawall_gateway_worker_connections{worker}`). Registered on the first call; later calls (a reloaded
    /// listener) hand out the same gauges.
    pub(crate) fn gateway_worker_connections(&self, workers: usize) -> Vec<Gauge> {
        let family = self.worker_connections.get_or_init(|| {
            let family = Family::<WorkerLabels, Gauge>::default();
            self.register(
                "gateway_worker_connections",
                "Client connections open on each gateway worker thread",
                family.clone(),
            );
            family
        });
        (0..workers)
            .map(|worker| family.get_or_create(&WorkerLabels { worker }).clone())
            .collect()
    }

    /// For each listener named in `listeners` (those serving TLS), its failed handshakes
    /// (`seawall_tls_handshake_failures_total{listener}`) and its certificate's `notAfter`
    /// in Unix seconds (`seawall_tls_certificate_expiry_seconds{listener}`). Call once, at
    /// start; with no TLS listener neither family is registered.
    pub(crate) fn tls_listeners(&self, listeners: &[&'static str]) -> Vec<(Counter, Gauge)> {
        if listeners.is_empty() {
            return Vec::new();
        }
        let failures = Family::<ListenerLabels, Counter>::default();
        let expiry = Family::<ListenerLabels, Gauge>::default();
        self.register(
            "tls_handshake_failures",
            "TLS handshakes that failed or timed out, by listener",
            failures.clone(),
        );
        self.register(
            "tls_certificate_expiry_seconds",
            "When the listener's TLS certificate expires (notAfter), in Unix seconds",
            expiry.clone(),
        );
        listeners
            .iter()
            .map(|&listener| {
                let labels = ListenerLabels { listener };
                (
                    failures.get_or_create(&labels).clone(),
                    expiry.get_or_create(&labels).clone(),
                )
            })
            .collect()
    }

    /// The OpenMetrics text exposition of every metric (see [`crate::exposition`] for the
    /// 0.0.4 text format).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Every transition reason, to remove all trip series of a breaker (a test keeps it complete).
const REASONS: [Reason; 11] = [
    Reason::ConsecutiveFailures,
    Reason::FailureRate,
    Reason::SlowCallRate,
    Reason::RetryAfter,
    Reason::GlobalHealth,
    Reason::Manual,
    Reason::HalfOpenFailure,
    Reason::HalfOpenTimeout,
    Reason::OpenTimeoutElapsed,
    Reason::ProbesSucceeded,
    Reason::Remote,
];

/// The reasons a breaker of the daemon trips for (`GlobalHealth` sheds at the edges instead;
/// `Remote` only with `cluster`), whose series exist from the breaker's creation on.
const TRIP_REASONS: [Reason; 8] = [
    Reason::ConsecutiveFailures,
    Reason::FailureRate,
    Reason::SlowCallRate,
    Reason::RetryAfter,
    Reason::Manual,
    Reason::HalfOpenFailure,
    Reason::HalfOpenTimeout,
    Reason::Remote,
];

fn trip_labels(labels: &BreakerLabels, reason: Reason) -> TripLabels {
    TripLabels {
        breaker: labels.clone(),
        reason: reason.as_str(),
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms … ~82 s: LLM calls range from fast errors to minute-long generations.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_lists_every_reason() {
        for reason in REASONS {
            // Adding a `Reason` breaks this match until it is listed in `REASONS` too.
            let index = match reason {
                Reason::ConsecutiveFailures => 0,
                Reason::FailureRate => 1,
                Reason::SlowCallRate => 2,
                Reason::RetryAfter => 3,
                Reason::GlobalHealth => 4,
                Reason::Manual => 5,
                Reason::HalfOpenFailure => 6,
                Reason::HalfOpenTimeout => 7,
                Reason::OpenTimeoutElapsed => 8,
                Reason::ProbesSucceeded => 9,
                Reason::Remote => 10,
            };
            assert_eq!(REASONS[index], reason);
        }
    }

    #[test]
    fn forgetting_a_breaker_and_its_route_removes_every_series() {
        let m = Metrics::new();
        let labels = |endpoint: &str| BreakerLabels {
            kind: "provider",
            name: "p".into(),
            endpoint: endpoint.into(),
            model: String::new(),
            target: String::new(),
        };
        for endpoint in ["/gone", "/kept"] {
            let b = labels(endpoint);
            m.set_breaker_state(&b, State::Closed);
            m.count_trip(&b, Reason::ConsecutiveFailures);
            m.count_trip(&b, Reason::HalfOpenFailure);
            m.reject_counter(&b).inc();
            m.observe_upstream("p", endpoint, "200", 0.1);
            m.observe_upstream("p", endpoint, "503", 0.1);
            m.observe_upstream("p", endpoint, "error", 0.1);
        }
        let kept = |text: &str| text.matches(r#"endpoint="/kept""#).count();
        let before = m.encode();
        assert_eq!(kept(&before), before.matches(r#"endpoint="/gone""#).count());
        m.forget_breaker(&labels("/gone"));
        m.forget_route("p", "/gone");
        let text = m.encode();
        assert!(!text.contains(r#"endpoint="/gone""#), "{text}");
        assert_eq!(kept(&text), kept(&before), "{text}");
        m.observe_upstream("p", "/gone", "200", 0.1);
        let again = m.encode();
        assert!(again.contains(
            r#"seawall_upstream_requests_total{provider="p",endpoint="/gone",code="200"} 1"#
        ));
    }

    #[test]
    fn a_new_breaker_has_its_trip_and_reject_series_at_zero() {
        let m = Metrics::new();
        let b = BreakerLabels {
            kind: "output",
            name: "o".into(),
            endpoint: "stdout".into(),
            model: String::new(),
            target: String::new(),
        };
        m.set_breaker_state(&b, State::Closed);
        let text = m.encode();
        let series = |reason: &str| {
            format!(
                r#"seawall_circuit_breaker_trips_total{{kind="output",name="o",endpoint="stdout",model="",reason="{reason}"}} 0"#
            )
        };
        for reason in TRIP_REASONS {
            assert!(text.contains(&series(reason.as_str())), "{reason}: {text}");
        }
        assert!(!text.contains("global_health"), "{text}");
        assert!(text.contains(
            r#"seawall_circuit_breaker_rejects_total{kind="output",name="o",endpoint="stdout",model=""} 0"#
        ));
        // Later transitions count from there, and never re-create what was counted.
        m.count_trip(&b, Reason::Manual);
        m.set_breaker_state(&b, State::Open);
        assert!(m.encode().contains(&series("manual").replace("} 0", "} 1")));
    }

    #[test]
    fn exposition_uses_the_design_names() {
        let m = Metrics::new();
        let b = BreakerLabels {
            kind: "provider",
            name: "anthropic".into(),
            endpoint: "/v1/messages".into(),
            model: String::new(),
            target: String::new(),
        };
        m.set_breaker_state(&b, State::HalfOpen);
        m.count_trip(&b, Reason::RetryAfter);
        m.count_reject(&b);
        m.observe_upstream("anthropic", "/v1/messages", "529", 0.2);
        m.count_flag_fetch("api.example.com", "ok");
        m.count_eviction(&b);
        m.count_refused_path("escapes_provider");
        let text = m.encode();
        for needle in [
            r#"seawall_circuit_breaker_state{kind="provider",name="anthropic",endpoint="/v1/messages",model=""} 0.5"#,
            r#"seawall_circuit_breaker_trips_total{kind="provider",name="anthropic",endpoint="/v1/messages",model="",reason="retry_after"} 1"#,
            r#"seawall_circuit_breaker_rejects_total{kind="provider",name="anthropic",endpoint="/v1/messages",model=""} 1"#,
            r#"seawall_upstream_requests_total{provider="anthropic",endpoint="/v1/messages",code="529"} 1"#,
            r#"seawall_upstream_request_duration_seconds_count{provider="anthropic",endpoint="/v1/messages"} 1"#,
            r#"seawall_feature_flag_fetches_total{host="api.example.com",result="ok"} 1"#,
            r#"seawall_circuit_breaker_evictions_total{kind="provider",name="anthropic"} 1"#,
            r#"seawall_refused_paths_total{reason="escapes_provider"} 1"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
