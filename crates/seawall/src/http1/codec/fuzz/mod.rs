//! A differential fuzz suite for the head parser and the body decoder, on the stable
//! toolchain (issue 13). Cases come from a seeded grammar with hostile mutations
//! (`gen_head`, `gen_body`); reference models written apart from the codec (`ref_head`,
//! `ref_body`, `target`) give the answer RFC 9112 and the gateway's wire rules call for; `run`
//! feeds each case to the codec read by read and fails it on any difference. `pinned` holds
//! the inputs that once showed a difference, as regression tests. `cargo test` runs a few
//! thousand cases and `bench/fuzz.sh` ten million (BENCHMARKS.md, "Fuzzing the HTTP/1 codec").
//!
//! - `SEAWALL_FUZZ_CASES`: how many cases (default 20 000, about a second in a debug build).
//! - `SEAWALL_FUZZ_SEED`: the run's seed (fixed by default, so `cargo test` repeats itself).
//! - `SEAWALL_FUZZ_REPLAY`: only the case with this seed, as a failure prints it.

mod gen_body;
mod gen_head;
mod pinned;
mod ref_body;
mod ref_head;
mod run;
mod stats;
mod target;

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use run::{Case, Failure};
use stats::{report, Stats};

/// How many failed cases a run prints in full (all are counted in the report).
const SHOWN_FAILURES: usize = 5;

/// Every generated case: no panic, the codec's invariants hold, and its answer is the
/// reference models'. Prints what was covered and every kind of failure.
#[test]
fn codec_agrees_with_the_reference_models_on_generated_cases() {
    let cases = env_u64("SEAWALL_FUZZ_CASES").unwrap_or(20_000);
    let seed = env_u64("SEAWALL_FUZZ_SEED").unwrap_or(0x5ea_3a11);
    let seeds: Box<dyn Iterator<Item = u64>> = match env_u64("SEAWALL_FUZZ_REPLAY") {
        Some(one) => Box::new(std::iter::once(one)),
        None => Box::new((0..cases).map(|i| case_seed(seed, i))),
    };
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut shown = Vec::new();
    for case_seed in seeds {
        let case = Case::generate(case_seed);
        let failure = match panic::catch_unwind(AssertUnwindSafe(|| run::check(&case, &mut stats)))
        {
            Ok(Ok(())) => continue,
            Ok(Err(failure)) => failure,
            Err(_) => Failure {
                what: "panicked".into(),
                detail: "the case panicked (message above)".into(),
            },
        };
        stats.failed(&failure.what, &case);
        if shown.len() < SHOWN_FAILURES {
            shown.push(format!("{failure}\n{}", case.describe()));
        }
    }
    println!("{}", report(&stats, seed, started.elapsed()));
    assert!(
        stats.failures.is_empty(),
        "{} kind(s) of failure, the first cases:\n\n{}",
        stats.failures.len(),
        shown.join("\n\n")
    );
}

/// Each case's own seed, spread from the run's.
fn case_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim().replace('_', "");
    let parsed = match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}
