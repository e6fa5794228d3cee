//! TLS for the tests: a CA that issues server certificates for `localhost` and `127.0.0.1`
//! (rcgen), their PEM files, and a real TLS client (rustls) that trusts the CA and speaks
//! HTTP/1.1 or h2 as ALPN settles.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::client::Answer;
use super::serve::BoxError;
use super::temp::temp_dir;
use super::wait::within;

/// A certificate authority of the test's own.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate and its key, as PEM and as the DER a client sees.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "seawall test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// A certificate for `localhost` and `127.0.0.1` whose common name is `name`, signed by
    /// this CA, with a fresh key.
    pub fn issue(&self, name: &str) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A client trusting only this CA and offering `alpn`. It resumes no TLS session, so
    /// every connection's handshake shows the certificate served at that moment.
    pub fn client(&self, alpn: &[&[u8]]) -> TlsClient {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        TlsClient(TlsConnector::from(Arc::new(config)))
    }
}

/// A certificate's PEM files, in a fresh directory of their own.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// `issued` written to `cert.pem` and `key.pem`.
    pub fn new(issued: &Issued) -> Self {
        let dir = temp_dir("tls");
        let files = CertFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        files.write(issued);
        files
    }

    /// Replaces both files with `issued`'s.
    pub fn write(&self, issued: &Issued) {
        std::fs::write(&self.cert, &issued.cert_pem).unwrap();
        std::fs::write(&self.key, &issued.key_pem).unwrap();
    }

    /// The YAML mapping `{ cert_path: …, key_path: … }` naming them, with `extra` keys
    /// (`handshake_timeout: 1s`, say) added when not empty.
    pub fn yaml(&self, extra: &str) -> String {
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!(", {extra}")
        };
        format!(
            "{{ cert_path: '{}', key_path: '{}'{extra} }}",
            self.cert.display(),
            self.key.display()
        )
    }
}

/// A TLS client (see [`TestCa::client`]).
#[derive(Clone)]
pub struct TlsClient(TlsConnector);

/// An answer over TLS, with what the connection settled on.
pub struct TlsAnswer {
    pub answer: Answer,
    /// The HTTP version of the response.
    pub version: Version,
    /// The protocol ALPN settled on, if any.
    pub alpn: Option<Vec<u8>>,
    /// The certificate the server showed.
    pub peer: CertificateDer<'static>,
}

impl TlsClient {
    /// A TLS connection to `addr` for the name `localhost` (bounded).
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TlsStream<TcpStream>> {
        within("a TLS handshake", async {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from("localhost").unwrap();
            self.0.connect(name, tcp).await
        })
        .await
    }

    /// `method path` with `body` on a new connection to `addr`, over h2 if ALPN settled on
    /// it and HTTP/1.1 otherwise, the whole answer read (bounded).
    pub async fn send(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<TlsAnswer, BoxError> {
        let stream = self.connect(addr).await?;
        let (_, session) = stream.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let peer = session.peer_certificates().ok_or("no server certificate")?[0].clone();
        let request = Request::builder()
            .method(method)
            .header("content-type", "application/json");
        let body = Full::new(Bytes::copy_from_slice(body.as_bytes()));
        let io = TokioIo::new(stream);
        let response = if alpn.as_deref() == Some(b"h2") {
            let url = format!("https://localhost:{}{path}", addr.port());
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            within(
                "an h2 answer",
                sender.send_request(request.uri(url).body(body)?),
            )
            .await?
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            let request = request.uri(path).header("host", "localhost").body(body)?;
            within("an HTTP/1.1 answer", sender.send_request(request)).await?
        };
        let (parts, body) = response.into_parts();
        let body = within("a whole body", body.collect()).await?.to_bytes();
        Ok(TlsAnswer {
            answer: Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            },
            version: parts.version,
            alpn,
            peer,
        })
    }

    /// `GET path` on a new connection to `addr`; panics on a failure.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> TlsAnswer {
        self.send(addr, "GET", path, "")
            .await
            .unwrap_or_else(|e| panic!("GET {path} over TLS: {e}"))
    }
}
