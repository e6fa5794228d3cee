//! Chunked bodies from RFC 9112 §7.1's grammar with hostile mutations (extensions, trailers,
//! bad and over-long sizes, missing CRLFs, over-long lines, truncation), and the ways one
//! input can be split across reads.

use fastrand::Rng;

use super::gen_head::pick;

const BAD_SIZES: [&str; 16] = [
    "",
    " ",
    "-1",
    "+5",
    "0x5",
    "g",
    "5 ",
    " 5",
    "5\t",
    "5\r",
    "5\x0c",
    "ffffffffffffffff",
    "fffffffffffffff",
    "1_0",
    "5\x0b",
    "0000000000000005",
];
const EXTENSIONS: [&str; 18] = [
    "; a=b",
    ";a",
    ";a=\"q s\"",
    ";a=\"x\\\"y\"",
    ";",
    "; ",
    ";a=b ",
    ";a=b;c=d",
    " ;a=b",
    ";a=\0",
    ";a\rb",
    ";a=\"open",
    ";a=b\x7f",
    ";a\nb",
    ";=b",
    "\t;a",
    ";a = b",
    ";a=\"\\\x01\"",
];
const TRAILERS: [&str; 10] = [
    "x-t: v",
    "X-Checksum: abc",
    "bad line",
    ": v",
    "x:\0",
    "x : v",
    "\tfold",
    "Content-Length: 5",
    "x:",
    "x;y",
];
const LINE_ENDS: [&str; 5] = ["\n", "\r", "", "\r\r\n", "\n\r"];

/// A chunked body, more or less broken, followed by what came after it on the wire.
pub(super) fn chunked(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.usize(0..5) {
        let size = match rng.u8(..10) {
            0..7 => rng.usize(1..20),
            7 | 8 => rng.usize(20..300),
            _ => rng.usize(300..3000),
        };
        size_line(rng, &mut out, size);
        let sent = match rng.u8(..40) {
            0 => size + 1,
            1 => size - 1,
            _ => size,
        };
        data(rng, &mut out, sent);
        out.extend_from_slice(match rng.u8(..50) {
            0..47 => b"\r\n",
            _ => pick(rng, &[&b"\n"[..], b"", b"XX", b"\r", b" \r\n"]),
        });
    }
    if rng.u8(..25) != 0 {
        size_line(rng, &mut out, 0);
        if rng.u8(..5) == 0 {
            for _ in 0..rng.usize(1..4) {
                match rng.u8(..30) {
                    0 => out.extend_from_slice("x-long: ".repeat(rng.usize(500..2500)).as_bytes()),
                    _ => out.extend_from_slice(pick(rng, &TRAILERS).as_bytes()),
                }
                line_end(rng, &mut out);
            }
        }
        line_end(rng, &mut out);
    }
    match rng.u8(..6) {
        0..3 => {}
        3 => out.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n"),
        4 => out.extend_from_slice(b"0\r\n\r\n"),
        _ => {
            let len = rng.usize(1..10);
            data(rng, &mut out, len);
        }
    }
    if !out.is_empty() && rng.u8(..20) == 0 {
        out.truncate(rng.usize(..out.len()));
    }
    out
}

/// Random bytes for a plain length or until-close body, or after one.
pub(super) fn bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    data(rng, &mut out, len);
    out
}

fn size_line(rng: &mut Rng, out: &mut Vec<u8>, size: usize) {
    let digits = match rng.u8(..100) {
        0..78 => format!("{size:x}"),
        78..86 => format!("{size:X}"),
        86..92 => format!("{size:0width$x}", width = rng.usize(2..5)),
        92..94 => format!("{size:0width$x}", width = rng.usize(14..18)),
        _ => pick(rng, &BAD_SIZES).to_string(),
    };
    out.extend_from_slice(digits.as_bytes());
    match rng.u8(..100) {
        0..82 => {}
        82..97 => out.extend_from_slice(pick(rng, &EXTENSIONS).as_bytes()),
        // Lines around the 4096-byte limit, and far past it.
        97 | 98 => {
            let len = rng.usize(4085..4100) - digits.len();
            out.push(b';');
            out.extend_from_slice("x".repeat(len).as_bytes());
        }
        _ => out.extend_from_slice(format!(";x={}", "y".repeat(rng.usize(5000..9000))).as_bytes()),
    }
    line_end(rng, out);
}

fn line_end(rng: &mut Rng, out: &mut Vec<u8>) {
    match rng.u8(..40) {
        0 => out.extend_from_slice(pick(rng, &LINE_ENDS).as_bytes()),
        _ => out.extend_from_slice(b"\r\n"),
    }
}

/// Body bytes, now and then shaped like framing (CRLF, a last chunk) to tempt a lax decoder.
fn data(rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
    let start = out.len();
    while out.len() - start < len {
        match rng.u8(..30) {
            0 => out.extend_from_slice(b"\r\n"),
            1 => out.extend_from_slice(b"0\r\n\r\n"),
            _ => out.push(rng.u8(..)),
        }
    }
    out.truncate(start + len);
}

/// Ways to cut an input of `len` bytes into reads (each a sorted list of cut points): the
/// whole input, one byte at a time (short inputs), and a few random cuts; every single cut
/// for one short input in eight.
pub(super) fn splits(rng: &mut Rng, len: usize) -> Vec<Vec<usize>> {
    let mut splits = vec![Vec::new()];
    if len <= 512 {
        splits.push((1..len).collect());
    }
    if len <= 64 && rng.u8(..8) == 0 {
        splits.extend((1..len).map(|at| vec![at]));
    } else if len > 1 {
        for _ in 0..3 {
            let mut cuts: Vec<usize> = (0..rng.usize(1..5)).map(|_| rng.usize(1..len)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            splits.push(cuts);
        }
    }
    splits
}
