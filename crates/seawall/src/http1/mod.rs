//! The HTTP/1.1 transport the gateway runs on, in three parts with one job each:
//!
//! - [`codec`]: heads parsed with `httparse` into `http` types and written back out, body
//!   framing (RFC 9112), hop-by-hop fields. No I/O.
//! - [`inbound`]: one client's connection to us, served in its own task, which owns the
//!   socket: heads in, the request body pumped to the handler on demand, replies out.
//! - [`outbound`]: our pooled connections to upstreams (plain or TLS), driven in the task
//!   that sends the request.
//!
//! Doing this with hyper's server and client cost two connection dispatchers and a channel hop
//! per request; here everything stays in the client connection's task, with header values
//! sharing the read buffer. Framing refuses ambiguous bodies (both `content-length` and
//! `transfer-encoding`, conflicting lengths) instead of guessing. See `docs/ARCHITECTURE.md`
//! and BENCHMARKS.md.

pub(crate) mod codec;
pub(crate) mod inbound;
pub(crate) mod io;
pub(crate) mod outbound;
