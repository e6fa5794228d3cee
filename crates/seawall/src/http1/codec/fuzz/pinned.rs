//! The inputs on which the fuzz suite's first run found the codec off the intended rules
//! (BENCHMARKS.md, "Fuzzing the HTTP/1 codec"), each a test of the answer it must get.

use crate::http1::codec::decode::{Framing, FramingError};

use super::ref_body::Body;
use super::ref_head::{Class, Field, Head, Request, Response};
use super::run::{self, Case, Kind};
use super::stats::Stats;

/// A request's transfer-encoding other than plain `chunked` is refused (501, RFC 9112 §6.1).
#[test]
fn a_request_coded_other_than_plain_chunked_is_refused() {
    assert_eq!(
        request(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        Head::Refused(Class::TransferEncoding)
    );
}

/// `chunked` twice is not plain `chunked` either (RFC 9112 §6.1).
#[test]
fn a_request_chunked_twice_is_refused() {
    assert_eq!(
        request(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Head::Refused(Class::TransferEncoding)
    );
}

/// `_` spellings of framing and hop-by-hop names are dropped: CGI-style servers read them
/// as the real fields.
#[test]
fn underscore_twins_of_framing_fields_are_dropped() {
    let head = accepted(request(
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent_Length: 5\r\n\r\n",
    ));
    assert_eq!(head.framing, Framing::Length(0));
    assert_eq!(head.fields, [Field(b"host".to_vec(), b"h".to_vec())]);
}

/// An HTTP/1.0 message with transfer-encoding has faulty framing: its connection closes
/// after it (RFC 9112 §6.1).
#[test]
fn an_http10_response_with_transfer_encoding_is_decoded_and_not_reused() {
    let head = answered(response(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
    ));
    assert_eq!(head.framing, Ok(Framing::Chunked));
    assert!(!head.keep_alive);
}

/// Empty list items are ignored: `chunked,` is plain chunked (RFC 9110 §5.6.1).
#[test]
fn an_empty_transfer_coding_item_is_ignored_in_a_request() {
    let head = accepted(request(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n",
    ));
    assert_eq!(head.framing, Framing::Chunked);
}

/// A body coded `gzip, chunked` cannot be passed on as identity (RFC 9112 §6.1).
#[test]
fn a_response_coded_before_chunked_is_refused() {
    let head = answered(response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    ));
    assert_eq!(head.framing, Err(Class::TransferEncoding));
}

/// A response's `chunked,` is chunked, not read until the close (RFC 9110 §5.6.1).
#[test]
fn an_empty_transfer_coding_item_is_ignored_in_a_response() {
    let head = answered(response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n",
    ));
    assert_eq!(head.framing, Ok(Framing::Chunked));
}

/// Framing comes from the content-length received, whatever `connection` names; else the
/// body is read as the next request (RFC 9112 §6.3).
#[test]
fn a_connection_field_cannot_hide_content_length() {
    let wire = b"POST / HTTP/1.1\r\nHost: h\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello";
    let head = accepted(request(wire));
    assert_eq!(head.framing, Framing::Length(5));
    assert_eq!(head.head_len, wire.len() - b"hello".len());
}

/// A received `expect: 100-continue` is honoured even when `connection` names it
/// (RFC 9110 §10.1.1).
#[test]
fn a_connection_field_cannot_hide_expect() {
    let head = accepted(request(
        b"PUT / HTTP/1.1\r\nHost: h\r\nConnection: expect\r\nExpect: 100-continue\r\n\r\n",
    ));
    assert!(head.expects_continue);
}

/// `expect` is a list: any `100-continue` member counts (RFC 9110 §10.1.1).
#[test]
fn expect_is_read_as_a_list() {
    let head = accepted(request(
        b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: foo, 100-continue\r\n\r\n",
    ));
    assert!(head.expects_continue);
}

/// An HTTP/1.1 request without exactly one host field gets 400 (RFC 9112 §3.2).
#[test]
fn an_http11_request_needs_exactly_one_host() {
    for wire in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        assert_eq!(request(wire), Head::Refused(Class::Malformed));
    }
}

/// Only origin, absolute, authority (CONNECT) and asterisk (OPTIONS) form targets are taken
/// (RFC 9112 §3.2).
#[test]
fn targets_outside_the_four_forms_are_refused() {
    for wire in [
        &b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"POST x HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        assert_eq!(request(wire), Head::Refused(Class::Malformed));
    }
}

/// The chunk line limit holds whether the line's LF comes in the same read or a later one.
#[test]
fn a_long_chunk_line_is_too_long_however_reads_split_it() {
    let mut wire = b"1;".to_vec();
    wire.extend_from_slice(&[b'x'; 5000]);
    wire.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert_eq!(chunked(&wire), Body::Failed(FramingError::TooLong));
}

/// Only `BWS ";"` may follow a chunk size: no CR, FF or other whitespace (RFC 9112 §7.1).
#[test]
fn only_blanks_before_an_extension_may_follow_a_chunk_size() {
    assert_eq!(
        chunked(b"5\r\r\nhello\r\n0\r\n\r\n"),
        Body::Failed(FramingError::ChunkSize)
    );
}

/// Chunk extensions are `;name[=token|quoted-string]` (RFC 9112 §7.1.1).
#[test]
fn chunk_extensions_are_checked() {
    assert_eq!(
        chunked(b"5;a\0b\r\nhello\r\n0\r\n\r\n"),
        Body::Failed(FramingError::ChunkSize)
    );
}

/// Trailer lines are field lines (RFC 9112 §7.1.2).
#[test]
fn trailer_lines_must_be_fields() {
    assert_eq!(
        chunked(b"0\r\nnot a field\r\n\r\n"),
        Body::Failed(FramingError::ChunkSize)
    );
}

/// Found by the strict re-run (not one of the first run's findings): RFC 9112 §7.1.1 lets
/// blanks stand only before a `;` and around `=`, as `5 \r\n` is refused for.
#[test]
fn a_chunk_extension_cannot_end_in_blanks() {
    for line in [
        &b"0;a=b \r\n\r\n"[..],
        b"0;a\t\r\n\r\n",
        b"0;a=\"b\" \r\n\r\n",
    ] {
        assert_eq!(chunked(line), Body::Failed(FramingError::ChunkSize));
    }
}

/// The codec's answer to a request head, once it agrees with the reference however the head
/// is cut into reads.
fn request(wire: &[u8]) -> Head {
    agreed(Kind::RequestHead, wire);
    run::request_head(wire, &[]).expect("the codec's invariants hold")
}

/// As [`request`], for a response head answering a GET.
fn response(wire: &[u8]) -> Head {
    agreed(Kind::ResponseHead("GET"), wire);
    run::response_head(wire, &[], "GET").expect("the codec's invariants hold")
}

/// As [`request`], for a chunked body.
fn chunked(wire: &[u8]) -> Body {
    agreed(Kind::Body(Framing::Chunked), wire);
    run::decode_body(Framing::Chunked, wire, &[]).expect("the codec's invariants hold")
}

fn accepted(head: Head) -> Request {
    match head {
        Head::Request(request) => request,
        other => panic!("refused: {other:?}"),
    }
}

fn answered(head: Head) -> Response {
    match head {
        Head::Response(response) => response,
        other => panic!("refused: {other:?}"),
    }
}

/// Fails unless the codec answers `input` as the reference does, read whole, a byte at a
/// time (bodies), and cut once at every byte.
fn agreed(kind: Kind, input: &[u8]) {
    let mut splits = vec![Vec::new()];
    splits.extend((1..input.len()).map(|at| vec![at]));
    let cases: Vec<Case> = match kind {
        Kind::Body(_) => {
            splits.push((1..input.len()).collect());
            vec![Case::pinned(kind, input, splits)]
        }
        _ => splits
            .into_iter()
            .map(|cuts| Case::pinned(kind, input, vec![cuts]))
            .collect(),
    };
    for case in cases {
        if let Err(failure) = run::check(&case, &mut Stats::default()) {
            panic!("{failure}\ninput: b\"{}\"", input.escape_ascii());
        }
    }
}
