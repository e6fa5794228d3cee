//! The fleet (`cluster:`): replicas share breaker state through Redis, off the request path.
//!
//! Admission stays local and lock-free. A watcher on every breaker transition queues this
//! replica's trips and recoveries for one task (`link.rs`), which tells the fleet over a
//! Redis channel and applies what other replicas tell it:
//!
//! - **Failure runs** add up (`STREAK`): once the runs of `trip_quorum` replicas reach the
//!   breaker's `failure_threshold`, the fleet opens it, so a storm spread over N replicas
//!   costs the provider about `failure_threshold` failures, not N times that.
//! - **Trips** count as votes (`store.rs`'s `VOTE` script); once `trip_quorum` replicas
//!   tripped a breaker within `quorum_window` the fleet opens it: every replica opens it for
//!   the same period, reason `remote`. A trip carrying `Retry-After` opens the fleet at once.
//! - **Probing**: a fleet-open breaker holds its probes on every replica; when the period
//!   ends, the replica that takes the round's lease (`SET NX PX`) probes, at most
//!   `half_open_max_calls` for the fleet; its result closes or re-opens every replica.
//! - **Operators**: `force-open`, `disable` and `reset` apply fleet-wide, and are kept for
//!   replicas that start later.
//! - **Redis down, slow or flapping**: every replica decides alone (holds released),
//!   reconnects with backoff, and catches up: it loads what the fleet holds open and tells the
//!   fleet what opened here meanwhile. Start-up waits up to `connect_timeout` for that load,
//!   so a replica started mid-outage rejects at once.
//!
//! Files: `message.rs` (wire format), `store.rs` (Redis commands and scripts), `link.rs` (the
//! task), `directory.rs` (labels to breakers), `metrics.rs` (the families).

mod directory;
mod link;
mod message;
mod metrics;
mod store;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use directory::Directory;
pub use message::AdminAction;

use crate::config::{ClusterConfig, Secret};
use crate::labels::BreakerLabels;
use crate::metrics::{BreakerWatcher, Metrics};
use link::{FleetState, Link, Local, Settings};
use message::{now_ms, FleetKey};
use seawall_breaker::Transition;
use store::Keys;

/// How many transitions may wait for the task; more are dropped (and counted) and caught up
/// on the next reconnect.
const OUTBOX: usize = 4096;

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL in `cluster.redis_url_env` is not a Redis URL (its text is not repeated: it
    /// may hold a password).
    #[error("cluster.redis_url_env: not a Redis URL (redis://host:port/db or rediss://…): {0}")]
    Url(String),
}

/// A running cluster link. Dropping it stops the task.
pub struct Cluster {
    node: String,
    quorum: u32,
    state: Arc<Mutex<FleetState>>,
    outbox: mpsc::Sender<Local>,
    loaded: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Cluster {
    /// Connects this replica to the fleet of `config` through the Redis at `url`: from now on
    /// every transition of `metrics`' breakers is told to the fleet. Call it inside a tokio
    /// runtime; the connection is made by the task (see [`wait_loaded`](Self::wait_loaded)).
    pub fn start(
        config: &ClusterConfig,
        url: &Secret,
        directory: Directory,
        metrics: &Metrics,
    ) -> Result<Cluster, ClusterError> {
        let client =
            redis::Client::open(url.expose()).map_err(|e| ClusterError::Url(e.to_string()))?;
        let node = config.node_id.clone().unwrap_or_else(default_node_id);
        let families = Arc::new(metrics::Families::register(metrics));
        let (tx, rx) = mpsc::channel(OUTBOX);
        metrics.watch_breakers(Box::new(Watcher {
            outbox: tx.clone(),
            metrics: families.clone(),
        }));
        let state = Arc::new(Mutex::new(FleetState::default()));
        let (loaded_tx, loaded) = watch::channel(false);
        let link = Link {
            settings: Settings {
                node: node.clone(),
                quorum: config.trip_quorum,
                window: config.quorum_window,
                lease: config.probe_lease,
                keys: Keys::new(&config.key_prefix),
            },
            client,
            directory,
            state: state.clone(),
            metrics: families,
            outbox: rx,
            loaded: loaded_tx,
        };
        let task = tokio::spawn(link.run());
        tracing::info!(%node, prefix = %config.key_prefix, trip_quorum = config.trip_quorum,
            "cluster: starting");
        Ok(Cluster {
            node,
            quorum: config.trip_quorum,
            state,
            outbox: tx,
            loaded,
            task,
        })
    }

    /// Waits until the fleet's state is loaded, at most `timeout`; `false` if it was not
    /// (Redis unreachable: this replica starts deciding alone and catches up later).
    pub async fn wait_loaded(&self, timeout: Duration) -> bool {
        let mut loaded = self.loaded.clone();
        tokio::time::timeout(timeout, loaded.wait_for(|l| *l))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// This replica's name in the fleet.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Tells the fleet of an operator's `action` on the breaker labelled `labels`, already
    /// applied here. `false` when Redis is not reachable now (it then applies here only).
    pub fn admin(&self, labels: &BreakerLabels, action: AdminAction) -> bool {
        let connected = self.lock().connected;
        let queued = self
            .outbox
            .try_send(Local::Admin {
                labels: labels.clone(),
                action,
            })
            .is_ok();
        connected && queued
    }

    /// The replica whose trip opened the fleet's breaker `id`, while the fleet holds it open.
    pub fn tripped_by(&self, id: &str) -> Option<String> {
        self.lock().open.get(id).map(|r| r.first.clone())
    }

    /// What `GET /v1/cluster` shows.
    pub fn view(&self) -> ClusterView {
        let state = self.lock();
        let now = now_ms();
        let mut nodes: Vec<NodeView> = state
            .nodes
            .iter()
            .map(|(id, seen)| NodeView {
                this: *id == self.node,
                id: id.clone(),
                last_seen_ms_ago: now.saturating_sub(*seen),
            })
            .collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut open: Vec<OpenView> = state
            .open
            .iter()
            .map(|(id, r)| OpenView {
                id: id.clone(),
                breaker: r.key.clone(),
                until: rfc3339(r.until_ms),
                first: r.first.clone(),
                reason: r.reason.clone(),
                probing_here: state.probing.contains_key(id),
            })
            .collect();
        open.sort_by(|a, b| a.id.cmp(&b.id));
        let mut modes: Vec<ModeView> = state
            .modes
            .iter()
            .map(|(id, m)| ModeView {
                id: id.clone(),
                breaker: m.key.clone(),
                action: m.action.as_str(),
            })
            .collect();
        modes.sort_by(|a, b| a.id.cmp(&b.id));
        ClusterView {
            node_id: self.node.clone(),
            connected: state.connected,
            trip_quorum: self.quorum,
            nodes,
            open,
            modes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FleetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Queues what the fleet must hear of for the task; never blocks (a full queue drops and
/// counts, and the next reconnect catches up).
struct Watcher {
    outbox: mpsc::Sender<Local>,
    metrics: Arc<metrics::Families>,
}

impl Watcher {
    fn queue(&self, event: Local) {
        if self.outbox.try_send(event).is_err() {
            self.metrics.dropped.inc();
        }
    }
}

impl BreakerWatcher for Watcher {
    fn transition(&self, labels: &BreakerLabels, t: &Transition) {
        if let Some(event) = link::local_event(labels, t) {
            self.queue(event);
        }
    }

    fn streak(&self, labels: &BreakerLabels, streak: u32) {
        self.queue(Local::Streak {
            labels: labels.clone(),
            streak,
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET /v1/cluster`.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// This replica's name.
    pub node_id: String,
    /// Whether it is connected to Redis now.
    pub connected: bool,
    /// `cluster.trip_quorum`.
    pub trip_quorum: u32,
    /// Replicas heard from in the last ten seconds.
    pub nodes: Vec<NodeView>,
    /// Breakers the fleet holds open.
    pub open: Vec<OpenView>,
    /// Operators' fleet-wide modes.
    pub modes: Vec<ModeView>,
}

/// A replica in [`ClusterView`].
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// Its `node_id`.
    pub id: String,
    /// Milliseconds since its last heartbeat.
    pub last_seen_ms_ago: u64,
    /// Whether it is this replica.
    pub this: bool,
}

/// A fleet-open breaker in [`ClusterView`].
#[derive(Debug, Serialize)]
pub struct OpenView {
    /// The breaker's id, as in `/v1/breakers`.
    pub id: String,
    /// Its labels.
    pub breaker: FleetKey,
    /// When its open period ends (RFC 3339); after it, one replica probes.
    pub until: String,
    /// The replica whose trip came first.
    pub first: String,
    /// Why it tripped.
    pub reason: String,
    /// Whether this replica holds the probe round.
    pub probing_here: bool,
}

/// An operator's fleet-wide mode in [`ClusterView`].
#[derive(Debug, Serialize)]
pub struct ModeView {
    /// The breaker's id.
    pub id: String,
    /// Its labels.
    pub breaker: FleetKey,
    /// `force_open` or `disable`.
    pub action: &'static str,
}

fn rfc3339(ms: u64) -> String {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// The host's name and this process's id (`host-1234`).
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "seawall".into());
    format!("{host}-{}", std::process::id())
}
