# Shared by bench/pipeline.sh and bench/pipeline-disk.sh (sourced, not run); they set SW, ADMIN,
# CONNS, EVENTS and WORK.
# stats P: `accepted delivered dropped pending sampled_out` of pipeline P's output `out`.
stats() { python3 bench/pipeline/stats.py "127.0.0.1:$ADMIN" "$1" out; }

# drive P SECS: wrk against pipeline P for SECS seconds, then waits (up to a minute) for the
# drain; prints "delivered_per_s accepted dropped elapsed".
drive() {
    local p=$1 secs=$2 start end a d x pending
    start=$(date +%s.%N)
    PIPELINE=$p EVENTS=$EVENTS wrk -t2 -c"$CONNS" -d"${secs}s" -s bench/pipeline/ingest.lua \
        "http://127.0.0.1:$SW" > "$WORK/wrk-$p.txt"
    for _ in $(seq 600); do
        read -r a d x pending _ < <(stats "$p")
        [ "$pending" = 0 ] && break
        sleep 0.1
    done
    end=$(date +%s.%N)
    python3 -c "import sys; a,d,x,s,e=map(float,sys.argv[1:]); print(f'{d/(e-s):.0f} {a:.0f} {x:.0f} {e-s:.1f}')" \
        "$a" "$d" "$x" "$start" "$end"
}
