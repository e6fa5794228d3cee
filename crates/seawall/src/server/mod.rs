//! The accept loop shared by the gateway and the admin listener: HTTP/1.1 and h2c on one
//! port (or, with TLS, HTTP/1.1 and h2 as ALPN settles), a bound on concurrent connections,
//! and graceful shutdown with a grace period. HTTP/1 connections are served by the crate's
//! own transport (`crate::http1::inbound`); a connection opening with the HTTP/2 preface,
//! or a TLS connection that settled on `h2`, goes to hyper's HTTP/2 server (`h2.rs`).
//! [`tls`] holds the TLS side: handshake, certificate, reload.
//! Handlers get a request with a [`RequestBody`] and answer a [`Reply`], whatever the
//! protocol.
//!
//! Shutdown follows mini-redis: the caller hands [`serve`] a future that resolves when the
//! process should stop (typically a broadcast receiver). From then on no connection is
//! accepted; open connections are told to finish their in-flight requests and close; those
//! still open after [`Limits::shutdown_grace`] are dropped.

mod balance;
mod h2;
pub mod tls;
pub(crate) mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::Request;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub(crate) use self::balance::Balance;
use self::h2::PREFACE;
use self::tls::{Negotiated, TlsAcceptor};
pub use crate::http1::inbound::Timeouts;
use crate::http1::inbound::{self, ClientStream};
use crate::http1::io::READ_CHUNK;
use crate::message::Reply;
pub use crate::message::RequestBody;

/// Bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; further clients wait in the kernel's accept backlog
    /// until one closes (`server.max_connections`).
    pub max_connections: usize,
    /// Time in-flight requests get to finish once shutdown starts (`server.shutdown_grace`).
    pub shutdown_grace: Duration,
    /// How long a connection may wait at each step of an exchange.
    pub timeouts: Timeouts,
    /// Streams an h2c connection may have open at once (`server.h2.max_concurrent_streams`).
    pub h2_max_streams: u32,
}

impl Limits {
    /// A listener's bounds with the default timeouts and h2 stream limit.
    pub fn new(max_connections: usize, shutdown_grace: Duration) -> Self {
        Limits {
            max_connections,
            shutdown_grace,
            timeouts: Timeouts::default(),
            h2_max_streams: 100,
        }
    }
}

/// Pause after a failed `accept` (for example out of file descriptors), so the loop does not
/// spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `listener` with `handler` until `shutdown` resolves, then drains gracefully; over
/// TLS when `tls` is given, else plaintext.
///
/// `handler` is called once per request with the client's address. Returns once every
/// connection has closed or has been dropped at the end of the grace period.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<Arc<TlsAcceptor>>,
    handler: H,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    serve_with_slots(listener, tls, handler, shutdown, limits, slots, None).await;
}

/// [`serve`] with the connection permits in `slots` (`limits.max_connections` of them),
/// which several listeners may share; `worker` is this listener's place in a [`Balance`]
/// of listeners sharing one socket.
pub(crate) async fn serve_with_slots<H, F>(
    listener: TcpListener,
    tls: Option<Arc<TlsAcceptor>>,
    handler: H,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
    slots: Arc<Semaphore>,
    worker: Option<(Arc<Balance>, usize)>,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let local = listener.local_addr().ok();
    // Each connection holds a permit; at zero, the loop stops accepting until one closes.
    // Tells every open connection to finish its current request and close.
    let (stop, stopped) = watch::channel(false);
    // The same signal, for a connection to check between requests without waiting.
    let stopping = Arc::new(AtomicBool::new(false));
    // Owns the connection tasks, so the ones still open after the grace can be dropped.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        while connections.try_join_next().is_some() {}
        if let Some((balance, index)) = &worker {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = balance.my_turn(*index) => {}
            }
        }
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // The semaphore is never closed.
            },
        };
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(listener = ?local, %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%remote, %error, "cannot set TCP_NODELAY");
        }
        let seat = worker.as_ref().map(|(balance, index)| balance.seat(*index));
        let handler = handler.clone();
        let stopped = stopped.clone();
        let stopping = stopping.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let on = Connection {
                remote,
                stopping_now: &stopping,
                limits,
                tls: tls.as_deref(),
            };
            connection(stream, on, handler, stopped).await;
            drop((permit, seat));
        });
    }

    drop(listener);
    let open = limits.max_connections.max(1) - slots.available_permits();
    tracing::info!(listener = ?local, open, grace_s = limits.shutdown_grace.as_secs_f64(),
        "stopped accepting; draining connections");
    stopping.store(true, Ordering::Relaxed);
    let _ = stop.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    tokio::select! {
        () = drained => {
            tracing::info!(listener = ?local, "all connections closed");
        }
        () = tokio::time::sleep(limits.shutdown_grace) => {
            let cut = limits.max_connections.max(1) - slots.available_permits();
            tracing::warn!(listener = ?local, cut, "shutdown grace elapsed; dropping open connections");
        }
    }
    connections.shutdown().await;
}

/// What a connection's task knows besides its socket and handler.
struct Connection<'a> {
    remote: SocketAddr,
    /// Set when shutdown starts (checked without waiting).
    stopping_now: &'a AtomicBool,
    limits: Limits,
    /// The listener's TLS, if it serves TLS.
    tls: Option<&'a TlsAcceptor>,
}

/// Serves one connection: with TLS, the handshake first and then the protocol ALPN settled
/// on; in plaintext, HTTP/1 unless it opens with the HTTP/2 preface (h2c).
async fn connection<H, F>(
    tcp: TcpStream,
    on: Connection<'_>,
    handler: H,
    mut stopped: watch::Receiver<bool>,
) where
    H: Fn(Request<RequestBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let stopping = async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopping);
    let mut stopping: Pin<&mut (dyn Future<Output = ()> + Send)> = stopping;
    let (stream, buf, h2) = match on.tls {
        Some(tls) => {
            // Boxed, like h2 below: a plaintext connection's task need not carry room for a
            // handshake's state.
            let handshake = tokio::select! {
                accepted = Box::pin(tls.accept(tcp, on.remote)) => accepted,
                () = stopping.as_mut() => None,
            };
            let Some((stream, negotiated)) = handshake else {
                return;
            };
            let h2 = matches!(negotiated, Negotiated::H2);
            let buf = BytesMut::with_capacity(if h2 { 0 } else { READ_CHUNK });
            (ClientStream::from(stream), buf, h2)
        }
        None => {
            let mut tcp = tcp;
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            // Read until HTTP/1 and the h2 preface can be told apart.
            let sniff = async {
                loop {
                    if tcp.read_buf(&mut buf).await? == 0 {
                        return Ok::<_, std::io::Error>(false);
                    }
                    if buf.len() >= PREFACE.len() || !PREFACE.starts_with(&buf) {
                        return Ok(true);
                    }
                }
            };
            let idle = on.limits.timeouts.keepalive_idle;
            let readable = tokio::select! {
                read = tokio::time::timeout(idle, sniff) => matches!(read, Ok(Ok(true))),
                () = stopping.as_mut() => false,
            };
            if !readable {
                return;
            }
            let h2 = buf.starts_with(PREFACE);
            (ClientStream::from(tcp), buf, h2)
        }
    };
    if h2 {
        // Boxed: every HTTP/1 connection's task would otherwise carry room for hyper's
        // HTTP/2 connection state.
        let h2 = h2::serve(
            stream,
            buf.freeze(),
            on.remote,
            handler,
            stopping,
            on.limits,
        );
        Box::pin(h2).await;
    } else {
        inbound::serve(
            stream,
            buf,
            on.remote,
            &handler,
            stopping,
            on.stopping_now,
            on.limits.timeouts,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::full;
    use http::{Response, StatusCode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    /// `GET /` on a new connection that asks to close, and everything the server sent.
    pub(super) async fn get(addr: SocketAddr) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok(out)
    }

    /// Serves `handler` on a loopback port with room for `max_connections` and `grace` to
    /// drain, until the returned sender sends (or is dropped).
    async fn start<H, F>(
        handler: H,
        max_connections: usize,
        grace: Duration,
    ) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>)
    where
        H: Fn(Request<RequestBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Reply> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = Limits::new(max_connections, grace);
        let shutdown = async {
            let _ = stopped.await;
        };
        let server = tokio::spawn(serve(listener, None, handler, shutdown, limits));
        (addr, stop, server)
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        let hi = |_req, _remote| async { Reply::from(Response::new(full("hi"))) };
        let (addr, stop, server) = start(hi, 1, Duration::from_secs(5)).await;
        // An idle keep-alive connection takes the only slot…
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // …so a second client is not served until it closes.
        let second = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!second.is_finished());
        drop(idle);
        let reply = second.await.unwrap().unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        stop.send(()).unwrap();
        server.await.unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    }

    /// Fields as an upstream sent them (`X-Upstream` in its own case, a stale length).
    fn upstream_fields() -> crate::message::fields::WireHeaders {
        let mut head =
            BytesMut::from(&b"HTTP/1.1 200 OK\r\nX-Upstream: 1\r\nContent-Length: 99\r\n\r\n"[..]);
        crate::http1::codec::head::parse_response(&mut head)
            .unwrap()
            .unwrap()
            .headers
    }

    /// Serves `body(request)` on a loopback port, with [`upstream_fields`] passed through,
    /// until the returned task is aborted.
    async fn serve_with_upstream_fields(
        body: fn(&Request<RequestBody>) -> String,
    ) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let handler = move |req: Request<RequestBody>, _remote| {
            let reply = Reply::passing(StatusCode::OK, upstream_fields(), full(body(&req)));
            std::future::ready(reply)
        };
        start(handler, 8, Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn passed_through_fields_are_written_as_they_arrived() {
        let (addr, _stop, server) = serve_with_upstream_fields(|_| "hi".into()).await;
        let text = get(addr).await.unwrap();
        assert!(text.contains("\r\nX-Upstream: 1\r\n"), "{text}");
        // The framing is the server's own: the body's real length, not the upstream's.
        assert!(text.contains("content-length: 2\r\n"), "{text}");
        assert!(!text.contains("99"), "{text}");
        server.abort();
    }

    #[tokio::test]
    async fn serves_h2c_with_prior_knowledge() {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let (addr, _stop, server) =
            serve_with_upstream_fields(|req| format!("{:?}", req.version())).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get(format!("http://{addr}/"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        // Passed-through fields reach an HTTP/2 client through the header map.
        assert_eq!(resp.headers()["x-upstream"], "1");
        assert_ne!(
            resp.headers().get("content-length").map(|v| v.as_bytes()),
            Some(&b"99"[..])
        );
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
        assert_eq!(&body.to_bytes()[..], b"HTTP/2.0");
        server.abort();
    }

    #[tokio::test]
    async fn pipelined_answers_held_back_go_out_before_a_slow_handler_waits() {
        let release = Arc::new(tokio::sync::Notify::new());
        let gate = release.clone();
        let handler = move |req: Request<RequestBody>, _remote| {
            let gate = gate.clone();
            async move {
                if req.uri().path() == "/slow" {
                    gate.notified().await;
                }
                Reply::from(Response::new(full(format!("<{}>", req.uri().path()))))
            }
        };
        let (addr, _stop, server) = start(handler, 8, Duration::from_secs(1)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(
                b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n\
                  GET /slow HTTP/1.1\r\nhost: x\r\n\r\n",
            )
            .await
            .unwrap();
        async fn read_until(client: &mut TcpStream, got: &mut Vec<u8>, marker: &str) {
            while !String::from_utf8_lossy(got).contains(marker) {
                let mut chunk = [0u8; 1024];
                let n = client.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed: {}", String::from_utf8_lossy(got));
                got.extend_from_slice(&chunk[..n]);
            }
        }
        let mut got = Vec::new();
        // The first two answers arrive while the third request is still waiting.
        tokio::time::timeout(
            Duration::from_secs(5),
            read_until(&mut client, &mut got, "</b>"),
        )
        .await
        .expect("answers held back for pipelining were not flushed");
        release.notify_one();
        tokio::time::timeout(
            Duration::from_secs(5),
            read_until(&mut client, &mut got, "</slow>"),
        )
        .await
        .expect("the slow answer follows");
        let text = String::from_utf8_lossy(&got);
        let (a, b, slow) = (text.find("</a>"), text.find("</b>"), text.find("</slow>"));
        assert!(a < b && b < slow, "{text}");
        server.abort();
    }

    #[tokio::test]
    async fn grace_elapsed_drops_stuck_requests() {
        let stuck = |_req, _remote| std::future::pending();
        let (addr, stop, server) = start(stuck, 8, Duration::from_millis(50)).await;
        let stuck = tokio::spawn(get(addr));
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns after the grace")
            .unwrap();
        // The client sees the connection close without a response.
        let reply = stuck.await.unwrap().unwrap_or_default();
        assert_eq!(reply, "");
    }
}
