//! `providers[].endpoints` entries: endpoint templates such as `/v1/threads/{id}/runs`, and the
//! bytes a normalised request path spells as themselves (the gateway's path rules use them too).

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::Deserialize;

/// Longest endpoint label (breaker key and metric label), in bytes: a template may not be
/// longer, and the gateway caps the labels it derives from request paths at this length.
pub const MAX_ENDPOINT_LEN: usize = 128;

/// RFC 3986 `unreserved` (`A-Z a-z 0-9 - . _ ~`): percent-encoding one changes nothing, so a
/// normalised path decodes it.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// A byte a normalised path segment carries as itself (RFC 3986 `pchar` less `%`):
/// unreserved, sub-delims (`! $ & ' ( ) * + , ; =`), `:` and `@`. Every other byte is
/// percent-encoded.
pub(crate) fn stands_for_itself(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// An endpoint template: a normalised path (leading `/`, no trailing `/`) whose `{name}`
/// segments each match any one path segment. A request whose path matches it is counted under
/// the template as written, in its breaker key and metric labels.
///
/// ```
/// use seawall::config::{EndpointTemplate, TemplateSegment};
/// let t: EndpointTemplate = "/v1/threads/{id}/runs".parse().unwrap();
/// assert_eq!(t.as_str(), "/v1/threads/{id}/runs");
/// assert_eq!(t.segments().nth(2), Some(TemplateSegment::Placeholder));
/// assert!("/v1/threads/{id}/".parse::<EndpointTemplate>().is_err());
/// assert!("/v1/%7Ex".parse::<EndpointTemplate>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
pub struct EndpointTemplate(String);

/// One segment of an [`EndpointTemplate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateSegment<'a> {
    /// Matches exactly this segment.
    Literal(&'a str),
    /// `{name}`: matches any one segment.
    Placeholder,
}

impl EndpointTemplate {
    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments between the `/`s (none for `/`).
    pub fn segments(&self) -> impl Iterator<Item = TemplateSegment<'_>> {
        self.0[1..]
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| match is_placeholder(s) {
                true => TemplateSegment::Placeholder,
                false => TemplateSegment::Literal(s),
            })
    }
}

impl fmt::Display for EndpointTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for EndpointTemplate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        check(text).map_err(|why| format!("invalid endpoint template {text:?}: {why}"))?;
        Ok(EndpointTemplate(text.to_owned()))
    }
}

impl TryFrom<String> for EndpointTemplate {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// Why `text` is not a template, if it is not.
fn check(text: &str) -> Result<(), String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err("it must start with `/`".into());
    };
    if text.len() > MAX_ENDPOINT_LEN {
        return Err(format!("it is longer than {MAX_ENDPOINT_LEN} bytes"));
    }
    if rest.is_empty() {
        return Ok(());
    }
    if rest.ends_with('/') {
        return Err(
            "it must not end with `/` (a trailing slash is not part of an endpoint)".into(),
        );
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err("it has an empty segment (`//`)".into());
        }
        if is_placeholder(segment) {
            continue;
        }
        if segment.contains(['{', '}']) {
            return Err(format!(
                "`{segment}`: a placeholder is a whole segment `{{name}}` of letters, digits and `_`"
            ));
        }
        if !segment.bytes().all(stands_for_itself) {
            return Err(format!(
                "`{segment}`: use letters, digits and `-._~!$&'()*+,;=:@` only (other characters \
                 are percent-encoded in request paths)"
            ));
        }
        let before_params = segment.split(';').next().unwrap_or_default();
        if matches!(before_params, "." | "..") {
            return Err("`.` and `..` segments never reach an endpoint".into());
        }
    }
    Ok(())
}

/// Whether `segment` is `{name}`, the name letters, digits and `_`.
fn is_placeholder(segment: &str) -> bool {
    segment
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .is_some_and(|name| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_normalised_paths_with_whole_segment_placeholders() {
        for good in [
            "/",
            "/v1/messages",
            "/v1/threads/{id}/runs/{run_id}",
            "/v1/models/{model}",
            "/openai/deployments/{deployment}/chat/completions",
            "/v1/x:batchGet",
            "/.well-known/x",
        ] {
            let t: EndpointTemplate = good.parse().unwrap();
            assert_eq!(t.as_str(), good);
        }
        for (bad, why) in [
            ("v1/messages", "start with `/`"),
            ("/v1/messages/", "must not end with `/`"),
            ("/v1//messages", "empty segment"),
            ("/v1/../x", "`.` and `..`"),
            ("/v1/./x", "`.` and `..`"),
            ("/v1/..;x/y", "`.` and `..`"),
            ("/v1/{}/x", "placeholder"),
            ("/v1/{a-b}/x", "placeholder"),
            ("/v1/x{id}", "placeholder"),
            ("/v1/%7Ex", "letters, digits"),
            ("/v1/a b", "letters, digits"),
            ("/v1/caf\u{e9}", "letters, digits"),
            ("/v1/x?y", "letters, digits"),
        ] {
            let err = bad.parse::<EndpointTemplate>().unwrap_err();
            assert!(err.starts_with(&format!("invalid endpoint template {bad:?}: ")));
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!("/{}", "a".repeat(MAX_ENDPOINT_LEN));
        assert!(long
            .parse::<EndpointTemplate>()
            .unwrap_err()
            .contains("longer than 128"));
    }

    #[test]
    fn segments_tell_literals_from_placeholders() {
        let t: EndpointTemplate = "/v1/threads/{id}/runs".parse().unwrap();
        let segments: Vec<_> = t.segments().collect();
        assert_eq!(
            segments,
            [
                TemplateSegment::Literal("v1"),
                TemplateSegment::Literal("threads"),
                TemplateSegment::Placeholder,
                TemplateSegment::Literal("runs"),
            ]
        );
        let root: EndpointTemplate = "/".parse().unwrap();
        assert_eq!(root.segments().count(), 0);
    }
}
