//! Turns an ingest body into events, strictly: each event is a JSON object, its strings valid
//! UTF-8 (escapes included), nested at most `max_depth` deep. NDJSON (one object per line,
//! blank lines skipped), one JSON array of objects, or one object. The result is NDJSON text,
//! one event per line: the body itself when it already is exactly that, else a compact copy.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The body is not valid input; the message names the line (1-based).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadInput(pub(crate) String);

/// The request's `content-type` is not one ingest reads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unsupported(pub(crate) String);

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/x-ndjson` (or `application/jsonl`, `application/ndjson`): one per line.
    Ndjson,
    /// `application/json`: an array of events, or one event.
    Json,
    /// No content type: an array if the body starts with `[`, else NDJSON.
    Sniff,
}

impl Format {
    /// The format a `content-type` value announces; another type, or a charset other than
    /// UTF-8, is [`Unsupported`].
    pub(crate) fn from_content_type(ct: Option<&str>) -> Result<Format, Unsupported> {
        let Some(ct) = ct else {
            return Ok(Format::Sniff);
        };
        let mut parts = ct.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let format = match essence.as_str() {
            "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Format::Ndjson,
            "application/json" => Format::Json,
            _ => {
                return Err(Unsupported(format!(
                    "content-type {ct:?} is not accepted: send application/json, \
                     application/x-ndjson or application/jsonl"
                )))
            }
        };
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            let value = value.trim().trim_matches('"');
            if name.trim().eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8") {
                return Err(Unsupported(format!(
                    "charset {value:?} is not accepted: events are UTF-8"
                )));
            }
        }
        Ok(format)
    }
}

/// Events as NDJSON text and their count.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Events {
    pub(crate) text: Vec<u8>,
    pub(crate) count: usize,
}

/// The events in `body`, or the first problem. All or nothing.
pub(crate) fn events(body: Vec<u8>, format: Format, max_depth: u32) -> Result<Events, BadInput> {
    let starts_array = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    match format {
        Format::Ndjson => ndjson(body, max_depth),
        Format::Json | Format::Sniff if starts_array => array(&body, max_depth),
        Format::Json => single(&body, max_depth),
        Format::Sniff => ndjson(body, max_depth),
    }
}

fn ndjson(mut body: Vec<u8>, max_depth: u32) -> Result<Events, BadInput> {
    let utf8 = std::str::from_utf8(&body).is_ok();
    let (mut count, mut size, mut clean) = (0, 0, true);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let (from, to) = trim(line);
        if from == to {
            // Blank, or the empty rest after a final line break.
            clean &= line.is_empty();
            continue;
        }
        clean &= (from, to) == (0, line.len());
        let event = &line[from..to];
        if !(utf8 && plainly_valid(event, max_depth)) {
            check(event, max_depth).map_err(|e| bad(i + 1, e.line(), from, &e))?;
        }
        count += 1;
        size += to - from + 1;
    }
    if clean {
        if body.last().is_some_and(|&b| b != b'\n') {
            body.push(b'\n');
        }
        return Ok(Events { text: body, count });
    }
    let mut text = Vec::with_capacity(size);
    for line in body.split(|&b| b == b'\n') {
        let (from, to) = trim(line);
        if from < to {
            text.extend_from_slice(&line[from..to]);
            text.push(b'\n');
        }
    }
    Ok(Events { text, count })
}

fn single(body: &[u8], max_depth: u32) -> Result<Events, BadInput> {
    let (from, to) = trim(body);
    if from == to {
        return Ok(Events {
            text: Vec::new(),
            count: 0,
        });
    }
    check(&body[from..to], max_depth).map_err(|e| {
        let line = line_of(body, from);
        bad(line + e.line() - 1, e.line(), column_of(body, from), &e)
    })?;
    let mut text = Vec::with_capacity(to - from + 1);
    push_one_line(&mut text, &body[from..to]);
    Ok(Events { text, count: 1 })
}

/// Splits the array with serde (each element's exact text), then checks each element.
fn array(body: &[u8], max_depth: u32) -> Result<Events, BadInput> {
    let elements: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| bad(e.line(), e.line(), 0, &e))?;
    let mut text = Vec::with_capacity(body.len());
    for raw in &elements {
        let element = raw.get().as_bytes();
        // Where the element starts in the body: serde borrowed it from there.
        let at = element.as_ptr() as usize - body.as_ptr() as usize;
        check(element, max_depth).map_err(|e| {
            let line = line_of(body, at);
            bad(line + e.line() - 1, e.line(), column_of(body, at), &e)
        })?;
        push_one_line(&mut text, element);
    }
    text.shrink_to_fit();
    Ok(Events {
        text,
        count: elements.len(),
    })
}

/// The fast path: whether `event` (from a body known to be valid UTF-8) is certainly an event
/// [`check`] accepts. Syntax is checked by skipping the value, which does not look into
/// strings; that is enough when the text is UTF-8, holds no `\u` escape (which could be a
/// lone surrogate), starts with `{` and has no more brackets than `max_depth` (so it cannot
/// nest deeper). Anything else, valid or not, is left to [`check`], which also words the error.
fn plainly_valid(event: &[u8], max_depth: u32) -> bool {
    event.first() == Some(&b'{')
        && memchr::memchr_iter(b'\\', event).all(|at| event.get(at + 1) != Some(&b'u'))
        && memchr::memchr2_iter(b'{', b'[', event).count() <= max_depth as usize
        && serde_json::from_slice::<serde::de::IgnoredAny>(event).is_ok()
}

/// Checks that `event` is one JSON object, strictly.
fn check(event: &[u8], max_depth: u32) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(event);
    de::Deserializer::deserialize_map(
        &mut de,
        Strict {
            depth: 1,
            max_depth,
        },
    )?;
    de.end()
}

/// Appends a valid JSON value on one line. Raw line breaks cannot occur inside JSON strings,
/// so in a valid value they are whitespace between tokens and can be left out.
fn push_one_line(out: &mut Vec<u8>, value: &[u8]) {
    if memchr::memchr2(b'\n', b'\r', value).is_some() {
        out.extend(value.iter().filter(|&&b| b != b'\n' && b != b'\r'));
    } else {
        out.extend_from_slice(value);
    }
    out.push(b'\n');
}

/// Visits a value at `depth` (the event object is depth 1): strings and keys are read as
/// `str`, so serde_json checks their UTF-8 and escapes; containers deeper than `max_depth`
/// are refused.
#[derive(Clone, Copy)]
struct Strict {
    depth: u32,
    max_depth: u32,
}

impl Strict {
    fn nested<E: de::Error>(self) -> Result<Strict, E> {
        if self.depth > self.max_depth {
            return Err(E::custom(format!(
                "nested deeper than max_depth ({})",
                self.max_depth
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.depth == 1 {
            "a JSON object"
        } else {
            "a JSON value"
        })
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while map.next_key_seed(Key)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

/// A map key, read as `str` so that serde_json checks it like any string.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Key {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
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

/// The 1-based line of byte `at`.
fn line_of(body: &[u8], at: usize) -> usize {
    1 + memchr::memchr_iter(b'\n', &body[..at]).count()
}

/// The 0-based column of byte `at` in its line.
fn column_of(body: &[u8], at: usize) -> usize {
    at - memchr::memrchr(b'\n', &body[..at]).map_or(0, |p| p + 1)
}

/// `line 3: expected value at column 5`, from serde's `expected value at line 1 column 5`;
/// `shift` columns are added on the error's own first line (`error_line`).
fn bad(line: usize, error_line: usize, shift: usize, e: &serde_json::Error) -> BadInput {
    let text = e.to_string();
    let message = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let column = e.column() + if error_line <= 1 { shift } else { 0 };
    BadInput(format!("line {line}: {message} at column {column}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8], format: Format) -> Result<String, String> {
        events(body.to_vec(), format, 64)
            .map(|e| String::from_utf8(e.text).unwrap())
            .map_err(|e| e.0)
    }

    #[test]
    fn ndjson_skips_blank_lines_and_trims_crlf() {
        let body = b"{\"a\":1}\r\n\n  \n {\"b\": [2, 3]} \n{\"c\":\"x\"}";
        assert_eq!(
            parse(body, Format::Sniff).unwrap(),
            "{\"a\":1}\n{\"b\": [2, 3]}\n{\"c\":\"x\"}\n"
        );
        let e = events(body.to_vec(), Format::Sniff, 64).unwrap();
        assert_eq!(e.count, 3);
        assert_eq!(e.text.capacity(), e.text.len(), "a compact copy");
    }

    #[test]
    fn clean_ndjson_is_kept_as_it_came() {
        let body = b"{\"a\":1}\n{}\n".to_vec();
        let at = body.as_ptr();
        let e = events(body, Format::Ndjson, 64).unwrap();
        assert_eq!((e.text.as_ptr(), e.count), (at, 2));
    }

    #[test]
    fn ndjson_error_names_the_line_and_column() {
        let err = parse(b"{}\n{}\n{\"a\": }\n", Format::Ndjson).unwrap_err();
        assert_eq!(err, "line 3: expected value at column 7");
    }

    #[test]
    fn only_objects_are_events() {
        for (body, what) in [
            (&b"\"x\""[..], "string \"x\""),
            (b"3", "integer `3`"),
            (b"null", "null"),
            (b"[1,2]", "sequence"),
        ] {
            let err = parse(body, Format::Ndjson).unwrap_err();
            let expected = format!("line 1: invalid type: {what}, expected a JSON object");
            assert!(err.starts_with(&expected), "{err}");
        }
        let err = parse(b"[{}, 3]", Format::Json).unwrap_err();
        assert!(
            err.starts_with("line 1: invalid type: integer `3`"),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8_and_lone_surrogates_are_refused() {
        let err = parse(b"{}\n{\"id\":\"\xff\"}\n", Format::Ndjson).unwrap_err();
        assert!(
            err.starts_with("line 2: invalid unicode code point"),
            "{err}"
        );
        let err = parse(b"{\"\xc3\":1}", Format::Ndjson).unwrap_err();
        assert!(
            err.starts_with("line 1: invalid unicode code point"),
            "{err}"
        );
        for lone in [&br#"{"a":"\ud800"}"#[..], br#"{"a":"\udc00 x"}"#] {
            let err = parse(lone, Format::Ndjson).unwrap_err();
            assert!(err.contains("escape") || err.contains("surrogate"), "{err}");
        }
    }

    #[test]
    fn nesting_is_bounded_by_max_depth() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(events(deep(4).into_bytes(), Format::Ndjson, 4).is_ok());
        let err = events(deep(5).into_bytes(), Format::Ndjson, 4).unwrap_err();
        assert_eq!(
            err.0,
            "line 1: nested deeper than max_depth (4) at column 9"
        );
        let bomb = format!("{{\"a\":{}", "[".repeat(10_000));
        let err = events(bomb.into_bytes(), Format::Ndjson, 64).unwrap_err();
        assert!(
            err.0.contains("nested deeper than max_depth (64)"),
            "{}",
            err.0
        );
        assert!(events(deep(100).into_bytes(), Format::Ndjson, 100).is_ok());
    }

    #[test]
    fn the_fast_path_never_accepts_what_the_strict_check_refuses() {
        let cases: [&[u8]; 9] = [
            br#"{"a":"quote \" inside","b":[1,{"c":null}]}"#,
            br#"{"a":"\ud83d\ude00"}"#,
            br#"{"a":"\ud800"}"#,
            br#"{"a":"[[[[ not nesting ]]]]"}"#,
            br#"{"a":[[[[1]]]]}"#,
            br#"{"a":1} trailing"#,
            br#"{"a":01}"#,
            br#"["not an object"]"#,
            br#"{"a":"\x"}"#,
        ];
        for event in cases {
            let strict = check(event, 4).is_ok();
            assert!(
                !plainly_valid(event, 4) || strict,
                "{:?}",
                String::from_utf8_lossy(event)
            );
            let whole = events(event.to_vec(), Format::Ndjson, 4).is_ok();
            assert_eq!(whole, strict, "{:?}", String::from_utf8_lossy(event));
        }
    }

    #[test]
    fn array_elements_become_single_line_events() {
        let body = b" [ {\"a\": [1, {\"b\": \"],{\\\"\"}]},\n  {\n \"c\": 2\n } ]";
        assert_eq!(
            parse(body, Format::Sniff).unwrap(),
            "{\"a\": [1, {\"b\": \"],{\\\"\"}]}\n{ \"c\": 2 }\n"
        );
        assert_eq!(parse(b"[]", Format::Json).unwrap(), "");
        assert_eq!(
            parse(b" {\"x\":\n1} ", Format::Json).unwrap(),
            "{\"x\":1}\n"
        );
    }

    #[test]
    fn array_errors_name_the_line_and_column_in_the_body() {
        let err = parse(b"[\n{},\n{]\n", Format::Json).unwrap_err();
        assert_eq!(err, "line 3: key must be a string at column 2");
        let err = parse(b"[\n{},\n  {\"a\":[[1]]}]", Format::Json);
        assert!(err.is_ok());
        let err = events(b"[\n{},\n  {\"a\":[[1]]}]".to_vec(), Format::Json, 2).unwrap_err();
        assert_eq!(
            err.0,
            "line 3: nested deeper than max_depth (2) at column 9"
        );
    }

    #[test]
    fn content_types() {
        use Format::*;
        for (ct, format) in [
            (None, Sniff),
            (Some("application/json; charset=UTF-8"), Json),
            (Some("application/x-ndjson"), Ndjson),
            (Some("Application/JSONL"), Ndjson),
        ] {
            assert_eq!(Format::from_content_type(ct), Ok(format), "{ct:?}");
        }
        for ct in [
            "text/xml",
            "text/plain",
            "application/json; charset=utf-16",
            "",
        ] {
            assert!(Format::from_content_type(Some(ct)).is_err(), "{ct}");
        }
    }
}
