//! One upstream connection: TCP with `TCP_NODELAY`, wrapped in TLS for `https`, plus the read
//! buffer whose leftover bytes belong to the next response.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{lookup_host, TcpStream};

use crate::http1::io::{poll_read_buf, Deadline, MaybeTls, READ_CHUNK};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Why no connection to an upstream could be opened, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The host name did not resolve.
    #[error("DNS lookup of `{host}` failed: {source}")]
    Dns { host: String, source: io::Error },
    /// Nothing listens there: the connection was refused.
    #[error("connection to {addr} refused")]
    Refused { addr: SocketAddr },
    /// The TCP connect failed otherwise (unreachable network, reset, …).
    #[error("TCP connect to {addr} failed: {source}")]
    Tcp { addr: SocketAddr, source: io::Error },
    /// The TLS handshake failed (an untrusted or mismatched certificate, a peer that does not
    /// speak TLS, …).
    #[error("TLS handshake with `{host}` failed: {source}")]
    Tls { host: String, source: io::Error },
}

impl ConnectError {
    fn tcp(addr: SocketAddr, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::ConnectionRefused {
            ConnectError::Refused { addr }
        } else {
            ConnectError::Tcp { addr, source }
        }
    }

    /// The step that failed, as answers and logs name it: `dns`, `refused`, `connect` or `tls`.
    pub(crate) fn cause(&self) -> &'static str {
        match self {
            ConnectError::Dns { .. } => "dns",
            ConnectError::Refused { .. } => "refused",
            ConnectError::Tcp { .. } => "connect",
            ConnectError::Tls { .. } => "tls",
        }
    }
}

/// Plain TCP or TLS over TCP.
pub(super) type Io = MaybeTls<TlsStream<TcpStream>>;

/// An open connection, what has been read from it but not yet used, and its deadline timer.
pub(super) struct UpstreamConn {
    pub(super) io: Io,
    pub(super) buf: BytesMut,
    /// Bytes to write (a request head, ready body frames); reused for every request.
    pub(super) out: Vec<u8>,
    /// Bounds the wait for a response head.
    deadline: Deadline,
}

impl UpstreamConn {
    /// Connects to `host:port`, with TLS when `tls` is given (SNI and verification against
    /// `server_name`). Each step fails with its own [`ConnectError`]: the name lookup, the TCP
    /// connect (every address in turn, as `TcpStream::connect` does), the TLS handshake.
    pub(super) async fn open(
        host: &str,
        port: u16,
        tls: Option<(&Arc<rustls::ClientConfig>, &ServerName<'static>)>,
    ) -> Result<UpstreamConn, ConnectError> {
        let dns = |source| ConnectError::Dns {
            host: host.to_owned(),
            source,
        };
        let mut last = None;
        let mut connected = None;
        for addr in lookup_host((host, port)).await.map_err(dns)? {
            match TcpStream::connect(addr).await {
                Ok(tcp) => {
                    connected = Some((addr, tcp));
                    break;
                }
                Err(source) => last = Some(ConnectError::tcp(addr, source)),
            }
        }
        let Some((addr, tcp)) = connected else {
            let none = || dns(io::Error::new(io::ErrorKind::NotFound, "no address found"));
            return Err(last.unwrap_or_else(none));
        };
        tcp.set_nodelay(true)
            .map_err(|source| ConnectError::tcp(addr, source))?;
        let io = match tls {
            None => Io::Plain(tcp),
            Some((config, name)) => {
                let stream = TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| ConnectError::Tls {
                        host: host.to_owned(),
                        source,
                    })?;
                Io::Tls(Box::new(stream))
            }
        };
        Ok(UpstreamConn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::with_capacity(1024),
            deadline: Deadline::new(),
        })
    }

    /// Whether the idle connection looks reusable: nothing to read (a readable idle
    /// connection was closed by the server or sent something unasked) and no leftovers.
    /// Uses tokio's cached readiness: no system call.
    pub(super) fn is_reusable(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let tcp = match &self.io {
            Io::Plain(tcp) => tcp,
            Io::Tls(tls) => tls.get_ref().0,
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        tcp.poll_read_ready(&mut cx).is_pending()
    }

    /// Reads more bytes into `buf`: `Ready(Ok(0))` at end of file.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        poll_read_buf(&mut self.io, &mut self.buf, cx)
    }

    /// Sets the deadline of the waits that follow to `after` from now.
    pub(super) fn set_deadline(&mut self, after: Duration) {
        self.deadline.arm(after);
    }

    /// Reads more bytes into `buf` before the deadline: `Ok(None)` when it passed first,
    /// `Ok(Some(0))` at end of file.
    pub(super) async fn fill_by_deadline(&mut self) -> io::Result<Option<usize>> {
        std::future::poll_fn(|cx| match self.poll_fill(cx) {
            Poll::Ready(read) => Poll::Ready(read.map(Some)),
            Poll::Pending if self.deadline.poll_expired(cx) => Poll::Ready(Ok(None)),
            Poll::Pending => Poll::Pending,
        })
        .await
    }

    /// Writes all of `out` before the deadline.
    pub(super) async fn write_out(&mut self) -> io::Result<()> {
        let out = std::mem::take(&mut self.out);
        let written = self.write_by_deadline(&out).await;
        self.out = out;
        written
    }

    /// Writes all of `bytes` and flushes, before the deadline (a server that does not read
    /// its requests is as slow as one that does not answer).
    pub(super) async fn write_by_deadline(&mut self, bytes: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let (io, deadline) = (&mut self.io, &mut self.deadline);
        let write = async {
            io.write_all(bytes).await?;
            if let Io::Tls(_) = io {
                io.flush().await?;
            }
            Ok(())
        };
        tokio::pin!(write);
        std::future::poll_fn(|cx| match write.as_mut().poll(cx) {
            Poll::Ready(done) => Poll::Ready(done),
            Poll::Pending if deadline.poll_expired(cx) => {
                Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
            }
            Poll::Pending => Poll::Pending,
        })
        .await
    }

    /// The connection after a `101 Switching Protocols`, with what the server already sent.
    pub(super) fn upgraded(self) -> Upgraded {
        Upgraded {
            io: self.io,
            read: self.buf,
        }
    }
}

/// An upstream connection that switched protocols: the bytes the server sent after its
/// `101`, then the connection itself.
pub(crate) struct Upgraded {
    io: Io,
    read: BytesMut,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
