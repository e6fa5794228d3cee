use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::config::testing::{files, self_signed, self_signed_until};

/// The acceptor's answer to a client that sends nothing, and how long it took; a paused
/// clock runs on to a minute if the acceptor never gives up.
async fn silent_client(tls: &TlsAcceptor) -> (bool, Duration) {
    let (server, remote, _client) = connected().await;
    let started = tokio::time::Instant::now();
    let accepted = tokio::time::timeout(Duration::from_secs(60), tls.accept(server, remote))
        .await
        .expect("the handshake timeout ends the wait");
    (accepted.is_some(), started.elapsed())
}

/// An acceptor for a fresh self-signed certificate named `name`, and its series.
fn acceptor(name: &str) -> (TlsAcceptor, TlsMetrics) {
    let (cert, key) = self_signed(name);
    let metrics = TlsMetrics::default();
    let tls = TlsAcceptor::new("gateway", &files(&cert, &key), metrics.clone()).unwrap();
    (tls, metrics)
}

/// The first certificate of the PEM text `pem`.
fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A server-side socket and the client's end of it.
async fn connected() -> (TcpStream, SocketAddr, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, remote) = listener.accept().await.unwrap();
    (server, remote, client)
}

/// A TLS client offering `alpn` and trusting only the certificate `tls` serves now: what the
/// acceptor returned, and the certificate the client was shown.
async fn handshake(
    tls: &TlsAcceptor,
    alpn: &[&[u8]],
) -> (
    Option<(TlsStream<TcpStream>, Negotiated)>,
    CertificateDer<'static>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(tls.certified().cert[0].clone()).unwrap();
    let config = seawall_http::tls::client_config(Some(roots), alpn).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let (server, remote, client) = connected().await;
    let name = ServerName::try_from("localhost").unwrap();
    let (accepted, connected) =
        tokio::join!(tls.accept(server, remote), connector.connect(name, client));
    let client = connected.unwrap();
    let seen = client.get_ref().1.peer_certificates().unwrap()[0].clone();
    (accepted, seen)
}

#[tokio::test]
async fn alpn_picks_h2_or_http1_and_no_alpn_is_http1() {
    let (tls, metrics) = acceptor("alpn");
    let cases: [(&[&[u8]], bool); 4] = [
        (&[b"h2", b"http/1.1"], true),
        (&[b"h2"], true),
        (&[b"http/1.1"], false),
        (&[], false),
    ];
    for (alpn, h2) in cases {
        let (_, negotiated) = handshake(&tls, alpn).await.0.expect("a handshake");
        assert_eq!(matches!(negotiated, Negotiated::H2), h2, "{alpn:?}");
    }
    assert_eq!(metrics.handshake_failures.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_nothing_is_dropped_at_the_handshake_timeout() {
    let (tls, metrics) = acceptor("silent");
    // Paused time moves only when every task waits: exactly the timeout has passed.
    assert_eq!(silent_client(&tls).await, (false, Duration::from_secs(10)));
    assert_eq!(metrics.handshake_failures.get(), 1);
}

#[tokio::test]
async fn plaintext_http_is_a_failed_handshake() {
    let (tls, metrics) = acceptor("plain");
    let (server, remote, mut client) = connected().await;
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(tls.accept(server, remote).await.is_none());
    assert_eq!(metrics.handshake_failures.get(), 1);
}

#[tokio::test]
async fn a_client_closing_before_its_first_byte_is_not_a_failed_handshake() {
    let (tls, metrics) = acceptor("probe");
    let (server, remote, client) = connected().await;
    drop(client);
    assert!(tls.accept(server, remote).await.is_none());
    assert_eq!(metrics.handshake_failures.get(), 0);
}

#[tokio::test]
async fn reload_serves_the_new_files_and_a_broken_file_keeps_the_old_certificate() {
    let (first_cert, first_key) = self_signed_until("first", (2031, 2, 3));
    let settings = files(&first_cert, &first_key);
    let metrics = TlsMetrics::default();
    let tls = TlsAcceptor::new("gateway", &settings, metrics.clone()).unwrap();
    assert_eq!(tls.certified().cert[0], der(&first_cert));
    assert_eq!(metrics.certificate_expiry.get(), 1_927_843_200);

    let (second_cert, second_key) = self_signed_until("second", (2035, 6, 7));
    std::fs::write(&settings.cert_path, &second_cert).unwrap();
    std::fs::write(&settings.key_path, &second_key).unwrap();
    tls.reload().unwrap();
    assert_eq!(tls.certified().cert[0], der(&second_cert));
    assert_eq!(tls.certificate().unwrap().subject, "CN=second");
    assert_eq!(metrics.certificate_expiry.get(), 2_064_787_200);
    // Handshakes get the new certificate.
    let (accepted, seen) = handshake(&tls, &[]).await;
    assert!(accepted.is_some());
    assert_eq!(seen, der(&second_cert));

    // A key that belongs to another certificate: refused, the second one stays.
    std::fs::write(&settings.key_path, &first_key).unwrap();
    let error = tls.reload().unwrap_err();
    assert!(matches!(error, TlsFileError::Mismatch { .. }), "{error}");
    assert_eq!(tls.certified().cert[0], der(&second_cert));
    assert_eq!(metrics.certificate_expiry.get(), 2_064_787_200);
    std::fs::write(&settings.cert_path, "").unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(tls.certified().cert[0], der(&second_cert));
}

#[tokio::test(start_paused = true)]
async fn reload_from_switches_files_and_handshake_timeout_together() {
    let (tls, _) = acceptor("before");
    let (cert, key) = self_signed("after");
    let mut moved = files(&cert, &key);
    moved.handshake_timeout = Duration::from_secs(3);
    // Broken new settings change nothing, not even the timeout.
    let mut broken = moved.clone();
    broken.key_path = broken.key_path.with_file_name("missing.pem");
    assert!(tls.reload_from(&broken).is_err());
    assert_eq!(silent_client(&tls).await, (false, Duration::from_secs(10)));

    tls.reload_from(&moved).unwrap();
    assert_eq!(tls.certified().cert[0], der(&cert));
    assert_eq!(silent_client(&tls).await, (false, Duration::from_secs(3)));
    // A plain reload reads the new paths.
    std::fs::remove_file(&moved.key_path).unwrap();
    assert!(tls.reload().is_err());
}

/// Log lines written while `f` runs, as text.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let text = lines.0.lock().unwrap().clone();
    String::from_utf8(text).unwrap()
}

#[test]
fn plaintext_on_a_non_loopback_address_is_warned_about_once_naming_listener_and_address() {
    let exposed: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let text = logged(|| assert!(warn_if_plaintext("gateway", "server", exposed, false)));
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("listener=\"gateway\""), "{text}");
    assert!(text.contains("addr=0.0.0.0:8080"), "{text}");
    assert!(text.contains("`server.tls`"), "{text}");
    let quiet = [
        ("[::]:9090", true),
        ("127.0.0.1:8080", false),
        ("[::1]:8080", false),
    ];
    for (addr, tls) in quiet {
        let addr: SocketAddr = addr.parse().unwrap();
        let text = logged(|| assert!(!warn_if_plaintext("admin", "admin", addr, tls)));
        assert_eq!(text, "", "{addr}");
    }
}

#[test]
fn a_loaded_certificate_is_logged_with_its_subject_and_expiry_and_an_expired_one_warns() {
    let (cert, key) = self_signed_until("old", (2020, 1, 1));
    let settings = files(&cert, &key);
    let text = logged(|| {
        TlsAcceptor::new("admin", &settings, TlsMetrics::default()).unwrap();
    });
    let mut lines = text.lines();
    let loaded = lines.next().unwrap_or_default();
    assert!(loaded.contains("INFO"), "{text}");
    assert!(loaded.contains("TLS certificate loaded"), "{text}");
    assert!(loaded.contains("subject=CN=old"), "{text}");
    assert!(loaded.contains("not_after=2020-01-01T00:00:00Z"), "{text}");
    let expired = lines.next().unwrap_or_default();
    assert!(
        expired.contains("WARN") && expired.contains("expired"),
        "{text}"
    );
}
