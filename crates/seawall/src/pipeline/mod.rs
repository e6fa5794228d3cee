//! The event pipeline (DESIGN §4): `POST /ingest/{pipeline}` fans events out to outputs, each
//! behind its own bounded queue and per-endpoint breakers, with reroute → buffer → sampling →
//! drop. Delivery is at least once: a batch whose send may have arrived is sent again, under
//! the same `x-seawall-batch-id`.
//!
//! # Layout
//! - `parse.rs`: NDJSON / JSON array → strictly checked events, as compact NDJSON text.
//! - `events.rs`: [`Chunk`](events::Chunk), a run of events in one shared buffer.
//! - `ingest.rs`: the HTTP handler (method, path, content type, size and memory limits,
//!   all-or-nothing acceptance).
//! - `ledger.rs`: an output's queue, retry buffer and exact accounting under one small lock.
//! - `output.rs`: an output's endpoints and breakers, built from configuration.
//! - `sink.rs`: sending one NDJSON batch to `http`, `file`, `stdout` or `blackhole`.
//! - `deliver.rs`: one batch's walk over the endpoints (reroute rules).
//! - `worker.rs`: batching, holding events while the output cannot deliver, the retry buffer.
//! - `metrics.rs`, `view.rs`: the Prometheus families and `GET /v1/pipelines`.

mod deliver;
mod error;
mod events;
mod ingest;
mod ledger;
mod metrics;
mod output;
mod parse;
mod sink;
mod view;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use seawall_breaker::{CircuitBreaker, Clock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::PipelineConfig;
use crate::health::Health;
use crate::http1::outbound::Pools;
use crate::memory::Budget;
use crate::metrics::{BreakerLabels, Metrics};

pub use error::PipelineError;
pub use view::{DroppedView, EndpointView, FillView, OutputView, PipelineView};

use deliver::Route;
use events::Chunk;
use ledger::DropReason;
use output::Output;
use worker::Worker;

/// Every configured pipeline, its outputs and their worker tasks.
///
/// Each output counts its events so that, in every snapshot,
/// `accepted = delivered + sampled_out + dropped + pending`.
pub struct Pipelines {
    pipelines: Vec<Pipeline>,
    /// Cleared by [`stop_accepting`](Pipelines::stop_accepting): ingest answers 503, submit
    /// refuses.
    accepting: AtomicBool,
    /// The bytes held in queues, retry buffers and bodies being read.
    budget: Arc<Budget>,
    /// Counts ingest requests refused at admission and shapes their answer; set by the app
    /// when global health is on.
    health: OnceLock<Arc<Health>>,
    /// Tells workers to skip linger and finish once everything is delivered.
    draining: watch::Sender<bool>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// One pipeline: its limits and outputs.
struct Pipeline {
    name: String,
    max_body: u64,
    /// `max_depth`: deepest nesting of an event.
    max_depth: u32,
    /// Events accepted (every output was offered each of them).
    accepted: AtomicU64,
    accepted_metric: Counter,
    outputs: Vec<Arc<Output>>,
}

impl Pipeline {
    /// Offers `events` to every output.
    fn accept(&self, events: &Chunk) {
        let n = events.events() as u64;
        self.accepted.fetch_add(n, Ordering::Relaxed);
        self.accepted_metric.inc_by(n);
        for output in &self.outputs {
            output.offer(events);
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
        let budget = Budget::new(&metrics);
        let (draining, _) = watch::channel(false);
        let mut pipelines = Vec::new();
        let mut workers = Vec::new();
        for p in configs {
            let mut outputs = Vec::new();
            for o in &p.outputs {
                let (output, sinks) =
                    output::build(p, o, &clock, &metrics, &families, &budget, pools)?;
                workers.push(Worker {
                    pipeline: p.name.clone(),
                    output: output.clone(),
                    sinks,
                    batch: o.batch.clone(),
                    route: Route {
                        timeout: o.timeout,
                        max_reroutes: p.fallback.reroute.max_attempts,
                    },
                    id_prefix: fastrand::u64(..),
                    draining: draining.subscribe(),
                });
                outputs.push(output);
            }
            pipelines.push(Pipeline {
                name: p.name.clone(),
                max_body: p.max_body,
                max_depth: p.max_depth,
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
            budget,
            health: OnceLock::new(),
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
            Ok(mut text) => {
                text.push(b'\n');
                p.accept(&Chunk::new(self.budget.hold(text), 1));
                true
            }
            Err(_) => false,
        }
    }

    /// The count of bytes the pipelines hold (bodies being read, queues, retry buffers,
    /// batches in flight), against which `global_health.memory_threshold` is enforced.
    pub fn memory(&self) -> &Arc<Budget> {
        &self.budget
    }

    /// Enforces `health`'s memory threshold at ingest admission, counting and answering
    /// refusals as `health` does.
    pub fn set_health(&self, health: Arc<Health>) {
        self.budget.set_limit(health.memory_threshold());
        let _ = self.health.set(health);
    }

    /// Stops accepting events: from now on ingest answers `503 shutting_down` and
    /// [`submit`](Pipelines::submit) refuses. Outputs keep delivering what they hold.
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }

    fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Highest fill ratio (0.0..=1.0) among all output queues, for the global health monitor.
    pub fn queue_fill(&self) -> f64 {
        self.outputs()
            .map(|o| o.ledger.levels().0 as f64 / o.ledger.queue_capacity().max(1) as f64)
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
    /// cut off mid-send included: it is not known to have arrived), logging each output's
    /// final accounting. Resolves when the workers have stopped.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_accepting();
        self.draining.send_replace(true);
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(grace)
            .unwrap_or(now + Duration::from_secs(3600));
        for mut handle in handles {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "an output worker failed"),
                Err(_) => {
                    handle.abort();
                    let _ = handle.await;
                }
            }
        }
        for p in &self.pipelines {
            for o in &p.outputs {
                log_final(&p.name, o);
            }
        }
    }

    fn outputs(&self) -> impl Iterator<Item = &Arc<Output>> {
        self.pipelines.iter().flat_map(|p| p.outputs.iter())
    }
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.pipelines.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("Pipelines")
            .field("pipelines", &names)
            .field("accepting", &self.accepting())
            .field("held_bytes", &self.budget.held())
            .finish()
    }
}

/// Drops what `o` still holds as `shutdown` and logs its final accounting: `warn` when it
/// lost events, `info` otherwise.
fn log_final(pipeline: &str, o: &Output) {
    let left_pending = o.ledger.drop_all_pending().pending();
    let c = o.ledger.counts();
    let by = |r: DropReason| c.dropped[r as usize];
    let (queue_full, buffer_full, rejected, shutdown) = (
        by(DropReason::QueueFull),
        by(DropReason::BufferFull),
        by(DropReason::Rejected),
        by(DropReason::Shutdown),
    );
    macro_rules! final_line {
        ($level:ident) => {
            tracing::$level!(pipeline, output = %o.name, accepted = c.accepted,
                delivered = c.delivered, sampled_out = c.sampled_out, queue_full, buffer_full,
                rejected, shutdown, left_pending, "output stopped: final accounting")
        };
    }
    if c.sampled_out + c.dropped_total() > 0 {
        final_line!(warn);
    } else {
        final_line!(info);
    }
}
