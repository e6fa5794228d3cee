//! The simulated telemetry collector behind the `http` output: two endpoints (`/primary` and
//! `/alternate`) that accept NDJSON batches, each answering 503 for a while in the middle of
//! the run, so reroute, health-based sampling, drops and recovery all show.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::net::{self, json_reply, Handler, Simulated};
use super::Timeline;
use crate::message::Body;

/// What the collector received.
#[derive(Debug, Default)]
pub(super) struct CollectorStats {
    /// Events stored (lines of accepted batches).
    pub events: AtomicU64,
    /// Batches refused with 503.
    pub refused: AtomicU64,
}

/// A running collector.
pub(super) type Collector = Simulated<CollectorStats>;

/// Starts the collector following `timeline`.
pub(super) async fn start(timeline: Timeline) -> std::io::Result<Collector> {
    let stats = Arc::new(CollectorStats::default());
    let handler: Handler = {
        let stats = stats.clone();
        Arc::new(move |req| Box::pin(answer(timeline, stats.clone(), req)))
    };
    let (addr, task) = net::serve(handler).await?;
    Ok(Simulated { addr, stats, task })
}

async fn answer(
    timeline: Timeline,
    stats: Arc<CollectorStats>,
    req: Request<Incoming>,
) -> http::Response<Body> {
    let alternate = req.uri().path().starts_with("/alternate");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if timeline.collector_down(alternate) {
        stats.refused.fetch_add(1, Ordering::Relaxed);
        return json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            r#"{"error":{"type":"unavailable","message":"collector is restarting"}}"#.into(),
        );
    }
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    stats.events.fetch_add(lines as u64, Ordering::Relaxed);
    json_reply(StatusCode::OK, None, format!(r#"{{"stored":{lines}}}"#))
}
