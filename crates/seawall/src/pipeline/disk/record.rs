//! The log's record format: a 32-byte header, checksummed on its own, then the payload (a
//! request's events as NDJSON, or nothing for a hole), checksummed too.
//!
//! ```text
//! 0..4   magic   b"SWL1"
//! 4..6   kind    u16 LE (0 events, 1 hole)
//! 6..8   zero
//! 8..16  first   u64 LE: the index of the record's first event in the pipeline's log
//! 16..20 events  u32 LE
//! 20..24 len     u32 LE: payload bytes
//! 24..28 crc32 of the payload
//! 28..32 crc32 of bytes 0..28
//! ```
//!
//! A header that checks out tells how many events the record holds even when its payload was
//! torn, so a cut tail can be counted exactly. A hole stands for events lost to corruption; its
//! payload is the length the segment had before the cut (8 bytes), so a replay killed halfway
//! through a cut does not count the same loss twice.

/// Bytes of a header.
pub(crate) const HEADER: usize = 32;

const MAGIC: [u8; 4] = *b"SWL1";

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `events` events as NDJSON.
    Events,
    /// `events` events lost to corruption; the payload is the segment's length before the cut.
    Hole,
}

/// A header that checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    pub(crate) first: u64,
    pub(crate) events: u32,
    /// Payload bytes.
    pub(crate) len: u32,
    crc: u32,
}

impl Header {
    /// Bytes of the whole record.
    pub(crate) fn size(&self) -> u64 {
        HEADER as u64 + u64::from(self.len)
    }

    /// One past the record's last event.
    pub(crate) fn end(&self) -> u64 {
        self.first + u64::from(self.events)
    }

    /// Whether `payload` (exactly `len` bytes) is what was written.
    pub(crate) fn payload_ok(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize && crc32fast::hash(payload) == self.crc
    }

    /// Reads a header from the first [`HEADER`] bytes of `bytes`: `None` when they are fewer or
    /// do not check out.
    pub(crate) fn parse(bytes: &[u8]) -> Option<Header> {
        let h = bytes.get(..HEADER)?;
        if h[..4] != MAGIC || crc32fast::hash(&h[..28]) != u32_at(h, 28) {
            return None;
        }
        let kind = match u16::from_le_bytes([h[4], h[5]]) {
            0 => Kind::Events,
            1 => Kind::Hole,
            _ => return None,
        };
        Some(Header {
            kind,
            first: u64::from_le_bytes(h[8..16].try_into().ok()?),
            events: u32_at(h, 16),
            len: u32_at(h, 20),
            crc: u32_at(h, 24),
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The header of a record of `kind` holding `events` events from index `first`, with `payload`.
pub(crate) fn header(kind: Kind, first: u64, events: u32, payload: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&MAGIC);
    let kind: u16 = match kind {
        Kind::Events => 0,
        Kind::Hole => 1,
    };
    h[4..6].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&first.to_le_bytes());
    h[16..20].copy_from_slice(&events.to_le_bytes());
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    h[20..24].copy_from_slice(&len.to_le_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let crc = crc32fast::hash(&h[..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A whole hole record: `events` lost from `first`, cut from a segment `cut_from` bytes long.
pub(crate) fn hole(first: u64, events: u32, cut_from: u64) -> Vec<u8> {
    let payload = cut_from.to_le_bytes();
    let mut record = header(Kind::Hole, first, events, &payload).to_vec();
    record.extend_from_slice(&payload);
    record
}

/// The segment length a hole's payload recorded.
pub(crate) fn hole_cut_from(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_any_flipped_bit_is_refused() {
        let payload = b"{\"a\":1}\n{\"b\":2}\n";
        let h = header(Kind::Events, 41, 2, payload);
        let parsed = Header::parse(&h).unwrap();
        assert_eq!(
            (parsed.kind, parsed.first, parsed.events),
            (Kind::Events, 41, 2)
        );
        assert_eq!(
            (parsed.end(), parsed.size()),
            (43, 32 + payload.len() as u64)
        );
        assert!(parsed.payload_ok(payload));
        assert!(!parsed.payload_ok(b"{\"a\":1}\n{\"b\":3}\n"));
        for bit in 0..HEADER * 8 {
            let mut bad = h;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Header::parse(&bad), None, "bit {bit}");
        }
        assert_eq!(Header::parse(&h[..HEADER - 1]), None);
    }

    #[test]
    fn a_hole_keeps_the_length_it_was_cut_from() {
        let record = hole(7, 3, 4096);
        let h = Header::parse(&record).unwrap();
        assert_eq!((h.kind, h.first, h.events), (Kind::Hole, 7, 3));
        let payload = &record[HEADER..];
        assert!(h.payload_ok(payload));
        assert_eq!(hole_cut_from(payload), Some(4096));
    }
}
