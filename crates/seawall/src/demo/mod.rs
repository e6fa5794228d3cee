//! `seawall demo`: the whole daemon in one process, against simulated trouble.
//!
//! Everything listens on `127.0.0.1` with OS-assigned ports: Anthropic- and OpenAI-shaped
//! upstreams that go healthy → overload storm → slow → recovered, a flag server, a telemetry
//! collector that fails for a while, the real [`App`] (configured from YAML generated here
//! and validated like a user's), a traffic generator and a live view read from the admin
//! API. `--duration` or Ctrl-C ends it with a summary.

mod collector;
mod flags;
mod net;
mod summary;
mod traffic;
mod upstreams;
mod view;

use std::io::{self, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::{interval, sleep, Instant, MissedTickBehavior};

use crate::app::App;
use crate::config;

/// Options of the demo.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// How long the demo runs (its phases scale with it; at least 5 s).
    pub duration: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: Duration::from_secs(60),
        }
    }
}

/// How often the admin API is read (transitions are found by diffing two reads).
const POLL: Duration = Duration::from_millis(250);

/// Longest wait, after traffic stops, for in-flight requests and queued events to settle.
const SETTLE: Duration = Duration::from_secs(4);

/// How long the banner shows on a terminal before the live view takes the screen.
const BANNER_PAUSE: Duration = Duration::from_millis(1500);

/// What the simulated upstreams do at a point of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UpstreamPhase {
    Healthy,
    Storm,
    Slow,
    Recovered,
}

/// The run's clock: phases are fractions of its duration.
#[derive(Clone, Copy, Debug)]
struct Timeline {
    start: Instant,
    duration: Duration,
}

impl Timeline {
    /// A run of `duration` that starts `delay` from now.
    fn new(duration: Duration, delay: Duration) -> Self {
        Timeline {
            start: Instant::now() + delay,
            duration,
        }
    }

    fn duration(&self) -> Duration {
        self.duration
    }

    fn elapsed_secs(&self) -> f64 {
        Instant::now()
            .saturating_duration_since(self.start)
            .as_secs_f64()
    }

    fn progress(&self) -> f64 {
        self.elapsed_secs() / self.duration.as_secs_f64()
    }

    fn upstream_phase(&self) -> UpstreamPhase {
        upstream_phase_at(self.progress())
    }

    /// Whether the collector's primary (or alternate) endpoint answers 503 now.
    fn collector_down(&self, alternate: bool) -> bool {
        collector_down_at(self.progress(), alternate)
    }

    /// What the simulated upstreams and the collector are doing now, one phrase each.
    fn describe(&self) -> [&'static str; 2] {
        let p = self.progress();
        let upstreams = match upstream_phase_at(p) {
            UpstreamPhase::Healthy => "upstreams healthy",
            UpstreamPhase::Storm => "OVERLOAD STORM: anthropic 529 overloaded_error, openai 429 rate_limit_exceeded (retry-after: 2)",
            UpstreamPhase::Slow => "upstreams SLOW: ~2s answers, SSE events 450ms apart",
            UpstreamPhase::Recovered => "upstreams recovered",
        };
        let collector = match (collector_down_at(p, false), collector_down_at(p, true)) {
            (false, false) => "collector up",
            (true, false) => "collector /primary DOWN (503), /alternate up",
            (true, true) => "collector /primary and /alternate DOWN (503)",
            (false, true) => "collector /alternate DOWN (503)",
        };
        [upstreams, collector]
    }
}

fn upstream_phase_at(progress: f64) -> UpstreamPhase {
    match progress {
        p if p < 0.15 => UpstreamPhase::Healthy,
        p if p < 0.45 => UpstreamPhase::Storm,
        p if p < 0.65 => UpstreamPhase::Slow,
        _ => UpstreamPhase::Recovered,
    }
}

fn collector_down_at(progress: f64, alternate: bool) -> bool {
    if alternate {
        (0.4..0.55).contains(&progress)
    } else {
        (0.3..0.65).contains(&progress)
    }
}

/// A temporary directory, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> io::Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path =
            std::env::temp_dir().join(format!("seawall-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon configuration of the demo, as a user would write it.
fn config_yaml(
    anthropic: SocketAddr,
    openai: SocketAddr,
    flags: SocketAddr,
    collector: SocketAddr,
    events: &Path,
) -> String {
    let breaker = "{ failure_threshold: 5, failure_rate_threshold: 0.5, window: 5s, window_buckets: 5, \
        minimum_calls: 10, slow_call_rate_threshold: 0.5, slow_call_duration: 1s, open_timeout: 2s, \
        open_timeout_max: 4s, half_open_max_calls: 2, half_open_timeout: 5s, check_interval: 250ms, \
        retry_after_max: 5s }";
    let output_breaker = "{ failure_threshold: 2, open_timeout: 1s, open_timeout_max: 4s, \
        half_open_max_calls: 1, half_open_timeout: 3s, check_interval: 250ms }";
    format!(
        r#"server: {{ listen: "127.0.0.1:0", shutdown_grace: 3s }}
admin: {{ listen: "127.0.0.1:0" }}
providers:
  - name: anthropic
    kind: anthropic
    base_url: "http://{anthropic}"
    timeouts: {{ first_byte: 10s, idle: 5s }}
    circuit_breaker: {breaker}
  - name: openai
    kind: openai
    base_url: "http://{openai}"
    timeouts: {{ first_byte: 10s, idle: 5s }}
    circuit_breaker: {breaker}
feature_flags:
  url: "http://{flags}/flags/{{host}}"
  ttl: 10s
  min_ttl: 5s
  max_ttl: 1m
  fetch_timeout: 2s
telemetry: {{ pipeline: requests }}
pipelines:
  - name: requests
    queue: {{ capacity: 5000 }}
    outputs:
      - name: archive
        type: file
        path: {events:?}
        batch: {{ max_events: 200, linger: 200ms }}
      - name: collector
        type: http
        endpoint: "http://{collector}/primary"
        alternates: ["http://{collector}/alternate"]
        timeout: 2s
        batch: {{ max_events: 25, linger: 200ms }}
        resilience: {{ circuit_breaker: {output_breaker} }}
    fallback: {{ reroute: {{ max_attempts: 1 }}, sampling: {{ min_rate: 0.25 }}, retry_buffer: 40 }}
global_health: {{ enabled: true, queue_check_enabled: true, queue_threshold_percent: 90, check_interval: 1s }}
"#
    )
}

/// Runs the demo for `options.duration`, or until Ctrl-C, then prints a summary.
pub async fn run(options: DemoOptions) -> io::Result<()> {
    let duration = options.duration.max(Duration::from_secs(5));
    let dir = TempDir::new()?;
    let events = dir.0.join("requests.ndjson");
    let tty = io::stdout().is_terminal();
    // On a terminal the banner stays readable for a moment before the first redraw.
    let banner = if tty { BANNER_PAUSE } else { Duration::ZERO };
    let timeline = Timeline::new(duration, banner);
    let anthropic = upstreams::start(upstreams::Shape::Anthropic, timeline).await?;
    let openai = upstreams::start(upstreams::Shape::Openai, timeline).await?;
    let flag_server = flags::start().await?;
    let collector = collector::start(timeline).await?;

    let yaml = config_yaml(
        anthropic.addr,
        openai.addr,
        flag_server.addr,
        collector.addr,
        &events,
    );
    let config = config::parse(&yaml)
        .map_err(|e| io::Error::other(format!("the demo configuration is invalid: {e}")))?;
    let secrets = config
        .resolve_secrets(|_| None)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let app = App::start(config, secrets)
        .await
        .map_err(io::Error::other)?;
    let (gateway, admin) = (app.gateway_addr(), app.admin_addr());

    println!(
        "seawall demo: {}s of simulated trouble (Ctrl-C ends it early)",
        duration.as_secs()
    );
    println!("  dashboard  http://{admin}/ui");
    println!("  gateway    http://{gateway}  (routes /anthropic/… and /openai/…)");
    println!("  admin API  http://{admin}/v1/breakers  /v1/pipelines  /v1/flags  /metrics");
    println!(
        "  try an SDK: ANTHROPIC_BASE_URL=http://{gateway}/anthropic  or  OPENAI_BASE_URL=http://{gateway}/openai/v1"
    );
    println!("  timeline: healthy 0-15%, storm 15-45%, slow 45-65%, recovered after; collector down 30-65%\n");
    sleep(banner).await;

    let client = net::client();
    let tally = Arc::new(traffic::Tally::default());
    let traffic = traffic::start(client.clone(), gateway, tally.clone());
    let mut observer = view::Observer::new(client, admin, timeline, tally.clone(), tty);
    let mut poll = interval(POLL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let deadline = sleep(duration.saturating_sub(Duration::from_secs_f64(timeline.elapsed_secs())));
    tokio::pin!(deadline);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let interrupted = loop {
        tokio::select! {
            _ = &mut deadline => break false,
            _ = &mut ctrl_c => break true,
            _ = poll.tick() => observer.poll().await,
        }
    };
    traffic.abort();
    println!(
        "{} traffic stopped; letting in-flight requests and queued events settle…",
        view::stamp(timeline.elapsed_secs())
    );
    settle(&mut observer, &tally).await;

    let file_lines = std::fs::read_to_string(&events)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let facts = summary::Facts {
        tally: &tally,
        anthropic: &anthropic.stats,
        openai: &openai.stats,
        collector_events: collector
            .stats
            .events
            .load(std::sync::atomic::Ordering::Relaxed),
        flag_requests: flag_server
            .served
            .load(std::sync::atomic::Ordering::Relaxed),
        file_lines: (file_lines, events.display().to_string()),
        interrupted,
    };
    print!("{}", summary::render(&observer, &facts));

    app.shutdown();
    app.wait().await;
    for task in [
        anthropic.task,
        openai.task,
        flag_server.task,
        collector.task,
    ] {
        task.abort();
    }
    drop(dir);
    println!("\nstopped cleanly; temporary files removed.");
    io::stdout().flush()
}

/// Waits (bounded by [`SETTLE`]) until every request has its answer and every output's
/// pending count is zero, reading the admin API as it goes.
async fn settle(observer: &mut view::Observer, tally: &traffic::Tally) {
    let until = Instant::now() + SETTLE;
    loop {
        observer.read().await;
        let answered = tally.total(|r| &r.ok)
            + tally.total(|r| &r.upstream_error)
            + tally.total(|r| &r.rejected)
            + tally.total(|r| &r.other);
        let pending: u64 = observer
            .outputs()
            .map(|o| o["pending"].as_u64().unwrap_or(0))
            .sum();
        if (answered >= tally.total(|r| &r.sent) && pending == 0) || Instant::now() >= until {
            return;
        }
        sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_run() {
        assert_eq!(upstream_phase_at(0.0), UpstreamPhase::Healthy);
        assert_eq!(upstream_phase_at(0.2), UpstreamPhase::Storm);
        assert_eq!(upstream_phase_at(0.5), UpstreamPhase::Slow);
        assert_eq!(upstream_phase_at(0.9), UpstreamPhase::Recovered);
        assert!(!collector_down_at(0.1, false));
        assert!(collector_down_at(0.35, false) && !collector_down_at(0.35, true));
        assert!(collector_down_at(0.45, true));
    }

    #[test]
    fn the_generated_configuration_is_valid() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let yaml = config_yaml(a, a, a, a, Path::new("/tmp/x.ndjson"));
        let config = config::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(config.providers.len(), 2);
        assert_eq!(config.pipelines[0].outputs.len(), 2);
    }
}
