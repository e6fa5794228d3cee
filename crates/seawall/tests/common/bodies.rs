//! The error answers the daemon writes itself, as the tests expect them: breaker rejections and
//! load shedding in each provider kind's own error shape, and ingest's `overloaded`.

use serde_json::{json, Value};

use super::client::Answer;

/// `message` in the error shape of a provider of `kind` (`anthropic`, `openai`, else generic).
pub fn provider_error(kind: &str, message: &str) -> Value {
    match kind {
        "anthropic" => {
            json!({"type":"error","error":{"type":"overloaded_error","message":message}})
        }
        "openai" => {
            json!({"error":{"message":message,"type":"server_error","param":null,"code":"service_unavailable"}})
        }
        _ => json!({"error":{"type":"circuit_open","message":message}}),
    }
}

/// The body of a rejection by the open breaker of `provider`'s `endpoint`.
pub fn rejection_body(kind: &str, provider: &str, endpoint: &str, secs: u64) -> Value {
    let message = format!(
        "seawall: the circuit breaker for provider `{provider}` endpoint `{endpoint}` is open after upstream failures; retry after {secs}s"
    );
    provider_error(kind, &message)
}

/// The body of a request to `provider` shed under `pressure` of health check `check`.
pub fn shed_body(kind: &str, provider: &str, check: &str, pressure: &str) -> Value {
    let message = format!(
        "seawall: shedding load under {pressure}: global health check `{check}` is failing, so provider `{provider}` is not contacted; retry after 1s"
    );
    provider_error(kind, &message)
}

/// Asserts a `503` the gateway wrote itself: JSON `body`, `retry-after: secs`, and
/// `x-seawall-circuit: open`.
#[track_caller]
pub fn assert_circuit_open(answer: &Answer, secs: u64, body: Value) {
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.header("retry-after"),
        Some(secs.to_string().as_str())
    );
    assert_eq!(answer.header("x-seawall-circuit"), Some("open"));
    assert_eq!(answer.json(), body);
}

/// Asserts the rejection of [`rejection_body`].
#[track_caller]
pub fn assert_rejected(answer: &Answer, kind: &str, provider: &str, endpoint: &str, secs: u64) {
    assert_circuit_open(answer, secs, rejection_body(kind, provider, endpoint, secs));
}

/// Asserts the shed answer of [`shed_body`].
#[track_caller]
pub fn assert_shed(answer: &Answer, kind: &str, provider: &str, check: &str, pressure: &str) {
    assert_circuit_open(answer, 1, shed_body(kind, provider, check, pressure));
}

/// Asserts ingest's shed answer: `503 overloaded` naming `check`, `retry-after: 1`.
#[track_caller]
pub fn assert_ingest_shed(answer: &Answer, check: &str) {
    assert_eq!(answer.status, 503, "{:?}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("retry-after"), Some("1"));
    let body = answer.json();
    assert_eq!(body["error"]["type"], "overloaded", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("`{check}`")), "{message}");
}
