//! What a fuzz run covered: outcomes per category, reads and splits tried, and each kind of
//! failure with its count and shortest input; and the report `bench/fuzz.sh` prints.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::http1::codec::decode::{Framing, FramingError};

use super::ref_body::Body;
use super::ref_head::Head;
use super::run::{Case, Kind};

/// What the cases covered, and the failures with their shortest input.
#[derive(Default)]
pub(super) struct Stats {
    pub(super) cases: u64,
    /// The codec's answers, per category.
    pub(super) outcomes: BTreeMap<String, u64>,
    pub(super) head_reads: u64,
    pub(super) body_splits: u64,
    /// Failed cases, per kind of failure.
    pub(super) failures: BTreeMap<String, Example>,
}

/// How often a kind of failure was seen, and its shortest case.
pub(super) struct Example {
    count: u64,
    seed: u64,
    kind: Kind,
    input: Vec<u8>,
}

impl Stats {
    pub(super) fn outcome(&mut self, name: String) {
        *self.outcomes.entry(name).or_default() += 1;
    }

    /// Counts a failed case under its kind of failure.
    pub(super) fn failed(&mut self, what: &str, case: &Case) {
        let example = self
            .failures
            .entry(what.to_owned())
            .or_insert_with(|| Example {
                count: 0,
                seed: case.seed,
                kind: case.kind,
                input: case.input.clone(),
            });
        example.count += 1;
        if case.input.len() < example.input.len() {
            (example.seed, example.kind, example.input) =
                (case.seed, case.kind, case.input.clone());
        }
    }
}

/// What a run did: speed, outcomes per category, failures with their shortest input.
pub(super) fn report(stats: &Stats, seed: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fuzzed the HTTP/1 codec: {} cases in {secs:.1} s ({:.0} cases/s), seed {seed:#x}",
        stats.cases,
        stats.cases as f64 / secs.max(1e-9),
    );
    let _ = writeln!(
        out,
        "head reads: {}, body splits tried: {}",
        stats.head_reads, stats.body_splits
    );
    let _ = writeln!(
        out,
        "outcomes (codec's answer; bodies: the whole-input read):"
    );
    for (outcome, n) in &stats.outcomes {
        let _ = writeln!(out, "  {outcome:<48} {n:>10}");
    }
    let failed: u64 = stats.failures.values().map(|ex| ex.count).sum();
    let _ = writeln!(
        out,
        "failed cases (panics, broken invariants, differences from the reference): {failed}"
    );
    for (what, ex) in &stats.failures {
        let shown = ex.input.len().min(160);
        let _ = writeln!(
            out,
            "  {what}: {} cases\n    shortest: seed {:#x} ({:?}) b\"{}\"{}",
            ex.count,
            ex.seed,
            ex.kind,
            ex.input[..shown].escape_ascii(),
            if shown < ex.input.len() { " …" } else { "" },
        );
    }
    out
}

pub(super) fn head_outcome(head: &Head) -> String {
    match head {
        Head::Partial => "incomplete".into(),
        Head::Refused(class) => format!("refused {class:?}"),
        Head::Request(r) => format!("accepted, {}", framing_name(r.framing)),
        Head::Response(r) => match r.framing {
            Ok(framing) => format!("accepted, {}", framing_name(framing)),
            Err(class) => format!("accepted, framing refused {class:?}"),
        },
    }
}

pub(super) fn body_outcome(body: &Body) -> String {
    match body {
        Body::Complete { .. } => "complete".into(),
        Body::Failed(e) => format!("failed {}", error_name(*e)),
    }
}

pub(super) fn framing_name(framing: Framing) -> &'static str {
    match framing {
        Framing::Length(0) => "no body",
        Framing::Length(_) => "content-length",
        Framing::Chunked => "chunked",
        Framing::UntilClose => "until close",
    }
}

fn error_name(e: FramingError) -> &'static str {
    match e {
        FramingError::ChunkSize => "ChunkSize",
        FramingError::ChunkEnd => "ChunkEnd",
        FramingError::TooLong => "TooLong",
        FramingError::Truncated => "Truncated",
    }
}
