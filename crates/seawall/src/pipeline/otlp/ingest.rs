//! `POST /ingest/{pipeline}/v1/logs`: OTLP/HTTP logs, protobuf or JSON, plain or gzip. The
//! body limit (`max_body`) and the memory threshold hold for the body as sent and again as
//! inflated. Every record that converts becomes one event; the answer is `200` with an
//! `ExportLogsServiceResponse` (`partial_success` counting the records rejected), `400` with
//! a `google.rpc.Status` and nothing accepted for a body that does not decode, `415` for
//! another content type or encoding; `413` and the `503`s (with `Retry-After`) as for
//! `POST /ingest/{pipeline}`.

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};

use super::records;
use super::wire::{self, Encoding, Inflate, INVALID_ARGUMENT, RESOURCE_EXHAUSTED};
use crate::message::{Body, BoxError};
use crate::pipeline::events::Chunk;
use crate::pipeline::ingest::{buffer_refused, shutting_down};
use crate::pipeline::{Pipeline, Pipelines};

impl Pipelines {
    /// Serves one OTLP/HTTP logs export to `pipeline` (method and shutdown already checked).
    pub(in crate::pipeline) async fn ingest_otlp<B>(
        &self,
        pipeline: &Pipeline,
        req: Request<B>,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let header = |name| {
            req.headers()
                .get(name)
                .map(|v: &http::HeaderValue| v.to_str().unwrap_or("(not visible ASCII)"))
        };
        let unsupported = |encoding, message: &str| {
            wire::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                encoding,
                INVALID_ARGUMENT,
                message,
            )
        };
        let encoding = match Encoding::from_content_type(header(header::CONTENT_TYPE)) {
            Ok(encoding) => encoding,
            Err(message) => return unsupported(None, &message),
        };
        let gzip = match header(header::CONTENT_ENCODING).map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "identity" => false,
            Some(v) if v == "gzip" => true,
            Some(other) => {
                let message =
                    format!("content-encoding {other:?} is not accepted: send gzip or none");
                return unsupported(Some(encoding), &message);
            }
        };
        let (body, mut lease) = match self.read_body(pipeline, req).await {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
        let limit = pipeline.max_body;
        let body = if gzip {
            match wire::gunzip(&body, limit, &mut lease) {
                Ok(inflated) => inflated,
                Err(Inflate::TooLarge) => {
                    let message = format!(
                        "the gzip body inflates past the pipeline's max_body ({limit} bytes)"
                    );
                    return wire::error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        Some(encoding),
                        RESOURCE_EXHAUSTED,
                        &message,
                    );
                }
                Err(Inflate::OverBudget(over)) => return self.over_budget(over),
                Err(Inflate::Broken(message)) => {
                    return wire::error(
                        StatusCode::BAD_REQUEST,
                        Some(encoding),
                        INVALID_ARGUMENT,
                        &message,
                    )
                }
            }
        } else {
            body
        };
        let request = match wire::decode(&body, encoding) {
            Ok(request) => request,
            Err(message) => {
                return wire::error(
                    StatusCode::BAD_REQUEST,
                    Some(encoding),
                    INVALID_ARGUMENT,
                    &message,
                )
            }
        };
        drop(body);
        let converted = records::events(&request, pipeline.max_depth);
        drop(request);
        let metrics = &pipeline.otlp;
        metrics.rejected.inc_by(converted.rejected as u64);
        let (rejected, first_error) = (converted.rejected, converted.first_error);
        let answer = |accepted| {
            metrics.accepted.inc_by(accepted as u64);
            wire::success(encoding, rejected, first_error)
        };
        if converted.accepted == 0 {
            return answer(0);
        }
        // A body that arrived while shutdown began is refused whole, as a later one would be.
        if !self.accepting() {
            metrics.rejected.inc_by(converted.accepted as u64);
            return shutting_down();
        }
        let chunk = Chunk::new(lease.hold(converted.text), converted.accepted);
        if let Err(refused) = pipeline.accept_durably(&chunk).await {
            metrics.rejected.inc_by(converted.accepted as u64);
            return buffer_refused(refused);
        }
        answer(converted.accepted)
    }
}
