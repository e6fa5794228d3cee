//! One replica of a fleet: the real `seawall` binary on its own ports, with the cluster's
//! Redis URL in its environment, logging to a file; killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::client;
use super::ports::free_port;
use super::process::{seawall, wait_ready};
use super::temp::temp_path;

/// The admin token every replica is given.
pub const ADMIN_TOKEN: &str = "fleet-admin";

/// A running replica.
pub struct Replica {
    child: Child,
    pub gateway: SocketAddr,
    pub admin: SocketAddr,
    config: PathBuf,
    log: PathBuf,
}

impl Replica {
    /// Starts `seawall run` with `body` (YAML without `server`/`admin`, which are added with
    /// free ports) and `SEAWALL_REDIS_URL=redis_url`, and waits until it is ready.
    pub fn start(body: &str, redis_url: &str) -> Replica {
        let gateway: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let yaml = format!(
            "server: {{ listen: '{gateway}', workers: 0 }}\nadmin: {{ listen: '{admin}', token_env: ADMIN_TOKEN }}\n{body}"
        );
        let config = temp_path("replica.yaml");
        std::fs::write(&config, yaml).unwrap();
        let log = temp_path("replica.log");
        let mut child = seawall()
            .args(["run", "--log-format", "json", "-c"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env("SEAWALL_LOG", "info")
            .env("SEAWALL_REDIS_URL", redis_url)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_ready(&mut child, admin, Duration::from_secs(20));
        Replica {
            child,
            gateway,
            admin,
            config,
            log,
        }
    }

    /// `POST {path}` on the gateway with a small JSON body: the answer's status.
    pub async fn post(&self, path: &str) -> u16 {
        let req = client::request("POST", &format!("http://{}{path}", self.gateway))
            .header("content-type", "application/json")
            .body(client::body("{}"))
            .unwrap();
        client::send(req).await.status.as_u16()
    }

    /// `GET {path}` on the admin listener, as JSON.
    pub async fn admin_json(&self, path: &str) -> Value {
        let req = client::request("GET", &format!("http://{}{path}", self.admin))
            .body(client::body(""))
            .unwrap();
        serde_json::from_slice(&client::send(req).await.body).unwrap()
    }

    /// `POST /v1/breakers/{id}/{action}` with the admin token: the answer as JSON.
    pub async fn act(&self, id: &str, action: &str) -> Value {
        let url = format!("http://{}/v1/breakers/{id}/{action}", self.admin);
        let req = client::request("POST", &url)
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(client::body(""))
            .unwrap();
        let answer = client::send(req).await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        serde_json::from_slice(&answer.body).unwrap()
    }

    /// The breaker of provider `name` at `endpoint`, from `/v1/breakers`, if it exists.
    pub async fn breaker(&self, name: &str, endpoint: &str) -> Option<Value> {
        let all = self.admin_json("/v1/breakers").await;
        all.as_array()?
            .iter()
            .find(|b| b["name"] == name && b["endpoint"] == endpoint)
            .cloned()
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let req = client::request("GET", &format!("http://{}/metrics", self.admin))
            .body(client::body(""))
            .unwrap();
        String::from_utf8(client::send(req).await.body.to_vec()).unwrap()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.log);
    }
}
