//! Reading `/metrics`: the samples of a Prometheus text exposition, by series or by prefix.

use std::fmt;
use std::str::FromStr;

/// A Prometheus text exposition.
pub struct Exposition(String);

impl Exposition {
    /// The exposition `text`, as `/metrics` or `Metrics::encode` gave it.
    pub fn new(text: String) -> Self {
        Exposition(text)
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// Whether the text has `needle` anywhere (a whole `series value` line, say).
    pub fn contains(&self, needle: &str) -> bool {
        self.0.contains(needle)
    }

    /// The sample line of exactly `series` (name and labels), if any.
    pub fn line(&self, series: &str) -> Option<&str> {
        self.0
            .lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series))
    }

    /// The value of exactly `series`, parsed as `T`; panics when it is missing or unparsable.
    pub fn value<T: FromStr>(&self, series: &str) -> T {
        let line = self
            .line(series)
            .unwrap_or_else(|| panic!("no {series} in\n{self}"));
        let value = line.rsplit(' ').next().unwrap();
        value
            .parse()
            .unwrap_or_else(|_| panic!("{series} has the value {value:?}"))
    }

    /// `(series, value)` of every sample whose series starts with `prefix`.
    pub fn samples<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0
            .lines()
            .filter(move |l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(series, value)| (series, value.parse().unwrap()))
    }
}

impl fmt::Display for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
