//! The simulated flag server, in the Databricks shape: every host gets
//! `seawall.telemetry.enabled` and `seawall.circuit_breaker.enabled` set to `true`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::StatusCode;
use tokio::task::JoinHandle;

use super::net::{self, json_reply, Handler};

/// TTL the flag server hands out, in seconds (the gateway re-fetches this often).
pub(super) const TTL_SECONDS: u64 = 10;

/// A running flag server.
pub(super) struct FlagServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests it has answered.
    pub served: Arc<AtomicU64>,
    /// Its accept loop.
    pub task: JoinHandle<()>,
}

/// Starts the flag server.
pub(super) async fn start() -> std::io::Result<FlagServer> {
    let served = Arc::new(AtomicU64::new(0));
    let handler: Handler = {
        let served = served.clone();
        Arc::new(move |_req| {
            served.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::json!({
                "flags": [
                    { "name": "seawall.telemetry.enabled", "value": "true" },
                    { "name": "seawall.circuit_breaker.enabled", "value": "true" },
                ],
                "ttl_seconds": TTL_SECONDS,
            });
            Box::pin(async move { json_reply(StatusCode::OK, None, body.to_string()) })
        })
    };
    let (addr, task) = net::serve(handler).await?;
    Ok(FlagServer { addr, served, task })
}
