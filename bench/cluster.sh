#!/usr/bin/env bash
# The fleet in one run, on loopback, with one redis-server:
#  1. Three replicas under one storm (bench/cluster/fleet.py), the cluster off, then on:
#     failures that reached the provider before every replica was open, probes per recovery
#     round while the storm lasts, the recovery lag, and (on) the propagation delay of 200
#     trips, p50 and p99.
#  2. Forwarding throughput of one replica with the cluster on (connected to Redis) against one
#     with it off: wrk, alternating for ROUNDS rounds, medians and the median per-round ratio.
# Prints Markdown tables. Installs redis-server, nginx and wrk with apt-get when missing.
# Usage: bench/cluster.sh [rate=150] [storm=10] [seconds=10] [connections=32] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-150} STORM=${2:-10} SECS=${3:-10} CONNS=${4:-32} ROUNDS=${5:-3}
REDIS_PORT=18290 UP=18291 OFF=18292 OFF_ADMIN=18293 ON=18294 ON_ADMIN=18295 WORKERS=2
source bench/common.sh
if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --pidfile "$WORK/redis.pid" --daemonize yes >/dev/null
trap 'kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS="redis://127.0.0.1:$REDIS_PORT/0"

printf '\n### Three replicas, one %ss storm at %s requests/s spread round robin, %s (%s cores)\n\n' \
    "$STORM" "$RATE" "$(date -u +%F)" "$(nproc)"
printf 'Breakers: 5 failures in a row trip, open 2 s, one probe per round.\n\n'
printf '| cluster | failures reaching the provider before every replica was open | probes in the storm (rounds, per round) | recovery lag, s | propagation p50 / p99, ms (trips) |\n'
printf '|---|---|---|---|---|\n'
for mode in off on; do
    python3 bench/cluster/fleet.py "$SEAWALL" "$WORK" "$mode" "$REDIS" "$RATE" 3 "$STORM" 5 200 >"$WORK/fleet-$mode.json"
    python3 - "$WORK/fleet-$mode.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
prop = "–"
if r.get("propagation_samples"):
    prop = f'{r["propagation_p50_ms"]} / {r["propagation_p99_ms"]} ({int(r["propagation_samples"])})'
print(f'| {r["mode"]} | {r["failures_before_fleet_open"]} | {r["probes_in_storm"]} ({r["rounds"]}, {r["probes_per_round"]}) | '
      f'{r["recovery_lag_s"]} | {prop} |')
PY
done

nginx_start "$WORK/up" "worker_processes 2;" "server {
        listen 127.0.0.1:$UP;
        location / { default_type application/json; return 200 '{\"id\":\"msg_1\",\"content\":\"ok\"}'; }
    }"
replica() { # port admin-port name cluster-yaml
    cat >"$WORK/$3.yaml" <<YAML
server: { listen: 127.0.0.1:$1, workers: $WORKERS }
admin: { listen: 127.0.0.1:$2 }
providers:
  - { name: up, kind: generic, base_url: 'http://127.0.0.1:$UP' }
$4
YAML
    SEAWALL_REDIS_URL=$REDIS TOKIO_WORKER_THREADS=$WORKERS SEAWALL_LOG=warn \
        setsid "$SEAWALL" run -c "$WORK/$3.yaml" >"$WORK/$3.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
}
replica "$OFF" "$OFF_ADMIN" off ""
replica "$ON" "$ON_ADMIN" on "cluster: { redis_url_env: SEAWALL_REDIS_URL, key_prefix: bench$$ }"
curl -fs "http://127.0.0.1:$ON_ADMIN/metrics" | grep -q '^seawall_cluster_connected 1' \
    || { echo "the cluster replica is not connected to Redis" >&2; exit 1; }

rps() { awk '/^Requests\/sec/ {print $2}' "$WORK/$1.txt"; }
p99() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$WORK/$1.txt"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
run() { wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$2/up/v1/messages" >"$WORK/$1.txt"; }
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then run "off-$r" "$OFF"; run "on-$r" "$ON"; else run "on-$r" "$ON"; run "off-$r" "$OFF"; fi
done
RATIOS=$(for r in $(seq "$ROUNDS"); do echo "$(rps "on-$r") / $(rps "off-$r")" | bc -l; done)
printf '\n### Forwarding with the cluster on against off: wrk -t2 -c%s -d%ss, %s workers, medians of %s alternating rounds\n\n' \
    "$CONNS" "$SECS" "$WORKERS" "$ROUNDS"
printf '| cluster | requests/s | p99 ms |\n|---|---|---|\n'
for m in off on; do
    printf '| %s | %.0f | %.3f |\n' "$m" \
        "$(for r in $(seq "$ROUNDS"); do rps "$m-$r"; done | median)" \
        "$(for r in $(seq "$ROUNDS"); do p99 "$m-$r"; done | median)"
done
# shellcheck disable=SC2086 # the ratios are meant to split
printf '\nper round on/off: %s (median %.3fx)\n' "$(printf '%.3f ' $RATIOS)" "$(echo "$RATIOS" | median)"
