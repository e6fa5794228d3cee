//! Secrets come only from environment variables named by `*_env` keys; resolving them is a
//! separate step so a configuration can be checked on a machine without them.

use std::collections::BTreeMap;
use std::fmt;

use super::error::{ConfigError, Location};
use super::model::{AuthMode, Config};
use super::spans::{join_index, join_key};

/// A secret value; its `Debug` output is redacted so it never reaches a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it (a header, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Every secret the configuration refers to, read from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// Value of `admin.token_env`, if configured.
    pub admin_token: Option<Secret>,
    /// Values of `auth.tokens_env`, in order (empty without token auth).
    pub client_tokens: Vec<Secret>,
    /// Values of `providers[].api_key_env` and `providers[].targets[].api_key_env`, by
    /// provider and target name (`""` for the one-target form).
    pub provider_keys: BTreeMap<(String, String), Secret>,
    /// Value of `cluster.redis_url_env`, if configured.
    pub redis_url: Option<Secret>,
}

impl Config {
    /// Reads every `*_env` variable through `env` (a name → value lookup), failing on the
    /// first one that is unset or empty, with the field path and position of its `*_env` key.
    ///
    /// ```
    /// let config = seawall::config::parse("admin: { token_env: ADMIN_TOKEN }").unwrap();
    /// let err = config.resolve_secrets(|_| None).unwrap_err();
    /// assert_eq!(err.path(), Some("admin.token_env"));
    /// let secrets = config
    ///     .resolve_secrets(|name| (name == "ADMIN_TOKEN").then(|| "s3cret".to_owned()))
    ///     .unwrap();
    /// assert_eq!(secrets.admin_token.unwrap().expose(), "s3cret");
    /// ```
    pub fn resolve_secrets(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Secrets, ConfigError> {
        let read = |path: &str, var: &str| -> Result<Secret, ConfigError> {
            let problem = match env(var) {
                Some(value) if !value.trim().is_empty() => return Ok(Secret(value)),
                Some(_) => "empty",
                None => "unset",
            };
            Err(ConfigError::MissingSecret {
                location: Location {
                    field: path.to_owned(),
                    position: self.spans.nearest_position(path),
                },
                variable: var.to_owned(),
                problem,
            })
        };
        let mut secrets = Secrets::default();
        if let Some(var) = &self.admin.token_env {
            secrets.admin_token = Some(read("admin.token_env", var)?);
        }
        if let Some(cluster) = &self.cluster {
            secrets.redis_url = Some(read("cluster.redis_url_env", &cluster.redis_url_env)?);
        }
        if let Some(auth) = self.auth.as_ref().filter(|a| a.mode == AuthMode::Tokens) {
            for (i, var) in auth.tokens_env.iter().enumerate() {
                let token = read(&join_index("auth.tokens_env", i), var)?;
                secrets.client_tokens.push(token);
            }
        }
        for (i, p) in self.providers.iter().enumerate() {
            let at = join_index("providers", i);
            for target in p.target_list() {
                let Some(var) = target.api_key_env else {
                    continue;
                };
                let path = match target.path {
                    Some(j) => join_key(&join_index(&join_key(&at, "targets"), j), "api_key_env"),
                    None => join_key(&at, "api_key_env"),
                };
                let key = read(&path, var)?;
                secrets
                    .provider_keys
                    .insert((p.name.clone(), target.name), key);
            }
        }
        Ok(secrets)
    }

    /// [`Config::resolve_secrets`] against the process environment.
    pub fn resolve_secrets_from_env(&self) -> Result<Secrets, ConfigError> {
        self.resolve_secrets(|name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Position};

    const SRC: &str = "\
admin: { token_env: ADMIN }
auth:
  tokens_env: [T1, T2]
providers:
  - { name: a, kind: openai, base_url: 'https://a.example', api_key_env: A_KEY }
";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn resolves_every_secret() {
        let config = parse(SRC).unwrap();
        let s = config
            .resolve_secrets(env(&[
                ("ADMIN", "adm"),
                ("T1", "one"),
                ("T2", "two"),
                ("A_KEY", "k"),
            ]))
            .unwrap();
        assert_eq!(s.admin_token.unwrap().expose(), "adm");
        let tokens: Vec<&str> = s.client_tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["one", "two"]);
        assert_eq!(s.provider_keys[&("a".into(), String::new())].expose(), "k");
    }

    #[test]
    fn unset_variable_names_field_and_position() {
        let config = parse(SRC).unwrap();
        let err = config
            .resolve_secrets(env(&[("ADMIN", "adm"), ("T1", "one"), ("A_KEY", "k")]))
            .unwrap_err();
        assert_eq!(err.path(), Some("auth.tokens_env[1]"));
        assert_eq!(err.position(), Some(Position::new(3, 20)));
        assert_eq!(
            err.to_string(),
            "config error: auth.tokens_env[1] at 3:20: environment variable `T2` is unset"
        );
    }

    #[test]
    fn empty_variable_is_an_error() {
        let config = parse(SRC).unwrap();
        let err = config
            .resolve_secrets(env(&[
                ("ADMIN", "adm"),
                ("T1", "a"),
                ("T2", "b"),
                ("A_KEY", " "),
            ]))
            .unwrap_err();
        assert_eq!(err.path(), Some("providers[0].api_key_env"));
        assert_eq!(err.position(), Some(Position::new(5, 74)));
        assert!(err
            .to_string()
            .ends_with("environment variable `A_KEY` is empty"));
    }

    #[test]
    fn debug_never_shows_secret() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }
}
