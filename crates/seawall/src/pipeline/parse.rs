//! Splits an ingest body into events: NDJSON (one value per line, blank lines skipped) or one
//! JSON array. Events stay slices of the body (no per-event allocation) and are single-line.

use bytes::Bytes;
use serde::de::IgnoredAny;

/// The body is not valid input; the message names the line (1-based).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadInput(pub(crate) String);

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/x-ndjson`: one value per line.
    Ndjson,
    /// `application/json`: an array of events, or one event.
    Json,
    /// No (or another) content type: an array if the body starts with `[`, else NDJSON.
    Sniff,
}

impl Format {
    /// The format a `content-type` value announces.
    pub(crate) fn from_content_type(ct: Option<&str>) -> Format {
        let essence = ct
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        match essence.as_deref() {
            Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => {
                Format::Ndjson
            }
            Some("application/json") => Format::Json,
            _ => Format::Sniff,
        }
    }
}

/// The events in `body`, or the first problem. All or nothing.
pub(crate) fn events(body: &Bytes, format: Format) -> Result<Vec<Bytes>, BadInput> {
    let starts_array = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    match format {
        Format::Ndjson => ndjson(body),
        Format::Json | Format::Sniff if starts_array => array(body),
        Format::Json => single(body),
        Format::Sniff => ndjson(body),
    }
}

fn ndjson(body: &Bytes) -> Result<Vec<Bytes>, BadInput> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let end = start + line.len();
        let (from, to) = trim(line);
        if from < to {
            serde_json::from_slice::<IgnoredAny>(line).map_err(|e| bad(i + 1, &e))?;
            out.push(body.slice(start + from..start + to));
        }
        start = end + 1;
    }
    Ok(out)
}

fn single(body: &Bytes) -> Result<Vec<Bytes>, BadInput> {
    serde_json::from_slice::<IgnoredAny>(body).map_err(|e| bad(e.line(), &e))?;
    let (from, to) = trim(body);
    if from == to {
        return Ok(Vec::new());
    }
    Ok(vec![one_line(body.slice(from..to))])
}

/// Validates the array with serde, then splits it at top-level commas: once the text is known
/// to be valid JSON, tracking strings and nesting depth is enough to find the elements.
fn array(body: &Bytes) -> Result<Vec<Bytes>, BadInput> {
    serde_json::from_slice::<Vec<IgnoredAny>>(body).map_err(|e| bad(e.line(), &e))?;
    let mut out = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    let mut element_start = 0;
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    element_start = i + 1;
                }
            }
            b',' if depth == 1 => {
                push_element(body, element_start, i, &mut out);
                element_start = i + 1;
            }
            b']' | b'}' => {
                if depth == 1 {
                    push_element(body, element_start, i, &mut out);
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    Ok(out)
}

fn push_element(body: &Bytes, from: usize, to: usize, out: &mut Vec<Bytes>) {
    let (a, b) = trim(&body[from..to]);
    if a < b {
        out.push(one_line(body.slice(from + a..from + b)));
    }
}

/// Offsets of `s` without leading and trailing whitespace.
fn trim(s: &[u8]) -> (usize, usize) {
    let from = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let to = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(from, |p| p + 1);
    (from, to)
}

/// A valid JSON value on one line. Raw line breaks cannot occur inside JSON strings, so in a
/// valid value they are whitespace between tokens and can be removed (copying only then).
fn one_line(event: Bytes) -> Bytes {
    if event.iter().any(|&b| b == b'\n' || b == b'\r') {
        event
            .iter()
            .copied()
            .filter(|&b| b != b'\n' && b != b'\r')
            .collect::<Vec<u8>>()
            .into()
    } else {
        event
    }
}

/// `line 3: expected value at column 5`, from serde's `expected value at line 1 column 5`.
fn bad(line: usize, e: &serde_json::Error) -> BadInput {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    BadInput(format!("line {line}: {message} at column {}", e.column()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(v: &[Bytes]) -> Vec<&str> {
        v.iter().map(|b| std::str::from_utf8(b).unwrap()).collect()
    }

    #[test]
    fn ndjson_skips_blank_lines_and_trims_crlf() {
        let body = Bytes::from_static(b"{\"a\":1}\r\n\n  \n [2, 3] \n\"x\"");
        let ev = events(&body, Format::Sniff).unwrap();
        assert_eq!(texts(&ev), ["{\"a\":1}", "[2, 3]", "\"x\""]);
    }

    #[test]
    fn ndjson_error_names_the_line_and_column() {
        let body = Bytes::from_static(b"{}\n{}\n{\"a\": }\n");
        let err = events(&body, Format::Ndjson).unwrap_err();
        assert_eq!(err.0, "line 3: expected value at column 7");
    }

    #[test]
    fn array_elements_become_single_line_events() {
        let body =
            Bytes::from_static(b" [ {\"a\": [1, {\"b\": \"],{\\\"\"}]},\n  {\n \"c\": 2\n }, 3 ]");
        let ev = events(&body, Format::Sniff).unwrap();
        assert_eq!(
            texts(&ev),
            ["{\"a\": [1, {\"b\": \"],{\\\"\"}]}", "{ \"c\": 2 }", "3"]
        );
        assert!(events(&Bytes::from_static(b"[]"), Format::Json)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn array_error_names_the_line() {
        let body = Bytes::from_static(b"[\n{},\n{]\n");
        let err = events(&body, Format::Json).unwrap_err();
        assert_eq!(err.0, "line 3: key must be a string at column 2");
    }

    #[test]
    fn ndjson_content_type_keeps_an_array_line_as_one_event() {
        let body = Bytes::from_static(b"[1,2]\n");
        assert_eq!(texts(&events(&body, Format::Ndjson).unwrap()), ["[1,2]"]);
    }
}
