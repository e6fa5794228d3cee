//! TLS on the gateway and admin listeners, end to end: a real rustls client trusting a test
//! CA (rcgen) talks HTTP/1.1 and h2 (by ALPN) to the daemon, through the gateway to a mock
//! upstream; stalled, plaintext and garbage clients are dropped and counted; a reload serves
//! the new certificate and keeps the old one when the files are broken; `seawall check` and
//! the start-up warning, on the real binary.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::client::{self, body, request};
use common::daemon::Daemon;
use common::ports::free_port;
use common::process::{read_all, seawall, wait_exit, wait_ready};
use common::temp::temp_path;
use common::tls::{CertFiles, TestCa, TlsClient};
use common::upstream::{MockUpstream, Reply};
use common::wait::within;
use http::{StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// ALPN offers: a browser's, an h2-only client's, an HTTP/1.1 client's, none.
const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];
const H2: &[&[u8]] = &[b"h2"];
const HTTP1: &[&[u8]] = &[b"http/1.1"];
const NO_ALPN: &[&[u8]] = &[];

/// The gateway's failed-handshake series.
const GATEWAY_FAILURES: &str = "seawall_tls_handshake_failures_total{listener=\"gateway\"}";

/// A daemon config: the gateway on `workers` threads with `server_tls` (a YAML mapping) if
/// given, the admin listener with `admin_tls` if given, one provider `up` at `upstream`.
fn config(
    server: &str,
    server_tls: Option<&str>,
    admin_tls: Option<&str>,
    upstream: &str,
) -> String {
    let tls = |section: Option<&str>| section.map(|t| format!(", tls: {t}")).unwrap_or_default();
    format!(
        "server: {{ listen: 127.0.0.1:0{server}{} }}\n\
         admin: {{ listen: 127.0.0.1:0{} }}\n\
         providers:\n  - {{ name: up, kind: generic, base_url: '{upstream}' }}\n",
        tls(server_tls),
        tls(admin_tls),
    )
}

/// Reads until the peer closes or resets the connection (bounded): what it sent before.
async fn read_until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut seen = Vec::new();
    let _ = within(what, stream.read_to_end(&mut seen)).await;
    seen
}

#[tokio::test]
async fn http1_and_h2_over_tls_reach_the_upstream_on_shared_and_worker_threads() {
    let up = MockUpstream::start(Reply::ok()).await;
    let ca = TestCa::new();
    let issued = ca.issue("gateway");
    let files = CertFiles::new(&issued);
    for workers in [0, 2] {
        let yaml = config(
            &format!(", workers: {workers}"),
            Some(&files.yaml("")),
            None,
            &up.url(),
        );
        let daemon = Daemon::start(&yaml).await;
        let cases = [
            (BOTH, Some(&b"h2"[..]), Version::HTTP_2),
            (H2, Some(b"h2"), Version::HTTP_2),
            (HTTP1, Some(b"http/1.1"), Version::HTTP_11),
            (NO_ALPN, None, Version::HTTP_11),
        ];
        for (i, (offer, alpn, version)) in cases.into_iter().enumerate() {
            let path = format!("/up/v1/w{workers}/{i}");
            let tls = ca
                .client(offer)
                .send(daemon.gateway_addr(), "POST", &path, r#"{"n":1}"#)
                .await
                .unwrap_or_else(|e| panic!("{offer:?} with {workers} workers: {e}"));
            assert_eq!(tls.answer.status, StatusCode::OK, "{offer:?}");
            assert_eq!(tls.answer.text(), r#"{"ok":true}"#);
            assert_eq!(tls.alpn.as_deref(), alpn, "{offer:?}");
            assert_eq!(tls.version, version, "{offer:?}");
            assert_eq!(tls.peer, issued.der);
            let got = up.received();
            let last = got.last().expect("the upstream was asked");
            assert_eq!(last.target, format!("/v1/w{workers}/{i}"));
            assert_eq!(&last.body[..], br#"{"n":1}"#);
        }
        assert_eq!(daemon.metrics().await.value::<u64>(GATEWAY_FAILURES), 0);
        daemon.stop().await;
    }
}

#[tokio::test]
async fn the_admin_listener_serves_tls_of_its_own_and_the_gateway_stays_plaintext() {
    let up = MockUpstream::start(Reply::ok()).await;
    let ca = TestCa::new();
    let issued = ca.issue("admin");
    let files = CertFiles::new(&issued);
    let yaml = config("", None, Some(&files.yaml("")), &up.url());
    let daemon = Daemon::start(&yaml).await;

    let metrics = ca.client(HTTP1).get(daemon.admin_addr(), "/metrics").await;
    assert_eq!(metrics.answer.status, StatusCode::OK);
    assert_eq!(metrics.peer, issued.der);
    let text = metrics.answer.text();
    assert!(
        text.contains("seawall_tls_handshake_failures_total{listener=\"admin\"} 0"),
        "{text}"
    );
    let expiry = "seawall_tls_certificate_expiry_seconds{listener=\"admin\"}";
    let expires: i64 = common::exposition::Exposition::new(text.clone()).value(expiry);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(expires > now.as_secs() as i64, "{text}");
    assert!(!text.contains("listener=\"gateway\""), "{text}");
    let ready = ca.client(BOTH).get(daemon.admin_addr(), "/readyz").await;
    assert_eq!(
        (ready.answer.status, ready.version),
        (StatusCode::OK, Version::HTTP_2)
    );

    // Plaintext is refused on the admin port; the gateway serves plaintext as before.
    let plain = request("GET", &daemon.admin("/metrics"))
        .body(body(""))
        .unwrap();
    assert!(client::try_send(plain).await.is_err());
    assert_eq!(client::get(&daemon.gateway("/up/x")).await.status, 200);
    daemon.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_dropped_at_the_handshake_timeout_and_counted() {
    let up = MockUpstream::start(Reply::ok()).await;
    let ca = TestCa::new();
    let files = CertFiles::new(&ca.issue("gateway"));
    // Nothing else could close the silent connection within the test's bound: the idle
    // timeout is a minute.
    let yaml = config(
        ", timeouts: { keepalive_idle: 60s }",
        Some(&files.yaml("handshake_timeout: 300ms")),
        None,
        &up.url(),
    );
    let daemon = Daemon::start(&yaml).await;
    let mut silent = TcpStream::connect(daemon.gateway_addr()).await.unwrap();
    let sent = read_until_closed(&mut silent, "the silent client dropped").await;
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(daemon.metrics().await.value::<u64>(GATEWAY_FAILURES), 1);
    // The slot it held is free again.
    let ok = ca.client(BOTH).get(daemon.gateway_addr(), "/up/x").await;
    assert_eq!(ok.answer.status, StatusCode::OK);
    daemon.stop().await;
}

#[tokio::test]
async fn plaintext_and_garbage_on_a_tls_port_are_closed_and_counted_and_tls_is_served_on() {
    let up = MockUpstream::start(Reply::ok()).await;
    let ca = TestCa::new();
    let files = CertFiles::new(&ca.issue("gateway"));
    let yaml = config(
        ", max_connections: 2",
        Some(&files.yaml("")),
        None,
        &up.url(),
    );
    let daemon = Daemon::start(&yaml).await;
    let garbage: [&[u8]; 3] = [
        b"GET /up/x HTTP/1.1\r\nhost: localhost\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello, not a ClientHello",
    ];
    for (i, bytes) in garbage.into_iter().enumerate() {
        let mut client = TcpStream::connect(daemon.gateway_addr()).await.unwrap();
        client.write_all(bytes).await.unwrap();
        let answer = read_until_closed(&mut client, "the connection closed").await;
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/"),
            "answered in plaintext: {answer:?}"
        );
        let failures: u64 = daemon.metrics().await.value(GATEWAY_FAILURES);
        assert_eq!(failures, i as u64 + 1);
    }
    assert_eq!(up.count(), 0, "a plaintext request reached the upstream");
    // More than `max_connections` bad clients came and went; TLS is still served.
    let ok = ca.client(HTTP1).get(daemon.gateway_addr(), "/up/x").await;
    assert_eq!(ok.answer.status, StatusCode::OK);
    daemon.stop().await;
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_broken_files_keep_the_old_one() {
    let up = MockUpstream::start(Reply::ok()).await;
    let ca = TestCa::new();
    let first = ca.issue("first");
    let files = CertFiles::new(&first);
    let daemon = Daemon::start(&config("", Some(&files.yaml("")), None, &up.url())).await;
    let client: TlsClient = ca.client(HTTP1);
    let gateway = daemon.gateway_addr();
    assert_eq!(client.get(gateway, "/up/a").await.peer, first.der);
    // A connection made before the reload.
    let mut kept = client.connect(gateway).await.unwrap();

    let second = ca.issue("second");
    files.write(&second);
    daemon.app().reload_certificates().unwrap();
    assert_eq!(client.get(gateway, "/up/b").await.peer, second.der);
    assert_eq!(client.get(gateway, "/up/c").await.answer.status, 200);

    // The connection from before keeps its session and serves on.
    assert_eq!(kept.get_ref().1.peer_certificates().unwrap()[0], first.der);
    kept.write_all(b"GET /up/kept HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    within(
        "the kept connection's answer",
        kept.read_to_end(&mut answer),
    )
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    // A key that is not PEM, then a certificate the key does not belong to: refused, and the
    // second certificate stays.
    std::fs::write(&files.key, "not a key\n").unwrap();
    let error = daemon.app().reload_certificates().unwrap_err();
    assert!(error.to_string().contains("key.pem"), "{error}");
    assert_eq!(client.get(gateway, "/up/d").await.peer, second.der);
    let third = ca.issue("third");
    std::fs::write(&files.cert, &third.cert_pem).unwrap();
    std::fs::write(&files.key, &second.key_pem).unwrap();
    let error = daemon.app().reload_certificates().unwrap_err();
    assert!(error.to_string().contains("does not belong"), "{error}");
    let still = client.get(gateway, "/up/e").await;
    assert_eq!(
        (still.answer.status, still.peer),
        (StatusCode::OK, second.der)
    );
    daemon.stop().await;
}

/// `yaml` written to a fresh temp file.
fn config_file(yaml: &str) -> PathBuf {
    let path = temp_path("tls.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn check_and_run_refuse_unreadable_or_mismatched_files_naming_the_field() {
    let ca = TestCa::new();
    let issued = ca.issue("gateway");
    let files = CertFiles::new(&issued);
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  tls: {}\nadmin: {{ listen: 127.0.0.1:0 }}\n",
        files.yaml("")
    );
    let path = config_file(&yaml);
    let check = || {
        seawall()
            .arg("check")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    std::fs::remove_file(&files.key).unwrap();
    for command in ["check", "run"] {
        let out = seawall()
            .arg(command)
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.starts_with("config error: server.tls.key_path at 3:"),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains("cannot read") && stderr.contains("key.pem"),
            "{stderr}"
        );
    }

    std::fs::write(&files.key, ca.issue("other").key_pem).unwrap();
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("config error: server.tls.key_path at 3:"),
        "{stderr}"
    );
    assert!(stderr.contains("does not belong"), "{stderr}");

    std::fs::write(&files.cert, "no PEM here\n").unwrap();
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("config error: server.tls.cert_path at 3:"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_plaintext_listener_on_a_non_loopback_address_is_warned_about_and_a_tls_one_is_not() {
    let ca = TestCa::new();
    let files = CertFiles::new(&ca.issue("gateway"));
    let (gateway, admin) = (free_port(), free_port());
    // Every address of the host, so not loopback; the test itself talks to 127.0.0.1.
    let yaml = format!(
        "server: {{ listen: '0.0.0.0:{gateway}', tls: {} }}\n\
         admin: {{ listen: '0.0.0.0:{admin}' }}\n\
         auth: {{ mode: none }}\n",
        files.yaml("")
    );
    let path = config_file(&yaml);
    let mut child = seawall()
        .args(["run", "--log-format", "json", "-c"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .env("SEAWALL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(
        &mut child,
        SocketAddr::from(([127, 0, 0, 1], admin)),
        Duration::from_secs(20),
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let logs = read_all(child.stderr.take());
    assert_eq!(status.code(), Some(0), "{logs}");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let warnings: Vec<_> = lines
        .iter()
        .filter(|l| l["level"] == "WARN")
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("plaintext")
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert_eq!(warnings[0]["fields"]["listener"], "admin");
    assert_eq!(warnings[0]["fields"]["addr"], format!("0.0.0.0:{admin}"));
    let loaded = lines
        .iter()
        .find(|l| l["fields"]["message"] == "TLS certificate loaded")
        .unwrap_or_else(|| panic!("no certificate line in {logs}"));
    assert_eq!(loaded["fields"]["listener"], "gateway");
    assert_eq!(loaded["fields"]["subject"], "CN=gateway");
    let started = lines
        .iter()
        .find(|l| l["fields"]["message"] == "seawall started")
        .unwrap_or_else(|| panic!("no startup line in {logs}"));
    assert_eq!(started["fields"]["gateway_tls"], true);
    assert_eq!(started["fields"]["admin_tls"], false);
    let _ = std::fs::remove_file(path);
}
