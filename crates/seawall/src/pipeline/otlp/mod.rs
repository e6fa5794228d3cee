//! OpenTelemetry logs: OTLP/HTTP in at `POST /ingest/{pipeline}/v1/logs`, and the `otlp`
//! output's requests out, with the OpenTelemetry project's own messages
//! (`opentelemetry-proto`).
//!
//! - `wire.rs`: encodings (protobuf, JSON), gzip within the body limit, the answers OTLP/HTTP
//!   expects (`ExportLogsServiceResponse`, a `google.rpc.Status` on errors).
//! - `records.rs`: one log record ↔ one event (the record's OTLP/JSON fields with its
//!   resource and scope), and a batch of events → an `ExportLogsServiceRequest`.
//! - `ingest.rs`: the handler.

mod ingest;
pub(crate) mod records;
pub(crate) mod wire;

/// The OTLP/HTTP logs path: what a client appends to its base endpoint, and what an `otlp`
/// output posts to when its URL has no path.
pub(crate) const LOGS_PATH: &str = "/v1/logs";
