//! The real `seawall` binary as a child process: its command, and bounded waits for its
//! readiness and its exit.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::client;

/// A command running the `seawall` binary built for these tests.
pub fn seawall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seawall"))
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
