//! What handlers receive and answer, whatever the protocol: a request whose body is a
//! [`RequestBody`], and a [`Reply`], which carries an upstream's fields as they arrived
//! (`fields`). The transports (`crate::http1`, `crate::server`) build on this module. Every error the daemon answers itself is JSON with a
//! reason ([`json_error`]).

pub(crate) mod fields;
mod pipe;
mod reply;
mod request;
mod upgrade;

pub(crate) use pipe::{pipe, PipeSender, Want};
pub use reply::{body_timeout, empty, full, json, json_error, Body, Reply};
pub use request::{RequestBody, RequestBodyError};
pub(crate) use upgrade::Tunnel;
pub use upgrade::UpgradeRequest;

/// Errors a body may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
