//! A ledger with a disk buffer: where the output is in its pipeline's log ([`Place`]), its
//! figures resumed from the cursor file, events offered as they are appended or read back from
//! the log, holes crossed, and the cursor's marks.

use super::{Batch, DropReason, Ledger, State};
use crate::pipeline::disk::{Item, Mark, Pos, REASONS};
use crate::pipeline::events::Chunk;

/// Where an output is in its pipeline's disk log. The queue holds events `next − queued ..
/// next`, contiguous.
#[derive(Debug)]
pub(crate) struct Place {
    /// The cursor file's constants: the batch-id prefix and the index the output started at.
    pub(super) prefix: u64,
    pub(super) origin: u64,
    /// The first event not finished with (delivered or dropped).
    pub(super) cursor: u64,
    /// The first event not held in memory.
    pub(super) next: u64,
    /// Where the record holding `next` starts.
    pub(super) pos: Pos,
    /// A batch that may have been sent before a restart: cut again exactly so (same id).
    pub(super) pinned: Option<(u64, u32)>,
}

impl Ledger {
    /// Makes this a disk-buffered output resuming from `mark`, its record at `pos`, with the
    /// log's next index `end`: its figures are the cursor's, plus the events in the log past it.
    pub(crate) fn on_disk(self, mark: &Mark, end: u64, pos: Pos) -> Self {
        {
            let mut guard = self.lock();
            let s = &mut *guard;
            let c = &mut s.counts;
            c.accepted = end - mark.origin.min(end);
            c.delivered = mark.delivered;
            for (n, kept) in c.dropped.iter_mut().zip(mark.dropped) {
                *n = kept;
            }
            c.on_disk = end.saturating_sub(mark.cursor);
            s.disk = Some(Place {
                prefix: mark.prefix,
                origin: mark.origin,
                cursor: mark.cursor,
                next: mark.cursor,
                pos,
                pinned: mark.batch,
            });
            self.metrics.delivered.inc_by(c.delivered);
            for (i, n) in c.dropped.iter().enumerate() {
                self.metrics.dropped.inc_by(*n);
                self.metrics.dropped_by[i].inc_by(*n);
            }
            self.publish(s);
        }
        self
    }

    /// The first half of `x-seawall-batch-id`, kept in the cursor file with a disk buffer.
    pub(crate) fn batch_prefix(&self) -> Option<u64> {
        self.lock().disk.as_ref().map(|p| p.prefix)
    }

    /// With a disk buffer, admits a record's `events` just appended to the log from index
    /// `first`, the next record starting at `end`: queued while the output keeps up and its
    /// queue has room, else left in the log to be read back.
    pub(crate) fn offer_logged(&self, events: &Chunk, first: u64, end: Pos) {
        let n = events.events() as u64;
        let mut guard = self.lock();
        let s = &mut *guard;
        s.counts.accepted += n;
        let room = self.capacity.queue.saturating_sub(s.counts.queued as usize);
        let Some(p) = s.disk.as_mut() else { return };
        let queued = !s.closed && first == p.next && s.counts.on_disk == 0 && n as usize <= room;
        if queued {
            p.next += n;
            p.pos = end;
            s.queued_bytes += events.len();
            s.queue.push_back(events.clone());
            s.counts.queued += n;
        } else {
            s.counts.on_disk += n;
        }
        self.publish(s);
        drop(guard);
        self.arrived.notify_one();
    }

    /// Disk buffer: where to read the output's next events from (the record's position and
    /// the first event wanted), when some are only in the log and the queue has room.
    pub(crate) fn wants_read(&self) -> Option<(Pos, u64)> {
        let s = self.lock();
        let p = s.disk.as_ref()?;
        let room = (s.counts.queued as usize) < self.capacity.queue || s.pinned_incomplete();
        (s.counts.on_disk > 0 && room).then_some((p.pos, p.next))
    }

    /// Takes what was read back from the log into the queue, as far as it has room; a hole is
    /// crossed (its events dropped `corrupt`) once nothing before it is left in memory, which
    /// moves the cursor: then returns the mark to write.
    pub(crate) fn loaded(&self, items: Vec<Item>) -> Option<Mark> {
        let mut guard = self.lock();
        let s = &mut *guard;
        let mut crossed = 0;
        for item in items {
            let full = s.counts.queued as usize >= self.capacity.queue && !s.pinned_incomplete();
            let Some(p) = s.disk.as_mut() else { break };
            match item {
                Item::Events {
                    first,
                    mut chunk,
                    end,
                } => {
                    let n = chunk.events() as u64;
                    if first + n <= p.next {
                        continue;
                    }
                    if first > p.next || (full && s.counts.queued > 0) {
                        break;
                    }
                    if first < p.next {
                        chunk.split_front(usize::try_from(p.next - first).unwrap_or(0), usize::MAX);
                    }
                    let k = chunk.events() as u64;
                    p.next += k;
                    p.pos = end;
                    s.queued_bytes += chunk.len();
                    s.queue.push_back(chunk);
                    s.counts.queued += k;
                    s.counts.on_disk -= k;
                }
                Item::Hole { first, events, end } => {
                    if s.counts.in_memory() > 0 {
                        break;
                    }
                    let lost = (first + events).saturating_sub(p.next);
                    p.next += lost;
                    p.cursor = p.next;
                    p.pos = end;
                    s.counts.on_disk -= lost;
                    crossed += lost;
                }
            }
        }
        if crossed > 0 {
            self.drop_counted(s, crossed, DropReason::Corrupt);
            let (pipeline, output) = (&self.labels.0, &self.labels.1);
            tracing::warn!(
                pipeline,
                output,
                events = crossed,
                "events lost to a corrupt disk buffer counted as dropped (reason corrupt)"
            );
        }
        self.publish(s);
        (crossed > 0).then(|| s.mark()).flatten()
    }
}

impl State {
    /// Disk buffer: the pinned batch is not wholly in the queue yet (it may pass the queue's
    /// capacity: it is cut exactly as it was).
    pub(super) fn pinned_incomplete(&self) -> bool {
        self.disk.as_ref().is_some_and(|p| {
            p.pinned
                .is_some_and(|(first, n)| first + u64::from(n) > p.next)
        })
    }

    /// Disk buffer: the cursor moves past `batch` (the oldest in flight); the new mark.
    pub(super) fn finished(&mut self, batch: &Batch) -> Option<Mark> {
        let p = self.disk.as_mut()?;
        debug_assert_eq!(batch.id, p.cursor, "batches finish in log order");
        p.cursor = batch.id + batch.events as u64;
        self.mark()
    }

    /// Disk buffer: the cursor file's mark for the state now (no batch in flight).
    pub(super) fn mark(&self) -> Option<Mark> {
        let p = self.disk.as_ref()?;
        let mut dropped = [0; REASONS];
        dropped[..self.counts.dropped.len()].copy_from_slice(&self.counts.dropped);
        Some(Mark {
            prefix: p.prefix,
            origin: p.origin,
            cursor: p.cursor,
            delivered: self.counts.delivered,
            dropped,
            batch: None,
        })
    }
}
