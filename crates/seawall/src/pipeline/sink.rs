//! Destinations: one [`Sink`] per endpoint sends an encoded NDJSON batch and says whether it
//! arrived, was refused, or failed (and whether a failure is known not to have arrived).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::AsyncWriteExt;

/// The pooled client of one `http` output (shared by its endpoints).
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

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
    /// The client is shared by the output's endpoints (one connection pool).
    Http {
        client: Arc<HttpClient>,
        uri: Uri,
    },
    File(tokio::fs::File),
    Stdout(tokio::io::Stdout),
    Blackhole,
}

/// A client for `http` outputs: plain HTTP or HTTPS (rustls with webpki roots), HTTP/1 and 2.
pub(crate) fn http_client() -> Result<HttpClient, std::io::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let https = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(std::io::Error::other)?
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

impl Sink {
    /// Whether this sink needs the batch encoded (the blackhole does not).
    pub(crate) fn wants_payload(&self) -> bool {
        !matches!(self, Sink::Blackhole)
    }

    /// Sends one encoded batch.
    pub(crate) async fn send(&mut self, payload: &Bytes) -> Sent {
        match self {
            Sink::Http { client, uri } => post(client, uri, payload.clone()).await,
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

async fn post(client: &HttpClient, uri: &Uri, payload: Bytes) -> Sent {
    let mut req = Request::new(Full::new(payload));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = uri.clone();
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    let resp = match client.request(req).await {
        Ok(resp) => resp,
        Err(e) => return failed(e.is_connect(), None, e),
    };
    let status = resp.status();
    let retry_after = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| resp.headers().get(header::RETRY_AFTER))
    .flatten()
    .and_then(parse_retry_after);
    // Read the (small) answer to the end so the connection goes back to the pool. A broken
    // answer body does not undo what the status said.
    let _ = resp.into_body().collect().await;
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

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(v: &HeaderValue) -> Option<Duration> {
    let s = v.to_str().ok()?.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(s).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let secs = HeaderValue::from_static("7");
        assert_eq!(parse_retry_after(&secs), Some(Duration::from_secs(7)));
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }
}
