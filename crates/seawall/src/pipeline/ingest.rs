//! `POST /ingest/{pipeline}`: method and path checks, the body size limit (announced and
//! streamed), parsing, and all-or-nothing acceptance → `202 {"accepted":N}`.

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::parse::{self, Format};
use super::Pipelines;
use crate::message::{json, json_error, Body, BoxError};

/// Why a body could not be read.
enum ReadError {
    TooLarge,
    Broken(BoxError),
}

impl Pipelines {
    /// `POST /ingest/{pipeline}` handler; pass the whole request. Answers `202
    /// {"accepted":N}`; `400` naming the bad line (and then accepts nothing from the request);
    /// `413` over the pipeline's `max_body`; `404` unknown pipeline; `405` other methods;
    /// `503` once shutting down. Never panics.
    pub async fn ingest<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let name = req
            .uri()
            .path()
            .strip_prefix("/ingest/")
            .filter(|n| !n.is_empty() && !n.contains('/'));
        let Some(pipeline) = name.and_then(|n| self.pipeline(n)) else {
            let message = format!("no pipeline at {}", req.uri().path());
            return json_error(StatusCode::NOT_FOUND, "unknown_pipeline", &message);
        };
        if req.method() != Method::POST {
            let mut resp = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "ingest takes POST",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return resp;
        }
        if !self.accepting.load(Ordering::Acquire) {
            let mut resp = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "shutting down",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
        let limit = pipeline.max_body;
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit) {
            return too_large(limit);
        }
        let format = Format::from_content_type(
            req.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        let body = match read(req.into_body(), limit).await {
            Ok(body) => body,
            Err(ReadError::TooLarge) => return too_large(limit),
            Err(ReadError::Broken(e)) => {
                let message = format!("reading the body failed: {e}");
                return json_error(StatusCode::BAD_REQUEST, "bad_body", &message);
            }
        };
        match parse::events(&body, format) {
            Ok(events) => {
                pipeline.accept(&events);
                json(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({ "accepted": events.len() }),
                )
            }
            Err(bad) => json_error(StatusCode::BAD_REQUEST, "bad_event", &bad.0),
        }
    }
}

fn too_large(limit: u64) -> Response<Body> {
    let message = format!("body larger than the pipeline's max_body ({limit} bytes)");
    json_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &message)
}

/// The whole body, failing as soon as it passes `limit` bytes. One chunk is kept as is;
/// several are joined once.
async fn read<B>(body: B, limit: u64) -> Result<Bytes, ReadError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            return Err(ReadError::TooLarge);
        }
        match (&mut joined, first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(prev)) => {
                let mut buf = BytesMut::with_capacity(prev.len() + data.len());
                buf.extend_from_slice(&prev);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
        }
    }
    Ok(joined.map(BytesMut::freeze).or(first).unwrap_or_default())
}
