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

source bench/callgrind.sh

echo
echo "callgrind, wrk -t1 -c8 for ${SECS}s after a 2s warm-up ($(date +%F)); user-space counts per forwarded request"
echo
echo "| proxy | requests counted | instructions | L1 data misses | L1 instruction misses |"
echo "|---|---|---|---|---|"
count nginx "http://127.0.0.1:$NGX/v1/messages" "" "$NGINX" -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy"
TOKIO_WORKER_THREADS=2 SEAWALL_LOG=warn count seawall "http://127.0.0.1:$SW/up/v1/messages" "" \
    "$SEAWALL" run -c "$WORK/seawall.yaml"
if [ -n "${BASELINE:-}" ]; then
    TOKIO_WORKER_THREADS=2 SEAWALL_LOG=warn count baseline "http://127.0.0.1:$SW/up/v1/messages" "" \
        "$BASELINE" run -c "$WORK/seawall.yaml"
fi
