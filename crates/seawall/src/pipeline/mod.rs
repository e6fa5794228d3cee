//! The event pipeline (DESIGN §4): `POST /ingest/{pipeline}` fans events out to outputs, each
//! behind its own bounded queue and per-endpoint breakers, with reroute → sampling → drop.
//!
//! # Layout
//! - `parse.rs`: NDJSON / JSON array → events (slices of the body, one line each).
//! - `ingest.rs`: the HTTP handler (method, path, size limit, all-or-nothing acceptance).
//! - `ledger.rs`: an output's queue, retry buffer and exact accounting under one small lock.
//! - `output.rs`: an output's endpoints and breakers, built from configuration.
//! - `sink.rs`: sending one NDJSON batch to `http`, `file`, `stdout` or `blackhole`.
//! - `deliver.rs`: one batch's walk over the endpoints (reroute rules).
//! - `worker.rs`: batching, fallback sampling and the retry buffer's drain.
//! - `metrics.rs`, `view.rs`: the Prometheus families and `GET /v1/pipelines`.

mod deliver;
mod error;
mod ingest;
mod ledger;
mod metrics;
mod output;
mod parse;
mod sink;
mod view;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use seawall_breaker::{CircuitBreaker, Clock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::PipelineConfig;
use crate::http1::outbound::Pools;
use crate::metrics::{BreakerLabels, Metrics};

pub use error::PipelineError;
pub use view::{DroppedView, EndpointView, FillView, OutputView, PipelineView};

use deliver::Route;
use output::Output;
use worker::Worker;

/// Every configured pipeline, its outputs and their worker tasks.
///
/// Each output counts its events so that, in every snapshot,
/// `accepted = delivered + sampled_out + dropped + pending`.
pub struct Pipelines {
    pipelines: Vec<Pipeline>,
    /// Cleared by [`shutdown`](Pipelines::shutdown): ingest answers 503, submit refuses.
    accepting: AtomicBool,
    /// Tells workers to skip linger and finish once everything is delivered.
    draining: watch::Sender<bool>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// One pipeline: its limits and outputs.
struct Pipeline {
    name: String,
    max_body: u64,
    /// Events accepted (every output was offered each of them).
    accepted: AtomicU64,
    accepted_metric: Counter,
    outputs: Vec<Arc<Output>>,
}

impl Pipeline {
    /// Offers `events` to every output.
    fn accept(&self, events: &[Bytes]) {
        let n = events.len() as u64;
        self.accepted.fetch_add(n, Ordering::Relaxed);
        self.accepted_metric.inc_by(n);
        for output in &self.outputs {
            output.ledger.offer(events);
        }
    }
}

impl Pipelines {
    /// Builds every configured pipeline and spawns its output workers. Call inside tokio.
    ///
    /// Fails when an output's destination cannot be used (a `file` whose directory does not
    /// exist, an unparsable URL) or its breaker settings are invalid.
    pub fn start(
        configs: &[PipelineConfig],
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Pipelines>, PipelineError> {
        let pools = Pools::new().map_err(|e| PipelineError::Tls(e.to_string()))?;
        Self::start_with_pools(configs, clock, metrics, &pools)
    }

    /// [`Pipelines::start`], sending `http` batches through `pools` (the daemon shares one set).
    pub(crate) fn start_with_pools(
        configs: &[PipelineConfig],
        clock: Clock,
        metrics: Arc<Metrics>,
        pools: &Pools,
    ) -> Result<Arc<Pipelines>, PipelineError> {
        let families = metrics::Families::register(&metrics);
        let (draining, _) = watch::channel(false);
        let mut pipelines = Vec::new();
        let mut workers = Vec::new();
        for p in configs {
            let mut outputs = Vec::new();
            for o in &p.outputs {
                let (output, sinks) = output::build(p, o, &clock, &metrics, &families, pools)?;
                let rng = match p.fallback.sampling.seed {
                    Some(seed) => fastrand::Rng::with_seed(seed),
                    None => fastrand::Rng::new(),
                };
                workers.push(Worker {
                    pipeline: p.name.clone(),
                    output: output.clone(),
                    sinks,
                    batch: o.batch.clone(),
                    route: Route {
                        timeout: o.timeout,
                        max_reroutes: p.fallback.reroute.max_attempts,
                    },
                    rng,
                    draining: draining.subscribe(),
                });
                outputs.push(output);
            }
            pipelines.push(Pipeline {
                name: p.name.clone(),
                max_body: p.max_body,
                accepted: AtomicU64::new(0),
                accepted_metric: families.accepted(&p.name),
                outputs,
            });
        }
        // Spawn only once everything is built, so a failed start leaves no task behind.
        let handles = workers.into_iter().map(|w| tokio::spawn(w.run())).collect();
        Ok(Arc::new(Pipelines {
            pipelines,
            accepting: AtomicBool::new(true),
            draining,
            workers: Mutex::new(handles),
        }))
    }

    fn pipeline(&self, name: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    /// Non-blocking submit of one event (the gateway's own request events). Returns false if
    /// the pipeline is unknown or shutting down. Accounting as for ingest: an output whose
    /// queue is full drops its copy as `queue_full`.
    pub fn submit(&self, pipeline: &str, event: serde_json::Value) -> bool {
        let Some(p) = self.pipeline(pipeline) else {
            return false;
        };
        if !self.accepting.load(Ordering::Acquire) {
            return false;
        }
        // Compact serialisation never contains a raw line break.
        match serde_json::to_vec(&event) {
            Ok(bytes) => {
                p.accept(&[Bytes::from(bytes)]);
                true
            }
            Err(_) => false,
        }
    }

    /// Highest fill ratio (0.0..=1.0) among all output queues, for the global health monitor.
    pub fn queue_fill(&self) -> f64 {
        self.outputs()
            .map(|o| o.ledger.queue_len().0 as f64 / o.ledger.queue_capacity().max(1) as f64)
            .fold(0.0, f64::max)
            .min(1.0)
    }

    /// Every output endpoint's breaker with its labels (kind `output`, name = output, endpoint
    /// = URL, file path, `stdout` or `blackhole`), for `/v1/breakers` and admin actions.
    pub fn breakers(&self) -> Vec<(BreakerLabels, CircuitBreaker)> {
        self.outputs()
            .flat_map(|o| o.endpoints.iter())
            .map(|e| (e.labels.clone(), e.breaker.clone()))
            .collect()
    }

    /// Timed transitions of output breakers (call it every `check_interval`); wakes workers
    /// whose retry buffer may now drain, and refreshes the sampling-rate gauges.
    pub fn tick(&self) {
        for o in self.outputs() {
            for e in &o.endpoints {
                e.breaker.tick();
            }
            o.publish_sampling_rate();
            o.wake.notify_one();
        }
    }

    /// Stops accepting, lets workers drain their queues and retry buffers for up to `grace`,
    /// then stops them and counts what is left as dropped with reason `shutdown` (a batch
    /// cut off mid-send included: it is not known to have arrived). Resolves when the workers
    /// have stopped.
    pub async fn shutdown(&self, grace: Duration) {
        self.accepting.store(false, Ordering::Release);
        self.draining.send_replace(true);
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = tokio::time::Instant::now() + grace;
        for mut handle in handles {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                handle.abort();
                let _ = handle.await;
            }
        }
        for o in self.outputs() {
            o.ledger.drop_all_pending();
        }
    }

    fn outputs(&self) -> impl Iterator<Item = &Arc<Output>> {
        self.pipelines.iter().flat_map(|p| p.outputs.iter())
    }
}
