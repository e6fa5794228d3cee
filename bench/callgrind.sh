# shellcheck shell=bash
# Counting a server's user-space cost per request under callgrind (sourced after bench/common.sh,
# not run), shared by bench/instructions.sh and bench/peers/instructions.sh. Reads SECS (seconds
# counted); CALLGRIND_OUT=<dir> keeps the callgrind files there for callgrind_annotate.

# count NAME URL WRK_ARGS command... -> "| NAME | requests | Ir | D1 misses | I1 misses |" per
# request: the server runs under callgrind, wrk -t1 -c8 warms it for 2 s, then SECS are counted.
# WRK_ARGS is empty or extra wrk options ("-s FILE"), split on spaces.
count() {
    local name=$1 url=$2 wrk_args=$3
    shift 3
    valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no \
        --callgrind-out-file="$WORK/$name.%p" "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    for _ in $(seq 150); do
        curl -s -o /dev/null "$url" 2>/dev/null && break
        sleep 0.2
    done
    # shellcheck disable=SC2086 # $wrk_args is empty or "-s FILE": meant to split
    wrk -t1 -c8 -d2s $wrk_args "$url" >/dev/null # warm up: connections and pools open, caches filled
    callgrind_control -i on "$pid" >/dev/null 2>&1
    # shellcheck disable=SC2086 # as above
    wrk -t1 -c8 -d"${SECS}s" $wrk_args "$url" >"$WORK/$name.wrk"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -n "${CALLGRIND_OUT:-}" ]; then
        mkdir -p "$CALLGRIND_OUT" && cp "$WORK/$name".* "$CALLGRIND_OUT/"
    fi
    local requests file
    requests=$(awk '/requests in/{print $1}' "$WORK/$name.wrk")
    # shellcheck disable=SC2010 # the largest dump among callgrind's NAME.PID files
    file=$(ls -S "$WORK/$name".* | grep -v '\.log$\|\.wrk$' | head -1)
    # Totals in the order Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw.
    callgrind_annotate "$file" 2>/dev/null | awk -v n="$name" -v r="$requests" '/PROGRAM TOTALS/ {
        for (i = 1; i <= NF; i++) gsub(",", "", $i)
        ir = $1; i1 = $7; d1r = $9; d1w = $11
        printf "| %s | %d | %.0f | %.0f | %.0f |\n", n, r, ir / r, (d1r + d1w) / r, i1 / r
    }'
}
