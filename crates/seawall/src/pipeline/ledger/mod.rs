//! One output's events and their accounting: the bounded queue (events not yet sent), the
//! retry buffer (batches the output could not deliver yet) and the counters, under one small
//! mutex so that `accepted = delivered + sampled_out + dropped + pending` holds in every
//! snapshot.
//!
//! Buffer first: an admitted event leaves only by delivery (or, at the end, shutdown). While
//! the output cannot deliver, its events wait in the queue and the retry buffer; only once the
//! two together are fuller than `fallback.sampling.start_percent` are arriving events sampled,
//! at a rate that falls with the fill towards the healthy share of endpoints (floored at
//! `min_rate`); a full queue drops what arrives as `queue_full`.
//!
//! With a disk buffer the pipeline's log is the store: the queue is a copy in memory of the
//! output's next events (filled as they arrive while the output keeps up, else read back from
//! the log), nothing is sampled or dropped at ingest, a batch that cannot be delivered waits in
//! the retry buffer however small it is, and shutdown drops nothing. A [`Place`] says where
//! the output is in the log; its cursor only moves past events the output has finished with.
//!
//! Why a mutex and not independent atomics: an event moves between two counters (say pending →
//! delivered) and a reader of two separate atomics could see it in neither or both. Every move
//! here is one critical section per request or per batch (never per event, except while
//! sampling), so the lock is uncontended in practice and costs far less than the work it guards.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use super::disk::Mark;
use super::events::Chunk;
use super::metrics::OutputMetrics;
use crate::memory::Budget;

mod logged;

use logged::Place;

/// Why events were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The output's queue was full at ingest.
    QueueFull = 0,
    /// A failed batch did not fit in the retry buffer (smaller than a batch).
    BufferFull = 1,
    /// The destination refused the batch (a 4xx other than 429).
    Rejected = 2,
    /// Still undelivered when the shutdown grace period ended (memory buffer only).
    Shutdown = 3,
    /// Lost from the disk buffer's log to a torn or corrupt record, found at replay.
    Corrupt = 4,
}

impl DropReason {
    /// Every reason, in index order.
    pub(crate) const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::BufferFull,
        DropReason::Rejected,
        DropReason::Shutdown,
        DropReason::Corrupt,
    ];

    /// The `reason` label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::BufferFull => "buffer_full",
            DropReason::Rejected => "rejected",
            DropReason::Shutdown => "shutdown",
            DropReason::Corrupt => "corrupt",
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
    pub(crate) dropped: [u64; DropReason::ALL.len()],
    /// Events in the queue.
    pub(crate) queued: u64,
    /// Events in the batch being sent.
    pub(crate) in_flight: u64,
    /// Events in the retry buffer.
    pub(crate) buffered: u64,
    /// Disk buffer: events only in the log (not yet read back into memory).
    pub(crate) on_disk: u64,
}

impl Counts {
    /// Events not yet finished with.
    pub(crate) fn pending(&self) -> u64 {
        self.queued + self.in_flight + self.buffered + self.on_disk
    }

    /// Events held in memory (queue, batch in flight, retry buffer).
    fn in_memory(&self) -> u64 {
        self.queued + self.in_flight + self.buffered
    }

    /// Events dropped for any reason.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// Events sent together, with an id that stays the same however often they are sent.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Unique within the output (`x-seawall-batch-id` adds a random prefix): with a memory
    /// buffer a number for this process, with a disk buffer the log index of its first event
    /// (so the same after a restart).
    pub(crate) id: u64,
    pub(crate) events: usize,
    /// The NDJSON text, in one or more pieces: slices of the request bodies it came in, held
    /// as they are (no copy) while the batch waits in the retry buffer.
    parts: Vec<Chunk>,
}

impl Batch {
    /// The NDJSON text in one buffer: the piece itself when there is one.
    pub(crate) fn payload(&self, budget: &Arc<Budget>) -> Bytes {
        match &self.parts[..] {
            [one] => one.text().clone(),
            parts => {
                let mut text = Vec::with_capacity(parts.iter().map(Chunk::len).sum());
                for part in parts {
                    text.extend_from_slice(part.text());
                }
                budget.hold(text)
            }
        }
    }

    /// Cuts the batch to its first `n` events (it keeps its id: a resend is what it was).
    fn truncate(&mut self, n: usize) {
        let mut left = n;
        self.parts.retain_mut(|part| {
            let keep = part.events().min(left);
            if keep < part.events() {
                *part = part.split_front(keep, usize::MAX);
            }
            left -= keep;
            keep > 0
        });
        self.events = n;
    }
}

struct State {
    counts: Counts,
    queue: VecDeque<Chunk>,
    /// Bytes of the queued events (for `batch.max_bytes`).
    queued_bytes: usize,
    /// Batches not delivered yet, oldest first.
    buffer: VecDeque<Batch>,
    next_id: u64,
    /// Draws one number per sampled event (seeded for reproducible runs).
    rng: fastrand::Rng,
    /// Whether arriving events were sampled last time (for the log on a change).
    sampling: bool,
    /// Set once shutdown has counted what was left: later offers are dropped `shutdown`.
    closed: bool,
    /// Disk buffer: where the output is in the log.
    disk: Option<Place>,
}

/// A ledger's fill, as the worker reads it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Levels {
    pub(crate) queued: usize,
    pub(crate) queued_bytes: usize,
    pub(crate) buffered: usize,
    /// Disk buffer: events only in the log.
    pub(crate) on_disk: u64,
    /// Disk buffer: the batch pinned by a restart is in the queue, whole: send it now.
    pub(crate) pinned_ready: bool,
}

/// The sizes of an output's stores.
pub(crate) struct Capacity {
    /// `queue.capacity`, in events.
    pub(crate) queue: usize,
    /// `fallback.retry_buffer`, in events.
    pub(crate) buffer: usize,
    /// `fallback.sampling.start_percent` as a fraction of `queue + buffer`.
    pub(crate) start: f64,
}

/// An output's queue, retry buffer and counters.
pub(crate) struct Ledger {
    state: Mutex<State>,
    capacity: Capacity,
    metrics: OutputMetrics,
    budget: Arc<Budget>,
    /// For the log lines.
    pub(crate) labels: (String, String),
    /// Wakes the output's worker when events arrive.
    pub(crate) arrived: Notify,
}

impl Ledger {
    pub(crate) fn new(
        capacity: Capacity,
        rng: fastrand::Rng,
        metrics: OutputMetrics,
        budget: Arc<Budget>,
        labels: (String, String),
    ) -> Self {
        Ledger {
            state: Mutex::new(State {
                counts: Counts::default(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                buffer: VecDeque::new(),
                next_id: 0,
                rng,
                sampling: false,
                closed: false,
                disk: None,
            }),
            capacity,
            metrics,
            budget,
            labels,
            arrived: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn metrics(&self) -> &OutputMetrics {
        &self.metrics
    }

    pub(crate) fn budget(&self) -> &Arc<Budget> {
        &self.budget
    }

    pub(crate) fn queue_capacity(&self) -> usize {
        self.capacity.queue
    }

    pub(crate) fn buffer_capacity(&self) -> usize {
        self.capacity.buffer
    }

    /// `fallback.sampling.start_percent`.
    pub(crate) fn start_percent(&self) -> u32 {
        (self.capacity.start * 100.0).round() as u32
    }

    /// The share of arriving events kept right now, given `base` (the healthy share of
    /// endpoints, floored at `min_rate`): 1 up to the start fill, then falling linearly with the
    /// fill to `base` when full.
    pub(crate) fn rate(&self, base: f64) -> f64 {
        let s = self.lock();
        if s.disk.is_some() {
            // The log holds what arrives: nothing is sampled.
            return 1.0;
        }
        self.rate_at(&s.counts, base)
    }

    fn rate_at(&self, counts: &Counts, base: f64) -> f64 {
        let holds = (self.capacity.queue + self.capacity.buffer).max(1) as f64;
        let fill = counts.pending() as f64 / holds;
        let start = self.capacity.start;
        if base >= 1.0 || fill < start || start >= 1.0 {
            return 1.0;
        }
        let past = ((fill - start) / (1.0 - start)).clamp(0.0, 1.0);
        1.0 - (1.0 - base) * past
    }

    /// Admits `events`: each is kept at the current sampling rate (see [`Ledger::rate`]),
    /// the kept ones are queued while the queue has room and the rest are dropped
    /// `queue_full`. After shutdown every event is dropped `shutdown`, so none is silent.
    pub(crate) fn offer(&self, events: &Chunk, base: f64) {
        let n = events.events();
        let mut s = self.lock();
        s.counts.accepted += n as u64;
        if s.closed {
            self.drop_counted(&mut s, n as u64, DropReason::Shutdown);
            self.publish(&s);
            return;
        }
        let rate = self.rate_at(&s.counts, base);
        self.metrics.sampling_rate.set(rate);
        let sampling = rate < 1.0;
        if sampling != s.sampling {
            s.sampling = sampling;
            self.log_sampling(sampling, rate, &s.counts);
        }
        let room = self.capacity.queue - s.queue_len_events();
        let (kept, sampled) = if sampling {
            self.sample(&mut s, events, rate, room)
        } else {
            let mut all = events.clone();
            (all.split_front(room, usize::MAX), 0)
        };
        let fits = kept.events();
        if fits > 0 {
            s.queued_bytes += kept.len();
            s.queue.push_back(kept);
            s.counts.queued += fits as u64;
        }
        s.counts.sampled_out += sampled;
        self.metrics.sampled_out.inc_by(sampled);
        self.drop_counted(&mut s, (n - fits) as u64 - sampled, DropReason::QueueFull);
        self.publish(&s);
        drop(s);
        if fits > 0 {
            self.arrived.notify_one();
        }
    }

    /// Keeps each event with probability `rate`, the kept ones (at most `room`) copied into
    /// one buffer; returns them and how many were sampled out.
    fn sample(&self, s: &mut State, events: &Chunk, rate: f64, room: usize) -> (Chunk, u64) {
        let (mut text, mut kept, mut sampled) = (Vec::new(), 0, 0);
        for line in events.lines() {
            if s.rng.f64() >= rate {
                sampled += 1;
            } else if kept < room {
                text.extend_from_slice(line);
                text.push(b'\n');
                kept += 1;
            }
        }
        text.shrink_to_fit();
        (Chunk::new(self.budget.hold(text), kept), sampled)
    }

    fn log_sampling(&self, on: bool, rate: f64, c: &Counts) {
        let (pipeline, output) = (&self.labels.0, &self.labels.1);
        let (pending, holds) = (c.pending(), self.capacity.queue + self.capacity.buffer);
        if on {
            tracing::warn!(
                pipeline,
                output,
                pending,
                holds,
                rate,
                "output buffer past fallback.sampling.start_percent: sampling arriving events"
            );
        } else {
            tracing::info!(pipeline, output, pending, holds, "output sampling stopped");
        }
    }

    /// How full the stores are.
    pub(crate) fn levels(&self) -> Levels {
        let s = self.lock();
        let pinned_ready = s.disk.as_ref().is_some_and(|p| {
            p.pinned.is_some_and(|(first, n)| {
                p.next - s.counts.queued <= first && first + u64::from(n) <= p.next
            })
        });
        Levels {
            queued: s.queue_len_events(),
            queued_bytes: s.queued_bytes,
            buffered: s.counts.buffered as usize,
            on_disk: s.counts.on_disk,
            pinned_ready,
        }
    }

    /// Moves up to `max_events` events (at most `max_bytes`, at least one) from the queue into
    /// a new batch in flight.
    pub(crate) fn take_queue(&self, max_events: usize, max_bytes: usize) -> Option<Batch> {
        let mut s = self.lock();
        let (mut max_events, mut max_bytes) = (max_events, max_bytes);
        let front = s.disk.as_ref().map(|p| p.next - s.counts.queued);
        if let (Some(front), Some(p)) = (front, s.disk.as_ref()) {
            match p.pinned {
                Some((first, n)) if front == first => {
                    if first + u64::from(n) > p.next {
                        return None;
                    }
                    (max_events, max_bytes) = (n as usize, usize::MAX);
                }
                Some((first, _)) if front < first => {
                    max_events =
                        max_events.min(usize::try_from(first - front).unwrap_or(usize::MAX));
                }
                _ => {}
            }
        }
        let mut batch = s.cut(max_events, max_bytes)?;
        s.counts.queued -= batch.events as u64;
        s.counts.in_flight += batch.events as u64;
        if let (Some(front), Some(p)) = (front, s.disk.as_mut()) {
            batch.id = front;
            if p.pinned.is_some_and(|(first, _)| first <= front) {
                p.pinned = None;
            }
        }
        Some(batch)
    }

    /// The oldest batch of the retry buffer, in flight again (with its id).
    pub(crate) fn take_buffer(&self) -> Option<Batch> {
        let mut s = self.lock();
        let batch = s.buffer.pop_front()?;
        s.counts.buffered -= batch.events as u64;
        s.counts.in_flight += batch.events as u64;
        self.publish(&s);
        Some(batch)
    }

    /// While the output cannot deliver: moves one batch from the queue to the retry buffer
    /// (as much as it has room for), so the queue keeps accepting. False if nothing moved.
    pub(crate) fn spill(&self, max_events: usize, max_bytes: usize) -> bool {
        let mut s = self.lock();
        if s.disk.is_some() {
            return false;
        }
        let room = self.capacity.buffer - s.counts.buffered as usize;
        let Some(batch) = s.cut(max_events.min(room), max_bytes) else {
            return false;
        };
        s.counts.queued -= batch.events as u64;
        s.counts.buffered += batch.events as u64;
        s.buffer.push_back(batch);
        self.publish(&s);
        true
    }

    /// The batch in flight was delivered. With a disk buffer, returns the cursor's new mark.
    pub(crate) fn delivered(&self, batch: Batch) -> Option<Mark> {
        let mut s = self.lock();
        let n = batch.events as u64;
        s.counts.in_flight -= n;
        s.counts.delivered += n;
        self.metrics.delivered.inc_by(n);
        self.publish(&s);
        s.finished(&batch)
    }

    /// The batch in flight was delivered but for `rejected` of its events, which the
    /// destination refused (dropped `rejected`). With a disk buffer, returns the cursor's new
    /// mark.
    pub(crate) fn delivered_partly(&self, batch: Batch, rejected: u64) -> Option<Mark> {
        let mut s = self.lock();
        let n = batch.events as u64;
        let rejected = rejected.min(n);
        s.counts.in_flight -= n;
        s.counts.delivered += n - rejected;
        self.metrics.delivered.inc_by(n - rejected);
        self.drop_counted(&mut s, rejected, DropReason::Rejected);
        self.publish(&s);
        s.finished(&batch)
    }

    /// The batch in flight is dropped for `reason`. With a disk buffer, returns the cursor's
    /// new mark.
    pub(crate) fn dropped(&self, batch: Batch, reason: DropReason) -> Option<Mark> {
        let mut s = self.lock();
        s.counts.in_flight -= batch.events as u64;
        self.drop_counted(&mut s, batch.events as u64, reason);
        self.publish(&s);
        s.finished(&batch)
    }

    /// The batch in flight was not delivered: it goes to the front of the retry buffer (it is
    /// the oldest); what does not fit is dropped `buffer_full`.
    pub(crate) fn hold(&self, mut batch: Batch) {
        let mut s = self.lock();
        let n = batch.events;
        // With a disk buffer the log holds the batch anyway: keep it whole.
        let room = match s.disk {
            Some(_) => usize::MAX,
            None => self
                .capacity
                .buffer
                .saturating_sub(s.counts.buffered as usize),
        };
        s.counts.in_flight -= n as u64;
        if n > room {
            self.drop_counted(&mut s, (n - room) as u64, DropReason::BufferFull);
            batch.truncate(room);
        }
        if batch.events > 0 {
            s.counts.buffered += batch.events as u64;
            s.buffer.push_front(batch);
        }
        self.publish(&s);
    }

    /// At shutdown: with a memory buffer drops everything still pending (queue, batch in
    /// flight, retry buffer) as `shutdown`, and every later offer too; with a disk buffer
    /// drops nothing (the log keeps it for the next start). Returns the figures just before,
    /// for the final log line.
    pub(crate) fn close(&self) -> Counts {
        let mut s = self.lock();
        let before = s.counts;
        if s.disk.is_some() {
            s.closed = true;
            return before;
        }
        let n = s.counts.pending();
        s.closed = true;
        s.queue.clear();
        s.queued_bytes = 0;
        s.buffer.clear();
        s.counts.queued = 0;
        s.counts.in_flight = 0;
        s.counts.buffered = 0;
        self.drop_counted(&mut s, n, DropReason::Shutdown);
        self.publish(&s);
        before
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

    fn publish(&self, s: &State) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.metrics.pending.set(gauge(s.counts.pending()));
        self.metrics.queued.set(gauge(s.counts.queued));
        self.metrics.buffered.set(gauge(s.counts.buffered));
        self.metrics.on_disk.set(gauge(s.counts.on_disk));
    }
}

impl State {
    fn queue_len_events(&self) -> usize {
        self.counts.queued as usize
    }

    /// Cuts a batch off the front of the queue (no counter moves): at most `max_events` and
    /// `max_bytes`, at least one event.
    fn cut(&mut self, max_events: usize, max_bytes: usize) -> Option<Batch> {
        if max_events == 0 || self.queue.is_empty() {
            return None;
        }
        let (mut parts, mut events, mut bytes) = (Vec::new(), 0, 0);
        while let Some(front) = self.queue.front_mut() {
            let left = max_bytes.saturating_sub(bytes);
            if events == max_events || (events > 0 && front.first_len() > left) {
                break;
            }
            let part = front.split_front(max_events - events, left);
            if front.events() == 0 {
                self.queue.pop_front();
            }
            events += part.events();
            bytes += part.len();
            parts.push(part);
        }
        self.queued_bytes -= bytes;
        let id = self.next_id;
        self.next_id += 1;
        Some(Batch { id, events, parts })
    }
}
