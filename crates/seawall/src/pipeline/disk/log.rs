//! A pipeline's log: segment files of records under one directory, appended by ingest, read by
//! each output from its own cursor, freed from the oldest once every output has passed them.
//!
//! One small lock guards the tail (the open segment, the list of segments, the next event
//! index). An append writes its record with positional writes under that lock, then offers the
//! events to the outputs in log order, so an output that keeps up takes them from memory and
//! reads the file only once it has fallen behind. The lock is never held across an `fsync` of
//! the open segment: the syncer (`sync.rs`) takes a handle and syncs outside it, so requests
//! arriving while one sync runs share the next.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tokio::sync::watch;

use super::record::{self, Kind, HEADER};
use super::segment;
use super::spare::Spares;
use super::BufferMetrics;
use crate::config::SyncPolicy;
use crate::pipeline::events::Chunk;

/// Where a record starts in the log: its segment (named by its first event) and offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

/// One segment as the log knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    /// Its first event index (its name).
    pub(crate) first: u64,
    /// One past its last event.
    pub(crate) end: u64,
    /// Bytes of its records.
    pub(crate) bytes: u64,
}

/// Why an append was refused; ingest answers 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The log would pass `max_size`.
    Full,
    /// Writing failed (a full file system, an I/O error).
    Failing,
}

/// Whether the log takes appends, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shedding {
    No,
    Full,
    Failing,
}

impl Shedding {
    /// For `/v1/pipelines`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Shedding::No => "accepting",
            Shedding::Full => "full",
            Shedding::Failing => "failing",
        }
    }
}

/// The sync progress the syncer publishes, in event indexes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Synced {
    /// Every event below it is on stable storage.
    pub(crate) upto: u64,
    /// A sync covering every event below it failed.
    pub(crate) failed_upto: u64,
}

struct Tail {
    /// The open (last) segment.
    file: Arc<File>,
    /// Oldest first; the last one is open.
    segments: VecDeque<Seg>,
    /// The index the next appended event gets.
    next: u64,
    /// Bytes the log takes on disk: the segments' records, the open file's whole length (a
    /// reused file is longer than what is written over it so far) and the spares.
    bytes: u64,
    /// The open file's length.
    open_len: u64,
    /// Freed segment files kept for reuse.
    spares: Spares,
    shedding: Shedding,
    /// Appended since the last sync.
    unsynced: bool,
    /// Closed segments not synced yet: the syncer syncs them (never under this lock).
    closing: Vec<Arc<File>>,
    /// A segment file was created since the last sync: the directory is synced too.
    dir_dirty: bool,
    /// A write failed: the open segment may hold part of a record past its known end.
    broken: bool,
    /// Set by `close`: the syncer stops.
    closed: bool,
}

/// A pipeline's log.
pub(crate) struct Log {
    dir: PathBuf,
    pub(crate) pipeline: String,
    pub(crate) max_size: u64,
    segment_size: u64,
    pub(crate) policy: SyncPolicy,
    tail: Mutex<Tail>,
    /// Wakes the syncer (`sync: always`, and `close`).
    pub(crate) wake: Condvar,
    pub(crate) synced: watch::Sender<Synced>,
    pub(crate) metrics: BufferMetrics,
    /// Copies of the tail's figures, so an output's worker can tell whether anything is to
    /// be freed without taking the lock: the next index, the open segment's bytes, the
    /// oldest segment's end (`u64::MAX` with only the open one), and whether ingest is shed
    /// for want of room.
    hint: Hint,
}

#[derive(Default)]
struct Hint {
    next: AtomicU64,
    open_bytes: AtomicU64,
    oldest_end: AtomicU64,
    full: AtomicBool,
}

/// The open segment's size at which it is closed once every output has passed it.
const PASSED_ROLL: u64 = 4 << 20;

/// A segment's size: an eighth of the bound, within 64 KiB ..= 128 MiB.
fn segment_size(max_size: u64) -> u64 {
    (max_size / 8).clamp(64 << 10, 128 << 20)
}

impl Log {
    /// A log over `segments` (oldest first, the last one open; at least one) in `dir`.
    pub(crate) fn new(
        dir: &Path,
        pipeline: &str,
        (max_size, policy): (u64, SyncPolicy),
        segments: VecDeque<Seg>,
        metrics: BufferMetrics,
    ) -> io::Result<Log> {
        let open = segments.back().copied().ok_or(io::ErrorKind::NotFound)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(segment::file_name(open.first)))?;
        let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
        let open_len = file.metadata()?.len().max(open.bytes);
        let (synced, _) = watch::channel(Synced {
            upto: open.end,
            failed_upto: 0,
        });
        let log = Log {
            dir: dir.to_owned(),
            pipeline: pipeline.to_owned(),
            max_size,
            segment_size: segment_size(max_size),
            policy,
            tail: Mutex::new(Tail {
                file: Arc::new(file),
                next: open.end,
                segments,
                bytes: bytes + (open_len - open.bytes),
                open_len,
                spares: Spares::new(dir),
                shedding: Shedding::No,
                unsynced: false,
                closing: Vec::new(),
                dir_dirty: false,
                broken: false,
                closed: false,
            }),
            wake: Condvar::new(),
            synced,
            metrics,
            hint: Hint::default(),
        };
        log.publish(&log.lock());
        Ok(log)
    }

    fn lock(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `events` as one record and, still in log order, calls `offer` with the index
    /// of its first event and where the record after it will start. Returns one past its last
    /// event. Refused when it would pass `max_size` or writing fails; a failed write leaves
    /// the log as it was (the partial record is cut before the next append).
    pub(crate) fn append(
        &self,
        events: &Chunk,
        offer: impl FnOnce(u64, Pos),
    ) -> Result<u64, Refused> {
        self.append_locked(&mut self.lock(), events, offer)
    }

    /// [`append`](Self::append) if the log's lock is free right now, else `None` (the caller
    /// hands the record to the writer thread rather than wait for the lock).
    pub(crate) fn try_append(
        &self,
        events: &Chunk,
        offer: impl FnOnce(u64, Pos),
    ) -> Option<Result<u64, Refused>> {
        let mut t = match self.tail.try_lock() {
            Ok(t) => t,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(self.append_locked(&mut t, events, offer))
    }

    fn append_locked(
        &self,
        t: &mut Tail,
        events: &Chunk,
        offer: impl FnOnce(u64, Pos),
    ) -> Result<u64, Refused> {
        let n = events.events() as u64;
        if n == 0 {
            return Ok(t.next);
        }
        let size = (HEADER + events.len()) as u64;
        if t.bytes + size > self.max_size {
            let freed = t.spares.clear();
            t.bytes -= freed;
        }
        if t.bytes + size > self.max_size {
            self.shed(t, Shedding::Full, None);
            self.metrics.refused_full.inc();
            return Err(Refused::Full);
        }
        if let Err(e) = self.write(t, events, size) {
            t.broken = true;
            // The file system may be full: give it the spares' room for the next try.
            let freed = t.spares.clear();
            t.bytes -= freed;
            self.metrics.io_errors.inc();
            self.metrics.refused_failing.inc();
            self.shed(t, Shedding::Failing, Some(&e));
            return Err(Refused::Failing);
        }
        let first = t.next;
        t.next += n;
        let open = t.segments.back_mut().expect("the open segment");
        open.bytes += size;
        open.end = first + n;
        let end = Pos {
            segment: open.first,
            offset: open.bytes,
        };
        if end.offset > t.open_len {
            t.bytes += end.offset - t.open_len;
            t.open_len = end.offset;
        }
        t.unsynced = true;
        offer(first, end);
        if t.shedding != Shedding::No {
            self.shed(t, Shedding::No, None);
        }
        self.publish(t);
        if self.policy == SyncPolicy::Always {
            self.wake.notify_one();
        }
        Ok(t.next)
    }

    /// Writes one record at the end of the open segment (a new one when it is full, or after
    /// a failed write left part of a record behind).
    fn write(&self, t: &mut Tail, events: &Chunk, size: u64) -> io::Result<()> {
        let open = *t.segments.back().expect("the open segment");
        if t.broken {
            t.file.set_len(open.bytes)?;
            t.bytes -= t.open_len - open.bytes;
            t.open_len = open.bytes;
        }
        if open.bytes > 0 && (t.broken || open.bytes + size > self.segment_size) {
            self.roll(t, false)?;
        }
        t.broken = false;
        let at = t.segments.back().map_or(0, |s| s.bytes);
        let payload = events.text();
        let n = u32::try_from(events.events()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let head = record::header(Kind::Events, t.next, n, payload);
        t.file.write_all_at(&head, at)?;
        t.file.write_all_at(payload, at + HEADER as u64)
    }

    /// Closes the open segment (cut to its records; the syncer syncs it, unless `sync: none`
    /// or `delivered`) and opens the next, named by the next event index: a spare file written
    /// over, or a new one.
    fn roll(&self, t: &mut Tail, delivered: bool) -> io::Result<()> {
        if self.policy != SyncPolicy::None {
            if !delivered {
                let closed = t.file.clone();
                t.closing.push(closed);
            }
            t.dir_dirty = true;
            t.unsynced = true;
        }
        let closing = t.segments.back().map_or(0, |s| s.bytes);
        if t.open_len > closing {
            t.file.set_len(closing)?;
            t.bytes -= t.open_len - closing;
            t.open_len = closing;
        }
        let path = self.dir.join(segment::file_name(t.next));
        let (file, len) = match t.spares.reuse(&path)? {
            Some(reused) => reused,
            None => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                (file, 0)
            }
        };
        t.file = Arc::new(file);
        t.open_len = len;
        t.segments.push_back(Seg {
            first: t.next,
            end: t.next,
            bytes: 0,
        });
        Ok(())
    }

    /// Records a change of shedding state, with its log line.
    fn shed(&self, t: &mut Tail, to: Shedding, error: Option<&io::Error>) {
        if t.shedding == to {
            return;
        }
        t.shedding = to;
        self.metrics.shedding.set(i64::from(to != Shedding::No));
        self.hint
            .full
            .store(to == Shedding::Full, Ordering::Release);
        let (pipeline, bytes, max_size) = (&self.pipeline, t.bytes, self.max_size);
        match to {
            Shedding::Full => tracing::warn!(
                pipeline,
                bytes,
                max_size,
                "disk buffer full: shedding ingest until outputs free segments"
            ),
            Shedding::Failing => {
                tracing::error!(pipeline, error = %error.map(ToString::to_string).unwrap_or_default(),
                "disk buffer write failed: shedding ingest")
            }
            Shedding::No => {
                tracing::info!(pipeline, bytes, max_size, "disk buffer accepting again")
            }
        }
    }

    fn publish(&self, t: &Tail) {
        self.metrics
            .bytes
            .set(i64::try_from(t.bytes).unwrap_or(i64::MAX));
        self.metrics.segments.set(t.segments.len() as i64);
        let h = &self.hint;
        h.next.store(t.next, Ordering::Release);
        let open = t.segments.back().map_or(0, |s| s.bytes);
        h.open_bytes.store(open, Ordering::Release);
        let oldest = (t.segments.len() > 1).then(|| t.segments[0].end);
        h.oldest_end
            .store(oldest.unwrap_or(u64::MAX), Ordering::Release);
        h.full
            .store(t.shedding == Shedding::Full, Ordering::Release);
    }

    /// The index the next appended event gets: the number of events ever appended.
    pub(crate) fn end(&self) -> u64 {
        self.lock().next
    }

    /// Bytes on disk, segments, and the shedding state.
    pub(crate) fn levels(&self) -> (u64, usize, Shedding) {
        let t = self.lock();
        (t.bytes, t.segments.len(), t.shedding)
    }

    /// The segment `first` names and the one after it; when it was freed (every cursor had
    /// passed it), the oldest one after it instead.
    pub(crate) fn segment(&self, first: u64) -> Option<(Seg, Option<Seg>)> {
        let t = self.lock();
        let i = t.segments.iter().position(|s| s.first >= first)?;
        Some((t.segments[i], t.segments.get(i + 1).copied()))
    }

    /// The path of the segment `first` names.
    pub(crate) fn segment_path(&self, first: u64) -> PathBuf {
        self.dir.join(segment::file_name(first))
    }

    /// Frees every closed segment whose events all lie below `upto` (the lowest cursor
    /// written and synced): kept as a spare for reuse, or deleted.
    pub(crate) fn release(&self, upto: u64) {
        let mut guard = self.lock();
        let t = &mut *guard;
        while t.segments.len() > 1 && t.segments[0].end <= upto {
            let gone = t.segments[0];
            match t.spares.keep(&self.segment_path(gone.first), gone.bytes) {
                Ok(true) => {}
                Ok(false) => t.bytes -= gone.bytes,
                Err(error) if error.kind() == io::ErrorKind::NotFound => t.bytes -= gone.bytes,
                Err(error) => {
                    self.metrics.io_errors.inc();
                    tracing::warn!(pipeline = %self.pipeline, %error, "cannot free a disk buffer segment");
                    break;
                }
            }
            t.segments.pop_front();
        }
        self.publish(t);
    }

    /// Where the next record will start.
    pub(crate) fn tail(&self) -> Pos {
        let t = self.lock();
        let open = t.segments.back().expect("the open segment");
        Pos {
            segment: open.first,
            offset: open.bytes,
        }
    }

    /// How full the open segment is when it is closed because every output has passed it:
    /// small, so that a sync writes back little that is delivered already (a freed segment is
    /// written over long before the kernel would write its pages back).
    fn passed_roll(&self) -> u64 {
        (self.segment_size / 2).min(PASSED_ROLL)
    }

    /// Closes the open segment once every output has passed all of it (`lowest`, the lowest
    /// cursor), so it can be freed: at [`PASSED_ROLL`], or at once while ingest is shed for
    /// want of room (a small `max_size` could otherwise stay full of delivered events).
    pub(crate) fn roll_passed(&self, lowest: u64) {
        let h = &self.hint;
        let worth = h.open_bytes.load(Ordering::Acquire) >= self.passed_roll()
            || h.full.load(Ordering::Acquire);
        if !worth || h.next.load(Ordering::Acquire) > lowest {
            return;
        }
        let mut t = self.lock();
        let open = *t.segments.back().expect("the open segment");
        let worth =
            open.bytes >= self.passed_roll() || (t.shedding == Shedding::Full && open.bytes > 0);
        // Every event in it is delivered: nothing to sync before it is freed.
        if t.next <= lowest && worth && !t.broken {
            if let Err(error) = self.roll(&mut t, true) {
                t.broken = true;
                self.metrics.io_errors.inc();
                self.shed(&mut t, Shedding::Failing, Some(&error));
            }
            self.publish(&t);
        }
    }

    /// The end of the oldest segment (`u64::MAX` with only the open one): nothing is freed
    /// until every cursor has reached it.
    pub(crate) fn oldest_end(&self) -> u64 {
        self.hint.oldest_end.load(Ordering::Acquire)
    }

    /// The lowest event index a segment still holds.
    pub(crate) fn head(&self) -> u64 {
        self.lock().segments.front().map_or(0, |s| s.first)
    }

    /// Syncs the open segment if anything was appended since the last sync, publishing the
    /// progress. The lock is held only to take the handle.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let (file, closed, dir, upto) = {
            let mut t = self.lock();
            if !t.unsynced {
                return Ok(());
            }
            t.unsynced = false;
            let dir = std::mem::take(&mut t.dir_dirty);
            (t.file.clone(), std::mem::take(&mut t.closing), dir, t.next)
        };
        let result = closed
            .iter()
            .chain([&file])
            .try_for_each(|f| f.sync_data())
            .and_then(|()| match dir {
                true => File::open(&self.dir)?.sync_all(),
                false => Ok(()),
            });
        self.metrics.syncs.inc();
        self.synced.send_modify(|s| match &result {
            Ok(()) => s.upto = s.upto.max(upto),
            Err(_) => s.failed_upto = s.failed_upto.max(upto),
        });
        if let Err(error) = &result {
            self.metrics.io_errors.inc();
            let mut t = self.lock();
            t.broken = true;
            self.shed(&mut t, Shedding::Failing, Some(error));
        }
        result
    }

    /// Waits (on the syncer's thread) until there is something to sync or the log is closed;
    /// `None` waits for a wake-up, else at most that long. True once closed.
    pub(crate) fn wait(&self, at_most: Option<std::time::Duration>) -> bool {
        let t = self.lock();
        if t.closed {
            return true;
        }
        match at_most {
            Some(d) => match self.wake.wait_timeout(t, d) {
                Ok((t, _)) => t.closed,
                Err(e) => e.into_inner().0.closed,
            },
            None => match self.wake.wait_while(t, |t| !t.closed && !t.unsynced) {
                Ok(t) => t.closed,
                Err(e) => e.into_inner().closed,
            },
        }
    }

    /// Stops the syncer (after its last sync).
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}
