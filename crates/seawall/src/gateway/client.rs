//! The one pooled upstream client: HTTPS (rustls, ring, webpki roots) or plain HTTP, with a
//! per-destination connect timeout covering TCP and TLS.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::UnsyncBoxBody;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::GatewayError;
use crate::http::BoxError;

/// The body of a request sent upstream (not `Sync`: any client body can be forwarded).
pub(crate) type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// The pooled client every provider shares.
pub(crate) type UpstreamClient =
    Client<TimeoutConnector<HttpsConnector<HttpConnector>>, UpstreamBody>;

/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// A connection attempt exceeded the provider's `timeouts.connect`.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:?}")]
pub(crate) struct ConnectTimeout(pub(crate) Duration);

/// Where a connection goes: scheme, host, port.
type Destination = (String, String, u16);

fn destination(uri: &Uri) -> Option<Destination> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some((scheme, host, port))
}

/// Builds the client. `connect` lists each upstream base URL with its connect timeout; when
/// providers share a destination, the longest timeout wins (they share its connections).
pub(crate) fn build(connect: &[(Uri, Duration)]) -> Result<UpstreamClient, GatewayError> {
    let mut timeouts: HashMap<Destination, Duration> = HashMap::new();
    for (uri, limit) in connect {
        if let Some(dest) = destination(uri) {
            let slot = timeouts.entry(dest).or_insert(*limit);
            *slot = (*slot).max(*limit);
        }
    }
    let fallback = timeouts
        .values()
        .copied()
        .max()
        .unwrap_or(Duration::from_secs(5));
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let https = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)?
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    let connector = TimeoutConnector {
        inner: https,
        timeouts: Arc::new(timeouts),
        fallback,
    };
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector))
}

/// Wraps a connector so each attempt is bounded by its destination's connect timeout.
#[derive(Clone)]
pub(crate) struct TimeoutConnector<C> {
    inner: C,
    timeouts: Arc<HashMap<Destination, Duration>>,
    /// For a destination not in the map (not reachable from configured routes).
    fallback: Duration,
}

impl<C> tower_service::Service<Uri> for TimeoutConnector<C>
where
    C: tower_service::Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let limit = destination(&dst)
            .and_then(|d| self.timeouts.get(&d).copied())
            .unwrap_or(self.fallback);
        let connecting = self.inner.call(dst);
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimeout(limit)) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    /// A connector whose connections never complete.
    #[derive(Clone)]
    struct Stalled;

    impl Service<Uri> for Stalled {
        type Response = ();
        type Error = std::io::Error;
        type Future = std::future::Pending<Result<(), std::io::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Uri) -> Self::Future {
            std::future::pending()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn connects_are_bounded_by_their_destination_timeout() {
        let uri: Uri = "https://api.example.com/v1".parse().unwrap();
        let timeouts = HashMap::from([(destination(&uri).unwrap(), Duration::from_secs(2))]);
        let mut connector = TimeoutConnector {
            inner: Stalled,
            timeouts: Arc::new(timeouts),
            fallback: Duration::from_secs(9),
        };
        let err = connector.call(uri).await.unwrap_err();
        let timeout = err.downcast_ref::<ConnectTimeout>().unwrap();
        assert_eq!(timeout.0, Duration::from_secs(2));
        let other = connector
            .call("http://other.example".parse().unwrap())
            .await;
        assert_eq!(
            other
                .unwrap_err()
                .downcast_ref::<ConnectTimeout>()
                .unwrap()
                .0,
            Duration::from_secs(9)
        );
    }
}
