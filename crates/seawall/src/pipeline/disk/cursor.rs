//! An output's cursor file, `{output}.cursor`: where the output is in the pipeline's log and
//! its accounting up to there, so both survive a restart. Two fixed slots written in turn, each
//! with a generation and a checksum: a write torn by a crash spoils only the slot it was
//! writing, and the other still holds the previous state.
//!
//! ```text
//! slot (256 bytes, at 0 and 256):
//! 0..4 b"SWC1" | 8..16 generation | 16..24 batch-id prefix | 24..32 origin | 32..40 cursor
//! 40..48 delivered | 48..112 dropped by reason (8 × u64) | 112..120 batch first
//! 120..124 batch events (0: none) | 128..132 crc32 of 0..128
//! ```

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const MAGIC: [u8; 4] = *b"SWC1";
const SLOT: u64 = 256;
/// Drop reasons a slot has room for.
pub(crate) const REASONS: usize = 8;

/// What a cursor file keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The random first half of the output's `x-seawall-batch-id`s, fixed when the cursor was
    /// made: ids stay the same across restarts and differ from another cursor's.
    pub(crate) prefix: u64,
    /// The log index the output started at: it was offered every event from there.
    pub(crate) origin: u64,
    /// The first event the output has not finished with: `delivered + dropped = cursor −
    /// origin`.
    pub(crate) cursor: u64,
    pub(crate) delivered: u64,
    /// By drop reason (`DropReason as usize`).
    pub(crate) dropped: [u64; REASONS],
    /// A batch cut from `cursor` or later that may have been sent: first event and count. After
    /// a restart it is cut again exactly so, and sent under the same id.
    pub(crate) batch: Option<(u64, u32)>,
}

impl Mark {
    /// A new output's mark, starting at log index `at`.
    pub(crate) fn starting(at: u64) -> Mark {
        Mark {
            prefix: fastrand::u64(..),
            origin: at,
            cursor: at,
            ..Mark::default()
        }
    }

    /// Events dropped for any reason.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    fn encode(&self, generation: u64) -> [u8; SLOT as usize] {
        let mut s = [0u8; SLOT as usize];
        s[..4].copy_from_slice(&MAGIC);
        let mut put = |at: usize, v: u64| s[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(8, generation);
        put(16, self.prefix);
        put(24, self.origin);
        put(32, self.cursor);
        put(40, self.delivered);
        for (i, n) in self.dropped.iter().enumerate() {
            put(48 + 8 * i, *n);
        }
        let (first, events) = self.batch.unwrap_or((0, 0));
        put(112, first);
        s[120..124].copy_from_slice(&events.to_le_bytes());
        let crc = crc32fast::hash(&s[..128]);
        s[128..132].copy_from_slice(&crc.to_le_bytes());
        s
    }

    /// The mark in `s` and its generation, if the slot checks out.
    fn decode(s: &[u8]) -> Option<(u64, Mark)> {
        if s.len() < 132 || s[..4] != MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(s[128..132].try_into().ok()?);
        if crc32fast::hash(&s[..128]) != crc {
            return None;
        }
        let get = |at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
        let mut dropped = [0; REASONS];
        for (i, n) in dropped.iter_mut().enumerate() {
            *n = get(48 + 8 * i);
        }
        let events = u32::from_le_bytes(s[120..124].try_into().ok()?);
        let mark = Mark {
            prefix: get(16),
            origin: get(24),
            cursor: get(32),
            delivered: get(40),
            dropped,
            batch: (events > 0).then(|| (get(112), events)),
        };
        Some((get(8), mark))
    }
}

/// An open cursor file.
#[derive(Debug)]
pub(crate) struct CursorFile {
    file: File,
    path: PathBuf,
    generation: AtomicU64,
    /// The cursor last written (for freeing segments).
    written: AtomicU64,
    /// Written since the last sync.
    dirty: AtomicBool,
}

impl CursorFile {
    /// Creates (or replaces) the cursor file at `path`, holding `mark`.
    pub(crate) fn create(path: &Path, mark: &Mark) -> io::Result<CursorFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let c = CursorFile::wrap(file, path, 0, mark.cursor);
        c.write(mark)?;
        Ok(c)
    }

    /// Opens the cursor file at `path`: `None` for the mark when neither slot checks out.
    pub(crate) fn open(path: &Path) -> io::Result<(CursorFile, Option<Mark>)> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut slots = [0u8; 2 * SLOT as usize];
        let len = file.read_at(&mut slots, 0)?;
        let newest = slots[..len]
            .chunks(SLOT as usize)
            .filter_map(Mark::decode)
            .max_by_key(|(generation, _)| *generation);
        let (generation, cursor) = newest.map_or((0, 0), |(g, m)| (g, m.cursor));
        let c = CursorFile::wrap(file, path, generation, cursor);
        Ok((c, newest.map(|(_, m)| m)))
    }

    fn wrap(file: File, path: &Path, generation: u64, cursor: u64) -> CursorFile {
        CursorFile {
            file,
            path: path.to_owned(),
            generation: AtomicU64::new(generation),
            written: AtomicU64::new(cursor),
            dirty: AtomicBool::new(true),
        }
    }

    /// Writes `mark` over the older slot (to the page cache: [`sync`](Self::sync) makes it
    /// durable). One writer at a time: the output's worker.
    pub(crate) fn write(&self, mark: &Mark) -> io::Result<()> {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let at = (generation % 2) * SLOT;
        self.file.write_all_at(&mark.encode(generation), at)?;
        self.written.store(mark.cursor, Ordering::Release);
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// The cursor last written.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Makes what was written durable, if anything was since the last sync.
    pub(crate) fn sync(&self) -> io::Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.file.sync_data() {
                self.dirty.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> PathBuf {
        crate::pipeline::disk::scratch("cursor")
    }

    #[test]
    fn the_newest_slot_wins_and_a_torn_one_leaves_the_previous_mark() {
        let path = path();
        let mut mark = Mark::starting(100);
        let c = CursorFile::create(&path, &mark).unwrap();
        mark.cursor = 150;
        mark.delivered = 50;
        mark.batch = Some((150, 25));
        c.write(&mark).unwrap();
        let (_, read) = CursorFile::open(&path).unwrap();
        assert_eq!(read, Some(mark));

        // Tear the newest slot (generation 2, at offset 0): the older one is read.
        let bytes = std::fs::read(&path).unwrap();
        let mut torn = bytes.clone();
        torn[40] ^= 1;
        std::fs::write(&path, &torn).unwrap();
        let (reopened, read) = CursorFile::open(&path).unwrap();
        assert_eq!(read.map(|m| (m.cursor, m.batch)), Some((100, None)));
        // Writing after a torn slot goes to the slot after the one read.
        mark.cursor = 175;
        reopened.write(&mark).unwrap();
        assert_eq!(
            CursorFile::open(&path).unwrap().1.map(|m| m.cursor),
            Some(175)
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn neither_slot_valid_reads_as_none() {
        let path = path();
        std::fs::write(&path, [7u8; 300]).unwrap();
        assert_eq!(CursorFile::open(&path).unwrap().1, None);
        std::fs::remove_file(&path).unwrap();
    }
}
