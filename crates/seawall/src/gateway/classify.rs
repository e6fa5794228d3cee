//! Reading an upstream's verdict: `Retry-After` hints and OpenAI's `insufficient_quota`,
//! a 429 that says "pay", not "slow down".

use std::time::{Duration, SystemTime};

use serde_json::Value;

/// Largest error body read to look for `insufficient_quota`.
pub(crate) const ERROR_PEEK_LIMIT: usize = 64 * 1024;

/// The pause a `Retry-After` value asks for: delta-seconds or an HTTP-date (relative to
/// `now`; a date in the past is no pause).
pub(crate) fn retry_after(value: Option<&[u8]>, now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value?).ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Whether an OpenAI error body says the account is out of quota (`error.code` or
/// `error.type` is `insufficient_quota`).
pub(crate) fn is_insufficient_quota(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let error = &value["error"];
    ["code", "type"]
        .iter()
        .any(|field| error[field].as_str() == Some("insufficient_quota"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retry_after(v: &'static str) -> Option<&'static [u8]> {
        Some(v.as_bytes())
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            retry_after(with_retry_after("120"), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(with_retry_after("Sun, 06 Nov 1994 08:50:37 GMT"), now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after(with_retry_after("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(with_retry_after("soon"), now), None);
        assert_eq!(retry_after(None, now), None);
    }

    #[test]
    fn insufficient_quota_is_read_from_code_or_type() {
        assert!(is_insufficient_quota(
            br#"{"error":{"message":"x","type":"insufficient_quota","code":"insufficient_quota"}}"#
        ));
        assert!(is_insufficient_quota(
            br#"{"error":{"code":"insufficient_quota"}}"#
        ));
        assert!(!is_insufficient_quota(
            br#"{"error":{"code":"rate_limit_exceeded"}}"#
        ));
        assert!(!is_insufficient_quota(b"not json"));
    }
}
