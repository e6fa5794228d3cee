//! Semantic checks run after deserialisation: ranges, cross-references and contradictions.
//! Each error names the YAML field path and its position from the [`SpanMap`].

use std::collections::HashMap;
use std::time::Duration;

use super::bounds;
use super::breaker::BreakerSettings;
use super::error::{ConfigError, Location};
use super::model::{AuthMode, Config, HistoryConfig};
use super::pipeline::{BufferType, OutputConfig, OutputType, PipelineConfig, SyncPolicy};
use super::provider::{ProviderConfig, MAX_IDLE_EVICT};
use super::spans::{join_index, join_key as key, SpanMap};
use super::tls::TlsConfig;

/// Provider names that would shadow the gateway's own routes.
const RESERVED_PROVIDER_NAMES: &[&str] = &["ingest"];

/// Headers an `otlp` output sets on every batch, which `headers` may not name.
const OTLP_RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "x-seawall-batch-id",
];

type Checked = Result<(), ConfigError>;

/// Runs every check on `config`, returning the first problem in document order.
pub(crate) fn validate(config: &Config) -> Checked {
    let v = Validator {
        spans: &config.spans,
    };
    v.server(config)?;
    v.admin(config)?;
    v.auth(config)?;
    v.providers(&config.providers)?;
    v.feature_flags(config)?;
    v.telemetry(config)?;
    v.pipelines(&config.pipelines)?;
    v.global_health(config)?;
    v.cluster(config)
}

/// Builds an `Invalid` error at `path`, positioned at that field or its nearest ancestor.
pub(crate) fn invalid_at(spans: &SpanMap, path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        location: Location {
            field: path.to_owned(),
            position: spans.nearest_position(path),
        },
        message: message.into(),
    }
}

struct Validator<'a> {
    spans: &'a SpanMap,
}

impl Validator<'_> {
    fn fail(&self, path: &str, message: impl Into<String>) -> Checked {
        Err(invalid_at(self.spans, path, message))
    }

    /// Picks the first of `paths` written in the file (else the first) to report a conflict.
    fn fail_any(&self, paths: &[&str], message: impl Into<String>) -> Checked {
        let path = paths
            .iter()
            .find(|p| self.spans.contains(p))
            .unwrap_or(&paths[0]);
        self.fail(path, message)
    }

    fn positive(&self, path: &str, d: Duration) -> Checked {
        if d.is_zero() {
            return self.fail(path, "must be greater than zero");
        }
        Ok(())
    }

    fn at_least_one(&self, path: &str, n: u64) -> Checked {
        if n == 0 {
            return self.fail(path, "must be at least 1");
        }
        Ok(())
    }

    /// A duration no longer than `max`.
    fn at_most(&self, path: &str, d: Duration, max: Duration) -> Checked {
        if d > max {
            return self.fail(
                path,
                format!(
                    "{} is too long: must be at most {}",
                    humantime::format_duration(d),
                    humantime::format_duration(max)
                ),
            );
        }
        Ok(())
    }

    /// A duration in (0, `max`].
    fn period(&self, path: &str, d: Duration, max: Duration) -> Checked {
        self.positive(path, d)?;
        self.at_most(path, d, max)
    }

    /// A count in `min..=max`.
    fn count(&self, path: &str, n: u64, min: u64, max: u64) -> Checked {
        if n < min {
            return self.fail(path, format!("must be at least {min}"));
        }
        if n > max {
            return self.fail(path, format!("{n} is too large: must be at most {max}"));
        }
        Ok(())
    }

    /// A byte size in 1..=`max`.
    fn size(&self, path: &str, n: u64, max: u64) -> Checked {
        self.at_least_one(path, n)?;
        if n > max {
            return self.fail(
                path,
                format!(
                    "{n} bytes is too large: must be at most {} ({max} bytes)",
                    bytesize::ByteSize::b(max).display().iec()
                ),
            );
        }
        Ok(())
    }

    /// A fraction in (0, 1] (or [0, 1] with `allow_zero`); NaN is rejected.
    fn fraction(&self, path: &str, x: f64, allow_zero: bool) -> Checked {
        let ok = if allow_zero {
            (0.0..=1.0).contains(&x)
        } else {
            x > 0.0 && x <= 1.0
        };
        if !ok {
            let range = if allow_zero { "[0, 1]" } else { "(0, 1]" };
            return self.fail(path, format!("{x} is out of range: must be in {range}"));
        }
        Ok(())
    }

    fn percent(&self, path: &str, p: u32) -> Checked {
        if !(1..=100).contains(&p) {
            return self.fail(path, format!("{p} is out of range: must be in 1..=100"));
        }
        Ok(())
    }

    fn name(&self, path: &str, name: &str) -> Checked {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return self.fail(
                path,
                format!("invalid name {name:?}: use letters, digits, `-`, `_` or `.`"),
            );
        }
        Ok(())
    }

    fn env_name(&self, path: &str, var: &str) -> Checked {
        let mut chars = var.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return self.fail(
                path,
                format!("{var:?} is not an environment variable name (expected e.g. `MY_TOKEN`)"),
            );
        }
        Ok(())
    }

    fn http_url(&self, path: &str, url: &str) -> Checked {
        if let Err(why) = check_http_url(url) {
            return self.fail(path, format!("invalid URL {url:?}: {why}"));
        }
        Ok(())
    }

    /// Rejects a name already seen in `seen`, pointing at the first definition.
    fn unique<'n>(
        &self,
        seen: &mut HashMap<&'n str, String>,
        what: &str,
        name: &'n str,
        path: String,
    ) -> Checked {
        if let Some(first) = seen.get(name) {
            let at = self
                .spans
                .value_position(first)
                .map(|p| format!(" at {p}"))
                .unwrap_or_default();
            return self.fail(
                &path,
                format!("duplicate {what} name `{name}` (first defined at {first}{at})"),
            );
        }
        seen.insert(name, path);
        Ok(())
    }

    fn server(&self, c: &Config) -> Checked {
        self.size("server.max_body", c.server.max_body, bounds::MAX_BODY)?;
        self.count(
            "server.max_connections",
            c.server.max_connections as u64,
            1,
            bounds::MAX_CONNECTIONS,
        )?;
        self.count(
            "server.workers",
            c.server.workers as u64,
            0,
            bounds::WORKERS,
        )?;
        self.at_most(
            "server.shutdown_grace",
            c.server.shutdown_grace,
            bounds::SHUTDOWN_GRACE,
        )?;
        let t = &c.server.timeouts;
        let timeouts = [
            ("server.timeouts.request_head", t.request_head),
            ("server.timeouts.request_body_idle", t.request_body_idle),
            ("server.timeouts.response_write_idle", t.response_write_idle),
            ("server.timeouts.keepalive_idle", t.keepalive_idle),
        ];
        for (path, d) in timeouts {
            self.period(path, d, bounds::REQUEST_TIMEOUT)?;
        }
        self.count(
            "server.h2.max_concurrent_streams",
            c.server.h2.max_concurrent_streams.into(),
            1,
            bounds::H2_STREAMS,
        )?;
        self.tls("server.tls", c.server.tls.as_ref())?;
        if c.auth.is_none() && !c.server.listen.ip().is_loopback() {
            return self.fail(
                "server.listen",
                format!(
                    "{} is not a loopback address, so client auth is required: set \
                     `auth: {{ tokens_env: [VAR] }}`, or `auth: {{ mode: none }}` to serve \
                     without it",
                    c.server.listen
                ),
            );
        }
        Ok(())
    }

    fn admin(&self, c: &Config) -> Checked {
        // Port 0 asks the OS for a fresh port per listener, so it can never clash.
        if c.admin.listen == c.server.listen && c.admin.listen.port() != 0 {
            return self.fail_any(
                &["admin.listen", "server.listen"],
                format!("admin.listen and server.listen are both {}", c.admin.listen),
            );
        }
        if let Some(var) = &c.admin.token_env {
            self.env_name("admin.token_env", var)?;
        }
        self.history(&c.admin.history)?;
        self.tls("admin.tls", c.admin.tls.as_ref())
    }

    /// `admin.history`: a period within its bounds, a window of at least one and at most
    /// [`bounds::HISTORY_POINTS`] periods.
    fn history(&self, h: &HistoryConfig) -> Checked {
        if h.period < bounds::HISTORY_PERIOD_MIN {
            return self.fail(
                "admin.history.period",
                format!(
                    "{} is too short: must be at least {}",
                    humantime::format_duration(h.period),
                    humantime::format_duration(bounds::HISTORY_PERIOD_MIN)
                ),
            );
        }
        self.at_most("admin.history.period", h.period, bounds::HISTORY_PERIOD_MAX)?;
        if h.window < h.period {
            return self.fail(
                "admin.history.window",
                format!(
                    "{} is shorter than admin.history.period ({})",
                    humantime::format_duration(h.window),
                    humantime::format_duration(h.period)
                ),
            );
        }
        let points = h.points() as u64;
        if points > bounds::HISTORY_POINTS {
            return self.fail(
                "admin.history.window",
                format!(
                    "{} holds {points} periods of {}: at most {} samples are kept per series",
                    humantime::format_duration(h.window),
                    humantime::format_duration(h.period),
                    bounds::HISTORY_POINTS
                ),
            );
        }
        Ok(())
    }

    /// A listener's TLS section: both files named, a handshake timeout within its bound (the
    /// files themselves are read by [`Config::check_files`]).
    fn tls(&self, at: &str, tls: Option<&TlsConfig>) -> Checked {
        let Some(tls) = tls else { return Ok(()) };
        for (field, path) in [("cert_path", &tls.cert_path), ("key_path", &tls.key_path)] {
            if path.as_os_str().is_empty() {
                return self.fail(&key(at, field), "must name a PEM file");
            }
        }
        self.period(
            &key(at, "handshake_timeout"),
            tls.handshake_timeout,
            bounds::TLS_HANDSHAKE,
        )
    }

    fn auth(&self, c: &Config) -> Checked {
        let Some(auth) = &c.auth else { return Ok(()) };
        match auth.mode {
            AuthMode::Tokens if auth.tokens_env.is_empty() => self.fail(
                "auth.tokens_env",
                "at least one variable name is required (or set `mode: none`)",
            ),
            AuthMode::None if !auth.tokens_env.is_empty() => self.fail(
                "auth.tokens_env",
                "must be empty with `mode: none` (remove it or remove `mode: none`)",
            ),
            _ => {
                for (i, var) in auth.tokens_env.iter().enumerate() {
                    self.env_name(&join_index("auth.tokens_env", i), var)?;
                }
                Ok(())
            }
        }
    }

    /// Either `base_url` (and `api_key_env`) or `targets`, each target with a URL, an
    /// optional key variable, a weight and a name unique within the provider.
    fn targets(&self, at: &str, p: &ProviderConfig) -> Checked {
        match (&p.base_url, p.targets.is_empty()) {
            (Some(_), false) => {
                return self.fail(
                    &key(at, "targets"),
                    "give either `base_url` (one target) or `targets`, not both",
                )
            }
            (None, true) => {
                return self.fail(&key(at, "base_url"), "required (or give `targets`)");
            }
            _ => {}
        }
        if !p.targets.is_empty() && p.api_key_env.is_some() {
            return self.fail(
                &key(at, "api_key_env"),
                "with `targets`, each target names its own `api_key_env`",
            );
        }
        let targets = p.target_list();
        let mut seen = HashMap::new();
        for target in &targets {
            let here = match target.path {
                Some(j) => join_index(&key(at, "targets"), j),
                None => at.to_owned(),
            };
            self.http_url(&key(&here, "base_url"), target.base_url)?;
            if let Some(var) = target.api_key_env {
                self.env_name(&key(&here, "api_key_env"), var)?;
            }
            if target.path.is_some() {
                let name_path = key(&here, "name");
                self.name(&name_path, &target.name)?;
                self.unique(&mut seen, "target", &target.name, name_path)?;
                self.count(
                    &key(&here, "weight"),
                    target.weight.into(),
                    1,
                    bounds::TARGET_WEIGHT,
                )?;
            }
        }
        Ok(())
    }

    fn providers(&self, providers: &[ProviderConfig]) -> Checked {
        let mut seen = HashMap::new();
        for (i, p) in providers.iter().enumerate() {
            let at = join_index("providers", i);
            let name_path = key(&at, "name");
            self.name(&name_path, &p.name)?;
            if RESERVED_PROVIDER_NAMES.contains(&p.name.as_str()) {
                return self.fail(
                    &name_path,
                    format!("`{}` is reserved for the gateway's own routes", p.name),
                );
            }
            self.unique(&mut seen, "provider", &p.name, name_path)?;
            self.targets(&at, p)?;
            self.count(
                &key(&at, "max_keys"),
                p.max_keys as u64,
                1,
                bounds::MAX_KEYS,
            )?;
            for (j, code) in p.failure_status.iter().flatten().enumerate() {
                if !(100..=599).contains(code) {
                    return self.fail(
                        &join_index(&key(&at, "failure_status"), j),
                        format!("{code} is not an HTTP status code (100..=599)"),
                    );
                }
            }
            let t = key(&at, "timeouts");
            self.period(
                &key(&t, "connect"),
                p.timeouts.connect,
                bounds::CONNECT_TIMEOUT,
            )?;
            self.period(
                &key(&t, "first_byte"),
                p.timeouts.first_byte,
                bounds::REQUEST_TIMEOUT,
            )?;
            self.period(&key(&t, "idle"), p.timeouts.idle, bounds::REQUEST_TIMEOUT)?;
            self.period(&key(&t, "total"), p.timeouts.total, bounds::REQUEST_TIMEOUT)?;
            let f = key(&at, "failover");
            self.count(
                &key(&f, "max_attempts"),
                p.failover.max_attempts.into(),
                1,
                bounds::MAX_ATTEMPTS,
            )?;
            let b = key(&at, "retry_budget");
            self.fraction(&key(&b, "ratio"), p.retry_budget.ratio, true)?;
            self.count(
                &key(&b, "min_per_second"),
                p.retry_budget.min_per_second.into(),
                0,
                bounds::RETRIES_PER_SECOND,
            )?;
            self.at_most(&key(&at, "slow_start"), p.slow_start, bounds::SLOW_START)?;
            self.breaker(&key(&at, "circuit_breaker"), &p.circuit_breaker)?;
            self.endpoints(&at, p)?;
        }
        // Fallbacks are checked once every name is known.
        let by_name: HashMap<&str, &ProviderConfig> =
            providers.iter().map(|p| (p.name.as_str(), p)).collect();
        for (i, p) in providers.iter().enumerate() {
            let list = key(&join_index("providers", i), "fallbacks");
            for (j, target) in p.fallbacks.iter().enumerate() {
                let path = join_index(&list, j);
                match by_name.get(target.as_str()) {
                    None => return self.fail(&path, format!("unknown provider `{target}`")),
                    Some(_) if *target == p.name => {
                        return self.fail(&path, "a provider cannot fall back to itself")
                    }
                    Some(other) if other.kind != p.kind => {
                        return self.fail(
                            &path,
                            format!(
                                "provider `{target}` is of kind `{}`, but `{}` is of kind `{}`; \
                                 fallbacks must have the same kind",
                                other.kind.as_str(),
                                p.name,
                                p.kind.as_str()
                            ),
                        )
                    }
                    Some(_) => {}
                }
                if p.fallbacks[..j].contains(target) {
                    return self.fail(&path, format!("`{target}` is listed twice"));
                }
            }
        }
        Ok(())
    }

    /// `endpoints` (each template was checked when read) and `idle_evict` of provider `p` at `at`.
    fn endpoints(&self, at: &str, p: &ProviderConfig) -> Checked {
        let list = key(at, "endpoints");
        for (j, template) in p.endpoints.iter().enumerate() {
            if p.endpoints[..j].contains(template) {
                return self.fail(
                    &join_index(&list, j),
                    format!("`{template}` is listed twice"),
                );
            }
        }
        let Some(idle_evict) = p.idle_evict else {
            return Ok(());
        };
        let path = key(at, "idle_evict");
        self.positive(&path, idle_evict)?;
        let window = p.circuit_breaker.window;
        if idle_evict < window {
            return self.fail(
                &path,
                format!(
                    "{} is shorter than circuit_breaker.window ({}): an endpoint evicted between \
                     two calls would forget failures its window still counts",
                    humantime::format_duration(idle_evict),
                    humantime::format_duration(window)
                ),
            );
        }
        if idle_evict > MAX_IDLE_EVICT {
            return self.fail(
                &path,
                format!(
                    "{} is longer than {}",
                    humantime::format_duration(idle_evict),
                    humantime::format_duration(MAX_IDLE_EVICT)
                ),
            );
        }
        Ok(())
    }

    fn breaker(&self, at: &str, b: &BreakerSettings) -> Checked {
        self.at_least_one(&key(at, "failure_threshold"), b.failure_threshold.into())?;
        if let Some(rate) = b.failure_rate_threshold {
            self.fraction(&key(at, "failure_rate_threshold"), rate, false)?;
        }
        self.period(&key(at, "window"), b.window, bounds::MEASUREMENT)?;
        self.count(
            &key(at, "window_buckets"),
            b.window_buckets.into(),
            1,
            bounds::WINDOW_BUCKETS,
        )?;
        if b.window < Duration::from_millis(b.window_buckets.into()) {
            return self.fail_any(
                &[&key(at, "window_buckets"), &key(at, "window")],
                format!(
                    "{} buckets over a {:?} window leaves less than 1ms per bucket",
                    b.window_buckets, b.window
                ),
            );
        }
        self.at_least_one(&key(at, "minimum_calls"), b.minimum_calls.into())?;
        if let Some(rate) = b.slow_call_rate_threshold {
            self.fraction(&key(at, "slow_call_rate_threshold"), rate, false)?;
        }
        self.fraction(&key(at, "jitter"), b.jitter, true)?;
        self.count(
            &key(at, "half_open_max_calls"),
            b.half_open_max_calls.into(),
            1,
            bounds::HALF_OPEN_CALLS,
        )?;
        let periods = [
            (
                "slow_call_duration",
                b.slow_call_duration,
                bounds::MEASUREMENT,
            ),
            ("open_timeout", b.open_timeout, bounds::BREAKER_PERIOD),
            (
                "half_open_timeout",
                b.half_open_timeout,
                bounds::BREAKER_PERIOD,
            ),
            ("check_interval", b.check_interval, bounds::MEASUREMENT),
            ("retry_after_max", b.retry_after_max, bounds::BREAKER_PERIOD),
        ];
        for (name, d, max) in periods {
            self.period(&key(at, name), d, max)?;
        }
        let Some(max) = b.open_timeout_max else {
            return Ok(());
        };
        self.at_most(&key(at, "open_timeout_max"), max, bounds::BREAKER_PERIOD)?;
        if max < b.open_timeout {
            return self.fail(
                &key(at, "open_timeout_max"),
                format!(
                    "{} is shorter than open_timeout ({})",
                    humantime::format_duration(max),
                    humantime::format_duration(b.open_timeout)
                ),
            );
        }
        Ok(())
    }

    fn feature_flags(&self, c: &Config) -> Checked {
        let Some(f) = &c.feature_flags else {
            return Ok(());
        };
        self.http_url(
            "feature_flags.url",
            &f.url.replace("{host}", "flags.invalid"),
        )?;
        self.period("feature_flags.min_ttl", f.min_ttl, bounds::FLAG_TTL)?;
        self.at_most("feature_flags.max_ttl", f.max_ttl, bounds::FLAG_TTL)?;
        if let Some(grace) = f.idle_grace {
            self.at_most("feature_flags.idle_grace", grace, bounds::FLAG_TTL)?;
        }
        self.period(
            "feature_flags.fetch_timeout",
            f.fetch_timeout,
            bounds::CONNECT_TIMEOUT,
        )?;
        if f.min_ttl > f.max_ttl {
            return self.fail_any(
                &["feature_flags.min_ttl", "feature_flags.max_ttl"],
                format!(
                    "min_ttl ({}) is longer than max_ttl ({})",
                    humantime::format_duration(f.min_ttl),
                    humantime::format_duration(f.max_ttl)
                ),
            );
        }
        if f.ttl < f.min_ttl || f.ttl > f.max_ttl {
            return self.fail_any(
                &[
                    "feature_flags.ttl",
                    "feature_flags.min_ttl",
                    "feature_flags.max_ttl",
                ],
                format!(
                    "ttl ({}) must lie within min_ttl ({}) and max_ttl ({})",
                    humantime::format_duration(f.ttl),
                    humantime::format_duration(f.min_ttl),
                    humantime::format_duration(f.max_ttl)
                ),
            );
        }
        Ok(())
    }

    fn telemetry(&self, c: &Config) -> Checked {
        let Some(t) = &c.telemetry else {
            return Ok(());
        };
        if !c.pipelines.iter().any(|p| p.name == t.pipeline) {
            return self.fail(
                "telemetry.pipeline",
                format!("unknown pipeline `{}`", t.pipeline),
            );
        }
        Ok(())
    }

    fn pipelines(&self, pipelines: &[PipelineConfig]) -> Checked {
        let mut seen = HashMap::new();
        for (i, p) in pipelines.iter().enumerate() {
            let at = join_index("pipelines", i);
            let name_path = key(&at, "name");
            self.name(&name_path, &p.name)?;
            self.unique(&mut seen, "pipeline", &p.name, name_path)?;
            self.count(
                &key(&at, "queue.capacity"),
                p.queue.capacity as u64,
                1,
                bounds::EVENTS_HELD,
            )?;
            self.size(&key(&at, "max_body"), p.max_body, bounds::MAX_BODY)?;
            self.count(
                &key(&at, "max_depth"),
                p.max_depth.into(),
                1,
                bounds::MAX_DEPTH,
            )?;
            if p.outputs.is_empty() {
                return self.fail(&key(&at, "outputs"), "a pipeline needs at least one output");
            }
            let mut outputs = HashMap::new();
            for (j, o) in p.outputs.iter().enumerate() {
                let out = join_index(&key(&at, "outputs"), j);
                let name_path = key(&out, "name");
                self.name(&name_path, &o.name)?;
                self.unique(&mut outputs, "output", &o.name, name_path)?;
                self.output(&out, o)?;
            }
            let f = key(&at, "fallback");
            self.fraction(
                &key(&f, "sampling.min_rate"),
                p.fallback.sampling.min_rate,
                true,
            )?;
            self.count(
                &key(&f, "sampling.start_percent"),
                p.fallback.sampling.start_percent.into(),
                0,
                100,
            )?;
            self.count(
                &key(&f, "retry_buffer"),
                p.fallback.retry_buffer as u64,
                0,
                bounds::EVENTS_HELD,
            )?;
            self.buffer(&at, p)?;
        }
        Ok(())
    }

    /// `buffer` of pipeline `p` at `at`: disk keys only with `type: disk`, `sync_interval` only
    /// with `sync: interval`, and a `max_size` every acceptable body fits in.
    fn buffer(&self, pipeline_at: &str, p: &PipelineConfig) -> Checked {
        let b = &p.buffer;
        let at = key(pipeline_at, "buffer");
        if b.kind == BufferType::Memory {
            for field in ["path", "max_size", "sync", "sync_interval"] {
                let path = key(&at, field);
                if self.spans.contains(&path) {
                    return self.fail(&path, "only with `type: disk`");
                }
            }
            return Ok(());
        }
        match &b.path {
            None => return self.fail(&key(&at, "path"), "a `disk` buffer needs `path`"),
            Some(dir) if dir.as_os_str().is_empty() => {
                return self.fail(&key(&at, "path"), "must not be empty")
            }
            Some(_) => {}
        }
        if matches!(p.name.as_str(), "." | "..") {
            return self.fail(
                &key(&at, "path"),
                format!(
                    "pipeline `{}` cannot keep a log of its own under it",
                    p.name
                ),
            );
        }
        let max_size = key(&at, "max_size");
        self.size(&max_size, b.max_size, bounds::BUFFER_SIZE)?;
        let least = p.max_body.saturating_add(bounds::BUFFER_SLACK);
        if b.max_size < least {
            return self.fail_any(
                &[&max_size, &key(pipeline_at, "max_body")],
                format!(
                    "{} bytes cannot hold one request: must be at least max_body ({}) + 64 KiB \
                     ({least} bytes)",
                    b.max_size, p.max_body
                ),
            );
        }
        let interval = key(&at, "sync_interval");
        if b.sync != SyncPolicy::Interval && self.spans.contains(&interval) {
            return self.fail(&interval, "only with `sync: interval`");
        }
        self.period(&interval, b.sync_interval, bounds::SYNC_INTERVAL)
    }

    fn output(&self, at: &str, o: &OutputConfig) -> Checked {
        let kind = o.kind.as_str();
        match o.kind {
            OutputType::Http | OutputType::Otlp => match &o.endpoint {
                None => {
                    return self.fail(
                        &key(at, "endpoint"),
                        format!("an `{kind}` output needs `endpoint`"),
                    )
                }
                Some(_) => {
                    let mut seen: Vec<&str> = Vec::new();
                    for (j, url) in o.endpoints().enumerate() {
                        let path = if j == 0 {
                            key(at, "endpoint")
                        } else {
                            join_index(&key(at, "alternates"), j - 1)
                        };
                        self.http_url(&path, url)?;
                        if seen.contains(&url) {
                            return self.fail(&path, format!("endpoint {url:?} is listed twice"));
                        }
                        seen.push(url);
                    }
                }
            },
            _ if o.endpoint.is_some() => {
                return self.fail(
                    &key(at, "endpoint"),
                    format!("not allowed for a `{kind}` output"),
                )
            }
            _ if !o.alternates.is_empty() => {
                return self.fail(
                    &key(at, "alternates"),
                    format!("not allowed for a `{kind}` output"),
                )
            }
            _ => {}
        }
        match (&o.path, o.kind) {
            (None, OutputType::File) => {
                return self.fail(&key(at, "path"), "a `file` output needs `path`")
            }
            (Some(p), OutputType::File) if p.as_os_str().is_empty() => {
                return self.fail(&key(at, "path"), "must not be empty")
            }
            (
                Some(_),
                OutputType::Http | OutputType::Stdout | OutputType::Blackhole | OutputType::Otlp,
            ) => {
                return self.fail(
                    &key(at, "path"),
                    format!("not allowed for a `{kind}` output"),
                )
            }
            _ => {}
        }
        self.otlp_keys(at, o)?;
        self.period(&key(at, "timeout"), o.timeout, bounds::REQUEST_TIMEOUT)?;
        self.count(
            &key(at, "batch.max_events"),
            o.batch.max_events as u64,
            1,
            bounds::BATCH_EVENTS,
        )?;
        self.size(
            &key(at, "batch.max_bytes"),
            o.batch.max_bytes,
            bounds::BATCH_BYTES,
        )?;
        self.at_most(&key(at, "batch.linger"), o.batch.linger, bounds::LINGER)?;
        self.breaker(
            &key(at, "resilience.circuit_breaker"),
            &o.resilience.circuit_breaker,
        )
    }

    /// `headers` and `compression`: only on an `otlp` output; each header a valid name and
    /// value that Seawall does not set itself.
    fn otlp_keys(&self, at: &str, o: &OutputConfig) -> Checked {
        let kind = o.kind.as_str();
        let compression = key(at, "compression");
        if o.kind != OutputType::Otlp {
            if !o.headers.is_empty() {
                return self.fail(
                    &key(at, "headers"),
                    format!("not allowed for a `{kind}` output"),
                );
            }
            if self.spans.contains(&compression) {
                return self.fail(&compression, format!("not allowed for a `{kind}` output"));
            }
            return Ok(());
        }
        for (name, value) in &o.headers {
            let here = key(&key(at, "headers"), name);
            let fail = |message: String| self.fail_any(&[&here, &key(at, "headers")], message);
            let Ok(parsed) = http::HeaderName::from_bytes(name.as_bytes()) else {
                return fail(format!("{name:?} is not a header name"));
            };
            if OTLP_RESERVED_HEADERS.contains(&parsed.as_str()) {
                return fail(format!("{name:?} is set by Seawall itself"));
            }
            if http::HeaderValue::from_str(value).is_err() {
                return fail(
                    "the value must be visible ASCII (no control characters or line breaks)".into(),
                );
            }
        }
        Ok(())
    }

    fn global_health(&self, c: &Config) -> Checked {
        let g = &c.global_health;
        self.size(
            "global_health.memory_threshold",
            g.memory_threshold,
            bounds::MEMORY_THRESHOLD,
        )?;
        self.percent(
            "global_health.queue_threshold_percent",
            g.queue_threshold_percent,
        )?;
        self.period(
            "global_health.check_interval",
            g.check_interval,
            bounds::MEASUREMENT,
        )?;
        self.percent("global_health.recover_percent", g.recover_percent)
    }

    fn cluster(&self, c: &Config) -> Checked {
        use super::cluster::{MAX_NODE_ID, MAX_PREFIX, MAX_QUORUM};
        let Some(k) = &c.cluster else {
            return Ok(());
        };
        if k.redis_url_env.trim().is_empty() {
            return self.fail("cluster.redis_url_env", "must name an environment variable");
        }
        let prefix_ok = |ch: char| ch.is_ascii_alphanumeric() || "-_.:".contains(ch);
        if k.key_prefix.is_empty() || k.key_prefix.len() > MAX_PREFIX {
            return self.fail(
                "cluster.key_prefix",
                format!("must be 1 to {MAX_PREFIX} bytes long"),
            );
        }
        if !k.key_prefix.chars().all(prefix_ok) {
            return self.fail(
                "cluster.key_prefix",
                "may hold only letters, digits, `-`, `_`, `.` and `:`",
            );
        }
        if let Some(node) = &k.node_id {
            let printable = node.chars().all(|ch| ch.is_ascii_graphic());
            if node.is_empty() || node.len() > MAX_NODE_ID || !printable {
                return self.fail(
                    "cluster.node_id",
                    format!("must be 1 to {MAX_NODE_ID} printable ASCII characters, no spaces"),
                );
            }
        }
        self.count(
            "cluster.trip_quorum",
            u64::from(k.trip_quorum),
            1,
            MAX_QUORUM,
        )?;
        self.period(
            "cluster.quorum_window",
            k.quorum_window,
            bounds::CLUSTER_PERIOD,
        )?;
        self.period("cluster.probe_lease", k.probe_lease, bounds::CLUSTER_PERIOD)?;
        self.period(
            "cluster.connect_timeout",
            k.connect_timeout,
            bounds::CLUSTER_PERIOD,
        )
    }
}

impl Config {
    /// Checks what the configuration names on this host, which [`parse`](super::parse)
    /// leaves alone: the TLS certificate and key files of `server.tls` and `admin.tls` can be
    /// read and belong together, the directory of each `file` output exists (the file itself
    /// is created at start-up), and the path is not a directory. `seawall check` and
    /// `seawall run` call it.
    ///
    /// ```
    /// let yaml = "pipelines: [{ name: p, outputs: [{ name: f, type: file, path: /no-such-dir/x.ndjson }] }]";
    /// let err = seawall::config::parse(yaml).unwrap().check_files().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "config error: pipelines[0].outputs[0].path at 1:63: directory /no-such-dir does not exist"
    /// );
    /// ```
    pub fn check_files(&self) -> Result<(), ConfigError> {
        for (at, tls) in [
            ("server.tls", &self.server.tls),
            ("admin.tls", &self.admin.tls),
        ] {
            if let Some(Err(error)) = tls.as_ref().map(TlsConfig::load) {
                let field = key(at, error.field().key());
                return Err(invalid_at(&self.spans, &field, error.to_string()));
            }
        }
        for (i, p) in self.pipelines.iter().enumerate() {
            for (j, o) in p.outputs.iter().enumerate() {
                let Some(path) = o.path.as_deref() else {
                    continue;
                };
                let at = key(
                    &join_index(&key(&join_index("pipelines", i), "outputs"), j),
                    "path",
                );
                if let Err(problem) = check_file_path(path) {
                    return Err(invalid_at(&self.spans, &at, problem));
                }
            }
            let Some(dir) = p
                .buffer
                .path
                .as_deref()
                .filter(|_| p.buffer.kind == BufferType::Disk)
            else {
                continue;
            };
            if dir.exists() && !dir.is_dir() {
                let at = key(&join_index("pipelines", i), "buffer.path");
                let problem = format!("{} is not a directory", dir.display());
                return Err(invalid_at(&self.spans, &at, problem));
            }
        }
        Ok(())
    }
}

/// Whether a `file` output can append to `path`: its directory exists and it is not itself a
/// directory.
fn check_file_path(path: &std::path::Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(format!("directory {} does not exist", dir.display()));
        }
    }
    if path.is_dir() {
        return Err(format!("{} is a directory", path.display()));
    }
    Ok(())
}

/// Checks that `url` is an absolute `http`/`https` URL with a host and no query or fragment.
fn check_http_url(url: &str) -> Result<(), &'static str> {
    if url.contains('#') {
        return Err("a fragment is not allowed");
    }
    let uri: http::Uri = url.parse().map_err(|_| "not a URL")?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err("the scheme must be http or https"),
        None => return Err("expected an absolute URL starting with http:// or https://"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the host is missing");
    }
    if uri.query().is_some() {
        return Err("a query string is not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_http_url;

    #[test]
    fn http_urls() {
        assert_eq!(check_http_url("https://api.anthropic.com"), Ok(()));
        assert_eq!(check_http_url("http://collector-a:4318/ingest"), Ok(()));
        assert_eq!(check_http_url("http://[::1]:8080/v1"), Ok(()));
        assert_eq!(
            check_http_url("ftp://example.com"),
            Err("the scheme must be http or https")
        );
        assert_eq!(
            check_http_url("api.anthropic.com"),
            Err("expected an absolute URL starting with http:// or https://")
        );
        assert_eq!(check_http_url("https://a b"), Err("not a URL"));
        assert_eq!(
            check_http_url("https://x/?a=1"),
            Err("a query string is not allowed")
        );
    }
}
