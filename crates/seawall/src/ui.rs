//! The live dashboard at the admin listener's `GET /ui` (and `/`): one self-contained HTML
//! page (inline CSS and JS, no external assets) that polls `/v1/breakers`, `/v1/transitions`,
//! `/v1/pipelines` and `/v1/flags` every second (and `/v1/history` once a sample period, drawn
//! as inline SVG charts) and renders them with DOM APIs.

use http::{header, HeaderValue, Response};

use crate::message::{full, Body};

/// The page, compiled into the binary.
pub const DASHBOARD_HTML: &str = include_str!("ui/dashboard.html");

/// What the page may load: its own inline script and style, and JSON from the same origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The dashboard page as an HTTP response.
pub fn dashboard() -> Response<Body> {
    let mut resp = Response::new(full(DASHBOARD_HTML));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        let resp = dashboard();
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        // The SVG namespace is a name, not a resource: `createElementNS` loads nothing.
        let page = DASHBOARD_HTML.replace("'http://www.w3.org/2000/svg'", "");
        for external in ["http://", "https://", "//cdn", "@import", "innerHTML"] {
            assert!(
                !page.contains(external),
                "the dashboard must not reference `{external}`"
            );
        }
        for endpoint in [
            "/v1/breakers",
            "/v1/transitions",
            "/v1/pipelines",
            "/v1/flags",
            "/v1/history",
        ] {
            assert!(DASHBOARD_HTML.contains(endpoint), "{endpoint}");
        }
    }
}
