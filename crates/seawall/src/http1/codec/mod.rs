//! The HTTP/1.1 codec: no I/O, only bytes in and out.
//!
//! - `head`: request and response heads parsed into `http` types; heads written out.
//! - `hop`: the hop-by-hop fields a proxy consumes or drops (RFC 9110 §7.6.1), in one place.
//! - `decode`: body framing (`content-length`, chunked, until close) and its decoder.
//! - `encode`: body frames gathered for one write, chunk-encoded when the length is unknown.
//! - `target`: which request targets are accepted (RFC 9112 §3.2's four forms).
//! - `fuzz` (tests only): generated hostile heads and chunked bodies checked against reference
//!   models of RFC 9112 (`bench/fuzz.sh` runs it at scale).

pub(crate) mod decode;
pub(crate) mod encode;
#[cfg(test)]
mod fuzz;
pub(crate) mod head;
pub(crate) mod hop;
pub(crate) mod target;
