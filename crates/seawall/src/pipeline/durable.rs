//! An output worker's side of the disk buffer: reading the output's events back from the log
//! when it has fallen behind, writing its cursor file (the batch about to be sent, then the
//! cursor past it), and holding a `file` output's cursor back until the file is synced, so an
//! acknowledged event is always either in the file, synced, or still in the log.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::disk::{CursorFile, Disk, Mark, Reader};
use super::ledger::{Batch, Ledger};
use super::sink::Sink;
use crate::config::SyncPolicy;

/// Bytes read back from the log at a time.
const READ_BYTES: usize = 4 << 20;

/// Pause before reading again after a read failed.
const READ_RETRY: Duration = Duration::from_millis(500);

/// A worker's disk buffer state.
pub(crate) struct Durable {
    pub(crate) disk: Arc<Disk>,
    pub(crate) cursor: Arc<CursorFile>,
    reader: Option<Reader>,
    /// The mark last written to the cursor file.
    written: Mark,
    /// `file` outputs: their sink's writes must be synced before the cursor passes them.
    syncs_sink: bool,
    /// `file` outputs with `sync: interval`: the mark waiting for the next sync, and when.
    unsynced: Option<(Mark, Instant)>,
    sync_interval: Duration,
    /// Set after a failed read: no read before then.
    read_after: Option<Instant>,
}

impl Durable {
    /// The state of an output resuming at `mark`; `syncs_sink` for `file` outputs (unless
    /// `sync: none`).
    pub(crate) fn new(
        disk: Arc<Disk>,
        cursor: Arc<CursorFile>,
        mark: Mark,
        syncs_sink: bool,
        sync_interval: Duration,
    ) -> Durable {
        Durable {
            disk,
            cursor,
            reader: Some(Reader::default()),
            written: mark,
            syncs_sink,
            unsynced: None,
            sync_interval,
            read_after: None,
        }
    }

    /// Reads the output's next events back from the log into its queue, if some are only
    /// there and the queue has room. True if it read (or tried to).
    pub(crate) async fn read(&mut self, ledger: &Ledger, names: (&str, &str)) -> bool {
        if self.read_after.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let Some((pos, next)) = ledger.wants_read() else {
            return false;
        };
        let mut reader = self.reader.take().unwrap_or_default();
        let (log, budget) = (self.disk.log.clone(), ledger.budget().clone());
        let read = tokio::task::spawn_blocking(move || {
            let items = reader.read(&log, pos, next, READ_BYTES, &budget);
            (reader, items)
        })
        .await;
        let items = match read {
            Ok((reader, items)) => {
                self.reader = Some(reader);
                items
            }
            Err(join) => Err(std::io::Error::other(join.to_string())),
        };
        match items {
            Ok(items) if !items.is_empty() => {
                if let Some(mark) = ledger.loaded(items) {
                    // A mark held back for a file sync is overtaken, not written early.
                    match &mut self.unsynced {
                        Some((held, _)) => *held = mark,
                        None => self.write(mark),
                    }
                }
            }
            Ok(_) => self.read_after = Some(Instant::now() + READ_RETRY),
            Err(error) => {
                self.disk.log.metrics.io_errors.inc();
                tracing::warn!(pipeline = names.0, output = names.1, %error,
                    "cannot read the disk buffer: retrying");
                self.read_after = Some(Instant::now() + READ_RETRY);
            }
        }
        true
    }

    /// When a failed read may be retried (for the worker's wait).
    pub(crate) fn read_retry_at(&self) -> Option<Instant> {
        self.read_after
    }

    /// Before `batch` is sent for the first time: the cursor file names it, so a restart
    /// sends the same events under the same id.
    pub(crate) fn pin(&mut self, batch: &Batch) {
        let mut mark = self.written;
        mark.batch = Some((batch.id, batch.events as u32));
        self.write_only(&mark);
    }

    /// The output finished with events up to `mark`'s cursor: written now, or, for a `file`
    /// output, once its file is synced (at once with `sync: always`).
    pub(crate) async fn finished(&mut self, mark: Mark, sinks: &mut [Sink]) {
        if !self.syncs_sink {
            self.write(mark);
            return;
        }
        if self.disk.policy() == SyncPolicy::Always {
            self.unsynced = Some((mark, Instant::now()));
            self.flush(sinks).await;
        } else {
            let at = self
                .unsynced
                .map_or(Instant::now() + self.sync_interval, |(_, at)| at);
            self.unsynced = Some((mark, at));
        }
    }

    /// When the held-back mark is due (for the worker's wait).
    pub(crate) fn flush_at(&self) -> Option<Instant> {
        self.unsynced.map(|(_, at)| at)
    }

    /// Syncs the sinks and writes the held-back mark, if there is one.
    pub(crate) async fn flush(&mut self, sinks: &mut [Sink]) {
        let Some((mark, _)) = self.unsynced.take() else {
            return;
        };
        for sink in sinks.iter_mut() {
            if let Err(error) = sink.sync().await {
                self.disk.log.metrics.io_errors.inc();
                tracing::warn!(pipeline = %self.disk.log.pipeline, %error,
                    "cannot sync a file output: its events stay in the disk buffer");
                self.unsynced = Some((mark, Instant::now() + self.sync_interval));
                return;
            }
        }
        self.write(mark);
    }

    fn write(&mut self, mark: Mark) {
        if self.write_only(&mark) {
            self.written = mark;
            self.disk.release();
        }
    }

    fn write_only(&self, mark: &Mark) -> bool {
        match self.cursor.write(mark) {
            Ok(()) => true,
            Err(error) => {
                self.disk.log.metrics.io_errors.inc();
                tracing::warn!(pipeline = %self.disk.log.pipeline,
                    path = %self.cursor.path().display(), %error,
                    "cannot write a cursor file: a restart may deliver some events again");
                false
            }
        }
    }
}
