#!/usr/bin/env bash
# cpu_cost.sh - the live agent's CPU cost per exchange in instructions,
# thread by thread, measured deterministically (issue 11): callgrind runs
# `repro capture -r` of a trace of wrk's requests, with one profile per
# thread, and the script prints the instructions per stored exchange of the
# capture thread (decode, reassembly, HTTP, redaction, rows: what the live
# agent's capture loop does) and of the store writer thread, and the
# functions that cost most in each.
#
# Why: bench/live_bench.sh is the target's measure, but this VM's speed
# drifts by +-10% between rounds, so a CPU cut of a few percent is lost in
# its noise. Instruction counts do not drift: compare two builds here
# first, then confirm the big ones with live_bench.sh's A/B mode.
#
# Caveat: valgrind hides the CPU's SHA extensions, so nettle's SHA-256 runs
# its plain code under callgrind (about 3k instructions per body digested,
# a few hundred cycles with SHA-NI on the real CPU).
#
# Usage: bench/cpu_cost.sh [--repro-bin PATH] [--pcap FILE] [--top N]
# Env:   REPRO_BIN (build/repro of this tree), PCAP (record one if unset:
#        nginx echoing each URI, wrk -t1 -c16 for 1 s, tcpdump on lo; needs
#        root), TOP (15)
# Needs: valgrind (callgrind_annotate), sqlite3; to record: root, nginx, wrk,
#        tcpdump, curl, python3.
# Exit:  0 = measured, 1 = a command failed, 64 = usage, 77 = skipped.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPRO_BIN=${REPRO_BIN:-$ROOT/build/repro}
PCAP=${PCAP:-}
TOP=${TOP:-15}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        --repro-bin) [ $# -ge 2 ] || { usage >&2; exit 64; }; REPRO_BIN=$2; shift ;;
        --pcap) [ $# -ge 2 ] || { usage >&2; exit 64; }; PCAP=$2; shift ;;
        --top) [ $# -ge 2 ] || { usage >&2; exit 64; }; TOP=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "cpu_cost: unknown argument '$1'" >&2; usage >&2; exit 64 ;;
    esac
    shift
done
[[ $TOP =~ ^[0-9]+$ ]] || { echo "cpu_cost: --top needs a number, not '$TOP'" >&2; exit 64; }

log() { printf 'cpu_cost: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
skip() { log "SKIP: $*"; exit 77; }

for tool in valgrind callgrind_annotate sqlite3; do
    command -v "$tool" >/dev/null || skip "cannot find '$tool' (apt-get install valgrind sqlite3)"
done
[ -x "$REPRO_BIN" ] || die "cannot run repro '$REPRO_BIN': build it (cmake --build build) or set REPRO_BIN"

work=$(mktemp -d "${TMPDIR:-/tmp}/repro-cpucost.XXXXXX")
nginx_pid=
cap_pid=
cleanup() {
    if [ -n "$cap_pid" ]; then kill -INT "$cap_pid" 2>/dev/null || true; wait "$cap_pid" 2>/dev/null || true; fi
    if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$PCAP" ]; then
    for tool in nginx wrk tcpdump curl python3; do
        command -v "$tool" >/dev/null || skip "cannot find '$tool' to record a trace (or give --pcap)"
    done
    [ "$(id -u)" = 0 ] || skip "recording a trace on lo needs root (or give --pcap)"
    # shellcheck source=bench/lib_nginx.sh
    . "$HERE/lib_nginx.sh"
    # shellcheck disable=SC2016 # nginx variables, not shell ones
    start_nginx "$work/nginx" '        location / { default_type text/plain; return 200 "$request_uri\n"; }' ||
        die "cannot start nginx (see above)"
    printf 'n = 0\nfunction request() n = n + 1 return wrk.format(nil, "/c/" .. n) end\n' > "$work/u.lua"
    PCAP=$work/trace.pcap
    tcpdump -i lo -B 32768 -w "$PCAP" "tcp port $port" 2> "$work/tcpdump.err" &
    cap_pid=$!
    wait_listening "$work/tcpdump.err" "$cap_pid" || die "tcpdump did not start: $(cat "$work/tcpdump.err")"
    wrk -t1 -c16 -d1s -s "$work/u.lua" "http://127.0.0.1:$port/" > "$work/wrk.out" || die "wrk failed"
    sleep 2 # tcpdump reads a block the kernel retires after its 1 s timeout (bench/README.md)
    kill -INT "$cap_pid"; wait "$cap_pid" || true; cap_pid=
    log "recorded $(grep -o '[0-9]* requests' "$work/wrk.out" | head -1) into a trace"
fi
[ -r "$PCAP" ] || die "cannot read the trace '$PCAP'"

valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$work/cg.%p" \
    "$REPRO_BIN" capture -r "$PCAP" --db "$work/c.db" --quiet > "$work/valgrind.out" 2>&1 ||
    { rc=$?; [ "$rc" = 1 ] || die "repro capture under callgrind exited $rc: $(tail -n 3 "$work/valgrind.out")"; }
n=$(sqlite3 "$work/c.db" "SELECT count(*) FROM exchanges")
[ "$n" -gt 0 ] || die "nothing was stored from '$PCAP'"

# Thread 1 is main (the capture loop's work), the writer is the thread
# whose profile holds writer_main.
echo "repro: $REPRO_BIN"
echo "trace: $PCAP ($n exchanges stored)"
for f in "$work"/cg.*-*; do
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
    [ "${total:-0}" -gt 0 ] || continue
    if grep -q 'writer_main' "$f"; then name="store writer"; else name="capture"; fi
    printf '\n%s thread: %d instructions per exchange\n' "$name" $((total / n))
    callgrind_annotate "$f" 2>/dev/null |
        awk -v n="$n" -v top="$TOP" '
            /^-+$/ { dash++; next }
            dash >= 3 && NF >= 2 && $1 ~ /^[0-9,]+$/ && !/PROGRAM TOTALS/ && shown < top {
                ir = $1; gsub(",", "", ir)
                fn = $NF == "]" ? $(NF-1) : $0; sub(/^ *[0-9,]+ +\([ 0-9.]+%\) +/, "", fn)
                printf "  %7d  %s\n", ir / n, fn; shown++
            }'
done
