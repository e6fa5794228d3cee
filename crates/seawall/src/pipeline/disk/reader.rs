//! Reading an output's events back from the log, from where its copy in memory ends: whole
//! records as chunks sliced from one read (no copy per event), and the holes that corruption
//! left, so the output can count them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::log::{Log, Pos};
use super::record::{Header, Kind, HEADER};
use crate::memory::Budget;
use crate::pipeline::events::Chunk;

/// What a read returns, in log order.
#[derive(Debug)]
pub(crate) enum Item {
    /// A record's events; `first` may lie below the index asked for (a restart inside a record).
    Events { first: u64, chunk: Chunk, end: Pos },
    /// `events` events from `first` that the log lost to corruption. Always the last item.
    Hole { first: u64, events: u64, end: Pos },
}

/// An output's reader: keeps the segment it reads open.
#[derive(Default)]
pub(crate) struct Reader {
    open: Option<(u64, File)>,
}

impl Reader {
    /// Records from `from` (where event `expected` is), about `max_bytes` of them (at least
    /// one when there is one): empty once the reader is at the end of the log.
    pub(crate) fn read(
        &mut self,
        log: &Log,
        mut from: Pos,
        expected: u64,
        max_bytes: usize,
        budget: &Arc<Budget>,
    ) -> io::Result<Vec<Item>> {
        let seg = loop {
            let Some((seg, next)) = log.segment(from.segment) else {
                let what = format!("segment {} was freed under a reader", from.segment);
                return Err(io::Error::new(io::ErrorKind::NotFound, what));
            };
            if seg.first != from.segment {
                // Freed once the reader had read all of it: go on with the next one.
                from = start_of(seg.first);
                if let Some(gap) = gap(expected, seg.first) {
                    return Ok(vec![gap]);
                }
            }
            if from.offset < seg.bytes {
                break seg;
            }
            let Some(next) = next else {
                return Ok(Vec::new());
            };
            from = start_of(next.first);
            if let Some(gap) = gap(expected, next.first) {
                return Ok(vec![gap]);
            }
        };
        let file = self.file(log, seg.first)?;
        let want = (seg.bytes - from.offset).min(max_bytes.max(HEADER) as u64);
        let mut buf = vec![0; usize::try_from(want).unwrap_or(usize::MAX)];
        file.read_exact_at(&mut buf, from.offset)?;
        let first_header = Header::parse(&buf).ok_or_else(|| corrupt(from))?;
        if first_header.size() > want {
            buf.resize(
                usize::try_from(first_header.size()).unwrap_or(usize::MAX),
                0,
            );
            file.read_exact_at(&mut buf, from.offset)?;
        }
        let block = budget.hold(buf);
        let (mut at, mut expected, mut items) = (0usize, expected, Vec::new());
        while at + HEADER <= block.len() {
            let here = Pos {
                segment: seg.first,
                offset: from.offset + at as u64,
            };
            let h = Header::parse(&block[at..]).ok_or_else(|| corrupt(here))?;
            let size = usize::try_from(h.size()).unwrap_or(usize::MAX);
            if at + size > block.len() {
                break;
            }
            if h.first > expected {
                items.push(Item::Hole {
                    first: expected,
                    events: h.first - expected,
                    end: here,
                });
                return Ok(items);
            }
            let end = Pos {
                segment: seg.first,
                offset: here.offset + h.size(),
            };
            at += size;
            expected = h.end();
            match h.kind {
                Kind::Events => items.push(Item::Events {
                    first: h.first,
                    chunk: Chunk::new(block.slice(at - h.len as usize..at), h.events as usize),
                    end,
                }),
                Kind::Hole => {
                    items.push(Item::Hole {
                        first: h.first,
                        events: u64::from(h.events),
                        end,
                    });
                    return Ok(items);
                }
            }
        }
        Ok(items)
    }

    fn file(&mut self, log: &Log, segment: u64) -> io::Result<&File> {
        if self.open.as_ref().is_none_or(|(s, _)| *s != segment) {
            self.open = Some((segment, File::open(log.segment_path(segment))?));
        }
        Ok(&self.open.as_ref().expect("just opened").1)
    }
}

fn start_of(segment: u64) -> Pos {
    Pos { segment, offset: 0 }
}

/// The hole between event `expected` and the segment starting at event `first`, if any.
fn gap(expected: u64, first: u64) -> Option<Item> {
    (first > expected).then(|| Item::Hole {
        first: expected,
        events: first - expected,
        end: start_of(first),
    })
}

fn corrupt(at: Pos) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "no valid record at offset {} of segment {}",
            at.offset, at.segment
        ),
    )
}
