//! The path rules (README "Paths"): a request path is put in normal form before it is routed,
//! keyed or forwarded, and may never climb out of its provider; its endpoint label (breaker key
//! and metric label) is bounded.
//!
//! Normal form ([`normalize`]; RFC 3986 §6.2.2, segment by segment):
//! - `%XX` of an unreserved character is decoded (`%7E` → `~`, `%2e` → `.`); any other `%xx` is
//!   upper-cased (`%c3` → `%C3`); a `%` without two hex digits after it is refused;
//! - a byte that may not stand in a path (`\`, `"`, `{`, `}`, `|`, `^`, `[`, `]`, non-ASCII) is
//!   percent-encoded;
//! - empty segments (`//`) are dropped, `.` and `..` resolved; a `..` that would pop the provider
//!   segment is refused; a trailing `/` stays;
//! - a segment that a server would still read as `.` or `..` after decoding `%2F`, `%5C` or
//!   `%25` (up to twice), splitting at `/` or `\`, or cutting at `;` or NUL is refused
//!   (`..%2F`, `..;`, `%252e%252e`).
//!
//! Endpoint labels ([`endpoint`]): the trailing `/` dropped; the first configured template that
//! matches, else the path with id-like segments as `{id}`; at most [`MAX_ENDPOINT_LEN`] bytes
//! (longer ones are cut at a segment and end in `/{...}`). Normal paths percent-encode `{` and
//! `}`, so a label with braces never names a literal path.

use std::borrow::Cow;

use crate::config::{
    is_unreserved, stands_for_itself, EndpointTemplate, TemplateSegment, MAX_ENDPOINT_LEN,
};

/// Why a request path is refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// A `%` not followed by two hexadecimal digits.
    #[error("a `%` in the path is not followed by two hexadecimal digits (percent-encoding)")]
    InvalidEncoding,
    /// A `..` would pop the provider segment.
    #[error("a `..` segment in the path would leave the provider's route")]
    EscapesProvider,
    /// A segment hides `.` or `..` behind an encoded separator, a parameter or double encoding.
    #[error(
        "a path segment hides a dot segment (`.` or `..` behind `%2F`, `%5C`, `\\`, `;` or a \
         second percent-encoding)"
    )]
    AmbiguousSegment,
}

impl PathError {
    /// The `reason` label of `seawall_refused_paths_total`.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            PathError::InvalidEncoding => "invalid_encoding",
            PathError::EscapesProvider => "escapes_provider",
            PathError::AmbiguousSegment => "ambiguous_segment",
        }
    }
}

/// The normal form of `path` (which starts with `/`), its first segment (the provider) never
/// popped by a `..`. Allocates only when `path` is not already normal.
pub(crate) fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if is_normal(path) {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len() + 1);
    // Where each kept segment's `/` stands in `out`, to pop it on `..`.
    let mut starts: Vec<usize> = Vec::new();
    let mut segment = String::new();
    let mut trailing = false;
    for raw in path.split('/').skip(1) {
        segment.clear();
        normalize_segment(raw, &mut segment)?;
        trailing = true;
        match segment.as_str() {
            "" | "." => {}
            ".." => match starts.pop() {
                Some(start) if !starts.is_empty() => out.truncate(start),
                _ => return Err(PathError::EscapesProvider),
            },
            kept => {
                if hides_dot_segment(kept) {
                    return Err(PathError::AmbiguousSegment);
                }
                starts.push(out.len());
                out.push('/');
                out.push_str(kept);
                trailing = false;
            }
        }
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Whether [`normalize`] leaves `path` as it is, judged cheaply: only bytes that stand for
/// themselves, no empty segment but a trailing one, no segment starting with `.`.
fn is_normal(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let ok = match segment.as_bytes() {
            [] => segments.peek().is_none(),
            [b'.', ..] => false,
            bytes => bytes.iter().all(|&b| stands_for_itself(b)),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Appends the normal form of one raw segment to `out`.
fn normalize_segment(raw: &str, out: &mut String) -> Result<(), PathError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let decoded = bytes
                .get(i + 1..i + 3)
                .and_then(hex_pair)
                .ok_or(PathError::InvalidEncoding)?;
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                push_encoded(out, decoded);
            }
            i += 3;
        } else {
            if stands_for_itself(b) {
                out.push(char::from(b));
            } else {
                push_encoded(out, b);
            }
            i += 1;
        }
    }
    Ok(())
}

/// How many more percent-decodings [`hides_dot_segment`] looks through.
const DECODINGS: usize = 2;

/// Whether the normal segment `segment` reads as `.` or `..` to a server that splits it at
/// `/` or `\` or cuts it at `;` or NUL, as it is or decoded up to [`DECODINGS`] more times.
fn hides_dot_segment(segment: &str) -> bool {
    let mut text = Cow::Borrowed(segment.as_bytes());
    for _ in 0..=DECODINGS {
        if has_dot_piece(&text) {
            return true;
        }
        if !text.contains(&b'%') {
            return false;
        }
        text = Cow::Owned(percent_decode(&text));
    }
    false
}

/// Whether a piece of `bytes` between `/` or `\`, up to its first `;` or NUL, is `.` or `..`.
fn has_dot_piece(bytes: &[u8]) -> bool {
    bytes.split(|&b| b == b'/' || b == b'\\').any(|piece| {
        let name = piece
            .split(|&b| b == b';' || b == 0)
            .next()
            .unwrap_or_default();
        name == b"." || name == b".."
    })
}

/// `bytes` with every valid `%XX` decoded (others left as they are).
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3).and_then(hex_pair))
            .flatten();
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The byte two hex digits spell.
fn hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| char::from(c).to_digit(16);
    match pair {
        [hi, lo] => Some((digit(*hi)? * 16 + digit(*lo)?) as u8),
        _ => None,
    }
}

fn push_encoded(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// What an id-like segment shows as in a label.
const ID: &str = "{id}";
/// What ends a label cut at [`MAX_ENDPOINT_LEN`].
const CUT: &str = "/{...}";
/// A segment longer than this is an opaque token.
const LONGEST_NAME: usize = 64;
/// An alphanumeric run at least this long may be random (an id's body).
const RANDOM_RUN: usize = 16;

/// The endpoint label of the normal `path` (leading `/`, no query): see the module docs.
/// Borrows when nothing collapses.
///
/// `/v1/threads/thread_Ak0Hk5cvGHaZyaLhlE4kFZ1X/runs/` → `/v1/threads/{id}/runs`;
/// `/v1/models/gpt-4o` stays.
pub(crate) fn endpoint<'a>(path: &'a str, templates: &'a [EndpointTemplate]) -> Cow<'a, str> {
    let path = match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    };
    if let Some(template) = templates.iter().find(|t| matches(t, path)) {
        return Cow::Borrowed(template.as_str());
    }
    if path.len() <= MAX_ENDPOINT_LEN && !segments(path).any(is_id) {
        return Cow::Borrowed(path);
    }
    let mut label = String::with_capacity(MAX_ENDPOINT_LEN);
    // The longest prefix of `label` that still leaves room for `CUT`.
    let mut fits = 0;
    for segment in segments(path) {
        label.push('/');
        label.push_str(if is_id(segment) { ID } else { segment });
        if label.len() > MAX_ENDPOINT_LEN {
            label.truncate(fits);
            label.push_str(CUT);
            break;
        }
        if label.len() + CUT.len() <= MAX_ENDPOINT_LEN {
            fits = label.len();
        }
    }
    Cow::Owned(label)
}

/// The segments of a path without its leading `/` (one empty segment for `/`).
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.get(1..).unwrap_or_default().split('/')
}

/// Whether the normal `path` (no trailing `/`) matches `template`.
fn matches(template: &EndpointTemplate, path: &str) -> bool {
    let mut want = template.segments();
    let mut have = segments(path).filter(|s| !s.is_empty());
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(TemplateSegment::Placeholder), Some(_)) => {}
            (Some(TemplateSegment::Literal(literal)), Some(s)) if literal == s => {}
            _ => return false,
        }
    }
}

/// Whether a normal path segment names one object rather than an endpoint: all digits, longer
/// than [`LONGEST_NAME`], a UUID inside, a random-looking alphanumeric run of at least
/// [`RANDOM_RUN`] (`msg_01XFDUDYJgAACzvnptvVoYEL`), or `word_` before letters and digits
/// (`thread_abc123`). Model names (`gpt-4o`, `claude-3-5-sonnet-20241022`) are not.
fn is_id(segment: &str) -> bool {
    let b = segment.as_bytes();
    !b.is_empty()
        && (b.len() > LONGEST_NAME
            || b.iter().all(u8::is_ascii_digit)
            || has_uuid(b)
            || b.split(|c| !c.is_ascii_alphanumeric())
                .any(|run| run.len() >= RANDOM_RUN && looks_random(run))
            || is_prefixed_id(b))
}

/// Whether `b` holds `8-4-4-4-12` hex digits.
fn has_uuid(b: &[u8]) -> bool {
    b.windows(36).any(|w| {
        w.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
    })
}

/// Whether an alphanumeric run looks random: it has a digit, or its letters switch case at
/// least once every three characters (camelCase words switch far less often).
fn looks_random(run: &[u8]) -> bool {
    if run.iter().any(u8::is_ascii_digit) {
        return true;
    }
    let switches = run
        .windows(2)
        .filter(|w| w[0].is_ascii_uppercase() != w[1].is_ascii_uppercase())
        .count();
    switches * 3 >= run.len()
}

/// Whether `b` is `word_body`: a lower-case word, `_`, and at least six letters and digits with
/// both kinds among them (`thread_abc123`, `batch_6721b5ec`).
fn is_prefixed_id(b: &[u8]) -> bool {
    let Some(at) = b.iter().position(|&c| c == b'_') else {
        return false;
    };
    let (word, body) = (&b[..at], &b[at + 1..]);
    !word.is_empty()
        && word.iter().all(u8::is_ascii_lowercase)
        && body.len() >= 6
        && body.iter().all(u8::is_ascii_alphanumeric)
        && body.iter().any(u8::is_ascii_digit)
        && body.iter().any(u8::is_ascii_alphabetic)
}

#[cfg(test)]
mod tests;
