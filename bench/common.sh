# Shared set-up of the benchmark scripts (sourced, not run): a work directory removed on exit
# with every process listed in PIDS (and every nginx, via the nginx.pid files under it), nginx and wrk installed
# from Debian when missing, a release build of seawall in $SEAWALL, and nginx_conf / nginx_start
# for the scripts' own nginx instances.
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

# nginx_conf DIR MAIN HTTP: writes DIR/nginx.conf with the MAIN directives (worker_processes …)
# and the server/upstream blocks in HTTP; its pid file, logs and temp files live under DIR.
nginx_conf() {
    mkdir -p "$1/logs"
    cat > "$1/nginx.conf" <<NGINX
$2
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/body; proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;
    keepalive_requests 1000000;
    $3
}
NGINX
}
# nginx_start DIR MAIN HTTP: nginx_conf, then starts that nginx (cleanup stops it).
nginx_start() {
    nginx_conf "$@"
    "$NGINX" -c "$1/nginx.conf" -p "$1"
}
