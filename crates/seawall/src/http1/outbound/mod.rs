//! The upstream client: HTTP/1.1 over pooled connections (plain or TLS with rustls, ring and
//! the webpki roots), driven in the calling task.
//!
//! A request takes an idle connection from its destination's pool (newest first, after a
//! readiness check that costs no system call) or opens one within the provider's
//! `timeouts.connect`, writes the head and body (small bodies in the same write), and reads
//! the response head. The response body ([`ResponseBody`]) reads from the connection as the
//! client's side pulls it and returns the connection to the pool when it ends. A reused
//! connection that turns out closed before the request could be written is replaced once.
//!
//! A pool keeps its idle connections in stripes, one per gateway worker thread (each calls
//! [`use_pool_stripe`] when it starts) and one shared by all other threads: a connection is
//! driven by the runtime of the thread that opened it, so it is only reused there.

mod body;
mod conn;

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use rustls::pki_types::ServerName;
use tokio::time::Instant;

pub(crate) use self::body::ResponseBody;
use self::conn::UpstreamConn;
pub(crate) use self::conn::{ConnectError, Upgraded};
use crate::http1::codec::decode::{Decoder, Framing};
use crate::http1::codec::head::{self, HeadError};
use crate::message::fields::WireHeaders;

/// Idle pooled connections older than this are closed instead of reused.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Most idle connections kept per destination and stripe.
const MAX_IDLE: usize = 1024;
/// Idle-connection stripes per pool: stripe 0 for threads that are not gateway workers, the
/// others for workers (worker `i` uses `1 + i % (STRIPES - 1)`).
const STRIPES: usize = 16;

thread_local! {
    /// This thread's stripe of every pool.
    static STRIPE: Cell<usize> = const { Cell::new(0) };
}

/// Makes this thread (gateway worker `worker`) keep and reuse its own upstream connections.
pub(crate) fn use_pool_stripe(worker: usize) {
    STRIPE.set(1 + worker % (STRIPES - 1));
}
/// Bodies up to this size go in the same write as the head.
const INLINE_BODY: usize = 64 * 1024;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("{0}")]
    Connect(ConnectError),
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("upstream connection: {0}")]
    Io(io::Error),
    #[error("upstream closed the connection before answering")]
    Closed,
    #[error("no response head in time")]
    FirstByteTimeout,
    #[error("invalid upstream response: {0}")]
    Head(HeadError),
}

impl SendError {
    /// Why, in one word for answers, logs and dashboards: `dns`, `refused`, `connect`, `tls`
    /// (see [`ConnectError::cause`]), `connect_timeout`, `connection_error`,
    /// `connection_closed`, `first_byte_timeout` or `invalid_response`.
    pub(crate) fn cause(&self) -> &'static str {
        match self {
            SendError::Connect(e) => e.cause(),
            SendError::ConnectTimeout(_) => "connect_timeout",
            SendError::Io(_) => "connection_error",
            SendError::Closed => "connection_closed",
            SendError::FirstByteTimeout => "first_byte_timeout",
            SendError::Head(_) => "invalid_response",
        }
    }
}

/// The shared TLS settings and one pool per destination: one for the whole daemon, so every
/// outbound call (providers, outputs, the flag service) reuses connections to a destination.
pub(crate) struct Pools {
    tls: Arc<rustls::ClientConfig>,
    by_destination: Mutex<HashMap<(bool, String, u16), Arc<Pool>>>,
}

impl Pools {
    /// Pools whose TLS connections trust the webpki (Mozilla) roots.
    pub(crate) fn new() -> Result<Self, rustls::Error> {
        Self::with_roots(seawall_http::tls::webpki_roots())
    }

    /// Pools whose TLS connections trust `roots`.
    pub(crate) fn with_roots(roots: rustls::RootCertStore) -> Result<Self, rustls::Error> {
        let tls = seawall_http::tls::client_config(Some(roots), &[b"http/1.1"])?;
        Ok(Pools {
            tls: Arc::new(tls),
            by_destination: Mutex::new(HashMap::new()),
        })
    }

    /// Closes idle connections that idled too long or that their server closed, in every pool.
    pub(crate) fn sweep(&self) {
        let pools: Vec<Arc<Pool>> = self.lock().values().cloned().collect();
        for pool in pools {
            pool.sweep();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(bool, String, u16), Arc<Pool>>> {
        self.by_destination
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The pool for `base`'s scheme, host and port (shared by everything sent there).
    pub(crate) fn pool_for(&self, base: &Uri) -> Result<Arc<Pool>, String> {
        let tls = match base.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the scheme must be http or https".into()),
        };
        let host = base.host().ok_or("no host")?.to_ascii_lowercase();
        let port = base.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let key = (tls, host.clone(), port);
        let mut by_destination = self.lock();
        if let Some(pool) = by_destination.get(&key) {
            return Ok(pool.clone());
        }
        // `[::1]` in a URL is `::1` to connect to and to verify.
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name = ServerName::try_from(bare.clone()).map_err(|e| e.to_string())?;
        let authority = base
            .authority()
            .map_or(host.clone(), |a| a.as_str().to_owned());
        let pool = Arc::new(Pool {
            host: bare,
            port,
            tls: tls.then(|| (self.tls.clone(), server_name)),
            host_header: format!("host: {authority}\r\n").into_bytes(),
            idle: std::array::from_fn(|_| Mutex::new(VecDeque::new())),
        });
        by_destination.insert(key, pool.clone());
        Ok(pool)
    }
}

/// Idle connections to one destination.
pub(crate) struct Pool {
    host: String,
    port: u16,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// `host: …\r\n`, written when the request has no `host` of its own.
    host_header: Vec<u8>,
    /// Oldest at the front; taken from the back.
    idle: [Mutex<VecDeque<(UpstreamConn, Instant)>>; STRIPES],
}

/// An upstream's answer: its status, its end-to-end fields as they arrived, and its body; or,
/// for an upgrade the upstream accepted (`101`), the connection itself.
pub(crate) struct UpstreamResponse {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: WireHeaders,
    pub(crate) body: ResponseBody,
    /// After a `101 Switching Protocols` to an upgrade request: the connection, now speaking
    /// the new protocol.
    pub(crate) upgraded: Option<Upgraded>,
}

/// A request to send: everything but the body.
pub(crate) struct Outgoing<'a> {
    pub(crate) method: &'a Method,
    /// The request target's pieces, written one after the other (path, then `?query`).
    pub(crate) target: [&'a str; 4],
    pub(crate) headers: &'a HeaderMap,
    /// The protocol to switch to (`upgrade: websocket`), sent with `connection: upgrade`.
    pub(crate) upgrade: Option<&'a HeaderValue>,
}

/// How one attempt on one connection failed.
enum Attempt {
    /// Before any byte of an answer arrived (the write failed, or the server closed or reset
    /// the connection): the server did not answer, so the request may be sent again.
    Unanswered(SendError),
    /// Any other failure (a timeout, a broken head): not retried.
    Failed(SendError),
}

impl Pool {
    /// Sends a request with its whole `body` and waits for the response head. `connect`
    /// bounds opening a new connection (TCP and TLS); `first_byte` bounds writing the
    /// request and waiting for the head.
    ///
    /// A reused connection that fails before any answer (the server closed it while it
    /// idled, racing this request) is replaced by a fresh one once; only a fresh
    /// connection's failure is returned.
    pub(crate) async fn send(
        self: &Arc<Self>,
        req: Outgoing<'_>,
        body: Bytes,
        connect: Duration,
        first_byte: Duration,
    ) -> Result<UpstreamResponse, SendError> {
        if let Some(conn) = self.checkout() {
            match self.exchange(conn, &req, &body, first_byte).await {
                Err(Attempt::Unanswered(error)) => {
                    tracing::debug!(host = %self.host, %error,
                        "reused upstream connection failed before answering; retrying on a fresh one");
                }
                Err(Attempt::Failed(error)) => return Err(error),
                Ok(resp) => return Ok(resp),
            }
        }
        let conn = self.open(connect).await?;
        match self.exchange(conn, &req, &body, first_byte).await {
            Ok(resp) => Ok(resp),
            Err(Attempt::Unanswered(error) | Attempt::Failed(error)) => Err(error),
        }
    }

    /// One attempt on `conn`: write the request, read the answer's head.
    async fn exchange(
        self: &Arc<Self>,
        mut conn: UpstreamConn,
        req: &Outgoing<'_>,
        body: &Bytes,
        first_byte: Duration,
    ) -> Result<UpstreamResponse, Attempt> {
        conn.set_deadline(first_byte);
        conn.out.clear();
        self.write_head(&mut conn.out, req, body.len());
        let small = body.len() <= INLINE_BODY;
        if small {
            conn.out.extend_from_slice(body);
        }
        // A server that does not take the request in time is as slow as one that does not
        // answer; any other write error means the connection was dead: nothing was answered.
        let unanswered = |e: io::Error| match e.kind() {
            io::ErrorKind::TimedOut => Attempt::Failed(SendError::FirstByteTimeout),
            _ => Attempt::Unanswered(SendError::Io(e)),
        };
        conn.write_out().await.map_err(unanswered)?;
        if !small {
            conn.write_by_deadline(body).await.map_err(unanswered)?;
        }
        self.read_response(conn, req).await
    }

    fn write_head(&self, out: &mut Vec<u8>, req: &Outgoing<'_>, length: usize) {
        out.extend_from_slice(req.method.as_str().as_bytes());
        out.push(b' ');
        for piece in req.target {
            out.extend_from_slice(piece.as_bytes());
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !req.headers.contains_key(HOST) {
            out.extend_from_slice(&self.host_header);
        }
        head::write_headers(out, req.headers);
        if let Some(protocol) = req.upgrade {
            out.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
            out.extend_from_slice(protocol.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if length > 0 || matches!(*req.method, Method::POST | Method::PUT | Method::PATCH) {
            head::write_content_length(out, length as u64);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Reads the response head (skipping interim `1xx` responses).
    async fn read_response(
        self: &Arc<Self>,
        mut conn: UpstreamConn,
        req: &Outgoing<'_>,
    ) -> Result<UpstreamResponse, Attempt> {
        let failed = |e| Attempt::Failed(e);
        loop {
            match head::parse_response(&mut conn.buf) {
                Ok(Some(head)) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                    if req.upgrade.is_none() {
                        let unasked =
                            HeadError::Malformed("a 101 to a request without upgrade".into());
                        return Err(failed(SendError::Head(unasked)));
                    }
                    return Ok(UpstreamResponse {
                        status: head.status,
                        headers: head.headers,
                        body: ResponseBody::empty(),
                        upgraded: Some(conn.upgraded()),
                    });
                }
                Ok(Some(head)) if head.status.is_informational() => {}
                Ok(Some(head)) => {
                    let framing = head::response_framing(&head, req.method)
                        .map_err(|e| failed(SendError::Head(e)))?;
                    let reusable = head.keep_alive && framing != Framing::UntilClose;
                    let body = ResponseBody::new(
                        conn,
                        Decoder::new(framing),
                        reusable.then(|| self.clone()),
                    );
                    return Ok(UpstreamResponse {
                        status: head.status,
                        headers: head.headers,
                        body,
                        upgraded: None,
                    });
                }
                Ok(None) => {
                    let nothing_yet = conn.buf.is_empty();
                    let fail = |e| match nothing_yet {
                        true => Attempt::Unanswered(e),
                        false => Attempt::Failed(e),
                    };
                    match conn.fill_by_deadline().await {
                        Ok(Some(0)) => return Err(fail(SendError::Closed)),
                        Ok(Some(_)) => {}
                        Ok(None) => return Err(failed(SendError::FirstByteTimeout)),
                        Err(e) => return Err(fail(SendError::Io(e))),
                    }
                }
                Err(e) => return Err(failed(SendError::Head(e))),
            }
        }
    }

    /// The newest idle connection that still looks usable.
    fn checkout(&self) -> Option<UpstreamConn> {
        let mut idle = self.idle[STRIPE.get()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while let Some((conn, since)) = idle.pop_back() {
            if since.elapsed() < POOL_IDLE && conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    /// Closes idle connections that are too old or that the server has closed (they would
    /// otherwise hold a descriptor in `CLOSE_WAIT` until the next request to this
    /// destination). Returns how many stay open.
    pub(crate) fn sweep(&self) -> usize {
        let mut open = 0;
        for stripe in &self.idle {
            let mut idle = stripe.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|(conn, since)| since.elapsed() < POOL_IDLE && conn.is_reusable());
            open += idle.len();
        }
        open
    }

    /// Returns a connection whose exchange completed cleanly.
    fn put(&self, conn: UpstreamConn) {
        let now = Instant::now();
        let mut idle = self.idle[STRIPE.get()]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while idle.front().is_some_and(|(_, since)| {
            now.duration_since(*since) >= POOL_IDLE || idle.len() >= MAX_IDLE
        }) {
            idle.pop_front();
        }
        idle.push_back((conn, now));
    }

    async fn open(&self, limit: Duration) -> Result<UpstreamConn, SendError> {
        let tls = self.tls.as_ref().map(|(config, name)| (config, name));
        // Boxed: a TLS handshake's state is large, and connecting is the rare path; inline, it
        // would be moved with every request's future.
        let connecting = Box::pin(UpstreamConn::open(&self.host, self.port, tls));
        match tokio::time::timeout(limit, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(SendError::Connect(e)),
            Err(_) => Err(SendError::ConnectTimeout(limit)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// An HTTPS server on loopback for `localhost` with a fresh self-signed certificate,
    /// answering every request `200 ok`; returns its port, certificate and accept count.
    async fn https_upstream() -> (u16, CertificateDer<'static>, Arc<AtomicUsize>) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = generated.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key.into())
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counted = accepts.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let Ok(n) = tls.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if tls.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, cert, accepts)
    }

    async fn get(pool: &Arc<Pool>) -> Result<(u16, Bytes), SendError> {
        let headers = HeaderMap::new();
        let req = Outgoing {
            method: &Method::GET,
            target: ["", "/v1/models", "", ""],
            headers: &headers,
            upgrade: None,
        };
        let secs = Duration::from_secs(5);
        let resp = pool.send(req, Bytes::new(), secs, secs).await?;
        let status = resp.status.as_u16();
        let bytes = resp.body.collect().await.unwrap().to_bytes();
        Ok((status, bytes))
    }

    /// A plain HTTP server that answers one request with keep-alive, then closes the
    /// connection when told to.
    async fn closing_upstream() -> (u16, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (close, closed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tcp.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            let _ = closed.await;
        });
        (port, close)
    }

    #[tokio::test]
    async fn sweeping_closes_idle_connections_the_server_closed() {
        let (port, close) = closing_upstream().await;
        let base: Uri = format!("http://127.0.0.1:{port}").parse().unwrap();
        let pool = Pools::new().unwrap().pool_for(&base).unwrap();
        assert_eq!(get(&pool).await.unwrap().0, 200);
        assert_eq!(pool.sweep(), 1, "the idle connection is kept while open");
        drop(close);
        // The close reaches the event loop asynchronously: sweep until it has (bounded).
        let swept = tokio::time::timeout(Duration::from_secs(5), async {
            while pool.sweep() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(swept.is_ok(), "the closed connection was never swept");
    }

    #[tokio::test]
    async fn https_upstreams_are_verified_and_their_connections_reused() {
        let (port, cert, accepts) = https_upstream().await;
        let base: Uri = format!("https://localhost:{port}").parse().unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let pool = Pools::with_roots(roots).unwrap().pool_for(&base).unwrap();
        for _ in 0..3 {
            let (status, body) = get(&pool).await.unwrap();
            assert_eq!((status, &body[..]), (200, &b"ok"[..]));
        }
        assert_eq!(
            accepts.load(Ordering::SeqCst),
            1,
            "one TLS connection, reused"
        );
        // The same server is refused when its certificate is not trusted.
        let untrusted = Pools::new().unwrap().pool_for(&base).unwrap();
        let err = get(&untrusted).await.unwrap_err();
        assert!(matches!(err, SendError::Connect(_)), "{err}");
        assert_eq!(err.cause(), "tls", "{err}");
        assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    }
}
