//! One admitted call: send it upstream within the provider's timeouts, give the breaker its
//! verdict on what happened ([`verdict`](super::verdict)), and stream the answer back.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use seawall_breaker::OwnedPermit;
use tokio::time::Instant;

use super::admit::Admitted;
use super::answers::{self, X_SEAWALL_FALLBACK, X_SEAWALL_TARGET};
use super::body::{GuardedBody, Prefixed};
use super::quota::{is_insufficient_quota, ERROR_PEEK_LIMIT};
use super::sse::SseScanner;
use super::target::Target;
use super::upstream::Upstream;
use super::verdict::{judge, Happened};
use super::websocket::CountedTunnel;
use super::{headers, Route};
use crate::config::ProviderKind;
use crate::http1::outbound::{Outgoing, ResponseBody, SendError, UpstreamResponse};
use crate::message::{full, Body, Reply, Tunnel};
use crate::metrics::Metrics;

/// What forwarding needs from the gateway.
pub(crate) struct Forwarder<'a> {
    pub(crate) metrics: &'a Metrics,
    /// Client authentication is on: client credentials are not forwarded.
    pub(crate) auth_on: bool,
}

/// What one attempt came to.
pub(crate) struct Answered {
    /// The answer for the client (the last one, when every attempt fails).
    pub(crate) reply: Reply,
    /// Why the attempt failed before any byte of its answer went to the client (so it may be
    /// tried elsewhere), as `seawall_failover_attempts_total` labels it.
    pub(crate) failed: Option<Cow<'static, str>>,
}

/// One attempt's request: what every attempt of a client request shares.
pub(crate) struct Attempt<'r> {
    pub(crate) method: &'r Method,
    /// The client's fields, adapted for the target here.
    pub(crate) headers: HeaderMap,
    /// The protocol of an upgrade request.
    pub(crate) upgrade: Option<&'r HeaderValue>,
    pub(crate) body: Bytes,
    pub(crate) route: &'r Route<'r>,
    pub(crate) client_ip: IpAddr,
    /// Bounds the wait for the answer's head (what is left of `timeouts.total`).
    pub(crate) first_byte: Duration,
}

impl Forwarder<'_> {
    /// Sends `call` upstream and returns the reply for the client, and whether it failed in
    /// a way another target could try again.
    pub(crate) async fn forward(&self, call: Admitted<'_>, attempt: Attempt<'_>) -> Answered {
        let Admitted {
            upstream,
            target,
            permit,
            endpoint,
            fallback,
        } = call;
        let Attempt {
            method,
            mut headers,
            upgrade,
            body,
            route,
            client_ip,
            first_byte,
        } = attempt;
        let endpoint = &*endpoint;
        headers::to_upstream(&mut headers, target, client_ip, self.auth_on);
        let outgoing = Outgoing {
            method,
            target: target.target(route.path(), route.query),
            headers: &headers,
            upgrade,
        };
        let started = Instant::now();
        let in_flight = target.load.start();
        let sent = target
            .pool
            .send(
                outgoing,
                body,
                upstream.timeouts.connect.min(first_byte),
                first_byte,
            )
            .await;
        drop(in_flight);
        let secs = started.elapsed().as_secs_f64();
        let resp = match sent {
            Ok(resp) => resp,
            Err(error) => return self.unanswered(upstream, target, endpoint, permit, error, secs),
        };
        let name = upstream.name.as_str();
        let status = resp.status;
        self.metrics
            .observe_upstream(name, endpoint, status.as_str(), secs);
        tracing::debug!(
            provider = name,
            target = %target.name,
            endpoint,
            status = status.as_u16(),
            latency_ms = secs * 1e3,
            fallback,
            "upstream response"
        );
        if let Some(limits) = &target.limits {
            limits.observe(&resp.headers);
        }
        let mut resp = resp;
        let (mut reply, failed) = match (resp.upgraded.take(), upgrade) {
            (Some(upgraded), Some(protocol)) => {
                let head = Happened::Head {
                    status,
                    retry_after: None,
                    quota_exhausted: false,
                };
                judge(head, &upstream.failure_status).apply(permit);
                let io = Box::new(CountedTunnel::new(upgraded, &upstream.metrics));
                let reply = Reply::switching(resp.headers, protocol.clone(), Tunnel(io));
                (reply, None)
            }
            _ => respond(upstream, permit, resp).await,
        };
        if fallback {
            if let Ok(v) = HeaderValue::try_from(name) {
                reply.headers_mut().insert(X_SEAWALL_FALLBACK, v);
            }
        }
        if let Some(served_by) = &target.served_by {
            reply
                .headers_mut()
                .insert(X_SEAWALL_TARGET, served_by.clone());
        }
        Answered { reply, failed }
    }

    /// The call got no answer: the verdict, what the client is told (the cause named), and
    /// a warn line (at most one per target every `WARN_PERIOD`, counting those held back).
    fn unanswered(
        &self,
        upstream: &Upstream,
        target: &Target,
        endpoint: &str,
        permit: OwnedPermit,
        error: SendError,
        secs: f64,
    ) -> Answered {
        let happened = match &error {
            SendError::Connect(_) => Happened::ConnectFailed,
            SendError::ConnectTimeout(_) => Happened::ConnectTimedOut,
            SendError::FirstByteTimeout => Happened::FirstByteTimedOut,
            SendError::Io(_) | SendError::Closed | SendError::Head(_) => Happened::UpstreamBroke,
        };
        let verdict = judge(happened, &upstream.failure_status);
        verdict.apply(permit);
        let name = upstream.name.as_str();
        self.metrics.observe_upstream(name, endpoint, "error", secs);
        let cause = error.cause();
        match target.unanswered.allow() {
            Some(held_back) => tracing::warn!(provider = name, target = %target.name, endpoint,
                cause, %error, latency_ms = secs * 1e3, held_back,
                "upstream request failed without an answer"),
            None => tracing::debug!(provider = name, target = %target.name, endpoint, cause,
                %error, latency_ms = secs * 1e3, "upstream request failed without an answer"),
        }
        let reply = match error {
            SendError::ConnectTimeout(_) => answers::gateway_timeout(name, cause, "connect"),
            SendError::FirstByteTimeout => {
                answers::gateway_timeout(name, cause, "no response headers in time")
            }
            _ => answers::upstream_unavailable(name, cause, &error),
        };
        Answered {
            reply: reply.into(),
            failed: verdict.failure_reason(),
        }
    }
}

/// Gives the breaker its verdict on the response head (the body's, for a good one) and wraps
/// the body for the client, with the reason it failed if it did (before any byte went out).
/// The upstream's fields pass through as they arrived.
async fn respond(
    upstream: &Upstream,
    permit: OwnedPermit,
    resp: UpstreamResponse,
) -> (Reply, Option<Cow<'static, str>>) {
    let UpstreamResponse {
        status,
        headers,
        body,
        ..
    } = resp;
    let idle = upstream.timeouts.idle;
    let retry_after = seawall_http::retry_after(&headers, SystemTime::now());
    // OpenAI's 429 tells in its body whether it is an overload or an empty account.
    let peeked = if upstream.kind == ProviderKind::Openai
        && status == StatusCode::TOO_MANY_REQUESTS
        && upstream.is_failure(status)
    {
        peek(body, idle).await
    } else {
        Some(Peeked::Not(body))
    };
    let Some(peeked) = peeked else {
        let verdict = judge(Happened::UpstreamBroke, &upstream.failure_status);
        verdict.apply(permit);
        let why = format!("its {status} answer broke off or stalled before its body was read");
        let reply = answers::upstream_unavailable(&upstream.name, "broken_response", &why);
        return (reply.into(), verdict.failure_reason());
    };
    let quota_exhausted = matches!(&peeked, Peeked::Whole(bytes) if is_insufficient_quota(bytes));
    let head = Happened::Head {
        status,
        retry_after,
        quota_exhausted,
    };
    let verdict = judge(head, &upstream.failure_status);
    let held = verdict.apply(permit);
    // Only a body that decides the verdict is scanned for error events.
    let scanner = held
        .is_some()
        .then(|| SseScanner::for_kind(upstream.kind))
        .flatten()
        .filter(|_| is_event_stream(headers.get("content-type")));
    let body: Body = match peeked {
        Peeked::Whole(bytes) => full(bytes),
        Peeked::Long(prefix, rest) => {
            let rest = GuardedBody::new(rest, idle, held, scanner, &upstream.metrics);
            Prefixed::new(prefix, rest).boxed()
        }
        Peeked::Not(body) => GuardedBody::new(body, idle, held, scanner, &upstream.metrics).boxed(),
    };
    (
        Reply::passing(status, headers, body),
        verdict.failure_reason(),
    )
}

/// Whether a response with this `content-type` is a server-sent event stream.
fn is_event_stream(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|v| {
        v.split(|&b| b == b';')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"text/event-stream"))
    })
}

/// An error body, read or not for inspection.
enum Peeked {
    /// Not read.
    Not(ResponseBody),
    /// The whole body (at most [`ERROR_PEEK_LIMIT`] bytes).
    Whole(Bytes),
    /// The first bytes, and the rest still to stream.
    Long(Bytes, ResponseBody),
}

/// Reads an error body for inspection: `None` when the upstream failed or fell silent while
/// sending it.
async fn peek(mut body: ResponseBody, idle: Duration) -> Option<Peeked> {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(None) => return Some(Peeked::Whole(buf.freeze())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > ERROR_PEEK_LIMIT {
                        return Some(Peeked::Long(buf.freeze(), body));
                    }
                }
            }
            Ok(Some(Err(_))) | Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_event_streams() {
        assert!(is_event_stream(Some(b"text/event-stream; charset=utf-8")));
        assert!(is_event_stream(Some(b"Text/Event-Stream")));
        assert!(!is_event_stream(Some(b"application/json")));
        assert!(!is_event_stream(None));
    }
}
