//! A feature-flag service shaped like Databricks': `GET /flags/{host}` answers
//! `{"flags":[{"name":..,"value":..}],"ttl_seconds":..}` with the flags scripted for that host,
//! and counts the fetches of each host.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::upstream::{MockUpstream, Reply};

/// Flag values: the ones every host gets, and those that differ for some hosts.
#[derive(Default)]
struct Script {
    every_host: BTreeMap<String, String>,
    by_host: BTreeMap<String, BTreeMap<String, String>>,
}

/// A running flag service; it stops with the test's runtime.
#[derive(Clone)]
pub struct FlagServer {
    server: MockUpstream,
    ttl_seconds: u64,
    script: Arc<Mutex<Script>>,
}

impl FlagServer {
    /// A service with no flags yet, announcing `ttl_seconds` with every answer.
    pub async fn start(ttl_seconds: u64) -> Self {
        let server = MockUpstream::start(Reply::status(200)).await;
        let flags = FlagServer {
            server,
            ttl_seconds,
            script: Arc::default(),
        };
        flags.publish();
        flags
    }

    /// A service (TTL 900 s) where flag `name` is off (`"false"`) for `host` and on (`"true"`)
    /// for every other host.
    pub async fn off_for(name: &str, host: &str) -> Self {
        let flags = FlagServer::start(900).await;
        flags.set(name, "true");
        flags.set_for(host, name, "false");
        flags
    }

    /// `feature_flags.url` for the daemon: `http://127.0.0.1:PORT/flags/{host}`.
    pub fn url(&self) -> String {
        format!("{}/flags/{{host}}", self.server.url())
    }

    /// Sets flag `name` to `value` for every host.
    pub fn set(&self, name: &str, value: &str) {
        let mut script = self.script.lock().unwrap();
        script.every_host.insert(name.to_owned(), value.to_owned());
        drop(script);
        self.publish();
    }

    /// Sets flag `name` to `value` for `host` (`127.0.0.1:PORT`) only.
    pub fn set_for(&self, host: &str, name: &str, value: &str) {
        let mut script = self.script.lock().unwrap();
        let flags = script.by_host.entry(host.to_owned()).or_default();
        flags.insert(name.to_owned(), value.to_owned());
        drop(script);
        self.publish();
    }

    /// Fetches so far, by host.
    pub fn hits(&self) -> BTreeMap<String, usize> {
        let mut hits = BTreeMap::new();
        for request in self.server.received() {
            let host = request.path().trim_start_matches("/flags/").to_owned();
            *hits.entry(host).or_default() += 1;
        }
        hits
    }

    /// Turns the script into the mock's default answer and one route per host.
    fn publish(&self) {
        let script = self.script.lock().unwrap();
        self.server.set_default(self.answer(&script.every_host));
        for (host, own) in &script.by_host {
            let mut flags = script.every_host.clone();
            flags.extend(own.clone());
            self.server
                .route(&format!("/flags/{host}"), self.answer(&flags));
        }
    }

    fn answer(&self, flags: &BTreeMap<String, String>) -> Reply {
        let flags: Vec<_> = flags
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        let body = json!({ "flags": flags, "ttl_seconds": self.ttl_seconds });
        Reply::status(200).json(&body.to_string())
    }
}
