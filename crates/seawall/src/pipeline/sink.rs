//! Destinations: one [`Sink`] per endpoint sends an encoded NDJSON batch and says whether it
//! arrived, was refused, or failed (and whether a failure is known not to have arrived).
//! `http` and `otlp` batches go through the daemon's upstream client
//! (`crate::http1::outbound`) and one classification of the answer ([`classify`]); an `otlp`
//! sink first turns the batch into an `ExportLogsServiceRequest` (`otlp::records`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use tokio::io::AsyncWriteExt;

use super::otlp;
use crate::http1::outbound::{Outgoing, Pool, SendError};
use seawall_http::Fields as _;

/// The header naming a batch: the same on every send of the same events, so a collector can
/// drop a batch it already stored (delivery is at least once).
pub(crate) const BATCH_ID: HeaderName = HeaderName::from_static("x-seawall-batch-id");

/// The most of a collector's answer read (to return the connection to its pool).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How a send went.
#[derive(Debug)]
pub(crate) enum Sent {
    /// The destination has the batch (2xx, or written).
    Delivered,
    /// An OTLP receiver took the batch but rejected `rejected` of its records (its 2xx
    /// answer's `partial_success`): not to be sent again, and a failure for the breaker.
    Partial {
        /// Records rejected, at most the batch's events.
        rejected: u64,
        /// The receiver's `error_message`.
        error: String,
    },
    /// The destination refused the batch for good (a 4xx other than 429): drop it, do not trip.
    Refused(StatusCode),
    /// The send failed; counts against the endpoint's breaker.
    Failed {
        /// A connect error or an error status: the batch surely did not arrive, so it may be
        /// sent elsewhere without duplicating it.
        known_undelivered: bool,
        /// The destination's `Retry-After` on a 429 or 503.
        retry_after: Option<Duration>,
        /// For the log.
        error: String,
    },
}

/// One endpoint's destination.
pub(crate) enum Sink {
    /// POSTs to `target` on `pool`'s destination.
    Http {
        pool: Arc<Pool>,
        /// Path and query.
        target: String,
        headers: HeaderMap,
        /// Bounds connecting and the wait for the answer's head.
        timeout: Duration,
    },
    /// POSTs each batch as a protobuf `ExportLogsServiceRequest` to `target` on `pool`'s
    /// destination (`otlp`).
    Otlp {
        pool: Arc<Pool>,
        /// Path and query.
        target: String,
        /// The configured headers, then the content type and encoding.
        headers: HeaderMap,
        /// Bounds connecting and the wait for the answer's head.
        timeout: Duration,
        /// `compression: gzip`.
        gzip: bool,
    },
    File(tokio::fs::File),
    Stdout(tokio::io::Stdout),
    Blackhole,
}

impl Sink {
    /// A sink POSTing NDJSON batches to `uri` through `pool` (its destination's).
    pub(crate) fn http(pool: Arc<Pool>, uri: &Uri, timeout: Duration) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        Sink::Http {
            pool,
            target: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
            headers,
            timeout,
        }
    }

    /// A sink POSTing OTLP/HTTP protobuf batches to `uri` through `pool`, with `extra`
    /// headers (checked when the configuration was).
    pub(crate) fn otlp(
        pool: Arc<Pool>,
        uri: &Uri,
        timeout: Duration,
        extra: &std::collections::BTreeMap<String, String>,
        gzip: bool,
    ) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in extra {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{name:?} is not a header name"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("header {name}: the value is not visible ASCII"))?;
            headers.append(name, value);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(otlp::wire::PROTOBUF));
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let target = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("/") => otlp::LOGS_PATH.to_owned(),
            Some(p) => p.to_owned(),
        };
        Ok(Sink::Otlp {
            pool,
            target,
            headers,
            timeout,
            gzip,
        })
    }

    /// Whether this sink needs the batch encoded (the blackhole does not).
    pub(crate) fn wants_payload(&self) -> bool {
        !matches!(self, Sink::Blackhole)
    }

    /// Makes what was written durable: a `file` is synced; nothing to do for the others.
    pub(crate) async fn sync(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(file) => file.sync_data().await,
            Sink::Http { .. } | Sink::Otlp { .. } | Sink::Stdout(_) | Sink::Blackhole => Ok(()),
        }
    }

    /// Sends one encoded batch; `id` names it to an `http` destination.
    pub(crate) async fn send(&mut self, payload: &Bytes, id: &HeaderValue) -> Sent {
        match self {
            Sink::Http {
                pool,
                target,
                headers,
                timeout,
            } => {
                headers.insert(BATCH_ID, id.clone());
                match post(pool, target, headers, *timeout, payload.clone()).await {
                    Ok(answer) => classify(&answer),
                    Err(sent) => sent,
                }
            }
            Sink::Otlp {
                pool,
                target,
                headers,
                timeout,
                gzip,
            } => {
                headers.insert(BATCH_ID, id.clone());
                let body = match otlp::records::encode_batch(payload, *gzip) {
                    Ok(body) => body,
                    Err(e) => return failed(true, None, e),
                };
                let answer = match post(pool, target, headers, *timeout, body).await {
                    Ok(answer) => answer,
                    Err(sent) => return sent,
                };
                match classify(&answer) {
                    Sent::Delivered => otlp::wire::partial_success(answer.json, &answer.body)
                        .map_or(Sent::Delivered, |(rejected, error)| Sent::Partial {
                            rejected,
                            error,
                        }),
                    other => other,
                }
            }
            Sink::File(file) => write(file, payload).await,
            Sink::Stdout(out) => write(out, payload).await,
            Sink::Blackhole => Sent::Delivered,
        }
    }
}

async fn write(w: &mut (impl AsyncWriteExt + Unpin), payload: &Bytes) -> Sent {
    match w.write_all(payload).await {
        Ok(()) => match w.flush().await {
            Ok(()) => Sent::Delivered,
            Err(e) => failed(false, None, e),
        },
        Err(e) => failed(false, None, e),
    }
}

/// A destination's answer: its status, its `Retry-After` on a 429 or 503, and (the start of)
/// its body.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    /// The body is JSON (`content-type: application/json`), not protobuf.
    json: bool,
    body: Bytes,
}

/// POSTs `payload`; a send that got no answer is already a [`Sent::Failed`].
async fn post(
    pool: &Arc<Pool>,
    target: &str,
    headers: &HeaderMap,
    timeout: Duration,
    payload: Bytes,
) -> Result<Answer, Sent> {
    let request = Outgoing {
        method: &Method::POST,
        target: [target, "", "", ""],
        headers,
        upgrade: None,
    };
    let resp = match pool.send(request, payload, timeout, timeout).await {
        Ok(resp) => resp,
        Err(e) => {
            // Only a connection that never opened surely did not take the batch.
            let unsent = matches!(e, SendError::Connect(_) | SendError::ConnectTimeout(_));
            return Err(failed(unsent, None, e));
        }
    };
    let status = resp.status;
    let retry_after = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| seawall_http::retry_after(&resp.headers, SystemTime::now()))
    .flatten();
    let json = resp
        .headers
        .first("content-type")
        .is_some_and(|v| v.starts_with(b"application/json"));
    // Read the (small) answer to the end so the connection goes back to the pool. A broken
    // answer body does not undo what the status said.
    let body = seawall_http::read_limited(resp.body, MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    Ok(Answer {
        status,
        retry_after,
        json,
        body,
    })
}

/// What an answer's status means for the batch, the same for every HTTP destination: 2xx
/// delivered; 429 and 5xx failed (known not delivered, with the `Retry-After`); other
/// statuses refused for good.
fn classify(answer: &Answer) -> Sent {
    let status = answer.status;
    if status.is_success() {
        return Sent::Delivered;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return failed(true, answer.retry_after, format!("status {status}"));
    }
    Sent::Refused(status)
}

fn failed(known_undelivered: bool, retry_after: Option<Duration>, e: impl ToString) -> Sent {
    Sent::Failed {
        known_undelivered,
        retry_after,
        error: e.to_string(),
    }
}
