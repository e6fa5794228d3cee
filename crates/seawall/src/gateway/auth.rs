//! Client authentication: a token from `auth.tokens_env` in `authorization: Bearer` or
//! `x-api-key`, compared in constant time.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::target::X_API_KEY;
use crate::config::{AuthMode, Config, Secrets};

/// The accepted client tokens, or none when authentication is off.
pub(crate) struct ClientAuth {
    /// `None`: `auth` absent or `mode: none`, every client is admitted.
    tokens: Option<Vec<Vec<u8>>>,
}

impl ClientAuth {
    /// Authentication as configured, with the tokens resolved in `secrets`.
    pub(crate) fn new(config: &Config, secrets: &Secrets) -> Self {
        let on = config
            .auth
            .as_ref()
            .is_some_and(|a| a.mode == AuthMode::Tokens);
        ClientAuth {
            tokens: on.then(|| {
                secrets
                    .client_tokens
                    .iter()
                    .map(|t| t.expose().as_bytes().to_vec())
                    .collect()
            }),
        }
    }

    /// Whether clients must present a token (and their credential headers are not forwarded).
    pub(crate) fn is_on(&self) -> bool {
        self.tokens.is_some()
    }

    /// Whether `headers` carry an accepted token (always, when authentication is off).
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(tokens) = &self.tokens else {
            return true;
        };
        let bearer = headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|v| bearer_token(v.as_bytes()));
        let api_key = headers.get_all(X_API_KEY).iter().map(|v| v.as_bytes());
        let mut ok = false;
        for presented in bearer.chain(api_key) {
            for token in tokens {
                // No early exit: every comparison runs, each in constant time.
                ok |= constant_time_eq(presented, token);
            }
        }
        ok
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Compares without branching on the contents; only the lengths' equality leaks.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn parses_bearer_case_insensitively() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }
}
