//! One output's events and their accounting: the bounded queue, the retry buffer and the
//! counters, kept under one small mutex so that `accepted = delivered + sampled_out + dropped +
//! pending` holds in every snapshot.
//!
//! Why a mutex and not independent atomics: an event moves between two counters (say pending →
//! delivered) and a reader of two separate atomics could see it in neither or both. Every move
//! here is one critical section per request or per batch (never per event), so the lock is
//! uncontended in practice and costs far less than the work it guards.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use super::metrics::OutputMetrics;

/// Why events were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The output's queue was full at ingest.
    QueueFull = 0,
    /// Undeliverable, kept by sampling, but the retry buffer was full.
    BufferFull = 1,
    /// The destination refused the batch (a 4xx other than 429).
    Rejected = 2,
    /// Still undelivered when the shutdown grace period ended.
    Shutdown = 3,
}

impl DropReason {
    /// Every reason, in index order.
    pub(crate) const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::BufferFull,
        DropReason::Rejected,
        DropReason::Shutdown,
    ];

    /// The `reason` label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::BufferFull => "buffer_full",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// A consistent copy of an output's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) accepted: u64,
    pub(crate) delivered: u64,
    pub(crate) sampled_out: u64,
    /// Indexed by [`DropReason`] as `usize`.
    pub(crate) dropped: [u64; 4],
    /// Events in the queue.
    pub(crate) queued: u64,
    /// Events in the batch being sent.
    pub(crate) in_flight: u64,
    /// Events in the retry buffer.
    pub(crate) buffered: u64,
}

impl Counts {
    /// Events not yet finished with.
    pub(crate) fn pending(&self) -> u64 {
        self.queued + self.in_flight + self.buffered
    }

    /// Events dropped for any reason.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

struct State {
    counts: Counts,
    queue: VecDeque<Bytes>,
    /// Encoded size of the queued events (for `batch.max_bytes`).
    queued_bytes: usize,
    buffer: VecDeque<Bytes>,
    /// Set once shutdown has counted what was left: later offers are dropped `shutdown`.
    closed: bool,
}

/// Where a batch came from, so that a failed retry goes back where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Queue,
    Buffer,
}

/// An output's queue, retry buffer and counters.
pub(crate) struct Ledger {
    state: Mutex<State>,
    queue_capacity: usize,
    buffer_capacity: usize,
    metrics: OutputMetrics,
    /// Wakes the output's worker when events arrive.
    pub(crate) arrived: Notify,
}

impl Ledger {
    pub(crate) fn new(
        queue_capacity: usize,
        buffer_capacity: usize,
        metrics: OutputMetrics,
    ) -> Self {
        Ledger {
            state: Mutex::new(State {
                counts: Counts::default(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                buffer: VecDeque::new(),
                closed: false,
            }),
            queue_capacity,
            buffer_capacity,
            metrics,
            arrived: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn metrics(&self) -> &OutputMetrics {
        &self.metrics
    }

    pub(crate) fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }

    pub(crate) fn buffer_capacity(&self) -> usize {
        self.buffer_capacity
    }

    /// Accepts `events`: queues what fits, drops the rest as `queue_full`. After shutdown
    /// every event is accepted and dropped as `shutdown`, so none is silent.
    pub(crate) fn offer(&self, events: &[Bytes]) {
        let mut s = self.lock();
        s.counts.accepted += events.len() as u64;
        let closed = s.closed;
        let room = if closed {
            0
        } else {
            self.queue_capacity.saturating_sub(s.queue.len())
        };
        let fits = room.min(events.len());
        for e in &events[..fits] {
            s.queued_bytes += e.len() + 1;
            s.queue.push_back(e.clone());
        }
        s.counts.queued += fits as u64;
        let rest = (events.len() - fits) as u64;
        if rest > 0 {
            let reason = if closed {
                DropReason::Shutdown
            } else {
                DropReason::QueueFull
            };
            self.drop_counted(&mut s, rest, reason);
        }
        self.publish_pending(&s);
        drop(s);
        if fits > 0 {
            self.arrived.notify_one();
        }
    }

    /// Queue length and queued bytes.
    pub(crate) fn queue_len(&self) -> (usize, usize) {
        let s = self.lock();
        (s.queue.len(), s.queued_bytes)
    }

    /// Events in the retry buffer.
    pub(crate) fn buffered(&self) -> usize {
        self.lock().buffer.len()
    }

    /// Moves up to `max_events` events (at most `max_bytes` encoded, at least one) from the
    /// queue or the retry buffer into the batch in flight.
    pub(crate) fn take(&self, from: Origin, max_events: usize, max_bytes: usize) -> Vec<Bytes> {
        let mut s = self.lock();
        let st = &mut *s;
        let source = match from {
            Origin::Queue => &mut st.queue,
            Origin::Buffer => &mut st.buffer,
        };
        let mut batch = Vec::with_capacity(max_events.min(source.len()));
        let mut bytes = 0;
        while batch.len() < max_events {
            let Some(next) = source.front() else { break };
            let size = next.len() + 1;
            if !batch.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            batch.extend(source.pop_front());
        }
        let n = batch.len() as u64;
        match from {
            Origin::Queue => {
                st.counts.queued -= n;
                st.queued_bytes -= bytes;
            }
            Origin::Buffer => st.counts.buffered -= n,
        }
        st.counts.in_flight += n;
        batch
    }

    /// The batch in flight (`n` events) was delivered.
    pub(crate) fn delivered(&self, n: usize) {
        let mut s = self.lock();
        s.counts.in_flight -= n as u64;
        s.counts.delivered += n as u64;
        self.metrics.delivered.inc_by(n as u64);
        self.publish_pending(&s);
    }

    /// The batch in flight (`n` events) is dropped for `reason`.
    pub(crate) fn dropped(&self, n: usize, reason: DropReason) {
        let mut s = self.lock();
        s.counts.in_flight -= n as u64;
        self.drop_counted(&mut s, n as u64, reason);
        self.publish_pending(&s);
    }

    /// The batch in flight could not be delivered: each event the sampler keeps goes to the
    /// retry buffer (or is dropped `buffer_full` when it is full), the rest is `sampled_out`.
    pub(crate) fn sample(&self, batch: Vec<Bytes>, mut keep: impl FnMut() -> bool) {
        let mut s = self.lock();
        let n = batch.len() as u64;
        let (mut sampled, mut full) = (0, 0);
        for event in batch {
            if !keep() {
                sampled += 1;
            } else if s.buffer.len() < self.buffer_capacity {
                // A copy, so a long-held event does not pin the whole request body it came in.
                s.buffer.push_back(Bytes::copy_from_slice(&event));
            } else {
                full += 1;
            }
        }
        s.counts.in_flight -= n;
        s.counts.buffered += n - sampled - full;
        s.counts.sampled_out += sampled;
        self.metrics.sampled_out.inc_by(sampled);
        self.drop_counted(&mut s, full, DropReason::BufferFull);
        self.publish_pending(&s);
    }

    /// A batch taken from the retry buffer failed again: it goes back to the buffer's front.
    pub(crate) fn restore(&self, batch: Vec<Bytes>) {
        let mut s = self.lock();
        let n = batch.len() as u64;
        for event in batch.into_iter().rev() {
            s.buffer.push_front(event);
        }
        s.counts.in_flight -= n;
        s.counts.buffered += n;
    }

    /// Drops everything still pending (queue, batch in flight, retry buffer) as `shutdown`,
    /// and every later offer too.
    pub(crate) fn drop_all_pending(&self) {
        let mut s = self.lock();
        let n = s.counts.pending();
        s.closed = true;
        s.queue.clear();
        s.queued_bytes = 0;
        s.buffer.clear();
        s.counts.queued = 0;
        s.counts.in_flight = 0;
        s.counts.buffered = 0;
        self.drop_counted(&mut s, n, DropReason::Shutdown);
        self.publish_pending(&s);
    }

    /// A consistent copy of the counters.
    pub(crate) fn counts(&self) -> Counts {
        self.lock().counts
    }

    fn drop_counted(&self, s: &mut State, n: u64, reason: DropReason) {
        if n == 0 {
            return;
        }
        s.counts.dropped[reason as usize] += n;
        self.metrics.dropped.inc_by(n);
        self.metrics.dropped_by[reason as usize].inc_by(n);
    }

    fn publish_pending(&self, s: &State) {
        self.metrics
            .pending
            .set(i64::try_from(s.counts.pending()).unwrap_or(i64::MAX));
    }
}
