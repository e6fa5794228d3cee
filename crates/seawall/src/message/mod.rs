//! What handlers receive and answer, whatever the protocol: a request whose body is a
//! [`RequestBody`], and a [`Reply`]. Every error the daemon answers itself is JSON with a
//! reason ([`json_error`]).

mod pipe;
mod reply;
mod request;
mod upgrade;

pub(crate) use pipe::{pipe, PipeSender, Want};
pub use reply::{empty, full, json, json_error, Body, Reply};
pub use request::{RequestBody, RequestBodyError};
pub(crate) use upgrade::Tunnel;
pub use upgrade::UpgradeRequest;

pub use crate::http1::BoxError;
