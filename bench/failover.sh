#!/usr/bin/env bash
# Failover in one run, on loopback:
#  1. A 429 storm (bench/failover/storm.py): RATE requests/s for CALM + STORM + AFTER seconds,
#     target `a` answering 429 with `retry-after: HINT` during the storm; once with `a` as the
#     provider's only target, once with a healthy second target `b`. Reports the requests that
#     reached `a` in the storm, the clients' success rate, failover's extra upstream load
#     against the retry budget, and the recovery lag (storm end to `a`'s first 200).
#  2. The forwarding cost of a two-target provider against a one-target one: wrk against two
#     Seawall processes (both targets of the first are the same nginx upstream), alternating
#     for ROUNDS rounds; medians and the median of the per-round ratios.
# Prints Markdown tables. Installs nginx and wrk with apt-get when missing.
# Usage: bench/failover.sh [rate=50] [calm=5] [storm=10] [after=10] [hint=5] [seconds=10] [connections=32] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-50} CALM=${2:-5} STORM=${3:-10} AFTER=${4:-10} HINT=${5:-5}
SECS=${6:-10} CONNS=${7:-32} ROUNDS=${8:-3}
UP=18181 ONE=18182 ONE_ADMIN=18183 TWO=18184 TWO_ADMIN=18185 WORKERS=2
source bench/common.sh

printf '\n### A %ss 429 storm (retry-after: %s) at %s requests/s, %s (%s cores)\n\n' \
    "$STORM" "$HINT" "$RATE" "$(date -u +%F)" "$(nproc)"
printf '| targets | requests | client success | in the storm | reached the storming target | extra upstream attempts (budget allows) | recovery lag, s | Seawall CPU s per 1000 requests |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for targets in 1 2; do
    python3 bench/failover/storm.py "$SEAWALL" "$WORK" "$targets" "$RATE" "$CALM" "$STORM" "$AFTER" "$HINT" >"$WORK/storm-$targets.json"
    python3 - "$WORK/storm-$targets.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
extra = max(0, r["extra_attempts"])
print(f'| {r["targets"]} | {r["sent"]} | {100 * r["succeeded"] / r["sent"]:.2f} % | '
      f'{r["storm_succeeded"]} of {r["storm_sent"]} served | {r["reached_a_in_storm"]} | '
      f'{extra} ({r["budget_allows"]:.0f}) | {r["recovery_lag_s"]} | {r["cpu_s_per_1000"]} |')
PY
done

nginx_start "$WORK/up" "worker_processes 2;" "server {
        listen 127.0.0.1:$UP;
        location / { default_type application/json; return 200 '{\"id\":\"msg_1\",\"content\":\"ok\"}'; }
    }"
seawall_start() { # port admin-port name targets-yaml
    cat >"$WORK/$3.yaml" <<YAML
server: { listen: 127.0.0.1:$1, workers: $WORKERS }
admin: { listen: 127.0.0.1:$2 }
providers:
  - name: up
    kind: generic
    targets: [$4]
YAML
    TOKIO_WORKER_THREADS=$WORKERS SEAWALL_LOG=warn setsid "$SEAWALL" run -c "$WORK/$3.yaml" >"$WORK/$3.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fs "http://127.0.0.1:$2/readyz" >/dev/null
}
seawall_start "$ONE" "$ONE_ADMIN" one "{ name: a, base_url: 'http://127.0.0.1:$UP' }"
seawall_start "$TWO" "$TWO_ADMIN" two "{ name: a, base_url: 'http://127.0.0.1:$UP' }, { name: b, base_url: 'http://127.0.0.1:$UP' }"

rps() { awk '/^Requests\/sec/ {print $2}' "$WORK/$1.txt"; }
p99() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$WORK/$1.txt"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
run() { wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$2/up/v1/messages" >"$WORK/$1.txt"; }
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then run "one-$r" "$ONE"; run "two-$r" "$TWO"; else run "two-$r" "$TWO"; run "one-$r" "$ONE"; fi
done
RATIOS=$(for r in $(seq "$ROUNDS"); do echo "$(rps "two-$r") / $(rps "one-$r")" | bc -l; done)
printf '\n### Forwarding through two targets against one: wrk -t2 -c%s -d%ss, %s workers, medians of %s alternating rounds\n\n' \
    "$CONNS" "$SECS" "$WORKERS" "$ROUNDS"
printf '| provider | requests/s | p99 ms |\n|---|---|---|\n'
for t in one two; do
    printf '| %s target(s) | %.0f | %.3f |\n' "$t" \
        "$(for r in $(seq "$ROUNDS"); do rps "$t-$r"; done | median)" \
        "$(for r in $(seq "$ROUNDS"); do p99 "$t-$r"; done | median)"
done
printf '\nper round two/one: %s (median %.3fx)\n' \
    "$(printf '%.3f ' $RATIOS)" "$(echo "$RATIOS" | median)"
