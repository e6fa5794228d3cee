//! The reference model of a request target (RFC 9112 §3.2 over RFC 3986's grammar): which of
//! the four forms it is in, if any, and its parts.

/// A request target's parts, as `http::Uri` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) scheme: Option<String>,
    pub(super) authority: Option<String>,
    pub(super) path: String,
    pub(super) query: Option<String>,
}

/// The target's parts when it is in a form RFC 9112 §3.2 allows for `method`: origin-form,
/// absolute-form (`http` or `https`, no userinfo, RFC 9110 §4.2), authority-form for
/// CONNECT, asterisk-form for OPTIONS. `None` otherwise.
pub(super) fn classify(method: &str, raw: &str) -> Option<Target> {
    let b = raw.as_bytes();
    if raw == "*" {
        return (method == "OPTIONS").then(|| Target {
            scheme: None,
            authority: None,
            path: "*".into(),
            query: None,
        });
    }
    if method == "CONNECT" {
        return authority_form(raw).then(|| Target {
            scheme: None,
            authority: Some(raw.into()),
            path: String::new(),
            query: None,
        });
    }
    if b.first() == Some(&b'/') {
        let (path, query) = split_query(raw);
        return (absolute_path(path) && query.is_none_or(is_query)).then(|| Target {
            scheme: None,
            authority: None,
            path: path.into(),
            query: query.map(Into::into),
        });
    }
    let (scheme, rest) = raw.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    let (path, query) = split_query(rest);
    let path_ok = path.is_empty() || absolute_path(path);
    (host_port(authority) && path_ok && query.is_none_or(is_query)).then(|| Target {
        scheme: Some(scheme.to_ascii_lowercase()),
        authority: Some(authority.into()),
        path: if path.is_empty() { "/" } else { path }.into(),
        query: query.map(Into::into),
    })
}

fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (s, None),
    }
}

/// `authority-form = uri-host ":" port` with a port (RFC 9112 §3.2.3).
fn authority_form(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && host_port(s))
}

/// `host [":" port]` with a non-empty host (RFC 9110 §4.2.1) and a port up to 65535.
fn host_port(s: &str) -> bool {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => (&s[..=end], s[end + 1..].strip_prefix(':')),
            None => return false,
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        p.is_empty()
            || (p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= 65535))
    });
    let host_ok = if let Some(literal) = host.strip_prefix('[') {
        let inner = &literal[..literal.len() - 1];
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty() && chars_ok(host, |b| unreserved(b) || sub_delim(b))
    };
    host_ok && port_ok
}

/// `absolute-path = 1*( "/" segment )`, segments of pchars.
fn absolute_path(s: &str) -> bool {
    s.starts_with('/') && chars_ok(s, |b| pchar(b) || b == b'/')
}

/// `query = *( pchar / "/" / "?" )`.
fn is_query(s: &str) -> bool {
    chars_ok(s, |b| pchar(b) || b == b'/' || b == b'?')
}

/// Every byte allowed by `ok`, or a well-formed `%HH`.
fn chars_ok(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else if ok(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn pchar(b: u8) -> bool {
    unreserved(b) || sub_delim(b) || b == b':' || b == b'@'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_forms_and_nothing_else() {
        assert!(classify("GET", "/a/b?c=d/?").is_some());
        assert!(classify("GET", "http://h:80/x?y").is_some());
        assert_eq!(classify("GET", "HTTP://h").unwrap().path, "/");
        assert!(classify("CONNECT", "h:443").is_some());
        assert!(classify("OPTIONS", "*").is_some());
        for bad in [
            "*",
            "h:443",
            "/a#b",
            "/%4",
            "/a b",
            "http://u@h/",
            "http://:80/",
            "ftp://h/",
            "/{",
            "?q",
            "http://h:99999/",
        ] {
            assert!(classify("GET", bad).is_none(), "{bad}");
        }
        assert!(classify("CONNECT", "h").is_none());
    }
}
