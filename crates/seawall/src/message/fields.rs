//! Header fields kept as they arrived: spans of a parsed head's bytes, with no map built and
//! nothing copied. The gateway passes an upstream response's fields to its client this way
//! (a response from an LLM API carries dozens of fields the gateway never looks at).

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The fields that frame a message, which a transport writes itself whatever a message's own
/// fields say.
pub(crate) const FRAMING: [HeaderName; 3] = [CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION];

/// Where one field's name and value sit in the head: (name start, name length, value start,
/// value length). Heads are far shorter than `u32::MAX`.
pub(crate) type Span = (u32, u32, u32, u32);

/// A head's end-to-end header fields in wire order, names as sent (any case).
///
/// A [`Reply`](crate::message::Reply) carries an upstream's fields this way from the upstream
/// client to the server, which writes them after the reply's own [`HeaderMap`].
#[derive(Clone, Debug, Default)]
pub(crate) struct WireHeaders {
    head: Bytes,
    spans: Vec<Span>,
}

impl WireHeaders {
    /// The fields at `spans` of `head`, which the parser has validated.
    pub(crate) fn new(head: Bytes, spans: Vec<Span>) -> Self {
        WireHeaders { head, spans }
    }

    /// The fields as (name, value) pairs, in the order they arrived.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(|&(n, nl, v, vl)| {
            let (n, v) = (n as usize, v as usize);
            (
                &self.head[n..n + nl as usize],
                &self.head[v..v + vl as usize],
            )
        })
    }

    /// The value of every field called `name` (lowercase), in order.
    pub(crate) fn get_all<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The first value of the field called `name` (lowercase).
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// Appends `name: value\r\n` for every field except the [`FRAMING`] ones.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        for (name, value) in self.iter() {
            if is_framing(name) {
                continue;
            }
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Adds the fields to `map` (for a protocol that needs a map, such as HTTP/2), except
    /// the [`FRAMING`] ones.
    pub(crate) fn append_to(&self, map: &mut HeaderMap) {
        for (name, value) in self.iter() {
            if is_framing(name) {
                continue;
            }
            let name = HeaderName::from_bytes(name);
            let value = HeaderValue::from_maybe_shared(self.head.slice_ref(value));
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
    }
}

impl seawall_http::Fields for WireHeaders {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name)
    }
}

fn is_framing(name: &[u8]) -> bool {
    FRAMING
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f.as_str().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(wire: &'static [u8]) -> WireHeaders {
        // "a: 1\r\nContent-Length: 2\r\nA: 3\r\n"
        let mut spans = Vec::new();
        let mut at = 0;
        for line in wire.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let colon = line.iter().position(|&b| b == b':').unwrap();
            let value_len = line.len() - colon - 3; // ": " and "\r"
            spans.push((
                at as u32,
                colon as u32,
                (at + colon + 2) as u32,
                value_len as u32,
            ));
            at += line.len() + 1;
        }
        WireHeaders::new(Bytes::from_static(wire), spans)
    }

    #[test]
    fn looks_up_writes_and_converts() {
        let h = fields(b"a: 1\r\nContent-Length: 2\r\nA: 3\r\n");
        assert_eq!(h.get("a"), Some(&b"1"[..]));
        assert_eq!(h.get_all("a").collect::<Vec<_>>(), [&b"1"[..], b"3"]);
        assert_eq!(h.get("content-length"), Some(&b"2"[..]));
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(out, b"a: 1\r\nA: 3\r\n");
        let mut map = HeaderMap::new();
        h.append_to(&mut map);
        assert_eq!(map.get_all("a").iter().count(), 2);
        assert!(!map.contains_key("content-length"));
    }
}
