//! The rustls client settings of every outbound connection: the ring provider, TLS 1.2 and
//! 1.3, certificates verified against the webpki (Mozilla) roots unless others are given.

use std::sync::Arc;

pub use rustls::{ClientConfig, Error, RootCertStore};

/// A client configuration trusting `roots` (the webpki roots when `None`) and offering
/// `alpn` protocols (for example `[b"http/1.1"]`).
///
/// ```
/// let config = seawall_http::tls::client_config(None, &[b"http/1.1"]).unwrap();
/// assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
/// ```
pub fn client_config(roots: Option<RootCertStore>, alpn: &[&[u8]]) -> Result<ClientConfig, Error> {
    let roots = roots.unwrap_or_else(webpki_roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The webpki (Mozilla) root certificates.
pub fn webpki_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}
