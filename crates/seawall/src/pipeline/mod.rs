//! The event pipeline (docs/ARCHITECTURE.md, "An ingested event"): `POST /ingest/{pipeline}` fans events out to outputs, each
//! behind its own bounded queue and per-endpoint breakers, with reroute → buffer → sampling →
//! drop. Delivery is at least once: a batch whose send may have arrived is sent again, under
//! the same `x-seawall-batch-id`.
//!
//! # Layout
//! - `parse.rs`: NDJSON / JSON array → strictly checked events, as compact NDJSON text.
//! - `events.rs`: [`Chunk`](events::Chunk), a run of events in one shared buffer.
//! - `ingest.rs`: the HTTP handler (method, path, content type, size and memory limits,
//!   all-or-nothing acceptance).
//! - `otlp/`: OpenTelemetry logs: `POST /ingest/{pipeline}/v1/logs` (OTLP/HTTP, protobuf or
//!   JSON, gzip), log records ↔ events, and the `otlp` output's request encoding.
//! - `ledger/`: an output's queue, retry buffer and exact accounting under one small lock;
//!   `ledger/logged.rs`: the same with a disk buffer (its place in the log).
//! - `output.rs`: an output's endpoints and breakers, built from configuration.
//! - `sink.rs`: sending one batch to `http`, `otlp`, `file`, `stdout` or `blackhole`.
//! - `deliver.rs`: one batch's walk over the endpoints (reroute rules).
//! - `worker.rs`: batching, holding events while the output cannot deliver, the retry buffer.
//! - `disk/`: the disk buffer (`buffer.type: disk`): a segmented log per pipeline, a cursor
//!   file per output, replay at start; `durable.rs`: a worker's side of it.
//! - `reload.rs`: a new configuration applied while running (unchanged outputs keep their
//!   queues, removed ones drain).
//! - `metrics.rs`, `view.rs`: the Prometheus families and `GET /v1/pipelines`.

mod deliver;
mod disk;
mod durable;
mod error;
mod events;
mod ingest;
mod ledger;
mod metrics;
mod otlp;
mod output;
mod parse;
mod reload;
mod sink;
mod view;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::metrics::counter::Counter;
use seawall_breaker::{CircuitBreaker, Clock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{BufferType, OutputType, PipelineConfig, SyncPolicy};
use crate::health::Health;
use crate::http1::outbound::Pools;
use crate::memory::Budget;
use crate::metrics::{BreakerLabels, Metrics};

pub use error::PipelineError;
pub(crate) use ingest::shed;
pub use reload::PipelinesReload;
pub use view::{BufferView, DroppedView, EndpointView, FillView, OutputView, PipelineView};

use deliver::SendLimits;
use disk::{Disk, Refused};
use durable::Durable;
use events::Chunk;
use ledger::DropReason;
use output::{Output, Shared};
use worker::Worker;

/// Every configured pipeline, its outputs and their worker tasks.
///
/// Each output counts its events so that, in every snapshot,
/// `accepted = delivered + sampled_out + dropped + pending`.
pub struct Pipelines {
    /// Swapped by a reload; a request keeps the pipeline it found until it is done.
    pipelines: ArcSwap<Vec<Arc<Pipeline>>>,
    /// Cleared by [`stop_accepting`](Pipelines::stop_accepting): ingest answers 503, submit
    /// refuses.
    accepting: AtomicBool,
    /// The bytes held in queues, retry buffers and bodies being read.
    budget: Arc<Budget>,
    /// Counts ingest requests refused at admission and shapes their answer; set by the app
    /// when global health is on.
    health: OnceLock<Arc<Health>>,
    /// Every output worker still running: the current outputs' and those a reload removed
    /// that are still draining.
    workers: Mutex<Vec<Running>>,
    /// The disk buffers of pipelines a reload removed (closed at shutdown).
    retired_disks: Mutex<Vec<Arc<Disk>>>,
    /// What outputs are built with (at start and by a reload).
    build: Build,
}

/// What every output of the daemon is built with.
struct Build {
    clock: Clock,
    metrics: Arc<Metrics>,
    families: metrics::Families,
    pools: Arc<Pools>,
}

impl Build {
    fn shared<'a>(&'a self, budget: &'a Arc<Budget>) -> Shared<'a> {
        Shared {
            clock: &self.clock,
            metrics: &self.metrics,
            families: &self.families,
            budget,
            pools: &self.pools,
        }
    }
}

/// An output's worker task.
struct Running {
    pipeline: String,
    output: Arc<Output>,
    on_disk: bool,
    /// Tells the worker to skip linger and finish once everything is delivered.
    drain: Arc<watch::Sender<bool>>,
    handle: JoinHandle<()>,
}

/// One pipeline: its limits and outputs.
struct Pipeline {
    /// The configuration it runs (a reload compares against it).
    config: PipelineConfig,
    name: String,
    max_body: u64,
    /// `max_depth`: deepest nesting of an event.
    max_depth: u32,
    /// Events accepted (every output was offered each of them); with a disk buffer counted by
    /// its writer thread as it appends them.
    accepted: Arc<AtomicU64>,
    accepted_metric: Counter,
    /// OTLP log records accepted and rejected at `/ingest/{name}/v1/logs`.
    otlp: metrics::OtlpMetrics,
    outputs: Vec<Arc<Output>>,
    /// With `buffer.type: disk`: the log every accepted event is appended to first.
    disk: Option<Arc<Disk>>,
    /// Outputs a reload removed: told to drain once the last request that found this
    /// pipeline is done offering to them (when this is dropped), so no late offer is left
    /// behind.
    retire_on_drop: Mutex<Vec<Arc<watch::Sender<bool>>>>,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        for drain in self
            .retire_on_drop
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            drain.send_replace(true);
        }
    }
}

impl Pipeline {
    /// Offers `events` to every output without waiting: with a disk buffer they are handed
    /// to its writer (which appends them to the log and offers them in log order). False if
    /// that writer has stopped.
    fn accept(&self, events: &Chunk) -> bool {
        let Some(disk) = &self.disk else {
            for output in &self.outputs {
                output.offer(events);
            }
            let n = events.events() as u64;
            self.accepted.fetch_add(n, Ordering::Relaxed);
            self.accepted_metric.inc_by(n);
            return true;
        };
        disk.append_detached(events)
    }

    /// Accepts `events`; with a disk buffer resolves once they are in the log (and, with
    /// `sync: always`, on stable storage), refused when the log is full or cannot be written.
    async fn accept_durably(&self, events: &Chunk) -> Result<(), Refused> {
        let Some(disk) = &self.disk else {
            self.accept(events);
            return Ok(());
        };
        let end = disk.append(events).await?;
        disk.synced(end).await
    }
}

/// What a disk buffer's writer does with each record it appended: counts it accepted and
/// offers it to every output, in log order.
fn offer_logged(
    outputs: Vec<Arc<Output>>,
    accepted: Arc<AtomicU64>,
    metric: Counter,
) -> disk::Offer {
    Arc::new(move |events: &Chunk, first, end| {
        for output in &outputs {
            output.offer_logged(events, first, end);
        }
        let n = events.events() as u64;
        accepted.fetch_add(n, Ordering::Relaxed);
        metric.inc_by(n);
    })
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
        Self::start_with_pools(configs, clock, metrics, Arc::new(pools))
    }

    /// [`Pipelines::start`], sending `http` batches through `pools` (the daemon shares one set).
    pub(crate) fn start_with_pools(
        configs: &[PipelineConfig],
        clock: Clock,
        metrics: Arc<Metrics>,
        pools: Arc<Pools>,
    ) -> Result<Arc<Pipelines>, PipelineError> {
        let families = metrics::Families::register(&metrics);
        let budget = Budget::new(&metrics);
        let build = Build {
            clock,
            metrics,
            families,
            pools,
        };
        let mut pipelines = Vec::new();
        let mut workers = Vec::new();
        for p in configs {
            let (pipeline, w) = build_pipeline(p, &build.shared(&budget))?;
            pipelines.push(Arc::new(pipeline));
            workers.extend(w);
        }
        let pipelines = Arc::new(Pipelines {
            pipelines: ArcSwap::from_pointee(pipelines),
            accepting: AtomicBool::new(true),
            budget,
            health: OnceLock::new(),
            workers: Mutex::new(Vec::new()),
            retired_disks: Mutex::new(Vec::new()),
            build,
        });
        // Spawn only once everything is built, so a failed start leaves no task behind.
        pipelines.spawn(workers);
        Ok(pipelines)
    }

    /// Spawns `workers`, each with its own drain signal.
    fn spawn(&self, workers: Vec<(Worker, Arc<watch::Sender<bool>>)>) {
        let mut running = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for (worker, drain) in workers {
            running.push(Running {
                pipeline: worker.pipeline.clone(),
                output: worker.output.clone(),
                on_disk: worker.durable.is_some(),
                drain,
                handle: tokio::spawn(worker.run()),
            });
        }
    }

    fn pipeline(&self, name: &str) -> Option<Arc<Pipeline>> {
        self.pipelines
            .load()
            .iter()
            .find(|p| p.name == name)
            .cloned()
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
                p.accept(&Chunk::new(self.budget.hold(text), 1))
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
    /// Outputs of a disk-buffered pipeline do not count: their queue is a copy of the log, which
    /// sheds by `max_size` itself.
    pub fn queue_fill(&self) -> f64 {
        self.pipelines
            .load()
            .iter()
            .filter(|p| p.disk.is_none())
            .flat_map(|p| p.outputs.iter())
            .map(|o| o.ledger.levels().queued as f64 / o.ledger.queue_capacity().max(1) as f64)
            .fold(0.0, f64::max)
            .min(1.0)
    }

    /// Every output endpoint's breaker with its labels (kind `output`, name = output, endpoint
    /// = URL, file path, `stdout` or `blackhole`), for `/v1/breakers` and admin actions.
    pub fn breakers(&self) -> Vec<(BreakerLabels, CircuitBreaker)> {
        self.outputs()
            .iter()
            .flat_map(|o| o.endpoints.iter())
            .map(|e| (e.labels.clone(), e.breaker.clone()))
            .collect()
    }

    /// Timed transitions of output breakers (call it every `check_interval`); wakes workers
    /// whose retry buffer may now drain, and refreshes the sampling-rate gauges.
    pub fn tick(&self) {
        let running: Vec<Arc<Output>> = self.running().iter().map(|r| r.output.clone()).collect();
        for o in running {
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
    /// final accounting. With a disk buffer nothing is dropped: what is left stays in the log
    /// (synced, with the cursor files) for the next start. Resolves when the workers have
    /// stopped.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop_accepting();
        let running = std::mem::take(&mut *self.running());
        for r in &running {
            r.drain.send_replace(true);
        }
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(grace)
            .unwrap_or(now + Duration::from_secs(3600));
        let mut finals = Vec::new();
        for r in running {
            let mut handle = r.handle;
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "an output worker failed"),
                Err(_) => {
                    handle.abort();
                    let _ = handle.await;
                }
            }
            finals.push((r.pipeline, r.output, r.on_disk));
        }
        let retired =
            std::mem::take(&mut *self.retired_disks.lock().unwrap_or_else(|e| e.into_inner()));
        let current = self.pipelines.load();
        for disk in current
            .iter()
            .filter_map(|p| p.disk.as_ref())
            .chain(&retired)
        {
            disk.close();
        }
        for (pipeline, output, on_disk) in finals {
            log_final(&pipeline, &output, on_disk);
        }
    }

    /// The outputs of the pipelines now configured.
    fn outputs(&self) -> Vec<Arc<Output>> {
        self.pipelines
            .load()
            .iter()
            .flat_map(|p| p.outputs.iter().cloned())
            .collect()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pipelines = self.pipelines.load();
        let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("Pipelines")
            .field("pipelines", &names)
            .field("accepting", &self.accepting())
            .field("held_bytes", &self.budget.held())
            .finish()
    }
}

/// An output's worker, not yet spawned, with its drain signal.
type NewWorker = (Worker, Arc<watch::Sender<bool>>);

/// Builds pipeline `p`: its disk buffer (if any, resumed), its outputs and their workers (not
/// yet spawned).
fn build_pipeline(
    p: &PipelineConfig,
    shared: &Shared<'_>,
) -> Result<(Pipeline, Vec<NewWorker>), PipelineError> {
    let (disk, resumed) = open_disk(p, shared.families)?;
    let end = disk.as_ref().map_or(0, |d| d.log.end());
    let mut outputs = Vec::new();
    let mut workers = Vec::new();
    for (i, o) in p.outputs.iter().enumerate() {
        let resume = resumed.get(i).map(|r| (&r.mark, end, r.pos));
        let (output, sinks) = output::build(p, o, shared, resume)?;
        let durable = disk.as_ref().zip(resumed.get(i)).map(|(d, r)| {
            let syncs_file = o.kind == OutputType::File && p.buffer.sync != SyncPolicy::None;
            Durable::new(
                d.clone(),
                r.file.clone(),
                r.mark,
                syncs_file,
                p.buffer.sync_interval,
            )
        });
        workers.push(new_worker(p, o, &output, sinks, durable));
        outputs.push(output);
    }
    let accepted_metric = shared.families.accepted(&p.name);
    accepted_metric.inc_by(end);
    let accepted = Arc::new(AtomicU64::new(end));
    if let Some(disk) = &disk {
        let offer = offer_logged(outputs.clone(), accepted.clone(), accepted_metric.clone());
        disk.start_writer(offer)
            .map_err(|source| PipelineError::Buffer {
                pipeline: p.name.clone(),
                path: disk.path.clone(),
                source,
            })?;
    }
    let pipeline = Pipeline {
        config: p.clone(),
        name: p.name.clone(),
        max_body: p.max_body,
        max_depth: p.max_depth,
        accepted,
        accepted_metric,
        otlp: shared.families.otlp(&p.name),
        outputs,
        disk,
        retire_on_drop: Mutex::new(Vec::new()),
    };
    Ok((pipeline, workers))
}

/// The worker of output `o` of pipeline `p`, with its own drain signal.
fn new_worker(
    p: &PipelineConfig,
    o: &crate::config::OutputConfig,
    output: &Arc<Output>,
    sinks: Vec<sink::Sink>,
    durable: Option<Durable>,
) -> NewWorker {
    let id_prefix = output
        .ledger
        .batch_prefix()
        .unwrap_or_else(|| fastrand::u64(..));
    let (drain, draining) = watch::channel(false);
    let worker = Worker {
        pipeline: p.name.clone(),
        output: output.clone(),
        sinks,
        batch: o.batch.clone(),
        limits: SendLimits {
            timeout: o.timeout,
            max_reroutes: p.fallback.reroute.max_attempts,
        },
        id_prefix,
        draining,
        durable,
    };
    (worker, Arc::new(drain))
}

/// Opens the disk buffer of `p`, if it has one: the log, and where each output resumes. The
/// pending events of outputs no longer configured are counted as dropped `output_removed`.
fn open_disk(
    p: &PipelineConfig,
    families: &metrics::Families,
) -> Result<(Option<Arc<Disk>>, Vec<disk::Resumed>), PipelineError> {
    if p.buffer.kind != BufferType::Disk {
        return Ok((None, Vec::new()));
    }
    let names: Vec<&str> = p.outputs.iter().map(|o| o.name.as_str()).collect();
    let (disk, resumed, removed) = Disk::open(&p.name, &p.buffer, &names, families.buffer(&p.name))
        .map_err(|source| PipelineError::Buffer {
            pipeline: p.name.clone(),
            path: p.buffer.path.clone().unwrap_or_default(),
            source,
        })?;
    for r in removed {
        families.removed(&p.name, &r.output, r.pending);
    }
    Ok((Some(Arc::new(disk)), resumed))
}

/// Drops what `o` still holds as `shutdown` (with a disk buffer: keeps it in the log) and logs
/// its final accounting: `warn` when it lost events, `info` otherwise.
fn log_final(pipeline: &str, o: &Output, on_disk: bool) {
    let left_pending = o.ledger.close().pending();
    let kept_on_disk = if on_disk { left_pending } else { 0 };
    let c = o.ledger.counts();
    let by = |r: DropReason| c.dropped[r as usize];
    let (queue_full, buffer_full, rejected, shutdown, corrupt) = (
        by(DropReason::QueueFull),
        by(DropReason::BufferFull),
        by(DropReason::Rejected),
        by(DropReason::Shutdown),
        by(DropReason::Corrupt),
    );
    macro_rules! final_line {
        ($level:ident) => {
            tracing::$level!(pipeline, output = %o.name, accepted = c.accepted,
                delivered = c.delivered, sampled_out = c.sampled_out, queue_full, buffer_full,
                rejected, shutdown, corrupt, left_pending, kept_on_disk,
                "output stopped: final accounting")
        };
    }
    if c.sampled_out + c.dropped_total() > 0 {
        final_line!(warn);
    } else {
        final_line!(info);
    }
}
