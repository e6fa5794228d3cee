//! An output's worker task: gathers batches from the queue (by count, size or linger), sends
//! them, and applies the fallback: sampling into the retry buffer, which it drains on recovery.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::watch;
use tokio::time::Instant;

use super::deliver::{Delivery, Route};
use super::ledger::{DropReason, Origin};
use super::output::Output;
use super::sink::Sink;
use crate::config::BatchConfig;

/// Pause before retrying the buffer after an attempt found no endpoint that would take it.
/// [`Pipelines::tick`](super::Pipelines::tick) cuts it short.
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// What the worker does next.
enum Next {
    Batch(Vec<Bytes>),
    RetryBuffer,
    Done,
}

/// The task that owns an output's sinks.
pub(crate) struct Worker {
    pub(crate) pipeline: String,
    pub(crate) output: Arc<Output>,
    pub(crate) sinks: Vec<Sink>,
    pub(crate) batch: BatchConfig,
    pub(crate) route: Route,
    /// Draws one number per undeliverable event (seeded for reproducible runs).
    pub(crate) rng: fastrand::Rng,
    /// `true` once shutdown began: skip linger, exit when everything is delivered.
    pub(crate) draining: watch::Receiver<bool>,
}

impl Worker {
    /// Runs until shutdown has drained the queue and the buffer (or the task is aborted).
    pub(crate) async fn run(mut self) {
        let mut retry_at = Instant::now();
        loop {
            match self.next(&mut retry_at).await {
                Next::Batch(batch) => {
                    if self.process(batch, Origin::Queue).await {
                        retry_at = Instant::now();
                    }
                }
                Next::RetryBuffer => {
                    let batch = self.take(Origin::Buffer);
                    if !self.process(batch, Origin::Buffer).await {
                        retry_at = Instant::now() + RETRY_BACKOFF;
                    }
                }
                Next::Done => return,
            }
        }
    }

    fn take(&self, from: Origin) -> Vec<Bytes> {
        let max_bytes = usize::try_from(self.batch.max_bytes).unwrap_or(usize::MAX);
        self.output
            .ledger
            .take(from, self.batch.max_events, max_bytes)
    }

    async fn next(&mut self, retry_at: &mut Instant) -> Next {
        let ledger = &self.output.ledger;
        let max_bytes = usize::try_from(self.batch.max_bytes).unwrap_or(usize::MAX);
        let mut linger_until: Option<Instant> = None;
        loop {
            let draining = *self.draining.borrow();
            let (queued, queued_bytes) = ledger.queue_len();
            let now = Instant::now();
            if queued > 0 {
                let until = *linger_until.get_or_insert(now + self.batch.linger);
                if queued >= self.batch.max_events
                    || queued_bytes >= max_bytes
                    || draining
                    || now >= until
                {
                    return Next::Batch(self.take(Origin::Queue));
                }
            }
            let buffered = ledger.buffered() > 0;
            if buffered && now >= *retry_at {
                if self.output.endpoints.iter().any(|e| e.may_admit()) {
                    return Next::RetryBuffer;
                }
                *retry_at = now + RETRY_BACKOFF;
            }
            if draining && queued == 0 && !buffered {
                return Next::Done;
            }
            let far = now + Duration::from_secs(3600);
            let linger_at = linger_until.filter(|_| queued > 0).unwrap_or(far);
            let buffer_at = if buffered { *retry_at } else { far };
            tokio::select! {
                () = ledger.arrived.notified() => {}
                () = self.output.wake.notified() => *retry_at = Instant::now(),
                () = tokio::time::sleep_until(linger_at.min(buffer_at)) => {}
                _ = self.draining.changed(), if !draining => {}
            }
        }
    }

    /// Sends one batch and settles its accounting. True if it was delivered.
    async fn process(&mut self, batch: Vec<Bytes>, origin: Origin) -> bool {
        if batch.is_empty() {
            return false;
        }
        let n = batch.len();
        let payload = if self.sinks.iter().any(Sink::wants_payload) {
            encode(&batch)
        } else {
            Bytes::new()
        };
        let output = &*self.output;
        let delivery = self
            .route
            .deliver(output, &mut self.sinks, &self.pipeline, &payload)
            .await;
        match delivery {
            Delivery::Delivered => {
                output.ledger.delivered(n);
                true
            }
            Delivery::Refused => {
                output.ledger.dropped(n, DropReason::Rejected);
                false
            }
            Delivery::Undelivered if origin == Origin::Buffer => {
                output.ledger.restore(batch);
                false
            }
            Delivery::Undelivered => {
                let rate = output.publish_sampling_rate();
                let rng = &mut self.rng;
                output.ledger.sample(batch, || rng.f64() < rate);
                false
            }
        }
    }
}

/// NDJSON: each event followed by a newline, in one buffer per batch.
fn encode(batch: &[Bytes]) -> Bytes {
    let size = batch.iter().map(|e| e.len() + 1).sum();
    let mut out = BytesMut::with_capacity(size);
    for event in batch {
        out.put_slice(event);
        out.put_u8(b'\n');
    }
    out.freeze()
}
