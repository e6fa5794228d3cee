//! A client's request fields rewritten for the upstream: hop-by-hop fields dropped (by the
//! transport's one rule: HTTP/1 requests arrive without them, requests from HTTP/2 or another
//! server lose them here), `host` left to the client to derive from the upstream URL,
//! `x-forwarded-for` appended, credentials swapped.

use std::cell::RefCell;
use std::net::IpAddr;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::target::{Target, X_API_KEY};
use crate::http1::codec::hop;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Prepares a client's request headers for `target`. With `auth_on`, the client's
/// credentials are dropped and the target's key (if any) injected; without it, client
/// credentials pass through and the target's key fills in only where the client sent none.
pub(crate) fn to_upstream(headers: &mut HeaderMap, target: &Target, client: IpAddr, auth_on: bool) {
    hop::strip(headers);
    // The upstream client writes `host` from the upstream URL.
    headers.remove(HOST);
    if auth_on {
        headers.remove(AUTHORIZATION);
        headers.remove(X_API_KEY);
    }
    if let Some((name, value)) = &target.key {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        append_forwarded_for(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
    }
}
