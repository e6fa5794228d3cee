//! Destinations: one [`Sink`] per endpoint sends an encoded NDJSON batch and says whether it
//! arrived, was refused, or failed (and whether a failure is known not to have arrived).
//! `http` batches go through the daemon's upstream client (`crate::http1::outbound`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use tokio::io::AsyncWriteExt;

use crate::http1::outbound::{Outgoing, Pool, SendError};

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

    /// Whether this sink needs the batch encoded (the blackhole does not).
    pub(crate) fn wants_payload(&self) -> bool {
        !matches!(self, Sink::Blackhole)
    }

    /// Makes what was written durable: a `file` is synced; nothing to do for the others.
    pub(crate) async fn sync(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(file) => file.sync_data().await,
            Sink::Http { .. } | Sink::Stdout(_) | Sink::Blackhole => Ok(()),
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
                post(pool, target, headers, *timeout, payload.clone()).await
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

async fn post(
    pool: &Arc<Pool>,
    target: &str,
    headers: &HeaderMap,
    timeout: Duration,
    payload: Bytes,
) -> Sent {
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
            return failed(unsent, None, e);
        }
    };
    let status = resp.status;
    let retry_after = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| seawall_http::retry_after(&resp.headers, SystemTime::now()))
    .flatten();
    // Read the (small) answer to the end so the connection goes back to the pool. A broken
    // answer body does not undo what the status said.
    let _ = seawall_http::read_limited(resp.body, MAX_ANSWER_BYTES).await;
    if status.is_success() {
        return Sent::Delivered;
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return failed(true, retry_after, format!("status {status}"));
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
