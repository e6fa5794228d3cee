//! An output's worker task: sends the retry buffer's batches first (oldest events), then
//! batches gathered from the queue (by count, size or linger). While the output cannot deliver
//! (no endpoint admits, or the last send failed and the retry pause runs), it sends nothing and
//! moves full batches from the queue to the retry buffer, so events wait for delivery instead of
//! being thrown away. With a disk buffer it also reads the output's events back from the log
//! once it has fallen behind, and keeps the output's cursor file (`durable.rs`).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::watch;
use tokio::time::Instant;

use super::deliver::{Delivery, SendLimits};
use super::durable::Durable;
use super::ledger::{Batch, DropReason};
use super::output::Output;
use super::sink::Sink;
use crate::config::BatchConfig;

/// Pause before sending again after a send failed. [`Pipelines::tick`](super::Pipelines::tick)
/// cuts it short (a breaker may have moved to half-open).
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// Stands for "no deadline" in the wait.
const FAR: Duration = Duration::from_secs(24 * 3600);

/// The task that owns an output's sinks.
pub(crate) struct Worker {
    pub(crate) pipeline: String,
    pub(crate) output: Arc<Output>,
    pub(crate) sinks: Vec<Sink>,
    pub(crate) batch: BatchConfig,
    pub(crate) limits: SendLimits,
    /// Random prefix of this output's batch ids, unique per process run.
    pub(crate) id_prefix: u64,
    /// `true` once shutdown began: skip linger, exit when everything is delivered.
    pub(crate) draining: watch::Receiver<bool>,
    /// With a disk buffer: the log, the cursor file, the reader.
    pub(crate) durable: Option<Durable>,
}

impl Worker {
    /// Runs until shutdown has drained the queue and the buffer (or the task is aborted).
    pub(crate) async fn run(mut self) {
        let max_bytes = usize::try_from(self.batch.max_bytes).unwrap_or(usize::MAX);
        let max_events = self.batch.max_events;
        let mut retry_at = Instant::now();
        let mut linger_until: Option<Instant> = None;
        let mut open = true;
        loop {
            let ledger = &self.output.ledger;
            let draining = *self.draining.borrow();
            // With a disk buffer what is left stays in the log for the next start: stop now
            // (a batch in flight was settled before the loop came round).
            if let Some(d) = self.durable.as_mut().filter(|_| draining) {
                d.flush(&mut self.sinks).await;
                return;
            }
            let mut lv = ledger.levels();
            if lv.on_disk > 0 && lv.queued < max_events {
                let names = (self.pipeline.as_str(), self.output.name.as_str());
                if let Some(d) = self.durable.as_mut() {
                    if d.read(ledger, names).await {
                        lv = ledger.levels();
                    }
                }
            }
            if self
                .durable
                .as_ref()
                .and_then(Durable::flush_at)
                .is_some_and(|at| at <= Instant::now())
            {
                if let Some(d) = self.durable.as_mut() {
                    d.flush(&mut self.sinks).await;
                }
            }
            let (queued, queued_bytes, buffered) = (lv.queued, lv.queued_bytes, lv.buffered);
            let now = Instant::now();
            if open != self.output.may_deliver() {
                open = !open;
                self.log_open(open);
            }
            let ready = open && now >= retry_at;
            if ready && buffered > 0 {
                if let Some(batch) = ledger.take_buffer() {
                    if !self.process(batch).await {
                        retry_at = Instant::now() + RETRY_BACKOFF;
                    }
                }
                continue;
            }
            if queued == 0 {
                linger_until = None;
            } else {
                let until = *linger_until.get_or_insert_with(|| later(now, self.batch.linger));
                // Events waiting in the log, or a batch pinned by a restart: no linger.
                let backlog = lv.on_disk > 0 || lv.pinned_ready;
                let full = queued >= max_events
                    || queued_bytes >= max_bytes
                    || draining
                    || backlog
                    || now >= until;
                if full && ready {
                    linger_until = None;
                    if let Some(batch) = ledger.take_queue(max_events, max_bytes) {
                        if let Some(d) = self.durable.as_mut() {
                            d.pin(&batch);
                        }
                        if !self.process(batch).await {
                            retry_at = Instant::now() + RETRY_BACKOFF;
                        }
                    }
                    continue;
                }
                if full && ledger.spill(max_events, max_bytes) {
                    linger_until = None;
                    continue;
                }
            }
            if draining && queued == 0 && buffered == 0 {
                return;
            }
            let linger_at = linger_until.filter(|_| ready).unwrap_or(later(now, FAR));
            let retry = if open && !ready {
                retry_at
            } else {
                later(now, FAR)
            };
            let disk_at = self.durable.as_ref().and_then(|d| {
                let read = d.read_retry_at().filter(|_| lv.on_disk > 0);
                [read, d.flush_at()].into_iter().flatten().min()
            });
            let wake_at = disk_at.map_or(linger_at.min(retry), |d| d.min(linger_at).min(retry));
            tokio::select! {
                () = ledger.arrived.notified() => {}
                () = self.output.wake.notified() => retry_at = Instant::now(),
                () = tokio::time::sleep_until(wake_at) => {}
                _ = self.draining.changed(), if !draining => {}
            }
        }
    }

    /// Sends one batch and settles its accounting. True if it was delivered.
    async fn process(&mut self, batch: Batch) -> bool {
        let output = &*self.output;
        let payload = if self.sinks.iter().any(Sink::wants_payload) {
            batch.payload(output.ledger.budget())
        } else {
            bytes::Bytes::new()
        };
        let id = batch_id(self.id_prefix, batch.id);
        let delivery = self
            .limits
            .deliver(output, &mut self.sinks, &self.pipeline, &payload, &id)
            .await;
        drop(payload);
        let (mark, delivered) = match delivery {
            Delivery::Delivered => (output.ledger.delivered(batch), true),
            Delivery::Refused => (output.ledger.dropped(batch, DropReason::Rejected), true),
            Delivery::Partial(rejected) => (output.ledger.delivered_partly(batch, rejected), true),
            Delivery::Undelivered => {
                output.ledger.hold(batch);
                (None, false)
            }
        };
        if let (Some(mark), Some(d)) = (mark, self.durable.as_mut()) {
            d.finished(mark, &mut self.sinks).await;
        }
        delivered
    }

    /// Logs that the output can no longer deliver (every endpoint's breaker open), or can again.
    fn log_open(&self, open: bool) {
        let (pipeline, output) = (&self.pipeline, &self.output.name);
        let lv = self.output.ledger.levels();
        let (queued, buffered, on_disk) = (lv.queued, lv.buffered, lv.on_disk);
        if open {
            tracing::info!(
                pipeline,
                output,
                queued,
                buffered,
                on_disk,
                "output can deliver again: sending held events first"
            );
        } else {
            tracing::warn!(
                pipeline,
                output,
                queued,
                buffered,
                on_disk,
                "output cannot deliver (every endpoint's breaker is open): holding its events"
            );
        }
    }
}

/// `now + d`, or as far as the clock goes.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// `x-seawall-batch-id`: 32 hex digits, the output's random prefix then the batch's number.
fn batch_id(prefix: u64, id: u64) -> HeaderValue {
    let text = format!("{prefix:016x}{id:016x}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}
