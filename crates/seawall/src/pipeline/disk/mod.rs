//! The disk buffer (`pipelines[].buffer.type: disk`): a segmented append-only log per pipeline
//! under `{path}/{pipeline}/` and a cursor file per output, so an event answered 202 survives a
//! crash of the daemon and every output resumes where it stopped.
//!
//! # Layout
//! - `record.rs`: the record format (checksummed header, NDJSON payload; holes).
//! - `segment.rs`: a segment file's name and the scan that checks it.
//! - `log.rs`: appending (under `max_size`), segment roll and freeing, shedding state;
//!   `spare.rs`: freed segment files kept to be written over.
//! - `writer.rs`: the writer thread ingest hands its records to.
//! - `sync.rs`: the syncer thread (`sync: always` group commits, `interval`).
//! - `reader.rs`: an output reading its events back.
//! - `cursor.rs`: an output's cursor file (position, batch in flight, accounting).
//! - `replay.rs`: opening the directory at start: checks, cuts, cursor reconciliation.

#[cfg(all(test, feature = "bench-redb"))]
mod compare;
mod cursor;
mod log;
mod reader;
mod record;
mod replay;
mod segment;
mod spare;
mod sync;
#[cfg(test)]
mod tests;
mod writer;

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

pub(crate) use cursor::{CursorFile, Mark, REASONS};
pub(crate) use log::{Log, Pos, Refused};
pub(crate) use reader::{Item, Reader};
pub(crate) use replay::{Removed, Resumed};
pub(crate) use writer::Offer;

use crate::config::{BufferConfig, SyncPolicy};
use crate::pipeline::events::Chunk;

/// A fresh path under the temp directory for a unit test (`tag` names the test's module).
#[cfg(test)]
pub(crate) fn scratch(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "seawall-{tag}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ))
}

/// A disk buffer's series (`seawall_buffer_*`, by pipeline).
#[derive(Clone, Default)]
pub(crate) struct BufferMetrics {
    pub(crate) bytes: Gauge,
    pub(crate) segments: Gauge,
    /// 1 while ingest is shed (full or failing).
    pub(crate) shedding: Gauge,
    pub(crate) refused_full: Counter,
    pub(crate) refused_failing: Counter,
    pub(crate) io_errors: Counter,
    pub(crate) syncs: Counter,
    /// Events lost to a torn or corrupt log, found at replay.
    pub(crate) corrupt_events: Counter,
}

/// One pipeline's disk buffer: its log, its outputs' cursor files and its syncer.
pub(crate) struct Disk {
    pub(crate) log: Arc<Log>,
    /// Every output's cursor file: segments are freed below the lowest cursor.
    cursors: Vec<Arc<CursorFile>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    /// Appends what ingest hands over, and offers what is appended; set once the outputs
    /// exist.
    writer: OnceLock<(writer::Writer, Offer)>,
    pub(crate) path: std::path::PathBuf,
    /// Held open for the process's life: its lock keeps a second daemon out.
    _lock: File,
}

impl Disk {
    /// Opens `{config.path}/{pipeline}` for `outputs` (replaying it) and starts its syncer.
    pub(crate) fn open(
        pipeline: &str,
        config: &BufferConfig,
        outputs: &[&str],
        metrics: BufferMetrics,
    ) -> std::io::Result<(Disk, Vec<Resumed>, Vec<Removed>)> {
        let root = config.path.as_deref().unwrap_or(Path::new("."));
        let path = root.join(pipeline);
        let opened = replay::open(
            &path,
            pipeline,
            (config.max_size, config.sync),
            outputs,
            metrics,
        )?;
        let syncer = sync::spawn(opened.log.clone(), config.sync_interval)?;
        let cursors = opened.outputs.iter().map(|r| r.file.clone()).collect();
        let disk = Disk {
            log: opened.log,
            cursors,
            syncer: Mutex::new(syncer),
            writer: OnceLock::new(),
            path,
            _lock: opened.lock,
        };
        Ok((disk, opened.outputs, opened.removed))
    }

    /// Starts the writer thread, which offers every record it appends with `offer`.
    pub(crate) fn start_writer(&self, offer: Offer) -> std::io::Result<()> {
        let writer = writer::Writer::spawn(self.log.clone(), offer.clone())?;
        let _ = self.writer.set((writer, offer));
        Ok(())
    }

    /// Appends `events` to the log (see [`Log::append`]): here when its lock is free, else
    /// through the writer thread. Resolves to one past the last event's index.
    pub(crate) async fn append(&self, events: &Chunk) -> Result<u64, Refused> {
        let Some((writer, offer)) = self.writer.get() else {
            return Err(Refused::Failing);
        };
        let inline = self
            .log
            .try_append(events, |first, end| offer(events, first, end));
        match inline {
            Some(appended) => appended,
            None => writer.append(events).await,
        }
    }

    /// Hands `events` to the writer without waiting; false once it has stopped.
    pub(crate) fn append_detached(&self, events: &Chunk) -> bool {
        self.writer
            .get()
            .is_some_and(|(w, _)| w.append_detached(events))
    }

    /// Frees the segments every output has passed; cursor files are synced first (unless
    /// `sync: none`), so no cursor can come back from a crash pointing into a freed segment.
    pub(crate) fn release(&self) {
        let lowest = self.cursors.iter().map(|c| c.written()).min();
        let Some(lowest) = lowest else { return };
        self.log.roll_passed(lowest);
        if self.log.oldest_end() > lowest {
            return;
        }
        if self.log.policy != SyncPolicy::None {
            for c in &self.cursors {
                if let Err(error) = c.sync() {
                    self.log.metrics.io_errors.inc();
                    tracing::warn!(pipeline = %self.log.pipeline, %error,
                        "cannot sync a cursor file: segments kept");
                    return;
                }
            }
        }
        self.log.release(lowest);
    }

    /// Waits until events below `end` are synced (`sync: always`); refused when that sync
    /// failed.
    pub(crate) async fn synced(&self, end: u64) -> Result<(), Refused> {
        if self.log.policy != SyncPolicy::Always {
            return Ok(());
        }
        let mut rx = self.log.synced.subscribe();
        let seen = rx
            .wait_for(|s| s.upto >= end || s.failed_upto >= end)
            .await
            .map(|s| *s);
        match seen {
            Ok(s) if s.failed_upto >= end => Err(Refused::Failing),
            Ok(_) => Ok(()),
            Err(_) => Err(Refused::Failing),
        }
    }

    /// Stops the syncer after a last sync and syncs every cursor file (the segments and
    /// cursors stay for the next start).
    pub(crate) fn close(&self) {
        if let Some((writer, _)) = self.writer.get() {
            writer.stop();
        }
        self.log.close();
        let syncer = self.syncer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = syncer {
            let _ = handle.join();
        }
        let _ = self.log.sync();
        for c in &self.cursors {
            let _ = c.sync();
        }
    }

    /// `sync` as configured.
    pub(crate) fn policy(&self) -> SyncPolicy {
        self.log.policy
    }
}

impl Drop for Disk {
    /// Stops the syncer even without a shutdown (a test dropping its pipelines).
    fn drop(&mut self) {
        self.log.close();
    }
}
