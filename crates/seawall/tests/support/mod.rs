//! Helpers for end-to-end tests over loopback sockets.

pub mod gateway;
pub mod upstream;
