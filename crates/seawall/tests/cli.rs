//! The real `seawall` binary: `check` exit codes and messages on the fixtures, and `run`
//! serving until SIGTERM.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::ports::free_port;
use common::process::{read_all, wait_exit, wait_ready};
use common::tls::{CertFiles, TestCa};

/// Every variable the fixtures name in a `*_env` key.
const SECRET_VARS: [&str; 5] = [
    "SEAWALL_ADMIN_TOKEN",
    "SEAWALL_TOKEN",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BACKUP_API_KEY",
    "SEAWALL_REDIS_URL",
];

fn seawall() -> Command {
    let mut cmd = common::process::seawall();
    for var in SECRET_VARS.iter().chain(&["SEAWALL_LOG", "RUST_LOG"]) {
        cmd.env_remove(var);
    }
    cmd
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn check(path: &Path, env: &[(&str, &str)]) -> Output {
    seawall()
        .arg("check")
        .arg("-c")
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_accepts_the_full_fixture_with_its_secrets_set() {
    let env: Vec<(&str, &str)> = SECRET_VARS.iter().map(|v| (*v, "value")).collect();
    let out = check(&fixture("full.yaml"), &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: 3 providers, 1 pipelines\n"
    );
}

/// Each broken fixture and the `field.path at line:col` its error must name.
const BROKEN: [(&str, &str); 10] = [
    (
        "bad_duration.yaml",
        "providers[0].timeouts.first_byte at 7:19",
    ),
    ("bad_listen.yaml", "admin.listen at 4:11"),
    ("bad_size.yaml", "server.max_body at 3:13"),
    ("duplicate_provider.yaml", "providers[2].name at 8:11"),
    (
        "fallback_other_kind.yaml",
        "providers[0].fallbacks[0] at 6:9",
    ),
    ("fallback_unknown.yaml", "providers[0].fallbacks[0] at 5:17"),
    (
        "half_open_zero.yaml",
        "pipelines[0].outputs[0].resilience.circuit_breaker.half_open_max_calls at 7:51",
    ),
    (
        "rate_out_of_range.yaml",
        "providers[0].circuit_breaker.failure_rate_threshold at 7:31",
    ),
    ("syntax_error.yaml", "providers[0].base_url at 6:15"),
    (
        "unknown_key_deep.yaml",
        "pipelines[0].outputs[0].resilience.circuit_breaker.half_open_max_cals at 14:13",
    ),
];

#[test]
fn check_rejects_each_broken_fixture_with_exit_2_and_the_field_position() {
    for (name, location) in BROKEN {
        let out = check(&fixture(name), &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.starts_with(&format!("config error: {location}: ")),
            "{name}: expected `{location}` in {err}"
        );
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}");
    }
}

#[test]
fn every_broken_fixture_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "full.yaml" && n != "minimal.yaml")
        .collect();
    names.sort();
    let covered: Vec<&str> = BROKEN.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, covered);
}

#[test]
fn check_names_the_env_field_of_a_missing_secret() {
    let out = check(&fixture("full.yaml"), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim_end(),
        "config error: admin.token_env at 3:45: environment variable `SEAWALL_ADMIN_TOKEN` is unset"
    );
}

#[test]
fn check_of_a_missing_file_exits_2() {
    let out = check(&fixture("does-not-exist.yaml"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("config error: cannot read "));
}

fn write_config(name: &str, yaml: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn run_serves_until_sigterm_then_exits_0() {
    let (gateway, admin) = (free_port(), free_port());
    let config = write_config(
        "run",
        &format!(
            "server: {{ listen: 127.0.0.1:{gateway}, shutdown_grace: 5s }}
admin: {{ listen: 127.0.0.1:{admin}, token_env: SEAWALL_ADMIN_TOKEN }}
providers:
  - {{ name: up, kind: openai, base_url: 'http://127.0.0.1:9', api_key_env: ANTHROPIC_API_KEY }}
"
        ),
    );
    let mut child = seawall()
        .args(["run", "--log-format", "json", "-c"])
        .arg(&config)
        .env("SEAWALL_ADMIN_TOKEN", "admin-secret-value")
        .env("ANTHROPIC_API_KEY", "provider-secret-value")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let admin_addr = SocketAddr::from(([127, 0, 0, 1], admin));
    // Process start-up: poll readiness for a bounded time.
    wait_ready(&mut child, admin_addr, Duration::from_secs(20));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let logs = read_all(child.stderr.take());
    assert_eq!(status.code(), Some(0), "{logs}");
    let started = logs
        .lines()
        .find(|l| l.contains("seawall started"))
        .unwrap_or_else(|| panic!("no startup line in {logs}"));
    let started: serde_json::Value = serde_json::from_str(started).unwrap();
    assert_eq!(started["fields"]["gateway"], format!("127.0.0.1:{gateway}"));
    assert_eq!(started["fields"]["admin"], format!("127.0.0.1:{admin}"));
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(
        !logs.contains("secret-value"),
        "a secret reached the logs: {logs}"
    );
    let _ = std::fs::remove_file(config);
}

#[test]
fn run_with_a_broken_config_exits_2() {
    let out = seawall()
        .args(["run", "-c"])
        .arg(fixture("bad_listen.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("config error: admin.listen at 4:11: "));
}

#[test]
fn run_on_a_taken_port_exits_1_with_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = write_config(
        "taken",
        &format!(
            "server: {{ listen: 127.0.0.1:{port} }}\nadmin: {{ listen: 127.0.0.1:{} }}\n",
            free_port()
        ),
    );
    let out = seawall()
        .args(["run", "-c"])
        .arg(&config)
        .env("SEAWALL_LOG", "off")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: cannot listen on 127.0.0.1:{port} (server.listen at 1:19): "
        )),
        "{err}"
    );
    let _ = std::fs::remove_file(config);
}

#[test]
fn version_names_the_git_revision() {
    let out = seawall().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let rest = text
        .strip_prefix(concat!("seawall ", env!("CARGO_PKG_VERSION"), " (git "))
        .and_then(|r| r.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("{text:?}"));
    let hash = rest.strip_suffix("-dirty").unwrap_or(rest);
    assert!(
        rest == "unknown" || (hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit())),
        "{text:?}"
    );
}

#[test]
fn an_empty_or_comment_only_config_file_is_every_default() {
    for (name, yaml) in [("empty", ""), ("comments", "# all defaults\n")] {
        let out = check(&write_config(name, yaml), &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok: 0 providers, 0 pipelines\n"
        );
    }
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let (gateway, admin) = (free_port(), free_port());
    let config = write_config(
        "plain-logs",
        &format!(
            "server: {{ listen: 127.0.0.1:{gateway} }}\nadmin: {{ listen: 127.0.0.1:{admin} }}\n"
        ),
    );
    // Text lines (the default format) to a pipe, NO_COLOR unset: still no escape codes.
    let mut child = seawall()
        .args(["run", "-c"])
        .arg(&config)
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(
        &mut child,
        SocketAddr::from(([127, 0, 0, 1], admin)),
        Duration::from_secs(20),
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_exit(&mut child, Duration::from_secs(10));
    let logs = read_all(child.stderr.take());
    assert!(logs.contains("seawall started"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in {logs:?}");
    let _ = std::fs::remove_file(config);
}

/// The YAML file at `path` as a JSON value.
fn yaml_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn schema_accepts_every_example_and_refuses_a_wrong_file() {
    let out = seawall().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let validator = jsonschema::draft7::new(&schema).unwrap();

    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    files.extend([fixture("full.yaml"), fixture("minimal.yaml")]);
    for file in &files {
        let errors: Vec<String> = validator
            .iter_errors(&yaml_as_json(file))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }

    // What editors catch before `seawall check` does: an unknown key, a misspelt enum, a
    // duration without its unit, a size in the wrong words.
    for (name, expected) in [
        ("unknown_key_deep.yaml", "half_open_max_cals"),
        ("bad_duration.yaml", "first_byte"),
        ("bad_size.yaml", "max_body"),
    ] {
        let errors: Vec<String> = validator
            .iter_errors(&yaml_as_json(&fixture(name)))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{name}: {errors:#?}"
        );
    }
    let wrong = serde_json::json!({
        "providers": [{ "name": "a", "kind": "bedrock", "base_url": "https://x" }]
    });
    assert!(!validator.is_valid(&wrong));
}

#[test]
fn ready_exits_0_while_the_daemon_serves_and_1_once_it_has_stopped() {
    let (gateway, admin) = (free_port(), free_port());
    let config = write_config(
        "ready",
        &format!(
            "server: {{ listen: 127.0.0.1:{gateway} }}\nadmin: {{ listen: 0.0.0.0:{admin} }}\n"
        ),
    );
    let ready = || {
        seawall()
            .args(["ready", "-c"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let mut child = seawall()
        .args(["run", "-c"])
        .arg(&config)
        .env("SEAWALL_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(
        &mut child,
        SocketAddr::from(([127, 0, 0, 1], admin)),
        Duration::from_secs(20),
    );
    let out = ready();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ready: 127.0.0.1:{admin}\n")
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_exit(&mut child, Duration::from_secs(10));
    let out = ready();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!(
            "error: not ready: cannot reach the admin listener at 127.0.0.1:{admin}: "
        )),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_file(config);
}

#[test]
fn ready_speaks_tls_to_an_admin_listener_with_tls() {
    let ca = TestCa::new();
    let files = CertFiles::new(&ca.issue("admin"));
    let (gateway, admin) = (free_port(), free_port());
    let config = write_config(
        "ready-tls",
        &format!(
            "server: {{ listen: 127.0.0.1:{gateway} }}\nadmin: {{ listen: 127.0.0.1:{admin}, tls: {} }}\n",
            files.yaml("")
        ),
    );
    let mut child = seawall()
        .args(["run", "-c"])
        .arg(&config)
        .env("SEAWALL_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // `seawall ready` is the readiness wait here: the listener speaks only TLS.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = seawall()
            .args(["ready", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        if out.status.success() || std::time::Instant::now() > deadline {
            break out;
        }
        assert!(child.try_wait().unwrap().is_none(), "seawall exited early");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("ready: 127.0.0.1:{admin}\n")
    );
    let _ = std::fs::remove_file(config);
}
