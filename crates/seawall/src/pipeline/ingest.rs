//! `POST /ingest/{pipeline}` (and the route to OTLP's `/ingest/{pipeline}/v1/logs`, `otlp/`):
//! method, path and content-type checks, the body size limit
//! (announced and streamed), the memory threshold (reserved before the body is read, frame by
//! frame when it is not announced), strict parsing, and all-or-nothing acceptance →
//! `202 {"accepted":N}` (with a disk buffer: once the events are in the log, and synced with
//! `sync: always`).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::disk::Refused;
use super::events::Chunk;
use super::parse::{self, Format};
use super::{Pipeline, Pipelines};
use crate::health::{Check, Edge, Health};
use crate::memory::{Lease, OverBudget};
use crate::message::{body_timeout, json, json_error, Body, BoxError, RequestBodyError};

/// Why a body could not be read.
enum ReadError {
    TooLarge,
    OverBudget(OverBudget),
    Broken(BoxError),
}

impl Pipelines {
    /// `POST /ingest/{pipeline}` handler (and `/ingest/{pipeline}/v1/logs`, OTLP/HTTP logs);
    /// pass the whole request. Answers `202
    /// {"accepted":N}`; `400` naming the bad line (and then accepts nothing from the request);
    /// `413` over the pipeline's `max_body`; `415` for a content type other than JSON or
    /// NDJSON; `503 overloaded` when the body would pass the memory threshold; `503
    /// shutting_down` once shutdown began; `503 buffer_full` or `503 buffer_failing` (with
    /// `Retry-After`) when a disk buffer is full or cannot be written; `404` unknown pipeline;
    /// `405` other methods.
    /// Never panics.
    pub async fn ingest<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let rest = req
            .uri()
            .path()
            .strip_prefix("/ingest/")
            .unwrap_or_default();
        let (name, otlp) = match rest.strip_suffix(super::otlp::LOGS_PATH) {
            Some(name) => (name, true),
            None => (rest, false),
        };
        let name = Some(name).filter(|n| !n.is_empty() && !n.contains('/'));
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
        if !self.accepting() {
            return shutting_down();
        }
        if otlp {
            return self.ingest_otlp(&pipeline, req).await;
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("(not visible ASCII)").to_owned());
        let format = match Format::from_content_type(content_type.as_deref()) {
            Ok(format) => format,
            Err(unsupported) => {
                return json_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    &unsupported.0,
                )
            }
        };
        let (text, lease) = match self.read_body(&pipeline, req).await {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let events = match parse::events(text, format, pipeline.max_depth) {
            Ok(events) => events,
            Err(bad) => return json_error(StatusCode::BAD_REQUEST, "bad_event", &bad.0),
        };
        // A body that arrived while shutdown began is refused whole, as a later one would be.
        if !self.accepting() {
            return shutting_down();
        }
        let count = events.count;
        let chunk = Chunk::new(lease.hold(events.text), count);
        if let Err(refused) = pipeline.accept_durably(&chunk).await {
            return buffer_refused(refused);
        }
        json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "accepted": count }),
        )
    }

    /// The whole body of `req` and the lease counting it, within the pipeline's `max_body`
    /// (announced and streamed) and the memory threshold; else the answer refusing it.
    pub(super) async fn read_body<B>(
        &self,
        pipeline: &Pipeline,
        req: Request<B>,
    ) -> Result<(Vec<u8>, Lease), Response<Body>>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = pipeline.max_body;
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > limit) {
            return Err(too_large(limit));
        }
        // The body's bytes count from before it is read: refused at once if they do not fit.
        let lease = self
            .budget
            .try_reserve(announced.unwrap_or(0))
            .map_err(|over| self.over_budget(over))?;
        read(req.into_body(), limit, announced, lease)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => too_large(limit),
                ReadError::OverBudget(over) => self.over_budget(over),
                ReadError::Broken(e)
                    if RequestBodyError::of(&*e) == Some(RequestBodyError::TimedOut) =>
                {
                    body_timeout()
                }
                ReadError::Broken(e) => {
                    let message = format!("reading the body failed: {e}");
                    json_error(StatusCode::BAD_REQUEST, "bad_body", &message)
                }
            })
    }

    /// The `503` for a body that would pass the memory threshold, counted as shed.
    pub(super) fn over_budget(&self, over: OverBudget) -> Response<Body> {
        match self.health.get() {
            Some(health) => {
                health.count_shed(Edge::Ingest, Check::Memory);
                shed(health, Check::Memory)
            }
            None => {
                let message = format!("seawall: {over}");
                json_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", &message)
            }
        }
    }
}

/// The `503` answered to an ingest request shed because `health`'s `check` fails:
/// `{"error":{"type":"overloaded","message":…}}` with `retry-after`.
pub(crate) fn shed(health: &Health, check: Check) -> Response<Body> {
    let secs = health.retry_after_secs();
    let message = format!(
        "seawall: global health check `{}` is failing ({}); new events are shed, retry after {secs}s",
        check.as_str(),
        check.pressure()
    );
    let mut resp = json_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", &message);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

pub(super) fn shutting_down() -> Response<Body> {
    let mut resp = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting_down",
        "seawall is shutting down and accepts no new events; retry after 1s (another instance, \
         or this one once restarted)",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The `503` for events a disk buffer could not take. After a failed sync the events may
/// still be delivered (at least once): the client's retry may duplicate them.
pub(super) fn buffer_refused(refused: Refused) -> Response<Body> {
    let (kind, message) = match refused {
        Refused::Full => (
            "buffer_full",
            "the pipeline's disk buffer is full (buffer.max_size) until its outputs catch up; \
             retry after 1s",
        ),
        Refused::Failing => (
            "buffer_failing",
            "the pipeline's disk buffer cannot be written (disk full or I/O error); retry \
             after 1s",
        ),
    };
    let mut resp = json_error(StatusCode::SERVICE_UNAVAILABLE, kind, message);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

pub(super) fn too_large(limit: u64) -> Response<Body> {
    let message = format!("body larger than the pipeline's max_body ({limit} bytes)");
    json_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", &message)
}

/// The whole body in one buffer of our own (never a slice pinning a connection's read buffer),
/// failing as soon as it passes `limit` bytes or the memory threshold. `lease` counts the
/// buffer: it grows with it. One spare byte is kept for a final line break.
async fn read<B>(
    body: B,
    limit: u64,
    announced: Option<u64>,
    mut lease: Lease,
) -> Result<(Vec<u8>, Lease), ReadError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let capacity = announced.map_or(0, |n| n + 1);
    let mut buf: Vec<u8> = Vec::new();
    buf.try_reserve_exact(usize::try_from(capacity).unwrap_or(usize::MAX))
        .map_err(|_| {
            ReadError::OverBudget(OverBudget {
                wanted: capacity,
                limit: 0,
            })
        })?;
    let mut counted = lease.bytes();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (buf.len() + data.len()) as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&data);
        let now = buf.capacity() as u64;
        if now > counted {
            lease.grow(now - counted).map_err(ReadError::OverBudget)?;
            counted = now;
        }
    }
    Ok((buf, lease))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::GlobalHealthConfig;
    use crate::metrics::Metrics;

    /// The shed answer asks to come back after the check interval, in whole seconds.
    #[test]
    fn a_shed_answer_names_the_check_and_retries_after_the_interval() {
        for (interval, secs) in [(250, "1"), (1500, "2"), (30_000, "30")] {
            let config = GlobalHealthConfig {
                check_interval: Duration::from_millis(interval),
                ..GlobalHealthConfig::default()
            };
            let health = Health::new(&config, &Metrics::new());
            let resp = shed(&health, Check::Memory);
            assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(resp.headers()["retry-after"], secs);
        }
    }
}
