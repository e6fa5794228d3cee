#!/usr/bin/env bash
# Gateway throughput and latency, side by side in one run, on loopback:
#   direct   wrk -> upstream (its own nginx, answering a small JSON body)
#   nginx    wrk -> nginx reverse proxy (W workers, keepalive upstream) -> upstream
#   seawall  wrk -> seawall gateway (server.workers: W threads) -> upstream
#   reject   wrk -> seawall with the endpoint's breaker open (answers without the upstream)
# nginx and seawall run in pairs for ROUNDS rounds, the order flipping every round (nginx first,
# then seawall first: a drift in the host's load favours neither), and the medians are reported,
# with the median of the per-round ratios, since these machines are noisy. Both proxies send the
# upstream the same request: nginx is told to add `X-Forwarded-For`, which Seawall always adds.
# The proxy's own CPU time per request is read from /proc. A last pair of
# runs pipelines 16 requests per connection (wrk's cost per request falls, so the servers'
# capacity shows) for forwarding and rejection.
# With BASELINE=path/to/an/older/seawall, that build runs as a third proxy in the same rounds
# (the order rotating over all three), for a before/after comparison in one run.
# Prints Markdown tables. Installs nginx and wrk with apt-get when missing.
# Usage: [UPSTREAM_WORKERS=2] [BASELINE=bin] bench/proxy.sh [seconds=10] [connections=32] [workers=2] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-32}
WORKERS=${3:-2}
ROUNDS=${4:-3}
UP=18081 NGX=18082 SW=18083 ADMIN=18084 BASE=18085 BASE_ADMIN=18086
source bench/common.sh

# The upstream is its own nginx, so the proxy nginx has exactly W workers of its own.
nginx_start "$WORK/up" "worker_processes ${UPSTREAM_WORKERS:-2};" "server {
        listen 127.0.0.1:$UP;
        location /fail { default_type application/json; return 503 '{\"error\":\"overloaded\"}'; }
        location / { default_type application/json; return 200 '{\"id\":\"msg_1\",\"content\":\"ok\"}'; }
    }"
nginx_start "$WORK/proxy" "worker_processes $WORKERS;" "upstream backend { server 127.0.0.1:$UP; keepalive 64; }
    server {
        listen 127.0.0.1:$NGX;
        location / {
            proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }"

seawall_start() { # binary port admin-port name: starts it in its own session, trips /fail
    cat > "$WORK/$4.yaml" <<YAML
server: { listen: 127.0.0.1:$2, workers: $WORKERS }
admin: { listen: 127.0.0.1:$3 }
providers:
  - name: up
    kind: generic
    base_url: http://127.0.0.1:$UP
    circuit_breaker: { failure_threshold: 1, open_timeout: 1h, open_timeout_max: 1h }
YAML
    # In its own session, as each nginx is once it daemonizes: with the kernel's autogroup
    # scheduling (sched_autogroup_enabled) a session shares CPU as one group, and Seawall must
    # not share wrk's.
    TOKIO_WORKER_THREADS=$WORKERS SEAWALL_LOG=warn setsid "$1" run -c "$WORK/$4.yaml" >"$WORK/$4.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$3/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fs "http://127.0.0.1:$3/readyz" >/dev/null
    # Trip the /fail endpoint's breaker: one 503 with failure_threshold 1.
    curl -s -o /dev/null "http://127.0.0.1:$2/up/fail"
}
seawall_start "$SEAWALL" "$SW" "$ADMIN" seawall
SEAWALL_PID=${PIDS[-1]}
if [ -n "${BASELINE:-}" ]; then
    seawall_start "$BASELINE" "$BASE" "$BASE_ADMIN" baseline
    BASELINE_PID=${PIDS[-1]}
fi

cat > "$WORK/pipeline.lua" <<'LUA'
init = function(args)
   local r = {}
   for i = 1, tonumber(args[1]) do r[i] = wrk.format(nil) end
   req = table.concat(r)
end
request = function() return req end
LUA

cpu_ticks() { # pids... -> utime+stime in clock ticks
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
    echo "$t"
}
run() { # name url pids-of-the-server... ; writes $WORK/name.txt and name.cpu (us per request)
    local name=$1 url=$2 before after
    shift 2
    before=$(cpu_ticks "$@")
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$url" >"$WORK/$name.txt"
    after=$(cpu_ticks "$@")
    echo "($after - $before) * 1000000 / $(getconf CLK_TCK) / $(awk '/requests in/ {print $1}' "$WORK/$name.txt")" | bc -l >"$WORK/$name.cpu"
}
rps() { awk '/^Requests\/sec/ {print $2}' "$WORK/$1.txt"; }
pct() { # name 50%|99% -> milliseconds
    awk -v p="$2" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' "$WORK/$1.txt"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
workers_of() { pgrep -P "$(cat "$1")" | tr '\n' ' '; }

# shellcheck disable=SC2046 # the pid lists are meant to split
run direct "http://127.0.0.1:$UP/v1/messages" $(workers_of "$WORK/up/nginx.pid")
run_nginx() {
    # shellcheck disable=SC2046 # the pid list is meant to split
    run "nginx-$1" "http://127.0.0.1:$NGX/v1/messages" $(workers_of "$WORK/proxy/nginx.pid")
}
run_seawall() { run "seawall-$1" "http://127.0.0.1:$SW/up/v1/messages" "$SEAWALL_PID"; }
run_baseline() { run "baseline-$1" "http://127.0.0.1:$BASE/up/v1/messages" "$BASELINE_PID"; }
TARGETS=(nginx seawall)
[ -n "${BASELINE:-}" ] && TARGETS+=(baseline)
for r in $(seq "$ROUNDS"); do
    # Rotate the order every round, so a drift in the host's load favours none of them.
    for i in $(seq 0 $((${#TARGETS[@]} - 1))); do
        "run_${TARGETS[$(((i + r - 1) % ${#TARGETS[@]}))]}" "$r"
    done
done
run reject "http://127.0.0.1:$SW/up/fail" "$SEAWALL_PID"

summary() { # target -> "rps p50 p99 cpu" medians over its runs
    local runs
    case $1 in nginx | seawall | baseline) runs=$(seq -f "$1-%g" "$ROUNDS") ;; *) runs=$1 ;; esac
    printf '%s %s %s %s\n' \
        "$(for n in $runs; do rps "$n"; done | median)" \
        "$(for n in $runs; do pct "$n" 50%; done | median)" \
        "$(for n in $runs; do pct "$n" 99%; done | median)" \
        "$(for n in $runs; do cat "$WORK/$n.cpu"; done | median)"
}
read -r D_RPS D_P50 D_P99 D_CPU <<<"$(summary direct)"
read -r N_RPS N_P50 N_P99 N_CPU <<<"$(summary nginx)"
read -r S_RPS S_P50 S_P99 S_CPU <<<"$(summary seawall)"
read -r R_RPS R_P50 R_P99 R_CPU <<<"$(summary reject)"

printf '\nwrk -t2 -c%s -d%ss on %s cores (%s), %s proxy workers, medians of %s alternating rounds\n\n' \
    "$CONNS" "$SECS" "$(nproc)" "$(date -u +%F)" "$WORKERS" "$ROUNDS"
printf '| target | requests/s | p50 ms | p99 ms | vs nginx (rps) | added p99 over direct, ms | server CPU per request, us |\n'
printf '|---|---|---|---|---|---|---|\n'
row() { printf '| %s | %.0f | %.3f | %.3f | %.2f | %.3f | %.1f |\n' "$1" "$2" "$3" "$4" "$(echo "$2 / $N_RPS" | bc -l)" "$(echo "$4 - $D_P99" | bc -l)" "$5"; }
row direct "$D_RPS" "$D_P50" "$D_P99" "$D_CPU"
row nginx "$N_RPS" "$N_P50" "$N_P99" "$N_CPU"
row seawall "$S_RPS" "$S_P50" "$S_P99" "$S_CPU"
row reject "$R_RPS" "$R_P50" "$R_P99" "$R_CPU"
if [ -n "${BASELINE:-}" ]; then
    read -r B_RPS B_P50 B_P99 B_CPU <<<"$(summary baseline)"
    row baseline "$B_RPS" "$B_P50" "$B_P99" "$B_CPU"
    BRATIOS=$(for r in $(seq "$ROUNDS"); do printf '%.3f\n' "$(echo "$(rps "seawall-$r") / $(rps "baseline-$r")" | bc -l)"; done)
    printf '\nper round seawall/baseline: %s (median %.3fx); CPU per request %.1f vs %.1f us\n' \
        "$(echo "$BRATIOS" | tr '\n' ' ')" "$(echo "$BRATIOS" | median)" "$S_CPU" "$B_CPU"
fi
RATIOS=$(for r in $(seq "$ROUNDS"); do printf '%.3f\n' "$(echo "$(rps "seawall-$r") / $(rps "nginx-$r")" | bc -l)"; done)
printf '\nper round (requests/s): nginx %s | seawall %s\n' \
    "$(for r in $(seq "$ROUNDS"); do printf '%s ' "$(rps "nginx-$r")"; done)" \
    "$(for r in $(seq "$ROUNDS"); do printf '%s ' "$(rps "seawall-$r")"; done)"
printf 'per round seawall/nginx: %s\n' "$(echo "$RATIOS" | tr '\n' ' ')"
printf 'seawall vs nginx: throughput %.2fx (median of the per-round ratios %.2fx, %s of %s rounds >= 1), added p99 %.3f ms vs %.3f ms\n' \
    "$(echo "$S_RPS / $N_RPS" | bc -l)" "$(echo "$RATIOS" | median)" "$(echo "$RATIOS" | awk '$1 >= 1' | wc -l)" "$ROUNDS" \
    "$(echo "$S_P99 - $D_P99" | bc -l)" "$(echo "$N_P99 - $D_P99" | bc -l)"
printf 'reject vs seawall forwarding: %.2fx requests/s, %.2fx less CPU per request; reject run answered %s non-2xx\n' \
    "$(echo "$R_RPS / $S_RPS" | bc -l)" "$(echo "$S_CPU / $R_CPU" | bc -l)" "$(awk '/Non-2xx/ {print $5}' "$WORK/reject.txt")"

# Pipelined: 16 requests per write, so the load generator's own cost per request is small.
wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$WORK/pipeline.lua" "http://127.0.0.1:$SW/up/v1/messages" -- 16 >"$WORK/p-forward.txt"
wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$WORK/pipeline.lua" "http://127.0.0.1:$SW/up/fail" -- 16 >"$WORK/p-reject.txt"
wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$WORK/pipeline.lua" "http://127.0.0.1:$UP/v1/messages" -- 16 >"$WORK/p-direct.txt"
printf 'pipelined x16: seawall forwarding %s, rejection %s (%.2fx), upstream direct %s requests/s\n' \
    "$(rps p-forward)" "$(rps p-reject)" "$(echo "$(rps p-reject) / $(rps p-forward)" | bc -l)" "$(rps p-direct)"
