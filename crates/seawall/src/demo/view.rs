//! What the demo shows while it runs, read from the admin API exactly as an operator would
//! see it: `/v1/breakers`, `/v1/transitions`, `/v1/pipelines` and `/v1/flags`, polled a few
//! times a second.
//!
//! On a terminal the screen is redrawn about once a second (breaker states in colour, trips,
//! rejects, pipeline outcomes, flags, the latest transitions). Otherwise it prints plain
//! lines: one per breaker transition and a status line every 5 seconds.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

use super::net::{get_json, HttpClient};
use super::traffic::Tally;
use super::Timeline;

/// Transitions kept on the terminal screen.
const RECENT: usize = 8;

/// Seconds between two status lines in plain mode.
const STATUS_EVERY: f64 = 5.0;

/// The admin API as last read, plus what was learnt by diffing reads.
pub(super) struct Observer {
    client: HttpClient,
    admin: SocketAddr,
    timeline: Timeline,
    tally: Arc<Tally>,
    tty: bool,
    /// Last read of `/v1/breakers`.
    pub breakers: Vec<Value>,
    /// Last read of `/v1/pipelines`.
    pub pipelines: Vec<Value>,
    /// Last read of `/v1/flags`.
    pub flags: Value,
    /// Sequence number of the last transition reported from `/v1/transitions`.
    last_seq: u64,
    /// Trips observed per breaker label, by reason.
    pub trip_reasons: BTreeMap<String, BTreeMap<String, u64>>,
    recent: VecDeque<String>,
    last_status: f64,
    last_draw: f64,
    /// What the upstreams and the collector were last reported doing.
    phases: [&'static str; 2],
}

impl Observer {
    /// An observer of the admin API at `admin`.
    pub fn new(
        client: HttpClient,
        admin: SocketAddr,
        timeline: Timeline,
        tally: Arc<Tally>,
        tty: bool,
    ) -> Self {
        Observer {
            client,
            admin,
            timeline,
            tally,
            tty,
            breakers: Vec::new(),
            pipelines: Vec::new(),
            flags: Value::Null,
            last_seq: 0,
            trip_reasons: BTreeMap::new(),
            recent: VecDeque::new(),
            last_status: 0.0,
            last_draw: f64::NEG_INFINITY,
            phases: [""; 2],
        }
    }

    /// Reads the admin API once, reports transitions and phase changes, redraws when due.
    pub async fn poll(&mut self) {
        self.read().await;
        let now = self.timeline.elapsed_secs();
        for (i, phase) in self.timeline.describe().into_iter().enumerate() {
            if self.phases[i] != phase {
                self.phases[i] = phase;
                self.event(format!("{} {phase}", stamp(now)));
            }
        }
        self.report_transitions(now).await;
        if self.tty {
            if now - self.last_draw >= 0.9 {
                self.last_draw = now;
                self.draw(now);
            }
        } else if now - self.last_status >= STATUS_EVERY {
            self.last_status = now;
            println!("{}", self.status_line(now));
        }
    }

    /// Reads the three admin endpoints (a failed read keeps the previous value).
    pub async fn read(&mut self) {
        if let Some(Value::Array(b)) = get_json(&self.client, self.admin, "/v1/breakers").await {
            self.breakers = b;
        }
        if let Some(Value::Array(p)) = get_json(&self.client, self.admin, "/v1/pipelines").await {
            self.pipelines = p;
        }
        if let Some(f) = get_json(&self.client, self.admin, "/v1/flags").await {
            self.flags = f;
        }
    }

    /// Reports each transition recorded since the last poll (`/v1/transitions`, newest
    /// first, every breaker's listener feeds it), oldest first, and counts trips by reason.
    async fn report_transitions(&mut self, now: f64) {
        let Some(Value::Array(recent)) =
            get_json(&self.client, self.admin, "/v1/transitions").await
        else {
            return;
        };
        let mut lines = Vec::new();
        for t in recent.iter().rev() {
            let seq = t["seq"].as_u64().unwrap_or(0);
            if seq <= self.last_seq {
                continue;
            }
            self.last_seq = seq;
            let (from, to) = (
                t["from"].as_str().unwrap_or("?"),
                t["to"].as_str().unwrap_or("?"),
            );
            let reason = t["reason"].as_str().unwrap_or("-");
            let label = label(t);
            if to == "open" && from != "open" {
                *self
                    .trip_reasons
                    .entry(label.clone())
                    .or_default()
                    .entry(reason.to_owned())
                    .or_default() += 1;
            }
            lines.push(format!(
                "{} {label}: {} -> {} ({reason})",
                stamp(now),
                paint(from, self.tty),
                paint(to, self.tty)
            ));
        }
        for line in lines {
            self.event(line);
        }
    }

    /// Prints an event line (plain mode) or keeps it for the next redraw (terminal).
    fn event(&mut self, line: String) {
        if self.tty {
            self.recent.push_back(line);
            while self.recent.len() > RECENT {
                self.recent.pop_front();
            }
        } else {
            println!("{line}");
        }
    }

    /// One line: traffic, breaker states, pipeline outputs.
    fn status_line(&self, now: f64) -> String {
        let t = &self.tally;
        let mut line = format!(
            "{} status: sent {} | upstream ok {} err {} | rejected by breakers {} |",
            stamp(now),
            t.total(|r| &r.sent),
            t.total(|r| &r.ok),
            t.total(|r| &r.upstream_error),
            t.total(|r| &r.rejected),
        );
        for b in self.breakers.iter().filter(|b| b["kind"] == "provider") {
            let _ = write!(
                line,
                " {} {}",
                b["name"].as_str().unwrap_or("?"),
                state_of(b)
            );
        }
        for o in self.outputs() {
            let _ = write!(
                line,
                " | {} delivered {} sampled_out {} dropped {} pending {}",
                o["name"].as_str().unwrap_or("?"),
                o["delivered"],
                o["sampled_out"],
                o["dropped"]["total"],
                o["pending"],
            );
        }
        line
    }

    /// Every output of every pipeline.
    pub fn outputs(&self) -> impl Iterator<Item = &Value> {
        self.pipelines
            .iter()
            .flat_map(|p| p["outputs"].as_array().into_iter().flatten())
    }

    /// Redraws the whole terminal screen.
    fn draw(&self, now: f64) {
        let t = &self.tally;
        let mut s = String::from("\x1b[H\x1b[2J");
        let _ = writeln!(
            s,
            "\x1b[1mseawall demo\x1b[0m  {now:.0}s / {:.0}s   {}",
            self.timeline.duration().as_secs_f64(),
            self.phases.join("; ")
        );
        let _ = writeln!(
            s,
            "traffic   sent {}   upstream ok {}   upstream errors {}   rejected by breakers {}   other {}\n",
            t.total(|r| &r.sent),
            t.total(|r| &r.ok),
            t.total(|r| &r.upstream_error),
            t.total(|r| &r.rejected),
            t.total(|r| &r.other),
        );
        let _ = writeln!(
            s,
            "\x1b[1m{:<44} {:<20} {:>6} {:>8}  reason\x1b[0m",
            "breaker", "state", "trips", "rejects"
        );
        for b in &self.breakers {
            let state = state_of(b);
            let pad = 20usize.saturating_sub(state.len());
            let _ = writeln!(
                s,
                "{:<44} {}{} {:>6} {:>8}  {}",
                label(b),
                paint(&state, true),
                " ".repeat(pad),
                num(&b["counts"]["trips"]),
                num(&b["counts"]["rejected"]),
                b["reason"].as_str().unwrap_or("-"),
            );
        }
        let _ = writeln!(
            s,
            "\n\x1b[1m{:<24} {:>9} {:>10} {:>12} {:>8} {:>8} {:>9} {:>9}\x1b[0m",
            "output",
            "accepted",
            "delivered",
            "sampled_out",
            "dropped",
            "pending",
            "reroutes",
            "sampling"
        );
        for o in self.outputs() {
            let _ = writeln!(
                s,
                "{:<24} {:>9} {:>10} {:>12} {:>8} {:>8} {:>9} {:>8.0}%",
                format!(
                    "{} ({})",
                    o["name"].as_str().unwrap_or("?"),
                    o["type"].as_str().unwrap_or("?")
                ),
                num(&o["accepted"]),
                num(&o["delivered"]),
                num(&o["sampled_out"]),
                num(&o["dropped"]["total"]),
                num(&o["pending"]),
                num(&o["reroutes"]),
                o["sampling_rate"].as_f64().unwrap_or(1.0) * 100.0,
            );
        }
        let _ = writeln!(s, "\n\x1b[1mflags\x1b[0m  {}", flags_line(&self.flags));
        let _ = writeln!(s, "\n\x1b[1mlatest events\x1b[0m");
        for line in &self.recent {
            let _ = writeln!(s, "  {line}");
        }
        let _ = writeln!(s, "\n\x1b[2mCtrl-C ends the demo with a summary.\x1b[0m");
        let mut out = io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    }
}

/// `provider anthropic /v1/messages` or `output collector /primary`.
pub(super) fn label(b: &Value) -> String {
    let endpoint = b["endpoint"].as_str().unwrap_or("");
    // Output endpoints are URLs: the path tells the demo's two collector endpoints apart.
    let endpoint = match endpoint.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or(rest, |i| &rest[i..]),
        // A file output's endpoint is its path: the file name is enough.
        None if b["kind"] == "output" => endpoint.rsplit('/').next().unwrap_or(endpoint),
        None => endpoint,
    };
    format!(
        "{} {} {endpoint}",
        b["kind"].as_str().unwrap_or("?"),
        b["name"].as_str().unwrap_or("?")
    )
}

/// A JSON number as `u64` (0 when absent), so that width and alignment apply.
fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The state, with the mode when it is not `normal`.
fn state_of(b: &Value) -> String {
    let state = b["state"].as_str().unwrap_or("?");
    match b["mode"].as_str() {
        Some("normal") | None => state.to_owned(),
        Some(mode) => format!("{state} [{mode}]"),
    }
}

/// Flag values and fetch counts from `/v1/flags`.
pub(super) fn flags_line(flags: &Value) -> String {
    let hosts = flags["cache"]["hosts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for h in &hosts {
        if let Some(map) = h["flags"].as_object() {
            for (k, v) in map {
                values.insert(k.clone(), v.as_str().unwrap_or("?").to_owned());
            }
        }
    }
    let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{} hosts, fetches ok {} / failed {}; {}",
        hosts.len(),
        flags["cache"]["fetches"]["ok"],
        flags["cache"]["fetches"]["error"].as_u64().unwrap_or(0)
            + flags["cache"]["fetches"]["timeout"].as_u64().unwrap_or(0),
        if values.is_empty() {
            "not fetched yet".to_owned()
        } else {
            values.join(" ")
        },
    )
}

/// `[  3.4s]`.
pub(super) fn stamp(secs: f64) -> String {
    format!("[{secs:>5.1}s]")
}

/// A state in colour (terminal) or as is.
fn paint(state: &str, tty: bool) -> String {
    if !tty {
        return state.to_owned();
    }
    let colour = if state.starts_with("closed") {
        "32"
    } else if state.starts_with("half_open") {
        "33"
    } else {
        "31"
    };
    format!("\x1b[{colour}m{state}\x1b[0m")
}
