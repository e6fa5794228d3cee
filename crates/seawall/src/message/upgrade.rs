//! Protocol upgrades (WebSocket): the request side says which protocol the client asked for
//! ([`UpgradeRequest`], in the request's extensions, present only then); the reply side hands
//! the connection a [`Tunnel`] to the upstream, which the connection joins to the client's
//! socket once it has written the `101`.

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncWrite};

/// The client asked to switch to this protocol (`connection: upgrade`, `upgrade: websocket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest(pub HeaderValue);

/// Both directions of an upgraded upstream connection.
pub(crate) trait TunnelIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> TunnelIo for T {}

/// What a `101` reply carries: the upstream side of the tunnel.
pub(crate) struct Tunnel(pub(crate) Box<dyn TunnelIo>);
