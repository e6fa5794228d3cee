//! `parse` and `load`: YAML text → validated [`Config`], errors positioned via the [`SpanMap`].

use std::path::Path;

use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use super::error::{ConfigError, Location, Position};
use super::model::Config;
use super::spans::{join_key, parent, SpanMap};
use super::validate::validate;

/// Parses and validates a configuration from YAML text. Secrets are not read; see
/// [`Config::resolve_secrets`].
///
/// ```
/// let config = seawall::config::parse("server: { listen: 127.0.0.1:8081 }").unwrap();
/// assert_eq!(config.server.listen.port(), 8081);
/// ```
pub fn parse(src: &str) -> Result<Config, ConfigError> {
    let spans = SpanMap::build(src).map_err(|e| ConfigError::Syntax {
        location: e.location,
        message: e.message,
    })?;
    // Every section is optional, so a file with nothing in it (or only comments) is every
    // default, as an empty mapping is.
    let document = if spans.value_position("").is_none() || is_blank(src) {
        "{}"
    } else {
        src
    };
    let mut config: Config =
        serde_saphyr::from_str(document).map_err(|e| deserialize_error(&e, &spans))?;
    config.spans = spans;
    validate(&config)?;
    Ok(config)
}

/// Whether `src` holds no node: only blank lines, comments and document markers.
fn is_blank(src: &str) -> bool {
    src.lines().all(|line| {
        let line = line.trim();
        let marker = ["---", "..."]
            .iter()
            .find_map(|m| line.strip_prefix(m))
            .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace));
        let rest = marker.map_or(line, str::trim_start);
        rest.is_empty() || rest.starts_with('#')
    })
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: path.to_owned(),
        source,
    })?;
    let mut config = parse(&src)?;
    config.source = Some(path.to_owned());
    Ok(config)
}

/// Turns a serde-saphyr error into a [`ConfigError`], finding the field path from its position.
fn deserialize_error(err: &serde_saphyr::Error, spans: &SpanMap) -> ConfigError {
    let err = err.without_snippet();
    let position = err.location().map(|l| {
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Position::new(to_usize(l.line()), to_usize(l.column()))
    });
    let message = plain_message(&UserMessageFormatter.format_message(err));
    let (field, better) = position
        .and_then(|pos| field_at(spans, pos, &message))
        .unwrap_or_default();
    ConfigError::Invalid {
        location: Location {
            field,
            position: better.or(position),
        },
        message,
    }
}

/// Rewrites the few parser messages that name Rust types or parser events.
fn plain_message(message: &str) -> String {
    let max = match message {
        "invalid u8" => u64::from(u8::MAX),
        "invalid u16" => u64::from(u16::MAX),
        "invalid u32" => u64::from(u32::MAX),
        "invalid u64" => u64::MAX,
        "expected sequence start" => return "expected a list".to_owned(),
        "expected mapping start" => return "expected a mapping of keys to values".to_owned(),
        other => return other.to_owned(),
    };
    format!("expected a whole number from 0 to {max}")
}

/// The field an error at `pos` is about, and a better position for it if there is one: the
/// key itself for key errors, the missing field under its mapping (serde-saphyr reports the
/// mapping's last key), otherwise the value starting there or the innermost node around it.
fn field_at(spans: &SpanMap, pos: Position, message: &str) -> Option<(String, Option<Position>)> {
    if message.starts_with("unknown field") || message.starts_with("duplicate mapping key") {
        if let Some(key) = spans.key_at(pos) {
            return Some((key.to_owned(), None));
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let missing = rest.split('`').next().unwrap_or_default();
        let mapping = match spans.key_at(pos) {
            Some(key) => parent(key).unwrap_or_default(),
            None => spans.value_at(pos).or_else(|| spans.enclosing(pos))?,
        };
        return Some((join_key(mapping, missing), spans.value_position(mapping)));
    }
    spans
        .value_at(pos)
        .or_else(|| spans.key_at(pos))
        .or_else(|| spans.enclosing(pos))
        .map(|path| (path.to_owned(), None))
}
