//! Request and response heads from a small grammar, with the hostile shapes the gateway must
//! survive: conflicting framing fields, odd versions and targets, bare LF, control bytes,
//! over-long and over-full heads, `_` twins of framing fields, and random byte damage.

use fastrand::Rng;

const METHODS: [&str; 20] = [
    "GET", "GET", "GET", "POST", "POST", "POST", "PUT", "PUT", "HEAD", "OPTIONS", "CONNECT",
    "PATCH", "DELETE", "get", "M-SEARCH", "BREW", "GET", "G(ET", "", "GET\0",
];
const TARGETS: [&str; 16] = [
    "/",
    "/a",
    "/v1/messages",
    "/a?b=c",
    "/a/b/c?x=1&y=2",
    "/%41%42",
    "/a:b@c",
    "/!$&'()*+,;=",
    "/a?/?b",
    "/a-._~",
    "http://example.com/a",
    "https://example.com:8443/a?b",
    "http://h",
    "http://h:80",
    "http://127.0.0.1/x",
    "http://[::1]:8080/",
];
const ODD_TARGETS: [&str; 28] = [
    "*",
    "h:443",
    "example.com:80",
    "//double",
    "/a#frag",
    "/%zz",
    "/%4",
    "/a\"b",
    "/{x}",
    "/a|b",
    "/a\\b",
    "/a^b",
    "/a`b",
    "?q",
    "/\u{e9}",
    "http://",
    "http:///x",
    "http://h:port/",
    "http://h:99999/",
    ":80",
    "a:b:c",
    "mailto:a@b",
    "HTTP://H/",
    "/a\x7f",
    "http://u:p@h/",
    "ftp://h/x",
    "x",
    "/a/../b",
];
const BAD_VERSIONS: [&str; 11] = [
    "HTTP/1.2",
    "HTTP/2.0",
    "HTTP/0.9",
    "http/1.1",
    "HTTP/1.1 ",
    "HTTP/1",
    "HTTP/11",
    "HTTP/1.10",
    "",
    "HTTP/3",
    "HTTP/1.1\0",
];
const CONTENT_LENGTHS: [&str; 26] = [
    "0",
    "1",
    "5",
    "12",
    "007",
    "00",
    "+5",
    "-1",
    " 5",
    "5 ",
    "5, 5",
    "5,5,5",
    "5, 6",
    "5,",
    ",5",
    "",
    "0x5",
    "1e3",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999",
    "5\t",
    "5 5",
    "\u{665}",
    ",",
    "1,,1",
];
const CODINGS: [&str; 23] = [
    "chunked",
    "chunked",
    "Chunked",
    "CHUNKED",
    "gzip, chunked",
    "chunked, gzip",
    "gzip",
    "identity",
    "chunked,",
    ", chunked",
    "chunked, chunked",
    "",
    "chunked;q=1",
    "x-chunked",
    "deflate , chunked",
    "gzip,chunked",
    "chunked\t",
    "\tchunked",
    "chunk",
    "chunkedx",
    "gzip , , chunked",
    ",",
    "chunked , ",
];
const TE_NAMES: [&str; 4] = [
    "Transfer-Encoding",
    "transfer-encoding",
    "TRANSFER-ENCODING",
    "Transfer-encoding",
];
const CL_NAMES: [&str; 3] = ["Content-Length", "content-length", "CONTENT-LENGTH"];
const CONNECTIONS: [&str; 20] = [
    "close",
    "Close",
    "keep-alive",
    "Keep-Alive",
    "close, keep-alive",
    "keep-alive, close",
    "upgrade",
    "x-private",
    "content-length",
    "Content-Length",
    "transfer-encoding",
    "expect",
    "host",
    "te, trailer",
    ", ,",
    "close , x-private",
    "",
    "keep-alive, x-private",
    "Connection",
    "keep-alive, Content-Length",
];
const EXPECTS: [&str; 9] = [
    "100-continue",
    "100-Continue",
    "100-CONTINUE",
    "100-continue, foo",
    "foo, 100-continue",
    "foo",
    "",
    "100-continue;x=1",
    "100 continue",
];
const HOP_FIELDS: [(&str, &str); 8] = [
    ("Keep-Alive", "timeout=5"),
    ("TE", "trailers"),
    ("Trailer", "x-checksum"),
    ("Upgrade", "h2c"),
    ("Proxy-Authorization", "Basic eDp5"),
    ("Proxy-Connection", "keep-alive"),
    ("proxy-x", "1"),
    ("PROXY-Y", "2"),
];
const UNDERSCORES: [(&str, &str); 7] = [
    ("Content_Length", "5"),
    ("Transfer_Encoding", "chunked"),
    ("transfer_encoding", "gzip"),
    ("Keep_Alive", "timeout=1"),
    ("Proxy_Authorization", "Basic eDp5"),
    ("X_Under", "kept"),
    ("Content_Type", "text/plain"),
];
const STATUSES: [&str; 16] = [
    "200", "200", "201", "204", "304", "100", "101", "199", "404", "500", "503", "099", "600",
    "999", "20", "2000",
];
const REASONS: [&str; 5] = ["OK", "", "Not Found", "caf\u{e9}", "a\0b"];
/// Bytes that break heads in interesting ways when dropped in at random.
const HOSTILE: [u8; 12] = [
    0, b'\r', b'\n', b' ', b'\t', b':', 0x7f, 0x80, 0xff, b'a', b',', 0x0b,
];

/// A request head (sometimes broken or incomplete) followed by whatever a client sent next.
pub(super) fn request(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let eol = Eol::pick(rng);
    if rng.u8(..50) == 0 {
        out.extend_from_slice(pick(rng, &[&b"\r\n"[..], b"\n", b"\r\n\r\n"]));
    }
    let method = pick(rng, &METHODS);
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(if rng.u8(..60) == 0 { &b"  "[..] } else { b" " });
    out.extend_from_slice(target(rng).as_bytes());
    out.push(b' ');
    out.extend_from_slice(version(rng).as_bytes());
    out.extend_from_slice(eol.next(rng));
    let mut fields = Vec::new();
    match rng.u8(..100) {
        0..85 => fields.push(("Host".into(), host(rng))),
        85..90 => {}
        90..95 => {
            fields.push(("Host".into(), host(rng)));
            fields.push(("host".into(), host(rng)));
        }
        _ => fields.push((
            "Host".into(),
            pick(rng, &["", "a b", "h:99999", "[::1]", "h\x7f"]).to_string(),
        )),
    }
    framing_fields(rng, &mut fields);
    if rng.u8(..100) < 15 {
        for _ in 0..rng.usize(1..3) {
            fields.push(("Expect".into(), pick(rng, &EXPECTS).to_string()));
        }
    }
    common_fields(rng, &mut fields);
    render(rng, &mut out, fields, eol);
    tail(rng, &mut out);
    damage(rng, &mut out);
    out
}

/// A response head (sometimes broken) followed by body bytes.
pub(super) fn response(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let eol = Eol::pick(rng);
    out.extend_from_slice(version(rng).as_bytes());
    out.push(b' ');
    out.extend_from_slice(pick(rng, &STATUSES).as_bytes());
    out.push(b' ');
    out.extend_from_slice(pick(rng, &REASONS).as_bytes());
    out.extend_from_slice(eol.next(rng));
    let mut fields = vec![("Server".to_string(), "up".to_string())];
    framing_fields(rng, &mut fields);
    if rng.u8(..4) == 0 {
        fields.push(("Set-Cookie".into(), "a=1".into()));
        fields.push(("set-cookie".into(), "b=2".into()));
    }
    common_fields(rng, &mut fields);
    render(rng, &mut out, fields, eol);
    tail(rng, &mut out);
    damage(rng, &mut out);
    out
}

/// The request method a generated response answers.
pub(super) fn answered_method(rng: &mut Rng) -> &'static str {
    pick(rng, &["GET", "GET", "POST", "HEAD"])
}

fn target(rng: &mut Rng) -> String {
    match rng.u8(..100) {
        0..75 => pick(rng, &TARGETS).to_string(),
        75..97 => pick(rng, &ODD_TARGETS).to_string(),
        _ => format!("/{}", "a".repeat(rng.usize(1000..6000))),
    }
}

fn version(rng: &mut Rng) -> &'static str {
    match rng.u8(..100) {
        0..72 => "HTTP/1.1",
        72..92 => "HTTP/1.0",
        _ => pick(rng, &BAD_VERSIONS),
    }
}

fn host(rng: &mut Rng) -> String {
    pick(rng, &["example.com", "h", "127.0.0.1:8080"]).to_string()
}

/// `content-length` and `transfer-encoding` in their conflicting and disguised shapes.
fn framing_fields(rng: &mut Rng, fields: &mut Vec<(String, String)>) {
    let cl = |rng: &mut Rng, fields: &mut Vec<(String, String)>| {
        let most = if rng.bool() { 1 } else { 3 };
        for _ in 0..rng.usize(1..=most) {
            fields.push((
                pick(rng, &CL_NAMES).to_string(),
                pick(rng, &CONTENT_LENGTHS).to_string(),
            ));
        }
    };
    let te = |rng: &mut Rng, fields: &mut Vec<(String, String)>| {
        let most = if rng.bool() { 1 } else { 2 };
        for _ in 0..rng.usize(1..=most) {
            fields.push((
                pick(rng, &TE_NAMES).to_string(),
                pick(rng, &CODINGS).to_string(),
            ));
        }
    };
    match rng.u8(..100) {
        0..28 => {}
        28..53 => cl(rng, fields),
        53..78 => te(rng, fields),
        78..88 => {
            cl(rng, fields);
            te(rng, fields);
        }
        _ => {
            let (name, value) = pick(rng, &UNDERSCORES);
            fields.push((name.to_string(), value.to_string()));
            if rng.bool() {
                cl(rng, fields);
            }
        }
    }
}

/// Connection options, hop-by-hop fields, `_` twins, ordinary fields, and sometimes too many
/// or too long ones.
fn common_fields(rng: &mut Rng, fields: &mut Vec<(String, String)>) {
    if rng.u8(..100) < 30 {
        for _ in 0..rng.usize(1..3) {
            fields.push(("Connection".into(), pick(rng, &CONNECTIONS).to_string()));
        }
        if rng.bool() {
            fields.push(("X-Private".into(), "1".into()));
        }
    }
    if rng.u8(..100) < 15 {
        let (name, value) = pick(rng, &HOP_FIELDS);
        fields.push((name.to_string(), value.to_string()));
    }
    if rng.u8(..100) < 8 {
        let (name, value) = pick(rng, &UNDERSCORES);
        fields.push((name.to_string(), value.to_string()));
    }
    for i in 0..rng.usize(0..4) {
        fields.push((format!("x-f{i}"), value(rng)));
    }
    match rng.u8(..100) {
        0..3 => {
            for i in 0..rng.usize(92..110) {
                fields.push((format!("x-fill-{i}"), "v".into()));
            }
        }
        // Heads just under, at and over the 64 KiB limit.
        3..5 => fields.push(("x-long".into(), "v".repeat(rng.usize(65_300..65_600)))),
        5 => fields.push(("x-long".into(), "v".repeat(rng.usize(60_000..70_000)))),
        _ => {}
    }
    rng.shuffle(fields);
}

/// A field value: mostly visible ASCII, sometimes obs-text, tabs and control bytes.
fn value(rng: &mut Rng) -> String {
    let len = rng.usize(0..12);
    (0..len)
        .map(|_| match rng.u8(..200) {
            0..5 => '\t',
            5..10 => '\u{e9}',
            10 => '\0',
            _ => rng.char('!'..='~'),
        })
        .collect()
}

/// Line ends for one head: CRLF, bare LF, or a mix with the odd bare CR.
#[derive(Clone, Copy)]
enum Eol {
    Crlf,
    Lf,
    Mixed,
}

impl Eol {
    fn pick(rng: &mut Rng) -> Eol {
        match rng.u8(..10) {
            0..7 => Eol::Crlf,
            7 => Eol::Lf,
            _ => Eol::Mixed,
        }
    }

    fn next(self, rng: &mut Rng) -> &'static [u8] {
        match self {
            Eol::Crlf => b"\r\n",
            Eol::Lf => b"\n",
            Eol::Mixed => pick(rng, &[&b"\r\n"[..], b"\r\n", b"\n", b"\n", b"\r"]),
        }
    }
}

/// Writes the field lines and the empty line, with the odd obs-fold, space before the colon,
/// missing colon or missing end.
fn render(rng: &mut Rng, out: &mut Vec<u8>, fields: Vec<(String, String)>, eol: Eol) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        match rng.u8(..200) {
            0 => out.extend_from_slice(b" :"),
            1 => {}
            _ => out.push(b':'),
        }
        out.extend_from_slice(pick(rng, &[&b" "[..], b" ", b" ", b"", b"\t", b"  "]));
        out.extend_from_slice(value.as_bytes());
        if rng.u8(..20) == 0 {
            out.extend_from_slice(pick(rng, &[&b" "[..], b"\t"]));
        }
        out.extend_from_slice(eol.next(rng));
        if rng.u8(..100) == 0 {
            out.extend_from_slice(pick(rng, &[&b" chunked"[..], b"\tgzip", b" 5"]));
            out.extend_from_slice(eol.next(rng));
        }
    }
    if rng.u8(..40) != 0 {
        out.extend_from_slice(eol.next(rng));
    }
}

/// What follows the head on the wire: nothing, a body, a pipelined request, junk.
fn tail(rng: &mut Rng, out: &mut Vec<u8>) {
    match rng.u8(..8) {
        0..4 => {}
        4 => out.extend_from_slice(b"hello"),
        5 => out.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n"),
        6 => out.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
        _ => {
            for _ in 0..rng.usize(1..20) {
                out.push(rng.u8(..));
            }
        }
    }
}

/// Random damage: a few bytes replaced, inserted or removed, or the input cut short.
fn damage(rng: &mut Rng, out: &mut Vec<u8>) {
    if out.is_empty() {
        return;
    }
    match rng.u8(..100) {
        0..8 => {
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..out.len());
                let byte = if rng.bool() {
                    pick(rng, &HOSTILE)
                } else {
                    rng.u8(..)
                };
                match rng.u8(..3) {
                    0 => out[at] = byte,
                    1 => out.insert(at, byte),
                    _ => {
                        out.remove(at);
                        if out.is_empty() {
                            return;
                        }
                    }
                }
            }
        }
        8..11 => out.truncate(rng.usize(..out.len())),
        _ => {}
    }
}

pub(super) fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}
