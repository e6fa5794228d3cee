//! The admin dashboard (`GET /ui`) rendered by headless Chromium: the app runs in-process
//! (`App::start` on port 0) in front of a mock upstream that answers 503, one request trips the
//! provider's breaker, a few events go through a pipeline, and the test reads the DOM the page
//! built from the admin API, as a person would see it. The history test also takes a
//! screenshot (saved as `dashboard-history.png` in cargo's target `tmp/` directory) and checks
//! its pixels: the open band's colour under the breaker's chart, the lines above it.
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
    let output = run_chromium(chromium, &["--dump-dom"], url).await;
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        dom.contains("</html>"),
        "chromium dumped no page:\nstdout:\n{dom}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    dom
}

/// A `width`×`height` screenshot of `url` after five seconds of virtual time, saved at `path`
/// and decoded: (width, height, RGB bytes).
async fn screenshot(
    chromium: &Path,
    url: &str,
    (width, height): (u32, u32),
    path: &Path,
) -> (u32, u32, Vec<u8>) {
    let _ = std::fs::remove_file(path);
    let output = run_chromium(
        chromium,
        &[
            &format!("--screenshot={}", path.display()),
            &format!("--window-size={width},{height}"),
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ],
        url,
    )
    .await;
    let file = std::fs::File::open(path).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}); chromium said:\n{}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|px| px[..3].to_vec())
        .collect();
    (info.width, info.height, rgb)
}

/// Runs headless Chromium on `url` with `args` (after the common ones and five seconds of
/// virtual time); panics if it fails or hangs.
async fn run_chromium(chromium: &Path, args: &[&str], url: &str) -> std::process::Output {
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
    .arg("--virtual-time-budget=5000")
    .args(args)
    .arg(url)
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
    assert!(
        output.status.success(),
        "chromium failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
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

/// The open state's colour in the history band (Okabe–Ito vermillion); nothing else on the
/// page is drawn in it.
const OPEN_BAND: [u8; 3] = [0xD5, 0x5E, 0x00];
/// The requests line's colour (Okabe–Ito blue).
const REQUESTS_LINE: [u8; 3] = [0x00, 0x72, 0xB2];
/// The failures line's colour (Okabe–Ito orange).
const FAILURES_LINE: [u8; 3] = [0xE6, 0x9F, 0x00];

/// Waits until `/v1/history` holds a sample newer than the newest one now.
async fn next_sample(app: &Daemon) {
    let newest = |h: serde_json::Value| h["timestamps"].as_array().unwrap().last().cloned();
    let before = newest(app.admin_json("/v1/history").await);
    common::wait::eventually("a new history sample", || async {
        newest(app.admin_json("/v1/history").await) != before
    })
    .await;
}

/// Sends `n` gateway requests to the mock provider; they answer `expect`.
async fn requests(app: &Daemon, n: usize, expect: StatusCode) {
    for _ in 0..n {
        let answer = get(&app.gateway("/mock/v1/fail")).await;
        assert_eq!(answer.status, expect, "{:?}", answer.body);
    }
}

/// Whether `px` is `colour`, give or take `slack` per channel (anti-aliased edges).
fn near(px: &[u8], colour: [u8; 3], slack: u8) -> bool {
    px.iter().zip(colour).all(|(&a, b)| a.abs_diff(b) <= slack)
}

/// The bounding box (x0, y0, x1, y1, inclusive) of the pixels of `colour` that lie in
/// horizontal runs of at least `min_run`: a filled block, not a line or text.
fn block_of(
    (width, height, rgb): &(u32, u32, Vec<u8>),
    colour: [u8; 3],
    min_run: u32,
) -> Option<(u32, u32, u32, u32)> {
    let mut bbox: Option<(u32, u32, u32, u32)> = None;
    for y in 0..*height {
        let mut run = 0;
        for x in 0..*width {
            let i = ((y * width + x) * 3) as usize;
            run = if near(&rgb[i..i + 3], colour, 2) {
                run + 1
            } else {
                0
            };
            if run >= min_run {
                let x0 = x + 1 - run;
                bbox = Some(match bbox {
                    None => (x0, y, x, y),
                    Some((a, b, c, _)) => (a.min(x0), b, c.max(x), y),
                });
            }
        }
    }
    bbox
}

/// How many pixels of `colour` lie in columns `xs` and rows `ys`.
fn count_in(
    (width, _, rgb): &(u32, u32, Vec<u8>),
    colour: [u8; 3],
    xs: std::ops::Range<u32>,
    ys: std::ops::Range<u32>,
) -> usize {
    ys.flat_map(|y| xs.clone().map(move |x| ((y * width + x) * 3) as usize))
        .filter(|&i| near(&rgb[i..i + 3], colour, 40))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_charts_the_history_of_a_breaker_that_opens_and_of_an_output() {
    let Some(chromium) = chromium() else { return };
    let upstream = MockUpstream::start(Reply::ok()).await;
    // A short sample period so that the history fills in a second, not in minutes.
    let yaml = format!(
        "server: {{ listen: 127.0.0.1:0 }}
admin: {{ listen: 127.0.0.1:0, history: {{ period: 100ms, window: 15s }} }}
providers:
  - {{ name: mock, kind: generic, base_url: 'http://{}',
      circuit_breaker: {{ failure_threshold: 3, open_timeout: 1h, jitter: 0 }} }}
pipelines:
  - name: events
    outputs: [{{ name: sink, type: blackhole, batch: {{ linger: 0s }} }}]
",
        upstream.addr()
    );
    let app = Daemon::start(&yaml).await;

    // Healthy traffic over four samples, with events through the pipeline; then the upstream
    // fails, three failures trip the breaker, and the next calls are rejected over three more.
    for (calls, events) in [(2, 3), (5, 6), (8, 10), (4, 5)] {
        requests(&app, calls, StatusCode::OK).await;
        let body = "{\"n\":1}\n".repeat(events);
        let ingested = post(
            &app.gateway("/ingest/events"),
            "application/x-ndjson",
            &body,
        )
        .await;
        assert!(ingested.status.is_success(), "{:?}", ingested.body);
        next_sample(&app).await;
    }
    upstream.set_default(Reply::overloaded());
    requests(&app, 3, StatusCode::SERVICE_UNAVAILABLE).await;
    next_sample(&app).await;
    for rejected in [6, 10, 4] {
        requests(&app, rejected, StatusCode::SERVICE_UNAVAILABLE).await;
        next_sample(&app).await;
    }
    // A second of quiet: the open band spans at least 15 samples, wider than any legend swatch.
    for _ in 0..10 {
        next_sample(&app).await;
    }
    let sum = |v: &serde_json::Value| -> u64 {
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_u64())
            .sum()
    };
    let history = settle(
        || app.admin_json("/v1/history"),
        |h| sum(&h["outputs"][0]["delivered"]) == 24,
    )
    .await;
    let mock = history["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "mock")
        .unwrap_or_else(|| panic!("no history of the mock breaker: {history}"));
    assert_eq!(sum(&mock["requests"]), 19 + 3, "{mock}");
    assert_eq!(sum(&mock["failures"]), 3, "{mock}");
    assert_eq!(sum(&mock["rejections"]), 20, "{mock}");
    assert_eq!(mock["states"].as_array().unwrap().last().unwrap(), "open");
    assert_eq!(sum(&history["outputs"][0]["delivered"]), 24, "{history}");

    // The DOM: a chart per breaker with its three lines and an open band, the legend, and a
    // chart of the output.
    let dom = dump_dom(chromium, &app.admin("/ui")).await;
    let breakers = element(&dom, "div", &[r#"id="history-breakers""#]);
    let figure = element(
        &dom,
        "figure",
        &[r#"class="chart breaker-chart""#, r#"data-name="mock""#],
    );
    for line in ["requests", "failures", "rejections"] {
        let path = element(figure, "path", &[&format!(r#"class="line {line}""#)]);
        assert!(
            path.contains(r#" d="M"#) && path.matches(" L").count() >= 8,
            "the {line} line has no points: {path}"
        );
    }
    assert!(
        figure.contains(r#"class="band band-open""#),
        "no open band: {figure}"
    );
    assert!(
        figure.contains("22 requests · 3 failures · 20 rejections"),
        "{figure}"
    );
    for label in [
        "requests",
        "failures",
        "rejections",
        "band: closed",
        "band: half-open",
        "band: open",
    ] {
        assert!(
            element(breakers, "ul", &[r#"class="legend""#]).contains(&format!(">{label}<")),
            "the legend lacks {label}: {breakers}"
        );
    }
    let outputs = element(&dom, "div", &[r#"id="history-outputs""#]);
    let legend = element(outputs, "ul", &[r#"class="legend""#]);
    for label in ["delivered", "sampled out", "dropped"] {
        assert!(legend.contains(&format!(">{label}<")), "{legend}");
    }
    let sink = element(
        &dom,
        "figure",
        &[r#"class="chart output-chart""#, r#"data-output="sink""#],
    );
    assert!(sink.contains("events/s"), "{sink}");
    assert!(sink.contains("24 delivered"), "{sink}");

    // The pixels: an open-coloured band under the mock's chart (the first: open comes first),
    // with the requests and failures lines drawn above it.
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-history.png");
    let image = screenshot(chromium, &app.admin("/ui"), (1400, 1400), &path).await;
    eprintln!("dashboard screenshot: {}", path.display());
    let (x0, y0, x1, y1) = block_of(&image, OPEN_BAND, 20)
        .unwrap_or_else(|| panic!("no open band in {}", path.display()));
    assert!(
        y1 - y0 + 1 >= 6,
        "the open band is {} px high in {}",
        y1 - y0 + 1,
        path.display()
    );
    let plot = y0.saturating_sub(110)..y0;
    let left = 0..x1 + 1;
    let blue = count_in(&image, REQUESTS_LINE, left.clone(), plot.clone());
    let orange = count_in(&image, FAILURES_LINE, left, plot);
    assert!(
        blue >= 20 && orange >= 5,
        "lines above the band at x {x0}..{x1}, y {y0}: {blue} requests px, {orange} failures px \
         in {}",
        path.display()
    );
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
