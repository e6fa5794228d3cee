//! The recent breaker transitions, for `GET /v1/transitions` and the dashboard: a bounded ring
//! (the last [`CAPACITY`] transitions, provider and output breakers alike) behind a mutex.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use seawall_breaker::Transition;
use serde::Serialize;

use crate::labels::BreakerLabels;

/// How many transitions the ring keeps; older ones are forgotten.
pub const CAPACITY: usize = 200;

/// Longest label kept in an entry, in bytes: request paths are client-chosen, so an entry's
/// size stays bounded whatever the traffic.
const MAX_LABEL: usize = 256;

/// One breaker transition as the timeline shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransitionEntry {
    /// Increases by one with every recorded transition (so a client can spot new ones).
    pub seq: u64,
    /// Wall-clock time of the transition (RFC 3339, milliseconds, UTC).
    pub at: String,
    /// `provider` or `output`.
    pub kind: &'static str,
    /// Provider or output name.
    pub name: String,
    /// Endpoint path or URL.
    pub endpoint: String,
    /// Model, or empty.
    pub model: String,
    /// Target of a multi-target provider, or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// State before: `closed`, `open` or `half_open`.
    pub from: &'static str,
    /// State after.
    pub to: &'static str,
    /// Mode after: `normal`, `forced_open`, `disabled` or `metrics_only`.
    pub mode: &'static str,
    /// Why it happened (e.g. `consecutive_failures`).
    pub reason: &'static str,
}

/// The bounded ring of recent transitions.
#[derive(Debug)]
pub struct Timeline {
    inner: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    entries: VecDeque<TransitionEntry>,
    next_seq: u64,
    capacity: usize,
}

impl Timeline {
    /// An empty timeline keeping the last [`CAPACITY`] transitions.
    pub fn new() -> Self {
        Self::with_capacity(CAPACITY)
    }

    /// An empty timeline keeping the last `capacity` transitions (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Timeline {
            inner: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity),
                next_seq: 1,
                capacity,
            }),
        }
    }

    /// Records `t` of the breaker labelled `labels`, forgetting the oldest entry when full.
    pub fn record(&self, labels: &BreakerLabels, t: &Transition) {
        let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.entries.len() == ring.capacity {
            ring.entries.pop_front();
        }
        ring.entries.push_back(TransitionEntry {
            seq,
            at,
            kind: labels.kind,
            name: bounded(&labels.name),
            endpoint: bounded(&labels.endpoint),
            model: bounded(&labels.model),
            target: bounded(&labels.target),
            from: t.from.as_str(),
            to: t.to.as_str(),
            mode: t.mode.as_str(),
            reason: t.reason.as_str(),
        });
    }

    /// The kept transitions, newest first.
    pub fn recent(&self) -> Vec<TransitionEntry> {
        let ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        ring.entries.iter().rev().cloned().collect()
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

/// `s`, cut to at most [`MAX_LABEL`] bytes on a character boundary (with `…` when cut).
pub(crate) fn bounded(s: &str) -> String {
    if s.len() <= MAX_LABEL {
        return s.to_owned();
    }
    let mut end = MAX_LABEL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use seawall_breaker::{CircuitBreaker, Config};

    fn labels(endpoint: &str) -> BreakerLabels {
        BreakerLabels {
            kind: "provider",
            name: "p".into(),
            endpoint: endpoint.into(),
            model: String::new(),
            target: String::new(),
        }
    }

    /// The transitions of a breaker that trips, is reset, then trips again.
    fn transitions() -> Vec<Transition> {
        let cb = CircuitBreaker::new(Config::builder().failure_threshold(1).build().unwrap());
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        cb.on_state_change(move |t| sink.lock().unwrap().push(t.clone()));
        cb.try_acquire().unwrap().failure();
        cb.reset();
        cb.try_acquire().unwrap().failure();
        let out = seen.lock().unwrap().clone();
        out
    }

    #[test]
    fn keeps_the_newest_first_and_stays_bounded() {
        let ts = transitions();
        assert_eq!(ts.len(), 3);
        let timeline = Timeline::with_capacity(2);
        for (i, t) in ts.iter().enumerate() {
            timeline.record(&labels(&format!("/e{i}")), t);
        }
        let recent = timeline.recent();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].endpoint, "/e2");
        assert_eq!(recent[0].seq, 3);
        assert_eq!((recent[0].from, recent[0].to), ("closed", "open"));
        assert_eq!(recent[0].reason, "consecutive_failures");
        assert_eq!(recent[1].endpoint, "/e1");
        assert_eq!(recent[1].to, "closed");
        assert!(recent[0].at.ends_with('Z'), "{}", recent[0].at);
    }

    #[test]
    fn long_labels_are_cut() {
        let timeline = Timeline::new();
        let long = "é".repeat(1000);
        timeline.record(&labels(&long), &transitions()[0]);
        let entry = &timeline.recent()[0];
        assert!(entry.endpoint.len() <= MAX_LABEL + '…'.len_utf8());
        assert!(entry.endpoint.ends_with('…'));
    }
}
