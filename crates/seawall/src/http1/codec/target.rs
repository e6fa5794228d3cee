//! Request targets (RFC 9112 §3.2): a request is refused unless its target is in one of the
//! four forms, each checked against RFC 3986's character classes by a byte table. `http::Uri`
//! alone is lenient (a fragment dropped, userinfo kept, `GET host:443`), and a proxy that
//! reads a target differently from its upstream invites confusion.

use http::Method;

/// Bytes of a path segment (`pchar` less `%`, checked apart) and of a query (plus `/`, `?`).
const PATH: u8 = 1;
const QUERY: u8 = 2;
/// Bytes of a host name (`unreserved` and `sub-delims`).
const HOST: u8 = 4;

const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let unreserved = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        let sub_delim = matches!(
            c,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        );
        if unreserved || sub_delim {
            t[b] |= PATH | QUERY | HOST;
        }
        if matches!(c, b':' | b'@' | b'/') {
            t[b] |= PATH | QUERY;
        }
        if c == b'?' {
            t[b] |= QUERY;
        }
        b += 1;
    }
    t
};

/// Whether `target` is a request target `method` may carry: origin-form (`/path?query`),
/// absolute-form (`http(s)://host[:port]/path?query`, no userinfo), authority-form for
/// `CONNECT`, asterisk-form (`*`) for `OPTIONS`.
pub(crate) fn is_valid(method: &Method, target: &[u8]) -> bool {
    if target == b"*" {
        return method == Method::OPTIONS;
    }
    if method == Method::CONNECT {
        return authority(target, true);
    }
    if target.first() == Some(&b'/') {
        return path_and_query(target);
    }
    let Some(rest) = strip_scheme(target) else {
        return false;
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    authority(host, false)
        && (tail.first() != Some(&b'?') || within(&tail[1..], QUERY))
        && (tail.first() != Some(&b'/') || path_and_query(tail))
}

/// `absolute-path [ "?" query ]`.
fn path_and_query(s: &[u8]) -> bool {
    match s.iter().position(|&b| b == b'?') {
        Some(q) => within(&s[..q], PATH) && within(&s[q + 1..], QUERY),
        None => within(s, PATH),
    }
}

/// What follows `http://` or `https://` (the scheme in any case).
fn strip_scheme(s: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = s.split_at(s.iter().position(|&b| b == b':')?);
    let http = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
    rest.strip_prefix(b"://").filter(|_| http)
}

/// `host [ ":" port ]` (the port required when `port_required`), with a non-empty host name
/// or an IP literal in brackets, and a port of at most 65535.
fn authority(s: &[u8], port_required: bool) -> bool {
    let (host, port) = if s.first() == Some(&b'[') {
        let Some(close) = s.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &s[1..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &s[close + 1..] {
            [] => (&s[..0], None),
            [b':', port @ ..] => (&s[..0], Some(port)),
            _ => return false,
        }
    } else {
        match s.iter().position(|&b| b == b':') {
            Some(colon) => (&s[..colon], Some(&s[colon + 1..])),
            None => (s, None),
        }
    };
    let bracketed = s.first() == Some(&b'[');
    if !bracketed && (host.is_empty() || !within(host, HOST)) {
        return false;
    }
    match port {
        None => !port_required,
        Some([]) => !port_required,
        Some(p) => {
            p.len() <= 5
                && p.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(p)
                    .ok()
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|n| n <= 65535)
        }
    }
}

/// Whether every byte of `s` is in `class`, or part of a well-formed `%HH`.
fn within(s: &[u8], class: u8) -> bool {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hex = |j: usize| s.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if CLASSES[b as usize] & class != 0 {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_forms_and_nothing_else() {
        let ok = |m: Method, t: &str| is_valid(&m, t.as_bytes());
        assert!(ok(Method::GET, "/v1/messages?beta=true&x=%2F"));
        assert!(ok(Method::GET, "/a:b@c/d;e=f"));
        assert!(ok(Method::GET, "http://api.example.com:8080/v1?x=1"));
        assert!(ok(Method::GET, "HTTPS://[::1]/"));
        assert!(ok(Method::GET, "http://h"));
        assert!(ok(Method::OPTIONS, "*"));
        assert!(ok(Method::CONNECT, "api.example.com:443"));
        for bad in [
            "/a#b",
            "x",
            "h:443",
            "http://user@h/",
            "ftp://h/",
            "http://h:99999/",
            "/a b",
            "/%zz",
            "/a\"b",
            "*",
            "http:///x",
        ] {
            assert!(!ok(Method::GET, bad), "{bad}");
        }
        assert!(!ok(Method::CONNECT, "h"), "authority-form needs a port");
    }
}
