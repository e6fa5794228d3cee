//! One segment file of the log, `{first:020}.seg` (named by the index of its first event):
//! records back to back. Scanning one checks every record and says where the valid ones end
//! and what follows them, so a replay can cut a torn or corrupt tail and count what it lost.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::record::{self, Header, Kind, HEADER};

/// The file name of the segment whose first event is `first`.
pub(crate) fn file_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The first event of a segment named `name`, if it is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a scan found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Bytes of whole, valid records from the start of the file.
    pub(crate) valid: u64,
    /// One past the last event of the valid records (`first` of the segment when none).
    pub(crate) end: u64,
    /// The file's length.
    pub(crate) len: u64,
    /// Valid records (holes included).
    pub(crate) records: u64,
    /// What follows the valid records.
    pub(crate) tail: Tail,
}

/// What follows a segment's valid records.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Nothing.
    Clean,
    /// What an earlier cut left behind its hole record: cut again, counted already.
    Remnant,
    /// Records of an earlier use of a reused file: cut, nothing lost.
    Stale,
    /// Bytes that are not valid records, from `valid` to `len`, holding at least `lost`
    /// events as far as can be told: a torn record's header, valid records further on, or
    /// else the line breaks in them (each event ends in one).
    Bad {
        /// Events the bad bytes held, counted from `end`.
        lost: u64,
    },
}

/// Checks every record of the segment at `path`, whose first event is `first`; `visit` sees
/// each valid record's header and offset.
pub(crate) fn scan(
    path: &Path,
    first: u64,
    mut visit: impl FnMut(&Header, u64),
) -> io::Result<Scan> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut valid, mut end, mut records) = (0u64, first, 0u64);
    let mut head = [0u8; HEADER];
    let mut payload = Vec::new();
    let mut last_hole_cut: Option<u64> = None;
    loop {
        if valid == len {
            return Ok(Scan {
                valid,
                end,
                len,
                records,
                tail: Tail::Clean,
            });
        }
        let header = if len - valid >= HEADER as u64 {
            reader.read_exact(&mut head)?;
            Header::parse(&head)
        } else {
            head = [0; HEADER];
            None
        };
        if header.is_some_and(|h| h.first < end) {
            // Only a reused file holds a record from before this one's.
            return Ok(Scan {
                valid,
                end,
                len,
                records,
                tail: Tail::Stale,
            });
        }
        let header = header.filter(|h| valid + h.size() <= len);
        let whole = match header {
            Some(h) => {
                payload.resize(h.len as usize, 0);
                reader.read_exact(&mut payload)?;
                h.payload_ok(&payload).then_some(h)
            }
            None => None,
        };
        let Some(h) = whole else {
            let tail = if last_hole_cut.is_some_and(|cut| len <= cut) {
                Tail::Remnant
            } else {
                let header = Header::parse(&head).filter(|h| h.first >= end);
                Tail::Bad {
                    lost: lost_after(path, valid, end, header)?,
                }
            };
            return Ok(Scan {
                valid,
                end,
                len,
                records,
                tail,
            });
        };
        visit(&h, valid);
        last_hole_cut = match h.kind {
            Kind::Hole => record::hole_cut_from(&payload),
            Kind::Events => None,
        };
        valid += h.size();
        end = h.end();
        records += 1;
    }
}

/// Events held by the bad bytes from `from` to the end of the file at `path`, counted from
/// event `end`: up to the end of the furthest valid record among them, or of the torn
/// `header`, or else one per line break before the first record of an earlier use of the
/// file (a reused one).
fn lost_after(path: &Path, from: u64, end: u64, header: Option<Header>) -> io::Result<u64> {
    let mut rest = Vec::new();
    let mut file = File::open(path)?;
    io::Seek::seek(&mut file, io::SeekFrom::Start(from))?;
    file.read_to_end(&mut rest)?;
    let mut furthest = header.map(|h| h.end());
    let mut stale_at = rest.len();
    for at in memchr::memmem::find_iter(&rest, b"SWL1") {
        let Some(h) = Header::parse(&rest[at..]) else {
            continue;
        };
        if h.first < end {
            stale_at = stale_at.min(at);
            continue;
        }
        let body = rest.get(at + HEADER..at + HEADER + h.len as usize);
        if body.is_some_and(|b| h.payload_ok(b)) {
            furthest = furthest.max(Some(h.end()));
        }
    }
    Ok(match furthest {
        Some(furthest) => furthest - end,
        None => memchr::memchr_iter(b'\n', &rest[..stale_at]).count() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::disk::record::header;

    fn record(first: u64, lines: &[&str]) -> Vec<u8> {
        let payload: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let mut r = header(Kind::Events, first, lines.len() as u32, payload.as_bytes()).to_vec();
        r.extend_from_slice(payload.as_bytes());
        r
    }

    fn temp(bytes: &[u8]) -> std::path::PathBuf {
        let path = crate::pipeline::disk::scratch("segment");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn names_are_twenty_digits() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(parse_name("00000000000000000042.cursor"), None);
    }

    #[test]
    fn a_clean_segment_ends_where_its_records_do() {
        let mut bytes = record(10, &["{}", "{}"]);
        bytes.extend(record(12, &["{\"a\":1}"]));
        let path = temp(&bytes);
        let mut offsets = Vec::new();
        let scan = scan(&path, 10, |h, at| offsets.push((h.first, at))).unwrap();
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(
            (scan.valid, scan.end, scan.records),
            (bytes.len() as u64, 13, 2)
        );
        assert_eq!(offsets, [(10, 0), (12, 38)]);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_torn_record_counts_the_events_its_header_names() {
        let mut bytes = record(0, &["{}"]);
        let keep = bytes.len() as u64;
        bytes.extend(&record(1, &["{}", "{}", "{}"])[..HEADER + 3]);
        let path = temp(&bytes);
        let scan = scan(&path, 0, |_, _| {}).unwrap();
        assert_eq!((scan.valid, scan.end), (keep, 1));
        assert_eq!(scan.tail, Tail::Bad { lost: 3 });
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn corruption_counts_up_to_the_furthest_valid_record_after_it() {
        let mut bytes = record(0, &["{}"]);
        let keep = bytes.len();
        bytes.extend(record(1, &["{}", "{}"]));
        bytes.extend(record(3, &["{}"]));
        bytes[keep + 3] ^= 0xff;
        let path = temp(&bytes);
        let scan = scan(&path, 0, |_, _| {}).unwrap();
        assert_eq!(scan.tail, Tail::Bad { lost: 3 }, "events 1, 2 and 3");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn garbage_counts_its_line_breaks() {
        let mut bytes = record(0, &["{}"]);
        bytes.extend(b"xx{}\n{}\n\0\0");
        let path = temp(&bytes);
        assert_eq!(
            scan(&path, 0, |_, _| {}).unwrap().tail,
            Tail::Bad { lost: 2 }
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_reused_files_older_records_after_the_new_ones_are_stale_not_lost() {
        let mut bytes = record(500, &["{}", "{}"]);
        let keep = bytes.len() as u64;
        bytes.extend(record(130, &["{\"old\":1}"]));
        let path = temp(&bytes);
        let scan = scan(&path, 500, |_, _| {}).unwrap();
        assert_eq!((scan.tail, scan.valid, scan.end), (Tail::Stale, keep, 502));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn garbage_before_a_reused_files_older_records_counts_only_its_own_lines() {
        let mut bytes = record(500, &["{}"]);
        bytes.extend(b"{\"torn\":1}\n{\"to");
        bytes.extend(record(130, &["{}", "{}", "{}"]));
        let path = temp(&bytes);
        assert_eq!(
            scan(&path, 500, |_, _| {}).unwrap().tail,
            Tail::Bad { lost: 1 }
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn what_a_cut_left_behind_its_hole_is_a_remnant() {
        let mut bytes = record(0, &["{}"]);
        let cut_from = bytes.len() as u64 + 100;
        bytes.extend(record::hole(1, 4, cut_from));
        bytes.resize(cut_from as usize, b'\n');
        let path = temp(&bytes);
        let scan = scan(&path, 0, |_, _| {}).unwrap();
        assert_eq!((scan.tail, scan.end), (Tail::Remnant, 5));
        std::fs::remove_file(path).unwrap();
    }
}
