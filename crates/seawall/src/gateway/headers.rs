//! Header rewriting for both directions: hop-by-hop headers removed, `host` left to the
//! client to derive from the upstream URL, `x-forwarded-for` appended, credentials swapped.

use std::cell::RefCell;
use std::net::IpAddr;

use http::header::{AUTHORIZATION, CONNECTION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::upstream::{Upstream, X_API_KEY};
use crate::h1::head::{is_hop_by_hop, HOP_BY_HOP};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Removes hop-by-hop headers: the fixed list, any `proxy-*`, and those named in `connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually there are none, or only `connection: keep-alive`: one pass over the names and
    // no allocation then.
    if !headers.keys().any(|k| is_hop_by_hop(k.as_str().as_bytes())) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy {
        headers.remove(name);
    }
}

/// Prepares a client's request headers for `upstream`. With `auth_on`, the client's
/// credentials are dropped and the provider key (if any) injected; without it, client
/// credentials pass through and the provider key fills in only where the client sent none.
pub(crate) fn to_upstream(
    headers: &mut HeaderMap,
    upstream: &Upstream,
    client: IpAddr,
    auth_on: bool,
) {
    strip_hop_by_hop(headers);
    // The upstream client writes `host` from the upstream URL.
    headers.remove(HOST);
    if auth_on {
        headers.remove(AUTHORIZATION);
        headers.remove(X_API_KEY);
    }
    if let Some((name, value)) = &upstream.key {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    append_forwarded_for(headers, client);
}

fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let client = client.to_canonical();
    if !headers.contains_key(&X_FORWARDED_FOR) {
        headers.insert(X_FORWARDED_FOR, client_value(client));
        return;
    }
    let mut chain: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    chain.push(client.to_string());
    if let Ok(value) = HeaderValue::try_from(chain.join(", ")) {
        headers.insert(X_FORWARDED_FOR, value);
    }
}

/// `client` as a header value. Connections send many requests, so each thread remembers the
/// last address it formatted (the value is shared, not copied).
fn client_value(client: IpAddr) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((ip, value)) if *ip == client => value.clone(),
            _ => {
                let value = HeaderValue::try_from(client.to_string())
                    .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
                *last = Some((client, value.clone()));
                value
            }
        }
    })
}

/// Whether a response with this `content-type` is a server-sent event stream.
pub(crate) fn is_event_stream(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|v| {
        v.split(|&b| b == b';')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"text/event-stream"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_listed_and_named_hop_by_hop_headers() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("x-kept", "yes"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        append_forwarded_for(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
    }

    #[test]
    fn recognises_event_streams() {
        assert!(is_event_stream(Some(b"text/event-stream; charset=utf-8")));
        assert!(is_event_stream(Some(b"Text/Event-Stream")));
        assert!(!is_event_stream(Some(b"application/json")));
        assert!(!is_event_stream(None));
    }
}
