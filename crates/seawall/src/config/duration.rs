//! Durations written as `30s`, `15m`, `500ms` or `1h 30m` (parsed by `humantime`).

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// Parses a human-readable duration such as `30s`, `15m`, `500ms` or `1h 30m`.
///
/// A unit is required; negative values are rejected.
///
/// ```
/// use std::time::Duration;
/// use seawall::config::duration::parse;
/// assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
/// assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
/// assert!(parse("30").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| {
        format!("invalid duration {text:?} (expected e.g. `500ms`, `30s`, `15m`, `1h`): {err}")
    })
}

/// Serde adapter for a `Duration` field: `#[serde(with = "duration")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse(&text).map_err(D::Error::custom)
}

/// Serde adapter, the other way: `30s`, `1h 30m` (for the defaults of `seawall schema`).
pub fn serialize<S: Serializer>(duration: &Duration, ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_str(&humantime::format_duration(*duration))
}

/// Serde adapter for an `Option<Duration>` field.
pub mod option {
    use super::*;

    /// Serialises `None` as `null` and a duration as [`super::serialize`] does.
    pub fn serialize<S: Serializer>(
        duration: &Option<Duration>,
        ser: S,
    ) -> Result<S::Ok, S::Error> {
        match duration {
            Some(d) => super::serialize(d, ser),
            None => ser.serialize_none(),
        }
    }

    /// Deserialises `null`/`~` as `None` and anything else as a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(de)?
            .map(|text| parse(&text).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_units() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_missing_unit_negative_and_garbage() {
        for bad in ["30", "-5s", "5 parsecs", "", "fast"] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid duration {bad:?}")),
                "{err}"
            );
        }
    }
}
