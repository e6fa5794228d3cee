//! One admitted call: send it upstream within the provider's timeouts, give the breaker its
//! verdict on what happened ([`verdict`](super::verdict)), and stream the answer back.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{request, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use seawall_breaker::OwnedPermit;
use tokio::time::Instant;

use super::admit::Admitted;
use super::answers::{self, X_SEAWALL_FALLBACK};
use super::body::{GuardedBody, Prefixed};
use super::quota::{is_insufficient_quota, ERROR_PEEK_LIMIT};
use super::sse::SseScanner;
use super::upstream::Upstream;
use super::verdict::{judge, Happened};
use super::websocket::CountedTunnel;
use super::{headers, Route};
use crate::config::ProviderKind;
use crate::http1::outbound::{Outgoing, ResponseBody, SendError, UpstreamResponse};
use crate::message::{full, Body, Reply, Tunnel, UpgradeRequest};
use crate::metrics::Metrics;

/// What forwarding needs from the gateway.
pub(crate) struct Forwarder<'a> {
    pub(crate) metrics: &'a Metrics,
    /// Client authentication is on: client credentials are not forwarded.
    pub(crate) auth_on: bool,
}

impl Forwarder<'_> {
    /// Sends the call upstream and returns the reply for the client.
    pub(crate) async fn forward(
        &self,
        call: Admitted<'_>,
        mut parts: request::Parts,
        body: Bytes,
        route: &Route<'_>,
        client_ip: IpAddr,
    ) -> Reply {
        let Admitted {
            upstream,
            permit,
            endpoint,
            fallback,
        } = call;
        let endpoint = &*endpoint;
        headers::to_upstream(&mut parts.headers, upstream, client_ip, self.auth_on);
        let upgrade = parts.extensions.remove::<UpgradeRequest>().map(|u| u.0);
        let outgoing = Outgoing {
            method: &parts.method,
            target: upstream.target(route.path(), route.query),
            headers: &parts.headers,
            upgrade: upgrade.as_ref(),
        };
        let started = Instant::now();
        let timeouts = &upstream.timeouts;
        let sent = upstream
            .pool
            .send(outgoing, body, timeouts.connect, timeouts.first_byte)
            .await;
        let secs = started.elapsed().as_secs_f64();
        let resp = match sent {
            Ok(resp) => resp,
            Err(error) => return self.unanswered(upstream, endpoint, permit, error, secs),
        };
        let name = upstream.name.as_str();
        let status = resp.status;
        self.metrics
            .observe_upstream(name, endpoint, status.as_str(), secs);
        tracing::debug!(
            provider = name,
            endpoint,
            status = status.as_u16(),
            latency_ms = secs * 1e3,
            fallback,
            "upstream response"
        );
        let mut resp = resp;
        let mut reply = match (resp.upgraded.take(), upgrade) {
            (Some(upgraded), Some(protocol)) => {
                let head = Happened::Head {
                    status,
                    retry_after: None,
                    quota_exhausted: false,
                };
                judge(head, &upstream.failure_status).apply(permit);
                let io = Box::new(CountedTunnel::new(upgraded, &upstream.metrics));
                Reply::switching(resp.headers, protocol, Tunnel(io))
            }
            _ => respond(upstream, permit, resp).await,
        };
        if fallback {
            if let Ok(v) = HeaderValue::try_from(name) {
                reply.headers_mut().insert(X_SEAWALL_FALLBACK, v);
            }
        }
        reply
    }

    /// The call got no answer: the verdict, and what the client is told.
    fn unanswered(
        &self,
        upstream: &Upstream,
        endpoint: &str,
        permit: OwnedPermit,
        error: SendError,
        secs: f64,
    ) -> Reply {
        let happened = match &error {
            SendError::Connect(_) => Happened::ConnectFailed,
            SendError::ConnectTimeout(_) => Happened::ConnectTimedOut,
            SendError::FirstByteTimeout => Happened::FirstByteTimedOut,
            SendError::Io(_) | SendError::Closed | SendError::Head(_) => Happened::UpstreamBroke,
        };
        judge(happened, &upstream.failure_status).apply(permit);
        let name = upstream.name.as_str();
        self.metrics.observe_upstream(name, endpoint, "error", secs);
        tracing::debug!(provider = name, endpoint, %error, latency_ms = secs * 1e3,
            "upstream request failed");
        match error {
            SendError::ConnectTimeout(_) => answers::gateway_timeout(name, "connect"),
            SendError::FirstByteTimeout => {
                answers::gateway_timeout(name, "no response headers in time")
            }
            _ => answers::bad_gateway(name),
        }
        .into()
    }
}

/// Gives the breaker its verdict on the response head (the body's, for a good one) and wraps
/// the body for the client. The upstream's fields pass through as they arrived.
async fn respond(upstream: &Upstream, permit: OwnedPermit, resp: UpstreamResponse) -> Reply {
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
        judge(Happened::UpstreamBroke, &upstream.failure_status).apply(permit);
        return answers::bad_gateway(&upstream.name).into();
    };
    let quota_exhausted = matches!(&peeked, Peeked::Whole(bytes) if is_insufficient_quota(bytes));
    let head = Happened::Head {
        status,
        retry_after,
        quota_exhausted,
    };
    let held = judge(head, &upstream.failure_status).apply(permit);
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
    Reply::passing(status, headers, body)
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
