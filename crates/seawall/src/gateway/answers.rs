//! What the gateway answers itself: breaker rejections and global-health shedding
//! in each provider's own error shape, and JSON errors for auth, routing, paths, size, connect and timeout problems.

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use seawall_breaker::Rejected;
use serde::Serialize;

use super::path::PathError;
use crate::config::ProviderKind;
use crate::health::Check;
use crate::message::{json, json_error, Body};

/// Marks a response the breaker answered instead of the upstream.
pub(crate) const X_SEAWALL_CIRCUIT: HeaderName = HeaderName::from_static("x-seawall-circuit");

/// Names the provider that served a request in place of the one asked for.
pub(crate) const X_SEAWALL_FALLBACK: HeaderName = HeaderName::from_static("x-seawall-fallback");

/// Names the target that served a request, for a provider with several.
pub(crate) const X_SEAWALL_TARGET: HeaderName = HeaderName::from_static("x-seawall-target");

/// Tells the official OpenAI and Anthropic SDKs whether to retry an error answer themselves.
const X_SHOULD_RETRY: HeaderName = HeaderName::from_static("x-should-retry");

/// The `retry-after` of a breaker an operator forced open: it opens again only when someone
/// resets it, so there is no time left to tell; a minute is a polite polling pace.
const FORCED_OPEN_RETRY_AFTER_SECS: u64 = 60;

/// `503` for a call `rejected` by the breaker of `provider` × `endpoint`, shaped like an
/// error of that provider's API so its SDKs parse it (and retry after `retry-after`).
///
/// A breaker forced open by an operator never goes half-open by itself: its answer says so,
/// carries `retry-after: 60` and `x-should-retry: false`, so the SDKs hand the error to the
/// application at once instead of sleeping through retries that cannot succeed.
pub(crate) fn rejection(
    kind: ProviderKind,
    provider: &str,
    endpoint: &str,
    rejected: &Rejected,
) -> Response<Body> {
    let breaker = format!("the circuit breaker for provider `{provider}` endpoint `{endpoint}`");
    if rejected.is_forced() {
        let secs = FORCED_OPEN_RETRY_AFTER_SECS;
        let message = format!(
            "seawall: {breaker} was forced open by an operator and stays open until it is reset; retry after {secs}s"
        );
        let mut resp = unavailable(kind, &message, secs);
        resp.headers_mut()
            .insert(X_SHOULD_RETRY, HeaderValue::from_static("false"));
        return resp;
    }
    let secs = rejected.retry_after_secs();
    let message =
        format!("seawall: {breaker} is open after upstream failures; retry after {secs}s");
    unavailable(kind, &message, secs)
}

/// `503` for a request shed because the global health `check` is failing, shaped like a
/// breaker rejection; `secs` is the health `check_interval` in whole seconds.
pub(crate) fn shed(kind: ProviderKind, provider: &str, check: Check, secs: u64) -> Response<Body> {
    let message = format!(
        "seawall: shedding load under {}: global health check `{}` is failing, so provider `{provider}` is not contacted; retry after {secs}s",
        check.pressure(),
        check.as_str()
    );
    unavailable(kind, &message, secs)
}

/// `503` with `message` in the error shape of a `kind` provider, `retry-after: secs` and
/// `x-seawall-circuit: open`.
fn unavailable(kind: ProviderKind, message: &str, secs: u64) -> Response<Body> {
    let shape = Shape {
        anthropic: "overloaded_error",
        openai: ("server_error", "service_unavailable"),
        generic: "circuit_open",
    };
    let mut resp = shaped(kind, StatusCode::SERVICE_UNAVAILABLE, message, shape);
    let headers = resp.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    headers.insert(X_SEAWALL_CIRCUIT, HeaderValue::from_static("open"));
    resp
}

/// `429` for a call no target of `provider` can take before `secs` from now, their quotas
/// spent (as their own answers said), in the provider's rate-limit error shape, with
/// `retry-after` and what is known of the quota in the provider's own fields (`quota`).
pub(crate) fn rate_limited(
    kind: ProviderKind,
    provider: &str,
    secs: u64,
    quota: HeaderMap,
) -> Response<Body> {
    let message = format!(
        "seawall: every target of provider `{provider}` has spent its rate limit; retry after {secs}s"
    );
    let shape = Shape {
        anthropic: "rate_limit_error",
        openai: ("requests", "rate_limit_exceeded"),
        generic: "rate_limited",
    };
    let mut resp = shaped(kind, StatusCode::TOO_MANY_REQUESTS, &message, shape);
    let headers = resp.headers_mut();
    headers.extend(quota);
    headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    headers.insert(X_SEAWALL_CIRCUIT, HeaderValue::from_static("rate_limited"));
    resp
}

/// The error `type` (and OpenAI's `code`) of an answer in each provider's shape.
struct Shape {
    anthropic: &'static str,
    /// `(type, code)`.
    openai: (&'static str, &'static str),
    generic: &'static str,
}

/// `status` with `message` in the error shape of a `kind` provider.
fn shaped(kind: ProviderKind, status: StatusCode, message: &str, shape: Shape) -> Response<Body> {
    // Typed (not `json!`): one allocation for the whole body. Fields are declared in
    // alphabetical order, the order `json!` produced before.
    match kind {
        ProviderKind::Anthropic => json(
            status,
            &AnthropicError {
                error: TypedMessage {
                    message,
                    r#type: shape.anthropic,
                },
                r#type: "error",
            },
        ),
        ProviderKind::Openai => json(
            status,
            &OpenaiError {
                error: OpenaiMessage {
                    code: shape.openai.1,
                    message,
                    param: None,
                    r#type: shape.openai.0,
                },
            },
        ),
        ProviderKind::Generic => json(
            status,
            &GenericError {
                error: TypedMessage {
                    message,
                    r#type: shape.generic,
                },
            },
        ),
    }
}

/// Anthropic's error shape: `{"error":{"message","type"},"type":"error"}`.
#[derive(Serialize)]
struct AnthropicError<'a> {
    error: TypedMessage<'a>,
    r#type: &'static str,
}

/// OpenAI's error shape: `{"error":{"code","message","param","type"}}`.
#[derive(Serialize)]
struct OpenaiError<'a> {
    error: OpenaiMessage<'a>,
}

#[derive(Serialize)]
struct OpenaiMessage<'a> {
    code: &'static str,
    message: &'a str,
    param: Option<&'static str>,
    r#type: &'static str,
}

/// The generic shape: `{"error":{"message","type"}}`.
#[derive(Serialize)]
struct GenericError<'a> {
    error: TypedMessage<'a>,
}

#[derive(Serialize)]
struct TypedMessage<'a> {
    message: &'a str,
    r#type: &'static str,
}

/// `401`: no accepted client token.
pub(crate) fn unauthorized() -> Response<Body> {
    let mut resp = json_error(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "a valid token is required in `authorization: Bearer <token>` or `x-api-key`",
    );
    resp.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    resp
}

/// `404`: the path names no configured provider.
pub(crate) fn unknown_provider(provider: Option<&str>) -> Response<Body> {
    let message = match provider {
        Some(p) => format!("unknown provider `{p}`; routes are /{{provider}}/{{path}}"),
        None => "no provider in the path; routes are /{provider}/{path}".to_owned(),
    };
    json_error(StatusCode::NOT_FOUND, "not_found", &message)
}

/// `413`: the request body exceeds `server.max_body`.
pub(crate) fn too_large(limit: u64) -> Response<Body> {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        &format!("the request body exceeds server.max_body ({limit} bytes)"),
    )
}

/// `400`: the request path is refused by the path rules:
/// `{"error":{"type":"invalid_path","reason":…,"message":…}}`, `reason` as in
/// `seawall_refused_paths_total`.
pub(crate) fn invalid_path(why: PathError) -> Response<Body> {
    let message = format!("seawall: {why}; see the README's \"Paths\"");
    let body = serde_json::json!({
        "error": { "type": "invalid_path", "reason": why.reason(), "message": message }
    });
    json(StatusCode::BAD_REQUEST, &body)
}

/// `400`: the request could not be read or forwarded as given.
pub(crate) fn bad_request(message: &str) -> Response<Body> {
    json_error(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// `502`: no target was left to try.
pub(crate) fn bad_gateway(provider: &str) -> Response<Body> {
    json_error(
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
        &format!("provider `{provider}` could not be reached"),
    )
}

/// `502`: the upstream could not be reached or broke the exchange:
/// `{"error":{"type":"upstream_unavailable","cause":…,"message":…}}`, `cause` one word (`dns`,
/// `refused`, `tls`, …) and the message the whole error.
pub(crate) fn upstream_unavailable(
    provider: &str,
    cause: &'static str,
    error: &dyn std::fmt::Display,
) -> Response<Body> {
    let message = format!("seawall: no answer from provider `{provider}`: {error}");
    caused(
        StatusCode::BAD_GATEWAY,
        "upstream_unavailable",
        cause,
        &message,
    )
}

/// `504`: the upstream did not connect or answer in time (`cause` `connect_timeout` or
/// `first_byte_timeout`).
pub(crate) fn gateway_timeout(provider: &str, cause: &'static str, what: &str) -> Response<Body> {
    let message = format!("seawall: provider `{provider}` timed out ({what})");
    caused(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
        cause,
        &message,
    )
}

/// `{"error":{"type","cause","message"}}` with `status`.
fn caused(status: StatusCode, r#type: &str, cause: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "error": { "type": r#type, "cause": cause, "message": message }
    });
    json(status, &body)
}
