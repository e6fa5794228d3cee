//! A client's connection as the server reads and writes it: plain TCP, or TLS over TCP once
//! the listener's handshake is done (the HTTP/1 and HTTP/2 paths serve both alike).

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::http1::io::MaybeTls;

/// Plain TCP or TLS over TCP.
pub(crate) type ClientStream = MaybeTls<TlsStream<TcpStream>>;

impl From<TcpStream> for ClientStream {
    fn from(tcp: TcpStream) -> Self {
        MaybeTls::Plain(tcp)
    }
}

impl From<TlsStream<TcpStream>> for ClientStream {
    fn from(tls: TlsStream<TcpStream>) -> Self {
        MaybeTls::Tls(Box::new(tls))
    }
}
