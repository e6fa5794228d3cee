#!/usr/bin/env bash
# The HTTP/1 codec's differential fuzz suite at scale (crates/seawall/src/http1/codec/fuzz):
# ten million generated request heads, response heads and chunked bodies, each cut into reads,
# through the codec and through the reference models, in a release build, on one core.
# Prints cases/s, the codec's answers per category, the reads and splits tried, and each kind
# of failure (panic, broken invariant, any difference from the reference models) with its
# count and shortest input; fails on any, printing the first cases and the seeds that replay
# them (SEAWALL_FUZZ_REPLAY).
# Usage: bench/fuzz.sh [cases=10000000] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
export SEAWALL_FUZZ_CASES=${1:-10000000}
if [ -n "${2:-}" ]; then export SEAWALL_FUZZ_SEED=$2; fi
echo "$(rustc --version), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cargo test --release -q -p seawall --lib --no-run
cargo test --release -q -p seawall --lib fuzz::codec_agrees -- --nocapture
