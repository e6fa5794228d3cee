//! The gateway listener's routes: `/ingest/{pipeline}` to the pipelines, everything else to
//! the gateway. Both edges share the gateway's client auth and shed new work while global
//! health fails.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};

use crate::gateway::Gateway;
use crate::health::{self, Health};
use crate::message::{json_error, BoxError, Reply};
use crate::pipeline::Pipelines;

/// Routes the gateway listener's requests.
pub(crate) struct Router {
    pub(crate) gateway: Gateway,
    /// `None` when no pipeline is configured (then `/ingest/…` answers 404).
    pub(crate) pipelines: Option<Arc<Pipelines>>,
    /// `None` when `global_health.enabled` is false.
    pub(crate) health: Option<Arc<Health>>,
}

impl Router {
    /// Serves one request from `remote`.
    pub(crate) async fn handle<B>(self: Arc<Self>, req: Request<B>, remote: SocketAddr) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = req.uri().path();
        if path != "/ingest" && !path.starts_with("/ingest/") {
            return self.gateway.handle(req, remote).await;
        }
        if let Some(refusal) = self.gateway.refuse_client(req.headers()) {
            return refusal;
        }
        if let Some(health) = &self.health {
            if let Some(check) = health.shed(health::Edge::Ingest) {
                return crate::pipeline::shed(health, check).into();
            }
        }
        match &self.pipelines {
            // Boxed so the gateway requests' futures do not carry ingest's larger state.
            Some(pipelines) => Box::pin(pipelines.ingest(req)).await.into(),
            None => json_error(
                StatusCode::NOT_FOUND,
                "unknown_pipeline",
                "no pipelines are configured: `POST /ingest/{pipeline}` needs a `pipelines:` entry",
            )
            .into(),
        }
    }
}
