#!/usr/bin/env bash
# Gateway throughput and latency, side by side in one run, on loopback:
#   direct   wrk -> upstream (nginx answering a small JSON body)
#   nginx    wrk -> nginx reverse proxy (2 workers, keepalive upstream) -> upstream
#   seawall  wrk -> seawall gateway (2 tokio workers) -> upstream
#   reject   wrk -> seawall with the endpoint's breaker open (answers without the upstream)
# Prints a Markdown table with requests/s, p50, p99 and ratios. Installs nginx and wrk with
# apt-get when missing. Usage: bench/proxy.sh [seconds=10] [connections=32]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-32}
UP=18081 NGX=18082 SW=18083 ADMIN=18084
source bench/common.sh
cat > "$WORK/nginx.conf" <<NGINX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/body; proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fcgi; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
    keepalive_requests 1000000;
    upstream backend { server 127.0.0.1:$UP; keepalive 64; }
    server {
        listen 127.0.0.1:$UP;
        location /fail { default_type application/json; return 503 '{"error":"overloaded"}'; }
        location / { default_type application/json; return 200 '{"id":"msg_1","content":"ok"}'; }
    }
    server {
        listen 127.0.0.1:$NGX;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGINX
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK"

cat > "$WORK/seawall.yaml" <<YAML
server: { listen: 127.0.0.1:$SW }
admin: { listen: 127.0.0.1:$ADMIN }
providers:
  - name: up
    kind: generic
    base_url: http://127.0.0.1:$UP
    circuit_breaker: { failure_threshold: 1, open_timeout: 1h, open_timeout_max: 1h }
YAML
SEAWALL_LOG=warn "$SEAWALL" run -c "$WORK/seawall.yaml" >"$WORK/seawall.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$ADMIN/readyz" >/dev/null

# Trip the /fail endpoint's breaker: one 503 with failure_threshold 1.
curl -s -o /dev/null "http://127.0.0.1:$SW/up/fail"

run() { # name url
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$2" >"$WORK/$1.txt"
}
rps() { awk '/^Requests\/sec/ {print $2}' "$WORK/$1.txt"; }
pct() { # name 50%|99% -> milliseconds
    awk -v p="$2" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$WORK/$1.txt"
}
non2xx() { awk '/Non-2xx/ {print $5}' "$WORK/$1.txt"; }

run direct "http://127.0.0.1:$UP/v1/messages"
run nginx "http://127.0.0.1:$NGX/v1/messages"
run seawall "http://127.0.0.1:$SW/up/v1/messages"
run reject "http://127.0.0.1:$SW/up/fail"

printf '\nwrk -t2 -c%s -d%ss on %s cores (%s)\n\n' "$CONNS" "$SECS" "$(nproc)" "$(date -u +%F)"
printf '| target | requests/s | p50 ms | p99 ms | vs nginx (rps) | added p99 over direct, ms |\n|---|---|---|---|---|---|\n'
D99=$(pct direct 99%); N=$(rps nginx)
for t in direct nginx seawall reject; do
    printf '| %s | %s | %s | %s | %.2f | %.3f |\n' "$t" "$(rps $t)" "$(pct $t 50%)" "$(pct $t 99%)" \
        "$(echo "$(rps $t) / $N" | bc -l)" "$(echo "$(pct $t 99%) - $D99" | bc -l)"
done
printf '\nreject vs seawall forwarding: %.2fx; reject run answered %s non-2xx (all rejected 503s expected)\n' \
    "$(echo "$(rps reject) / $(rps seawall)" | bc -l)" "$(non2xx reject)"
