//! Loader tests: the fixtures in `tests/fixtures/config/` and one inline document per
//! impossible value, each asserting the exact field path and `line:column`.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn load_err(name: &str) -> ConfigError {
    match load(&fixture(name)) {
        Ok(_) => panic!("{name} loaded, expected an error"),
        Err(err) => err,
    }
}

fn parse_err(src: &str) -> ConfigError {
    match parse(src) {
        Ok(_) => panic!("parsed, expected an error:\n{src}"),
        Err(err) => err,
    }
}

/// Asserts the field path, the `line:column` and the full rendered message.
#[track_caller]
fn assert_error(err: &ConfigError, path: &str, line: usize, column: usize, message: &str) {
    assert_eq!(err.path(), Some(path), "{err}");
    assert_eq!(
        (err.line(), err.column()),
        (Some(line), Some(column)),
        "{err}"
    );
    assert_eq!(err.message(), message, "{err}");
    assert_eq!(
        err.to_string(),
        format!("config error: {path} at {line}:{column}: {message}")
    );
}

const MIB: u64 = 1 << 20;

#[test]
fn full_fixture_loads_every_key() {
    let c = load(&fixture("full.yaml")).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.server.max_body, 10 * MIB);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.admin.listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.admin.token_env.as_deref(), Some("SEAWALL_ADMIN_TOKEN"));
    let auth = c.auth.as_ref().unwrap();
    assert_eq!(
        (auth.mode, auth.tokens_env.as_slice()),
        (AuthMode::Tokens, &["SEAWALL_TOKEN".to_owned()][..])
    );

    assert_eq!(c.providers.len(), 3);
    let p = &c.providers[0];
    assert_eq!(
        (p.name.as_str(), p.kind),
        ("anthropic", ProviderKind::Anthropic)
    );
    assert_eq!(p.base_url.as_deref(), Some("https://api.anthropic.com"));
    assert_eq!(p.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
    assert!(!p.per_model);
    assert_eq!(p.max_keys, 1000);
    assert_eq!(p.failure_status, Some(vec![429, 529]));
    assert_eq!(
        p.timeouts,
        ProviderTimeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(120),
        }
    );
    let b = &p.circuit_breaker;
    assert!(b.enabled);
    assert_eq!(b.failure_threshold, 5);
    assert_eq!(b.failure_rate_threshold, Some(0.5));
    assert_eq!(
        (b.window, b.window_buckets, b.minimum_calls),
        (Duration::from_secs(10), 10, 20)
    );
    assert_eq!(b.slow_call_rate_threshold, Some(0.8));
    assert_eq!(b.slow_call_duration, Duration::from_secs(30));
    assert_eq!(b.open_timeout, Duration::from_secs(30));
    assert_eq!(b.open_timeout_max, Some(Duration::from_secs(300)));
    assert_eq!(b.jitter, 0.1);
    assert_eq!(b.half_open_max_calls, 3);
    assert_eq!(b.half_open_timeout, Duration::from_secs(90));
    assert_eq!(b.check_interval, Duration::from_secs(1));
    assert_eq!(b.retry_after_max, Duration::from_secs(600));
    assert_eq!(p.fallbacks, ["anthropic-backup"]);
    assert!(c.providers[1].per_model);
    assert_eq!(c.providers[2].kind, ProviderKind::Openai);
    let templates: Vec<&str> = c.providers[2]
        .endpoints
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(templates, ["/v1/threads/{id}/runs", "/v1/models/{model}"]);
    assert_eq!(c.providers[2].idle_evict, Some(Duration::from_secs(900)));

    let f = c.feature_flags.as_ref().unwrap();
    assert_eq!(
        f.url,
        "https://{host}/api/2.0/connector-service/feature-flags/SEAWALL/1"
    );
    assert_eq!(
        (f.ttl, f.min_ttl, f.max_ttl),
        (
            Duration::from_secs(900),
            Duration::from_secs(60),
            Duration::from_secs(3600)
        )
    );
    assert_eq!(f.fetch_timeout, Duration::from_secs(5));
    assert_eq!(f.effective_idle_grace(), Duration::from_secs(900));
    assert_eq!(c.telemetry.as_ref().unwrap().pipeline, "requests");

    let pl = &c.pipelines[0];
    assert_eq!(
        (pl.name.as_str(), pl.queue.capacity, pl.max_body),
        ("requests", 100_000, 10 * MIB)
    );
    let kinds: Vec<(&str, OutputType)> = pl
        .outputs
        .iter()
        .map(|o| (o.name.as_str(), o.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("primary", OutputType::Http),
            ("archive", OutputType::File),
            ("console", OutputType::Stdout),
            ("void", OutputType::Blackhole)
        ]
    );
    let primary = &pl.outputs[0];
    assert_eq!(
        primary.endpoints().collect::<Vec<_>>(),
        [
            "http://collector-a:4318/ingest",
            "http://collector-b:4318/ingest"
        ]
    );
    assert_eq!(primary.timeout, Duration::from_secs(10));
    assert_eq!(
        primary.batch,
        BatchConfig {
            max_events: 1000,
            max_bytes: MIB,
            linger: Duration::from_millis(200)
        }
    );
    let ob = &primary.resilience.circuit_breaker;
    assert_eq!((ob.failure_threshold, ob.half_open_max_calls), (10, 5));
    assert_eq!(ob.check_interval, Duration::from_secs(10));
    assert_eq!(ob.window, BreakerSettings::default().window);
    assert_eq!(
        pl.outputs[1].path,
        Some(PathBuf::from("/tmp/seawall-fixture-requests.ndjson"))
    );
    assert_eq!(pl.fallback.reroute.max_attempts, 3);
    assert_eq!(
        (pl.fallback.sampling.min_rate, pl.fallback.sampling.seed),
        (0.1, Some(42))
    );
    assert_eq!(pl.fallback.retry_buffer, 50_000);

    let g = &c.global_health;
    assert!(g.enabled && g.memory_check_enabled && g.queue_check_enabled);
    assert_eq!(g.memory_threshold, 1 << 30, "1024MB is read as 1024 MiB");
    assert_eq!((g.queue_threshold_percent, g.recover_percent), (80, 90));
    assert_eq!(g.check_interval, Duration::from_secs(30));
    let k = c.cluster.as_ref().unwrap();
    assert_eq!(
        (
            k.redis_url_env.as_str(),
            k.key_prefix.as_str(),
            k.node_id.as_deref()
        ),
        ("SEAWALL_REDIS_URL", "seawall:prod", Some("gw-1"))
    );
    assert_eq!(k.trip_quorum, 2);
    assert_eq!(
        (k.quorum_window, k.probe_lease, k.connect_timeout),
        (
            Duration::from_secs(20),
            Duration::from_secs(3),
            Duration::from_secs(1)
        )
    );
    assert_eq!(
        c.position_of("providers[1].name"),
        Some(Position::new(16, 11))
    );
}

#[test]
fn minimal_fixture_gets_documented_defaults() {
    let c = load(&fixture("minimal.yaml")).unwrap();
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.server.max_body, 10 * MIB);
    assert_eq!(c.admin.listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.admin.token_env, None);
    assert!(c.auth.is_none() && c.feature_flags.is_none() && c.telemetry.is_none());
    assert!(c.pipelines.is_empty());
    let p = &c.providers[0];
    assert_eq!(
        (p.max_keys, p.per_model, p.failure_status.clone()),
        (1000, false, None)
    );
    assert!(p.endpoints.is_empty());
    assert_eq!(p.idle_evict, None);
    assert_eq!(p.effective_idle_evict(), Duration::from_secs(600));
    assert_eq!(p.circuit_breaker, BreakerSettings::default());
    assert_eq!(p.circuit_breaker.failure_rate_threshold, None);
    assert_eq!(
        p.circuit_breaker.effective_open_timeout_max(),
        Duration::from_secs(300)
    );
    assert_eq!(c.global_health, GlobalHealthConfig::default());
    assert!(!c.global_health.memory_check_enabled);
}

#[test]
fn unknown_key_nested_deep_names_the_key() {
    let err = load_err("unknown_key_deep.yaml");
    assert_eq!(
        err.path(),
        Some("pipelines[0].outputs[0].resilience.circuit_breaker.half_open_max_cals")
    );
    assert_eq!(err.position(), Some(Position::new(14, 13)));
    assert!(err
        .message()
        .starts_with("unknown field `half_open_max_cals`, expected one of enabled,"));
}

#[test]
fn bad_duration_is_reported_at_the_value() {
    let err = load_err("bad_duration.yaml");
    assert_eq!(err.path(), Some("providers[0].timeouts.first_byte"));
    assert_eq!(err.position(), Some(Position::new(7, 19)));
    assert!(err
        .message()
        .starts_with("invalid duration \"60 seconds please\" (expected e.g. `500ms`"));
}

#[test]
fn bad_size_is_reported_at_the_value() {
    let err = load_err("bad_size.yaml");
    assert_error(
        &err,
        "server.max_body",
        3,
        13,
        "invalid size \"10 megabytes\" (expected e.g. `512KB`, `10MB`, `1GB`; units are binary, 1MB = 1048576 bytes)",
    );
}

#[test]
fn failure_rate_above_one_is_rejected() {
    let err = load_err("rate_out_of_range.yaml");
    assert_error(
        &err,
        "providers[0].circuit_breaker.failure_rate_threshold",
        7,
        31,
        "1.5 is out of range: must be in (0, 1]",
    );
}

#[test]
fn duplicate_provider_name_points_at_second_definition() {
    let err = load_err("duplicate_provider.yaml");
    assert_error(
        &err,
        "providers[2].name",
        8,
        11,
        "duplicate provider name `openai` (first defined at providers[0].name at 2:11)",
    );
}

#[test]
fn fallback_to_unknown_provider_is_rejected() {
    let err = load_err("fallback_unknown.yaml");
    assert_error(
        &err,
        "providers[0].fallbacks[0]",
        5,
        17,
        "unknown provider `anthropic-backup`",
    );
}

#[test]
fn fallback_to_other_kind_is_rejected() {
    let err = load_err("fallback_other_kind.yaml");
    assert_error(
        &err,
        "providers[0].fallbacks[0]",
        6,
        9,
        "provider `openai` is of kind `openai`, but `anthropic` is of kind `anthropic`; fallbacks must have the same kind",
    );
}

#[test]
fn hostname_listen_address_is_rejected() {
    let err = load_err("bad_listen.yaml");
    assert_error(
        &err,
        "admin.listen",
        4,
        11,
        "invalid listen address \"localhost:9090\": expected IP:PORT such as `127.0.0.1:8080` or `[::1]:8080`",
    );
}

#[test]
fn half_open_max_calls_zero_is_rejected() {
    let err = load_err("half_open_zero.yaml");
    assert_error(
        &err,
        "pipelines[0].outputs[0].resilience.circuit_breaker.half_open_max_calls",
        7,
        51,
        "must be at least 1",
    );
}

#[test]
fn yaml_syntax_error_has_path_and_position() {
    let err = load_err("syntax_error.yaml");
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert_error(
        &err,
        "providers[0].base_url",
        6,
        15,
        "invalid YAML: unclosed bracket '['",
    );
}

#[test]
fn missing_file_is_an_io_error() {
    let err = load(&fixture("does-not-exist.yaml")).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert_eq!((err.path(), err.line()), (None, None));
    assert!(err.to_string().starts_with("config error: cannot read "));
}

const OPENAI: &str = "{ name: o, kind: openai, base_url: 'https://api.openai.com' }";

#[test]
fn fallback_to_itself_is_rejected() {
    let err = parse_err(
        "providers:\n  - { name: o, kind: openai, base_url: 'https://x', fallbacks: [o] }\n",
    );
    assert_error(
        &err,
        "providers[0].fallbacks[0]",
        2,
        65,
        "a provider cannot fall back to itself",
    );
}

#[test]
fn base_url_must_be_http_url() {
    let err = parse_err(
        "providers:\n  - name: o\n    kind: openai\n    base_url: ftp://files.example.com\n",
    );
    assert_error(
        &err,
        "providers[0].base_url",
        4,
        15,
        "invalid URL \"ftp://files.example.com\": the scheme must be http or https",
    );
    let err = parse_err("providers: [{ name: o, kind: openai, base_url: api.openai.com }]");
    assert_eq!(
        (err.path(), err.column()),
        (Some("providers[0].base_url"), Some(48))
    );
}

#[test]
fn open_timeout_max_below_open_timeout_is_rejected() {
    let src = format!(
        "providers:\n  - {}\n",
        OPENAI.replace(
            " }",
            ", circuit_breaker: { open_timeout: 1m, open_timeout_max: 30s } }"
        )
    );
    let err = parse_err(&src);
    assert_error(
        &err,
        "providers[0].circuit_breaker.open_timeout_max",
        2,
        121,
        "30s is shorter than open_timeout (1m)",
    );
}

#[test]
fn min_ttl_above_max_ttl_is_rejected() {
    let err =
        parse_err("feature_flags:\n  url: https://{host}/flags\n  min_ttl: 2h\n  max_ttl: 1h\n");
    assert_error(
        &err,
        "feature_flags.min_ttl",
        3,
        12,
        "min_ttl (2h) is longer than max_ttl (1h)",
    );
}

#[test]
fn zero_durations_are_rejected_where_meaningless() {
    let err = parse_err(&format!(
        "providers:\n  - {}\n",
        OPENAI.replace(" }", ", timeouts: { idle: 0s } }")
    ));
    assert_error(
        &err,
        "providers[0].timeouts.idle",
        2,
        84,
        "must be greater than zero",
    );
    assert!(parse("server: { shutdown_grace: 0s }").is_ok());
}

#[test]
fn queue_capacity_zero_is_rejected() {
    let err = parse_err("pipelines:\n  - name: p\n    queue: { capacity: 0 }\n    outputs: [{ name: s, type: stdout }]\n");
    assert_error(
        &err,
        "pipelines[0].queue.capacity",
        3,
        24,
        "must be at least 1",
    );
}

#[test]
fn queue_threshold_percent_outside_1_to_100_is_rejected() {
    let err = parse_err("global_health:\n  queue_threshold_percent: 101\n");
    assert_error(
        &err,
        "global_health.queue_threshold_percent",
        2,
        28,
        "101 is out of range: must be in 1..=100",
    );
    let err = parse_err("global_health:\n  queue_threshold_percent: 0\n");
    assert_eq!(err.path(), Some("global_health.queue_threshold_percent"));
}

#[test]
fn cluster_settings_are_checked_with_their_position() {
    let err = parse_err("cluster:\n  redis_url_env: R\n  trip_quorum: 0\n");
    assert_error(&err, "cluster.trip_quorum", 3, 16, "must be at least 1");
    let err = parse_err("cluster:\n  redis_url_env: R\n  key_prefix: 'a b'\n");
    assert_error(
        &err,
        "cluster.key_prefix",
        3,
        15,
        "may hold only letters, digits, `-`, `_`, `.` and `:`",
    );
    let err = parse_err("cluster: { redis_url_env: R, probe_lease: 2h }");
    assert_eq!(err.path(), Some("cluster.probe_lease"));
    let err = parse_err("cluster: { key_prefix: x }");
    assert!(err.to_string().contains("redis_url_env"), "{err}");
    let c = crate::config::parse("cluster: { redis_url_env: R }").unwrap();
    let k = c.cluster.unwrap();
    assert_eq!((k.key_prefix.as_str(), k.trip_quorum), ("seawall", 1));
    assert_eq!(k.probe_lease, Duration::from_secs(5));
}

#[test]
fn unknown_provider_kind_is_rejected() {
    let err = parse_err("providers:\n  - name: g\n    kind: gemini\n    base_url: https://g\n");
    assert_error(
        &err,
        "providers[0].kind",
        3,
        11,
        "unknown variant `gemini`, expected one of anthropic, openai, generic",
    );
}

#[test]
fn unknown_output_type_is_rejected() {
    let err =
        parse_err("pipelines:\n  - name: p\n    outputs:\n      - { name: k, type: kafka }\n");
    assert_eq!(err.path(), Some("pipelines[0].outputs[0].type"));
    assert_eq!(err.position(), Some(Position::new(4, 26)));
    assert!(err.message().starts_with("unknown variant `kafka`"));
}

#[test]
fn telemetry_naming_unknown_pipeline_is_rejected() {
    let err = parse_err("telemetry: { pipeline: requests }\n");
    assert_error(
        &err,
        "telemetry.pipeline",
        1,
        24,
        "unknown pipeline `requests`",
    );
}

#[test]
fn failure_status_outside_100_to_599_is_rejected() {
    let err = parse_err(&format!(
        "providers:\n  - {}\n",
        OPENAI.replace(" }", ", failure_status: [429, 600] }")
    ));
    assert_error(
        &err,
        "providers[0].failure_status[1]",
        2,
        88,
        "600 is not an HTTP status code (100..=599)",
    );
}

#[test]
fn http_output_needs_endpoint_and_file_output_needs_path() {
    let err =
        parse_err("pipelines:\n  - name: p\n    outputs:\n      - name: h\n        type: http\n");
    assert_error(
        &err,
        "pipelines[0].outputs[0].endpoint",
        4,
        9,
        "an `http` output needs `endpoint`",
    );
    let err = parse_err("pipelines:\n  - name: p\n    outputs:\n      - { name: f, type: file }\n");
    assert_error(
        &err,
        "pipelines[0].outputs[0].path",
        4,
        9,
        "a `file` output needs `path`",
    );
    let err = parse_err(
        "pipelines:\n  - name: p\n    outputs:\n      - { name: s, type: stdout, path: /tmp/x }\n",
    );
    assert_error(
        &err,
        "pipelines[0].outputs[0].path",
        4,
        40,
        "not allowed for a `stdout` output",
    );
}

#[test]
fn otlp_output_keys_load_with_defaults_and_are_checked_in_place() {
    let c = parse(
        "pipelines:\n  - name: p\n    outputs:\n      - { name: o, type: otlp, endpoint: 'http://c:4318/v1/logs', headers: { authorization: Bearer x } }\n",
    )
    .unwrap();
    let o = &c.pipelines[0].outputs[0];
    assert_eq!(
        (o.kind, o.compression),
        (OutputType::Otlp, Compression::Gzip)
    );
    assert_eq!(
        o.headers.get("authorization").map(String::as_str),
        Some("Bearer x")
    );
    let err = parse_err("pipelines:\n  - name: p\n    outputs:\n      - { name: o, type: otlp }\n");
    assert_error(
        &err,
        "pipelines[0].outputs[0].endpoint",
        4,
        9,
        "an `otlp` output needs `endpoint`",
    );
    let err = parse_err(
        "pipelines:\n  - name: p\n    outputs:\n      - { name: o, type: otlp, endpoint: 'http://c/', headers: { content-type: x } }\n",
    );
    assert_error(
        &err,
        "pipelines[0].outputs[0].headers.content-type",
        4,
        80,
        "\"content-type\" is set by Seawall itself",
    );
    let err = parse_err(
        "pipelines:\n  - name: p\n    outputs:\n      - { name: o, type: http, endpoint: 'http://c/', headers: { a: b } }\n",
    );
    assert_error(
        &err,
        "pipelines[0].outputs[0].headers",
        4,
        64,
        "not allowed for a `http` output",
    );
    let err = parse_err(
        "pipelines:\n  - name: p\n    outputs:\n      - { name: o, type: stdout, compression: none }\n",
    );
    assert_error(
        &err,
        "pipelines[0].outputs[0].compression",
        4,
        47,
        "not allowed for a `stdout` output",
    );
}

#[test]
fn duplicate_pipeline_and_output_names_are_rejected() {
    let err = parse_err("pipelines:\n  - { name: p, outputs: [{ name: s, type: stdout }] }\n  - { name: p, outputs: [{ name: s, type: stdout }] }\n");
    assert_error(
        &err,
        "pipelines[1].name",
        3,
        13,
        "duplicate pipeline name `p` (first defined at pipelines[0].name at 2:13)",
    );
    let err = parse_err("pipelines:\n  - { name: p, outputs: [{ name: s, type: stdout }, { name: s, type: blackhole }] }\n");
    assert_eq!(err.path(), Some("pipelines[0].outputs[1].name"));
    assert_eq!(err.position(), Some(Position::new(2, 61)));
}

#[test]
fn missing_required_key_names_it_under_its_mapping() {
    let err = parse_err("providers:\n  - kind: openai\n    base_url: https://x\n");
    assert_error(&err, "providers[0].name", 2, 5, "missing field `name`");
    let err = parse_err("pipelines: [{ name: p, outputs: [{ type: stdout }] }]");
    assert_error(
        &err,
        "pipelines[0].outputs[0].name",
        1,
        34,
        "missing field `name`",
    );
}

#[test]
fn repeated_key_is_rejected() {
    let err = parse_err("server:\n  listen: 127.0.0.1:1\n  listen: 127.0.0.1:2\n");
    assert_error(
        &err,
        "server.listen",
        3,
        3,
        "duplicate mapping key `listen` is not allowed here",
    );
}

#[test]
fn gateway_workers_default_to_one_per_cpu() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(parse("{}").unwrap().server.workers, cpus);
    assert_eq!(parse("server: { workers: 0 }").unwrap().server.workers, 0);
    assert_eq!(parse("server: { workers: 3 }").unwrap().server.workers, 3);
    let err = parse_err("server: { workers: -1 }");
    assert_error(
        &err,
        "server.workers",
        1,
        20,
        &format!("expected a whole number from 0 to {}", usize::MAX),
    );
}

#[test]
fn negative_count_has_plain_message() {
    let err = parse_err("server: { max_connections: -1 }");
    assert_error(
        &err,
        "server.max_connections",
        1,
        28,
        &format!("expected a whole number from 0 to {}", usize::MAX),
    );
}

#[test]
fn non_loopback_listen_needs_explicit_auth_choice() {
    let err = parse_err("server: { listen: 0.0.0.0:8080 }\n");
    assert_eq!(err.path(), Some("server.listen"));
    assert_eq!(err.position(), Some(Position::new(1, 19)));
    assert!(err
        .message()
        .starts_with("0.0.0.0:8080 is not a loopback address"));
    let open = parse("server: { listen: 0.0.0.0:8080 }\nauth: { mode: none }\n").unwrap();
    assert_eq!(open.auth.unwrap().mode, AuthMode::None);
    let err = parse_err("auth: { mode: none, tokens_env: [T] }\n");
    assert_eq!(err.path(), Some("auth.tokens_env"));
    let err = parse_err("auth: { tokens_env: [not-a-var] }\n");
    assert_error(
        &err,
        "auth.tokens_env[0]",
        1,
        22,
        "\"not-a-var\" is not an environment variable name (expected e.g. `MY_TOKEN`)",
    );
}

#[test]
fn an_empty_or_comment_only_document_is_every_default() {
    for src in [
        "",
        "\n",
        "# nothing here\n",
        "---\n# only a comment\n",
        "--- # a comment\n...\n",
    ] {
        let config = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(config.server, ServerConfig::default(), "{src:?}");
        assert_eq!(config.admin, AdminConfig::default(), "{src:?}");
        assert!(config.providers.is_empty() && config.pipelines.is_empty());
        assert!(config.auth.is_none() && config.feature_flags.is_none());
    }
}

#[test]
fn sizes_accept_plain_byte_counts() {
    let c = parse("server: { max_body: 4096 }").unwrap();
    assert_eq!(c.server.max_body, 4096);
}

#[test]
fn endpoint_templates_are_checked_where_they_are_written() {
    let err = parse_err(
        "providers:\n  - { name: o, kind: openai, base_url: 'https://api.openai.com',\n      endpoints: ['/v1/x', '/v1//y'] }\n",
    );
    assert_error(
        &err,
        "providers[0].endpoints[1]",
        3,
        28,
        "invalid endpoint template \"/v1//y\": it has an empty segment (`//`)",
    );
    let err = parse_err(
        "providers:\n  - { name: o, kind: openai, base_url: 'https://api.openai.com',\n      endpoints: ['/v1/{id}', '/v1/{id}'] }\n",
    );
    assert_error(
        &err,
        "providers[0].endpoints[1]",
        3,
        31,
        "`/v1/{id}` is listed twice",
    );
}

#[test]
fn idle_evict_is_bounded_by_the_window_and_a_day() {
    let provider = |extra: &str| {
        format!("providers:\n  - {{ name: o, kind: openai, base_url: 'https://api.openai.com', {extra} }}\n")
    };
    let effective =
        |extra: &str| parse(&provider(extra)).unwrap().providers[0].effective_idle_evict();
    assert_eq!(effective(""), Duration::from_secs(600));
    assert_eq!(effective("idle_evict: 1h"), Duration::from_secs(3600));
    assert_eq!(
        effective("circuit_breaker: { window: 15m }"),
        Duration::from_secs(900),
        "unset, it follows a window longer than ten minutes"
    );
    let err = parse_err(&provider("idle_evict: 0s"));
    assert_error(
        &err,
        "providers[0].idle_evict",
        2,
        78,
        "must be greater than zero",
    );
    let err = parse_err(&provider("idle_evict: 5s"));
    assert_error(
        &err,
        "providers[0].idle_evict",
        2,
        78,
        "5s is shorter than circuit_breaker.window (10s): an endpoint evicted between two calls would forget failures its window still counts",
    );
    let err = parse_err(&provider("idle_evict: 2days"));
    assert_error(
        &err,
        "providers[0].idle_evict",
        2,
        78,
        "2days is longer than 1day",
    );
    let err = parse_err(&provider("idle_evict: soon"));
    assert_eq!(err.path(), Some("providers[0].idle_evict"));
    assert!(
        err.message().starts_with("invalid duration \"soon\""),
        "{err}"
    );
}

#[test]
fn durations_past_their_bound_are_rejected_with_field_and_position() {
    let err = parse_err("server: { shutdown_grace: 550000000000y }");
    assert_eq!(err.path(), Some("server.shutdown_grace"), "{err}");
    assert_eq!((err.line(), err.column()), (Some(1), Some(27)), "{err}");
    assert!(
        err.message().ends_with("is too long: must be at most 1h"),
        "{err}"
    );
    let linger = parse_err(
        "pipelines:\n  - name: p\n    outputs: [{ name: s, type: blackhole, batch: { linger: 550000000000y } }]\n",
    );
    assert_eq!(linger.path(), Some("pipelines[0].outputs[0].batch.linger"));
    assert_eq!((linger.line(), linger.column()), (Some(3), Some(60)));
    assert!(linger.message().ends_with("must be at most 1h"), "{linger}");
    let open = parse_err(&format!(
        "providers:\n  - {}\n",
        OPENAI.replace(" }", ", circuit_breaker: { open_timeout: 550000000000y } }")
    ));
    assert_eq!(
        open.path(),
        Some("providers[0].circuit_breaker.open_timeout")
    );
    assert!(open.message().ends_with("must be at most 1day"), "{open}");
    // The bound itself is accepted.
    assert!(parse("server: { shutdown_grace: 1h }").is_ok());
}

#[test]
fn sizes_and_counts_past_their_bound_are_rejected() {
    let cases = [
        ("server: { max_body: 2GB }", "server.max_body", "2147483648 bytes is too large: must be at most 1.0 GiB (1073741824 bytes)"),
        ("server: { workers: 5000 }", "server.workers", "5000 is too large: must be at most 1024"),
        ("global_health: { memory_threshold: 2TB }", "global_health.memory_threshold", "2199023255552 bytes is too large: must be at most 1.0 TiB (1099511627776 bytes)"),
        (
            "pipelines:\n  - { name: p, max_depth: 101, outputs: [{ name: s, type: blackhole }] }\n",
            "pipelines[0].max_depth",
            "101 is too large: must be at most 100",
        ),
        (
            "pipelines:\n  - { name: p, fallback: { sampling: { start_percent: 101 } }, outputs: [{ name: s, type: blackhole }] }\n",
            "pipelines[0].fallback.sampling.start_percent",
            "101 is too large: must be at most 100",
        ),
        (
            "pipelines:\n  - { name: p, outputs: [{ name: s, type: blackhole, resilience: { circuit_breaker: { half_open_max_calls: 5000 } } }] }\n",
            "pipelines[0].outputs[0].resilience.circuit_breaker.half_open_max_calls",
            "5000 is too large: must be at most 4095",
        ),
    ];
    for (yaml, path, message) in cases {
        let err = parse_err(yaml);
        assert_eq!(err.path(), Some(path), "{err}");
        assert!(err.position().is_some(), "{err}");
        assert_eq!(err.message(), message, "{err}");
    }
}

#[test]
fn new_pipeline_keys_have_documented_defaults() {
    let c = parse("pipelines: [{ name: p, outputs: [{ name: s, type: blackhole }] }]").unwrap();
    assert_eq!(c.pipelines[0].max_depth, 64);
    assert_eq!(c.pipelines[0].fallback.sampling.start_percent, 80);
    let c = parse("pipelines: [{ name: p, max_depth: 100, fallback: { sampling: { start_percent: 0 } }, outputs: [{ name: s, type: blackhole }] }]").unwrap();
    assert_eq!(c.pipelines[0].max_depth, 100);
    assert_eq!(c.pipelines[0].fallback.sampling.start_percent, 0);
}

#[test]
fn check_files_names_the_path_of_a_file_output_in_a_missing_directory() {
    let yaml = "pipelines:\n  - name: p\n    outputs:\n      - { name: f, type: file, path: /nonexistent-seawall-dir/x.ndjson }\n";
    let err = parse(yaml).unwrap().check_files().unwrap_err();
    assert_error(
        &err,
        "pipelines[0].outputs[0].path",
        4,
        38,
        "directory /nonexistent-seawall-dir does not exist",
    );
    let dir = std::env::temp_dir();
    let yaml = format!(
        "pipelines: [{{ name: p, outputs: [{{ name: f, type: file, path: '{}' }}] }}]",
        dir.display()
    );
    let err = parse(&yaml).unwrap().check_files().unwrap_err();
    assert!(err.message().ends_with("is a directory"), "{err}");
    let ok = format!(
        "pipelines: [{{ name: p, outputs: [{{ name: f, type: file, path: '{}' }}] }}]",
        dir.join("seawall-check-files.ndjson").display()
    );
    parse(&ok).unwrap().check_files().unwrap();
}

#[test]
fn disk_buffer_settings_are_checked_naming_field_and_position() {
    let p = |buffer: &str| {
        format!(
            "pipelines:\n  - name: p\n    buffer: {buffer}\n    outputs: [{{ name: o, type: blackhole }}]\n"
        )
    };
    let cases = [
        (
            "{ type: disk }",
            "config error: pipelines[0].buffer.path at 3:13: a `disk` buffer needs `path`",
        ),
        (
            "{ path: /var/lib/seawall }",
            "config error: pipelines[0].buffer.path at 3:21: only with `type: disk`",
        ),
        (
            "{ type: disk, path: /v, max_size: 64KB }",
            "config error: pipelines[0].buffer.max_size at 3:47: 65536 bytes cannot hold one request: must be at least max_body (10485760) + 64 KiB (10551296 bytes)",
        ),
        (
            "{ type: disk, path: /v, max_size: 2TB }",
            "config error: pipelines[0].buffer.max_size at 3:47: 2199023255552 bytes is too large: must be at most 1.0 TiB (1099511627776 bytes)",
        ),
        (
            "{ type: disk, path: /v, sync: always, sync_interval: 1s }",
            "config error: pipelines[0].buffer.sync_interval at 3:66: only with `sync: interval`",
        ),
        (
            "{ type: disk, path: /v, sync_interval: 0s }",
            "config error: pipelines[0].buffer.sync_interval at 3:52: must be greater than zero",
        ),
        (
            "{ type: disk, path: /v, sync: sometimes }",
            "config error: pipelines[0].buffer.sync at 3:43: unknown variant `sometimes`, expected one of always, interval, none",
        ),
    ];
    for (buffer, error) in cases {
        assert_eq!(parse_err(&p(buffer)).to_string(), error, "{buffer}");
    }
    let ok = parse(&p("{ type: disk, path: /var/lib/seawall/events, max_size: 1GB, sync: interval, sync_interval: 200ms }")).unwrap();
    let b = &ok.pipelines[0].buffer;
    assert_eq!(
        (b.kind, b.max_size, b.sync),
        (BufferType::Disk, 1 << 30, SyncPolicy::Interval)
    );
}

#[test]
fn admin_history_defaults_to_15_minutes_of_5s_samples_and_is_bounded() {
    let c = parse("{}").unwrap();
    assert_eq!(c.admin.history, HistoryConfig::default());
    assert_eq!(c.admin.history.points(), 180);
    let c = parse("admin: { history: { period: 5s, window: 1h } }").unwrap();
    assert_eq!(c.admin.history.points(), 720);
    let c = parse("admin: { history: { period: 7s, window: 1m } }").unwrap();
    assert_eq!(c.admin.history.points(), 9, "rounded up");
    assert_error(
        &parse_err("admin:\n  history: { period: 2s, window: 3h }\n"),
        "admin.history.window",
        2,
        34,
        "3h holds 5400 periods of 2s: at most 1440 samples are kept per series",
    );
    assert_error(
        &parse_err("admin:\n  history: { period: 10ms }\n"),
        "admin.history.period",
        2,
        22,
        "10ms is too short: must be at least 100ms",
    );
    assert_error(
        &parse_err("admin: { history: { period: 1m, window: 30s } }\n"),
        "admin.history.window",
        1,
        41,
        "30s is shorter than admin.history.period (1m)",
    );
}
