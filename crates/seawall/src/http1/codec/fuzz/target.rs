//! The reference model of a request target: RFC 9112 §3.2's four forms, read by a small
//! recursive-descent reader of RFC 3986's ABNF, one function a production (written apart from
//! `codec/target.rs`, which checks spans against a byte table).

/// A request target's parts, as `http::Uri` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) scheme: Option<String>,
    pub(super) authority: Option<String>,
    pub(super) path: String,
    pub(super) query: Option<String>,
}

/// The target's parts when it is in a form RFC 9112 §3.2 allows for `method`: origin-form,
/// absolute-form (`http` or `https`, no userinfo, a non-empty host, RFC 9110 §4.2),
/// authority-form for CONNECT (with a port), asterisk-form for OPTIONS. A port is at most
/// five digits and 65535. `None` otherwise.
pub(super) fn classify(method: &str, raw: &str) -> Option<Target> {
    if raw == "*" {
        return (method == "OPTIONS").then(|| Target {
            scheme: None,
            authority: None,
            path: "*".into(),
            query: None,
        });
    }
    let mut reader = Reader { s: raw, at: 0 };
    let target = match method {
        "CONNECT" => reader.authority_form()?,
        _ if raw.starts_with('/') => reader.origin_form()?,
        _ => reader.absolute_form()?,
    };
    (reader.at == raw.len()).then_some(target)
}

/// A cursor over the target; each production consumes what it matches.
struct Reader<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    /// `origin-form = absolute-path [ "?" query ]`.
    fn origin_form(&mut self) -> Option<Target> {
        let path = self.absolute_path()?;
        Some(Target {
            scheme: None,
            authority: None,
            path: path.into(),
            query: self.query()?.map(Into::into),
        })
    }

    /// `absolute-URI = scheme ":" "//" authority path-abempty [ "?" query ]`, for http(s).
    fn absolute_form(&mut self) -> Option<Target> {
        let scheme = self.scheme()?.to_ascii_lowercase();
        if !(scheme == "http" || scheme == "https") || !self.eat("://") {
            return None;
        }
        let authority = self.authority(false)?;
        let path = self.path_abempty()?;
        Some(Target {
            scheme: Some(scheme),
            authority: Some(authority.into()),
            path: if path.is_empty() { "/" } else { path }.into(),
            query: self.query()?.map(Into::into),
        })
    }

    /// `authority-form = uri-host ":" port`.
    fn authority_form(&mut self) -> Option<Target> {
        let authority = self.authority(true)?;
        Some(Target {
            scheme: None,
            authority: Some(authority.into()),
            path: String::new(),
            query: None,
        })
    }

    /// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
    fn scheme(&mut self) -> Option<&'a str> {
        let start = self.at;
        if !self.next_is(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        while self.next_is(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {}
        Some(&self.s[start..self.at])
    }

    /// `host [ ":" port ]`, no userinfo; the port (non-empty) required when `port_needed`.
    fn authority(&mut self, port_needed: bool) -> Option<&'a str> {
        let start = self.at;
        if self.eat("[") {
            let literal = self.at;
            while self.next_is(|b| b.is_ascii_hexdigit() || b":.".contains(&b)) {}
            if self.at == literal || !self.eat("]") {
                return None;
            }
        } else if self.pct_run(|b| unreserved(b) || sub_delim(b))? == 0 {
            return None;
        }
        if self.eat(":") {
            let digits = self.at;
            while self.next_is(|b| b.is_ascii_digit()) {}
            let port = &self.s[digits..self.at];
            let too_big = port.len() > 5 || port.parse::<u32>().is_ok_and(|n| n > 65_535);
            if too_big || (port_needed && port.is_empty()) {
                return None;
            }
        } else if port_needed {
            return None;
        }
        Some(&self.s[start..self.at])
    }

    /// `absolute-path = 1*( "/" segment )`.
    fn absolute_path(&mut self) -> Option<&'a str> {
        let path = self.path_abempty()?;
        (!path.is_empty()).then_some(path)
    }

    /// `path-abempty = *( "/" segment )`, `segment = *pchar`.
    fn path_abempty(&mut self) -> Option<&'a str> {
        let start = self.at;
        while self.eat("/") {
            self.pct_run(pchar)?;
        }
        Some(&self.s[start..self.at])
    }

    /// `[ "?" query ]`, `query = *( pchar / "/" / "?" )`: `Some(None)` when there is none.
    fn query(&mut self) -> Option<Option<&'a str>> {
        if !self.eat("?") {
            return Some(None);
        }
        let start = self.at;
        self.pct_run(|b| pchar(b) || b == b'/' || b == b'?')?;
        Some(Some(&self.s[start..self.at]))
    }

    /// The longest run of bytes in `class` and `pct-encoded` triplets; its length, or `None`
    /// when a `%` is not followed by two hex digits.
    fn pct_run(&mut self, class: impl Fn(u8) -> bool) -> Option<usize> {
        let start = self.at;
        loop {
            if self.eat("%") {
                for _ in 0..2 {
                    if !self.next_is(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                }
            } else if !self.next_is(&class) {
                return Some(self.at - start);
            }
        }
    }

    /// Consumes the next byte when `class` takes it.
    fn next_is(&mut self, class: impl Fn(u8) -> bool) -> bool {
        let taken = self.s.as_bytes().get(self.at).is_some_and(|&b| class(b));
        self.at += usize::from(taken);
        taken
    }

    /// Consumes `literal` when it comes next.
    fn eat(&mut self, literal: &str) -> bool {
        let taken = self.s[self.at..].starts_with(literal);
        if taken {
            self.at += literal.len();
        }
        taken
    }
}

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// `sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="`.
fn sub_delim(b: u8) -> bool {
    b"!$&'()*+,;=".contains(&b)
}

/// `pchar = unreserved / pct-encoded / sub-delims / ":" / "@"` (`%` read apart).
fn pchar(b: u8) -> bool {
    unreserved(b) || sub_delim(b) || b == b':' || b == b'@'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_forms_and_nothing_else() {
        let parts = |m: &str, t: &str| classify(m, t).map(|t| (t.authority, t.path, t.query));
        assert_eq!(
            parts("GET", "/a/b?c=d/?"),
            Some((None, "/a/b".into(), Some("c=d/?".into())))
        );
        assert_eq!(
            parts("GET", "http://h:80?y"),
            Some((Some("h:80".into()), "/".into(), Some("y".into())))
        );
        assert_eq!(
            classify("GET", "HTTP://h").unwrap().scheme.as_deref(),
            Some("http")
        );
        assert!(classify("GET", "//a/%41").is_some());
        assert!(classify("GET", "https://[::1]:/").is_some());
        assert!(classify("CONNECT", "h:443").is_some());
        assert!(classify("CONNECT", "[::1]:443").is_some());
        assert!(classify("OPTIONS", "*").is_some());
        for bad in [
            "*",
            "h:443",
            "/a#b",
            "/%4",
            "/%g0",
            "/a b",
            "http://u@h/",
            "http://:80/",
            "http://[::1]8080/",
            "http://[]/",
            "ftp://h/",
            "/{",
            "?q",
            "http://h:99999/",
            "http://h:000080/",
            "http:/h",
        ] {
            assert!(classify("GET", bad).is_none(), "{bad}");
        }
        for bad in ["h", "h:", "h:1:2", "/"] {
            assert!(classify("CONNECT", bad).is_none(), "{bad}");
        }
    }
}
