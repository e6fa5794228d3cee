//! `seawall ready`: asks a running daemon's admin listener whether it is ready (`GET /readyz`),
//! for health checks where no HTTP client is at hand (the distroless container image). Over
//! TLS when the listener has `admin.tls`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why the daemon is not known to be ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// Nothing answered at the admin address.
    #[error("cannot reach the admin listener at {addr}: {source}")]
    Unreachable {
        /// Where it was asked.
        addr: SocketAddr,
        /// What the connection said.
        source: std::io::Error,
    },
    /// It answered something other than `200` (starting, draining).
    #[error("{addr}/readyz answered `{status_line}`")]
    Answered {
        /// Where it was asked.
        addr: SocketAddr,
        /// The answer's status line.
        status_line: String,
    },
    /// No answer in time.
    #[error("{addr}/readyz did not answer within {within:?}")]
    TimedOut {
        /// Where it was asked.
        addr: SocketAddr,
        /// How long it was given.
        within: Duration,
    },
}

/// Where to reach an admin listener bound to `listen` from this host: an unspecified address
/// (`0.0.0.0`, `[::]`) is reached on loopback.
///
/// ```
/// use seawall::ready::reach;
/// assert_eq!(reach("0.0.0.0:9090".parse().unwrap()), "127.0.0.1:9090".parse().unwrap());
/// assert_eq!(reach("[::]:9090".parse().unwrap()), "[::1]:9090".parse().unwrap());
/// assert_eq!(reach("10.0.0.5:9090".parse().unwrap()), "10.0.0.5:9090".parse().unwrap());
/// ```
pub fn reach(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `Ok` when `GET /readyz` at `addr` answers `200` within `within`, over TLS when `tls`.
pub async fn probe(addr: SocketAddr, tls: bool, within: Duration) -> Result<(), NotReady> {
    match tokio::time::timeout(within, ask(addr, tls)).await {
        Ok(result) => result,
        Err(_) => Err(NotReady::TimedOut { addr, within }),
    }
}

async fn ask(addr: SocketAddr, tls: bool) -> Result<(), NotReady> {
    let unreachable = |source| NotReady::Unreachable { addr, source };
    let tcp = TcpStream::connect(addr).await.map_err(unreachable)?;
    if !tls {
        return exchange(tcp, addr).await;
    }
    let connector = TlsConnector::from(Arc::new(tls_config()));
    let name = ServerName::IpAddress(addr.ip().into());
    let stream = connector.connect(name, tcp).await.map_err(unreachable)?;
    exchange(stream, addr).await
}

/// Sends `GET /readyz` on `stream` and reads the answer's status line.
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    addr: SocketAddr,
) -> Result<(), NotReady> {
    let unreachable = |source| NotReady::Unreachable { addr, source };
    let request = format!("GET /readyz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(unreachable)?;
    // The status line is all that matters; it comes first and is short.
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 128];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf).await.map_err(unreachable)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default().trim().to_owned();
    let mut parts = status_line.split(' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
        _ => Err(NotReady::Answered { addr, status_line }),
    }
}

/// A client that offers no ALPN (the listener then speaks HTTP/1.1) and takes the listener's
/// certificate whatever signed it: the probe asks a listener of this host's own daemon and
/// sends nothing secret, while the certificate may come from a private CA the probe has no
/// copy of. The handshake's signatures are still checked.
fn tls_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(provider.clone()));
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

/// Accepts any certificate chain; verifies the handshake signatures with `0`'s algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
