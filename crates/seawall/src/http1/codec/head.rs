//! Message heads: parsing request and response heads with `httparse` into `http` types,
//! deciding body framing and keep-alive (RFC 9112 §6 and §9), and writing heads back out.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, DATE, EXPECT, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use super::decode::Framing;
use super::hop::{self, Hop};
use super::target;
use crate::message::fields::{Span, WireHeaders, FRAMING};

/// Most header fields accepted in one head (hyper's default).
pub(crate) const MAX_HEADERS: usize = 100;
/// Largest head accepted, in bytes.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Why a head was refused. For requests this becomes the `400`/`431` answer's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("malformed HTTP/1 head: {0}")]
    Malformed(String),
    #[error("the head has more than {MAX_HEADERS} header fields or {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("unsupported HTTP version")]
    Version,
    #[error("invalid content-length")]
    ContentLength,
    #[error("unsupported transfer-encoding")]
    TransferEncoding,
    #[error("both content-length and transfer-encoding")]
    Ambiguous,
    /// A transfer coding other than `chunked` (the codec cannot pass one on).
    #[error("unsupported transfer coding (only chunked is implemented)")]
    UnsupportedCoding,
}

impl From<httparse::Error> for HeadError {
    fn from(e: httparse::Error) -> Self {
        match e {
            httparse::Error::TooManyHeaders => HeadError::TooLarge,
            httparse::Error::Version => HeadError::Version,
            other => HeadError::Malformed(other.to_string()),
        }
    }
}

/// A parsed request head.
pub(crate) struct RequestHead {
    pub(crate) parts: http::request::Parts,
    pub(crate) framing: Framing,
    /// The client wants the connection kept open after this exchange.
    pub(crate) keep_alive: bool,
    /// The client sent `expect: 100-continue`.
    pub(crate) expects_continue: bool,
    /// The client asked to switch to this protocol (`connection: upgrade`, `upgrade: …`).
    pub(crate) upgrade: Option<HeaderValue>,
}

/// A parsed response head. Its fields are kept as they arrived ([`WireHeaders`]), less the
/// hop-by-hop ones (`hop`): the gateway passes them to its client without building a map.
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) headers: WireHeaders,
    /// The server allows the connection to be reused after this response.
    pub(crate) keep_alive: bool,
    /// What its `transfer-encoding` said (framing is decided by [`response_framing`]).
    hop: Hop,
    /// Its `content-length`, if any (every value agreeing).
    length: Result<Option<u64>, HeadError>,
}

/// Parses a request head from the start of `buf`: `None` while incomplete. On success the
/// head's bytes are removed from `buf`.
pub(crate) fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    // Uninitialised slots: httparse writes only those it fills (no 3 KiB memset per head).
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, buf, &mut slots)?
    {
        httparse::Status::Complete(len) if len > MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() > MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed("invalid method".into()))?;
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let base = buf.as_ptr() as usize;
    let path = req.path.unwrap_or_default();
    let path_at = (path.as_ptr() as usize - base, path.len());
    // Only as many spans as there are fields (a full-size array costs a 1.6 KiB memset).
    let fields: Vec<Span> = req.headers.iter().map(|h| span(h, base)).collect();
    if !target::is_valid(&method, path.as_bytes()) {
        return Err(HeadError::Malformed("invalid request target".into()));
    }
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path_at.0..path_at.0 + path_at.1))
        .map_err(|_| HeadError::Malformed("invalid request target".into()))?;
    let seen = read_fields(&head, &fields)?;
    let framing = request_framing(&seen, version)?;
    // RFC 9112 §3.2: an HTTP/1.1 request names its host exactly once.
    if version == Version::HTTP_11 && seen.hosts != 1 {
        return Err(HeadError::Malformed(
            "an HTTP/1.1 request needs exactly one host".into(),
        ));
    }
    let keep_alive = seen.hop.keep_alive(version);
    let expects_continue = version == Version::HTTP_11 && seen.expects_continue;
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = seen.headers;
    let upgrade = seen
        .upgrade
        .filter(|_| seen.hop.upgrade && version == Version::HTTP_11);
    Ok(Some(RequestHead {
        parts,
        framing,
        keep_alive,
        expects_continue,
        upgrade,
    }))
}

/// Parses a response head from the start of `buf`: `None` while incomplete. On success the
/// head's bytes are removed from `buf`.
pub(crate) fn parse_response(buf: &mut BytesMut) -> Result<Option<ResponseHead>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)?
    {
        httparse::Status::Complete(len) if len > MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial if buf.len() > MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
        httparse::Status::Partial => return Ok(None),
    };
    let status = StatusCode::from_u16(resp.code.unwrap_or_default())
        .map_err(|_| HeadError::Malformed("invalid status code".into()))?;
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let base = buf.as_ptr() as usize;
    let mut hop = Hop::default();
    let mut spans = Vec::with_capacity(resp.headers.len());
    for h in resp.headers.iter() {
        if !hop.read(h.name.as_bytes(), h.value) && !hop::is_hop_by_hop(h.name.as_bytes()) {
            spans.push(span(h, base));
        }
    }
    // Framed by the fields as they arrived, whatever a `connection` field names (RFC 9112 §6.3).
    let length = content_length(
        resp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| h.value),
    );
    if hop.names_others {
        let connection = resp
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .map(|h| h.value);
        for token in hop::named_by_connection(connection) {
            spans.retain(|&(at, len, _, _)| {
                let at = at as usize;
                !buf[at..at + len as usize].eq_ignore_ascii_case(token)
            });
        }
    }
    // A transfer coding in an HTTP/1.0 message makes its framing untrustworthy: the
    // connection closes after it (RFC 9112 §6.1).
    let keep_alive =
        hop.keep_alive(version) && !(version == Version::HTTP_10 && hop.chunked.is_some());
    let head = buf.split_to(len).freeze();
    Ok(Some(ResponseHead {
        status,
        headers: WireHeaders::new(head, spans),
        keep_alive,
        hop,
        length,
    }))
}

/// Where `h`'s name and value sit in the buffer starting at `base`.
fn span(h: &httparse::Header<'_>, base: usize) -> Span {
    // Heads are at most MAX_HEAD_BYTES (far below u32::MAX) long.
    (
        (h.name.as_ptr() as usize - base) as u32,
        h.name.len() as u32,
        (h.value.as_ptr() as usize - base) as u32,
        h.value.len() as u32,
    )
}

/// What a request head's fields say.
struct Seen {
    /// The fields passed on, values sharing the head's bytes: all but the hop-by-hop ones.
    headers: HeaderMap,
    /// The hop-by-hop fields the codec acts on.
    hop: Hop,
    /// The value of `upgrade`, if any.
    upgrade: Option<HeaderValue>,
    /// `content-length`, every value agreeing (read as the fields arrived: a `connection`
    /// field naming it does not hide it from framing).
    length: Result<Option<u64>, HeadError>,
    /// How many `host` fields.
    hosts: usize,
    /// Some `expect` field lists `100-continue`.
    expects_continue: bool,
}

/// Reads a request head's fields into a map, less the hop-by-hop ones.
fn read_fields(head: &Bytes, fields: &[Span]) -> Result<Seen, HeadError> {
    let mut seen = Seen {
        headers: HeaderMap::with_capacity(fields.len()),
        hop: Hop::default(),
        upgrade: None,
        length: Ok(None),
        hosts: 0,
        expects_continue: false,
    };
    for &(name_at, name_len, value_at, value_len) in fields {
        let (name_at, value_at) = (name_at as usize, value_at as usize);
        let raw_name = &head[name_at..name_at + name_len as usize];
        let raw = &head[value_at..value_at + value_len as usize];
        if seen.hop.read(raw_name, raw) {
            continue;
        }
        if hop::is_hop_by_hop(raw_name) {
            if raw_name.eq_ignore_ascii_case(b"upgrade") {
                seen.upgrade = HeaderValue::from_bytes(raw).ok();
            }
            continue;
        }
        let name = HeaderName::from_bytes(raw_name)
            .map_err(|_| HeadError::Malformed("invalid header name".into()))?;
        if name == CONTENT_LENGTH {
            seen.length = match (seen.length, content_length(std::iter::once(raw))) {
                (Ok(None), this) => this,
                (Ok(Some(a)), Ok(Some(b))) if a == b => Ok(Some(a)),
                _ => Err(HeadError::ContentLength),
            };
        } else if name == HOST {
            seen.hosts += 1;
        } else if name == EXPECT {
            seen.expects_continue |= raw
                .split(|&b| b == b',')
                .any(|m| m.trim_ascii().eq_ignore_ascii_case(b"100-continue"));
        }
        let value =
            HeaderValue::from_maybe_shared(head.slice(value_at..value_at + value_len as usize))
                .map_err(|_| HeadError::Malformed("invalid header value".into()))?;
        seen.headers.append(name, value);
    }
    if seen.hop.names_others {
        let connection = fields.iter().filter_map(|&(n, nl, v, vl)| {
            let (n, v) = (n as usize, v as usize);
            head[n..n + nl as usize]
                .eq_ignore_ascii_case(b"connection")
                .then(|| &head[v..v + vl as usize])
        });
        for name in hop::named_by_connection(connection) {
            if let Ok(name) = HeaderName::from_bytes(name) {
                seen.headers.remove(name);
            }
        }
    }
    Ok(seen)
}

/// A request's body framing (RFC 9112 §6.3): chunked when `transfer-encoding` ends in it,
/// else `content-length`, else no body. Ambiguous or unsupported framing is refused, since a
/// proxy that guesses invites request smuggling.
fn request_framing(seen: &Seen, version: Version) -> Result<Framing, HeadError> {
    let hop = &seen.hop;
    if let Some(chunked) = hop.chunked {
        if version == Version::HTTP_10 {
            return Err(HeadError::TransferEncoding);
        }
        if seen.length != Ok(None) {
            return Err(HeadError::Ambiguous);
        }
        return if !chunked {
            Err(HeadError::TransferEncoding)
        } else if !hop.only_chunked() {
            // `gzip, chunked`: dropping the gzip would hand on a body nobody can read.
            Err(HeadError::UnsupportedCoding)
        } else {
            Ok(Framing::Chunked)
        };
    }
    Ok(Framing::Length(seen.length.clone()?.unwrap_or(0)))
}

/// The length every `content-length` value agrees on, if any.
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, HeadError> {
    seawall_http::parse_content_length(values).map_err(|_| HeadError::ContentLength)
}

/// A response's body framing, given the request `method` it answers (RFC 9112 §6.3).
/// A `content-length` that is not a valid length fails even where no body follows (`HEAD`,
/// `304`), since the gateway would pass it on.
pub(crate) fn response_framing(head: &ResponseHead, method: &Method) -> Result<Framing, HeadError> {
    let status = head.status;
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        // No body follows, but the length is passed on as the one a GET would get.
        head.length.clone()?;
        return Ok(Framing::Length(0));
    }
    if let Some(chunked) = head.hop.chunked {
        // A transfer coding overrides any length (RFC 9112 §6.3). (An HTTP/1.0 response with
        // one is read by it, but its connection is not trusted after it: see `keep_alive`.)
        return if !chunked {
            // Not chunked at the end: the body runs until the close.
            Ok(Framing::UntilClose)
        } else if !head.hop.only_chunked() {
            Err(HeadError::UnsupportedCoding)
        } else {
            Ok(Framing::Chunked)
        };
    }
    Ok(match head.length.clone()? {
        Some(n) => Framing::Length(n),
        None => Framing::UntilClose,
    })
}

/// Appends `name: value\r\n` for every header except the [`FRAMING`] ones.
pub(crate) fn write_headers(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        if FRAMING.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `content-length: n\r\n`.
pub(crate) fn write_content_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    let mut digits = itoa_u64(n);
    out.extend_from_slice(digits.as_mut_slice());
    out.extend_from_slice(b"\r\n");
}

/// Appends a `date` header unless `headers` has one (an origin server must send it).
pub(crate) fn write_date(out: &mut Vec<u8>, headers: &HeaderMap) {
    if headers.contains_key(DATE) {
        return;
    }
    thread_local! {
        /// The formatted date and the second it was formatted for.
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(cached.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

/// Decimal digits of `n` without allocating.
fn itoa_u64(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
}

/// Appends the status line of an HTTP/1.1 response.
pub(crate) fn write_status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(wire: &str) -> Result<RequestHead, HeadError> {
        let mut buf = BytesMut::from(wire.as_bytes());
        Ok(parse_request(&mut buf)?.expect("complete"))
    }

    #[test]
    fn parses_a_request_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            &b"POST /a/v1/messages?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nX-Y: z\r\n\r\n{}"[..],
        );
        let head = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri.path(), "/a/v1/messages");
        assert_eq!(head.parts.uri.query(), Some("x=1"));
        assert_eq!(head.parts.headers["x-y"], "z");
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"{}");
    }

    #[test]
    fn incomplete_heads_wait_and_huge_ones_fail() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: h\r\n"[..]);
        assert!(parse_request(&mut buf).unwrap().is_none());
        let mut big = BytesMut::from(&b"GET / HTTP/1.1\r\nhost: h\r\nx: "[..]);
        big.extend_from_slice(&vec![b'a'; MAX_HEAD_BYTES + 1]);
        assert_eq!(parse_request(&mut big).err(), Some(HeadError::TooLarge));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        let both =
            "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(request(both).err(), Some(HeadError::Ambiguous));
        let differ = "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n";
        assert_eq!(request(differ).err(), Some(HeadError::ContentLength));
        let signed = "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: +3\r\n\r\n";
        assert_eq!(request(signed).err(), Some(HeadError::ContentLength));
        let gzip = "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked, gzip\r\n\r\n";
        assert_eq!(request(gzip).err(), Some(HeadError::TransferEncoding));
        let coded = "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
        assert_eq!(request(coded).err(), Some(HeadError::UnsupportedCoding));
        let twice =
            "POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(request(twice).err(), Some(HeadError::UnsupportedCoding));
        let old = "POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(request(old).err(), Some(HeadError::TransferEncoding));
        let same = "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3, 3\r\n\r\n";
        assert_eq!(request(same).unwrap().framing, Framing::Length(3));
        let chunked = "POST / HTTP/1.1\r\nhost: h\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(request(chunked).unwrap().framing, Framing::Chunked);
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        assert!(
            !request("GET / HTTP/1.1\r\nhost: h\r\nconnection: Close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!request("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            request("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            request("GET / HTTP/1.1\r\nhost: h\r\nexpect: 100-continue\r\n\r\n")
                .unwrap()
                .expects_continue
        );
    }

    #[test]
    fn response_framing_rules() {
        fn framing(wire: &str, method: &Method) -> Result<(Framing, bool), HeadError> {
            let mut buf = BytesMut::from(wire.as_bytes());
            let head = parse_response(&mut buf).unwrap().unwrap();
            response_framing(&head, method).map(|f| (f, head.keep_alive))
        }
        let get = |wire: &str| framing(wire, &Method::GET);
        let five = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        assert_eq!(get(five), Ok((Framing::Length(5), true)));
        assert_eq!(framing(five, &Method::HEAD), Ok((Framing::Length(0), true)));
        assert_eq!(
            get("HTTP/1.1 204 No Content\r\n\r\n").unwrap().0,
            Framing::Length(0)
        );
        assert_eq!(
            get("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n")
                .unwrap()
                .0,
            Framing::Length(0)
        );
        assert_eq!(
            get("HTTP/1.1 200 OK\r\n\r\n").unwrap().0,
            Framing::UntilClose
        );
        assert!(!get("HTTP/1.0 200 OK\r\n\r\n").unwrap().1);
        // An invalid length fails even where no body follows: it would be passed on.
        let bogus = "HTTP/1.1 304 Not Modified\r\ncontent-length: 1x\r\n\r\n";
        assert_eq!(get(bogus), Err(HeadError::ContentLength));
        let bogus_head = "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n";
        assert_eq!(
            framing(bogus_head, &Method::HEAD),
            Err(HeadError::ContentLength)
        );
        // HTTP/1.0 with a transfer coding: read by it, but the connection is never reused.
        let old = "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n";
        assert_eq!(get(old), Ok((Framing::Chunked, false)));
        let coded = "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
        assert_eq!(get(coded), Err(HeadError::UnsupportedCoding));
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(get(chunked), Ok((Framing::Chunked, true)));
    }

    #[test]
    fn response_fields_pass_through_less_hop_by_hop_ones() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive, X-Private\r\n\
               X-Private: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n\
               Content-Length: 2\r\nUpgrade: h2c\r\nx-kept: a\r\n\r\n{}"[..],
        );
        let head = parse_response(&mut buf).unwrap().unwrap();
        let fields: Vec<_> = head.headers.iter().collect();
        assert_eq!(
            fields,
            [
                (&b"Server"[..], &b"up"[..]),
                (b"Content-Length", b"2"),
                (b"x-kept", b"a")
            ]
        );
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"{}");
        let mut conflicting = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n"[..],
        );
        let head = parse_response(&mut conflicting).unwrap().unwrap();
        assert_eq!(
            response_framing(&head, &Method::GET),
            Err(HeadError::ContentLength)
        );
    }

    #[test]
    fn writes_heads() {
        let mut out = Vec::new();
        write_status_line(&mut out, StatusCode::SERVICE_UNAVAILABLE);
        write_content_length(&mut out, 1234567);
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("9"));
        write_headers(&mut out, &h);
        write_date(&mut out, &h);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 1234567\r\nx-a: 1\r\ndate: "
            ),
            "{text}"
        );
        assert!(!text.contains(": 9"));
    }
}
