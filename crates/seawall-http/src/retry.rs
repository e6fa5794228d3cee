//! The pause an upstream asks for: `retry-after-ms` (OpenAI's milliseconds), else
//! `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3).

use std::time::{Duration, SystemTime};

use crate::Fields;

/// Longest pause a hint may ask for; longer values are capped (callers cap further).
const MAX_HINT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The pause `fields` ask for: `retry-after-ms` when present and valid, else `Retry-After`
/// (seconds, or an HTTP-date relative to `now`; a date in the past is no pause). `None` when
/// neither is present or readable.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let mut h = http::HeaderMap::new();
/// h.insert("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT".parse().unwrap());
/// let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
/// assert_eq!(seawall_http::retry_after(&h, now), Some(Duration::from_secs(10)));
/// h.insert("retry-after-ms", "250".parse().unwrap());
/// assert_eq!(seawall_http::retry_after(&h, now), Some(Duration::from_millis(250)));
/// ```
pub fn retry_after(fields: &impl Fields, now: SystemTime) -> Option<Duration> {
    fields
        .first("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| parse_retry_after(fields.first("retry-after")?, now))
}

/// A `Retry-After` value: delta-seconds or an HTTP-date (relative to `now`).
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Digits only: too many of them is a very long pause, not an error.
        let secs = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_HINT));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HINT),
    )
}

/// A `retry-after-ms` value: milliseconds, possibly with a fraction.
pub fn parse_retry_after_ms(value: &[u8]) -> Option<Duration> {
    let ms: f64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        (ms / 1000.0).min(MAX_HINT.as_secs_f64()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn now() -> SystemTime {
        httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap()
    }

    #[test]
    fn reads_seconds_and_dates() {
        let read = |v: &str| parse_retry_after(v.as_bytes(), now());
        assert_eq!(read("120"), Some(Duration::from_secs(120)));
        assert_eq!(read(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            read("Sun, 06 Nov 1994 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        // RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(
            read("Sunday, 06-Nov-94 08:50:37 GMT"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            read("Sun Nov  6 08:50:37 1994"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(read("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(read("99999999999999999999999"), Some(MAX_HINT));
        for bad in ["soon", "", "-1", "1.5", "+3"] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn milliseconds_win_over_retry_after() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now()), None);
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", "1500.5".parse().unwrap());
        assert_eq!(
            retry_after(&h, now()),
            Some(Duration::from_micros(1_500_500))
        );
        // An unreadable `retry-after-ms` falls back to `retry-after`.
        h.insert("retry-after-ms", "later".parse().unwrap());
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after_ms(b"-5"), None);
        assert_eq!(parse_retry_after_ms(b"NaN"), None);
    }
}
