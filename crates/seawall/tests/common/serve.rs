//! The accept loop every HTTP server of the harness shares: HTTP/1 on a fresh 127.0.0.1 port,
//! a task per connection, for as long as the test's runtime lives.

use std::future::Future;
use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What a server's handler may fail with: an `Err` closes the connection unanswered.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `answer` (each request, with its peer's address) and returns the bound address.
pub async fn serve<F, Fut, B, E>(answer: F) -> SocketAddr
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, remote)) = listener.accept().await {
            let answer = answer.clone();
            let service = service_fn(move |req| answer(req, remote));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}
