//! What replicas tell each other on the channel `{prefix}:events`, and what they keep in
//! Redis, as JSON: a breaker's identity ([`FleetKey`]), a fleet-wide state change
//! ([`Message`]), and the record of a breaker the fleet holds open ([`OpenRecord`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::breakers::breaker_id;
use crate::labels::BreakerLabels;

/// The version of the wire format; messages of another version are ignored.
pub const VERSION: u8 = 1;

/// A breaker as every replica names it (its labels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetKey {
    /// `provider` or `output`.
    pub kind: String,
    /// Provider or output name.
    pub name: String,
    /// The provider's target, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// Endpoint label (a path template) or output URL.
    pub endpoint: String,
    /// Model, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
}

impl FleetKey {
    /// The key of the breaker labelled `l`.
    pub fn of(l: &BreakerLabels) -> Self {
        FleetKey {
            kind: l.kind.to_owned(),
            name: l.name.clone(),
            target: l.target.clone(),
            endpoint: l.endpoint.clone(),
            model: l.model.clone(),
        }
    }

    /// The labels it stands for, or `None` for a kind this version does not know.
    pub fn labels(&self) -> Option<BreakerLabels> {
        let kind = match self.kind.as_str() {
            "provider" => "provider",
            "output" => "output",
            _ => return None,
        };
        Some(BreakerLabels {
            kind,
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            model: self.model.clone(),
            target: self.target.clone(),
        })
    }

    /// The breaker's id (as in `/v1/breakers`): the same on every replica, so it names the
    /// breaker's Redis keys.
    pub fn id(&self) -> Option<String> {
        self.labels().map(|l| breaker_id(&l))
    }
}

/// An operator's action, applied fleet-wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminAction {
    /// `POST /v1/breakers/{id}/force-open`.
    ForceOpen,
    /// `POST /v1/breakers/{id}/disable`.
    Disable,
    /// `POST /v1/breakers/{id}/reset`.
    Reset,
}

impl AdminAction {
    /// The name in messages, logs and the `/v1/cluster` view.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminAction::ForceOpen => "force_open",
            AdminAction::Disable => "disable",
            AdminAction::Reset => "reset",
        }
    }
}

/// One fleet-wide state change, published by the replica that caused it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// [`VERSION`].
    pub v: u8,
    /// The sender's `node_id`.
    pub node: String,
    /// When it was sent (Unix microseconds): the receiver measures propagation with it.
    pub sent_us: u64,
    /// Which breaker.
    pub key: FleetKey,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What a [`Message`] says happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The fleet opens (or keeps open) the breaker until `until_ms`.
    Trip {
        /// When the fleet's open period ends (Unix milliseconds).
        #[serde(deserialize_with = "millis")]
        until_ms: u64,
        /// The replica whose trip came first in this outage.
        first: String,
        /// The reason of the trip that opened it.
        reason: String,
    },
    /// The fleet's probe round succeeded: every replica closes the breaker.
    Close,
    /// An operator's action on one replica, for all.
    Admin {
        /// Which.
        action: AdminAction,
    },
}

impl Event {
    /// The `type` label of `seawall_cluster_messages_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Trip { .. } => "trip",
            Event::Close => "close",
            Event::Admin { .. } => "admin",
        }
    }
}

/// A breaker the fleet holds open, as kept in the hash `{prefix}:open` (field: the id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRecord {
    /// Which breaker.
    pub key: FleetKey,
    /// When the open period ends (Unix milliseconds); after it, one replica probes.
    #[serde(deserialize_with = "millis")]
    pub until_ms: u64,
    /// The replica whose trip came first.
    pub first: String,
    /// The reason of that trip.
    pub reason: String,
}

/// An operator's mode kept in the hash `{prefix}:modes` (field: the id) for replicas that
/// start later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeRecord {
    /// Which breaker.
    pub key: FleetKey,
    /// `force_open` or `disable`.
    pub action: AdminAction,
}

/// Milliseconds as an integer or, as Redis's Lua `cjson` may write them, a float.
fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        .ok_or_else(|| serde::de::Error::custom("milliseconds must be a non-negative number"))
}

/// Now, in Unix microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// What is left until `until_ms` (zero when past).
pub fn left_until(until_ms: u64) -> Duration {
    Duration::from_millis(until_ms.saturating_sub(now_ms()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FleetKey {
        FleetKey {
            kind: "provider".into(),
            name: "anthropic".into(),
            target: String::new(),
            endpoint: "/v1/messages".into(),
            model: String::new(),
        }
    }

    #[test]
    fn messages_round_trip_and_name_their_type() {
        let m = Message {
            v: VERSION,
            node: "a-1".into(),
            sent_us: 1_764_480_000_123_456,
            key: key(),
            event: Event::Trip {
                until_ms: 1_764_480_005_123,
                first: "a-1".into(),
                reason: "retry_after".into(),
            },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(r#""type":"trip""#), "{text}");
        assert!(!text.contains("target"), "empty labels stay out: {text}");
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), m);
        let admin = r#"{"v":1,"node":"b","sent_us":1,"key":{"kind":"output","name":"o","endpoint":"http://x"},"type":"admin","action":"force_open"}"#;
        let m: Message = serde_json::from_str(admin).unwrap();
        assert_eq!(m.event.kind(), "admin");
        let lua = r#"{"key":{"kind":"provider","name":"a","endpoint":"/"},"until_ms":1.764480005123e+12,"first":"n","reason":"r"}"#;
        let r: OpenRecord = serde_json::from_str(lua).unwrap();
        assert_eq!(r.until_ms, 1_764_480_005_123);
        assert_eq!(m.key.labels().unwrap().kind, "output");
    }

    #[test]
    fn ids_match_the_admin_apis_and_unknown_kinds_have_none() {
        let k = key();
        assert_eq!(k.id().unwrap(), breaker_id(&k.labels().unwrap()));
        let odd = FleetKey {
            kind: "pipeline".into(),
            ..key()
        };
        assert_eq!(odd.id(), None);
    }
}
