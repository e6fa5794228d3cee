//! Opening a pipeline's buffer directory at start, before traffic is served: take its lock,
//! check every record, cut a torn or corrupt tail (counting what it lost, never failing on it),
//! then reconcile the cursor files with the configured outputs: each output resumes where it
//! stopped, a new one starts at the log's tail, a removed one's cursor is dropped with its
//! pending events counted.
//!
//! Every step can be killed and run again: a cut writes its hole record (the loss, counted)
//! over the bad bytes before it shortens the file, and a replay finding a hole followed by what
//! that hole replaced cuts it again without counting it twice.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::cursor::{CursorFile, Mark};
use super::log::{Log, Pos, Seg};
use super::record;
use super::segment::{self, Tail};
use super::spare;
use super::BufferMetrics;
use crate::config::SyncPolicy;

/// An output resuming from its cursor.
pub(crate) struct Resumed {
    pub(crate) mark: Mark,
    /// Where the record holding `mark.cursor` starts (the log's end when none does).
    pub(crate) pos: Pos,
    pub(crate) file: Arc<CursorFile>,
}

/// A cursor whose output is no longer configured (its file is deleted).
pub(crate) struct Removed {
    pub(crate) output: String,
    /// Its events still in the log, which it will never deliver.
    pub(crate) pending: u64,
}

/// An opened buffer directory.
pub(crate) struct Opened {
    pub(crate) log: Arc<Log>,
    /// One per configured output, in order.
    pub(crate) outputs: Vec<Resumed>,
    pub(crate) removed: Vec<Removed>,
    /// Held while the process runs: a second daemon cannot open the directory.
    pub(crate) lock: File,
}

/// A cursor file found in the directory.
struct Found {
    name: String,
    file: CursorFile,
    mark: Option<Mark>,
    pos: Option<Pos>,
}

/// Opens (creating it if needed) the buffer directory `dir` of `pipeline` for `outputs`.
pub(crate) fn open(
    dir: &Path,
    pipeline: &str,
    settings: (u64, SyncPolicy),
    outputs: &[&str],
    metrics: BufferMetrics,
) -> io::Result<Opened> {
    let started = Instant::now();
    std::fs::create_dir_all(dir)?;
    let lock = lock(dir)?;
    let (segments, mut found) = list(dir)?;
    tracing::info!(pipeline, path = %dir.display(), segments = segments.len(),
        "disk buffer replay started");
    let (mut segs, lost) = check(dir, pipeline, &segments, &mut found)?;
    if segs.is_empty() {
        let at = found
            .iter()
            .filter_map(|f| f.mark.map(|m| m.cursor))
            .max()
            .unwrap_or(0);
        File::create(dir.join(segment::file_name(at)))?;
        segs.push_back(Seg {
            first: at,
            end: at,
            bytes: 0,
        });
    }
    let lost = lost + cover_cursors(dir, &mut segs, &found)?;
    metrics.corrupt_events.inc_by(lost);
    let log = Arc::new(Log::new(dir, pipeline, settings, segs, metrics)?);
    let (end, head) = (log.end(), log.head());
    let tail = log.tail();
    let mut resumed = Vec::new();
    for output in outputs {
        let r = match found.iter().position(|f| f.name == *output) {
            Some(i) => resume(pipeline, found.swap_remove(i), (head, end), tail)?,
            None => {
                let mark = Mark::starting(end);
                let file = CursorFile::create(&cursor_path(dir, output), &mark)?;
                tracing::info!(
                    pipeline,
                    output,
                    at = end,
                    "new output starts at the disk buffer's tail"
                );
                Resumed {
                    mark,
                    pos: tail,
                    file: Arc::new(file),
                }
            }
        };
        resumed.push(r);
    }
    let removed = found
        .into_iter()
        .map(|f| remove(pipeline, f, end))
        .collect();
    let (bytes, segments, _) = log.levels();
    tracing::info!(
        pipeline,
        segments,
        bytes,
        events = end - head,
        corrupt_events = lost,
        took_ms = started.elapsed().as_millis() as u64,
        "disk buffer replay done"
    );
    Ok(Opened {
        log,
        outputs: resumed,
        removed,
        lock,
    })
}

fn lock(dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "another process holds the buffer directory (its `lock` file)",
        )),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn cursor_path(dir: &Path, output: &str) -> PathBuf {
    dir.join(format!("{output}.cursor"))
}

/// The segment files (by first event) and the cursor files in `dir`.
fn list(dir: &Path) -> io::Result<(Vec<u64>, Vec<Found>)> {
    let (mut segments, mut found) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if spare::is_spare(&name) {
            std::fs::remove_file(entry.path())?;
        } else if let Some(first) = segment::parse_name(&name) {
            segments.push(first);
        } else if let Some(output) = name.strip_suffix(".cursor") {
            let (file, mark) = CursorFile::open(&entry.path())?;
            found.push(Found {
                name: output.to_owned(),
                file,
                mark,
                pos: None,
            });
        }
    }
    segments.sort_unstable();
    Ok((segments, found))
}

/// Checks every segment in order, cutting a bad tail; notes where each cursor's record starts.
/// Returns the segments and the events lost to corruption.
fn check(
    dir: &Path,
    pipeline: &str,
    segments: &[u64],
    found: &mut [Found],
) -> io::Result<(VecDeque<Seg>, u64)> {
    let (mut segs, mut lost) = (VecDeque::new(), 0);
    for (i, &first) in segments.iter().enumerate() {
        let path = dir.join(segment::file_name(first));
        let scan = segment::scan(&path, first, |h, offset| {
            for f in found.iter_mut() {
                let c = f.mark.map_or(0, |m| m.cursor);
                if f.pos.is_none() && h.end() > c {
                    f.pos = Some(Pos {
                        segment: first,
                        offset,
                    });
                }
            }
        })?;
        let next = segments.get(i + 1).copied();
        let (mut bytes, mut end) = (scan.valid, scan.end);
        match scan.tail {
            Tail::Clean => {}
            Tail::Remnant | Tail::Stale => cut(&path, scan.valid)?,
            Tail::Bad { lost: seen } => {
                // A later segment names the exact loss; at the log's tail a hole keeps it.
                let events = next.map_or(seen, |n| n.saturating_sub(scan.end));
                if next.is_none() && events > 0 {
                    bytes += write_hole(&path, scan.valid, scan.end, events, scan.len)?;
                    end += events;
                } else {
                    cut(&path, scan.valid)?;
                }
                lost += events;
                tracing::warn!(pipeline, segment = %path.display(), offset = scan.valid,
                    bytes_cut = scan.len - scan.valid, events_lost = events,
                    "disk buffer: torn or corrupt tail cut");
            }
        }
        segs.push_back(Seg { first, end, bytes });
    }
    Ok((segs, lost))
}

fn cut(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Writes a hole record for `events` lost from `first` at `at` (over the bad bytes), then
/// shortens the file to end with it. Returns the hole's size.
fn write_hole(path: &Path, at: u64, first: u64, events: u64, cut_from: u64) -> io::Result<u64> {
    let events = u32::try_from(events).unwrap_or(u32::MAX);
    let hole = record::hole(first, events, cut_from);
    let file = OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&hole, at)?;
    file.sync_data()?;
    file.set_len(at + hole.len() as u64)?;
    file.sync_all()?;
    Ok(hole.len() as u64)
}

/// A cursor past the log's end (its tail lost with the host, the cursor kept): a hole up to
/// the furthest cursor, so every output's figures still add up. Returns the events it covers.
fn cover_cursors(dir: &Path, segs: &mut VecDeque<Seg>, found: &[Found]) -> io::Result<u64> {
    let last = segs.back_mut().expect("at least one segment");
    let furthest = found.iter().filter_map(|f| f.mark.map(|m| m.cursor)).max();
    let Some(furthest) = furthest.filter(|&c| c > last.end) else {
        return Ok(0);
    };
    let events = furthest - last.end;
    let path = dir.join(segment::file_name(last.first));
    last.bytes += write_hole(&path, last.bytes, last.end, events, last.bytes)?;
    last.end = furthest;
    Ok(events)
}

/// The output of `f` resuming: its mark (a fresh one from the log's head when its file no
/// longer checks out) and where to read.
fn resume(pipeline: &str, f: Found, (head, end): (u64, u64), tail: Pos) -> io::Result<Resumed> {
    let output = f.name.as_str();
    let mut mark = match f.mark {
        Some(mark) => mark,
        None => {
            tracing::error!(pipeline, output, path = %f.file.path().display(),
                "cursor file unreadable: the output starts again from the disk buffer's head (its \
                 events there may be delivered twice)");
            let mark = Mark::starting(head);
            f.file.write(&mark)?;
            let pos = Pos {
                segment: head,
                offset: 0,
            };
            return Ok(Resumed {
                mark,
                pos,
                file: Arc::new(f.file),
            });
        }
    };
    if mark
        .batch
        .is_some_and(|(first, n)| first + u64::from(n) > end)
    {
        mark.batch = None;
    }
    tracing::info!(
        pipeline,
        output,
        cursor = mark.cursor,
        pending = end - mark.cursor,
        "output resumes from its cursor"
    );
    Ok(Resumed {
        mark,
        pos: f.pos.unwrap_or(tail),
        file: Arc::new(f.file),
    })
}

/// Drops the cursor of a removed output, logging what it leaves undelivered.
fn remove(pipeline: &str, f: Found, end: u64) -> Removed {
    let mark = f.mark.unwrap_or_default();
    let pending = end.saturating_sub(mark.cursor);
    tracing::warn!(pipeline, output = %f.name, delivered = mark.delivered,
        dropped = mark.dropped_total(), pending,
        "output no longer configured: its cursor is dropped and its pending events with it");
    if let Err(error) = std::fs::remove_file(f.file.path()) {
        tracing::warn!(pipeline, output = %f.name, %error, "cannot delete the cursor file");
    }
    Removed {
        output: f.name,
        pending,
    }
}
