//! Body framing on the wire: how long a message body is (`content-length`, chunked, or until
//! the connection closes) and a decoder that cuts body bytes out of a read buffer.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (size, extensions, CRLF) or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk (trailers are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
    /// Until the peer closes the connection (responses only).
    UntilClose,
}

/// The body broke its framing: the connection cannot be trusted any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingError {
    #[error("invalid chunk size line")]
    ChunkSize,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("chunk line or trailers too long")]
    TooLong,
    #[error("connection closed before the body ended")]
    Truncated,
}

/// What the decoder found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The buffer holds no complete piece: read more, then call again.
    NeedMore,
    /// The body is complete; bytes after it stay in the buffer.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk with this many bytes left.
    Data(u64),
    /// After a chunk's data, expecting CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one (bytes of trailers seen).
    Trailers(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
    Done,
}

/// Decodes one body from a connection's read buffer, piece by piece.
///
/// ```ignore
/// let mut d = Decoder::new(Framing::Length(5));
/// let mut buf = BytesMut::from(&b"hello, next request"[..]);
/// assert_eq!(d.decode(&mut buf)?, Decoded::Data(Bytes::from_static(b"hello")));
/// assert_eq!(d.decode(&mut buf)?, Decoded::End);
/// ```
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    state: State,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunk::Size),
            Framing::UntilClose => State::UntilClose,
        };
        Decoder { state }
    }

    /// Whether the whole body has been decoded.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still expected when the length is known up front.
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The next piece of the body from `buf`, consuming what it decodes.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FramingError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Length(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let rest = left - take as u64;
                    self.state = if rest == 0 {
                        State::Done
                    } else {
                        State::Length(rest)
                    };
                    return Ok(Decoded::Data(buf.split_to(take).freeze()));
                }
                State::UntilClose => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    return Ok(Decoded::Data(buf.split().freeze()));
                }
                State::Chunked(chunk) => match self.chunked(chunk, buf)? {
                    Some(decoded) => return Ok(decoded),
                    None => continue,
                },
            }
        }
    }

    /// Called when the connection reached end of file with `buf` drained: ends a body
    /// delimited by the close, fails any other.
    pub(crate) fn at_eof(&mut self) -> Result<(), FramingError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(FramingError::Truncated),
        }
    }

    /// One step of the chunked state machine: `Some` to return, `None` to loop.
    fn chunked(
        &mut self,
        chunk: Chunk,
        buf: &mut BytesMut,
    ) -> Result<Option<Decoded>, FramingError> {
        match chunk {
            Chunk::Size => {
                let Some(line) = take_line(buf)? else {
                    return Ok(Some(Decoded::NeedMore));
                };
                let size = parse_chunk_size(&line)?;
                self.state = State::Chunked(if size == 0 {
                    Chunk::Trailers(0)
                } else {
                    Chunk::Data(size)
                });
                Ok(None)
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(Some(Decoded::NeedMore));
                }
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                let rest = left - take as u64;
                self.state = State::Chunked(if rest == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rest)
                });
                Ok(Some(Decoded::Data(buf.split_to(take).freeze())))
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Some(Decoded::NeedMore));
                }
                if &buf[..2] != b"\r\n" {
                    return Err(FramingError::ChunkEnd);
                }
                buf.advance(2);
                self.state = State::Chunked(Chunk::Size);
                Ok(None)
            }
            Chunk::Trailers(seen) => {
                let Some(line) = take_line(buf)? else {
                    return Ok(Some(Decoded::NeedMore));
                };
                if line.is_empty() {
                    self.state = State::Done;
                    return Ok(Some(Decoded::End));
                }
                // Trailers are dropped, but must still be fields (RFC 9112 §7.1.2).
                if !is_field_line(&line) {
                    return Err(FramingError::ChunkSize);
                }
                let seen = seen + line.len() + 2;
                if seen > MAX_TRAILERS {
                    return Err(FramingError::TooLong);
                }
                self.state = State::Chunked(Chunk::Trailers(seen));
                Ok(None)
            }
        }
    }
}

/// Removes one CRLF-terminated line from `buf` and returns it without the CRLF. A line
/// longer than [`MAX_LINE`] fails however the reads split it.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, FramingError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) => {
            if i > MAX_LINE {
                return Err(FramingError::TooLong);
            }
            if i == 0 || buf[i - 1] != b'\r' {
                return Err(FramingError::ChunkSize);
            }
            let mut line = buf.split_to(i + 1);
            line.truncate(i - 1);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(FramingError::TooLong),
        None => Ok(None),
    }
}

/// A chunk-size line (RFC 9112 §7.1): hex digits, then nothing, or extensions
/// (`*( BWS ";" BWS name [ BWS "=" BWS value ] )`, checked, then ignored).
fn parse_chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(FramingError::ChunkSize);
    }
    if !(line[digits..].is_empty() || extensions_ok(&line[digits..])) {
        return Err(FramingError::ChunkSize);
    }
    let mut size = 0u64;
    for &d in &line[..digits] {
        // Hex digits only, at most 15: no overflow.
        size = size * 16 + u64::from((d as char).to_digit(16).unwrap_or_default());
    }
    Ok(size)
}

/// Where a chunk extension's parts may stand.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Before the first `;`.
    Gap,
    /// After `;`, before the name.
    Semicolon,
    /// In the name.
    Name,
    /// Blanks after the name.
    NameEnd,
    /// After `=`, before the value.
    Equals,
    /// In a token value.
    Token,
    /// In a quoted value; `true` right after a backslash.
    Quoted(bool),
    /// Right after a quoted value's closing quote.
    Closed,
    /// Blanks after a value (only `;` may follow them).
    ValueEnd,
}

/// Whether `s` is a run of chunk extensions, each `;` with a token name and an optional token
/// or quoted-string value, with optional blanks before `;` and around `=`.
fn extensions_ok(s: &[u8]) -> bool {
    let blank = |b: u8| b == b' ' || b == b'\t';
    // HTAB, SP, visible characters and obs-text (RFC 9110 §5.6.4).
    let text = |b: u8| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80;
    let mut at = Ext::Gap;
    for &b in s {
        at = match at {
            Ext::Quoted(true) if text(b) => Ext::Quoted(false),
            Ext::Quoted(false) if b == b'"' => Ext::Closed,
            Ext::Quoted(false) if b == b'\\' => Ext::Quoted(true),
            Ext::Quoted(false) if text(b) => Ext::Quoted(false),
            Ext::Quoted(_) => return false,
            _ if b == b';' && at != Ext::Semicolon && at != Ext::Equals => Ext::Semicolon,
            Ext::Gap | Ext::Semicolon | Ext::NameEnd | Ext::Equals | Ext::ValueEnd if blank(b) => {
                at
            }
            Ext::Semicolon | Ext::Name if is_tchar(b) => Ext::Name,
            Ext::Name if blank(b) => Ext::NameEnd,
            Ext::Name | Ext::NameEnd if b == b'=' => Ext::Equals,
            Ext::Equals if b == b'"' => Ext::Quoted(false),
            Ext::Equals | Ext::Token if is_tchar(b) => Ext::Token,
            Ext::Token if blank(b) => Ext::ValueEnd,
            _ => return false,
        };
    }
    // Blanks may come before `;` and around `=`, never at the end (RFC 9112 §7.1.1).
    matches!(at, Ext::Name | Ext::Token | Ext::Closed)
}

/// A `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether a trailer line is a field: a token name, `:`, and a value of visible characters,
/// blanks and obs-text.
fn is_field_line(line: &[u8]) -> bool {
    let name = line.iter().take_while(|&&b| is_tchar(b)).count();
    name > 0
        && line.get(name) == Some(&b':')
        && line[name + 1..]
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(framing: Framing, input: &[&[u8]]) -> Result<(Vec<u8>, Vec<u8>), FramingError> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut parts = input.iter();
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::End => {
                    let mut rest = buf.to_vec();
                    parts.for_each(|p| rest.extend_from_slice(p));
                    return Ok((out, rest));
                }
                Decoded::NeedMore => match parts.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => {
                        d.at_eof()?;
                        return Ok((out, buf.to_vec()));
                    }
                },
            }
        }
    }

    #[test]
    fn length_stops_at_the_end_and_keeps_what_follows() {
        let (body, rest) = all(Framing::Length(5), &[b"he", b"llo GET /"]).unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(rest, b" GET /");
        assert_eq!(all(Framing::Length(0), &[b"x"]).unwrap().0, b"");
        assert_eq!(
            all(Framing::Length(9), &[b"short"]),
            Err(FramingError::Truncated)
        );
    }

    #[test]
    fn chunked_in_any_split_with_extensions_and_trailers() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for split in 0..wire.len() {
            let (a, b) = wire.split_at(split);
            let (body, rest) = all(Framing::Chunked, &[a, b]).unwrap();
            assert_eq!(body, b"hello, world", "split at {split}");
            assert_eq!(rest, b"NEXT");
        }
    }

    #[test]
    fn bad_chunks_are_errors() {
        assert_eq!(
            all(Framing::Chunked, &[b"zz\r\n"]),
            Err(FramingError::ChunkSize)
        );
        assert_eq!(
            all(Framing::Chunked, &[b"\r\n"]),
            Err(FramingError::ChunkSize)
        );
        assert_eq!(
            all(Framing::Chunked, &[b"2\nab"]),
            Err(FramingError::ChunkSize)
        );
        assert_eq!(
            all(Framing::Chunked, &[b"2\r\nabXY"]),
            Err(FramingError::ChunkEnd)
        );
        assert_eq!(
            all(Framing::Chunked, &[b"ffffffffffffffff\r\n"]),
            Err(FramingError::ChunkSize)
        );
        assert_eq!(
            all(Framing::Chunked, &[&[b'1'; 5000]]),
            Err(FramingError::TooLong)
        );
        assert_eq!(
            all(Framing::Chunked, &[b"3\r\nab"]),
            Err(FramingError::Truncated)
        );
    }

    #[test]
    fn until_close_takes_everything() {
        let (body, _) = all(Framing::UntilClose, &[b"a", b"bc"]).unwrap();
        assert_eq!(body, b"abc");
    }

    #[test]
    fn encoded_chunks_decode_back() {
        use crate::http1::codec::encode::{push_data, LAST_CHUNK};
        let mut wire = Vec::new();
        push_data(&mut wire, b"data: 1\n\n", true);
        push_data(&mut wire, b"", true);
        push_data(&mut wire, &[b'x'; 300], true);
        wire.extend_from_slice(LAST_CHUNK);
        let (body, rest) = all(Framing::Chunked, &[&wire]).unwrap();
        assert_eq!(body.len(), 9 + 300);
        assert!(rest.is_empty());
    }
}
