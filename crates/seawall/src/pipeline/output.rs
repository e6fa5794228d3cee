//! One output of a pipeline: its ledger, its endpoints (each with a breaker), and the sinks
//! its worker sends through, built from configuration.

use std::sync::Arc;

use seawall_breaker::{CircuitBreaker, Clock, ConfigError as PolicyError, Mode, State};
use tokio::sync::Notify;

use super::disk::{Mark, Pos};
use super::events::Chunk;
use super::ledger::{Capacity, Ledger};
use super::metrics::Families;
use super::sink::Sink;
use super::PipelineError;
use crate::breakers::{policy, record_transition, report_streaks};
use crate::config::{BreakerSettings, Compression, OutputConfig, OutputType, PipelineConfig};
use crate::http1::outbound::Pools;
use crate::memory::Budget;
use crate::metrics::{BreakerLabels, Metrics};

/// One destination of an output, with its breaker.
pub(crate) struct Endpoint {
    pub(crate) labels: BreakerLabels,
    pub(crate) breaker: CircuitBreaker,
}

impl Endpoint {
    /// Closed, or a mode that never rejects: counts as healthy for sampling.
    pub(crate) fn is_healthy(&self) -> bool {
        match self.breaker.mode() {
            Mode::Disabled | Mode::MetricsOnly => true,
            Mode::ForcedOpen => false,
            _ => self.breaker.state() == State::Closed,
        }
    }

    /// Not open: a send may be admitted (a half-open breaker may still be out of probes).
    pub(crate) fn may_admit(&self) -> bool {
        match self.breaker.mode() {
            Mode::Disabled | Mode::MetricsOnly => true,
            Mode::ForcedOpen => false,
            _ => self.breaker.state() != State::Open,
        }
    }
}

/// An output's shared state (the worker owns the sinks).
pub(crate) struct Output {
    pub(crate) name: String,
    pub(crate) kind: OutputType,
    pub(crate) ledger: Ledger,
    pub(crate) endpoints: Vec<Endpoint>,
    /// Floor of the sampling rate.
    pub(crate) min_rate: f64,
    /// Wakes the worker to send again: a breaker changed state or may have recovered.
    pub(crate) wake: Arc<Notify>,
    /// For breaker reject counts.
    pub(crate) metrics: Arc<Metrics>,
}

impl Output {
    /// Share of endpoints whose breaker is closed.
    pub(crate) fn healthy_share(&self) -> f64 {
        let healthy = self.endpoints.iter().filter(|e| e.is_healthy()).count();
        healthy as f64 / self.endpoints.len() as f64
    }

    /// The share of arriving events kept when the output's buffer is full: the healthy share
    /// of endpoints, floored at `min_rate`.
    fn base_rate(&self) -> f64 {
        self.healthy_share().max(self.min_rate).min(1.0)
    }

    /// The share of arriving events kept right now (1 unless the buffer is past
    /// `start_percent`).
    pub(crate) fn sampling_rate(&self) -> f64 {
        self.ledger.rate(self.base_rate())
    }

    /// Publishes the sampling-rate gauge.
    pub(crate) fn publish_sampling_rate(&self) {
        self.ledger
            .metrics()
            .sampling_rate
            .set(self.sampling_rate());
    }

    /// Admits a request's events (see [`Ledger::offer`]).
    pub(crate) fn offer(&self, events: &Chunk) {
        self.ledger.offer(events, self.base_rate());
    }

    /// Admits a request's events just appended to the disk buffer's log (see
    /// [`Ledger::offer_logged`]).
    pub(crate) fn offer_logged(&self, events: &Chunk, first: u64, end: Pos) {
        self.ledger.offer_logged(events, first, end);
    }

    /// Whether any endpoint may take a batch now.
    pub(crate) fn may_deliver(&self) -> bool {
        self.endpoints.iter().any(Endpoint::may_admit)
    }

    /// Applies new breaker settings to every endpoint's breaker in place (state and counts
    /// kept); a change of `enabled` disables them, or returns them to normal (an operator's
    /// forced-open stays).
    pub(crate) fn reconfigure(
        &self,
        settings: &BreakerSettings,
        clock: &Clock,
    ) -> Result<(), PolicyError> {
        let template = policy(settings, clock.clone())?;
        for e in &self.endpoints {
            e.breaker.reconfigure(template.clone());
            match (settings.enabled, e.breaker.mode()) {
                (false, Mode::Normal | Mode::MetricsOnly) => e.breaker.disable(),
                (true, Mode::Disabled) => e.breaker.set_mode(Mode::Normal),
                _ => {}
            }
        }
        self.wake.notify_one();
        Ok(())
    }
}

/// Where a disk-buffered output resumes: its cursor's mark, the log's next index, and the
/// position of the record holding the cursor.
pub(crate) type Resume<'a> = (&'a Mark, u64, Pos);

/// What every output of the daemon is built with.
pub(crate) struct Shared<'a> {
    pub(crate) clock: &'a Clock,
    pub(crate) metrics: &'a Arc<Metrics>,
    pub(crate) families: &'a Families,
    pub(crate) budget: &'a Arc<Budget>,
    pub(crate) pools: &'a Pools,
}

/// Builds output `o` of pipeline `p`: endpoints with breakers, and one sink per endpoint;
/// `resume` with a disk buffer.
pub(crate) fn build(
    p: &PipelineConfig,
    o: &OutputConfig,
    shared: &Shared<'_>,
    resume: Option<Resume<'_>>,
) -> Result<(Arc<Output>, Vec<Sink>), PipelineError> {
    let Shared {
        clock,
        metrics,
        families,
        budget,
        pools,
    } = *shared;
    let problem = |problem: String| PipelineError::Output {
        pipeline: p.name.clone(),
        output: o.name.clone(),
        problem,
    };
    let (names, sinks) = sinks(o, pools).map_err(problem)?;
    // Any breaker change (a timer, an admin reset) may let the worker send again.
    let wake = Arc::new(Notify::new());
    let settings = &o.resilience.circuit_breaker;
    let template = policy(settings, clock.clone()).map_err(|source| PipelineError::Breaker {
        pipeline: p.name.clone(),
        output: o.name.clone(),
        source,
    })?;
    let endpoints = names
        .into_iter()
        .map(|endpoint| {
            let labels = BreakerLabels {
                kind: "output",
                name: o.name.clone(),
                endpoint,
                model: String::new(),
                target: String::new(),
            };
            let breaker = CircuitBreaker::new(template.clone());
            if !settings.enabled {
                breaker.disable();
            }
            metrics.set_breaker_state(&labels, breaker.state());
            let (m, l) = (metrics.clone(), labels.clone());
            breaker.on_state_change(move |t| record_transition(&m, &l, t));
            report_streaks(&breaker, metrics, labels.clone());
            let wake = wake.clone();
            breaker.on_state_change(move |_| wake.notify_one());
            Endpoint { labels, breaker }
        })
        .collect();
    let rng = match p.fallback.sampling.seed {
        Some(seed) => fastrand::Rng::with_seed(seed),
        None => fastrand::Rng::new(),
    };
    let capacity = Capacity {
        queue: p.queue.capacity,
        buffer: p.fallback.retry_buffer,
        start: f64::from(p.fallback.sampling.start_percent) / 100.0,
    };
    let ledger = Ledger::new(
        capacity,
        rng,
        families.output(&p.name, &o.name),
        budget.clone(),
        (p.name.clone(), o.name.clone()),
    );
    let ledger = match resume {
        Some((mark, end, pos)) => ledger.on_disk(mark, end, pos),
        None => ledger,
    };
    let output = Output {
        name: o.name.clone(),
        kind: o.kind,
        ledger,
        endpoints,
        min_rate: p.fallback.sampling.min_rate,
        wake,
        metrics: metrics.clone(),
    };
    Ok((Arc::new(output), sinks))
}

/// The endpoint names (breaker labels) and sinks of an output.
fn sinks(o: &OutputConfig, pools: &Pools) -> Result<(Vec<String>, Vec<Sink>), String> {
    match o.kind {
        OutputType::Http | OutputType::Otlp => {
            let mut names = Vec::new();
            let mut sinks = Vec::new();
            for url in o.endpoints() {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| format!("endpoint {url:?} is not a URL: {e}"))?;
                if uri.host().is_none() {
                    return Err(format!("endpoint {url:?} has no host"));
                }
                let pool = pools
                    .pool_for(&uri)
                    .map_err(|e| format!("endpoint {url:?}: {e}"))?;
                names.push(url.to_owned());
                sinks.push(match o.kind {
                    OutputType::Otlp => {
                        let gzip = o.compression == Compression::Gzip;
                        Sink::otlp(pool, &uri, o.timeout, &o.headers, gzip)?
                    }
                    _ => Sink::http(pool, &uri, o.timeout),
                });
            }
            if sinks.is_empty() {
                return Err(format!("an `{}` output needs `endpoint`", o.kind.as_str()));
            }
            Ok((names, sinks))
        }
        OutputType::File => {
            let path = o.path.as_ref().ok_or("a `file` output needs `path`")?;
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(dir) = parent {
                if !dir.is_dir() {
                    return Err(format!("directory {} does not exist", dir.display()));
                }
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let name = path.display().to_string();
            Ok((
                vec![name],
                vec![Sink::File(tokio::fs::File::from_std(file))],
            ))
        }
        OutputType::Stdout => Ok((
            vec!["stdout".into()],
            vec![Sink::Stdout(tokio::io::stdout())],
        )),
        OutputType::Blackhole => Ok((vec!["blackhole".into()], vec![Sink::Blackhole])),
    }
}
