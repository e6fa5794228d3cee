//! A strict `Content-Length` (RFC 9110 §8.6, RFC 9112 §6.3): digits only, and every value
//! (and every element of a list) must agree. A proxy that guessed would invite smuggling.

use crate::Fields;

/// The `Content-Length` fields disagree or are not decimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid content-length")]
pub struct InvalidContentLength;

/// The length `fields` declare: `Ok(None)` without a `Content-Length`.
pub fn content_length(fields: &impl Fields) -> Result<Option<u64>, InvalidContentLength> {
    parse_content_length(fields.values("content-length"))
}

/// The length given by every `Content-Length` value in `values`.
///
/// ```
/// use seawall_http::{parse_content_length, InvalidContentLength};
/// assert_eq!(parse_content_length([&b"3"[..], b"3, 3"]), Ok(Some(3)));
/// assert_eq!(parse_content_length([&b"3"[..], b"4"]), Err(InvalidContentLength));
/// assert_eq!(parse_content_length([&b"+3"[..]]), Err(InvalidContentLength));
/// ```
pub fn parse_content_length<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<u64>, InvalidContentLength> {
    let mut length = None;
    for value in values {
        for item in value.split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
                return Err(InvalidContentLength);
            }
            let n = std::str::from_utf8(item)
                .ok()
                .and_then(|digits| digits.parse::<u64>().ok())
                .ok_or(InvalidContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(InvalidContentLength);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_agreeing_digits_are_a_length() {
        let parse = |values: &[&str]| parse_content_length(values.iter().map(|v| v.as_bytes()));
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&["0"]), Ok(Some(0)));
        assert_eq!(parse(&[" 12 "]), Ok(Some(12)));
        assert_eq!(parse(&["12", "12,12"]), Ok(Some(12)));
        for bad in [
            &["1", "2"][..],
            &["-1"],
            &["0x10"],
            &["1,"],
            &[""],
            &["99999999999999999999999"],
        ] {
            assert_eq!(parse(bad), Err(InvalidContentLength), "{bad:?}");
        }
    }
}
