//! Assembles the daemon from a [`Config`]: metrics, breakers and their ticker, the pipelines,
//! the global health monitor, the gateway (with `/ingest/{pipeline}` on its listener), the
//! admin API, and the two listeners (each over TLS when configured), with ordered graceful
//! shutdown: the gateway listener drains, then the pipelines drain their queues, then the
//! admin listener stops.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = seawall::config::load("seawall.yaml".as_ref())?;
//! let secrets = config.resolve_secrets_from_env()?;
//! let app = seawall::app::App::start(config, secrets).await?;
//! println!("gateway on {}, admin on {}", app.gateway_addr(), app.admin_addr());
//! tokio::signal::ctrl_c().await?;
//! app.shutdown();
//! app.wait().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use seawall_breaker::ConfigError as PolicyError;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod listener;
mod reload;

pub use listener::Moved;
pub use reload::{ReloadOutcome, Reloader};

use self::listener::Listener;
use crate::admin::{Admin, Readiness};
use crate::breakers::{tokio_clock, Breakers};
use crate::cluster::{Cluster, ClusterError, Directory};
use crate::config::{AuthMode, Config, Position, Secrets, TlsFileError};
use crate::flags::{self, Flags, FlagsError};
use crate::gateway::{Gateway, GatewayError};
use crate::health::{Health, MemoryProbe, Probes, ProcessMemory, QueueProbe};
use crate::history::History;
use crate::http1::outbound::{self, Pools};
use crate::message::Reply;
use crate::metrics::Metrics;
use crate::pipeline::{PipelineError, Pipelines};
use crate::router::Router;
use crate::server::tls::{self, TlsAcceptor, TlsError, TlsMetrics};
use crate::server::workers::Workers;
use crate::server::{self, Balance, Limits};
use crate::telemetry::Telemetry;

/// Breaker timer period when no provider is configured.
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Bounds of the admin listener: a handful of scrapers and operators, quick answers.
pub(crate) fn admin_limits() -> Limits {
    Limits::new(64, Duration::from_secs(2))
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Client auth is off on an address other hosts can reach.
    #[error(
        "refusing to serve {listen} without client auth: it is not a loopback address; set \
         `auth: {{ tokens_env: [VAR] }}`, or `auth: {{ mode: none }}` to serve it unauthenticated"
    )]
    AuthRequired {
        /// `server.listen`.
        listen: SocketAddr,
    },
    /// A provider's `circuit_breaker` settings do not make a valid policy.
    #[error("provider `{provider}`: {source}")]
    Breaker {
        /// The provider's name.
        provider: String,
        /// What is wrong with the policy.
        source: PolicyError,
    },
    /// The feature-flag cache could not be set up (e.g. a bad `feature_flags.url`).
    #[error(transparent)]
    Flags(#[from] FlagsError),
    /// The gateway could not be built.
    #[error("cannot build the gateway: {0}")]
    Gateway(#[from] GatewayError),
    /// A pipeline could not be started (an output's destination or breaker settings).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The cluster could not be set up (a bad Redis URL).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A listener could not be bound (address in use, not local, no permission).
    #[error("cannot listen on {addr} ({field}{}): {source}", at(*position))]
    Bind {
        /// `server.listen` or `admin.listen`.
        field: &'static str,
        /// Its position in the configuration file, when written there.
        position: Option<Position>,
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A listener's TLS could not be set up (its certificate or key files).
    #[error("cannot serve TLS ({field}{}): {source}", at(*position))]
    Tls {
        /// The field at fault: `server.tls.cert_path`, `admin.tls.key_path`, …
        field: String,
        /// Its position in the configuration file, when written there.
        position: Option<Position>,
        /// Why (boxed: it is large, and rare).
        source: Box<TlsError>,
    },
}

fn at(position: Option<Position>) -> String {
    position.map(|p| format!(" at {p}")).unwrap_or_default()
}

impl AppError {
    /// Whether the configuration itself is at fault (the CLI exits 2 for those, 1 otherwise).
    pub fn is_config_error(&self) -> bool {
        match self {
            Self::Tls { source, .. } => matches!(**source, TlsError::Files(_)),
            Self::Pipeline(e) => e.is_config_error(),
            other => matches!(
                other,
                Self::AuthRequired { .. }
                    | Self::Breaker { .. }
                    | Self::Flags(_)
                    | Self::Cluster(_)
            ),
        }
    }
}

/// Entry point: [`App::start`].
#[derive(Debug)]
pub struct App;

impl App {
    /// Builds every component from `config`, binds both listeners and starts serving.
    ///
    /// Returns once the listeners are bound (`/readyz` answers 200 from then on). Call it
    /// inside a tokio runtime.
    pub async fn start(config: Config, secrets: Secrets) -> Result<RunningApp, AppError> {
        Self::start_with(config, secrets, Probes::default()).await
    }

    /// [`App::start`], with global health read through `probes`: a probe left out reads the
    /// process (resident memory from `/proc`) or the pipelines' fullest output queue.
    pub async fn start_with(
        config: Config,
        secrets: Secrets,
        probes: Probes,
    ) -> Result<RunningApp, AppError> {
        // The validator already refuses this; keep the promise even for hand-built configs.
        if config.auth.is_none() && !config.server.listen.ip().is_loopback() {
            return Err(AppError::AuthRequired {
                listen: config.server.listen,
            });
        }
        let metrics = Arc::new(Metrics::new());
        let breakers = Breakers::new(&config.providers, tokio_clock(), metrics.clone())
            .map_err(|(provider, source)| AppError::Breaker { provider, source })?;
        let breakers = Arc::new(breakers);
        // One set of upstream connection pools for every outbound call of the daemon.
        let pools = Arc::new(Pools::new().map_err(GatewayError::from)?);
        let mut gateway = Gateway::with_pools(
            &config,
            &secrets,
            breakers.clone(),
            metrics.clone(),
            pools.clone(),
        )?;
        let flags = match &config.feature_flags {
            Some(f) => Some(Arc::new(Flags::new(
                f,
                &config.providers,
                &config.pipelines,
                metrics.clone(),
                pools.clone(),
            )?)),
            None => None,
        };
        let [gateway_tls, admin_tls] = tls_acceptors(&config, &metrics)?;
        let (gateway_sockets, gateway_addr) = bind_workers(&config)?;
        let (admin_sockets, admin_addr) = bind_admin(&config)?;
        tls::warn_if_plaintext("gateway", "server", gateway_addr, gateway_tls.is_some());
        tls::warn_if_plaintext("admin", "admin", admin_addr, admin_tls.is_some());
        // Last of the fallible steps: it spawns the output workers.
        let pipelines = if config.pipelines.is_empty() {
            None
        } else {
            Some(Pipelines::start_with_pools(
                &config.pipelines,
                tokio_clock(),
                metrics.clone(),
                pools.clone(),
            )?)
        };

        // Before serving: a replica started mid-outage rejects at once.
        let cluster = match (&config.cluster, &secrets.redis_url) {
            (Some(c), Some(url)) => {
                let directory = Directory::new(breakers.clone(), pipelines.clone());
                let cluster = Arc::new(Cluster::start(c, url, directory, &metrics)?);
                if !cluster.wait_loaded(c.connect_timeout).await {
                    tracing::warn!(timeout = ?c.connect_timeout,
                        "cluster: Redis did not answer in time; serving, deciding alone until it does");
                }
                Some(cluster)
            }
            _ => None,
        };

        let health = config
            .global_health
            .enabled
            .then(|| Health::new(&config.global_health, &metrics));
        if let Some(health) = &health {
            gateway = gateway.with_health(health.clone());
            if let Some(pipelines) = &pipelines {
                pipelines.set_health(health.clone());
            }
        }
        if let (Some(t), Some(p)) = (&config.telemetry, &pipelines) {
            let sink = p.clone();
            let telemetry = Telemetry::new(sink, &t.pipeline, flags.clone(), &metrics);
            gateway = gateway.with_telemetry(Arc::new(telemetry));
        }
        let sweeper = gateway.clone();
        let gateway_for_reload = gateway.clone();
        let breakers_for_reload = breakers.clone();
        let flags_for_reload = flags.clone();
        let router = Arc::new(Router {
            gateway,
            pipelines: pipelines.clone(),
            health: health.clone(),
        });
        let readiness = Arc::new(Readiness::default());
        let mut admin = Admin::new(
            breakers.clone(),
            metrics.clone(),
            secrets.admin_token.clone(),
            readiness.clone(),
        );
        if let Some(flags) = &flags {
            admin = admin.with_flags(flags.clone());
        }
        if let Some(pipelines) = &pipelines {
            admin = admin.with_pipelines(pipelines.clone());
        }
        if let Some(cluster) = &cluster {
            admin = admin.with_cluster(cluster.clone());
        }
        let history = Arc::new(History::new(&config.admin.history));
        admin = admin.with_history(history.clone());
        let admin = Arc::new(admin);

        let gateway_listener = Listener::start(
            "gateway",
            reload::gateway_listen(&config),
            gateway_sockets,
            spawn_gateway(router, metrics.clone(), gateway_tls.clone()),
        )
        .map_err(bind_error(&config, "server.listen", config.server.listen))?;
        // The admin listener outlives the gateway's drain, so `/readyz` reports it and
        // `/metrics` can still be scraped.
        let admin_listener = Listener::start(
            "admin",
            reload::admin_listen(&config),
            admin_sockets,
            spawn_admin(admin.clone(), admin_tls.clone()),
        )
        .map_err(bind_error(&config, "admin.listen", config.admin.listen))?;
        let (gateway_listener, admin_listener) =
            (Arc::new(gateway_listener), Arc::new(admin_listener));
        let (stop, _) = broadcast::channel::<()>(1);
        let flag_watch = flags.map(|f| {
            let every = check_interval(&config);
            tokio::spawn(flags::watch(f, breakers.clone(), pipelines.clone(), every))
        });
        let monitor = health.map(|h| tokio::spawn(h.monitor(health_probes(probes, &pipelines))));
        let sampler = tokio::spawn(history.run(breakers.clone(), pipelines.clone()));
        let ticker = tokio::spawn(tick(
            breakers,
            pipelines.clone(),
            sweeper,
            check_interval(&config),
        ));
        let grace = config.server.shutdown_grace;
        let stopping = pipelines.clone();
        let pipelines_for_reload = pipelines.clone();
        let mut shutdown_started = stop.subscribe();
        let (gateway_done, admin_done) = (gateway_listener.clone(), admin_listener.clone());
        let done = tokio::spawn(async move {
            // `server.shutdown_grace` bounds the whole drain: the gateway's requests first,
            // then whatever is left of it for the outputs' queues.
            let _ = shutdown_started.recv().await;
            let started = Instant::now();
            gateway_done.stop();
            gateway_done.wait().await;
            // No new events can arrive now: let the outputs drain what is queued.
            if let Some(pipelines) = &pipelines {
                pipelines
                    .shutdown(grace.saturating_sub(started.elapsed()))
                    .await;
            }
            // Breakers tick while requests and queues drain; after that nothing reads them.
            ticker.abort();
            drop(cluster);
            sampler.abort();
            for task in [flag_watch, monitor].into_iter().flatten() {
                task.abort();
            }
            admin_done.stop();
            admin_done.wait().await;
            tracing::info!("seawall stopped");
        });
        let reloader = Arc::new(Reloader::new(
            config.clone(),
            secrets.clone(),
            reload::Parts {
                breakers: breakers_for_reload,
                gateway: gateway_for_reload,
                flags: flags_for_reload,
                pipelines: pipelines_for_reload,
                admin_token: admin.token_cell(),
                gateway_listener,
                admin_listener,
                tls: [gateway_tls.clone(), admin_tls.clone()],
            },
            &metrics,
        ));
        let weak: std::sync::Weak<dyn crate::admin::Reload> = Arc::downgrade(&reloader) as _;
        admin.set_reloader(weak);

        readiness.set_ready();
        let providers: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
        let pipelines: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
        let auth = match &config.auth {
            None => "off",
            Some(a) if a.mode == AuthMode::None => "none",
            Some(_) => "tokens",
        };
        tracing::info!(gateway = %gateway_addr, gateway_tls = gateway_tls.is_some(),
            admin = %admin_addr, admin_tls = admin_tls.is_some(), ?providers, ?pipelines, auth,
            global_health = config.global_health.enabled,
            cluster = config.cluster.is_some(),
            telemetry = config.telemetry.as_ref().map(|t| t.pipeline.as_str()),
            admin_actions = secrets.admin_token.is_some(), "seawall started");
        Ok(RunningApp {
            tls: [gateway_tls, admin_tls].into_iter().flatten().collect(),
            pipelines: stopping,
            stop,
            readiness,
            reloader,
            done,
        })
    }
}

/// `probes`, with the process's memory and the pipelines' queue fill where none is given.
fn health_probes(probes: Probes, pipelines: &Option<Arc<Pipelines>>) -> Probes {
    let read = probes
        .memory
        .unwrap_or_else(|| Arc::new(ProcessMemory) as Arc<dyn MemoryProbe>);
    // Each reading also tells the pipelines' memory budget what the process holds outside it.
    let memory = match pipelines {
        Some(p) => {
            let budget = p.memory().clone();
            let observed = move || {
                let bytes = read.resident_bytes();
                if let Some(bytes) = bytes {
                    budget.observe_process(bytes);
                }
                bytes
            };
            Arc::new(observed) as Arc<dyn MemoryProbe>
        }
        None => read,
    };
    let queue = probes.queue.or_else(|| {
        pipelines.clone().map(|p| {
            let fill = move || Some(p.queue_fill());
            Arc::new(fill) as Arc<dyn QueueProbe>
        })
    });
    Probes {
        memory: Some(memory),
        queue,
    }
}

/// A started daemon: its bound addresses and its shutdown controls.
#[derive(Debug)]
pub struct RunningApp {
    /// The listeners' TLS (none, one or both), for [`RunningApp::reload_certificates`].
    tls: Vec<Arc<TlsAcceptor>>,
    /// Told to stop accepting events at the first shutdown signal.
    pipelines: Option<Arc<Pipelines>>,
    /// Sending stops the gateway listener (the rest follows once it has drained).
    stop: broadcast::Sender<()>,
    /// Set to draining on shutdown, for `/readyz`.
    readiness: Arc<Readiness>,
    /// Reloads the configuration (`SIGHUP`, `POST /v1/reload`).
    reloader: Arc<Reloader>,
    /// Completes when both servers have stopped.
    done: JoinHandle<()>,
}

impl RunningApp {
    /// The gateway's bound address (after a reload that moved it, the new one).
    pub fn gateway_addr(&self) -> SocketAddr {
        self.reloader.parts.gateway_listener.local_addr()
    }

    /// The admin listener's bound address (after a reload that moved it, the new one).
    pub fn admin_addr(&self) -> SocketAddr {
        self.reloader.parts.admin_listener.local_addr()
    }

    /// Reads every TLS listener's certificate and key files again; each listener serves its
    /// new certificate from its next handshake on. A listener whose files cannot be read
    /// keeps serving its previous certificate; the first such error is returned (each is
    /// logged). Blocking file I/O.
    pub fn reload_certificates(&self) -> Result<(), TlsFileError> {
        let mut first_error = None;
        for acceptor in &self.tls {
            if let Err(error) = acceptor.reload() {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Reads the configuration file again and applies it (see [`Reloader`]); without a file
    /// (a configuration built in code) there is nothing to reload.
    pub async fn reload(&self) -> ReloadOutcome {
        self.reloader.reload().await
    }

    /// Starts a graceful shutdown: `/readyz` turns 503, ingest answers `503 shutting_down`
    /// from now on (in-flight and kept-alive requests included), the gateway stops accepting
    /// and lets in-flight requests finish within `server.shutdown_grace`, the outputs deliver
    /// what they hold within what is left of it and log their final accounting, then the
    /// admin listener stops. Idempotent; returns at once (see [`RunningApp::wait`]).
    pub fn shutdown(&self) {
        if !self.readiness.is_draining() {
            tracing::info!("shutdown requested");
        }
        self.readiness.set_draining();
        if let Some(pipelines) = &self.pipelines {
            pipelines.stop_accepting();
        }
        let _ = self.stop.send(());
    }

    /// Resolves when both servers have stopped.
    pub async fn wait(self) {
        if let Err(error) = self.done.await {
            tracing::error!(%error, "shutdown task failed");
        }
    }
}

/// The admin listener's socket and its address (port 0 resolved).
fn bind_admin(config: &Config) -> Result<(Vec<std::net::TcpListener>, SocketAddr), AppError> {
    let error = bind_error(config, "admin.listen", config.admin.listen);
    let sockets = server::workers::bind(config.admin.listen, 1).map_err(&error)?;
    let local = sockets[0].local_addr().map_err(&error)?;
    Ok((sockets, local))
}

/// Starts a generation of the gateway listener: on this runtime's shared threads with
/// `workers: 0`, else on that many threads of their own.
fn spawn_gateway(
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    tls: Option<Arc<TlsAcceptor>>,
) -> listener::Spawn {
    Box::new(move |sockets, listen, stop| {
        let router = router.clone();
        // No wrapping `async` block: the request future is `Router::handle`'s own.
        let handler = move |req, remote| router.clone().handle(req, remote);
        if listen.workers == 0 {
            let stop = stop.subscribe();
            let (tls, limits) = (tls.clone(), listen.limits);
            let socket = sockets.into_iter().next();
            tokio::spawn(async move {
                match socket.map(TcpListener::from_std) {
                    Some(Ok(listener)) => {
                        server::serve(listener, tls, handler, recv(stop), limits).await;
                    }
                    Some(Err(error)) => tracing::error!(%error, "cannot serve the gateway socket"),
                    None => tracing::error!("no gateway socket to serve"),
                }
            })
        } else {
            let stop = stop.clone();
            let balance = Balance::new(metrics.gateway_worker_connections(listen.workers));
            let workers = Workers {
                shutdown: move || recv(stop.subscribe()),
                // Each thread keeps and reuses its own upstream connections.
                on_thread_start: outbound::use_pool_stripe,
                limits: listen.limits,
                tls: tls.clone(),
                balance,
            };
            tokio::spawn(server::workers::serve(sockets, handler, workers))
        }
    })
}

/// Starts a generation of the admin listener.
fn spawn_admin(admin: Arc<Admin>, tls: Option<Arc<TlsAcceptor>>) -> listener::Spawn {
    Box::new(move |sockets, listen, stop| {
        let admin = admin.clone();
        let stop = stop.subscribe();
        let (tls, limits) = (tls.clone(), listen.limits);
        let socket = sockets.into_iter().next();
        tokio::spawn(async move {
            let handler = move |req, remote| {
                let admin = admin.clone();
                async move { Reply::from(admin.serve(req, remote).await) }
            };
            match socket.map(TcpListener::from_std) {
                Some(Ok(listener)) => {
                    server::serve(listener, tls, handler, recv(stop), limits).await
                }
                Some(Err(error)) => tracing::error!(%error, "cannot serve the admin socket"),
                None => tracing::error!("no admin socket to serve"),
            }
        })
    })
}

/// The gateway's listening sockets, one per worker (`server.workers`; one when it is 0),
/// and their address.
fn bind_workers(config: &Config) -> Result<(Vec<std::net::TcpListener>, SocketAddr), AppError> {
    let error = bind_error(config, "server.listen", config.server.listen);
    let listeners = server::workers::bind(config.server.listen, config.server.workers);
    let listeners = listeners.map_err(&error)?;
    let local = listeners[0].local_addr().map_err(&error)?;
    Ok((listeners, local))
}

/// The TLS of the gateway and of the admin listener, each when configured, with their series.
fn tls_acceptors(
    config: &Config,
    metrics: &Metrics,
) -> Result<[Option<Arc<TlsAcceptor>>; 2], AppError> {
    let listeners = [
        ("gateway", "server.tls", config.server.tls.as_ref()),
        ("admin", "admin.tls", config.admin.tls.as_ref()),
    ];
    let serving: Vec<&'static str> = listeners
        .iter()
        .filter(|(_, _, tls)| tls.is_some())
        .map(|(name, _, _)| *name)
        .collect();
    let mut series = metrics.tls_listeners(&serving).into_iter();
    let mut acceptors = [None, None];
    for ((name, section, settings), acceptor) in listeners.into_iter().zip(&mut acceptors) {
        let Some(settings) = settings else { continue };
        let (handshake_failures, certificate_expiry) = series.next().unwrap_or_default();
        let metrics = TlsMetrics {
            handshake_failures,
            certificate_expiry,
        };
        let tls = TlsAcceptor::new(name, settings, metrics).map_err(|source| {
            let field = match &source {
                TlsError::Files(e) => format!("{section}.{}", e.field().key()),
                TlsError::Setup(_) => section.to_owned(),
            };
            AppError::Tls {
                position: config.position_of(&field),
                field,
                source: Box::new(source),
            }
        })?;
        *acceptor = Some(Arc::new(tls));
    }
    Ok(acceptors)
}

/// Turns an error binding `field`'s address into the configuration error that names it.
fn bind_error<'c>(
    config: &'c Config,
    field: &'static str,
    addr: SocketAddr,
) -> impl Fn(std::io::Error) -> AppError + 'c {
    move |source| AppError::Bind {
        field,
        position: config.position_of(field),
        addr,
        source,
    }
}

/// Resolves on the first message or when the sender is gone.
async fn recv(mut rx: broadcast::Receiver<()>) {
    let _ = rx.recv().await;
}

/// The shortest `circuit_breaker.check_interval` among providers and outputs.
fn check_interval(config: &Config) -> Duration {
    let outputs = config
        .pipelines
        .iter()
        .flat_map(|p| &p.outputs)
        .map(|o| o.resilience.circuit_breaker.check_interval);
    config
        .providers
        .iter()
        .map(|p| p.circuit_breaker.check_interval)
        .chain(outputs)
        .min()
        .unwrap_or(DEFAULT_CHECK_INTERVAL)
}

/// Drives timed transitions (open → half-open, half-open timeouts) and idle eviction without
/// traffic, for provider and output breakers, so state gauges and logs stay current.
async fn tick(
    breakers: Arc<Breakers>,
    pipelines: Option<Arc<Pipelines>>,
    gateway: Gateway,
    every: Duration,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        breakers.tick();
        gateway.sweep_idle_connections();
        if let Some(pipelines) = &pipelines {
            pipelines.tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn check_interval_includes_outputs() {
        let config = parse(
            "providers:
  - { name: a, kind: generic, base_url: 'http://127.0.0.1:1', circuit_breaker: { check_interval: 3s } }
pipelines:
  - name: p
    outputs: [{ name: o, type: blackhole, resilience: { circuit_breaker: { check_interval: 2s } } }]
",
        )
        .unwrap();
        assert_eq!(check_interval(&config), Duration::from_secs(2));
    }

    #[test]
    fn check_interval_is_the_smallest_among_providers() {
        let config = parse(
            "providers:
  - { name: a, kind: generic, base_url: 'http://127.0.0.1:1', circuit_breaker: { check_interval: 3s } }
  - { name: b, kind: generic, base_url: 'http://127.0.0.1:2', circuit_breaker: { check_interval: 250ms } }
",
        )
        .unwrap();
        assert_eq!(check_interval(&config), Duration::from_millis(250));
        assert_eq!(
            check_interval(&parse("server: {}").unwrap()),
            DEFAULT_CHECK_INTERVAL
        );
    }

    #[tokio::test]
    async fn refuses_non_loopback_listen_without_auth() {
        let mut config = parse("server: { listen: 127.0.0.1:0 }").unwrap();
        config.server.listen = "0.0.0.0:0".parse().unwrap();
        let err = App::start(config, Secrets::default()).await.unwrap_err();
        assert!(matches!(err, AppError::AuthRequired { .. }), "{err}");
        assert!(err.is_config_error());
        assert!(err.to_string().contains("auth: { mode: none }"), "{err}");
    }
}
