//! TLS on a listener (`server.tls`, `admin.tls`): rustls with ALPN `h2` and `http/1.1`, a
//! handshake bounded by `handshake_timeout`, and a certificate that [`TlsAcceptor::reload`]
//! re-reads from its files while the listener keeps serving.
//!
//! The accept loop hands each new TCP connection to [`TlsAcceptor::accept`] inside the
//! connection's task (so a slow handshake holds one connection slot, never the loop); the
//! protocol ALPN settled on picks the HTTP/2 or the HTTP/1 path, and a client that offered
//! no ALPN gets HTTP/1.1.

mod cert;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub use self::cert::CertInfo;
use self::cert::ServedCert;
use crate::config::{TlsConfig, TlsFileError};

/// The protocols offered in ALPN, in the server's order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a listener's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate or key files.
    #[error(transparent)]
    Files(#[from] TlsFileError),
    /// rustls refused the settings (not expected with the bundled ring provider).
    #[error("cannot set up TLS: {0}")]
    Setup(#[from] rustls::Error),
}

/// A listener's TLS series (`seawall_tls_handshake_failures_total{listener}`,
/// `seawall_tls_certificate_expiry_seconds{listener}`); the default ones are registered
/// nowhere.
#[derive(Debug, Clone, Default)]
pub struct TlsMetrics {
    /// Handshakes that failed or timed out.
    pub handshake_failures: Counter,
    /// The served certificate's `notAfter`, in Unix seconds.
    pub certificate_expiry: Gauge,
}

/// What a finished handshake settled on.
pub(crate) enum Negotiated {
    /// ALPN `h2`.
    H2,
    /// ALPN `http/1.1`, or no ALPN.
    Http1,
}

/// A listener's TLS server side: its settings, the certificate it serves, its series.
///
/// ```no_run
/// # use std::time::Duration;
/// use seawall::server::tls::{TlsAcceptor, TlsMetrics};
/// let settings = seawall::config::TlsConfig {
///     cert_path: "/etc/seawall/cert.pem".into(),
///     key_path: "/etc/seawall/key.pem".into(),
///     handshake_timeout: Duration::from_secs(10),
/// };
/// let tls = TlsAcceptor::new("gateway", &settings, TlsMetrics::default())?;
/// // After the files were renewed on disk:
/// tls.reload()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TlsAcceptor {
    /// `gateway` or `admin`, in logs and series.
    listener: &'static str,
    /// The files and the handshake timeout; replaced by [`TlsAcceptor::reload_from`].
    settings: ArcSwap<TlsConfig>,
    /// Read by every handshake; replaced by a reload.
    served: Arc<ServedCert>,
    acceptor: tokio_rustls::TlsAcceptor,
    metrics: TlsMetrics,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("listener", &self.listener)
            .field("settings", &self.settings.load())
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Reads the certificate and key named in `settings` (blocking file I/O) and sets up
    /// rustls for the listener called `listener`.
    pub fn new(
        listener: &'static str,
        settings: &TlsConfig,
        metrics: TlsMetrics,
    ) -> Result<Self, TlsError> {
        let certified = settings.load()?;
        let info = CertInfo::of(&certified);
        let served = Arc::new(ServedCert::new(certified));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(served.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        let acceptor = TlsAcceptor {
            listener,
            settings: ArcSwap::from_pointee(settings.clone()),
            served,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            metrics,
        };
        acceptor.loaded(info.as_ref(), "TLS certificate loaded");
        Ok(acceptor)
    }

    /// Reads the certificate and key files again and serves them from the next handshake
    /// on (open connections, and clients resuming a TLS session from before, keep theirs).
    /// On error the certificate served so far stays, and the error says why. Blocking file
    /// I/O.
    pub fn reload(&self) -> Result<(), TlsFileError> {
        let settings = self.settings.load_full();
        self.reload_from(&settings)
    }

    /// Like [`TlsAcceptor::reload`], from the files and with the handshake timeout of
    /// `settings` (a reloaded configuration): on success they replace the old ones, on error
    /// nothing changes.
    pub fn reload_from(&self, settings: &TlsConfig) -> Result<(), TlsFileError> {
        let certified = match settings.load() {
            Ok(certified) => certified,
            Err(error) => {
                tracing::warn!(listener = self.listener, %error,
                    "TLS certificate not reloaded; still serving the previous one");
                return Err(error);
            }
        };
        let info = CertInfo::of(&certified);
        self.served.replace(certified);
        self.settings.store(Arc::new(settings.clone()));
        self.loaded(info.as_ref(), "TLS certificate reloaded");
        Ok(())
    }

    /// The certificate chain and key served now.
    pub fn certified(&self) -> Arc<CertifiedKey> {
        self.served.current()
    }

    /// What the certificate served now says about itself (`None` if it cannot be read).
    pub fn certificate(&self) -> Option<CertInfo> {
        CertInfo::of(&self.served.current())
    }

    /// Logs a newly served certificate and sets the expiry gauge.
    fn loaded(&self, info: Option<&CertInfo>, what: &str) {
        let Some(info) = info else {
            tracing::info!(
                listener = self.listener,
                "{what} (its subject and expiry unread)"
            );
            return;
        };
        self.metrics.certificate_expiry.set(info.not_after_unix());
        let not_after = humantime::format_rfc3339_seconds(info.not_after);
        tracing::info!(listener = self.listener, subject = %info.subject, %not_after, "{what}");
        if info.expired_at(SystemTime::now()) {
            tracing::warn!(listener = self.listener, subject = %info.subject, %not_after,
                "the TLS certificate has expired: clients will refuse it");
        }
    }

    /// The TLS handshake on a new connection from `remote`, within the handshake timeout.
    /// `None` when it failed or timed out (counted, logged at debug: scanners do this all
    /// day) or when the client closed before sending anything (a port probe or a TCP health
    /// check: not counted). A failure is counted before the connection closes, so whoever
    /// sees it closed finds it counted.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
        remote: SocketAddr,
    ) -> Option<(TlsStream<TcpStream>, Negotiated)> {
        let timeout = self.settings.load().handshake_timeout;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let timed_out = || {
            format!(
                "no handshake within {}",
                humantime::format_duration(timeout)
            )
        };
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            peeked = tcp.peek(&mut first) => peeked.map_err(|e| e.to_string()),
            () = &mut deadline => Err(timed_out()),
        };
        match peeked {
            Ok(0) => {
                tracing::debug!(listener = self.listener, %remote, "closed before a TLS handshake");
                return None;
            }
            Ok(_) => {}
            Err(error) => {
                self.failed(remote, &error);
                return None;
            }
        }
        // Pinned here, so a handshake that times out still holds the connection while the
        // failure is counted.
        let handshake = self.acceptor.accept(tcp).into_fallible();
        tokio::pin!(handshake);
        let (error, _held) = tokio::select! {
            accepted = &mut handshake => match accepted {
                Ok(stream) => {
                    let negotiated = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Negotiated::H2,
                        _ => Negotiated::Http1,
                    };
                    return Some((stream, negotiated));
                }
                Err((error, tcp)) => (error.to_string(), Some(tcp)),
            },
            () = &mut deadline => (timed_out(), None),
        };
        self.failed(remote, &error);
        None
    }

    /// Counts and logs a failed handshake.
    fn failed(&self, remote: SocketAddr, error: &str) {
        self.metrics.handshake_failures.inc();
        tracing::debug!(listener = self.listener, %remote, %error, "TLS handshake failed");
    }
}

/// Warns about the listener called `listener` (configured under `section`, `server` or
/// `admin`) when other hosts can reach `addr` and it speaks plaintext. Returns whether it
/// warned.
pub(crate) fn warn_if_plaintext(
    listener: &str,
    section: &str,
    addr: SocketAddr,
    tls: bool,
) -> bool {
    let exposed = !tls && !addr.ip().is_loopback();
    if exposed {
        tracing::warn!(listener, %addr,
            "serving plaintext HTTP on a non-loopback address: requests, credentials \
             included, cross the network unencrypted; set `{section}.tls` to serve TLS");
    }
    exposed
}
