//! The daemon's breakers: policy from configuration, one registry per provider keyed by
//! endpoint (× model), a log line and metrics on every transition, and views for the admin API.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use arc_swap::ArcSwap;
use std::time::{Duration, SystemTime};

use foldhash::HashMap;
use seawall_breaker::{
    CircuitBreaker, Clock, Config as Policy, ConfigError as PolicyError, Mode, Registry, Snapshot,
    State, Transition, Window,
};
use serde::Serialize;

use crate::config::{BreakerSettings, ProviderConfig};
use crate::metrics::{BreakerLabels, Metrics};
use prometheus_client::metrics::counter::Counter;

/// The breaker policy described by `settings`, reading time from `clock`.
pub fn policy(settings: &BreakerSettings, clock: Clock) -> Result<Policy, PolicyError> {
    let mut b = Policy::builder()
        .failure_threshold(settings.failure_threshold)
        .window(Window::Time {
            duration: settings.window,
            buckets: settings.window_buckets,
        })
        .minimum_calls(settings.minimum_calls)
        .slow_call_duration(settings.slow_call_duration)
        .open_timeout(settings.open_timeout)
        .open_timeout_max(settings.effective_open_timeout_max())
        .jitter(settings.jitter)
        .half_open_max_calls(settings.half_open_max_calls)
        .half_open_timeout(settings.half_open_timeout)
        .retry_after_max(settings.retry_after_max)
        .trip_on_retry_after(settings.trip_on_retry_after)
        // Lifetime successes and failures feed `GET /v1/history`.
        .count_outcomes(true)
        .clock(clock);
    if let Some(rate) = settings.failure_rate_threshold {
        b = b.failure_rate_threshold(rate);
    }
    if let Some(rate) = settings.slow_call_rate_threshold {
        b = b.slow_call_rate_threshold(rate);
    }
    b.build()
}

/// A clock that follows tokio's time, so that tests with paused time drive the breakers.
/// Call it inside a tokio runtime.
pub fn tokio_clock() -> Clock {
    let origin = tokio::time::Instant::now();
    // An hour's offset keeps readings far from zero, like the breaker crate's own clocks.
    Clock::from_fn(move || origin.elapsed() + Duration::from_secs(3600))
}

/// A provider's breakers, one set per target (a provider given by `base_url` has one target,
/// named `""`). Upstream series are the provider's: an evicted endpoint's go once no target
/// has a breaker for it any more.
pub struct ProviderBreakers {
    name: String,
    targets: Vec<Arc<TargetBreakers>>,
    metrics: Arc<Metrics>,
}

/// One target's breakers: one per endpoint (× model when `per_model`), bounded by `max_keys`.
/// When the bound is reached and nothing is idle, further endpoints share one overflow
/// breaker (endpoint `*`), so a flood of distinct paths cannot grow memory or metrics.
/// A closed breaker unused for `idle_evict` is evicted with every metric series of its own.
pub struct TargetBreakers {
    name: String,
    target: String,
    per_model: bool,
    registry: Registry<BreakerKey>,
    overflow: CircuitBreaker,
    /// Whether any request has fallen back to the overflow breaker (then it is listed).
    overflow_used: AtomicBool,
    /// Rejection counters by breaker key, so a rejection builds no labels.
    reject_counters: Arc<RwLock<HashMap<BreakerKey, Counter>>>,
    /// Endpoints of breakers evicted since the last tick, whose upstream series may go.
    evicted: Arc<Mutex<Vec<String>>>,
    /// Set from the `seawall.circuit_breaker.enabled` flag: observe, never reject.
    metrics_only: Arc<AtomicBool>,
    /// Told when one of these breakers closes after probing (the gateway ramps the target's
    /// share up from then); replaced when a reload builds a new gateway.
    on_recovered: Arc<RwLock<Option<RecoveredHook>>>,
    /// `circuit_breaker.enabled: false`: every breaker disabled (a reload may flip it).
    disabled: Arc<AtomicBool>,
    /// `per_model`, which a reload cannot change in place (the keys change meaning).
    per_model_setting: bool,
    metrics: Arc<Metrics>,
}

type RecoveredHook = Box<dyn Fn() + Send + Sync>;

/// What a provider breaker is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BreakerKey {
    /// The endpoint label of the request path (e.g. `/v1/messages`, `/v1/threads/{id}/runs`;
    /// see the README's "Paths").
    pub endpoint: String,
    /// The model, when breakers are per model; else empty.
    pub model: String,
}

/// A key's two parts, owned or borrowed, so a request finds its breaker without allocating.
trait KeyParts {
    fn endpoint(&self) -> &str;
    fn model(&self) -> &str;
}

impl KeyParts for BreakerKey {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    fn model(&self) -> &str {
        &self.model
    }
}

impl KeyParts for (&str, &str) {
    fn endpoint(&self) -> &str {
        self.0
    }
    fn model(&self) -> &str {
        self.1
    }
}

impl<'a> Borrow<dyn KeyParts + 'a> for BreakerKey {
    fn borrow(&self) -> &(dyn KeyParts + 'a) {
        self
    }
}

impl Hash for dyn KeyParts + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.endpoint().hash(state);
        self.model().hash(state);
    }
}

impl PartialEq for dyn KeyParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.endpoint() == other.endpoint() && self.model() == other.model()
    }
}

impl Eq for dyn KeyParts + '_ {}

impl ToOwned for dyn KeyParts + '_ {
    type Owned = BreakerKey;
    fn to_owned(&self) -> BreakerKey {
        BreakerKey {
            endpoint: self.endpoint().to_owned(),
            model: self.model().to_owned(),
        }
    }
}

// Must hash exactly as `dyn KeyParts` does, for borrowed lookups to find owned keys.
impl Hash for BreakerKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyParts).hash(state);
    }
}

/// A breaker as the admin API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BreakerView {
    /// Stable id for `POST /v1/breakers/{id}/…`.
    pub id: String,
    /// `provider` or `output`.
    pub kind: &'static str,
    /// Provider or output name.
    pub name: String,
    /// Endpoint path or URL.
    pub endpoint: String,
    /// Model, or empty.
    pub model: String,
    /// The provider's target, for a provider with several; else empty.
    pub target: String,
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    /// `normal`, `forced_open`, `disabled` or `metrics_only`.
    pub mode: &'static str,
    /// Reason of the last transition.
    pub reason: Option<&'static str>,
    /// When an open breaker goes half-open (RFC 3339), if open.
    pub open_until: Option<String>,
    /// Seconds since the last transition.
    pub since_change_seconds: f64,
    /// Counters.
    pub counts: CountsView,
    /// With `cluster` on, while the fleet holds this breaker open: the replica whose trip came
    /// first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tripped_by: Option<String>,
}

/// Counters of a breaker view.
#[derive(Clone, Debug, Serialize)]
pub struct CountsView {
    /// Failures in a row while closed.
    pub consecutive_failures: u32,
    /// Calls in the rolling window.
    pub window_calls: u64,
    /// Failures in the rolling window.
    pub window_failures: u64,
    /// Half-open probes in flight.
    pub half_open_in_flight: u32,
    /// Rejected calls, ever.
    pub rejected: u64,
    /// Calls admitted only because of metrics-only mode, ever.
    pub would_reject: u64,
    /// Trips, ever.
    pub trips: u64,
}

impl BreakerView {
    /// The view of `breaker` labelled `labels`.
    pub fn new(labels: &BreakerLabels, snap: &Snapshot) -> Self {
        let open_until = snap
            .open_remaining
            .map(|left| humantime::format_rfc3339_seconds(SystemTime::now() + left).to_string());
        BreakerView {
            id: breaker_id(labels),
            kind: labels.kind,
            name: labels.name.clone(),
            endpoint: labels.endpoint.clone(),
            model: labels.model.clone(),
            target: labels.target.clone(),
            state: snap.state.as_str(),
            mode: snap.mode.as_str(),
            reason: snap.reason.map(|r| r.as_str()),
            open_until,
            since_change_seconds: snap.since_change.as_secs_f64(),
            counts: CountsView {
                consecutive_failures: snap.counts.consecutive_failures,
                window_calls: snap.counts.window_calls,
                window_failures: snap.counts.window_failures,
                half_open_in_flight: snap.counts.half_open_in_flight,
                rejected: snap.counts.rejected,
                would_reject: snap.counts.would_reject,
                trips: snap.counts.trips,
            },
            tripped_by: None,
        }
    }
}

/// A short stable id (FNV-1a of the labels, hex) that is safe in a URL path.
pub fn breaker_id(l: &BreakerLabels) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    // The target counts only when set, so one-target providers keep their ids.
    let target = (!l.target.is_empty()).then_some(l.target.as_str());
    for part in [l.kind, &l.name, &l.endpoint, &l.model]
        .into_iter()
        .chain(target)
    {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Logs a transition, updates the metrics and adds it to the timeline. Open transitions log
/// at `warn`.
pub fn record_transition(metrics: &Metrics, labels: &BreakerLabels, t: &Transition) {
    metrics.set_breaker_state(labels, t.to);
    metrics.timeline().record(labels, t);
    if t.to == State::Open && t.from != State::Open {
        metrics.count_trip(labels, t.reason);
    }
    let open_for_s = t.open_for.map(|d| d.as_secs_f64());
    if t.to == State::Open {
        tracing::warn!(kind = labels.kind, name = %labels.name, endpoint = %labels.endpoint,
            model = %labels.model, from = %t.from, to = %t.to, mode = %t.mode,
            reason = %t.reason, open_for_s, "circuit breaker state change");
    } else {
        tracing::info!(kind = labels.kind, name = %labels.name, endpoint = %labels.endpoint,
            model = %labels.model, from = %t.from, to = %t.to, mode = %t.mode,
            reason = %t.reason, "circuit breaker state change");
    }
    metrics.tell_transition(labels, t);
}

/// Has `b` report its failure runs to `metrics`' watcher, if one is set by then (the cluster
/// adds them up across replicas).
pub fn report_streaks(b: &CircuitBreaker, metrics: &Arc<Metrics>, labels: BreakerLabels) {
    let m = metrics.clone();
    b.on_failure_streak(move |streak| m.tell_streak(&labels, streak));
}

impl ProviderBreakers {
    /// The breakers of `provider`, one set per target.
    pub fn new(
        provider: &ProviderConfig,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, PolicyError> {
        let targets = provider
            .target_list()
            .iter()
            .map(|t| TargetBreakers::new(provider, &t.name, clock.clone(), metrics.clone()))
            .map(|t| t.map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(ProviderBreakers {
            name: provider.name.clone(),
            targets,
            metrics,
        })
    }

    /// Whether `provider`'s settings can apply to these breakers in place: the same targets,
    /// in the same order, keyed the same way (`per_model`).
    fn fits(&self, provider: &ProviderConfig) -> bool {
        let names: Vec<String> = provider.target_list().into_iter().map(|t| t.name).collect();
        names.len() == self.targets.len()
            && names.iter().zip(&self.targets).all(|(n, t)| *n == t.target)
            && self
                .targets
                .iter()
                .all(|t| t.per_model_setting == provider.per_model)
    }

    /// Applies `provider`'s breaker settings (policy, `max_keys`, `idle_evict`, `enabled`)
    /// to every target's breakers in place.
    fn apply(&self, provider: &ProviderConfig, clock: &Clock) -> Result<(), PolicyError> {
        for t in &self.targets {
            t.apply(provider, clock.clone())?;
        }
        Ok(())
    }

    /// The breakers of `provider` after a reload: these, with targets that stayed (same name,
    /// same `per_model`) reconfigured in place and the others new.
    fn rebuilt(
        &self,
        provider: &ProviderConfig,
        clock: &Clock,
    ) -> Result<ProviderBreakers, PolicyError> {
        let mut targets = Vec::new();
        for t in provider.target_list() {
            let kept = self
                .targets
                .iter()
                .find(|old| old.target == t.name && old.per_model_setting == provider.per_model);
            let target = match kept {
                Some(old) => {
                    old.apply(provider, clock.clone())?;
                    old.clone()
                }
                None => Arc::new(TargetBreakers::new(
                    provider,
                    &t.name,
                    clock.clone(),
                    self.metrics.clone(),
                )?),
            };
            targets.push(target);
        }
        Ok(ProviderBreakers {
            name: provider.name.clone(),
            targets,
            metrics: self.metrics.clone(),
        })
    }

    /// Drops every series of these breakers (a provider a reload removed).
    fn forget(&self) {
        let mut endpoints = BTreeSet::new();
        for (labels, _) in self.entries() {
            self.metrics.forget_breaker(&labels);
            endpoints.insert(labels.endpoint);
        }
        for endpoint in endpoints {
            self.metrics.forget_route(&self.name, &endpoint);
        }
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every target's breakers, in configuration order.
    pub fn targets(&self) -> &[Arc<TargetBreakers>] {
        &self.targets
    }

    /// The breakers of target `name` (`""` for a provider given by `base_url`).
    pub fn target(&self, name: &str) -> Option<&TargetBreakers> {
        self.targets.iter().find(|t| t.target == name).map(|t| &**t)
    }

    /// The first target's breaker for `endpoint` and `model`, with its labels (the only
    /// target's, for a provider given by `base_url`).
    pub fn get(&self, endpoint: &str, model: Option<&str>) -> (CircuitBreaker, BreakerLabels) {
        self.targets[0].get(endpoint, model)
    }

    /// Observe-only (`true`) or enforcing (`false`), for every target's breakers.
    pub fn set_metrics_only(&self, on: bool) {
        for t in &self.targets {
            t.set_metrics_only(on);
        }
    }

    /// Timed transitions and idle eviction; run every `check_interval`. An endpoint's
    /// upstream series go once no target has a breaker for it.
    pub fn tick(&self) {
        let mut evicted = BTreeSet::new();
        for t in &self.targets {
            t.tick();
            evicted.extend(t.take_evicted());
        }
        if evicted.is_empty() {
            return;
        }
        let live: BTreeSet<String> = self
            .targets
            .iter()
            .flat_map(|t| t.registry.entries())
            .map(|(k, _)| k.endpoint)
            .collect();
        for endpoint in evicted.difference(&live) {
            self.metrics.forget_route(&self.name, endpoint);
        }
    }

    /// Every breaker with its labels, by target, then endpoint and model.
    pub fn entries(&self) -> Vec<(BreakerLabels, CircuitBreaker)> {
        self.targets.iter().flat_map(|t| t.entries()).collect()
    }

    /// Admin views of every breaker.
    pub fn views(&self) -> Vec<BreakerView> {
        self.targets.iter().flat_map(|t| t.views()).collect()
    }
}

impl TargetBreakers {
    /// The breakers of `provider`'s target `target`.
    fn new(
        provider: &ProviderConfig,
        target: &str,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, PolicyError> {
        let settings = &provider.circuit_breaker;
        let template = policy(settings, clock)?;
        let name = provider.name.clone();
        let disabled = Arc::new(AtomicBool::new(!settings.enabled));
        let metrics_only = Arc::new(AtomicBool::new(false));
        let on_recovered: Arc<RwLock<Option<RecoveredHook>>> = Arc::default();
        let labels_of = {
            let (name, target) = (name.clone(), target.to_owned());
            move |k: &BreakerKey| BreakerLabels {
                kind: "provider",
                name: name.clone(),
                endpoint: k.endpoint.clone(),
                model: k.model.clone(),
                target: target.clone(),
            }
        };
        let reject_counters = Arc::new(RwLock::new(HashMap::default()));
        let evicted = Arc::new(Mutex::new(Vec::new()));
        let (on_change, on_create) = {
            let (m1, m2) = (metrics.clone(), metrics.clone());
            let (l1, l2) = (labels_of.clone(), labels_of.clone());
            let mo = metrics_only.clone();
            let off = disabled.clone();
            let recovered = on_recovered.clone();
            (
                move |k: &BreakerKey, t: &Transition| {
                    record_transition(&m1, &l1(k), t);
                    if t.from == State::HalfOpen && t.to == State::Closed {
                        let hook = recovered.read().unwrap_or_else(PoisonError::into_inner);
                        if let Some(tell) = hook.as_ref() {
                            tell();
                        }
                    }
                },
                move |k: &BreakerKey, b: &CircuitBreaker| {
                    apply_mode(b, off.load(Ordering::Relaxed), mo.load(Ordering::Relaxed));
                    let labels = l2(k);
                    m2.set_breaker_state(&labels, b.state());
                    report_streaks(b, &m2, labels);
                },
            )
        };
        let on_evict = {
            let (metrics, counters, evicted) =
                (metrics.clone(), reject_counters.clone(), evicted.clone());
            let labels_of = labels_of.clone();
            move |k: &BreakerKey, _: &CircuitBreaker| {
                let labels = labels_of(k);
                tracing::debug!(kind = labels.kind, name = %labels.name,
                    endpoint = %labels.endpoint, model = %labels.model,
                    "idle circuit breaker evicted");
                metrics.forget_breaker(&labels);
                metrics.count_eviction(&labels);
                let mut counters = counters.write().unwrap_or_else(PoisonError::into_inner);
                counters.remove(k);
                let mut evicted = evicted.lock().unwrap_or_else(PoisonError::into_inner);
                evicted.push(k.endpoint.clone());
            }
        };
        let registry = Registry::new(template.clone())
            .max_keys(provider.max_keys)
            .idle_after(provider.effective_idle_evict())
            .on_state_change(on_change)
            .on_create(on_create)
            .on_evict(on_evict);
        let overflow_key = BreakerKey {
            endpoint: "*".into(),
            model: String::new(),
        };
        let overflow = CircuitBreaker::new(template);
        apply_mode(&overflow, disabled.load(Ordering::Relaxed), false);
        {
            let (m, l) = (metrics.clone(), labels_of(&overflow_key));
            report_streaks(&overflow, &m, l.clone());
            overflow.on_state_change(move |t| record_transition(&m, &l, t));
        }
        Ok(TargetBreakers {
            name,
            target: target.to_owned(),
            per_model: provider.per_model,
            registry,
            overflow,
            overflow_used: AtomicBool::new(false),
            reject_counters,
            evicted,
            metrics_only,
            on_recovered,
            disabled,
            per_model_setting: provider.per_model,
            metrics,
        })
    }

    /// Applies `provider`'s breaker settings in place: every breaker (and the template of new
    /// ones) gets the new policy, keeping its state; `max_keys` and `idle_evict` change; a
    /// change of `enabled` disables, or returns to normal, every breaker (an operator's
    /// forced-open stays).
    fn apply(&self, provider: &ProviderConfig, clock: Clock) -> Result<(), PolicyError> {
        let settings = &provider.circuit_breaker;
        let template = policy(settings, clock)?;
        self.registry.reconfigure(template.clone());
        self.overflow.reconfigure(template);
        self.registry.set_max_keys(provider.max_keys);
        self.registry
            .set_idle_after(provider.effective_idle_evict());
        let disable = !settings.enabled;
        if self.disabled.swap(disable, Ordering::Relaxed) != disable {
            for b in self.all() {
                match (disable, b.mode()) {
                    (true, Mode::Normal | Mode::MetricsOnly) => b.disable(),
                    (false, Mode::Disabled) => {
                        b.set_mode(Mode::Normal);
                        set_enforcement(&b, !self.is_metrics_only());
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The target's name (`""` for a provider given by `base_url`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Calls `tell` whenever one of these breakers closes after probing, instead of what was
    /// called before (a reloaded gateway brings its own).
    pub fn on_recovered(&self, tell: impl Fn() + Send + Sync + 'static) {
        let mut hook = self
            .on_recovered
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *hook = Some(Box::new(tell));
    }

    /// The breaker for a request to `endpoint` (path without query) naming `model`, with its
    /// labels. The model is ignored unless breakers are per model.
    pub fn get(&self, endpoint: &str, model: Option<&str>) -> (CircuitBreaker, BreakerLabels) {
        let (breaker, overflow) = self.breaker(endpoint, model);
        (breaker, self.labels_of(endpoint, model, overflow))
    }

    /// The breaker for a request to `endpoint` naming `model`, and whether it is the overflow
    /// breaker (all breakers in use). Allocates nothing once the breaker exists.
    pub fn breaker(&self, endpoint: &str, model: Option<&str>) -> (CircuitBreaker, bool) {
        let key = self.key(endpoint, model, false);
        match self.registry.get(&key as &dyn KeyParts) {
            Ok(b) => (b, false),
            Err(_) => {
                self.overflow_used.store(true, Ordering::Relaxed);
                (self.overflow.clone(), true)
            }
        }
    }

    /// The key of the breaker [`breaker`](Self::breaker) returns for these arguments (the
    /// overflow breaker's when `overflow`): the model counts only when breakers are per model.
    fn key<'a>(
        &self,
        endpoint: &'a str,
        model: Option<&'a str>,
        overflow: bool,
    ) -> (&'a str, &'a str) {
        match (overflow, self.per_model) {
            (true, _) => ("*", ""),
            (false, true) => (endpoint, model.unwrap_or_default()),
            (false, false) => (endpoint, ""),
        }
    }

    /// The labels of the breaker [`breaker`](Self::breaker) returned for these arguments.
    pub fn labels_of(&self, endpoint: &str, model: Option<&str>, overflow: bool) -> BreakerLabels {
        let (endpoint, model) = self.key(endpoint, model, overflow);
        self.labels(endpoint, model)
    }

    fn labels(&self, endpoint: &str, model: &str) -> BreakerLabels {
        BreakerLabels {
            kind: "provider",
            name: self.name.clone(),
            endpoint: endpoint.to_owned(),
            model: model.to_owned(),
            target: self.target.clone(),
        }
    }

    /// Counts a rejection by the breaker [`breaker`](Self::breaker) returned for these
    /// arguments, through a cached counter (rejections come in storms: no labels built).
    pub fn count_reject_of(&self, endpoint: &str, model: Option<&str>, overflow: bool) {
        let key = self.key(endpoint, model, overflow);
        let cached = self
            .reject_counters
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key as &dyn KeyParts)
            .map(Counter::inc);
        if cached.is_none() {
            let counter = self
                .metrics
                .reject_counter(&self.labels_of(endpoint, model, overflow));
            counter.inc();
            let mut counters = self
                .reject_counters
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            // Bounded like the breakers: endpoints beyond `max_keys` share the overflow key.
            counters.insert((&key as &dyn KeyParts).to_owned(), counter);
        }
    }

    /// Observe-only (`true`) or enforcing (`false`), for this provider's breakers present and
    /// future. Breakers an operator forced open or disabled keep their mode.
    pub fn set_metrics_only(&self, on: bool) {
        if self.metrics_only.swap(on, Ordering::Relaxed) == on {
            return;
        }
        tracing::info!(provider = %self.name, target = %self.target, metrics_only = on,
            "breaker enforcement changed by feature flag");
        for b in self.all() {
            set_enforcement(&b, !on);
        }
    }

    /// Whether the feature flag turned enforcement off.
    pub fn is_metrics_only(&self) -> bool {
        self.metrics_only.load(Ordering::Relaxed)
    }

    /// Timed transitions and idle eviction.
    fn tick(&self) {
        self.registry.tick();
        self.overflow.tick();
        self.registry.evict_idle();
    }

    /// The endpoints of breakers evicted since the last call.
    fn take_evicted(&self) -> Vec<String> {
        mem::take(&mut *self.evicted.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every breaker with its labels, sorted by endpoint and model.
    pub fn entries(&self) -> Vec<(BreakerLabels, CircuitBreaker)> {
        let mut all: BTreeMap<BreakerKey, CircuitBreaker> =
            self.registry.entries().into_iter().collect();
        if self.overflow_used.load(Ordering::Relaxed) {
            all.insert(
                BreakerKey {
                    endpoint: "*".into(),
                    model: String::new(),
                },
                self.overflow.clone(),
            );
        }
        all.into_iter()
            .map(|(k, b)| (self.labels(&k.endpoint, &k.model), b))
            .collect()
    }

    /// Admin views of every breaker.
    pub fn views(&self) -> Vec<BreakerView> {
        self.entries()
            .iter()
            .map(|(l, b)| BreakerView::new(l, &b.snapshot()))
            .collect()
    }

    fn all(&self) -> Vec<CircuitBreaker> {
        let mut v: Vec<_> = self
            .registry
            .entries()
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        v.push(self.overflow.clone());
        v
    }
}

/// Enforcing (`true`: normal mode) or observing (`false`: metrics-only), as a feature flag
/// asks. Breakers an operator forced open or disabled keep their mode.
pub fn set_enforcement(b: &CircuitBreaker, enforce: bool) {
    match (b.mode(), enforce) {
        (Mode::Normal, false) => b.set_mode(Mode::MetricsOnly),
        (Mode::MetricsOnly, true) => b.set_mode(Mode::Normal),
        _ => {}
    }
}

fn apply_mode(b: &CircuitBreaker, disabled: bool, metrics_only: bool) {
    if disabled {
        b.disable();
    } else if metrics_only {
        b.set_mode(Mode::MetricsOnly);
    }
}

/// Every provider's breakers, by provider name; a reload swaps the set (see
/// [`Breakers::reload`]) while requests in flight keep what they started with.
pub struct Breakers {
    providers: ArcSwap<BTreeMap<String, Arc<ProviderBreakers>>>,
    clock: Clock,
    metrics: Arc<Metrics>,
}

/// What [`Breakers::reload`] did, by provider name.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BreakersReload {
    /// New providers.
    pub added: Vec<String>,
    /// Providers gone (their breakers drain with their last requests).
    pub removed: Vec<String>,
    /// Providers whose breaker settings or targets changed (applied to the breakers in place
    /// where the targets stayed).
    pub changed: Vec<String>,
    /// Providers whose breaker settings did not change.
    pub unchanged: Vec<String>,
}

impl Breakers {
    /// Breakers for each configured provider.
    pub fn new(
        providers: &[ProviderConfig],
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, (String, PolicyError)> {
        let mut map = BTreeMap::new();
        for p in providers {
            let pb = ProviderBreakers::new(p, clock.clone(), metrics.clone())
                .map_err(|e| (p.name.clone(), e))?;
            map.insert(p.name.clone(), Arc::new(pb));
        }
        Ok(Breakers {
            providers: ArcSwap::from_pointee(map),
            clock,
            metrics,
        })
    }

    /// Makes `providers` the set: a provider that stayed keeps its breakers (their state and
    /// counters) with the new settings applied in place; one whose targets changed keeps the
    /// breakers of the targets that stayed; new ones start closed; removed ones are dropped
    /// once their last request ends, their series at once. Nothing changes on an error.
    pub fn reload(
        &self,
        providers: &[ProviderConfig],
        before: &[ProviderConfig],
    ) -> Result<BreakersReload, (String, PolicyError)> {
        let old = self.providers.load_full();
        // Check every policy first, so a bad one changes nothing.
        for p in providers {
            policy(&p.circuit_breaker, self.clock.clone()).map_err(|e| (p.name.clone(), e))?;
        }
        let mut report = BreakersReload::default();
        let mut map = BTreeMap::new();
        for p in providers {
            let was = before.iter().find(|b| b.name == p.name);
            let pb = match old.get(&p.name) {
                Some(pb) if pb.fits(p) => {
                    pb.apply(p, &self.clock).map_err(|e| (p.name.clone(), e))?;
                    pb.clone()
                }
                Some(pb) => Arc::new(
                    pb.rebuilt(p, &self.clock)
                        .map_err(|e| (p.name.clone(), e))?,
                ),
                None => Arc::new(
                    ProviderBreakers::new(p, self.clock.clone(), self.metrics.clone())
                        .map_err(|e| (p.name.clone(), e))?,
                ),
            };
            let list = match was {
                None => &mut report.added,
                Some(b) if breaker_settings_equal(b, p) => &mut report.unchanged,
                Some(_) => &mut report.changed,
            };
            list.push(p.name.clone());
            map.insert(p.name.clone(), pb);
        }
        for (name, pb) in old.iter() {
            if !map.contains_key(name) {
                pb.forget();
                report.removed.push(name.clone());
            }
        }
        self.providers.store(Arc::new(map));
        Ok(report)
    }

    /// The breakers of provider `name`.
    pub fn provider(&self, name: &str) -> Option<Arc<ProviderBreakers>> {
        self.providers.load().get(name).cloned()
    }

    /// Every provider's breakers.
    pub fn providers(&self) -> Vec<Arc<ProviderBreakers>> {
        self.providers.load().values().cloned().collect()
    }

    /// Admin views of every breaker.
    pub fn views(&self) -> Vec<BreakerView> {
        self.providers().iter().flat_map(|p| p.views()).collect()
    }

    /// The provider breaker labelled `l`, created if absent (another replica named it);
    /// `None` when this replica has no such provider or target.
    pub fn resolve(&self, l: &BreakerLabels) -> Option<CircuitBreaker> {
        let provider = self.provider(&l.name)?;
        let target = provider.target(&l.target)?;
        if l.endpoint == "*" {
            target.overflow_used.store(true, Ordering::Relaxed);
            return Some(target.overflow.clone());
        }
        let model = (!l.model.is_empty()).then_some(l.model.as_str());
        Some(target.breaker(&l.endpoint, model).0)
    }

    /// The breaker whose [`breaker_id`] is `id`, with its labels.
    pub fn find(&self, id: &str) -> Option<(BreakerLabels, CircuitBreaker)> {
        self.providers()
            .iter()
            .flat_map(|p| p.entries())
            .find(|(l, _)| breaker_id(l) == id)
    }

    /// Timed transitions and idle eviction for every breaker.
    pub fn tick(&self) {
        for p in self.providers() {
            p.tick();
        }
    }
}

/// Whether two versions of a provider have the same breakers: the same settings, targets and
/// keying.
fn breaker_settings_equal(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    let names = |p: &ProviderConfig| -> Vec<String> {
        p.target_list().into_iter().map(|t| t.name).collect()
    };
    a.circuit_breaker == b.circuit_breaker
        && a.per_model == b.per_model
        && a.max_keys == b.max_keys
        && a.idle_evict == b.idle_evict
        && names(a) == names(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use seawall_breaker::ManualClock;

    fn setup(yaml: &str) -> (Breakers, ManualClock, Arc<Metrics>) {
        let config = parse(yaml).unwrap();
        let clock = ManualClock::new();
        let metrics = Arc::new(Metrics::new());
        let b = Breakers::new(&config.providers, Clock::manual(&clock), metrics.clone()).unwrap();
        (b, clock, metrics)
    }

    const TWO: &str = "providers:
  - { name: a, kind: anthropic, base_url: 'http://127.0.0.1:1', per_model: true, max_keys: 2,
      circuit_breaker: { failure_threshold: 1, jitter: 0 } }
  - { name: o, kind: openai, base_url: 'http://127.0.0.1:2', circuit_breaker: { enabled: false } }
";

    #[test]
    fn breakers_are_per_endpoint_and_model_and_overflow_past_max_keys() {
        let (b, _clock, metrics) = setup(TWO);
        let a = b.provider("a").unwrap();
        let (x, _) = a.get("/v1/messages", Some("opus"));
        let (y, _) = a.get("/v1/messages", Some("haiku"));
        assert!(!x.ptr_eq(&y));
        let (z, labels) = a.get("/v1/complete", None);
        assert_eq!(labels.endpoint, "*");
        x.try_acquire().unwrap().failure();
        assert!(metrics
            .encode()
            .contains(r#"reason="consecutive_failures"} 1"#));
        assert!(z.try_acquire().is_ok());
        let views = b.views();
        assert_eq!(views.iter().filter(|v| v.name == "a").count(), 3);
        let open = views.iter().find(|v| v.state == "open").unwrap();
        assert_eq!(open.model, "opus");
        assert_eq!(b.find(&open.id).unwrap().0.model, "opus");
    }

    #[test]
    fn disabled_settings_and_the_flag_set_modes() {
        let (b, _clock, _) = setup(TWO);
        let (o, _) = b.provider("o").unwrap().get("/v1/responses", None);
        assert_eq!(o.mode(), Mode::Disabled);
        let a = b.provider("a").unwrap();
        let (before, _) = a.get("/x", None);
        a.set_metrics_only(true);
        assert_eq!(before.mode(), Mode::MetricsOnly);
        assert_eq!(a.get("/y", None).0.mode(), Mode::MetricsOnly);
        a.set_metrics_only(false);
        assert_eq!(before.mode(), Mode::Normal);
    }

    #[test]
    fn breaker_ids_are_stable_and_url_safe() {
        let l = BreakerLabels {
            kind: "provider",
            name: "a".into(),
            endpoint: "/v1/messages".into(),
            model: String::new(),
            target: String::new(),
        };
        assert_eq!(breaker_id(&l), breaker_id(&l.clone()));
        assert!(breaker_id(&l).chars().all(|c| c.is_ascii_hexdigit()));
    }
}
