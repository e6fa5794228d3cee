//! `seawall demo` as a newcomer runs it: the real binary, a short run with stdout piped (so
//! the plain-lines mode), the dashboard URL, breaker transitions with their reasons and a
//! summary whose pipeline accounting adds up.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::process::{read_all, seawall, wait_exit};

/// Generous bound for a 6 s demo on a loaded CI machine.
const BOUND: Duration = Duration::from_secs(90);

/// The numbers in `line`, in order.
fn numbers(line: &str) -> Vec<u64> {
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn demo_shows_transitions_and_a_summary_that_adds_up() {
    let mut child = seawall()
        .args(["demo", "--duration", "6s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let status = wait_exit(&mut child, BOUND);
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    assert!(status.success(), "exit {status:?}\n{stdout}\n{stderr}");
    // Not a terminal: no escape sequences.
    assert!(!stdout.contains('\x1b'), "{stdout}");

    let dashboard = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("dashboard"))
        .unwrap_or_else(|| panic!("no dashboard line in\n{stdout}"));
    assert!(
        dashboard.contains("http://127.0.0.1:") && dashboard.trim_end().ends_with("/ui"),
        "{dashboard}"
    );

    // The storm trips a provider breaker, and the line says why.
    let trip = stdout.lines().find(|l| {
        l.contains("provider ")
            && l.contains(": closed -> open (")
            && !l.contains("closed -> open ()")
    });
    assert!(trip.is_some(), "no provider trip in\n{stdout}");

    assert!(stdout.contains("=== summary"), "{stdout}");
    assert!(stdout.contains("requests sent"), "{stdout}");
    assert!(stdout.contains("rejected by breakers"), "{stdout}");
    let accounting: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" accepted ") && l.contains(" = delivered "))
        .collect();
    assert_eq!(accounting.len(), 2, "one line per output in\n{stdout}");
    for line in accounting {
        let n = numbers(line.split('[').next().unwrap());
        assert_eq!(n.len(), 5, "{line}");
        assert!(n[0] > 0, "no events accepted: {line}");
        assert_eq!(n[0], n[1] + n[2] + n[3] + n[4], "does not add up: {line}");
    }
    assert!(stdout.contains("stopped cleanly"), "{stdout}");
}
