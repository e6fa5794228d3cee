#!/usr/bin/env bash
# The cause analysis behind bench/peers.sh's throughput and CPU rows (BENCHMARKS.md): user-space
# instructions and simulated L1 misses per forwarded call, counted by callgrind, for nginx (one
# worker, bench/peers/nginx.conf's proxy settings) and Seawall (anthropic and generic kinds), with
# bench/peers.sh's POST body and mock answer, and for a plain GET. Like bench/instructions.sh,
# whose method it follows (wrk -t1 -c8, 2 s warm-up, SECS counted), but with this bench's request.
# Usage: bench/peers/instructions.sh [seconds=4]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-4}
UP=18381 NGX=18382 SW=18383 ADMIN=18384
source bench/common.sh
nginx_start "$WORK/up" "worker_processes 2;" "server {
        listen 127.0.0.1:$UP;
        location / { default_type application/json; return 200 '{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[{\"type\":\"text\",\"text\":\"ok\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}'; }
    }"
nginx_conf "$WORK/proxy" "worker_processes 1; master_process off; daemon off;" \
    "upstream backend { server 127.0.0.1:$UP max_fails=1 fail_timeout=5s; keepalive 256; }
    server {
        listen 127.0.0.1:$NGX;
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_buffering off;
            proxy_next_upstream error timeout http_429 http_500 http_503 http_504; }
    }"
for k in anthropic generic; do
cat > "$WORK/seawall-$k.yaml" <<YAML
server: { listen: 127.0.0.1:$SW }
admin: { listen: 127.0.0.1:$ADMIN }
providers:
  - name: p
    kind: $k
    base_url: http://127.0.0.1:$UP
YAML
done
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"claude-x","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "test-key"
wrk.headers["anthropic-version"] = "2023-06-01"
LUA
source bench/callgrind.sh
echo "| proxy, request | calls counted | instructions per call | L1 data misses | L1 instruction misses |"
echo "|---|---:|---:|---:|---:|"
count nginx-post "http://127.0.0.1:$NGX/v1/messages" "-s $WORK/post.lua" "$NGINX" -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy"
TOKIO_WORKER_THREADS=2 SEAWALL_LOG=warn count seawall-anthropic-post "http://127.0.0.1:$SW/p/v1/messages" "-s $WORK/post.lua" "$SEAWALL" run -c "$WORK/seawall-anthropic.yaml"
TOKIO_WORKER_THREADS=2 SEAWALL_LOG=warn count seawall-generic-post "http://127.0.0.1:$SW/p/v1/messages" "-s $WORK/post.lua" "$SEAWALL" run -c "$WORK/seawall-generic.yaml"
TOKIO_WORKER_THREADS=2 SEAWALL_LOG=warn count seawall-anthropic-get "http://127.0.0.1:$SW/p/v1/messages" "" "$SEAWALL" run -c "$WORK/seawall-anthropic.yaml"
count nginx-get "http://127.0.0.1:$NGX/v1/messages" "" "$NGINX" -c "$WORK/proxy/nginx.conf" -p "$WORK/proxy"
