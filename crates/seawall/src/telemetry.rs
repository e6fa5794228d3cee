//! The gateway's request events: one JSON event per request that reached a
//! provider's admission, submitted without waiting to the pipeline named by
//! `telemetry.pipeline`, unless the provider host's `seawall.telemetry.enabled` flag is off.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use seawall::telemetry::{EventSink, Outcome, RequestEvent, Telemetry};
//!
//! #[derive(Default)]
//! struct Memory(Mutex<Vec<serde_json::Value>>);
//! impl EventSink for Memory {
//!     fn submit(&self, _pipeline: &str, event: serde_json::Value) -> bool {
//!         self.0.lock().unwrap().push(event);
//!         true
//!     }
//! }
//!
//! let sink = Arc::new(Memory::default());
//! let metrics = seawall::metrics::Metrics::new();
//! let telemetry = Telemetry::new(sink.clone(), "requests", None, &metrics);
//! let mut event = RequestEvent::new("anthropic", "/v1/messages");
//! event.outcome = Some(Outcome::Forwarded);
//! telemetry.emit(event, 200, std::time::Duration::from_millis(12));
//! assert_eq!(sink.0.lock().unwrap()[0]["outcome"], "forwarded");
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::{json, Value};

use crate::flags::Flags;
use crate::metrics::Metrics;
use crate::pipeline::Pipelines;

/// Where request events go: a pipeline's input.
pub trait EventSink: Send + Sync + 'static {
    /// Offers `event` to `pipeline` without blocking; `false` when it was not accepted.
    fn submit(&self, pipeline: &str, event: Value) -> bool;
}

impl EventSink for Pipelines {
    fn submit(&self, pipeline: &str, event: Value) -> bool {
        Pipelines::submit(self, pipeline, event)
    }
}

/// How the gateway dealt with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent to the provider asked for (whatever the upstream answered).
    Forwarded,
    /// Refused by the provider's breaker (no fallback admitted it).
    Rejected,
    /// Refused because global health is failing.
    Shed,
    /// Served by a fallback provider.
    Fallback,
}

impl Outcome {
    /// The event's `outcome` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Rejected => "rejected",
            Self::Shed => "shed",
            Self::Fallback => "fallback",
        }
    }
}

/// What the gateway learnt about one request, filled in as it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEvent {
    /// The provider asked for (the route's first segment).
    pub provider: String,
    /// The request path after the provider, without the query.
    pub endpoint: String,
    /// The model, when the gateway read the body for it (per-model breakers).
    pub model: Option<String>,
    /// State, once the response headers were known, of the breaker that decided: the
    /// serving provider's (a fallback's, for `fallback`), the rejecting one's for `rejected`;
    /// `None` when no breaker was consulted (`shed`).
    pub breaker_state: Option<&'static str>,
    /// `None` until admission decided; events without an outcome are not emitted.
    pub outcome: Option<Outcome>,
}

impl RequestEvent {
    /// An event for a request to `provider` × `endpoint`, not decided yet.
    pub fn new(provider: &str, endpoint: &str) -> Self {
        RequestEvent {
            provider: provider.to_owned(),
            endpoint: endpoint.to_owned(),
            model: None,
            breaker_state: None,
            outcome: None,
        }
    }

    /// The JSON event: `ts` (RFC 3339, milliseconds), `provider`, `endpoint`, `model`,
    /// `status`, `latency_ms`, `breaker_state`, `outcome`.
    pub fn to_json(&self, ts: SystemTime, status: u16, latency: Duration) -> Value {
        json!({
            "ts": humantime::format_rfc3339_millis(ts).to_string(),
            "provider": self.provider,
            "endpoint": self.endpoint,
            "model": self.model,
            "status": status,
            "latency_ms": (latency.as_secs_f64() * 1e6).round() / 1e3,
            "breaker_state": self.breaker_state,
            "outcome": self.outcome.map(Outcome::as_str),
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Sends request events to the telemetry pipeline, per provider host as its flag allows.
pub struct Telemetry {
    sink: Arc<dyn EventSink>,
    /// `telemetry.pipeline`.
    pipeline: String,
    /// Source of `seawall.telemetry.enabled`; `None` (no `feature_flags`): always on.
    flags: Option<Arc<Flags>>,
    /// `seawall_telemetry_events_total{result="submitted"}`.
    submitted: Counter,
    /// `…{result="dropped"}`: the pipeline refused the event (unknown, full or stopping).
    dropped: Counter,
}

impl Telemetry {
    /// Events to `pipeline` through `sink`, gated by `flags` when given; the counters are
    /// registered in `metrics`.
    pub fn new(
        sink: Arc<dyn EventSink>,
        pipeline: &str,
        flags: Option<Arc<Flags>>,
        metrics: &Metrics,
    ) -> Telemetry {
        let family = Family::<ResultLabels, Counter>::default();
        metrics.register(
            "telemetry_events",
            "Gateway request events offered to the telemetry pipeline, by result",
            family.clone(),
        );
        let counter = |result| family.get_or_create(&ResultLabels { result }).clone();
        Telemetry {
            sink,
            pipeline: pipeline.to_owned(),
            flags,
            submitted: counter("submitted"),
            dropped: counter("dropped"),
        }
    }

    /// Whether requests to `provider` produce events: its host's `seawall.telemetry.enabled`
    /// flag as cached right now (default on).
    pub fn enabled_for(&self, provider: &str) -> bool {
        self.flags
            .as_ref()
            .is_none_or(|f| f.telemetry_enabled(provider))
    }

    /// Submits `event` (if decided) with the response `status` and `latency`; never waits.
    pub fn emit(&self, event: RequestEvent, status: u16, latency: Duration) {
        if event.outcome.is_none() {
            return;
        }
        let value = event.to_json(SystemTime::now(), status, latency);
        if self.sink.submit(&self.pipeline, value) {
            self.submitted.inc();
        } else {
            self.dropped.inc();
        }
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("pipeline", &self.pipeline)
            .field("flags", &self.flags.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_every_field() {
        let mut e = RequestEvent::new("openai", "/v1/responses");
        e.model = Some("gpt".into());
        e.breaker_state = Some("closed");
        e.outcome = Some(Outcome::Fallback);
        let ts = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let v = e.to_json(ts, 200, Duration::from_micros(12_345));
        assert_eq!(
            v,
            json!({"ts":"2023-11-14T22:13:20.123Z","provider":"openai","endpoint":"/v1/responses",
                   "model":"gpt","status":200,"latency_ms":12.345,"breaker_state":"closed",
                   "outcome":"fallback"})
        );
    }

    struct Refusing;
    impl EventSink for Refusing {
        fn submit(&self, _: &str, _: Value) -> bool {
            false
        }
    }

    #[test]
    fn undecided_events_are_not_sent_and_refusals_are_counted() {
        let metrics = Metrics::new();
        let t = Telemetry::new(Arc::new(Refusing), "p", None, &metrics);
        assert!(t.enabled_for("any"));
        t.emit(RequestEvent::new("a", "/"), 400, Duration::ZERO);
        let mut e = RequestEvent::new("a", "/");
        e.outcome = Some(Outcome::Shed);
        t.emit(e, 503, Duration::ZERO);
        let text = metrics.encode();
        assert!(text.contains(r#"seawall_telemetry_events_total{result="dropped"} 1"#));
        assert!(text.contains(r#"seawall_telemetry_events_total{result="submitted"} 0"#));
    }
}
