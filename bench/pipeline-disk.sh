#!/usr/bin/env bash
# The disk buffer's cost and its replay, on loopback, in one run (release `seawall run`):
#   ingest → blackhole and ingest → http (an nginx sink answering 204), each with a memory
#   buffer and with a disk buffer for every sync policy (always | interval 200ms | none):
#   wrk (2 threads, CONNS connections) posts 1000-event NDJSON bodies for SECS seconds, then
#   the output drains; events/s counts events the output delivered (GET /v1/pipelines) over
#   the load time plus the drain.
#   replay: REPLAY × 1000 events posted (bench/pipeline/outage.py, unpaced) to a disk-buffered pipeline
#   whose http output cannot deliver; SIGKILL; restart with the output's endpoint on the nginx
#   sink: the replay's time (its log line) and the time until every event is delivered.
# Prints Markdown tables. Installs nginx and wrk with apt-get when missing.
# Usage: bench/pipeline-disk.sh [seconds=10] [connections=8] [replay_requests=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-8}
REPLAY=${3:-1000}
EVENTS=1000
read -r SINK SW ADMIN DEAD < <(python3 -c "
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(('127.0.0.1', 0))
print(*[s.getsockname()[1] for s in ss])")
source bench/common.sh
nginx_start "$WORK/sink" "worker_processes 1;" "client_max_body_size 16m;
    server { listen 127.0.0.1:$SINK; location / { return 204; } }"

# config REPLAY_ENDPOINT: the daemon's configuration, the replay output sending to it.
config() {
    cat <<YAML
server: { listen: 127.0.0.1:$SW }
admin: { listen: 127.0.0.1:$ADMIN }
pipelines:
YAML
    for kind in bh web; do
        for mode in memory always interval none; do
            local buffer="{ type: memory }"
            [ "$mode" != memory ] && buffer="{ type: disk, path: $WORK/buffers, max_size: 2GB, sync: $mode }"
            local output="{ name: out, type: blackhole, batch: { max_events: 1000, linger: 20ms } }"
            [ "$kind" = web ] && output="{ name: out, type: http, endpoint: 'http://127.0.0.1:$SINK/sink',
          batch: { max_events: 5000, max_bytes: 4MB, linger: 20ms } }"
            cat <<YAML
  - name: $kind-$mode
    queue: { capacity: 100000 }
    buffer: $buffer
    outputs:
      - $output
YAML
        done
    done
    cat <<YAML
  - name: replay
    buffer: { type: disk, path: $WORK/buffers, max_size: 4GB }
    outputs:
      - { name: out, type: http, endpoint: '$1', batch: { max_events: 5000, max_bytes: 4MB, linger: 20ms },
          resilience: { circuit_breaker: { failure_threshold: 1, open_timeout: 1h } } }
YAML
}

start() {
    RUST_LOG=info "$SEAWALL" run --log-format json -c "$WORK/seawall.yaml" > "$WORK/logs/seawall-$1.log" 2>&1 &
    SWPID=$!
    PIDS+=("$SWPID")
    for _ in $(seq 600); do curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && return; sleep 0.05; done
    echo "seawall did not start" >&2; exit 1
}

source bench/pipeline/drive.sh

config "http://127.0.0.1:$DEAD/dead" > "$WORK/seawall.yaml"
start 1
echo "warming up" >&2
PIPELINE=bh-memory EVENTS=$EVENTS wrk -t1 -c2 -d2s -s bench/pipeline/ingest.lua "http://127.0.0.1:$SW" >/dev/null
declare -A RATE ACC
for kind in bh web; do
    for mode in memory always interval none; do
        echo "$kind-$mode" >&2
        read -r RATE[$kind-$mode] ACC[$kind-$mode] _ _ < <(drive "$kind-$mode" "$SECS")
    done
done

echo "replay: posting $REPLAY × $EVENTS events to an output that cannot deliver" >&2
read -r R_ACC R_REF < <(python3 bench/pipeline/outage.py "127.0.0.1:$SW" replay 1000000000 3600 "$REPLAY")
BYTES=$(du -sb "$WORK/buffers/replay" | cut -f1)
kill -9 "$SWPID"; wait "$SWPID" 2>/dev/null || true
config "http://127.0.0.1:$SINK/sink" > "$WORK/seawall.yaml"
T0=$(date +%s.%N)
start 2
T_READY=$(date +%s.%N)
for _ in $(seq 1200); do
    read -r _ R_DEL _ R_PEND _ < <(stats replay)
    [ "$R_PEND" = 0 ] && break
    sleep 0.05
done
T_DONE=$(date +%s.%N)
REPLAY_MS=$(grep '"disk buffer replay done"' "$WORK/logs/seawall-2.log" | grep '"pipeline":"replay"' \
    | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())['fields']['took_ms'])")

pct() { python3 -c "import sys; print(f'{100*float(sys.argv[1])/float(sys.argv[2]):.0f} %')" "$1" "$2"; }
echo
echo "| output | memory | disk, sync: always | disk, sync: interval (200ms) | disk, sync: none |"
echo "|---|---:|---:|---:|---:|"
for kind in bh web; do
    name=$([ "$kind" = bh ] && echo "ingest → blackhole" || echo "ingest → http (nginx sink)")
    m=${RATE[$kind-memory]}
    echo "| $name, events/s delivered | **$m** | ${RATE[$kind-always]} ($(pct "${RATE[$kind-always]}" "$m")) | **${RATE[$kind-interval]}** ($(pct "${RATE[$kind-interval]}" "$m")) | ${RATE[$kind-none]} ($(pct "${RATE[$kind-none]}" "$m")) |"
    echo "| $name, events accepted | ${ACC[$kind-memory]} | ${ACC[$kind-always]} | ${ACC[$kind-interval]} | ${ACC[$kind-none]} |"
done
echo
python3 - "$R_ACC" "$R_REF" "$BYTES" "$REPLAY_MS" "$T0" "$T_READY" "$T_DONE" "$R_DEL" <<'PY'
import sys
acc, ref, size, replay_ms, t0, ready, done, delivered = sys.argv[1:]
acc, ref, size, replay_ms, delivered = int(acc), int(ref), int(size), int(replay_ms), int(delivered)
t0, ready, done = float(t0), float(ready), float(done)
print("| replay of a killed daemon's disk buffer | value |")
print("|---|---:|")
print(f"| events buffered (accepted before SIGKILL) / refused | {acc} / {ref} |")
print(f"| log on disk | {size / 2**20:.0f} MiB |")
print(f"| replay (check every record, cut, cursors), its log line | {replay_ms} ms ({acc / max(replay_ms, 1) * 1000:.0f} events/s) |")
print(f"| start to ready (replay included) | {ready - t0:.2f} s |")
print(f"| ready to all delivered ({delivered} events) | {done - ready:.2f} s ({delivered / max(done - ready, 1e-9):.0f} events/s) |")
PY
