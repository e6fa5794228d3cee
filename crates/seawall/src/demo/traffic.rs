//! The traffic generator: about 40 requests a second through the gateway, alternating between
//! `/anthropic/v1/messages` and `/openai/v1/chat/completions`, a third of them streamed, each
//! answer read to its end and classified.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::{interval, MissedTickBehavior};

use super::net::HttpClient;

/// Pause between two requests (all clients together).
const PACE: Duration = Duration::from_millis(25);

/// Requests in flight at most (slow answers must not pile up without bound).
const MAX_IN_FLIGHT: usize = 64;

/// The two routes the clients call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// `/anthropic/v1/messages`.
    Anthropic,
    /// `/openai/v1/chat/completions`.
    Openai,
}

/// Outcomes of the requests of one route.
#[derive(Debug, Default)]
pub(super) struct RouteTally {
    /// Requests sent.
    pub sent: AtomicU64,
    /// Answered by the upstream with a success.
    pub ok: AtomicU64,
    /// Answered by the upstream with an error (529, 429, …), passed through by the gateway.
    pub upstream_error: AtomicU64,
    /// Rejected by an open breaker (`x-seawall-circuit: open`): no upstream call was made.
    pub rejected: AtomicU64,
    /// Refused by the gateway for another reason (global health shedding, timeouts).
    pub other: AtomicU64,
}

/// Outcomes per route.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// `/anthropic/v1/messages`.
    pub anthropic: RouteTally,
    /// `/openai/v1/chat/completions`.
    pub openai: RouteTally,
}

impl Tally {
    /// The tally of `route`.
    pub fn route(&self, route: Route) -> &RouteTally {
        match route {
            Route::Anthropic => &self.anthropic,
            Route::Openai => &self.openai,
        }
    }

    /// Sums `field` over both routes.
    pub fn total(&self, field: impl Fn(&RouteTally) -> &AtomicU64) -> u64 {
        field(&self.anthropic).load(Ordering::Relaxed) + field(&self.openai).load(Ordering::Relaxed)
    }
}

/// Starts sending requests to the gateway at `gateway`; abort the task to stop.
pub(super) fn start(client: HttpClient, gateway: SocketAddr, tally: Arc<Tally>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut pace = interval(PACE);
        pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for n in 0u64.. {
            pace.tick().await;
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let route = if n % 2 == 0 {
                Route::Anthropic
            } else {
                Route::Openai
            };
            let stream = n % 3 == 0;
            let (client, tally) = (client.clone(), tally.clone());
            tokio::spawn(async move {
                call(&client, gateway, route, stream, tally.route(route)).await;
                drop(slot);
            });
        }
    })
}

/// One request, read to the end, counted in `tally`.
async fn call(
    client: &HttpClient,
    gateway: SocketAddr,
    route: Route,
    stream: bool,
    tally: &RouteTally,
) {
    let (path, body) = match route {
        Route::Anthropic => (
            "/anthropic/v1/messages",
            serde_json::json!({ "model": "claude-demo", "max_tokens": 64, "stream": stream,
                "messages": [{ "role": "user", "content": "Say something reassuring." }] }),
        ),
        Route::Openai => (
            "/openai/v1/chat/completions",
            serde_json::json!({ "model": "gpt-demo", "stream": stream,
                "messages": [{ "role": "user", "content": "Say something reassuring." }] }),
        ),
    };
    tally.sent.fetch_add(1, Ordering::Relaxed);
    let request = Request::post(format!("http://{gateway}{path}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", "demo-key")
        .header("anthropic-version", "2023-06-01")
        .header(header::AUTHORIZATION, "Bearer demo-key")
        .body(Full::new(Bytes::from(body.to_string())));
    let Ok(request) = request else {
        tally.other.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let response = match client.request(request).await {
        Ok(r) => r,
        Err(_) => {
            tally.other.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let status = response.status();
    let rejected = response
        .headers()
        .get("x-seawall-circuit")
        .is_some_and(|v| v == "open");
    let complete = response.into_body().collect().await.is_ok();
    let counter = if rejected {
        &tally.rejected
    } else if status.is_success() && complete {
        &tally.ok
    } else if matches!(status.as_u16(), 429 | 529) || (status.is_server_error() && status != 503) {
        &tally.upstream_error
    } else {
        &tally.other
    };
    counter.fetch_add(1, Ordering::Relaxed);
}
