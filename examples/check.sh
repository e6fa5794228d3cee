#!/usr/bin/env bash
# Validates every example configuration with `seawall check -c`, with dummy values for the
# environment variables their `*_env` keys name. Exits non-zero on the first failure.
#
#   bash examples/check.sh                 # builds a debug seawall first (cargo build -p seawall)
#   SEAWALL=/path/to/seawall bash examples/check.sh   # checks with that binary, builds nothing
set -euo pipefail
cd "$(dirname "$0")/.."

# Dummy secrets: `seawall check` only verifies that each variable is set and non-empty.
export SEAWALL_CLIENT_TOKEN=dummy-client-token
export SEAWALL_ADMIN_TOKEN=dummy-admin-token
export ANTHROPIC_API_KEY=dummy-anthropic-key
export ANTHROPIC_BACKUP_API_KEY=dummy-anthropic-backup-key
export OPENAI_API_KEY=dummy-openai-key

if [[ -z "${SEAWALL:-}" ]]; then
    cargo build -q -p seawall
    SEAWALL="${CARGO_TARGET_DIR:-target}/debug/seawall"
fi

status=0
for file in examples/*.yaml; do
    # Every `*_env` variable an example names must get a dummy value above.
    for var in $(grep -oE '[A-Za-z_]+_env: *\[?[A-Z_][A-Z0-9_, ]*' "$file" \
        | sed -E 's/^[A-Za-z_]+_env: *\[?//; s/,/ /g'); do
        if [[ -z "${!var:-}" ]]; then
            echo "FAIL $file: names \$$var, which check.sh does not set" >&2
            status=1
        fi
    done
    if out=$("$SEAWALL" check -c "$file" 2>&1); then
        echo "ok   $file: $out"
    else
        echo "FAIL $file (exit $?): $out" >&2
        status=1
    fi
done
# The single-provider quickstart needs its three variables and no other.
if out=$(env -i PATH="$PATH" SEAWALL_CLIENT_TOKEN=t SEAWALL_ADMIN_TOKEN=t ANTHROPIC_API_KEY=k \
    "$SEAWALL" check -c examples/anthropic-only.yaml 2>&1); then
    echo "ok   examples/anthropic-only.yaml needs only SEAWALL_CLIENT_TOKEN, SEAWALL_ADMIN_TOKEN, ANTHROPIC_API_KEY"
else
    echo "FAIL examples/anthropic-only.yaml with only its three variables: $out" >&2
    status=1
fi
exit "$status"
