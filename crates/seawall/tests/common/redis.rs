//! A real `redis-server` on a free loopback port, for the cluster tests: started, killed
//! (SIGKILL) and started again on the same port, frozen (SIGSTOP) and thawed, stopped when
//! dropped.
//!
//! Needs `redis-server` (Debian's `redis-server` package; `.ci/run` installs it). Without it
//! the tests that need it are skipped with a message, except under CI (`CI` set), where they
//! fail.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::free_port;
use super::temp::temp_dir;

/// Where `redis-server` is, or `None` (with a message) when it is missing outside CI.
/// Panics when it is missing under CI.
pub fn redis_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is missing but CI is set: .ci/run must install it \
             (apt-get install -y redis-server) before `cargo test --workspace`"
        );
        eprintln!(
            "\n * SKIPPED: redis-server not found.\n * Install it to run the cluster tests: \
             apt-get install -y redis-server\n"
        );
    }
    found
}

/// A running `redis-server` (no persistence), killed when dropped.
pub struct Redis {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    /// Starts one on a free port; `None` when `redis-server` is missing (outside CI).
    pub fn start() -> Option<Redis> {
        let binary = redis_server()?;
        let mut redis = Redis {
            binary,
            port: free_port(),
            dir: temp_dir("redis"),
            child: None,
        };
        redis.restart();
        Some(redis)
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it with SIGKILL (no goodbye to its clients) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGSTOP: connections stay open but nothing is answered (a hung Redis).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen one go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Starts it (again) on the same port, empty, and waits until it answers `PING`.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pings() {
            assert!(
                Instant::now() < deadline,
                "redis-server never answered PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers `PING` with `+PONG`.
    pub fn pings(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok()
            && s.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
