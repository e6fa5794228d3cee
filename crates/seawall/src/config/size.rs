//! Byte sizes written as `10MB`, `512KiB` or `1048576` (parsed by `bytesize`).
//!
//! **Units are binary.** `KB`, `MB`, `GB`, `TB` (any case, with or without the `B`) mean
//! 2^10, 2^20, 2^30 and 2^40 bytes, exactly like `KiB`, `MiB`, `GiB`, `TiB`: operators writing
//! `memory_threshold: 1024MB` or `max_body: 10MB` mean mebibytes. A bare number is bytes.

use bytesize::ByteSize;
use serde::de::{self, Deserializer, Visitor};

/// Parses a byte size; decimal-looking units are read as binary (`1MB` = 1 048 576 bytes).
///
/// ```
/// use seawall::config::size::parse;
/// assert_eq!(parse("1024MB"), Ok(1 << 30));
/// assert_eq!(parse("10MiB"), Ok(10 << 20));
/// assert_eq!(parse("512"), Ok(512));
/// assert!(parse("ten megs").is_err());
/// ```
pub fn parse(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let unit = unit.trim();
    let binary = match unit.to_ascii_lowercase().as_str() {
        "k" | "kb" => "KiB",
        "m" | "mb" => "MiB",
        "g" | "gb" => "GiB",
        "t" | "tb" => "TiB",
        _ => unit,
    };
    let fail = || {
        format!("invalid size {text:?} (expected e.g. `512KB`, `10MB`, `1GB`; units are binary, 1MB = 1048576 bytes)")
    };
    if number.is_empty() {
        return Err(fail());
    }
    format!("{number}{binary}")
        .parse::<ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| fail())
}

/// Serde adapter for a byte-size field (`u64` bytes): `#[serde(with = "size")]`.
///
/// Accepts a string with a unit or a plain integer number of bytes.
pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    de.deserialize_any(SizeVisitor)
}

/// Serde adapter, the other way: a size as the file would say it (`10MB`, or bytes when no
/// unit divides it), for the defaults of `seawall schema`.
pub fn serialize<S: serde::Serializer>(bytes: &u64, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&format(*bytes))
}

/// `bytes` with the largest binary unit that divides it: `10MB`, `1GB`, `1536` bytes as `1536`.
///
/// ```
/// use seawall::config::size::{format, parse};
/// assert_eq!(format(10 << 20), "10MB");
/// assert_eq!(format(1536), "1536");
/// assert_eq!(parse(&format(3 << 30)), Ok(3 << 30));
/// ```
pub fn format(bytes: u64) -> String {
    for (shift, unit) in [(40, "TB"), (30, "GB"), (20, "MB"), (10, "KB")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a byte size such as `10MB`")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_spellings_are_binary() {
        assert_eq!(parse("10MB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse("10 mb"), Ok(10 * 1024 * 1024));
        assert_eq!(parse("1GB"), Ok(1 << 30));
        assert_eq!(parse("64k"), Ok(64 * 1024));
        assert_eq!(parse("1.5KB"), Ok(1536));
    }

    #[test]
    fn binary_units_and_bytes() {
        assert_eq!(parse("1MiB"), Ok(1 << 20));
        assert_eq!(parse("100B"), Ok(100));
        assert_eq!(parse("0"), Ok(0));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "MB", "-1MB", "10 furlongs", "1e9"] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with(&format!("invalid size {bad:?}")), "{err}");
        }
    }
}
