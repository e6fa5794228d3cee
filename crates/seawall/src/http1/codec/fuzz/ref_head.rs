//! The reference model of a head: httparse's raw field list (the tokenizer both sides share)
//! judged by RFC 9112 §6.3 (framing) and §9 (keep-alive), RFC 9110 §7.6.1 (hop-by-hop) and
//! §10.1.1 (expect), written without looking at `head.rs`/`hop.rs`.

use std::fmt;

use crate::http1::codec::decode::Framing;

use super::ref_body::field_text;
use super::target::{self, Target};

/// Most fields in a head, and most bytes, before it is too large (the daemon's limits).
const LIMIT_FIELDS: usize = 100;
const LIMIT_BYTES: usize = 64 * 1024;

/// Why a head is refused (the codec's `HeadError` variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Class {
    Malformed,
    TooLarge,
    Version,
    ContentLength,
    TransferEncoding,
    Ambiguous,
}

/// What a head parser should make of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// Not a whole head yet: read more.
    Partial,
    Refused(Class),
    Request(Request),
    Response(Response),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Request {
    /// Bytes of the head, empty lines before it included.
    pub(super) head_len: usize,
    pub(super) method: String,
    pub(super) target: Target,
    pub(super) http10: bool,
    /// The fields passed on (lowercase names), ordered by name, values in arrival order.
    pub(super) fields: Vec<Field>,
    pub(super) framing: Framing,
    pub(super) keep_alive: bool,
    pub(super) expects_continue: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub(super) head_len: usize,
    pub(super) status: u16,
    /// The fields passed on, as they arrived, in wire order.
    pub(super) fields: Vec<Field>,
    pub(super) keep_alive: bool,
    /// The body's framing for the request method the response answers.
    pub(super) framing: Result<Framing, Class>,
}

/// A field's name and value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Field(pub(super) Vec<u8>, pub(super) Vec<u8>);

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}: {}\"",
            self.0.escape_ascii(),
            self.1.escape_ascii()
        )
    }
}

/// A request head at the start of `input`.
pub(super) fn request(input: &[u8]) -> Head {
    let mut slots = [httparse::EMPTY_HEADER; LIMIT_FIELDS];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match sized(req.parse(input), input) {
        Ok(len) => len,
        Err(refused) => return refused.map_or(Head::Partial, Head::Refused),
    };
    let method = req.method.unwrap_or_default().to_owned();
    let http10 = req.version == Some(0);
    let fields: Vec<(&[u8], &[u8])> = req
        .headers
        .iter()
        .map(|h| (h.name.as_bytes(), h.value))
        .collect();
    if !values_ok(&fields) {
        return Head::Refused(Class::Malformed);
    }
    let Some(target) = target::classify(&method, req.path.unwrap_or_default()) else {
        return Head::Refused(Class::Malformed);
    };
    let te = values(&fields, b"transfer-encoding");
    let cl = values(&fields, b"content-length");
    let framing = if te.is_empty() {
        match content_length(&cl) {
            Some(n) => Framing::Length(n.unwrap_or(0)),
            None => return Head::Refused(Class::ContentLength),
        }
    } else if http10 {
        // §6.1: an HTTP/1.0 message with transfer-encoding has faulty framing.
        return Head::Refused(Class::TransferEncoding);
    } else if !cl.is_empty() {
        // §6.3 rule 3: both present is a smuggling shape, refused rather than guessed.
        return Head::Refused(Class::Ambiguous);
    } else if te_ends_chunked(&te) == Some(true) {
        Framing::Chunked
    } else {
        // §6.3 rule 4 (400), or a coding the gateway does not implement (501, §6.1).
        return Head::Refused(Class::TransferEncoding);
    };
    if !http10 && values(&fields, b"host").len() != 1 {
        return Head::Refused(Class::Malformed);
    }
    let expects_continue = !http10
        && values(&fields, b"expect")
            .iter()
            .flat_map(|v| list(v))
            .any(|m| m.eq_ignore_ascii_case(b"100-continue"));
    let named = connection_names(&fields);
    let mut passed: Vec<Field> = passed_on(&fields, &named)
        .map(|(n, v)| Field(n.to_ascii_lowercase(), v.to_vec()))
        .collect();
    passed.sort_by(|a, b| a.0.cmp(&b.0));
    Head::Request(Request {
        head_len,
        method,
        target,
        http10,
        fields: passed,
        framing,
        keep_alive: keep_alive(&fields, http10),
        expects_continue,
    })
}

/// A response head at the start of `input`, answering a `method` request.
pub(super) fn response(input: &[u8], method: &str) -> Head {
    let mut slots = [httparse::EMPTY_HEADER; LIMIT_FIELDS];
    let mut resp = httparse::Response::new(&mut slots);
    let head_len = match sized(resp.parse(input), input) {
        Ok(len) => len,
        Err(refused) => return refused.map_or(Head::Partial, Head::Refused),
    };
    let status = resp.code.unwrap_or_default();
    let fields: Vec<(&[u8], &[u8])> = resp
        .headers
        .iter()
        .map(|h| (h.name.as_bytes(), h.value))
        .collect();
    if !(100..=999).contains(&status) || !values_ok(&fields) {
        return Head::Refused(Class::Malformed);
    }
    let http10 = resp.version == Some(0);
    let te = values(&fields, b"transfer-encoding");
    let cl = values(&fields, b"content-length");
    let no_body =
        method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        // A length that is not one fails even where no body follows: the gateway would pass
        // it on to its client (issue 13).
        match content_length(&cl) {
            Some(_) => Ok(Framing::Length(0)),
            None => Err(Class::ContentLength),
        }
    } else if !te.is_empty() {
        match te_ends_chunked(&te) {
            Some(true) => Ok(Framing::Chunked),
            // §6.3 rule 4: not chunked at the end, the body runs until the close.
            Some(false) => Ok(Framing::UntilClose),
            // Chunked around codings the gateway would pass on undeclared (§6.1).
            None => Err(Class::TransferEncoding),
        }
    } else {
        match content_length(&cl) {
            Some(Some(n)) => Ok(Framing::Length(n)),
            Some(None) => Ok(Framing::UntilClose),
            None => Err(Class::ContentLength),
        }
    };
    // §6.1: an HTTP/1.0 message with transfer-encoding has faulty framing; its connection
    // is not reused.
    let faulty_10 = http10 && !te.is_empty();
    let named = connection_names(&fields);
    Head::Response(Response {
        head_len,
        status,
        fields: passed_on(&fields, &named)
            .map(|(n, v)| Field(n.to_vec(), v.to_vec()))
            .collect(),
        keep_alive: keep_alive(&fields, http10) && !faulty_10,
        framing,
    })
}

/// The head's length from httparse's verdict, checked against where the reference finds the
/// head's end; else why it is refused, or `None` while it is incomplete.
fn sized(parsed: httparse::Result<usize>, input: &[u8]) -> Result<usize, Option<Class>> {
    match parsed {
        Err(httparse::Error::TooManyHeaders) => Err(Some(Class::TooLarge)),
        Err(httparse::Error::Version) => Err(Some(Class::Version)),
        Err(_) => Err(Some(Class::Malformed)),
        Ok(httparse::Status::Partial) if input.len() > LIMIT_BYTES => Err(Some(Class::TooLarge)),
        Ok(httparse::Status::Partial) => Err(None),
        Ok(httparse::Status::Complete(len)) => {
            assert_eq!(
                Some(len),
                head_end(input),
                "httparse and the reference disagree on the head's end"
            );
            if len > LIMIT_BYTES {
                Err(Some(Class::TooLarge))
            } else {
                Ok(len)
            }
        }
    }
}

/// Where a head ends: after the first empty line that follows the start line (empty lines
/// before the start line are skipped, RFC 9112 §2.2; a bare LF ends a line, §2.2).
fn head_end(input: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        if input[at..].starts_with(b"\r\n") {
            at += 2;
        } else if input[at..].starts_with(b"\n") {
            at += 1;
        } else {
            break;
        }
    }
    (at..input.len()).find_map(|i| {
        if input[i] != b'\n' {
            None
        } else if input[i + 1..].starts_with(b"\r\n") {
            Some(i + 3)
        } else if input[i + 1..].starts_with(b"\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Field values are `*( field-vchar / SP / HTAB )` (RFC 9110 §5.5).
fn values_ok(fields: &[(&[u8], &[u8])]) -> bool {
    fields.iter().all(|(_, v)| v.iter().all(|&b| field_text(b)))
}

/// The values of every field called `name`, in arrival order (whatever `connection` names:
/// the framing and `expect` are read from what was received, RFC 9112 §6.3).
fn values<'a>(fields: &[(&[u8], &'a [u8])], name: &[u8]) -> Vec<&'a [u8]> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
        .collect()
}

/// The members of a comma-separated list, trimmed, empty ones left out (RFC 9110 §5.6.1).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|m| !m.is_empty())
}

fn trim(s: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ows(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// The field names the `connection` fields name (their options other than close and keep-alive).
fn connection_names<'a>(fields: &[(&'a [u8], &'a [u8])]) -> Vec<&'a [u8]> {
    connection_options(fields)
        .filter(|o| !o.eq_ignore_ascii_case(b"close") && !o.eq_ignore_ascii_case(b"keep-alive"))
        .collect()
}

fn connection_options<'a, 'f>(
    fields: &'f [(&'a [u8], &'a [u8])],
) -> impl Iterator<Item = &'a [u8]> + use<'a, 'f> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .flat_map(|&(_, v)| list(v))
}

/// RFC 9112 §9.3: `close` ends the connection; otherwise HTTP/1.1 persists and HTTP/1.0
/// persists only with `keep-alive`.
fn keep_alive(fields: &[(&[u8], &[u8])], http10: bool) -> bool {
    let has = |option: &[u8]| connection_options(fields).any(|o| o.eq_ignore_ascii_case(option));
    !has(b"close") && (!http10 || has(b"keep-alive"))
}

/// Whether `transfer-encoding` is plain `chunked`: `Some(true)`; `None` when it is not but
/// ends in chunked; `Some(false)` when chunked is not the last coding.
fn te_ends_chunked(values: &[&[u8]]) -> Option<bool> {
    let codings: Vec<&[u8]> = values.iter().flat_map(|v| list(v)).collect();
    match codings[..] {
        [only] if only.eq_ignore_ascii_case(b"chunked") => Some(true),
        _ if ends_with_chunked(values) => None,
        _ => Some(false),
    }
}

fn ends_with_chunked(values: &[&[u8]]) -> bool {
    values
        .iter()
        .flat_map(|v| list(v))
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
}

/// RFC 9110 §8.6: `1*DIGIT`; a list of one repeated value is that value. `None` when invalid,
/// `Some(None)` when there is none.
fn content_length(values: &[&[u8]]) -> Option<Option<u64>> {
    let mut agreed: Option<u64> = None;
    for item in values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim)
    {
        if item.is_empty() {
            return None;
        }
        let mut n: u64 = 0;
        for &d in item {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        if agreed.is_some_and(|a| a != n) {
            return None;
        }
        agreed = Some(n);
    }
    Some(agreed)
}

/// The fields a proxy passes on: not hop-by-hop (RFC 9110 §7.6.1 and Seawall's `proxy-*`),
/// not named by `connection`, and not a `_` twin of a framing or hop-by-hop name.
fn passed_on<'f, 'a>(
    fields: &'f [(&'a [u8], &'a [u8])],
    named: &'f [&'a [u8]],
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'f {
    fields.iter().copied().filter(move |&(n, _)| {
        !hop_by_hop(n) && !hop_by_hop_twin(n) && !named.iter().any(|m| m.eq_ignore_ascii_case(n))
    })
}

fn hop_by_hop(name: &[u8]) -> bool {
    const LISTED: [&[u8]; 6] = [
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    LISTED.iter().any(|l| name.eq_ignore_ascii_case(l))
        || name.len() >= 6 && name[..6].eq_ignore_ascii_case(b"proxy-")
}

/// `Transfer_Encoding` and the like: read as the real field by some servers (CGI-style
/// environments turn `-` into `_`), so a gateway drops them.
fn hop_by_hop_twin(name: &[u8]) -> bool {
    if !name.contains(&b'_') {
        return false;
    }
    let dashed: Vec<u8> = name
        .iter()
        .map(|&b| if b == b'_' { b'-' } else { b })
        .collect();
    dashed.eq_ignore_ascii_case(b"content-length") || hop_by_hop(&dashed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_frames_by_the_rfc() {
        let framing = |wire: &str| match request(wire.as_bytes()) {
            Head::Request(r) => Ok(r.framing),
            Head::Refused(class) => Err(class),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            framing("POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 007\r\n\r\n"),
            Ok(Framing::Length(7))
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked,\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip, chunked\r\n\r\n"),
            Err(Class::TransferEncoding)
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nhost: h\r\nconnection: content-length\r\ncontent-length: 5\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(framing("GET / HTTP/1.1\r\n\r\n"), Err(Class::Malformed));
        assert_eq!(
            head_end(b"\r\n\nGET / HTTP/1.1\nA: b\r\n\r\nbody"),
            Some(26)
        );
    }
}
