//! The reference model of a body: RFC 9112 §7.1 chunked coding decoded from the whole input
//! at once (and the trivial content-length and until-close cases), written without looking at
//! `decode.rs`. The limits are the daemon's documented ones.

use std::fmt;

use crate::http1::codec::decode::{Framing, FramingError};

/// Most bytes of a chunk-size or trailer line before its LF.
const LINE_LIMIT: usize = 4096;
/// Most trailer bytes (lines with their CRLFs) after the last chunk.
const TRAILER_LIMIT: usize = 16 * 1024;
/// Most hex digits in a chunk size (sizes stay far below `u64::MAX`).
const SIZE_DIGITS: usize = 15;

/// What a body decoder should make of an input that ends with the connection's close.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Body {
    /// The body's bytes, and where the bytes after the body start in the input.
    Complete {
        data: Vec<u8>,
        rest_at: usize,
    },
    Failed(FramingError),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Complete { data, rest_at } => {
                write!(
                    f,
                    "Complete {{ data: b\"{}\", rest_at: {rest_at} }}",
                    data.escape_ascii()
                )
            }
            Body::Failed(e) => write!(f, "Failed({e:?})"),
        }
    }
}

/// What the body `framing` announces is, at the start of `input`.
pub(super) fn body(framing: Framing, input: &[u8]) -> Body {
    match framing {
        Framing::Length(n) => match usize::try_from(n) {
            Ok(n) if n <= input.len() => Body::Complete {
                data: input[..n].to_vec(),
                rest_at: n,
            },
            _ => Body::Failed(FramingError::Truncated),
        },
        Framing::UntilClose => Body::Complete {
            data: input.to_vec(),
            rest_at: input.len(),
        },
        Framing::Chunked => chunked(input).unwrap_or_else(Body::Failed),
    }
}

/// `chunked-body = *chunk last-chunk trailer-section CRLF`.
fn chunked(input: &[u8]) -> Result<Body, FramingError> {
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let (line, next) = line(input, at)?;
        let size = chunk_size(line)?;
        at = next;
        if size == 0 {
            break;
        }
        let end = usize::try_from(size)
            .ok()
            .and_then(|size| at.checked_add(size))
            .filter(|&end| end <= input.len())
            .ok_or(FramingError::Truncated)?;
        data.extend_from_slice(&input[at..end]);
        at = end;
        match input.get(at..at + 2) {
            None => return Err(FramingError::Truncated),
            Some(b"\r\n") => at += 2,
            Some(_) => return Err(FramingError::ChunkEnd),
        }
    }
    let mut seen = 0;
    loop {
        let (line, next) = line(input, at)?;
        at = next;
        if line.is_empty() {
            return Ok(Body::Complete { data, rest_at: at });
        }
        if !field_line(line) {
            return Err(FramingError::ChunkSize);
        }
        seen += line.len() + 2;
        if seen > TRAILER_LIMIT {
            return Err(FramingError::TooLong);
        }
    }
}

/// The CRLF-terminated line at `at`, without its CRLF, and where the next line starts.
fn line(input: &[u8], at: usize) -> Result<(&[u8], usize), FramingError> {
    let rest = &input[at..];
    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
        return Err(if rest.len() > LINE_LIMIT {
            FramingError::TooLong
        } else {
            FramingError::Truncated
        });
    };
    if lf > LINE_LIMIT {
        return Err(FramingError::TooLong);
    }
    if lf == 0 || rest[lf - 1] != b'\r' {
        return Err(FramingError::ChunkSize);
    }
    Ok((&rest[..lf - 1], at + lf + 1))
}

/// `chunk-size [ chunk-ext ]`: the size.
fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    if digits == 0 || digits > SIZE_DIGITS || !(rest.is_empty() || extensions(rest)) {
        return Err(FramingError::ChunkSize);
    }
    Ok(line[..digits].iter().fold(0, |size, &d| {
        size * 16 + u64::from((d as char).to_digit(16).unwrap_or_default())
    }))
}

/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )` (§7.1.1).
fn extensions(s: &[u8]) -> bool {
    let bws = |i: &mut usize| {
        while s.get(*i).is_some_and(|&b| b == b' ' || b == b'\t') {
            *i += 1;
        }
    };
    let mut i = 0;
    while i < s.len() {
        bws(&mut i);
        if s.get(i) != Some(&b';') {
            return false;
        }
        i += 1;
        bws(&mut i);
        let name = token_len(&s[i..]);
        if name == 0 {
            return false;
        }
        i += name;
        let mut j = i;
        bws(&mut j);
        if s.get(j) == Some(&b'=') {
            i = j + 1;
            bws(&mut i);
            match (token_len(&s[i..]), quoted_len(&s[i..])) {
                (0, Some(q)) => i += q,
                (0, None) => return false,
                (t, _) => i += t,
            }
        }
    }
    true
}

fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn token_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&b| tchar(b)).count()
}

/// The length of the `quoted-string` at the start of `s` (RFC 9110 §5.6.4).
fn quoted_len(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *s.get(i + 1)? {
                b'\t' | b' '..=b'~' | 0x80.. => i += 2,
                _ => return None,
            },
            b'\t' | b' ' | b'!' | b'#'..=b'[' | b']'..=b'~' | 0x80.. => i += 1,
            _ => return None,
        }
    }
}

/// `field-line = field-name ":" OWS field-value OWS` (RFC 9112 §5): a token, a colon, and
/// then only blanks, visible characters and obs-text.
fn field_line(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => {
            token_len(line) == colon && line[colon + 1..].iter().all(|&b| field_text(b))
        }
        _ => false,
    }
}

/// SP, HTAB, VCHAR or obs-text: anything but the controls.
pub(super) fn field_text(b: u8) -> bool {
    b != 0x7f && (b >= 0x20 || b == b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_decodes_by_the_rfc() {
        let decode = |wire: &[u8]| body(Framing::Chunked, wire);
        assert_eq!(
            decode(b"5;a=\"b c\"\r\nhello\r\n0\r\nx: y\r\n\r\nNEXT"),
            Body::Complete {
                data: b"hello".to_vec(),
                rest_at: 29
            }
        );
        for refused in [
            &b"5 \r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\r\nhello\r\n0\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"0;a=b \r\n\r\n",
            b"0\r\nnot a field\r\n\r\n",
        ] {
            assert_eq!(
                decode(refused),
                Body::Failed(FramingError::ChunkSize),
                "{}",
                refused.escape_ascii()
            );
        }
        assert_eq!(decode(b"5\r\nhel"), Body::Failed(FramingError::Truncated));
    }
}
