//! A map from field paths (`providers[0].timeouts.connect`) to their `line:column`, built
//! from the YAML event stream, so errors found after deserialisation still carry positions.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Marker, Parser};

use super::error::{Location, Position};

/// One node of the document: its path, the position of its key (for mapping values) and
/// the range of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: String,
    key: Option<Position>,
    start: Position,
    end: Position,
}

/// Field path → position index of one YAML document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpanMap {
    /// Nodes in document order (parents before their children).
    entries: Vec<Entry>,
    /// Path → index of its first entry in `entries`.
    by_path: HashMap<String, usize>,
}

/// A YAML syntax error found while building the map, with the innermost path open at that point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser stopped.
    pub location: Location,
    /// The parser's message.
    pub message: String,
}

enum Frame {
    Map {
        path: String,
        /// Index into `entries` of the mapping node itself.
        entry: usize,
        /// The key whose value comes next, with its position; `None` while a key is expected.
        pending_key: Option<(String, Position)>,
    },
    Seq {
        path: String,
        entry: usize,
        next_index: usize,
    },
}

fn position(marker: Marker) -> Position {
    Position::new(marker.line(), marker.col() + 1)
}

/// Appends a mapping key to a path.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Appends a sequence index to a path.
pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

impl SpanMap {
    /// Builds the map of the first document of `src`.
    pub fn build(src: &str) -> Result<Self, SyntaxError> {
        let mut map = Self::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(src) {
            let (event, span) = match item {
                Ok(pair) => pair,
                Err(err) => {
                    let at = position(*err.marker());
                    let field = match map.value_at(at).or_else(|| map.key_at(at)) {
                        Some(path) => path.to_owned(),
                        None => current_path(&stack),
                    };
                    return Err(SyntaxError {
                        location: Location {
                            field,
                            position: Some(at),
                        },
                        message: err.info(),
                    });
                }
            };
            let start = position(span.start);
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map {
                        pending_key: pending @ None,
                        path,
                        ..
                    }) = stack.last_mut()
                    {
                        *pending = Some((join_key(path, &value), start));
                    } else {
                        map.node(&mut stack, start, position(span.end));
                    }
                }
                Event::Alias(_) => {
                    map.node(&mut stack, start, position(span.end));
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    let (path, entry) = map.node(&mut stack, start, start);
                    stack.push(if is_map {
                        Frame::Map {
                            path,
                            entry,
                            pending_key: None,
                        }
                    } else {
                        Frame::Seq {
                            path,
                            entry,
                            next_index: 0,
                        }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    if let Some(Frame::Map { entry, .. } | Frame::Seq { entry, .. }) = stack.pop() {
                        if entry < map.entries.len() {
                            map.entries[entry].end = position(span.end);
                        }
                    }
                }
                Event::DocumentEnd => break,
                _ => {}
            }
        }
        Ok(map)
    }

    /// Records a value node at the current place in `stack`; returns its path and entry index.
    fn node(&mut self, stack: &mut [Frame], start: Position, end: Position) -> (String, usize) {
        let (path, key) = match stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Seq {
                path, next_index, ..
            }) => {
                let p = join_index(path, *next_index);
                *next_index += 1;
                (p, None)
            }
            // A complex (non-scalar) key: not addressable by a path, recorded under a marker.
            Some(Frame::Map {
                path,
                pending_key: pending @ None,
                ..
            }) => {
                *pending = Some((join_key(path, "?"), start));
                (join_key(path, "?"), Some(start))
            }
            Some(Frame::Map { pending_key, .. }) => match pending_key.take() {
                Some((p, k)) => (p, Some(k)),
                None => (String::new(), None),
            },
        };
        let index = self.entries.len();
        self.by_path.entry(path.clone()).or_insert(index);
        self.entries.push(Entry {
            path: path.clone(),
            key,
            start,
            end,
        });
        (path, index)
    }

    /// Whether `path` appears in the document.
    pub fn contains(&self, path: &str) -> bool {
        self.by_path.contains_key(path)
    }

    /// The position of the value at `path` (the first one, if a key is repeated).
    pub fn value_position(&self, path: &str) -> Option<Position> {
        self.by_path.get(path).map(|&i| self.entries[i].start)
    }

    /// The position of `path`'s value, or of its nearest ancestor present in the document.
    pub fn nearest_position(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.value_position(p) {
                return Some(pos);
            }
            p = parent(p)?;
        }
    }

    /// The path of the mapping key that starts exactly at `pos`.
    pub fn key_at(&self, pos: Position) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key == Some(pos))
            .map(|e| e.path.as_str())
    }

    /// The path of the innermost value that starts exactly at `pos`.
    pub fn value_at(&self, pos: Position) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start == pos)
            .map(|e| e.path.as_str())
    }

    /// The path of the innermost node whose key or value range contains `pos`.
    pub fn enclosing(&self, pos: Position) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key.unwrap_or(e.start) <= pos && pos <= e.end)
            .map(|e| e.path.as_str())
    }
}

/// The path one level up (`a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``); `None` at the root.
pub fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// The path of the node being parsed when an error interrupts the stream.
fn current_path(stack: &[Frame]) -> String {
    match stack.last() {
        None => String::new(),
        Some(Frame::Map {
            pending_key: Some((p, _)),
            ..
        }) => p.clone(),
        Some(Frame::Map { path, .. }) => path.clone(),
        Some(Frame::Seq {
            path, next_index, ..
        }) => join_index(path, *next_index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
server:
  listen: 127.0.0.1:8080
providers:
  - name: a
    fallbacks: [b, c]
  - { name: b, timeouts: { connect: 5s } }
";

    #[test]
    fn records_block_and_flow_positions() {
        let map = SpanMap::build(DOC).unwrap();
        assert_eq!(
            map.value_position("server.listen"),
            Some(Position::new(2, 11))
        );
        assert_eq!(
            map.value_position("providers[0].name"),
            Some(Position::new(4, 11))
        );
        assert_eq!(
            map.value_position("providers[0].fallbacks[1]"),
            Some(Position::new(5, 20))
        );
        assert_eq!(
            map.value_position("providers[1].timeouts.connect"),
            Some(Position::new(6, 37))
        );
        assert_eq!(
            map.key_at(Position::new(6, 28)),
            Some("providers[1].timeouts.connect")
        );
        assert_eq!(map.value_at(Position::new(4, 5)), Some("providers[0]"));
    }

    #[test]
    fn nearest_position_falls_back_to_ancestor() {
        let map = SpanMap::build(DOC).unwrap();
        assert_eq!(
            map.nearest_position("providers[1].timeouts.idle"),
            Some(Position::new(6, 26))
        );
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }

    #[test]
    fn syntax_error_reports_open_path() {
        let err = SpanMap::build("server:\n  listen: [a\n").unwrap_err();
        assert_eq!(err.location.field, "server.listen");
        assert_eq!(err.location.position, Some(Position::new(2, 11)));
        let err = SpanMap::build("server:\n  a: 1\n  b: [x, y\nz: 2\n").unwrap_err();
        // The plain scalar `y z` runs into `:` on the next line: item [1] is the broken one.
        assert_eq!(err.location.field, "server.b[1]");
        assert_eq!(err.location.position, Some(Position::new(4, 2)));
    }
}
