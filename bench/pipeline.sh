#!/usr/bin/env bash
# Event pipeline throughput and bounded memory, on loopback, in one run:
#   blackhole  wrk -> POST /ingest/bh (NDJSON, 1000 events/request) -> blackhole output
#   http       wrk -> POST /ingest/web -> http output batching to an nginx sink (`return 204`)
#   outage     bench/pipeline/outage.py -> POST /ingest/out at RATE events/s for OUTAGE + 5 s ->
#              http output whose endpoint refuses connections for the first OUTAGE seconds, then
#              an nginx sink starts there; queue + retry buffer sized for the outage: every
#              accepted event must be delivered (0 lost).
#   down       wrk -> POST /ingest/down -> http output whose only endpoint refuses connections,
#              for DOWN seconds; VmRSS sampled every second and compared with the bound the
#              configured queue and retry buffer allow.
# Events/s counts events the output *delivered* (from /v1/pipelines), over the load time plus
# the drain. Prints a Markdown table. Installs nginx and wrk with apt-get when missing.
# Usage: bench/pipeline.sh [seconds=10] [down_seconds=60] [connections=8] [outage_seconds=10]
#        [outage_rate=100000]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
DOWN=${2:-60}
CONNS=${3:-8}
OUTAGE=${4:-10}
RATE=${5:-100000}
EVENTS=1000
QUEUE=100000 BUFFER=50000
# Five free loopback ports (nothing listens on DEAD: the down output's connections are refused;
# the outage output's sink starts on LATE after the outage).
read -r SINK SW ADMIN DEAD LATE < <(python3 -c "
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(('127.0.0.1', 0))
print(*[s.getsockname()[1] for s in ss])")
source bench/common.sh
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fcgi; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
    keepalive_requests 1000000;
    client_max_body_size 16m;
    server { listen 127.0.0.1:$SINK; location / { return 204; } }
}
NGINX
"$NGINX" -c "$WORK/nginx.conf" -e "$WORK/logs/error.log"

cat > "$WORK/seawall.yaml" <<YAML
server: { listen: 127.0.0.1:$SW }
admin: { listen: 127.0.0.1:$ADMIN }
pipelines:
  - name: bh
    queue: { capacity: $QUEUE }
    outputs: [{ name: out, type: blackhole, batch: { max_events: 1000, linger: 20ms } }]
  - name: web
    queue: { capacity: $QUEUE }
    outputs:
      - { name: out, type: http, endpoint: "http://127.0.0.1:$SINK/sink",
          batch: { max_events: 5000, max_bytes: 4MB, linger: 20ms } }
  - name: down
    queue: { capacity: $QUEUE }
    outputs:
      - { name: out, type: http, endpoint: "http://127.0.0.1:$DEAD/dead",
          batch: { max_events: 1000, linger: 20ms },
          resilience: { circuit_breaker: { failure_threshold: 3, open_timeout: 5s } } }
    fallback: { sampling: { min_rate: 0.5 }, retry_buffer: $BUFFER }
  - name: out
    queue: { capacity: $QUEUE }
    outputs:
      - { name: out, type: http, endpoint: "http://127.0.0.1:$LATE/sink",
          batch: { max_events: 5000, max_bytes: 4MB, linger: 20ms },
          resilience: { circuit_breaker: { failure_threshold: 3, open_timeout: 1s, open_timeout_max: 1s } } }
    fallback: { retry_buffer: $((RATE * (OUTAGE + 5))) }
YAML
RUST_LOG=warn "$SEAWALL" run -c "$WORK/seawall.yaml" > "$WORK/logs/seawall.log" 2>&1 &
SWPID=$!
PIDS+=("$SWPID")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ADMIN/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

source bench/pipeline/drive.sh
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$SWPID/status"; }

echo "warming up" >&2
PIPELINE=bh EVENTS=$EVENTS wrk -t1 -c2 -d2s -s bench/pipeline/ingest.lua "http://127.0.0.1:$SW" >/dev/null
read -r BH_RATE BH_ACC BH_DROP BH_T < <(drive bh "$SECS")
read -r WEB_RATE WEB_ACC WEB_DROP WEB_T < <(drive web "$SECS")

echo "outage of ${OUTAGE}s at $RATE events/s" >&2
# The http run may have left global health shedding (its queue was full): wait for it to end.
for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/x-ndjson' \
        --data-binary '{"ready":1}' "http://127.0.0.1:$SW/ingest/bh")" = 202 ] && break
    sleep 0.2
done
python3 bench/pipeline/outage.py "127.0.0.1:$SW" out "$RATE" $((OUTAGE + 5)) > "$WORK/outage.txt" &
POSTER=$!
PIDS+=("$POSTER")
sleep "$OUTAGE"
nginx_start "$WORK/late" "worker_processes 1;" "client_max_body_size 16m;
    server { listen 127.0.0.1:$LATE; location / { return 204; } }"
wait "$POSTER"
for _ in $(seq 600); do
    read -r O_ACC O_DEL O_DROP O_PEND O_SAMPLED < <(stats out)
    [ "$O_PEND" = 0 ] && break
    sleep 0.1
done
read -r O_POSTED O_REFUSED < "$WORK/outage.txt"

echo "output down for ${DOWN}s" >&2
BASE=$(rss_kib)
PIPELINE=down EVENTS=$EVENTS wrk -t2 -c"$CONNS" -d"${DOWN}s" -s bench/pipeline/ingest.lua \
    "http://127.0.0.1:$SW" > "$WORK/wrk-down.txt" &
WRK=$!
PIDS+=("$WRK")
PEAK=$BASE
for _ in $(seq "$DOWN"); do
    sleep 1
    R=$(rss_kib); [ "$R" -gt "$PEAK" ] && PEAK=$R
done
wait "$WRK" || true
read -r D_ACC D_DEL D_DROP D_PEND D_SAMPLED < <(stats down)
EVENT_BYTES=$(python3 -c "import os; print(len(open('/dev/stdin').read().split(chr(10))[0]) + 1)" \
    <<< '{"ts":"2025-01-01T00:00:00.000001Z","level":"info","service":"checkout","msg":"request served","status":200,"seq":1}')
# Data the configured stores may hold: (queue + retry buffer) events, each its bytes plus a
# 32-byte handle; queued events are slices of request bodies, so allow one body per batch edge.
BOUND_KIB=$(( ( (QUEUE + BUFFER) * (EVENT_BYTES + 32) ) / 1024 ))

echo
echo "| scenario | events/s delivered | accepted | dropped | time (s) | target |"
echo "|---|---:|---:|---:|---:|---|"
echo "| ingest → blackhole | **$BH_RATE** | $BH_ACC | $BH_DROP | $BH_T | ≥ 500000 |"
echo "| ingest → http (nginx sink) | **$WEB_RATE** | $WEB_ACC | $WEB_DROP | $WEB_T | ≥ 200000 |"
echo
echo "| outage ${OUTAGE}s at $RATE events/s, queue $QUEUE + retry buffer $((RATE * (OUTAGE + 5))) | value |"
echo "|---|---:|"
echo "| events posted / refused (non-202) | $O_POSTED / $O_REFUSED |"
echo "| events accepted / delivered / sampled out / dropped / pending | $O_ACC / $O_DEL / $O_SAMPLED / $O_DROP / $O_PEND |"
echo "| lost (accepted − delivered) | **$((O_ACC - O_DEL))** |"
echo
echo "| output down ${DOWN}s | value |"
echo "|---|---:|"
echo "| events accepted / delivered / sampled out / dropped / pending | $D_ACC / $D_DEL / $D_SAMPLED / $D_DROP / $D_PEND |"
echo "| VmRSS before | $((BASE / 1024)) MiB |"
echo "| VmRSS peak while down | $((PEAK / 1024)) MiB |"
echo "| growth (peak − before) | $(((PEAK - BASE) / 1024)) MiB |"
echo "| configured bound: (queue $QUEUE + buffer $BUFFER) × $((EVENT_BYTES + 32)) B | $((BOUND_KIB / 1024)) MiB |"
