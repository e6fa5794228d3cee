//! OTLP/HTTP framing: the request's encoding from its `content-type`, gzip bodies inflated
//! within the pipeline's `max_body`, and the answers the specification asks for: `200` with
//! an `ExportLogsServiceResponse` (with `partial_success` when records were rejected), and
//! errors carrying a `google.rpc.Status`, each in the request's encoding.

use std::io::Read;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http::{header, HeaderValue, Response, StatusCode};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;

use crate::memory::{Lease, OverBudget};
use crate::message::{full, Body};

/// `content-type` of OTLP/HTTP protobuf.
pub(crate) const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// `google.rpc.Code` values used in error answers.
pub(crate) const INVALID_ARGUMENT: i32 = 3;
pub(crate) const RESOURCE_EXHAUSTED: i32 = 8;

/// How an OTLP/HTTP body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Binary protobuf (`application/x-protobuf`).
    Protobuf,
    /// OTLP/JSON (`application/json`): hex trace and span ids, camelCase names.
    Json,
}

impl Encoding {
    /// The encoding a `content-type` announces, or why it is not one OTLP/HTTP defines.
    pub(crate) fn from_content_type(ct: Option<&str>) -> Result<Encoding, String> {
        let essence = ct
            .and_then(|ct| ct.split(';').next())
            .map(|e| e.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some(PROTOBUF | "application/protobuf") => Ok(Encoding::Protobuf),
            Some(JSON) => Ok(Encoding::Json),
            Some(_) => Err(format!(
                "content-type {:?} is not OTLP/HTTP: send {PROTOBUF} or {JSON}",
                ct.unwrap_or_default()
            )),
            None => Err(format!(
                "no content-type: OTLP/HTTP needs {PROTOBUF} or {JSON}"
            )),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

/// Why a gzip body could not be inflated.
#[derive(Debug)]
pub(crate) enum Inflate {
    /// It inflates past the limit.
    TooLarge,
    /// It would pass the memory threshold.
    OverBudget(OverBudget),
    /// It is not gzip.
    Broken(String),
}

/// Inflates a gzip body, refusing it as soon as it passes `limit` bytes inflated (however
/// small it was on the wire) or the memory threshold; `lease` grows with the buffer.
pub(crate) fn gunzip(body: &[u8], limit: u64, lease: &mut Lease) -> Result<Vec<u8>, Inflate> {
    const STEP: usize = 64 * 1024;
    let mut decoder = MultiGzDecoder::new(body);
    let mut out: Vec<u8> = Vec::new();
    let mut counted = 0u64;
    loop {
        let len = out.len();
        out.resize(len + STEP, 0);
        let n = match decoder.read(&mut out[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(Inflate::Broken(format!("the gzip body is broken: {e}"))),
        };
        out.truncate(len + n);
        if out.len() as u64 > limit {
            return Err(Inflate::TooLarge);
        }
        let now = out.capacity() as u64;
        if now > counted {
            lease.grow(now - counted).map_err(Inflate::OverBudget)?;
            counted = now;
        }
        if n == 0 {
            return Ok(out);
        }
    }
}

/// The request in `body`, or why it does not decode. Never panics, whatever the bytes.
pub(crate) fn decode(body: &[u8], encoding: Encoding) -> Result<ExportLogsServiceRequest, String> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)
            .map_err(|e| format!("not an OTLP ExportLogsServiceRequest (protobuf): {e}")),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| format!("not an OTLP ExportLogsServiceRequest (JSON): {e}")),
    }
}

/// `200` with an `ExportLogsServiceResponse`: `partial_success` set when `rejected` records
/// were refused (with the first reason), left out otherwise.
pub(crate) fn success(
    encoding: Encoding,
    rejected: usize,
    message: Option<String>,
) -> Response<Body> {
    let partial_success = (rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
        error_message: message.unwrap_or_default(),
    });
    let answer = ExportLogsServiceResponse { partial_success };
    let body = match encoding {
        Encoding::Protobuf => answer.encode_to_vec(),
        Encoding::Json => match &answer.partial_success {
            // `{}`: the empty message, rather than a `null` field.
            None => b"{}".to_vec(),
            Some(_) => serde_json::to_vec(&answer).unwrap_or_else(|_| b"{}".to_vec()),
        },
    };
    respond(StatusCode::OK, encoding, body)
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers (`details` left empty).
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An error answer: `status` with a `google.rpc.Status` of `code` and `message` in the
/// request's encoding (JSON when it is not known).
pub(crate) fn error(
    status: StatusCode,
    encoding: Option<Encoding>,
    code: i32,
    message: &str,
) -> Response<Body> {
    let encoding = encoding.unwrap_or(Encoding::Json);
    let body = match encoding {
        Encoding::Protobuf => Status {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    };
    respond(status, encoding, body)
}

fn respond(status: StatusCode, encoding: Encoding, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    resp
}

/// From a receiver's `2xx` answer: the records it rejected and why, when its
/// `partial_success` says any were (`json`: the answer is OTLP/JSON). An answer that does not
/// decode, or only warns (nothing rejected), is a plain success.
pub(crate) fn partial_success(json: bool, body: &Bytes) -> Option<(u64, String)> {
    let answer: ExportLogsServiceResponse = if json {
        serde_json::from_slice(body).ok()?
    } else {
        ExportLogsServiceResponse::decode(body.as_ref()).ok()?
    };
    let partial = answer.partial_success?;
    if !partial.error_message.is_empty() && partial.rejected_log_records <= 0 {
        tracing::warn!(warning = %partial.error_message, "OTLP receiver's warning");
    }
    let rejected = u64::try_from(partial.rejected_log_records)
        .ok()
        .filter(|&n| n > 0)?;
    Some((rejected, partial.error_message))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use proptest::prelude::*;

    use super::*;
    use crate::memory::Budget;
    use crate::metrics::Metrics;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn content_types_pick_the_encoding_and_others_are_refused() {
        let pick = |ct| Encoding::from_content_type(ct);
        assert_eq!(pick(Some("application/x-protobuf")), Ok(Encoding::Protobuf));
        assert_eq!(
            pick(Some("Application/JSON; charset=utf-8")),
            Ok(Encoding::Json)
        );
        assert!(pick(Some("text/plain")).is_err());
        assert!(pick(Some("application/x-ndjson")).is_err());
        assert!(pick(None).is_err());
    }

    #[test]
    fn gunzip_refuses_a_bomb_past_the_limit_without_inflating_it_all() {
        let budget = Budget::new(&Metrics::new());
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 128 * 1024, "the bomb is small on the wire");
        let mut lease = budget.lease(0);
        let err = gunzip(&bomb, 1 << 20, &mut lease).unwrap_err();
        assert!(matches!(err, Inflate::TooLarge), "{err:?}");
        assert!(
            lease.bytes() <= (1 << 20) + 2 * 64 * 1024,
            "{}",
            lease.bytes()
        );
        let mut lease = budget.lease(0);
        let ok = gunzip(&gzip(b"hello"), 5, &mut lease).unwrap();
        assert_eq!(ok, b"hello");
        let err = gunzip(b"not gzip at all", 100, &mut lease).unwrap_err();
        assert!(matches!(err, Inflate::Broken(_)), "{err:?}");
    }

    #[test]
    fn partial_success_reads_rejections_in_both_encodings() {
        let answer = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "bad".into(),
            }),
        };
        let proto = Bytes::from(answer.encode_to_vec());
        assert_eq!(partial_success(false, &proto), Some((2, "bad".into())));
        let json = Bytes::from(serde_json::to_vec(&answer).unwrap());
        assert_eq!(partial_success(true, &json), Some((2, "bad".into())));
        assert_eq!(partial_success(false, &Bytes::new()), None);
        assert_eq!(partial_success(true, &Bytes::from_static(b"{}")), None);
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes, Encoding::Protobuf);
            let _ = decode(&bytes, Encoding::Json);
            let budget = Budget::new(&Metrics::new());
            let mut lease = budget.lease(0);
            let _ = gunzip(&bytes, 4096, &mut lease);
            let _ = partial_success(false, &Bytes::from(bytes.clone()));
            let _ = partial_success(true, &Bytes::from(bytes));
        }

        #[test]
        fn hostile_json_shapes_never_panic_the_json_decoder(
            text in r#"\{"resourceLogs":\[\{("resource"|"scopeLogs"|"x"):[\[\]\{\}",:0-9a-zA-Z]{0,80}\}\]\}"#
        ) {
            let _ = decode(text.as_bytes(), Encoding::Json);
        }
    }
}
