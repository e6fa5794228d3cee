//! Splits a gateway request path `/{provider}/{rest}?query` into its parts.

use http::Uri;

/// A request's route: which provider, and what to ask it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route<'a> {
    /// The first path segment.
    pub(crate) provider: &'a str,
    /// The rest of the path with its leading `/` (`/` when empty): the breaker's endpoint.
    pub(crate) endpoint: &'a str,
    /// The query string without `?`, if any.
    pub(crate) query: Option<&'a str>,
}

impl<'a> Route<'a> {
    /// The route of `uri`, or `None` when the path names no provider.
    pub(crate) fn parse(uri: &'a Uri) -> Option<Self> {
        let path = uri.path().strip_prefix('/')?;
        let (provider, endpoint) = match path.find('/') {
            Some(i) => (&path[..i], &path[i..]),
            None => (path, "/"),
        };
        if provider.is_empty() {
            return None;
        }
        Some(Route {
            provider,
            endpoint,
            query: uri.query(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<(String, String, Option<String>)> {
        let uri: Uri = s.parse().unwrap();
        Route::parse(&uri).map(|r| {
            (
                r.provider.to_owned(),
                r.endpoint.to_owned(),
                r.query.map(str::to_owned),
            )
        })
    }

    #[test]
    fn splits_provider_endpoint_and_query() {
        assert_eq!(
            parse("/anthropic/v1/messages?beta=true"),
            Some((
                "anthropic".into(),
                "/v1/messages".into(),
                Some("beta=true".into())
            ))
        );
        assert_eq!(parse("/openai"), Some(("openai".into(), "/".into(), None)));
        assert_eq!(parse("/openai/"), Some(("openai".into(), "/".into(), None)));
        assert_eq!(parse("/"), None);
        assert_eq!(parse("//x"), None);
    }
}
