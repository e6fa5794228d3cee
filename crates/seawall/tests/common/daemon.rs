//! The daemon in-process: `App` started from a YAML config on the test's runtime, read through
//! its admin API (JSON and `/metrics`), and stopped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use seawall::app::{App, AppError, RunningApp};
use seawall::health::Probes;
use serde_json::Value;
use tokio::net::TcpStream;

use super::client::{self, Answer};
use super::exposition::Exposition;
use super::wait::{settle, within};

/// A running daemon.
#[derive(Debug)]
pub struct Daemon {
    app: RunningApp,
}

impl Daemon {
    /// Starts the daemon of `yaml`, which names no secret.
    pub async fn start(yaml: &str) -> Self {
        Self::try_start(yaml, &[], None).await.unwrap()
    }

    /// Starts the daemon of `yaml`, its secrets read from `env` (`(variable, value)` pairs).
    pub async fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Self {
        Self::try_start(yaml, env, None).await.unwrap()
    }

    /// Starts the daemon of `yaml` with global health read through `probes`.
    pub async fn start_with_probes(yaml: &str, probes: Probes) -> Self {
        Self::try_start(yaml, &[], Some(probes)).await.unwrap()
    }

    /// Starts the daemon of `yaml`; a YAML or secret error panics, a start error is returned.
    pub async fn try_start(
        yaml: &str,
        env: &[(&str, &str)],
        probes: Option<Probes>,
    ) -> Result<Self, AppError> {
        let config = seawall::config::parse(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let env: BTreeMap<&str, &str> = env.iter().copied().collect();
        let secrets = config
            .resolve_secrets(|var| env.get(var).map(|v| v.to_string()))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let app = match probes {
            Some(probes) => App::start_with(config, secrets, probes).await?,
            None => App::start(config, secrets).await?,
        };
        Ok(Daemon { app })
    }

    /// Where the gateway listens.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.app.gateway_addr()
    }

    /// Where the admin API listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.app.admin_addr()
    }

    /// The running daemon itself.
    pub fn app(&self) -> &RunningApp {
        &self.app
    }

    /// The URL of `path` on the gateway.
    pub fn gateway(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway_addr())
    }

    /// The URL of `path` on the admin listener.
    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr())
    }

    /// `POST path` on the gateway with `json` as an `application/json` body.
    pub async fn post_json(&self, path: &str, json: &str) -> Answer {
        client::post(&self.gateway(path), "application/json", json).await
    }

    /// `GET path` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> Answer {
        client::get(&self.admin(path)).await
    }

    /// `GET path` on the admin listener, expected `200` with a JSON body.
    pub async fn admin_json(&self, path: &str) -> Value {
        let answer = self.admin_get(path).await;
        assert_eq!(answer.status, 200, "{path}: {:?}", answer.body);
        answer.json()
    }

    /// The `/metrics` exposition.
    pub async fn metrics(&self) -> Exposition {
        Exposition::new(self.admin_get("/metrics").await.text())
    }

    /// Waits (bounded) until the flag cache holds values for `hosts` hosts; returns
    /// `/v1/flags` as it was then.
    pub async fn flags_fetched(&self, hosts: usize) -> Value {
        let fetched = |flags: &Value| {
            let hosts = flags["cache"]["hosts"].as_array().unwrap().iter();
            hosts
                .filter(|h| !h["flags"].as_object().unwrap().is_empty())
                .count()
        };
        let flags = settle(|| self.admin_json("/v1/flags"), |f| fetched(f) == hosts).await;
        assert_eq!(fetched(&flags), hosts, "flags were not fetched: {flags}");
        flags
    }

    /// Starts a graceful shutdown (see [`Daemon::wait`]).
    pub fn shutdown(&self) {
        self.app.shutdown();
    }

    /// Resolves when the daemon has stopped.
    pub async fn wait(self) {
        self.app.wait().await;
    }

    /// Shuts down and waits (bounded) until the daemon has stopped.
    pub async fn stop(self) {
        self.shutdown();
        within("the daemon stops", self.wait()).await;
    }
}

/// Connects until `addr` refuses (a listener is dropped asynchronously after `shutdown()`);
/// panics if it still accepts after about two seconds.
pub async fn wait_until_refused(addr: SocketAddr) {
    for _ in 0..100 {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("{addr} still accepts connections");
}
