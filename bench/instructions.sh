#!/usr/bin/env bash
# The gateway's user-space cost per forwarded request, counted rather than timed: Seawall and
# an nginx reverse proxy (one worker, no master) each run under valgrind's callgrind with its
# cache simulation while wrk sends them requests for a few seconds (only that window is
# counted). Instruction counts do not move with the host's load, so small changes show; the
# simulated L1 misses show how much memory a request touches. Kernel time is not counted.
# Prints a Markdown table. Installs nginx, wrk and valgrind with apt-get when missing.
# Usage: bench/instructions.sh [seconds=4]
# BASELINE=<another seawall binary> adds its row (same configuration); CALLGRIND_OUT=<dir> keeps
# the callgrind files there for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-4}
UP=18181 NGX=18182 SW=18183 ADMIN=18184
source bench/common.sh
if ! command -v valgrind >/dev/null 2>&1; then
    echo "installing valgrind" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi

nginx_start "$WORK/up" "worker_processes 2;" "server {
        listen 127.0.0.1:$UP;
        location / { default_type application/json; return 200 '{\"id\":\"msg_1\",\"content\":\"ok\"}'; }
    }"
nginx_conf "$WORK/proxy" "worker_processes 1; master_process off; daemon off;" \
    "upstream backend { server 127.0.0.1:$UP; keepalive 64; }
    server {
        listen 127.0.0.1:$NGX;
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"
cat > "$WORK/seawall.yaml" <<YAML
server: { listen: 127.0.0.1:$SW }
admin: { listen: 127.0.0.1:$ADMIN }
providers:
  - name: up
    kind: generic
    base_url: http://127.0.0.1:$UP
YAML

# count NAME URL command... -> "NAME requests Ir D1-misses I1-misses" per request
count() {
    local name=$1 url=$2
    shift 2
    valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no \
        --callgrind-out-file="$WORK/$name.%p" "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 150); do
        curl -fs -o /dev/null "$url" 2>/dev/null && break
        sleep 0.2
    done
    wrk -t1 -c8 -d2s "$url" >/dev/null # warm up: connections and pools open, caches filled
    callgrind_control -i on "$pid" >/dev/null 2>&1
    wrk -t1 -c8 -d"${SECS}s" "$url" >"$WORK/$name.wrk"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -n "${CALLGRIND_OUT:-}" ]; then
        mkdir -p "$CALLGRIND_OUT" && cp "$WORK/$name".* "$CALLGRIND_OUT/"
    fi
    local requests file
    requests=$(awk '/requests in/{print $1}' "$WORK/$name.wrk")
    file=$(ls -S "$WORK/$name".* | grep -v '\.log$\|\.wrk$' | head -1)
    # Totals in the order Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
    callgrind_annotate "$file" 2>/dev/null | awk -v n="$name" -v r="$requests" '/PROGRAM TOTALS/ {
        for (i = 1; i <= NF; i++) gsub(",", "", $i)
        # fields: value (pct) value (pct) ...
        ir = $1; i1 = $7; d1r = $9; d1w = $11
        printf "| %s | %d | %.0f | %.0f | %.0f |\n", n, r, ir / r, (d1r + d1w) / r, i1 / r
    }'
}

echo
echo "callgrind, wrk -t1 -c8 for ${SECS}s after a 2s warm-up ($(date +%F)); user-space counts per forwarded request"
echo
echo "| proxy | requests counted | instructions | L1 data misses | L1 instruction misses |"
echo "|---|---|---|---|---|"
count nginx "http://127.0.0.1:$NGX/v1/messages" "$NGINX" -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy"
TOKIO_WORKER_THREADS=2 SEAWALL_LOG=warn count seawall "http://127.0.0.1:$SW/up/v1/messages" \
    "$SEAWALL" run -c "$WORK/seawall.yaml"
if [ -n "${BASELINE:-}" ]; then
    TOKIO_WORKER_THREADS=2 SEAWALL_LOG=warn count baseline "http://127.0.0.1:$SW/up/v1/messages" \
        "$BASELINE" run -c "$WORK/seawall.yaml"
fi
