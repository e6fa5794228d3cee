//! The admin dashboard (`GET /ui`) rendered by headless Chromium: the app runs in-process
//! (`App::start` on port 0) in front of a mock upstream that answers 503, one request trips the
//! provider's breaker, a few events go through a pipeline, and the test reads the DOM the page
//! built from the admin API, as a person would see it.
//!
//! Needs `/usr/bin/chromium` (Debian's `chromium` package). Without it the test is skipped with
//! a message, except under CI (`CI` set), where it fails.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::client::{get, post};
use common::daemon::Daemon;
use common::temp::temp_dir;
use common::upstream::{MockUpstream, Reply};
use common::wait::settle;
use http::StatusCode;

const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one Chromium run may take before it is killed.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(60);

/// `Some(path)` when Chromium is installed; `None` (after a loud message) when it is missing
/// outside CI. Panics when it is missing under CI.
fn chromium() -> Option<&'static Path> {
    let path = Path::new(CHROMIUM);
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{CHROMIUM} is missing but CI is set: .ci/run must install chromium \
             (apt-get install -y chromium) before `cargo test --workspace`"
        );
    }
    eprintln!(
        "\n\
         ********************************************************************\n\
         * SKIPPED tests/dashboard.rs: {CHROMIUM} is not installed.\n\
         * Install it to run the dashboard test: apt-get install -y chromium\n\
         ********************************************************************\n"
    );
    None
}

/// The DOM of `url` after the page has run for five seconds of virtual time.
async fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = temp_dir("dashboard");
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(["--virtual-time-budget=5000", "--dump-dom", url])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true)
    // Its own process group, so that a hung run is killed with its helper processes.
    .process_group(0);
    let child = cmd.spawn().expect("chromium starts");
    let pid = child.id();
    let outcome = tokio::time::timeout(CHROMIUM_DEADLINE, child.wait_with_output()).await;
    if outcome.is_err() {
        if let Some(pid) = pid {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
    let _ = std::fs::remove_dir_all(&profile);
    let output = outcome
        .unwrap_or_else(|_| panic!("chromium did not finish within {CHROMIUM_DEADLINE:?}"))
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && dom.contains("</html>"),
        "chromium failed ({}):\nstdout:\n{dom}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// The element opened by the first `<tag` whose opening tag contains every one of `attrs`,
/// up to its closing tag (elements of that tag are not nested in the dashboard).
fn element<'a>(dom: &'a str, tag: &str, attrs: &[&str]) -> &'a str {
    let open = format!("<{tag} ");
    let close = format!("</{tag}>");
    let mut rest = dom;
    while let Some(start) = rest.find(&open) {
        let candidate = &rest[start..];
        let head_end = candidate.find('>').unwrap();
        let head = &candidate[..head_end];
        if attrs.iter().all(|a| head.contains(a)) {
            let end = candidate.find(&close).unwrap() + close.len();
            return &candidate[..end];
        }
        rest = &candidate[head_end..];
    }
    panic!("no <{tag}> with {attrs:?} in the dashboard:\n{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_an_open_breaker_its_transition_and_pipeline_figures() {
    let Some(chromium) = chromium() else { return };
    let upstream = MockUpstream::start(Reply::overloaded()).await.addr();
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: mock, kind: generic, base_url: 'http://{upstream}',
      circuit_breaker: {{ failure_threshold: 1, open_timeout: 1h, jitter: 0 }} }}
pipelines:
  - name: events
    outputs: [{{ name: sink, type: blackhole, batch: {{ linger: 0s }} }}]
"
    );
    let app = Daemon::start(&yaml).await;

    let status = get(&app.gateway("/mock/v1/fail")).await.status;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let ingested = post(
        &app.gateway("/ingest/events"),
        "application/x-ndjson",
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
    )
    .await;
    let (status, body) = (ingested.status, ingested.body);
    assert!(status.is_success(), "{status}: {body:?}");
    // Wait for the blackhole to have all three, so the page has a settled figure to show.
    let sink_delivered =
        || async { app.admin_json("/v1/pipelines").await[0]["outputs"][0]["delivered"].clone() };
    let delivered = settle(sink_delivered, |delivered| *delivered == 3).await;
    assert_eq!(delivered, 3);

    let dom = dump_dom(chromium, &app.admin("/ui")).await;

    // The header counts the open breaker.
    assert!(
        element(&dom, "span", &[r#"id="overall""#]).contains("1 breaker open"),
        "{dom}"
    );
    // The breaker table lists the open provider breaker first, red, with its reason and trip.
    let first = element(&dom, "tr", &[r#"class="breaker "#]);
    let row = element(
        &dom,
        "tr",
        &[
            r#"class="breaker row-open""#,
            r#"data-kind="provider""#,
            r#"data-name="mock""#,
        ],
    );
    assert_eq!(first, row, "open breakers come first:\n{dom}");
    assert!(row.contains(r#"data-endpoint="/v1/fail""#), "{row}");
    assert!(
        row.contains(r#"<span class="badge state-open">open</span>"#),
        "{row}"
    );
    assert!(
        element(row, "td", &[r#"class="reason"#]).contains(">consecutive_failures<"),
        "{row}"
    );
    assert!(
        element(row, "td", &[r#"class="num trips"#]).contains(">1<"),
        "{row}"
    );
    // The output breaker of the blackhole is listed too, closed.
    let sink = element(
        &dom,
        "tr",
        &[r#"data-kind="output""#, r#"data-name="sink""#],
    );
    assert!(
        sink.contains(r#"<span class="badge state-closed">closed</span>"#),
        "{sink}"
    );

    // The timeline shows the trip: closed → open, with its breaker and reason.
    let event = element(&dom, "li", &[r#"class="event to-open""#]);
    for needle in [
        r#"<span class="badge state-closed">closed</span>"#,
        r#"<span class="badge state-open">open</span>"#,
        "<b>mock</b>",
        "/v1/fail",
        "consecutive_failures",
    ] {
        assert!(event.contains(needle), "missing {needle} in {event}");
    }

    // The pipeline's output shows the delivered events and nothing dropped.
    let pipeline = element(&dom, "article", &[r#"data-pipeline="events""#]);
    assert!(pipeline.contains("3 events accepted"), "{pipeline}");
    let output = element(pipeline, "tr", &[r#"data-output="sink""#]);
    for (cell, value) in [
        ("num delivered", "3"),
        ("num accepted", "3"),
        ("num dropped", "0"),
        ("num pending", "0"),
    ] {
        assert!(
            element(output, "td", &[&format!(r#"class="{cell}"#)]).contains(&format!(">{value}<")),
            "{cell} should be {value}: {output}"
        );
    }
    assert!(dom.contains("feature flags not configured"), "{dom}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_of_an_idle_daemon_says_so() {
    let Some(chromium) = chromium() else { return };
    let app = Daemon::start(
        "server: { listen: 127.0.0.1:0 }
admin: { listen: 127.0.0.1:0 }
providers: [{ name: idle, kind: generic, base_url: 'http://127.0.0.1:9' }]
",
    )
    .await;
    let dom = dump_dom(chromium, &app.admin("/")).await;
    for needle in [
        "no pipelines configured",
        "no breakers yet",
        "no transitions yet",
        "feature flags not configured",
        "healthy",
    ] {
        assert!(dom.contains(needle), "missing {needle} in\n{dom}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_fleet_and_who_tripped_first() {
    let Some(chromium) = chromium() else { return };
    let Some(redis) = common::redis::Redis::start() else {
        return;
    };
    let upstream = MockUpstream::start(Reply::overloaded()).await.addr();
    let yaml = |node: &str| {
        format!(
            "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0 }}
providers:
  - {{ name: mock, kind: generic, base_url: 'http://{upstream}',
      circuit_breaker: {{ failure_threshold: 1, open_timeout: 1h, jitter: 0 }} }}
cluster: {{ redis_url_env: REDIS, node_id: {node} }}
"
        )
    };
    let url = redis.url();
    let env = [("REDIS", url.as_str())];
    let first = Daemon::start_with_env(&yaml("gw-first"), &env).await;
    let second = Daemon::start_with_env(&yaml("gw-second"), &env).await;
    let status = get(&first.gateway("/mock/v1/fail")).await.status;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    common::wait::eventually("the second replica follows", || async {
        let views = second.admin_json("/v1/breakers").await;
        views[0]["state"] == "open"
    })
    .await;
    let dom = dump_dom(chromium, &second.admin("/")).await;
    let fleet = element(&dom, "section", &[r#"id="fleet""#]);
    assert!(!fleet.contains("hidden"), "{fleet}");
    for needle in [
        "gw-first",
        "gw-second",
        "this replica",
        "connected",
        "quorum 1",
    ] {
        assert!(fleet.contains(needle), "missing {needle} in\n{fleet}");
    }
    let row = element(&dom, "tr", &[r#"data-name="mock""#]);
    assert!(row.contains("first tripped by gw-first"), "{row}");
    first.stop().await;
    second.stop().await;
}
