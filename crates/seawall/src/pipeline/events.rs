//! Events held compactly: NDJSON text, each event one line ending in `\n`, in one shared
//! buffer per request. A queued event costs its own bytes and nothing per event besides; a
//! request's events move between stores as one handle, and a batch cut from one request is
//! sent as a slice of it, without copying.

use bytes::Bytes;

/// A run of whole events: `text` holds `events` lines, each ending in `\n`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Chunk {
    text: Bytes,
    events: usize,
}

impl Chunk {
    /// `text` must be `events` lines, each ending in `\n` (events never contain one).
    pub(crate) fn new(text: Bytes, events: usize) -> Chunk {
        debug_assert_eq!(memchr::memchr_iter(b'\n', &text).count(), events);
        debug_assert!(text.is_empty() || text.ends_with(b"\n"));
        Chunk { text, events }
    }

    /// Events in the chunk.
    pub(crate) fn events(&self) -> usize {
        self.events
    }

    /// Bytes of NDJSON.
    pub(crate) fn len(&self) -> usize {
        self.text.len()
    }

    /// The NDJSON text.
    pub(crate) fn text(&self) -> &Bytes {
        &self.text
    }

    /// Bytes of the first event with its line break (0 when empty).
    pub(crate) fn first_len(&self) -> usize {
        memchr::memchr(b'\n', &self.text).map_or(0, |p| p + 1)
    }

    /// Each event, without its line break.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let text = &self.text[..];
        let mut start = 0;
        memchr::memchr_iter(b'\n', text).map(move |end| {
            let line = &text[start..end];
            start = end + 1;
            line
        })
    }

    /// Splits off the first events: at most `max_events` and `max_bytes` bytes, but at least
    /// one event (when there is one). The whole chunk when it fits, without scanning it.
    pub(crate) fn split_front(&mut self, max_events: usize, max_bytes: usize) -> Chunk {
        if self.events <= max_events && self.text.len() <= max_bytes {
            return std::mem::take(self);
        }
        let (mut n, mut cut) = (0, 0);
        for end in memchr::memchr_iter(b'\n', &self.text) {
            if n == max_events || (n > 0 && end + 1 > max_bytes) {
                break;
            }
            n += 1;
            cut = end + 1;
        }
        self.events -= n;
        Chunk {
            text: self.text.split_to(cut),
            events: n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &'static str) -> Chunk {
        Chunk::new(
            Bytes::from_static(text.as_bytes()),
            text.matches('\n').count(),
        )
    }

    #[test]
    fn split_front_honours_both_limits_and_keeps_at_least_one_event() {
        let mut c = chunk("{\"a\":1}\n{}\n{\"bb\":22}\n{}\n");
        let first = c.split_front(2, 1000);
        assert_eq!(
            (first.text().as_ref(), first.events()),
            (&b"{\"a\":1}\n{}\n"[..], 2)
        );
        let tiny = c.split_front(10, 3);
        assert_eq!(tiny.events(), 1, "one event even when it alone is larger");
        assert_eq!(c.lines().collect::<Vec<_>>(), [&b"{}"[..]]);
        let rest = c.split_front(10, 3);
        assert_eq!((rest.events(), c.events(), c.len()), (1, 0, 0));
    }
}
