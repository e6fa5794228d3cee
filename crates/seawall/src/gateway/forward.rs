//! One admitted call: send it upstream within the timeouts, judge the response for the
//! breaker, and stream it back.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{request, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use seawall_breaker::OwnedPermit;
use tokio::time::Instant;

use super::admit::Admitted;
use super::body::{GuardedBody, Prefixed};
use super::classify::{is_insufficient_quota, retry_after, ERROR_PEEK_LIMIT};
use super::client::{Outgoing, ResponseBody, SendError, UpstreamBody, UpstreamResponse};
use super::reply::{self, X_SEAWALL_FALLBACK};
use super::request::is_too_large;
use super::sse::SseScanner;
use super::upstream::Upstream;
use super::{headers, Route};
use crate::config::ProviderKind;
use crate::http::{full, Body};
use crate::metrics::Metrics;

/// What forwarding needs from the gateway.
pub(crate) struct Forwarder<'a> {
    pub(crate) metrics: &'a Metrics,
    /// Client authentication is on: client credentials are not forwarded.
    pub(crate) auth_on: bool,
    pub(crate) max_body: u64,
}

impl Forwarder<'_> {
    /// Sends the call upstream and returns the response for the client.
    pub(crate) async fn forward(
        &self,
        call: Admitted<'_>,
        mut parts: request::Parts,
        body: UpstreamBody,
        route: Route<'_>,
        client_ip: IpAddr,
    ) -> Response<Body> {
        let Admitted {
            upstream,
            permit,
            endpoint,
            fallback,
        } = call;
        headers::to_upstream(&mut parts.headers, upstream, client_ip, self.auth_on);
        let outgoing = Outgoing {
            method: &parts.method,
            target: upstream.target(route.endpoint, route.query),
            headers: &parts.headers,
        };
        let started = Instant::now();
        let timeouts = &upstream.timeouts;
        let sent = upstream
            .pool
            .send(outgoing, body, timeouts.connect, timeouts.first_byte)
            .await;
        let secs = started.elapsed().as_secs_f64();
        let name = upstream.name.as_str();
        let failed = |what: &str| {
            self.metrics.observe_upstream(name, endpoint, "error", secs);
            tracing::debug!(
                provider = name,
                endpoint,
                error = what,
                latency_ms = secs * 1e3,
                "upstream request failed"
            );
        };
        let resp = match sent {
            Ok(resp) => resp,
            Err(SendError::Body(e)) if is_too_large(&*e) => {
                permit.ignore();
                return reply::too_large(self.max_body);
            }
            Err(SendError::Body(_)) => {
                permit.ignore();
                return reply::bad_request("the request body could not be read");
            }
            Err(SendError::ConnectTimeout(_)) => {
                failed("connect timeout");
                permit.failure();
                return reply::gateway_timeout(name, "connect");
            }
            Err(SendError::FirstByteTimeout) => {
                failed("first byte timeout");
                permit.failure();
                return reply::gateway_timeout(name, "no response headers in time");
            }
            Err(e) => {
                failed(&e.to_string());
                permit.failure();
                return reply::bad_gateway(name);
            }
        };
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
        let mut resp = respond(upstream, permit, resp).await;
        if fallback {
            if let Ok(v) = HeaderValue::try_from(name) {
                resp.headers_mut().insert(X_SEAWALL_FALLBACK, v);
            }
        }
        resp
    }
}

/// Judges the upstream response for the breaker and wraps its body for the client. The
/// upstream's fields travel to the server as they arrived, in the response's extensions.
async fn respond(
    upstream: &Upstream,
    permit: OwnedPermit,
    resp: UpstreamResponse,
) -> Response<Body> {
    let UpstreamResponse {
        status,
        mut headers,
        body,
    } = resp;
    let sse = headers::is_event_stream(headers.get("content-type"));
    if sse {
        // Streamed event by event; the server frames it.
        headers.remove("content-length");
    }
    let idle = upstream.timeouts.idle;
    let body = if upstream.is_failure(status) {
        let hint = retry_after(headers.get("retry-after"), SystemTime::now());
        if upstream.kind == ProviderKind::Openai && status == StatusCode::TOO_MANY_REQUESTS {
            match peek(body, idle).await {
                Peeked::Whole(bytes) => {
                    if is_insufficient_quota(&bytes) {
                        permit.ignore();
                    } else {
                        fail(permit, hint);
                    }
                    full(bytes)
                }
                Peeked::Long(prefix, rest) => {
                    fail(permit, hint);
                    Prefixed::new(prefix, GuardedBody::new(rest, idle, None, None)).boxed()
                }
                Peeked::Broken => {
                    fail(permit, hint);
                    return reply::bad_gateway(&upstream.name);
                }
            }
        } else {
            fail(permit, hint);
            GuardedBody::new(body, idle, None, None).boxed()
        }
    } else if status.is_informational() || status.is_success() || status.is_redirection() {
        let scanner = if sse {
            SseScanner::for_kind(upstream.kind)
        } else {
            None
        };
        GuardedBody::new(body, idle, Some(permit), scanner).boxed()
    } else {
        // Other client and server errors say nothing about overload.
        permit.ignore();
        GuardedBody::new(body, idle, None, None).boxed()
    };
    let mut reply = Response::new(body);
    *reply.status_mut() = status;
    reply.extensions_mut().insert(headers);
    reply
}

fn fail(permit: OwnedPermit, retry_after: Option<Duration>) {
    match retry_after {
        Some(d) => permit.failure_with_retry_after(d),
        None => permit.failure(),
    }
}

/// An error body read for inspection.
enum Peeked {
    /// The whole body (at most [`ERROR_PEEK_LIMIT`] bytes).
    Whole(Bytes),
    /// The first bytes, and the rest still to stream.
    Long(Bytes, ResponseBody),
    /// The upstream failed or fell silent while sending it.
    Broken,
}

async fn peek(mut body: ResponseBody, idle: Duration) -> Peeked {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(None) => return Peeked::Whole(buf.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > ERROR_PEEK_LIMIT {
                        return Peeked::Long(buf.freeze(), body);
                    }
                }
            }
            Ok(Some(Err(_))) | Err(_) => return Peeked::Broken,
        }
    }
}
