//! The client's request body, read whole before its call is admitted: bounded by
//! `server.max_body` and by the transport's `request_body_idle`, so a slow uploader never holds
//! a breaker permit (a half-open probe least of all) and a failed attempt can be sent again.
//! Also the JSON `model` field, for per-model breakers.

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::Body;
use seawall_http::ReadError;
use serde::Deserialize;

use crate::message::BoxError;
use crate::message::RequestBodyError;

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Larger than `server.max_body`.
    TooLarge,
    /// The client paused longer than `server.timeouts.request_body_idle`.
    TimedOut,
    /// The client went away mid-body.
    ClientGone,
    /// The body broke its framing, or its stream failed.
    Unreadable,
}

/// The declared `content-length`, if any (the transport has already refused invalid ones).
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    seawall_http::content_length(headers).ok().flatten()
}

/// `body` read whole, at most `max` bytes of it.
pub(crate) async fn read<B>(body: B, max: u64) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    seawall_http::read_limited(body, limit)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { .. } => BodyError::TooLarge,
            ReadError::Body(e) => match RequestBodyError::of(&*e) {
                Some(RequestBodyError::TimedOut) => BodyError::TimedOut,
                Some(RequestBodyError::ClientGone) => BodyError::ClientGone,
                _ => BodyError::Unreadable,
            },
        })
}

#[derive(Deserialize)]
struct ModelField {
    model: Option<String>,
}

/// The string `model` field of a JSON object body.
pub(crate) fn model_of(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<ModelField>(bytes).ok()?.model
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[test]
    fn reads_the_model_field() {
        assert_eq!(
            model_of(br#"{"model":"opus","max_tokens":5}"#).as_deref(),
            Some("opus")
        );
        assert_eq!(model_of(br#"{"max_tokens":5}"#), None);
        assert_eq!(model_of(b"not json"), None);
    }

    #[tokio::test]
    async fn reading_stops_at_the_limit() {
        let body = Full::new(Bytes::from_static(b"0123456789"));
        assert_eq!(read(body, 4).await, Err(BodyError::TooLarge));
        let body = Full::new(Bytes::from_static(br#"{"model":"m"}"#));
        assert_eq!(read(body, 100).await.unwrap(), r#"{"model":"m"}"#);
    }
}
