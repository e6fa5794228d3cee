//! The end-to-end harness every test binary in `tests/` shares: real servers on loopback that a
//! test scripts, the daemon started from YAML, clients, and the answers several files expect.
//!
//! # Layout
//! - [`daemon`]: `App` from YAML in-process, its admin JSON and `/metrics`, its stop.
//! - [`inproc`]: the gateway and the pipelines built from the library on a manual clock (the
//!   one place that touches `Gateway`, `Breakers` and `Pipelines` directly).
//! - [`process`]: the real `seawall` binary as a child process; [`replica`]: one replica of
//!   a fleet (the binary with a cluster); [`redis`]: a real `redis-server`.
//! - [`client`]: HTTP requests and whole answers; [`wire`]: raw HTTP/1.1 bytes on a socket.
//! - [`upstream`]: a scripted mock provider; [`collector`]: a scripted pipeline collector;
//!   [`flags`]: a scripted feature-flag service. All three run on [`serve`].
//! - [`bodies`]: the provider-shaped error bodies the daemon writes itself.
//! - [`probes`]: fake global-health probes.
//! - [`exposition`]: reading Prometheus samples.
//! - [`wait`]: bounded waits; [`ports`]: refused and free ports; [`temp`]: fresh temp paths.
//! - [`tls`]: a test CA, its server certificates as PEM files, and a TLS client.
//!
//! Each binary uses part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

pub mod bodies;
pub mod client;
pub mod collector;
pub mod daemon;
pub mod exposition;
pub mod flags;
pub mod inproc;
pub mod ports;
pub mod probes;
pub mod process;
pub mod redis;
pub mod replica;
pub mod serve;
pub mod temp;
pub mod tls;
pub mod upstream;
pub mod wait;
pub mod wire;
