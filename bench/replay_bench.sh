#!/usr/bin/env bash
# replay_bench.sh - the replay engine against nginx, next to wrk on the same
# nginx in the same run (the anchor), and its timing fidelity.
#
#   throughput: replay_engine_bench max (N recorded requests over 16
#               keep-alive connections at --speed max) vs `wrk -cCONNS`;
#               median of RUNS alternating runs each, and the ratio.
#   timing:     a trace recorded at RATE requests/s for SECONDS replayed at
#               speed 1: schedule error p50/p99/p99.9/max (median over RUNS).
#   command:    the whole `repro replay --speed max` (read from the database,
#               compare every response, store every result) on the wrk trace
#               capture_bench.sh records (BENCH_CACHE/wrk16.pcap, recorded
#               first if missing: needs root), against the same nginx page,
#               next to wrk; median of RUNS, the ratio. The trace (97,002
#               exchanges) is replayed CMD_LOOPS times in one run (--loop),
#               so one run sends a few hundred thousand requests.
#
# Usage: bench/replay_bench.sh [--bin DIR] [--repro BIN]
#        (DIR holds replay_engine_bench, default build/bench; BIN default build/repro)
# Env:   RUNS (5), N (200000), CONNS (16), WRK_THREADS (2), WRK_DURATION (5s),
#        RATE (10000), SECONDS_TIMING (10), CMD_LOOPS (3)
# Exit:  0 = benchmark ran (targets are informational), 1 = a command failed,
#        64 = usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-5}
N=${N:-200000}
CONNS=${CONNS:-16}
WRK_THREADS=${WRK_THREADS:-2}
WRK_DURATION=${WRK_DURATION:-5s}
RATE=${RATE:-10000}
SECONDS_TIMING=${SECONDS_TIMING:-10}
CMD_LOOPS=${CMD_LOOPS:-3}
BIN=$ROOT/build/bench
REPRO=$ROOT/build/repro
CACHE=${BENCH_CACHE:-$HOME/.cache/repro-bench}

while [ $# -gt 0 ]; do
    case $1 in
        --bin) [ $# -ge 2 ] || exit 64; BIN=$2; shift ;;
        --repro) [ $# -ge 2 ] || exit 64; REPRO=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "replay_bench: unknown argument '$1'" >&2; exit 64 ;;
    esac
    shift
done

log() { printf 'replay_bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
for tool in nginx wrk curl python3; do
    command -v "$tool" >/dev/null || die "cannot find '$tool' in PATH"
done
ENGINE=$BIN/replay_engine_bench
[ -x "$ENGINE" ] || die "cannot run '$ENGINE': build the project first (cmake --build build)"

work=$(mktemp -d)
nginx_pid=
cleanup() {
    if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. "$HERE/lib_nginx.sh"

start_nginx "$work/nginx" || die "cannot start nginx"
log "nginx on 127.0.0.1:$port"

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }

wrk_rates=() replay_rates=()
for i in $(seq "$RUNS"); do
    w=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$WRK_DURATION" "http://127.0.0.1:$port/index.html" |
        awk '/Requests\/sec/ {print $2}')
    r=$("$ENGINE" max "$port" "$N" "$CONNS" /index.html | field requests_per_s)
    log "run $i: wrk $w req/s, replay $r req/s"
    wrk_rates+=("$w") replay_rates+=("$r")
done
wm=$(printf '%s\n' "${wrk_rates[@]}" | median)
rm_=$(printf '%s\n' "${replay_rates[@]}" | median)
ratio=$(python3 -c "print(f'{$rm_ / $wm:.2f}')")
printf 'throughput: wrk -c%s %.0f req/s, replay --speed max %.0f req/s (median of %s): ratio %s (target >= 0.8)\n' \
    "$CONNS" "$wm" "$rm_" "$RUNS" "$ratio"

p50s=() p99s=() p999s=() maxs=()
for i in $(seq "$RUNS"); do
    out=$("$ENGINE" timing "$port" "$RATE" "$SECONDS_TIMING" "$CONNS" /index.html)
    log "timing run $i: $out"
    p50s+=("$(echo "$out" | field sched_p50_us)") p99s+=("$(echo "$out" | field sched_p99_us)")
    p999s+=("$(echo "$out" | field sched_p999_us)") maxs+=("$(echo "$out" | field sched_max_us)")
done
printf 'timing: %s req/s for %s s at speed 1, schedule error (median of %s runs): p50 %s us, p99 %s us (target <= 200), p99.9 %s us, max %s us\n' \
    "$RATE" "$SECONDS_TIMING" "$RUNS" \
    "$(printf '%s\n' "${p50s[@]}" | median)" "$(printf '%s\n' "${p99s[@]}" | median)" \
    "$(printf '%s\n' "${p999s[@]}" | median)" "$(printf '%s\n' "${maxs[@]}" | median)"

# The whole command on a recorded trace.
if [ ! -f "$CACHE/wrk16.pcap" ]; then
    log "no $CACHE/wrk16.pcap: recording it with capture_bench.sh --record-only"
    "$HERE/capture_bench.sh" --record-only >&2 || die "cannot record the wrk trace"
fi
db=$work/replay.db
"$REPRO" capture -r "$CACHE/wrk16.pcap" --db "$db" >/dev/null 2>&1 || die "cannot import the trace"
cmd_rates=() wrk2_rates=()
for i in $(seq "$RUNS"); do
    w=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"$WRK_DURATION" "http://127.0.0.1:$port/index.html" |
        awk '/Requests\/sec/ {print $2}')
    out=$("$REPRO" replay --db "$db" --target "127.0.0.1:$port" --speed max --loop "$CMD_LOOPS" \
          --allow-production-target 2>&1 >/dev/null | grep 'requests/s' || true)
    r=$(echo "$out" | sed -n 's/.*(\([0-9]*\) requests\/s).*/\1/p')
    [ -n "$r" ] || die "repro replay printed no rate: $out"
    log "command run $i: wrk $w req/s, repro replay $r req/s ($out)"
    wrk2_rates+=("$w") cmd_rates+=("$r")
done
wm=$(printf '%s\n' "${wrk2_rates[@]}" | median)
cm=$(printf '%s\n' "${cmd_rates[@]}" | median)
printf 'command: wrk -c%s %.0f req/s, repro replay --speed max (compare + store every result) %.0f req/s (median of %s): ratio %s (target >= 0.8)\n' \
    "$CONNS" "$wm" "$cm" "$RUNS" "$(python3 -c "print(f'{$cm / $wm:.2f}')")"
