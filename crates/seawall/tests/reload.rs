//! Reloading the configuration while serving, over real sockets: a file that fails the checks
//! changes nothing and says why; providers and outputs that stayed keep their breakers,
//! counts and queues, with changed breaker settings applied in place; removed ones drain
//! with their last requests and events; a listener moves to a new address without dropping
//! an established connection; a reload under load loses no request and no event; the real
//! binary reloads on `SIGHUP`.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::client;
use common::collector::{Collector, Mode};
use common::ports::free_port;
use common::process::{run, wait_exit, wait_ready};
use common::temp::temp_path;
use common::tls::{CertFiles, TestCa};
use common::upstream::{Gate, MockUpstream, Reply};
use common::wait::{eventually, within};
use common::wire::Wire;
use seawall::app::{App, Moved, ReloadOutcome, RunningApp};
use serde_json::Value;

const TOKEN_ENV: &str = "SEAWALL_RELOAD_TEST_TOKEN";
const TOKEN: &str = "reload-secret";

/// A daemon started from a configuration file, which each reload rewrites.
struct Reloadable {
    path: PathBuf,
    app: RunningApp,
}

impl Reloadable {
    async fn start(yaml: &str) -> Self {
        // Every test sets the same value: set_var races only with itself.
        std::env::set_var(TOKEN_ENV, TOKEN);
        let path = temp_path("reload").with_extension("yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = seawall::config::load(&path).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let secrets = config.resolve_secrets_from_env().unwrap();
        let app = App::start(config, secrets).await.unwrap();
        Reloadable { path, app }
    }

    /// Writes `yaml` over the file and reloads it.
    async fn reload(&self, yaml: &str) -> ReloadOutcome {
        std::fs::write(&self.path, yaml).unwrap();
        within("reload", self.app.reload()).await
    }

    fn gateway(&self, path: &str) -> String {
        format!("http://{}{path}", self.app.gateway_addr())
    }

    fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.app.admin_addr())
    }

    async fn post(&self, path: &str) -> client::Answer {
        client::post(&self.gateway(path), "application/json", "{}").await
    }

    async fn breaker(&self, name: &str) -> Value {
        let views = client::get(&self.admin("/v1/breakers")).await.json();
        views
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no breaker {name} in {views}"))
    }

    async fn metric(&self, series: &str) -> u64 {
        let text = client::get(&self.admin("/metrics")).await.text();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn output(&self, name: &str) -> Value {
        client::output_view(self.app.admin_addr(), name).await
    }
}

impl Drop for Reloadable {
    fn drop(&mut self) {
        self.app.shutdown();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn config(providers: &str, pipelines: &str) -> String {
    format!(
        "server: {{ listen: 127.0.0.1:0, workers: 0 }}
admin: {{ listen: 127.0.0.1:0, token_env: {TOKEN_ENV} }}
providers:
{providers}
{pipelines}"
    )
}

fn provider(name: &str, url: &str, breaker: &str) -> String {
    format!(
        "  - {{ name: {name}, kind: openai, base_url: '{url}', circuit_breaker: {{ {breaker} }} }}\n"
    )
}

/// A file that fails the checks keeps the old configuration: the gateway serves as before,
/// the reload is counted `invalid`, and the answer (and `POST /v1/reload`) names the field
/// with its line and column.
#[tokio::test]
async fn an_invalid_file_changes_nothing_and_says_where() {
    let up = MockUpstream::start(Reply::ok()).await;
    let good = config(&provider("p", &up.url(), "failure_threshold: 3"), "");
    let d = Reloadable::start(&good).await;
    assert_eq!(d.post("/p/v1/chat/completions").await.status, 200);

    let bad = good.replace("failure_threshold: 3", "failure_threshold: 0");
    let outcome = d.reload(&bad).await;
    assert_eq!(outcome.result, "invalid");
    let error = outcome.error.unwrap();
    assert!(error.contains("failure_threshold"), "{error}");
    assert!(error.contains(" at 4:"), "the field's line: {error}");
    assert_eq!(d.post("/p/v1/chat/completions").await.status, 200);

    // The admin route: refused without the token, answered 422 with the reason with it.
    let refused = client::post(&d.admin("/v1/reload"), "application/json", "").await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    let req = client::request("POST", &d.admin("/v1/reload"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(client::body(""))
        .unwrap();
    let answer = client::send(req).await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert_eq!(answer.json()["result"], "invalid");
    assert!(answer.json()["error"]
        .as_str()
        .unwrap()
        .contains("failure_threshold"));
    let invalid = r#"seawall_config_reloads_total{result="invalid"}"#;
    assert_eq!(d.metric(invalid).await, 2);
    assert_eq!(
        d.metric(r#"seawall_config_reloads_total{result="applied"}"#)
            .await,
        0
    );

    // Put right, the same route applies it.
    std::fs::write(&d.path, &good).unwrap();
    let req = client::request("POST", &d.admin("/v1/reload"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(client::body(""))
        .unwrap();
    let answer = client::send(req).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["result"], "applied");
}

/// A provider that stayed keeps its open breaker through a reload that adds another; a
/// changed threshold applies to the breaker already made, without a restart.
#[tokio::test]
async fn an_open_breaker_stays_open_and_new_settings_apply_in_place() {
    let down = MockUpstream::start(Reply::status(503)).await;
    let up = MockUpstream::start(Reply::status(503)).await;
    let p = provider("p", &down.url(), "failure_threshold: 2, open_timeout: 1h");
    let q = provider("q", &up.url(), "failure_threshold: 5, open_timeout: 1h");
    let d = Reloadable::start(&config(&format!("{p}{q}"), "")).await;
    for _ in 0..2 {
        assert_eq!(d.post("/p/v1/chat/completions").await.status, 503);
    }
    assert_eq!(d.breaker("p").await["state"], "open");
    assert_eq!(d.post("/q/v1/chat/completions").await.status, 503);
    assert_eq!(d.breaker("q").await["counts"]["consecutive_failures"], 1);

    // q's threshold drops to 2; a third provider appears; p is untouched.
    let q2 = provider("q", &up.url(), "failure_threshold: 2, open_timeout: 1h");
    let r = provider("r", &up.url(), "failure_threshold: 5");
    let outcome = d.reload(&config(&format!("{p}{q2}{r}"), "")).await;
    assert_eq!(outcome.result, "applied", "{outcome:?}");
    let providers = outcome.providers.unwrap();
    assert_eq!(providers.unchanged, ["p"]);
    assert_eq!(providers.changed, ["q"]);
    assert_eq!(providers.added, ["r"]);

    let rejected = d.post("/p/v1/chat/completions").await;
    assert_eq!(rejected.status, 503);
    assert!(rejected.header("retry-after").is_some());
    assert_eq!(
        down.count(),
        2,
        "the open breaker kept the provider unasked"
    );
    assert_eq!(d.breaker("p").await["state"], "open");

    // One more failure makes two in a row: q opens under its new threshold, its count kept.
    assert_eq!(d.post("/q/v1/chat/completions").await.status, 503);
    assert_eq!(d.breaker("q").await["state"], "open");
    assert_eq!(up.count(), 2);
}

/// A removed provider answers 404 to new requests while the request it was serving
/// completes.
#[tokio::test]
async fn a_removed_provider_finishes_its_request_in_flight() {
    let gate = Gate::new();
    let held = MockUpstream::start(Reply::ok().hold(&gate)).await;
    let other = MockUpstream::start(Reply::ok()).await;
    let p = provider("p", &held.url(), "failure_threshold: 3");
    let q = provider("q", &other.url(), "failure_threshold: 3");
    let d = Reloadable::start(&config(&format!("{p}{q}"), "")).await;
    let url = d.gateway("/p/v1/chat/completions");
    let in_flight = tokio::spawn(async move { client::post(&url, "application/json", "{}").await });
    held.wait_for_count(1).await;

    let outcome = d.reload(&config(&q, "")).await;
    assert_eq!(outcome.providers.unwrap().removed, ["p"]);
    let gone = d.post("/p/v1/chat/completions").await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert_eq!(d.post("/q/v1/chat/completions").await.status, 200);

    gate.open();
    let answer = within("the request in flight", in_flight).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// `server.listen` moves: the new address serves at once; a kept-alive connection to the
/// old one finishes its request in flight, and the old address stops taking connections.
#[tokio::test]
async fn a_listener_moves_without_dropping_an_established_connection() {
    let gate = Gate::new();
    let up = MockUpstream::start(Reply::ok().hold(&gate)).await;
    let yaml = config(&provider("p", &up.url(), "failure_threshold: 3"), "");
    let d = Reloadable::start(&yaml).await;
    let old = d.app.gateway_addr();
    let mut wire = Wire::connect(old).await;
    wire.send(
        b"POST /p/v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await;
    up.wait_for_count(1).await;

    let port = free_port();
    let moved = yaml.replace(
        "listen: 127.0.0.1:0, workers: 0",
        &format!("listen: 127.0.0.1:{port}, workers: 0"),
    );
    let outcome = d.reload(&moved).await;
    assert_eq!(outcome.result, "applied", "{outcome:?}");
    let new = d.app.gateway_addr();
    assert_eq!(new.port(), port);
    assert!(matches!(outcome.gateway_listener, Some(Moved::Rebound(a)) if a == new));
    up.set_default(Reply::ok());
    let fresh = client::post(
        &format!("http://{new}/p/v1/chat/completions"),
        "application/json",
        "{}",
    )
    .await;
    assert_eq!(fresh.status, 200);

    gate.open();
    let answer = wire.response("POST").await;
    assert_eq!(answer.head.status, 200, "{answer:?}");
    drop(wire);
    eventually("the old address closed", || async {
        tokio::net::TcpStream::connect(old).await.is_err()
    })
    .await;
}

/// An output that stayed keeps what it holds; one whose breaker settings changed keeps its
/// retry buffer and delivers it under the new `open_timeout`; a removed output delivers what
/// it queued (its linger cut short) before it stops.
#[tokio::test]
async fn outputs_keep_their_queues_and_removed_ones_drain() {
    let up = MockUpstream::start(Reply::ok()).await;
    let held = Collector::start(Mode::Status(503)).await;
    let lingering = Collector::start(Mode::Ok).await;
    let p = provider("p", &up.url(), "failure_threshold: 3");
    let down = |open: &str| {
        format!(
            "      - {{ name: down, type: http, endpoint: '{}', batch: {{ linger: 0s }},
          resilience: {{ circuit_breaker: {{ failure_threshold: 1, open_timeout: {open} }} }} }}\n",
            held.url
        )
    };
    let slow = format!(
        "      - {{ name: slow, type: http, endpoint: '{}', batch: {{ linger: 1h }} }}\n",
        lingering.url
    );
    let pipelines =
        |outputs: &str| format!("pipelines:\n  - name: events\n    outputs:\n{outputs}");
    let d = Reloadable::start(&config(&p, &pipelines(&format!("{}{slow}", down("1h"))))).await;
    let events = "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n";
    let ingest = d.gateway("/ingest/events");
    assert_eq!(
        client::post(&ingest, "application/x-ndjson", events)
            .await
            .status,
        202
    );
    eventually("held by the down output", || async {
        d.output("down").await["retry_buffer"]["length"] == 3
    })
    .await;
    assert_eq!(d.output("slow").await["queue"]["length"], 3);

    // Unchanged: nothing moves.
    let same = config(&p, &pipelines(&format!("{}{slow}", down("1h"))));
    let outcome = d.reload(&same).await;
    assert_eq!(outcome.pipelines.as_ref().unwrap().unchanged, ["events"]);
    assert_eq!(d.output("down").await["retry_buffer"]["length"], 3);

    // `down`'s breaker now reopens after 1s: its buffer is kept and delivered; `slow` is
    // removed and sends its queue at once instead of after its hour of linger.
    held.set(Mode::Ok);
    let outcome = d.reload(&config(&p, &pipelines(&down("1s")))).await;
    let report = outcome.pipelines.unwrap();
    assert_eq!(report.outputs.reconfigured, ["events/down"]);
    assert_eq!(report.outputs.draining, ["events/slow"]);
    eventually("the removed output delivered its queue", || async {
        lingering.lines().len() == 3
    })
    .await;
    eventually("the kept buffer delivered", || async {
        held.lines().len() == 3
    })
    .await;
    let view = d.output("down").await;
    assert_eq!(view["accepted"], 3, "{view}");
    assert_eq!(view["delivered"], 3, "{view}");
    assert_eq!(view["dropped"]["total"], 0, "{view}");
    // Ingest keeps working, into the outputs now configured.
    assert_eq!(
        client::post(&ingest, "application/x-ndjson", events)
            .await
            .status,
        202
    );
    eventually("delivered after the reload", || async {
        held.lines().len() == 6
    })
    .await;
    assert_eq!(
        lingering.lines().len(),
        3,
        "nothing offered to the removed output"
    );
}

/// Requests and events keep flowing while the configuration is reloaded ten times (a
/// provider added and removed, breaker settings changed, an output replaced): every request
/// is answered 200 and every accepted event arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_loses_no_request_and_no_event() {
    let up = MockUpstream::start(Reply::ok()).await;
    let a = Collector::start(Mode::Ok).await;
    let b = Collector::start(Mode::Ok).await;
    let yaml = |i: usize| {
        let threshold = 5 + i % 3;
        let mut providers = provider("p", &up.url(), &format!("failure_threshold: {threshold}"));
        if i % 2 == 1 {
            providers.push_str(&provider("extra", &up.url(), "failure_threshold: 3"));
        }
        // The output alternates between two collectors: each reload replaces it.
        let url = if i.is_multiple_of(2) {
            a.url.clone()
        } else {
            b.url.clone()
        };
        config(
            &providers,
            &format!(
                "pipelines:\n  - name: events\n    outputs:\n      - {{ name: out, type: http, endpoint: '{url}', batch: {{ linger: 5ms }} }}\n"
            ),
        )
    };
    let d = Arc::new(Reloadable::start(&yaml(0)).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (d, stop, requests, accepted) =
            (d.clone(), stop.clone(), requests.clone(), accepted.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if c % 2 == 0 {
                    let answer = d.post("/p/v1/chat/completions").await;
                    assert_eq!(answer.status, 200, "{}", answer.text());
                    requests.fetch_add(1, Ordering::Relaxed);
                } else {
                    let body = format!("{{\"c\":{c},\"n\":{n}}}\n");
                    let url = d.gateway("/ingest/events");
                    let answer = client::post(&url, "application/x-ndjson", &body).await;
                    assert_eq!(answer.status, 202, "{}", answer.text());
                    accepted.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            }
        }));
    }
    for i in 1..=10 {
        let before = requests.load(Ordering::Relaxed) + accepted.load(Ordering::Relaxed);
        eventually("traffic between reloads", || async {
            requests.load(Ordering::Relaxed) + accepted.load(Ordering::Relaxed) >= before + 20
        })
        .await;
        let outcome = d.reload(&yaml(i)).await;
        assert_eq!(outcome.result, "applied", "{outcome:?}");
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        within("a client", c).await.unwrap();
    }
    let accepted = accepted.load(Ordering::Relaxed);
    assert!(requests.load(Ordering::Relaxed) >= 100 && accepted >= 100);
    eventually("every accepted event delivered", || async {
        a.lines().len() + b.lines().len() >= accepted
    })
    .await;
    let mut lines: Vec<String> = a.lines().into_iter().chain(b.lines()).collect();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), accepted, "each accepted event arrived");
}

/// TLS certificates are read again on reload: the same paths with new files, then new
/// paths; a reload whose certificate files are broken is refused and the served one stays.
#[tokio::test]
async fn a_reload_reads_the_certificates_again() {
    let up = MockUpstream::start(Reply::ok()).await;
    let ca = TestCa::new();
    let first = ca.issue("first");
    let files = CertFiles::new(&first);
    let yaml = |files: &CertFiles| {
        format!(
            "server: {{ listen: 127.0.0.1:0, tls: {} }}\nadmin: {{ listen: 127.0.0.1:0 }}\nproviders:\n{}",
            files.yaml(""),
            provider("up", &up.url(), "failure_threshold: 3")
        )
    };
    let d = Reloadable::start(&yaml(&files)).await;
    let client = ca.client(&[b"http/1.1"]);
    let gateway = d.app.gateway_addr();
    assert_eq!(client.get(gateway, "/up/a").await.peer, first.der);

    let second = ca.issue("second");
    files.write(&second);
    let outcome = d.reload(&yaml(&files)).await;
    assert_eq!(outcome.result, "applied", "{outcome:?}");
    assert_eq!(client.get(gateway, "/up/b").await.peer, second.der);

    let third = ca.issue("third");
    let moved = CertFiles::new(&third);
    assert_eq!(d.reload(&yaml(&moved)).await.result, "applied");
    assert_eq!(client.get(gateway, "/up/c").await.peer, third.der);

    std::fs::write(&moved.key, "not a key\n").unwrap();
    let outcome = d.reload(&yaml(&moved)).await;
    assert_eq!(outcome.result, "invalid", "{outcome:?}");
    assert!(outcome.error.unwrap().contains("key.pem"));
    assert_eq!(client.get(gateway, "/up/d").await.peer, third.der);
}

/// The real binary: `SIGHUP` applies a changed file (a new provider answers), and a broken
/// file leaves it running the old one with a warning.
#[test]
fn sighup_reloads_the_real_binary() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let up = runtime.block_on(MockUpstream::start(Reply::ok()));
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gateway = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = |providers: &str| {
        format!(
            "server: {{ listen: '{gateway}' }}\nadmin: {{ listen: '{admin}' }}\nproviders:\n{providers}"
        )
    };
    let p = provider("p", &up.url(), "failure_threshold: 3");
    let (mut child, path) = run(&yaml(&p), "info");
    wait_ready(&mut child, admin, Duration::from_secs(20));
    let q_url = format!("http://{gateway}/q/v1/chat/completions");
    let q = runtime.block_on(client::post(&q_url, "application/json", "{}"));
    assert_eq!(q.status, 404);

    let hup = |child: &std::process::Child| {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    std::fs::write(&path, yaml(&format!("{p}{}", provider("q", &up.url(), "")))).unwrap();
    hup(&child);
    runtime.block_on(eventually("q served after SIGHUP", || async {
        client::post(&q_url, "application/json", "{}").await.status == 200
    }));

    std::fs::write(&path, "providers: [ { name: q, kind: nope } ]\n").unwrap();
    hup(&child);
    let invalid = r#"seawall_config_reloads_total{result="invalid"} 1"#;
    runtime.block_on(eventually("the broken file counted", || async {
        client::get(&format!("http://{admin}/metrics"))
            .await
            .text()
            .contains(invalid)
    }));
    let q = runtime.block_on(client::post(&q_url, "application/json", "{}"));
    assert_eq!(q.status, 200, "still running the previous configuration");

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    let log = common::process::read_all(child.stderr.take());
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(log.contains("configuration reload not applied"), "{log}");
}
