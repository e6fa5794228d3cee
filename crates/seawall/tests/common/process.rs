//! The real `seawall` binary as a child process: its command, and bounded waits for its
//! readiness and its exit.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::client;
use super::temp::temp_path;

/// A command running the `seawall` binary built for these tests.
pub fn seawall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seawall"))
}

/// `seawall run` on `yaml` (written to a fresh temp file, returned for the test to remove),
/// logging JSON lines at `level` to a piped stderr (read it with [`read_all`]; keep `level`
/// quiet when it is not read, so the pipe never fills).
pub fn run(yaml: &str, level: &str) -> (Child, PathBuf) {
    let config = temp_path("run.yaml");
    std::fs::write(&config, yaml).unwrap();
    let child = seawall()
        .args(["run", "--log-format", "json", "-c"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("SEAWALL_LOG", level)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, config)
}

/// Waits until `child` exits; kills it and panics after `within`.
pub fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("seawall did not exit within {within:?}");
        }
        sleep(Duration::from_millis(20));
    }
}

/// Polls `GET /readyz` on `admin` until it answers 200; panics if `child` exits first or
/// `within` passes.
pub fn wait_ready(child: &mut Child, admin: SocketAddr, within: Duration) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://{admin}/readyz");
    let deadline = Instant::now() + within;
    loop {
        let ready = client::request("GET", &url).body(client::body("")).unwrap();
        let answer = runtime.block_on(client::try_send(ready));
        if answer.is_ok_and(|a| a.status == 200) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("seawall exited early with {status}");
        }
        assert!(Instant::now() < deadline, "seawall never became ready");
        sleep(Duration::from_millis(50));
    }
}

/// Everything left in a child's piped stdout or stderr.
pub fn read_all(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    pipe.expect("a piped stream")
        .read_to_string(&mut text)
        .unwrap();
    text
}
