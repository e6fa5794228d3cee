//! Reloading the configuration while serving (`SIGHUP`, `POST /v1/reload`): the file is read
//! and checked exactly as `seawall check` does; a file that fails keeps the daemon on the old
//! one and says why. Otherwise the new one applies with nothing lost:
//!
//! - providers that stayed keep their breakers (state and counters), with changed breaker
//!   settings applied to them; removed ones drain with their last requests;
//! - pipelines' outputs that stayed keep their queues, breakers and counts (breaker settings
//!   applied in place); changed and removed ones drain (see [`crate::pipeline`]'s reload);
//! - client tokens, `server.max_body`, the admin token and the flag handles follow the file;
//! - TLS certificates are read again (from the new paths, if they moved);
//! - a listener whose address, workers, limits or timeouts changed gets a new generation
//!   (the same socket, or a new one at a new address) while the old one drains.
//!
//! What cannot change while running (`global_health`, `telemetry`, `cluster`,
//! `admin.history`, `feature_flags` settings, TLS switched on or off, pipelines where none
//! ran, a disk-buffered pipeline beyond its breaker settings) is listed as needing a restart.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;

use super::listener::{Listen, Listener, Moved};
use crate::admin::Reload;
use crate::breakers::{Breakers, BreakersReload};
use crate::config::{self, Config, Secret, Secrets};
use crate::flags::Flags;
use crate::gateway::{Gateway, GatewayReload};
use crate::metrics::Metrics;
use crate::pipeline::{Pipelines, PipelinesReload};
use crate::server::tls::TlsAcceptor;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// What a reload did, as `POST /v1/reload` answers it and the log says it.
#[derive(Debug, Serialize)]
pub struct ReloadOutcome {
    /// `applied`; `invalid` (the file failed the checks: nothing changed); `failed` (a step
    /// failed while applying: the steps before it applied); `unavailable` (no file to read).
    pub result: &'static str,
    /// Why, unless applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What happened to each provider's breakers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<BreakersReload>,
    /// Which providers the gateway kept and which it prepared anew.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayReload>,
    /// What happened to each pipeline and its outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<PipelinesReload>,
    /// What happened to the gateway listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_listener: Option<Moved>,
    /// What happened to the admin listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listener: Option<Moved>,
    /// Changed settings that take effect only after a restart (the old values stay).
    pub restart_required: Vec<String>,
}

impl ReloadOutcome {
    fn refused(result: &'static str, error: String) -> Self {
        ReloadOutcome {
            result,
            error: Some(error),
            providers: None,
            gateway: None,
            pipelines: None,
            gateway_listener: None,
            admin_listener: None,
            restart_required: Vec::new(),
        }
    }

    /// Whether the new configuration applied.
    pub fn is_applied(&self) -> bool {
        self.result == "applied"
    }
}

/// The configuration the daemon runs, and what a reload changes.
pub struct Reloader {
    // (Debug by hand: it holds the listeners and the gateway.)
    path: Option<PathBuf>,
    /// One reload at a time, and the configuration now running.
    running: tokio::sync::Mutex<(Config, Secrets)>,
    pub(crate) parts: Parts,
    reloads: Family<ResultLabels, Counter>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The parts of a [`Reloader`] besides the configuration.
pub(crate) struct Parts {
    pub(crate) breakers: Arc<Breakers>,
    pub(crate) gateway: Gateway,
    pub(crate) flags: Option<Arc<Flags>>,
    pub(crate) pipelines: Option<Arc<Pipelines>>,
    pub(crate) admin_token: Arc<ArcSwapOption<Secret>>,
    pub(crate) gateway_listener: Arc<Listener>,
    pub(crate) admin_listener: Arc<Listener>,
    pub(crate) tls: [Option<Arc<TlsAcceptor>>; 2],
}

impl Reloader {
    /// A reloader for the daemon running `config` (read from `config.source`, if it was read
    /// from a file) with `secrets`, registering `seawall_config_reloads_total{result}`.
    pub(crate) fn new(config: Config, secrets: Secrets, parts: Parts, metrics: &Metrics) -> Self {
        let reloads = Family::<ResultLabels, Counter>::default();
        metrics.register(
            "config_reloads",
            "Configuration reloads, by result (applied, invalid, failed)",
            reloads.clone(),
        );
        for result in ["applied", "invalid", "failed"] {
            let _ = reloads.get_or_create(&ResultLabels { result });
        }
        Reloader {
            path: config.source.clone(),
            running: tokio::sync::Mutex::new((config, secrets)),
            parts,
            reloads,
        }
    }

    /// Reads the configuration file again and applies it (see the module's documentation).
    pub async fn reload(&self) -> ReloadOutcome {
        let mut running = self.running.lock().await;
        let Some(path) = self.path.clone() else {
            return ReloadOutcome::refused(
                "unavailable",
                "the daemon was not started from a configuration file".into(),
            );
        };
        // Exactly what `seawall check` does: parse and validate, secrets, files.
        let checked = tokio::task::spawn_blocking(move || {
            let config = config::load(&path)?;
            let secrets = config.resolve_secrets_from_env()?;
            config.check_files()?;
            Ok::<_, config::ConfigError>((config, secrets))
        })
        .await;
        let (config, secrets) = match checked {
            Ok(Ok(checked)) => checked,
            Ok(Err(error)) => {
                return self.finish(ReloadOutcome::refused("invalid", error.to_string()))
            }
            Err(error) => return self.finish(ReloadOutcome::refused("failed", error.to_string())),
        };
        let (old, _) = &*running;
        let mut outcome = ReloadOutcome {
            result: "applied",
            error: None,
            providers: None,
            gateway: None,
            pipelines: None,
            gateway_listener: None,
            admin_listener: None,
            restart_required: restart_required(old, &config),
        };
        if let Err(error) = self.apply(&config, &secrets, old, &mut outcome) {
            outcome.result = "failed";
            outcome.error = Some(error);
            return self.finish(outcome);
        }
        *running = (config, secrets);
        self.finish(outcome)
    }

    /// Applies `config` step by step, recording each step's result in `outcome`.
    fn apply(
        &self,
        config: &Config,
        secrets: &Secrets,
        old: &Config,
        outcome: &mut ReloadOutcome,
    ) -> Result<(), String> {
        let providers = self
            .parts
            .breakers
            .reload(&config.providers, &old.providers)
            .map_err(|(provider, e)| format!("provider `{provider}`: {e}"))?;
        outcome.providers = Some(providers);
        let gateway = self
            .parts
            .gateway
            .reload(config, secrets, &self.parts.breakers)
            .map_err(|e| format!("gateway: {e}"))?;
        outcome.gateway = Some(gateway);
        match &self.parts.pipelines {
            Some(pipelines) => {
                let report = pipelines
                    .reload(&config.pipelines)
                    .map_err(|e| e.to_string())?;
                for name in &report.restart_required {
                    outcome
                        .restart_required
                        .push(format!("pipelines `{name}` (disk buffer)"));
                }
                outcome.pipelines = Some(report);
            }
            None if !config.pipelines.is_empty() => outcome
                .restart_required
                .push("pipelines (none ran at start)".into()),
            None => {}
        }
        if let Some(flags) = &self.parts.flags {
            flags
                .rehandle(&config.providers, &config.pipelines)
                .map_err(|e| e.to_string())?;
        }
        self.parts
            .admin_token
            .store(secrets.admin_token.clone().map(Arc::new));
        let tls = [config.server.tls.as_ref(), config.admin.tls.as_ref()];
        for (acceptor, settings) in self.parts.tls.iter().zip(tls) {
            if let (Some(acceptor), Some(settings)) = (acceptor, settings) {
                acceptor.reload_from(settings).map_err(|e| e.to_string())?;
            }
        }
        let listen = gateway_listen(config);
        let moved = self
            .parts
            .gateway_listener
            .reload(listen)
            .map_err(|e| format!("server.listen {}: {e}", config.server.listen))?;
        outcome.gateway_listener = Some(moved);
        let moved = self
            .parts
            .admin_listener
            .reload(admin_listen(config))
            .map_err(|e| format!("admin.listen {}: {e}", config.admin.listen))?;
        outcome.admin_listener = Some(moved);
        Ok(())
    }

    /// Counts and logs `outcome`.
    fn finish(&self, outcome: ReloadOutcome) -> ReloadOutcome {
        if outcome.result != "unavailable" {
            self.reloads
                .get_or_create(&ResultLabels {
                    result: outcome.result,
                })
                .inc();
        }
        match outcome.result {
            "applied" => tracing::info!(providers = ?outcome.providers,
                pipelines = ?outcome.pipelines,
                gateway_listener = ?outcome.gateway_listener,
                admin_listener = ?outcome.admin_listener,
                restart_required = ?outcome.restart_required, "configuration reloaded"),
            _ => tracing::warn!(
                result = outcome.result,
                error = outcome.error.as_deref(),
                "configuration reload not applied; still running the previous configuration"
            ),
        }
        outcome
    }
}

impl Reload for Reloader {
    fn reload(&self) -> Pin<Box<dyn Future<Output = (bool, serde_json::Value)> + Send + '_>> {
        Box::pin(async move {
            let outcome = Reloader::reload(self).await;
            let body = serde_json::to_value(&outcome).unwrap_or_default();
            (outcome.is_applied(), body)
        })
    }
}

/// The gateway listener's settings in `config`.
pub(crate) fn gateway_listen(config: &Config) -> Listen {
    let t = &config.server.timeouts;
    Listen {
        addr: config.server.listen,
        workers: config.server.workers,
        limits: crate::server::Limits {
            max_connections: config.server.max_connections,
            shutdown_grace: config.server.shutdown_grace,
            timeouts: crate::server::Timeouts {
                keepalive_idle: t.keepalive_idle,
                request_head: t.request_head,
                request_body_idle: t.request_body_idle,
                response_write_idle: t.response_write_idle,
            },
            h2_max_streams: config.server.h2.max_concurrent_streams,
        },
    }
}

/// The admin listener's settings in `config`.
pub(crate) fn admin_listen(config: &Config) -> Listen {
    Listen {
        addr: config.admin.listen,
        workers: 0,
        limits: super::admin_limits(),
    }
}

/// The settings that changed from `old` to `new` but take effect only after a restart.
fn restart_required(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same {
            changed.push(name.to_owned());
        }
    };
    check("global_health", old.global_health == new.global_health);
    check("telemetry", old.telemetry == new.telemetry);
    check("cluster", old.cluster == new.cluster);
    check("admin.history", old.admin.history == new.admin.history);
    let flag_settings = |c: &Config| {
        c.feature_flags.clone().map(|f| {
            (
                f.url,
                f.ttl,
                f.min_ttl,
                f.max_ttl,
                f.fetch_timeout,
                f.idle_grace,
            )
        })
    };
    check("feature_flags", flag_settings(old) == flag_settings(new));
    check(
        "server.tls (switched on or off)",
        old.server.tls.is_some() == new.server.tls.is_some(),
    );
    check(
        "admin.tls (switched on or off)",
        old.admin.tls.is_some() == new.admin.tls.is_some(),
    );
    changed
}
