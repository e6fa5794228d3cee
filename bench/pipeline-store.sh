#!/usr/bin/env bash
# The disk buffer's storage decision, measured: our segmented log beside redb doing the
# buffer's job (append 1000 records of 1000 events, ~117 bytes each; read them back in order and
# free them) for each sync policy, and our log's replay of the 1 M events. A release build of
# the ignored test `pipeline::disk::compare` (feature bench-redb); prints a Markdown table.
# Runs in $TMPDIR (about 120 MB at a time). Usage: bench/pipeline-store.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -q -p seawall --features bench-redb --lib compare -- --ignored --nocapture \
    --test-threads 1 2>&1 | grep '^|'
