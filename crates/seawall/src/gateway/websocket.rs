//! WebSocket passthrough: an upgrade request goes upstream with the provider's key like any
//! other; when the upstream answers `101`, its connection becomes the upstream side of a tunnel
//! the client's connection joins (`crate::http1::inbound`), counted while it is open.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::metrics::ProviderMetrics;
use crate::http1::outbound::Upgraded;

/// An upgraded upstream connection, counted in `seawall_websocket_tunnels` until dropped.
pub(crate) struct CountedTunnel {
    io: Upgraded,
    metrics: ProviderMetrics,
}

impl CountedTunnel {
    pub(crate) fn new(io: Upgraded, metrics: &ProviderMetrics) -> Self {
        metrics.tunnels.inc();
        metrics.opened.inc();
        CountedTunnel {
            io,
            metrics: metrics.clone(),
        }
    }
}

impl Drop for CountedTunnel {
    fn drop(&mut self) {
        self.metrics.tunnels.dec();
    }
}

impl AsyncRead for CountedTunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedTunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
