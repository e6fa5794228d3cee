# Shared set-up of the benchmark scripts (sourced, not run): a work directory removed on exit
# with every process listed in PIDS (and every nginx, via the nginx.pid files under it), nginx and wrk installed
# from Debian when missing, and a release build of seawall in $SEAWALL.
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    find "$WORK" -name nginx.pid -exec sh -c 'kill "$(cat "$1")" 2>/dev/null' _ {} \; || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
if ! need nginx || ! need wrk; then
    echo "installing nginx and wrk" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q -p seawall
SEAWALL=${CARGO_TARGET_DIR:-target}/release/seawall
mkdir -p "$WORK/logs"
