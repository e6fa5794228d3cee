//! The HTTP/1.1 wire layer the gateway runs on: head parsing and writing, body framing.
//!
//! The gateway's hot path is a request in, a request out, a response in, a response out. Doing
//! that with hyper's server and client costs two connection dispatchers and a channel hop to
//! the client's connection task per request; this layer lets the server (`crate::server`) and
//! the upstream client (`crate::gateway`) keep everything in the client connection's task,
//! with header values sharing the read buffer. Parsing is `httparse`'s; framing follows
//! RFC 9112 and refuses ambiguous bodies (both `content-length` and `transfer-encoding`,
//! conflicting lengths) instead of guessing. See BENCHMARKS.md for what it buys.

pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod fields;
pub(crate) mod head;
pub(crate) mod io;
