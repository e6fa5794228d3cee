//! The end-of-run summary: traffic and what the breakers saved, trips per breaker with their
//! reasons, the pipeline's accounting per output (`accepted = delivered + sampled_out +
//! dropped + pending`, checked), and the flag fetches.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::traffic::{Route, RouteTally, Tally};
use super::upstreams::UpstreamStats;
use super::view::{flags_line, label, Observer};

/// Everything the summary reports besides the admin API's last read.
pub(super) struct Facts<'a> {
    /// The clients' outcomes.
    pub tally: &'a Tally,
    /// The simulated Anthropic upstream's counters.
    pub anthropic: &'a UpstreamStats,
    /// The simulated OpenAI upstream's counters.
    pub openai: &'a UpstreamStats,
    /// Events the collector stored.
    pub collector_events: u64,
    /// Requests the flag server answered.
    pub flag_requests: u64,
    /// Lines in the file output, and its path.
    pub file_lines: (usize, String),
    /// Whether the run was cut short by Ctrl-C.
    pub interrupted: bool,
}

/// The summary as text.
pub(super) fn render(observer: &Observer, facts: &Facts<'_>) -> String {
    let mut s = String::new();
    let t = facts.tally;
    let sent = t.total(|r| &r.sent);
    let rejected = t.total(|r| &r.rejected);
    let _ = writeln!(
        s,
        "\n=== summary{} ===",
        if facts.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "requests sent            {sent}");
    let _ = writeln!(
        s,
        "answered by upstream     {}  ({} ok, {} upstream errors passed through)",
        t.total(|r| &r.ok) + t.total(|r| &r.upstream_error),
        t.total(|r| &r.ok),
        t.total(|r| &r.upstream_error),
    );
    let _ = writeln!(
        s,
        "rejected by breakers     {rejected}  ({:.0}% of requests; {rejected} upstream calls saved while it struggled)",
        100.0 * rejected as f64 / sent.max(1) as f64
    );
    let other = t.total(|r| &r.other);
    if other > 0 {
        let _ = writeln!(s, "other gateway answers    {other}  (shed or timed out)");
    }
    for (route, stats, name) in [
        (Route::Anthropic, facts.anthropic, "anthropic"),
        (Route::Openai, facts.openai, "openai"),
    ] {
        let _ = writeln!(s, "  {}", route_line(name, t.route(route), stats));
    }

    let _ = writeln!(s, "\nbreaker trips");
    let mut any = false;
    for b in &observer.breakers {
        let trips = b["counts"]["trips"].as_u64().unwrap_or(0);
        if trips == 0 {
            continue;
        }
        any = true;
        let name = label(b);
        let reasons = observer
            .trip_reasons
            .get(&name)
            .map(|r| {
                r.iter()
                    .map(|(reason, n)| format!("{reason} x{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "  {name:<40} {trips} trips ({reasons}), {} rejects, now {}",
            b["counts"]["rejected"],
            b["state"].as_str().unwrap_or("?")
        );
    }
    if !any {
        let _ = writeln!(
            s,
            "  none (the run may have been too short to reach the storm)"
        );
    }

    let _ = writeln!(
        s,
        "\npipeline accounting (accepted = delivered + sampled_out + dropped + pending)"
    );
    for p in &observer.pipelines {
        let _ = writeln!(
            s,
            "  pipeline {}: {} events accepted",
            p["name"].as_str().unwrap_or("?"),
            p["accepted"]
        );
        for o in p["outputs"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "  {}", accounting_line(o));
        }
    }
    let _ = writeln!(
        s,
        "  the collector stored {} events; the file output holds {} lines ({}, removed on exit)",
        facts.collector_events, facts.file_lines.0, facts.file_lines.1
    );

    let _ = writeln!(
        s,
        "\nflags: {} requests to the flag server; {}",
        facts.flag_requests,
        flags_line(&observer.flags)
    );
    s
}

/// `anthropic: 120 sent, 80 reached the upstream (30 overloaded), 40 rejected`.
fn route_line(name: &str, tally: &RouteTally, stats: &UpstreamStats) -> String {
    format!(
        "{name:<10} {} sent, {} reached the upstream ({} got an overload error), {} rejected by the breaker",
        tally.sent.load(Ordering::Relaxed),
        stats.received.load(Ordering::Relaxed),
        stats.overloaded.load(Ordering::Relaxed),
        tally.rejected.load(Ordering::Relaxed),
    )
}

/// `collector (http)  accepted 10 = delivered 8 + sampled_out 1 + dropped 1 + pending 0  [adds up]`.
fn accounting_line(o: &Value) -> String {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let (accepted, delivered, sampled, dropped, pending) = (
        n(&o["accepted"]),
        n(&o["delivered"]),
        n(&o["sampled_out"]),
        n(&o["dropped"]["total"]),
        n(&o["pending"]),
    );
    let check = if accepted == delivered + sampled + dropped + pending {
        "adds up"
    } else {
        "MISMATCH"
    };
    format!(
        "{:<20} accepted {accepted} = delivered {delivered} + sampled_out {sampled} + dropped {dropped} + pending {pending}  [{check}; {} reroutes]",
        format!("{} ({})", o["name"].as_str().unwrap_or("?"), o["type"].as_str().unwrap_or("?")),
        o["reroutes"],
    )
}
