//! The flag service's JSON (Databricks' shape):
//! `{"flags":[{"name":"…","value":"true"}],"ttl_seconds":900}`.

use std::time::Duration;

use crate::{FetchError, FlagSet};

impl FlagSet {
    /// Decodes a flag service response. Values are normally strings; booleans and numbers are
    /// taken as their JSON text, other values are skipped.
    ///
    /// ```
    /// use std::time::Duration;
    /// let set = seawall_flags::FlagSet::from_json(br#"{"flags":[{"name":"a","value":"true"}],"ttl_seconds":60}"#)?;
    /// assert_eq!(set.flags, [("a".to_owned(), "true".to_owned())]);
    /// assert_eq!(set.ttl, Some(Duration::from_secs(60)));
    /// # Ok::<(), seawall_flags::FetchError>(())
    /// ```
    pub fn from_json(body: &[u8]) -> Result<FlagSet, FetchError> {
        decode(body)
    }
}

/// The response body, as sent.
#[derive(serde::Deserialize)]
struct Wire {
    #[serde(default)]
    flags: Vec<WireFlag>,
    ttl_seconds: Option<u64>,
}

#[derive(serde::Deserialize)]
struct WireFlag {
    name: String,
    value: serde_json::Value,
}

/// Decodes a flag response. Values are normally strings; booleans and numbers are taken as
/// their JSON text, other values are skipped.
fn decode(body: &[u8]) -> Result<FlagSet, FetchError> {
    let wire: Wire = serde_json::from_slice(body).map_err(|e| FetchError::Decode(e.to_string()))?;
    let flags = wire
        .flags
        .into_iter()
        .filter_map(|flag| {
            let value = match flag.value {
                serde_json::Value::String(text) => text,
                scalar @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_)) => {
                    scalar.to_string()
                }
                _ => return None,
            };
            Some((flag.name, value))
        })
        .collect();
    Ok(FlagSet {
        flags,
        ttl: wire.ttl_seconds.map(Duration::from_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_databricks_shape() {
        let body = br#"{"flags":[{"name":"a","value":"true"},{"name":"b","value":"x"}],
                        "ttl_seconds":900}"#;
        let set = decode(body).unwrap();
        assert_eq!(
            set.flags,
            [("a".into(), "true".into()), ("b".into(), "x".into())]
        );
        assert_eq!(set.ttl, Some(Duration::from_secs(900)));
    }

    #[test]
    fn tolerates_missing_fields_and_scalar_values() {
        let set = decode(br#"{"flags":[{"name":"a","value":false},{"name":"n","value":3},{"name":"o","value":{}}]}"#)
            .unwrap();
        assert_eq!(
            set.flags,
            [("a".into(), "false".into()), ("n".into(), "3".into())]
        );
        assert_eq!(set.ttl, None);
        assert_eq!(decode(b"{}").unwrap(), FlagSet::default());
    }

    #[test]
    fn refuses_what_is_not_the_shape() {
        for body in [
            &b"not json"[..],
            br#"{"flags":"x"}"#,
            br#"{"ttl_seconds":-1}"#,
        ] {
            assert!(matches!(decode(body), Err(FetchError::Decode(_))));
        }
    }
}
