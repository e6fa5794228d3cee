//! The cluster's one task: keeps a session with Redis (reconnecting with backoff), tells the
//! fleet this replica's trips, recoveries and operator actions, applies the fleet's, and runs
//! the fleet's probe rounds. Requests never wait for it: it only ever changes breakers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use seawall_breaker::{CircuitBreaker, Mode, Reason, State};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::directory::Directory;
use super::message::{
    left_until, now_ms, now_us, AdminAction, Event, FleetKey, Message, ModeRecord, OpenRecord,
    VERSION,
};
use super::metrics::Families;
use super::store::{Keys, Loaded, Store, Vote};
use crate::breakers::breaker_id;
use crate::labels::BreakerLabels;

/// How often leases are checked and renewed.
const TICK: Duration = Duration::from_millis(100);
/// How often this replica says it is alive (and notices a dead connection).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A replica silent this long is left out of `/v1/cluster`; after [`FORGET`], out of Redis.
const SILENT: Duration = Duration::from_secs(10);
const FORGET: Duration = Duration::from_secs(3600);
/// Bounds of one connection attempt and of one command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnection backoff.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What this replica's breakers did, as the watcher queues it for the task.
#[derive(Debug)]
pub(crate) enum Local {
    /// A breaker opened on its own evidence (not a remote or manual change).
    Tripped {
        labels: BreakerLabels,
        reason: Reason,
        open_for: Duration,
    },
    /// A closed breaker's run of failures is now `streak` long (0: ended by a success).
    Streak { labels: BreakerLabels, streak: u32 },
    /// A breaker closed after its probes succeeded.
    Recovered { labels: BreakerLabels },
    /// An operator acted on a breaker here.
    Admin {
        labels: BreakerLabels,
        action: AdminAction,
    },
}

/// The transitions the fleet hears about: trips on evidence of the upstream and recoveries,
/// of a breaker that enforces (a `metrics_only` trial or a disabled breaker stays local).
pub(crate) fn local_event(
    labels: &BreakerLabels,
    t: &seawall_breaker::Transition,
) -> Option<Local> {
    if t.mode != Mode::Normal {
        return None;
    }
    match (t.from, t.to, t.reason) {
        (
            State::Closed | State::HalfOpen,
            State::Open,
            Reason::ConsecutiveFailures
            | Reason::FailureRate
            | Reason::SlowCallRate
            | Reason::RetryAfter
            | Reason::HalfOpenFailure
            | Reason::HalfOpenTimeout,
        ) => Some(Local::Tripped {
            labels: labels.clone(),
            reason: t.reason,
            open_for: t.open_for.unwrap_or_default(),
        }),
        (State::HalfOpen, State::Closed, Reason::ProbesSucceeded) => Some(Local::Recovered {
            labels: labels.clone(),
        }),
        _ => None,
    }
}

/// The fleet as this replica knows it; `/v1/cluster` and `/v1/breakers` read it.
#[derive(Debug, Default)]
pub(crate) struct FleetState {
    /// Whether a session with Redis is up.
    pub connected: bool,
    /// Breakers the fleet holds open, by id.
    pub open: HashMap<String, OpenRecord>,
    /// Operators' modes from other replicas (and this one), by id.
    pub modes: HashMap<String, ModeRecord>,
    /// Rounds this replica probes for the fleet, by id.
    pub probing: HashMap<String, Probing>,
    /// When to ask for a round's lease again, by id.
    next_try: HashMap<String, Instant>,
    /// Replicas and their last heartbeat (Unix ms).
    pub nodes: Vec<(String, u64)>,
}

/// A probe round this replica holds the lease of.
#[derive(Debug)]
pub(crate) struct Probing {
    since: Instant,
    renew_at: Instant,
}

/// Settings of the task.
pub(crate) struct Settings {
    pub node: String,
    pub quorum: u32,
    pub window: Duration,
    pub lease: Duration,
    pub keys: Keys,
}

/// The task's state.
pub(crate) struct Link {
    pub settings: Settings,
    pub client: redis::Client,
    pub directory: Directory,
    pub state: Arc<Mutex<FleetState>>,
    pub metrics: Arc<Families>,
    pub outbox: mpsc::Receiver<Local>,
    /// Set once the first session has loaded the fleet's state (start-up waits for it).
    pub loaded: watch::Sender<bool>,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("timed out")]
    Timeout(#[from] tokio::time::error::Elapsed),
    #[error("the subscription ended")]
    Unsubscribed,
}

impl Link {
    /// Runs until the task is aborted: sessions, and between them a backoff during which
    /// every breaker decides alone.
    pub(crate) async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut failures = 0u32;
        loop {
            let started = Instant::now();
            let error = self.session().await;
            let was_connected = self.lock().connected;
            self.disconnected();
            if was_connected {
                tracing::warn!(%error, "cluster: lost Redis; every breaker decides alone until it is back");
                failures = 0;
            } else if failures == 0 {
                tracing::warn!(%error, "cluster: cannot reach Redis; every breaker decides alone until it answers");
            }
            failures = failures.saturating_add(1);
            if started.elapsed() > BACKOFF_MAX {
                backoff = BACKOFF_MIN;
            }
            let pause = backoff.mul_f64(1.0 + fastrand::f64() * 0.2);
            // Transitions told meanwhile are dropped: a new session catches up from the
            // breakers themselves.
            let until = Instant::now() + pause;
            while let Ok(Some(_)) = tokio::time::timeout_at(until, self.outbox.recv()).await {}
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FleetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn breaker(&self, key: &FleetKey) -> Option<CircuitBreaker> {
        self.directory.find(&key.labels()?)
    }

    /// One connection's life: subscribe, load, catch up, then serve until an error.
    async fn session(&mut self) -> SessionError {
        match self.connected_session().await {
            Ok(never) => match never {},
            Err(error) => error,
        }
    }

    async fn connected_session(&mut self) -> Result<std::convert::Infallible, SessionError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut pubsub =
            tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub()).await??;
        // Subscribed before loading, so nothing published in between is missed.
        tokio::time::timeout(
            RESPONSE_TIMEOUT,
            pubsub.subscribe(self.settings.keys.channel()),
        )
        .await??;
        let mut messages = pubsub.into_on_message();
        let mut store = Store::new(conn, self.settings.keys.clone(), &self.settings.node);
        while self.outbox.try_recv().is_ok() {}
        store.heartbeat().await?;
        let loaded = store.load().await?;
        self.reconcile(loaded);
        self.lock().connected = true;
        self.metrics.connected.set(1);
        self.loaded.send_replace(true);
        tracing::info!(node = %self.settings.node, "cluster: connected to Redis; breaker state is shared");
        self.catch_up(&mut store).await?;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut beat = Instant::now() + HEARTBEAT;
        loop {
            tokio::select! {
                message = messages.next() => {
                    let message = message.ok_or(SessionError::Unsubscribed)?;
                    if let Ok(text) = message.get_payload::<String>() {
                        self.received(&text);
                    }
                }
                Some(local) = self.outbox.recv() => self.local(&mut store, local).await?,
                _ = tick.tick() => {
                    self.leases(&mut store).await?;
                    if Instant::now() >= beat {
                        beat = Instant::now() + HEARTBEAT;
                        self.heartbeat(&mut store).await?;
                    }
                }
            }
        }
    }

    fn disconnected(&mut self) {
        self.metrics.connected.set(0);
        let open: Vec<OpenRecord> = {
            let mut state = self.lock();
            state.connected = false;
            state.probing.clear();
            state.next_try.clear();
            state.open.drain().map(|(_, r)| r).collect()
        };
        // Nobody probes for the fleet now: each replica probes for itself.
        for record in open {
            if let Some(b) = self.breaker(&record.key) {
                b.hold_probes(false);
            }
        }
    }

    /// Applies what Redis holds: open breakers, operators' modes, replicas.
    fn reconcile(&mut self, loaded: Loaded) {
        for (id, record) in loaded.open {
            self.apply_open(&id, record);
        }
        let before: Vec<(String, ModeRecord)> = self.lock().modes.drain().collect();
        for (id, record) in &loaded.modes {
            if let Some(b) = self.breaker(&record.key) {
                let mode = mode_of(record.action);
                if b.mode() != mode {
                    b.set_mode_with(mode, Reason::Remote);
                }
            }
            self.lock().modes.insert(id.clone(), record.clone());
        }
        // Reset elsewhere while this replica was away.
        for (id, record) in before {
            if loaded.modes.iter().all(|(i, _)| *i != id) {
                if let Some(b) = self.breaker(&record.key) {
                    if b.mode() == mode_of(record.action) {
                        b.reset_with(Reason::Remote);
                    }
                }
            }
        }
        self.lock().nodes = loaded.nodes;
    }

    /// Tells the fleet of this replica's breakers that opened on their own evidence while it
    /// was away (or before it started).
    async fn catch_up(&mut self, store: &mut Store) -> Result<(), SessionError> {
        for (labels, b) in self.directory.all() {
            let snap = b.snapshot();
            let local_trip = matches!(
                snap.reason,
                Some(
                    Reason::ConsecutiveFailures
                        | Reason::FailureRate
                        | Reason::SlowCallRate
                        | Reason::RetryAfter
                        | Reason::HalfOpenFailure
                        | Reason::HalfOpenTimeout
                )
            );
            if snap.state == State::Open && snap.mode == Mode::Normal && local_trip {
                let open_for = snap.open_remaining.unwrap_or_default();
                let reason = snap.reason.unwrap_or(Reason::ConsecutiveFailures);
                self.tripped(store, &labels, reason, open_for).await?;
            }
        }
        Ok(())
    }

    /// A message from the channel.
    fn received(&mut self, text: &str) {
        let Ok(m) = serde_json::from_str::<Message>(text) else {
            tracing::debug!(message = text, "cluster: unreadable message ignored");
            return;
        };
        if m.v != VERSION || m.node == self.settings.node {
            return;
        }
        let Some(id) = m.key.id() else {
            return;
        };
        self.metrics.count("received", m.event.kind());
        match m.event {
            Event::Trip {
                until_ms,
                first,
                reason,
            } => {
                let delay = now_us().saturating_sub(m.sent_us);
                self.metrics.propagation.observe(delay as f64 / 1e6);
                let record = OpenRecord {
                    key: m.key,
                    until_ms,
                    first,
                    reason,
                };
                tracing::info!(from = %m.node, id, name = %record.key.name,
                    endpoint = %record.key.endpoint, first = %record.first,
                    open_for_ms = until_ms.saturating_sub(now_ms()), "cluster: fleet trip applied");
                self.apply_open(&id, record);
            }
            Event::Close => {
                tracing::info!(from = %m.node, id, name = %m.key.name,
                    endpoint = %m.key.endpoint, "cluster: fleet recovery applied");
                self.apply_close(&id, &m.key);
            }
            Event::Admin { action } => {
                tracing::info!(from = %m.node, id, name = %m.key.name,
                    endpoint = %m.key.endpoint, action = action.as_str(),
                    "cluster: operator action from another replica applied");
                self.apply_admin(&id, &m.key, action);
            }
        }
    }

    /// The fleet holds `id` open until `record.until_ms`: open here too, and leave the
    /// probing to the replica that takes the round's lease.
    fn apply_open(&mut self, id: &str, record: OpenRecord) {
        if let Some(b) = self.breaker(&record.key) {
            b.hold_probes(true);
            b.open_for(left_until(record.until_ms), Reason::Remote);
        }
        let due = Instant::now() + left_until(record.until_ms);
        let mut state = self.lock();
        state.probing.remove(id);
        state.next_try.insert(id.to_owned(), due);
        state.open.insert(id.to_owned(), record);
    }

    fn apply_close(&mut self, id: &str, key: &FleetKey) {
        {
            let mut state = self.lock();
            state.open.remove(id);
            state.probing.remove(id);
            state.next_try.remove(id);
        }
        if let Some(b) = self.breaker(key) {
            b.hold_probes(false);
            b.close_with(Reason::Remote);
        }
    }

    fn apply_admin(&mut self, id: &str, key: &FleetKey, action: AdminAction) {
        let b = self.breaker(key);
        match action {
            AdminAction::Reset => {
                {
                    let mut state = self.lock();
                    state.modes.remove(id);
                    state.open.remove(id);
                    state.probing.remove(id);
                    state.next_try.remove(id);
                }
                if let Some(b) = b {
                    b.hold_probes(false);
                    b.reset_with(Reason::Remote);
                }
            }
            AdminAction::ForceOpen | AdminAction::Disable => {
                if let Some(b) = b {
                    b.set_mode_with(mode_of(action), Reason::Remote);
                }
                let record = ModeRecord {
                    key: key.clone(),
                    action,
                };
                self.lock().modes.insert(id.to_owned(), record);
            }
        }
    }

    /// Something this replica's breakers or operator did.
    async fn local(&mut self, store: &mut Store, local: Local) -> Result<(), SessionError> {
        match local {
            Local::Tripped {
                labels,
                reason,
                open_for,
            } => self.tripped(store, &labels, reason, open_for).await,
            Local::Streak { labels, streak } => self.streak(store, &labels, streak).await,
            Local::Recovered { labels } => {
                let id = breaker_id(&labels);
                let key = FleetKey::of(&labels);
                let fleet_open = {
                    let state = self.lock();
                    state.open.contains_key(&id) || state.probing.contains_key(&id)
                };
                if fleet_open {
                    store.close(&id, &key).await?;
                    self.metrics.count("sent", "close");
                    tracing::info!(id, name = %key.name, endpoint = %key.endpoint,
                        "cluster: probes succeeded here; the fleet closes");
                    self.apply_close(&id, &key);
                } else {
                    store.withdraw_vote(&id).await?;
                }
                Ok(())
            }
            Local::Admin { labels, action } => {
                let id = breaker_id(&labels);
                let key = FleetKey::of(&labels);
                store.admin(&id, &key, action).await?;
                self.metrics.count("sent", "admin");
                // Applied here already; this keeps the fleet's view in step.
                self.apply_admin(&id, &key, action);
                Ok(())
            }
        }
    }

    /// A trip on this replica's own evidence: a failed fleet round if this replica probed
    /// it, else a vote toward the quorum (a `Retry-After` trip needs no quorum: the provider
    /// said it, for everyone).
    async fn tripped(
        &mut self,
        store: &mut Store,
        labels: &BreakerLabels,
        reason: Reason,
        open_for: Duration,
    ) -> Result<(), SessionError> {
        let id = breaker_id(labels);
        let key = FleetKey::of(labels);
        let until = now_ms().saturating_add(open_for.as_millis() as u64);
        let probed_here = self.lock().probing.remove(&id).is_some();
        if probed_here {
            let record = store.reopen(&id, &key, reason.as_str(), until).await?;
            self.metrics.count("sent", "trip");
            tracing::info!(id, name = %key.name, endpoint = %key.endpoint, %reason,
                "cluster: the fleet's probe round failed here; the fleet stays open");
            self.apply_open(&id, record);
            return Ok(());
        }
        let quorum = if reason == Reason::RetryAfter {
            1
        } else {
            self.settings.quorum
        };
        let vote = store
            .vote(
                &id,
                &key,
                reason.as_str(),
                until,
                quorum,
                self.settings.window,
            )
            .await?;
        if let Vote::Open { record, published } = vote {
            if published {
                self.metrics.count("sent", "trip");
                tracing::info!(id, name = %key.name, endpoint = %key.endpoint, %reason,
                    first = %record.first, "cluster: the fleet opens this breaker");
            }
            self.apply_open(&id, record);
        }
        Ok(())
    }

    /// A run of failures here: added to the fleet's, which opens every replica once the runs
    /// add up to the breaker's `failure_threshold`.
    async fn streak(
        &mut self,
        store: &mut Store,
        labels: &BreakerLabels,
        streak: u32,
    ) -> Result<(), SessionError> {
        let Some(b) = self.directory.find(labels) else {
            return Ok(());
        };
        if b.mode() != Mode::Normal {
            return Ok(());
        }
        let id = breaker_id(labels);
        let key = FleetKey::of(labels);
        let config = b.config();
        let until = now_ms().saturating_add(config.open_timeout().as_millis() as u64);
        let (threshold, quorum, window) = (
            config.failure_threshold(),
            self.settings.quorum,
            self.settings.window,
        );
        let vote = store
            .streak(&id, &key, streak, threshold, quorum, window, until)
            .await?;
        if let Vote::Open { record, published } = vote {
            if published {
                self.metrics.count("sent", "trip");
                tracing::info!(id, name = %key.name, endpoint = %key.endpoint,
                    "cluster: the fleet's failures in a row reached the threshold; the fleet opens");
            }
            self.apply_open(&id, record);
        }
        Ok(())
    }

    /// Renews, gives up or takes probe leases.
    async fn leases(&mut self, store: &mut Store) -> Result<(), SessionError> {
        let now = Instant::now();
        let lease = self.settings.lease;
        let renewals: Vec<(String, Instant, Option<OpenRecord>)> = {
            let state = self.lock();
            state
                .probing
                .iter()
                .filter(|(_, p)| now >= p.renew_at)
                .map(|(id, p)| (id.clone(), p.since, state.open.get(id).cloned()))
                .collect()
        };
        for (id, since, record) in renewals {
            let breaker = record.as_ref().and_then(|r| self.breaker(&r.key));
            // Holding the round without a single probe (no traffic here): let another try.
            let idle = breaker.as_ref().is_none_or(|b| {
                let snap = b.snapshot();
                snap.counts.half_open_in_flight == 0 && snap.counts.half_open_successes == 0
            });
            let keep = if idle && now.duration_since(since) >= lease {
                store.release_lease(&id).await?;
                false
            } else {
                store.renew_lease(&id, lease).await?
            };
            let mut state = self.lock();
            if keep {
                if let Some(p) = state.probing.get_mut(&id) {
                    p.renew_at = now + lease / 3;
                }
            } else {
                state.probing.remove(&id);
                state.next_try.insert(id.clone(), now + lease);
                drop(state);
                if let Some(b) = breaker {
                    b.hold_probes(true);
                }
            }
        }
        let due: Vec<(String, OpenRecord)> = {
            let state = self.lock();
            let now_ms = now_ms();
            state
                .open
                .iter()
                .filter(|(id, r)| {
                    r.until_ms <= now_ms
                        && !state.probing.contains_key(*id)
                        && state.next_try.get(*id).is_none_or(|t| *t <= now)
                })
                .map(|(id, r)| (id.clone(), r.clone()))
                .collect()
        };
        for (id, record) in due {
            if store.try_lease(&id, lease).await? {
                self.metrics.leases.inc();
                tracing::info!(id, name = %record.key.name, endpoint = %record.key.endpoint,
                    "cluster: this replica probes for the fleet");
                self.lock().probing.insert(
                    id.clone(),
                    Probing {
                        since: now,
                        renew_at: now + lease / 3,
                    },
                );
                if let Some(b) = self.breaker(&record.key) {
                    b.hold_probes(false);
                }
            } else {
                self.lock().next_try.insert(id, now + lease / 2);
            }
        }
        Ok(())
    }

    async fn heartbeat(&mut self, store: &mut Store) -> Result<(), SessionError> {
        store.heartbeat().await?;
        let nodes = store.load_nodes().await?;
        let now = now_ms();
        let forget: Vec<String> = nodes
            .iter()
            .filter(|(_, seen)| now.saturating_sub(*seen) > FORGET.as_millis() as u64)
            .map(|(n, _)| n.clone())
            .collect();
        store.forget_nodes(&forget).await?;
        let silent = SILENT.as_millis() as u64;
        self.lock().nodes = nodes
            .into_iter()
            .filter(|(_, seen)| now.saturating_sub(*seen) <= silent)
            .collect();
        Ok(())
    }
}

fn mode_of(action: AdminAction) -> Mode {
    match action {
        AdminAction::ForceOpen => Mode::ForcedOpen,
        AdminAction::Disable => Mode::Disabled,
        AdminAction::Reset => Mode::Normal,
    }
}
