//! OpenAI's `insufficient_quota`: a 429 that says "pay", not "slow down".

use serde_json::Value;

/// Largest error body read to look for `insufficient_quota`.
pub(crate) const ERROR_PEEK_LIMIT: usize = 64 * 1024;

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
