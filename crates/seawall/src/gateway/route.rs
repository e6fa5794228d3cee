//! Splits a gateway request path `/{provider}/{rest}?query` into its parts, once the path is in
//! normal form (the rules are in [`path`](super::path)).

use std::borrow::Cow;

use http::Uri;

use super::answers;
use super::path::{self, PathError};
use crate::message::Body;
use crate::metrics::Metrics;

/// A request's route: which provider, and what to ask it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route<'a> {
    /// The whole path in normal form (borrowed when it arrived so).
    normal: Cow<'a, str>,
    /// Where the provider segment ends in `normal`.
    split: usize,
    /// The query string without `?`, if any, as the client sent it.
    pub(crate) query: Option<&'a str>,
}

/// Why a request has no route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unrouted {
    /// The path names no provider (`/`, `*`).
    NoProvider,
    /// The path is refused by the path rules.
    Refused(PathError),
}

impl From<PathError> for Unrouted {
    fn from(e: PathError) -> Self {
        Unrouted::Refused(e)
    }
}

/// How much of a refused path a log line shows.
const LOGGED_PATH: usize = 256;

impl Unrouted {
    /// The answer to a request to `uri` that has no route (`404`, or `400` for a refused path,
    /// counted in `seawall_refused_paths_total` and logged at debug level).
    pub(crate) fn answer(self, uri: &Uri, metrics: &Metrics) -> http::Response<Body> {
        match self {
            Unrouted::NoProvider => answers::unknown_provider(None),
            Unrouted::Refused(e) => {
                metrics.count_refused_path(e.reason());
                let path = uri.path();
                let mut end = path.len().min(LOGGED_PATH);
                while !path.is_char_boundary(end) {
                    end -= 1;
                }
                let shown = &path[..end];
                tracing::debug!(reason = e.reason(), path = shown, "request path refused");
                answers::invalid_path(e)
            }
        }
    }
}

impl<'a> Route<'a> {
    /// The route of `uri`, its path in normal form.
    pub(crate) fn parse(uri: &'a Uri) -> Result<Self, Unrouted> {
        let path = uri.path();
        if !path.starts_with('/') {
            return Err(Unrouted::NoProvider);
        }
        let normal = path::normalize(path)?;
        let split = normal[1..].find('/').map_or(normal.len(), |i| i + 1);
        if split == 1 {
            return Err(Unrouted::NoProvider);
        }
        Ok(Route {
            normal,
            split,
            query: uri.query(),
        })
    }

    /// The first segment, decoded like any other (`/%61nthropic/…` is `anthropic`'s).
    pub(crate) fn provider(&self) -> &str {
        &self.normal[1..self.split]
    }

    /// The rest of the normal path with its leading `/` (`/` when empty), forwarded after the
    /// base URL's path; a provider's [`endpoint`](super::upstream::Upstream::endpoint) of it is
    /// the breaker key.
    pub(crate) fn path(&self) -> &str {
        match &self.normal[self.split..] {
            "" => "/",
            rest => rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(String, String, Option<String>), Unrouted> {
        let uri: Uri = s.parse().unwrap();
        Route::parse(&uri).map(|r| {
            (
                r.provider().to_owned(),
                r.path().to_owned(),
                r.query.map(str::to_owned),
            )
        })
    }

    fn ok(
        provider: &str,
        path: &str,
        query: Option<&str>,
    ) -> Result<(String, String, Option<String>), Unrouted> {
        Ok((provider.into(), path.into(), query.map(str::to_owned)))
    }

    #[test]
    fn splits_provider_path_and_query() {
        assert_eq!(
            parse("/anthropic/v1/messages?beta=true"),
            ok("anthropic", "/v1/messages", Some("beta=true"))
        );
        assert_eq!(parse("/openai"), ok("openai", "/", None));
        assert_eq!(parse("/openai/"), ok("openai", "/", None));
        assert_eq!(parse("/"), Err(Unrouted::NoProvider));
        assert_eq!(parse("*"), Err(Unrouted::NoProvider));
        assert_eq!(parse("http://gw/"), Err(Unrouted::NoProvider));
    }

    #[test]
    fn routes_the_normal_form_and_leaves_the_query_alone() {
        assert_eq!(parse("//x"), ok("x", "/", None));
        assert_eq!(
            parse("/%61/v1//%7e/./y/?q=%2e%2e/../"),
            ok("a", "/v1/~/y/", Some("q=%2e%2e/../"))
        );
        assert_eq!(parse("http://gw/a/b/../c"), ok("a", "/c", None));
        assert_eq!(
            parse("/a/../b/x"),
            Err(Unrouted::Refused(PathError::EscapesProvider))
        );
        assert_eq!(
            parse("/a/%zz"),
            Err(Unrouted::Refused(PathError::InvalidEncoding))
        );
    }

    #[test]
    fn a_normal_path_is_borrowed() {
        let uri: Uri = "/a/v1/messages".parse().unwrap();
        let route = Route::parse(&uri).unwrap();
        assert!(matches!(route.normal, Cow::Borrowed(_)));
    }
}
