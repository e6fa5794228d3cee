//! Host normalisation: every spelling of one host (case, scheme, default port, path, trailing
//! slash or dot) maps to one `host[:port]` key, so it shares one cache entry.

use crate::Error;

/// Normalises `input` to the `host[:port]` form the cache keys entries by and substitutes for
/// `{host}` in the flag service URL.
///
/// - The scheme, user info, path, query and fragment are dropped; the host is lower-cased and a
///   trailing dot removed. IPv6 literals keep their brackets.
/// - The port is kept unless it is the scheme's default (`http` 80, `https` 443). Without a
///   scheme the host is taken as `https`, so `:443` is dropped and `:80` kept.
///
/// # Errors
/// [`Error::InvalidHost`] for an empty host, a scheme other than `http`/`https`, a bad port,
/// an unbracketed IPv6 address, or characters that cannot appear in a host name.
///
/// ```
/// use seawall_flags::host::normalize_host;
///
/// assert_eq!(normalize_host("HTTPS://Example.COM:443/sql/1.0?o=1").unwrap(), "example.com");
/// assert_eq!(normalize_host("example.com:8443/").unwrap(), "example.com:8443");
/// assert_eq!(normalize_host("http://[::1]:80").unwrap(), "[::1]");
/// assert!(normalize_host("https://").is_err());
/// ```
pub fn normalize_host(input: &str) -> Result<String, Error> {
    let invalid = |reason| Error::InvalidHost {
        host: input.to_owned(),
        reason,
    };
    let trimmed = input.trim();
    let (default_port, rest) = match trimmed.find("://") {
        Some(at) => {
            let scheme = &trimmed[..at];
            let port = if scheme.eq_ignore_ascii_case("https") {
                443
            } else if scheme.eq_ignore_ascii_case("http") {
                80
            } else {
                return Err(invalid("scheme must be http or https"));
            };
            (port, &trimmed[at + 3..])
        }
        None => (443, trimmed),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);

    let (name, port) = split_port(authority).map_err(invalid)?;
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(invalid("empty host"));
    }
    let valid = if name.starts_with('[') {
        name.len() > 2
            && name[1..name.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !valid {
        return Err(invalid("invalid character in host"));
    }

    let mut out = name.to_ascii_lowercase();
    if let Some(port) = port.filter(|&p| p != default_port) {
        out.push(':');
        out.push_str(&port.to_string());
    }
    Ok(out)
}

/// Splits `authority` into the host (IPv6 brackets kept) and the port, if any.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (name, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or("unclosed '[' in IPv6 host")?;
        let (name, tail) = authority.split_at(close + 1);
        match tail {
            "" => (name, None),
            _ => (
                name,
                Some(tail.strip_prefix(':').ok_or("junk after IPv6 host")?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((_, port)) if port.contains(':') => return Err("IPv6 hosts must be bracketed"),
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    match port {
        None | Some("") => Ok((name, None)),
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => digits
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .map(|p| (name, Some(p)))
            .ok_or("port out of range"),
        Some(_) => Err("port is not a number"),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    fn norm(s: &str) -> String {
        normalize_host(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn case_scheme_default_port_path_and_trailing_slash_collapse_to_one_key() {
        for spelling in [
            "example.com",
            "Example.COM",
            "https://example.com",
            "HTTPS://example.com/",
            "https://example.com:443",
            "https://example.com:443/sql/1.0/warehouses/abc?o=1#x",
            "example.com:443",
            "example.com.",
            "  example.com/  ",
            "https://token:secret@example.com/",
            "example.com:",
        ] {
            assert_eq!(norm(spelling), "example.com", "{spelling:?}");
        }
    }

    #[test]
    fn non_default_ports_are_kept_per_scheme() {
        assert_eq!(norm("http://example.com:80/"), "example.com");
        assert_eq!(norm("http://example.com"), "example.com");
        assert_eq!(norm("http://example.com:443"), "example.com:443");
        assert_eq!(norm("https://example.com:80"), "example.com:80");
        assert_eq!(norm("example.com:80"), "example.com:80");
        assert_eq!(norm("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(norm("HTTP://LOCALHOST:0080"), "localhost");
    }

    #[test]
    fn ipv6_literals_keep_brackets_and_lose_default_ports() {
        assert_eq!(norm("[::1]"), "[::1]");
        assert_eq!(norm("https://[2001:DB8::1]:443/x"), "[2001:db8::1]");
        assert_eq!(norm("[::1]:9000"), "[::1]:9000");
    }

    #[test]
    fn unusable_hosts_are_refused() {
        for bad in [
            "",
            "   ",
            "https://",
            "https:///path",
            "ftp://example.com",
            "example.com:http",
            "example.com:70000",
            "example.com:0",
            "::1",
            "[::1",
            "[::1]x",
            "[]",
            "exa mple.com",
            "exa%mple.com",
            ".",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
