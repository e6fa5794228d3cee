//! The client's request body on its way upstream: bounded by `server.max_body`, streamed as
//! is, or buffered when a per-model breaker needs the JSON `model` field.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use seawall_http::ReadError;
use serde::Deserialize;

use crate::http1::outbound::UpstreamBody;
use crate::http1::BoxError;

/// Why a request body cannot be forwarded.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Larger than `server.max_body`.
    TooLarge,
    /// The client's body stream failed.
    Unreadable,
}

/// The declared `content-length`, if any (the transport has already refused invalid ones).
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    seawall_http::content_length(headers).ok().flatten()
}

/// `body` capped at `max` bytes, streamed; going over fails the upstream request with a
/// [`LengthLimitError`] (see [`is_too_large`]).
pub(crate) fn streamed<B>(body: B, max: u64) -> UpstreamBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).boxed_unsync()
}

/// `body` read whole (at most `max` bytes), with the `model` of its JSON, if any.
pub(crate) async fn buffered<B>(
    body: B,
    max: u64,
) -> Result<(UpstreamBody, Option<String>), BodyError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let bytes =
        match seawall_http::read_limited(body, usize::try_from(max).unwrap_or(usize::MAX)).await {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge { .. }) => return Err(BodyError::TooLarge),
            Err(ReadError::Body(_)) => return Err(BodyError::Unreadable),
        };
    let model = model_of(&bytes);
    let body = Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok((body, model))
}

/// Whether `error` (or any error it wraps) is the body limit being hit.
pub(crate) fn is_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<LengthLimitError>() {
            return true;
        }
        next = e.source();
    }
    false
}

#[derive(Deserialize)]
struct ModelField {
    model: Option<String>,
}

/// The string `model` field of a JSON object body.
fn model_of(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<ModelField>(bytes).ok()?.model
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn buffering_stops_at_the_limit() {
        let body = Full::new(Bytes::from_static(b"0123456789"));
        assert!(matches!(buffered(body, 4).await, Err(BodyError::TooLarge)));
        let body = Full::new(Bytes::from_static(br#"{"model":"m"}"#));
        let (_, model) = buffered(body, 100).await.unwrap();
        assert_eq!(model.as_deref(), Some("m"));
    }
}
