//! Hop-by-hop fields (RFC 9110 §7.6.1): meant for one connection, never forwarded. The codec
//! consumes them while parsing (`connection`, `transfer-encoding` decide keep-alive and
//! framing) and drops the rest: the fixed list, any `proxy-*`, and every field a
//! `connection` field names. Fields spelled like a framing or hop-by-hop field with `_` for
//! `-` (`Transfer_Encoding`, `Content_Length`) are dropped too: some servers read them as the
//! real thing, and they must never travel beside our own framing. Maps (HTTP/2 requests, or
//! requests from another server) go through [`strip`].

use http::header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, Version};

/// The hop-by-hop fields named by RFC 9110 (besides those a `connection` field names).
const HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Whether a field is never forwarded by its name alone: one of the fixed list, `proxy-*`
/// (meant for the proxy, not the next hop), or a framing or hop-by-hop name spelled with `_`.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    if HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_str().as_bytes()))
        || name
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"proxy-"))
    {
        return true;
    }
    // Rare: only names with an underscore need the folded comparison.
    name.contains(&b'_')
        && (HOP_BY_HOP.iter().map(HeaderName::as_str))
            .chain(["content-length", "proxy-"])
            .any(|h| underscore_alias(name, h.as_bytes()))
}

/// Whether `name` reads as `hop` (or starts with it, for `proxy-`) when `_` is read as `-`.
fn underscore_alias(name: &[u8], hop: &[u8]) -> bool {
    let prefix = hop.ends_with(b"-");
    let name = if prefix {
        match name.get(..hop.len()) {
            Some(start) => start,
            None => return false,
        }
    } else if name.len() == hop.len() {
        name
    } else {
        return false;
    };
    name.iter()
        .zip(hop)
        .all(|(&n, &h)| n.eq_ignore_ascii_case(&h) || (n == b'_' && h == b'-'))
}

/// What a head's connection-level fields said.
#[derive(Debug, Default)]
pub(crate) struct Hop {
    close: bool,
    keep_alive: bool,
    /// `transfer-encoding` was present: whether its last coding is chunked.
    pub(crate) chunked: Option<bool>,
    /// How many transfer codings the `transfer-encoding` fields list in all.
    pub(crate) codings: usize,
    /// A `connection` field named other fields (hop-by-hop too, to drop).
    pub(crate) names_others: bool,
    /// A `connection` field named `upgrade`: the sender asks to switch protocols.
    pub(crate) upgrade: bool,
}

impl Hop {
    /// Reads one hop-by-hop field; `false` when `name` is not one this type reads.
    pub(crate) fn read(&mut self, name: &[u8], value: &[u8]) -> bool {
        if name.eq_ignore_ascii_case(b"connection") {
            self.read_connection(value);
            true
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let codings = value.split(|&b| b == b',').map(<[u8]>::trim_ascii);
            for coding in codings.filter(|c| !c.is_empty()) {
                self.codings += 1;
                self.chunked = Some(coding.eq_ignore_ascii_case(b"chunked"));
            }
            self.chunked.get_or_insert(false);
            true
        } else {
            false
        }
    }

    fn read_connection(&mut self, raw: &[u8]) {
        for token in raw.split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if !token.is_empty() {
                self.upgrade |= token.eq_ignore_ascii_case(b"upgrade");
                self.names_others = true;
            }
        }
    }

    /// Whether the transfer codings are exactly `chunked` (the only one the codec can pass on).
    pub(crate) fn only_chunked(&self) -> bool {
        self.codings == 1 && self.chunked == Some(true)
    }

    /// HTTP/1.1 keeps connections open unless told `close`; HTTP/1.0 only when told
    /// `keep-alive`.
    pub(crate) fn keep_alive(&self, version: Version) -> bool {
        if version == Version::HTTP_10 {
            self.keep_alive && !self.close
        } else {
            !self.close
        }
    }
}

/// The field names a head's `connection` values name (other than `close`/`keep-alive`).
pub(crate) fn named_by_connection<'a>(
    values: impl Iterator<Item = &'a [u8]> + 'a,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !t.eq_ignore_ascii_case(b"keep-alive")
        })
}

/// Removes every hop-by-hop field from `headers` (for messages that arrive as a map, such as
/// HTTP/2 requests). No allocation when there is none, the usual case.
pub(crate) fn strip(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| is_hop_by_hop(k.as_str().as_bytes())) {
        return;
    }
    let named: Vec<HeaderName> =
        named_by_connection(headers.get_all(CONNECTION).iter().map(|v| v.as_bytes()))
            .filter_map(|name| HeaderName::from_bytes(name).ok())
            .collect();
    for name in named {
        headers.remove(name);
    }
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_hop_by_hop(k.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn strips_listed_named_and_proxy_fields() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn underscore_spellings_of_framing_fields_are_dropped() {
        for name in [
            "Transfer_Encoding",
            "content_length",
            "CONNECTION",
            "Keep_Alive",
            "proxy_authorization",
            "Proxy-Foo",
        ] {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        for name in [
            "x_request_id",
            "content-type",
            "content_type",
            "transfer_encodings",
        ] {
            assert!(!is_hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn reads_connection_and_transfer_encoding() {
        let mut hop = Hop::default();
        assert!(hop.read(b"Connection", b"Keep-Alive, X-A"));
        assert!(hop.read(b"transfer-encoding", b"gzip, chunked"));
        assert!(!hop.read(b"x-other", b"1"));
        assert!(hop.names_others);
        assert_eq!(hop.chunked, Some(true));
        assert!(!hop.only_chunked(), "gzip, chunked");
        assert!(hop.keep_alive(Version::HTTP_10));
        let names: Vec<_> = named_by_connection([&b"close, X-A ,"[..]].into_iter()).collect();
        assert_eq!(names, [&b"X-A"[..]]);
    }
}
