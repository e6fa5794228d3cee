//! `seawall demo` as a newcomer runs it: the real binary, a short run, transitions with their
//! reasons and a summary on stdout.

use std::process::Command;

#[test]
fn demo_prints_transitions_with_reasons_and_a_summary() {
    let out = Command::new(env!("CARGO_BIN_EXE_seawall"))
        .args(["demo", "--duration", "4s"])
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}", out.status);
    // The overload phase (90 % errors at ~50 calls/s for over a second) trips the breaker.
    assert!(
        stdout.contains("breaker closed -> open (consecutive_failures")
            || stdout.contains("breaker closed -> open (failure_rate")
            || stdout.contains("breaker closed -> open (retry_after"),
        "{stdout}"
    );
    assert!(stdout.contains("dependency is now overloaded"), "{stdout}");
    for line in [
        "summary",
        "calls attempted",
        "rejected at once",
        "trips",
        "final state",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in\n{stdout}");
    }
}
