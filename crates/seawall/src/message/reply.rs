//! [`Reply`]: the response a handler answers with. Besides the status, the daemon's own header
//! fields and the body, it carries the fields of an upstream response passed through as they
//! arrived, so the gateway forwards them without building a header map.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use serde::Serialize;

use super::Tunnel;
use crate::message::fields::WireHeaders;
use crate::message::BoxError;

/// The body of every reply: a fixed buffer or a stream from upstream.
pub type Body = BoxBody<Bytes, BoxError>;

/// A response to a client's request.
///
/// ```
/// use http::StatusCode;
/// let reply = seawall::message::Reply::from(seawall::message::json_error(
///     StatusCode::NOT_FOUND, "not_found", "no such thing"));
/// assert_eq!(reply.status(), StatusCode::NOT_FOUND);
/// assert_eq!(reply.header("content-type"), Some(&b"application/json"[..]));
/// let response: http::Response<_> = reply.into_http();
/// assert_eq!(response.headers()["content-type"], "application/json");
/// ```
pub struct Reply {
    /// The status and the header fields the daemon sets itself.
    head: http::response::Parts,
    /// An upstream's fields as they arrived (empty for the daemon's own answers), written after
    /// `head`'s, less the framing fields the server writes itself.
    passed: WireHeaders,
    body: Body,
    /// For a `101 Switching Protocols`: the upstream side of the tunnel.
    tunnel: Option<Tunnel>,
}

impl Reply {
    /// A reply with `status` passing an upstream's `fields` through, and `body`.
    pub(crate) fn passing(status: StatusCode, fields: WireHeaders, body: Body) -> Self {
        let mut head = Response::new(()).into_parts().0;
        head.status = status;
        Reply {
            head,
            passed: fields,
            body,
            tunnel: None,
        }
    }

    /// A `101 Switching Protocols` to `protocol` passing an upstream's `fields`, after which
    /// the connection carries bytes both ways between the client and `tunnel`.
    pub(crate) fn switching(fields: WireHeaders, protocol: HeaderValue, tunnel: Tunnel) -> Self {
        let mut reply = Reply::passing(StatusCode::SWITCHING_PROTOCOLS, fields, empty());
        reply.head.headers.insert(header::UPGRADE, protocol);
        reply.tunnel = Some(tunnel);
        reply
    }

    /// Takes the tunnel of a `101` reply.
    pub(crate) fn take_tunnel(&mut self) -> Option<Tunnel> {
        self.tunnel.take()
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.head.status
    }

    /// The daemon's own header fields (not those passed through from an upstream).
    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The daemon's own header fields, to add to.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.head.headers
    }

    /// The first value of the field `name` (lowercase): the daemon's own, else an upstream's.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match self.head.headers.get(name) {
            Some(value) => Some(value.as_bytes()),
            None => self.passed.get(name),
        }
    }

    /// The parts, for a server to write out.
    pub(crate) fn into_parts(self) -> (http::response::Parts, WireHeaders, Body) {
        (self.head, self.passed, self.body)
    }

    /// The reply as an [`http::Response`], the passed-through fields merged into its map
    /// (framing fields left out: the body's own framing is the one that counts).
    pub fn into_http(self) -> Response<Body> {
        let (mut head, passed, body) = self.into_parts();
        passed.append_to(&mut head.headers);
        Response::from_parts(head, body)
    }
}

impl From<Response<Body>> for Reply {
    fn from(response: Response<Body>) -> Self {
        let (head, body) = response.into_parts();
        Reply {
            head,
            passed: WireHeaders::default(),
            body,
            tunnel: None,
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.head.status)
            .field("headers", &self.head.headers)
            .field("passed", &self.passed.iter().count())
            .finish_non_exhaustive()
    }
}

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|e| {
        format!(r#"{{"error":{{"type":"internal","message":"serialisation failed: {e}"}}}}"#)
            .into_bytes()
    });
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `408`: the client paused its request body longer than `server.timeouts.request_body_idle`
/// (the connection closes after it), for the gateway and ingest alike.
pub fn body_timeout() -> Response<Body> {
    json_error(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request body stalled longer than server.timeouts.request_body_idle",
    )
}

/// A JSON error: `{"error":{"type":kind,"message":message}}`.
pub fn json_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": { "type": kind, "message": message } }),
    )
}
