//! Raw HTTP/1.1 on a socket, for wire-level tests: a client that writes bytes and parses what
//! comes back, and a mock upstream whose script reads and writes its connections byte by byte.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::wait::{within, NO_HANG};

/// How a body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// A parsed request or response head.
#[derive(Debug, Clone, Default)]
pub struct Head {
    /// Requests only.
    pub method: String,
    /// Requests only.
    pub target: String,
    /// Responses only.
    pub status: u16,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether header `name` lists `token` (comma-separated, case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The `content-length` value, if any; panics when it is not a number.
    pub fn content_length(&self) -> Option<usize> {
        self.header("content-length")
            .map(|v| v.trim().parse().expect("numeric content-length"))
    }

    /// The framing of a request with this head.
    pub fn request_framing(&self) -> Framing {
        if self.has_token("transfer-encoding", "chunked") {
            Framing::Chunked
        } else {
            Framing::Length(self.content_length().unwrap_or(0))
        }
    }

    /// The framing of a response to a `method` request.
    pub fn response_framing(&self, method: &str) -> Framing {
        if method == "HEAD" || self.status < 200 || self.status == 204 || self.status == 304 {
            Framing::Length(0)
        } else if self.has_token("transfer-encoding", "chunked") {
            Framing::Chunked
        } else {
            self.content_length()
                .map_or(Framing::Close, Framing::Length)
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Resp {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A socket with a read buffer.
pub struct Wire {
    io: TcpStream,
    buf: Vec<u8>,
    /// Bound on each read: the test client's side has one, a mock upstream waits as long as
    /// the runtime lives (an idle pooled connection waits for its next request).
    pub limit: Option<Duration>,
}

impl Wire {
    /// The test client's side: every read bounded by [`NO_HANG`].
    pub async fn connect(addr: SocketAddr) -> Wire {
        let io = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect to the gateway");
        Wire {
            io,
            buf: Vec::new(),
            limit: Some(NO_HANG),
        }
    }

    /// A mock upstream's side of an accepted connection.
    fn accepted(io: TcpStream) -> Wire {
        Wire {
            io,
            buf: Vec::new(),
            limit: None,
        }
    }

    /// Writes `bytes` (bounded); panics when the peer does not take them.
    pub async fn send(&mut self, bytes: &[u8]) {
        within("write", self.io.write_all(bytes))
            .await
            .expect("write");
    }

    /// Writes `bytes`, returning whether the peer took them (it may have closed early).
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        within("write", self.io.write_all(bytes)).await.is_ok()
    }

    /// Reads more into the buffer: `false` at end of file (a reset counts as one).
    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        let read = match self.limit {
            Some(limit) => tokio::time::timeout(limit, self.io.read(&mut chunk))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out after {limit:?} reading; buffered so far: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )
                }),
            None => self.io.read(&mut chunk).await,
        };
        match read {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// A head's bytes through its blank line; `None` when the peer closed before any byte.
    async fn head_bytes(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                return Some(self.buf.drain(..i + 4).collect());
            }
            if !self.fill().await {
                assert!(
                    self.buf.is_empty(),
                    "closed in the middle of a head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        }
    }

    /// The next request head; `None` when the peer closed between requests.
    pub async fn request_head(&mut self) -> Option<Head> {
        let bytes = self.head_bytes().await?;
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut slots);
        assert!(
            req.parse(&bytes).expect("valid request head").is_complete(),
            "incomplete request head"
        );
        Some(Head {
            method: req.method.unwrap().to_owned(),
            target: req.path.unwrap().to_owned(),
            minor: req.version.unwrap(),
            headers: fields(req.headers),
            ..Head::default()
        })
    }

    /// The next response head; panics if the connection closes first.
    pub async fn response_head(&mut self) -> Head {
        let bytes = self
            .head_bytes()
            .await
            .expect("a response, not the connection closing");
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut slots);
        assert!(
            resp.parse(&bytes)
                .expect("valid response head")
                .is_complete(),
            "incomplete response head"
        );
        Head {
            status: resp.code.unwrap(),
            minor: resp.version.unwrap(),
            headers: fields(resp.headers),
            ..Head::default()
        }
    }

    /// Exactly `n` bytes; panics if the connection closes first.
    pub async fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill().await,
                "closed after {} of {n} bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf.drain(..i).collect();
                self.buf.drain(..2);
                return line;
            }
            assert!(self.fill().await, "closed in the middle of a line");
        }
    }

    /// A body of `framing`, decoded. `progress` (if any) gets the running total of body bytes
    /// each time more of the body has been read.
    pub async fn body(
        &mut self,
        framing: Framing,
        progress: Option<&mpsc::UnboundedSender<usize>>,
    ) -> Vec<u8> {
        let report = |total: usize| {
            if let Some(p) = progress {
                let _ = p.send(total);
            }
        };
        match framing {
            Framing::Length(n) => {
                let mut body = Vec::new();
                while body.len() < n {
                    if self.buf.is_empty() {
                        assert!(
                            self.fill().await,
                            "closed after {} of {n} bytes",
                            body.len()
                        );
                    }
                    let take = self.buf.len().min(n - body.len());
                    body.extend(self.buf.drain(..take));
                    report(body.len());
                }
                body
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let line = String::from_utf8(self.line().await).expect("ASCII size line");
                    let digits = line.split(';').next().unwrap().trim();
                    let size = usize::from_str_radix(digits, 16)
                        .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                    if size == 0 {
                        // Trailers, up to the blank line.
                        while !self.line().await.is_empty() {}
                        return body;
                    }
                    let mut left = size;
                    while left > 0 {
                        if self.buf.is_empty() {
                            assert!(self.fill().await, "closed inside a chunk");
                        }
                        let take = self.buf.len().min(left);
                        body.extend(self.buf.drain(..take));
                        left -= take;
                        report(body.len());
                    }
                    assert_eq!(self.exact(2).await, b"\r\n", "chunk data ends with CRLF");
                }
            }
            Framing::Close => self.rest().await,
        }
    }

    /// Everything until the peer closes.
    pub async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// The next request with its body; `None` when the peer closed between requests.
    pub async fn request(&mut self) -> Option<(Head, Vec<u8>)> {
        let head = self.request_head().await?;
        let body = self.body(head.request_framing(), None).await;
        Some((head, body))
    }

    /// The next response to a `method` request, with its body.
    pub async fn response(&mut self, method: &str) -> Resp {
        let head = self.response_head().await;
        let body = self.body(head.response_framing(method), None).await;
        Resp { head, body }
    }

    /// Asserts the peer closes without sending anything more.
    pub async fn assert_closed(&mut self) {
        let rest = self.rest().await;
        assert!(
            rest.is_empty(),
            "expected the connection to close, got {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

fn fields(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8(h.value.to_vec()).expect("ASCII header value"),
            )
        })
        .collect()
}

/// `200` with `body` and its `content-length`.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A raw mock upstream: every accepted connection is handed to the test's script, so the
/// test writes the framing itself.
pub struct RawUpstream {
    pub addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
}

impl RawUpstream {
    /// Listens on a fresh loopback port and runs `script` on each accepted connection.
    pub async fn start<F, Fut>(script: F) -> RawUpstream
    where
        F: Fn(Wire) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counted = accepts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(script(Wire::accepted(stream)));
            }
        });
        RawUpstream { addr, accepts }
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}
