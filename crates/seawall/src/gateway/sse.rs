//! Incremental scan of a server-sent event stream for the error events that mean a failure
//! even after a `200`: Anthropic `event: error`; OpenAI `data: {"error":…}`,
//! `response.failed` (as event name or JSON `type`) or an `error` event.

use serde_json::Value;

use crate::config::ProviderKind;

/// Longest part of one line kept for inspection; error events are short, longer lines
/// (large content deltas) are judged on their first bytes.
const MAX_LINE: usize = 8 * 1024;

/// Which error events to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Anthropic,
    OpenAi,
}

/// Scans a byte stream line by line, across chunk boundaries, with bounded memory.
#[derive(Debug)]
pub(crate) struct SseScanner {
    dialect: Dialect,
    /// The current line so far (at most `MAX_LINE` bytes).
    line: Vec<u8>,
    /// The current line was longer than `MAX_LINE`.
    truncated: bool,
    /// The previous chunk ended in `\r`: a leading `\n` completes that line break.
    after_cr: bool,
    /// An error event was seen (scanning stops).
    failed: bool,
}

impl SseScanner {
    /// The scanner for `kind`; generic upstreams have no error-event convention.
    pub(crate) fn for_kind(kind: ProviderKind) -> Option<Self> {
        let dialect = match kind {
            ProviderKind::Anthropic => Dialect::Anthropic,
            ProviderKind::Openai => Dialect::OpenAi,
            ProviderKind::Generic => return None,
        };
        Some(SseScanner {
            dialect,
            line: Vec::new(),
            truncated: false,
            after_cr: false,
            failed: false,
        })
    }

    /// Feeds the next chunk; returns whether an error event has been seen so far.
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) -> bool {
        while !chunk.is_empty() && !self.failed {
            if std::mem::take(&mut self.after_cr) && chunk[0] == b'\n' {
                chunk = &chunk[1..];
                continue;
            }
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    self.push(&chunk[..i]);
                    self.after_cr = chunk[i] == b'\r';
                    self.end_line();
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.push(chunk);
                    break;
                }
            }
        }
        self.failed
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINE - self.line.len();
        if bytes.len() > room {
            self.truncated = true;
        }
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let truncated = std::mem::take(&mut self.truncated);
        if let Some(name) = field(&line, b"event") {
            self.failed = match self.dialect {
                Dialect::Anthropic => name == b"error",
                Dialect::OpenAi => name == b"error" || name == b"response.failed",
            };
        } else if let (Dialect::OpenAi, Some(data)) = (self.dialect, field(&line, b"data")) {
            self.failed = openai_error_data(data, truncated);
        }
        // Reuse the allocation for the next line.
        self.line = line;
        self.line.clear();
    }
}

/// The value of `name: value` (one optional space after the colon), if `line` is that field.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?.strip_prefix(b":")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

fn openai_error_data(data: &[u8], truncated: bool) -> bool {
    let data = data.trim_ascii();
    if truncated {
        return data.starts_with(br#"{"error""#);
    }
    // Only lines that could be errors are parsed; content deltas are not.
    let mentions = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    if !mentions(b"error") && !mentions(b"response.failed") {
        return false;
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let has_error = value.get("error").is_some_and(|e| !e.is_null());
    let failed_type = matches!(value["type"].as_str(), Some("response.failed" | "error"));
    has_error || failed_type
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(kind: ProviderKind, chunks: &[&[u8]]) -> bool {
        let mut s = SseScanner::for_kind(kind).unwrap();
        chunks.iter().fold(false, |_, c| s.feed(c))
    }

    #[test]
    fn anthropic_error_event_is_found_across_chunks() {
        assert!(scan(
            ProviderKind::Anthropic,
            &[
                b"event: message_start\ndata: {}\n\nev",
                b"ent: err",
                b"or\r\ndata: {}\n\n"
            ]
        ));
        assert!(!scan(
            ProviderKind::Anthropic,
            &[b"event: content_block_delta\ndata: {\"text\":\"error\"}\n\n"]
        ));
    }

    #[test]
    fn openai_error_data_and_response_failed_are_found() {
        assert!(scan(
            ProviderKind::Openai,
            &[b"data: {\"error\":{\"message\":\"boom\"}}\n\n"]
        ));
        assert!(scan(
            ProviderKind::Openai,
            &[
                b"data: {\"type\":\"response.fa",
                b"iled\",\"response\":{}}\n"
            ]
        ));
        assert!(scan(
            ProviderKind::Openai,
            &[b"event: response.failed\r", b"\ndata: {}\r\n"]
        ));
        assert!(!scan(
            ProviderKind::Openai,
            &[b"data: {\"choices\":[{\"delta\":{\"content\":\"error\"}}]}\n\ndata: [DONE]\n\n"]
        ));
    }

    #[test]
    fn long_lines_are_bounded_and_judged_by_their_start() {
        let mut s = SseScanner::for_kind(ProviderKind::Openai).unwrap();
        let long = vec![b'x'; 3 * MAX_LINE];
        assert!(!s.feed(b"data: {\"choices\":\""));
        assert!(!s.feed(&long));
        assert!(s.line.len() <= MAX_LINE);
        assert!(!s.feed(b"\"}\n"));
        assert!(!s.feed(b"data: {\"error\":\""));
        assert!(!s.feed(&long));
        assert!(s.feed(b"\"}\n"));
    }

    #[test]
    fn generic_streams_are_not_scanned() {
        assert!(SseScanner::for_kind(ProviderKind::Generic).is_none());
    }
}
