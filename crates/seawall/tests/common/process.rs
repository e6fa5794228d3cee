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

/// A child whose stderr (the daemon's log, one line per event) is read into memory as it
/// comes, so the pipe never fills and a test can wait for a line.
pub struct Logged {
    pub child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Reads the pipe to its end (the child's exit).
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Logged {
    /// Spawns `command` with its stderr piped into memory.
    pub fn spawn(mut command: Command) -> Logged {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let into = lines.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                into.lock().unwrap().push(line);
            }
        });
        Logged {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// Every line logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Whether a line logged so far contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Waits until a line containing `needle` is logged; panics (with the log) after `within`
    /// or when the child exits first.
    pub fn wait_for(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.logged(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                if !self.logged(needle) {
                    panic!(
                        "exited with {status} before logging {needle:?}:\n{}",
                        self.text()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "never logged {needle:?}:\n{}",
                self.text()
            );
            sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL, and waits for the exit and for every line it logged to be read.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }

    /// The whole log, for a failure message.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }
}

/// `seawall run` on `yaml` (written to a fresh temp file, returned for the test to remove),
/// logging JSON lines at `level` into memory.
pub fn run_logged(yaml: &str, level: &str) -> (Logged, PathBuf) {
    let config = temp_path("run.yaml");
    std::fs::write(&config, yaml).unwrap();
    let mut command = seawall();
    command
        .args(["run", "--log-format", "json", "-c"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("SEAWALL_LOG", level)
        .stdout(Stdio::null());
    (Logged::spawn(command), config)
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
