//! The certificate a listener serves: held where every handshake reads it without a lock,
//! replaced whole by a reload, plus what an operator wants to know about it (subject, expiry).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The chain and key that handshakes are answered with, swappable at run time.
#[derive(Debug)]
pub(super) struct ServedCert(ArcSwap<CertifiedKey>);

impl ServedCert {
    pub(super) fn new(certified: CertifiedKey) -> Self {
        ServedCert(ArcSwap::from_pointee(certified))
    }

    /// From the next handshake on, `certified` is served (handshakes under way finish with
    /// the one they started with).
    pub(super) fn replace(&self, certified: CertifiedKey) {
        self.0.store(Arc::new(certified));
    }

    /// The certificate served now.
    pub(super) fn current(&self) -> Arc<CertifiedKey> {
        self.0.load_full()
    }
}

impl ResolvesServerCert for ServedCert {
    /// The same certificate whatever the client asks for (one per listener, no SNI choice).
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What the served certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The first certificate's subject, as `CN=…, O=…` (empty when it has none).
    pub subject: String,
    /// The end of its validity (`notAfter`).
    pub not_after: SystemTime,
}

impl CertInfo {
    /// Reads the first certificate of `certified`; `None` if x509-parser cannot read it
    /// (rustls already accepted it, so this only costs the log line and the expiry gauge).
    pub(super) fn of(certified: &CertifiedKey) -> Option<CertInfo> {
        let der = certified.cert.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let seconds = cert.validity().not_after.timestamp();
        let not_after = match u64::try_from(seconds) {
            Ok(after) => UNIX_EPOCH.checked_add(Duration::from_secs(after))?,
            Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))?,
        };
        Some(CertInfo {
            subject: cert.subject().to_string(),
            not_after,
        })
    }

    /// `notAfter` in seconds since the Unix epoch (negative before it), for the gauge.
    pub fn not_after_unix(&self) -> i64 {
        match self.not_after.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
        }
    }

    /// Whether the certificate has expired at `now`.
    pub fn expired_at(&self, now: SystemTime) -> bool {
        self.not_after < now
    }
}
