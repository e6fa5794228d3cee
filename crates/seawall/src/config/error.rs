//! The configuration error type: every error names the field path and, where known, the
//! `line:column` it comes from.

use std::fmt;
use std::path::PathBuf;

/// A 1-based `line:column` position in the configuration source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column number (in characters), starting at 1.
    pub column: usize,
}

impl Position {
    /// Creates a position from a 1-based line and column.
    pub const fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Where in the configuration an error was found: a field path such as
/// `providers[0].timeouts.connect` (empty for the document root) and its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Dotted field path with `[index]` for sequence items; empty for the document itself.
    pub field: String,
    /// Source position, when the field is present in the file.
    pub position: Option<Position>,
}

impl fmt::Display for Location {
    /// Renders `field at line:column`, omitting whichever part is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.field.is_empty(), self.position) {
            (false, Some(pos)) => write!(f, ": {} at {pos}", self.field),
            (false, None) => write!(f, ": {}", self.field),
            (true, Some(pos)) => write!(f, " at {pos}"),
            (true, None) => Ok(()),
        }
    }
}

/// An error loading, parsing, validating or resolving the configuration.
///
/// Displayed as `config error: <field.path> at <line>:<column>: <what is wrong>`; the CLI maps
/// every variant to exit code 2.
///
/// ```
/// let err = seawall::config::parse("server: { listen: nowhere }").unwrap_err();
/// assert_eq!(err.path(), Some("server.listen"));
/// assert_eq!((err.line(), err.column()), (Some(1), Some(19)));
/// assert!(err.to_string().starts_with("config error: server.listen at 1:19: "));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("config error: cannot read {}: {source}", file.display())]
    Io {
        /// The file that was being read.
        file: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The source is not well-formed YAML.
    #[error("config error{location}: invalid YAML: {message}")]
    Syntax {
        /// Where the parser stopped (the path is the innermost node open at that point).
        location: Location,
        /// The parser's description of the problem.
        message: String,
    },
    /// A key is unknown, a value has the wrong type or format, or a value is impossible
    /// (out of range, contradicting another field, naming something that does not exist).
    #[error("config error{location}: {message}")]
    Invalid {
        /// The offending field.
        location: Location,
        /// What is wrong with it.
        message: String,
    },
    /// A `*_env` key names an environment variable that is unset or empty.
    #[error("config error{location}: environment variable `{variable}` is {problem}")]
    MissingSecret {
        /// The `*_env` field naming the variable.
        location: Location,
        /// The variable name.
        variable: String,
        /// `unset` or `empty`.
        problem: &'static str,
    },
}

impl ConfigError {
    fn location(&self) -> Option<&Location> {
        match self {
            Self::Io { .. } => None,
            Self::Syntax { location, .. }
            | Self::Invalid { location, .. }
            | Self::MissingSecret { location, .. } => Some(location),
        }
    }

    /// The field path the error refers to (`providers[0].kind`), when there is one.
    pub fn path(&self) -> Option<&str> {
        self.location()
            .map(|l| l.field.as_str())
            .filter(|f| !f.is_empty())
    }

    /// The source position of the error, when known.
    pub fn position(&self) -> Option<Position> {
        self.location().and_then(|l| l.position)
    }

    /// The 1-based line of the error, when known.
    pub fn line(&self) -> Option<usize> {
        self.position().map(|p| p.line)
    }

    /// The 1-based column of the error, when known.
    pub fn column(&self) -> Option<usize> {
        self.position().map(|p| p.column)
    }

    /// The description of the problem, without the `config error: path at line:col` prefix.
    pub fn message(&self) -> String {
        match self {
            Self::Io { source, .. } => source.to_string(),
            Self::Syntax { message, .. } => format!("invalid YAML: {message}"),
            Self::Invalid { message, .. } => message.clone(),
            Self::MissingSecret {
                variable, problem, ..
            } => format!("environment variable `{variable}` is {problem}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(field: &str, position: Option<Position>) -> ConfigError {
        ConfigError::Invalid {
            location: Location {
                field: field.into(),
                position,
            },
            message: "bad".into(),
        }
    }

    #[test]
    fn display_has_path_and_line_column() {
        let err = invalid("providers[2].name", Some(Position::new(7, 13)));
        assert_eq!(
            err.to_string(),
            "config error: providers[2].name at 7:13: bad"
        );
        assert_eq!(err.path(), Some("providers[2].name"));
        assert_eq!((err.line(), err.column()), (Some(7), Some(13)));
    }

    #[test]
    fn display_omits_unknown_parts() {
        assert_eq!(
            invalid("server", None).to_string(),
            "config error: server: bad"
        );
        assert_eq!(
            invalid("", Some(Position::new(1, 1))).to_string(),
            "config error at 1:1: bad"
        );
        assert_eq!(invalid("", None).path(), None);
    }

    #[test]
    fn missing_secret_names_the_variable() {
        let err = ConfigError::MissingSecret {
            location: Location {
                field: "admin.token_env".into(),
                position: Some(Position::new(3, 14)),
            },
            variable: "TOKEN".into(),
            problem: "unset",
        };
        assert_eq!(
            err.to_string(),
            "config error: admin.token_env at 3:14: environment variable `TOKEN` is unset"
        );
    }
}
