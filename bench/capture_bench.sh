#!/usr/bin/env bash
# capture_bench.sh - offline capture speed of `repro capture` against two
# anchors, tshark (HTTP dissection) and tcpdump (read + write, no dissection),
# on one large loopback HTTP trace.
#
# The trace is recorded once (nginx + wrk on loopback, tcpdump writing it) and
# cached; the timing, the report and the JSON file are done by
# capture_bench.py next to this script. See bench/README.md.
#
# Usage: bench/capture_bench.sh [--rerecord] [--repro-bin PATH]
#                               [--anchors-only] [--record-only] [--no-rss-check]
# Env:   RUNS (5), RUNS_TSHARK (3), REPRO_BIN (./build/repro from the repo root),
#        BENCH_CACHE (~/.cache/repro-bench), WRK_DURATION (4s),
#        TCPDUMP_BUFFER_KIB (65536)
# Exit:  0 = benchmark ran (targets are informational), 1 = a command failed,
#        64 = usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

CACHE=${BENCH_CACHE:-$HOME/.cache/repro-bench}
RUNS=${RUNS:-5}
RUNS_TSHARK=${RUNS_TSHARK:-3}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-16}
WRK_DURATION=${WRK_DURATION:-4s}
TCPDUMP_BUFFER_KIB=${TCPDUMP_BUFFER_KIB:-65536}
REPRO_BIN=${REPRO_BIN:-}

rerecord=0
anchors_only=0
record_only=0
rss_check=1

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case $1 in
        --rerecord) rerecord=1 ;;
        --repro-bin) [ $# -ge 2 ] || { usage >&2; exit 64; }; REPRO_BIN=$2; shift ;;
        --repro-bin=*) REPRO_BIN=${1#*=} ;;
        --anchors-only) anchors_only=1 ;;
        --record-only) record_only=1 ;;
        --no-rss-check) rss_check=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "capture_bench: unknown argument '$1'" >&2; usage >&2; exit 64 ;;
    esac
    shift
done

log() { printf 'capture_bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The default binary is relative to the repo root; a path given by the user
# (env or --repro-bin) is relative to the current directory.
if [ -z "$REPRO_BIN" ]; then
    REPRO_BIN=$ROOT/build/repro
fi
case $REPRO_BIN in
    /*) ;;
    */*) REPRO_BIN=$PWD/$REPRO_BIN ;;
    *) REPRO_BIN=$(command -v "$REPRO_BIN" || echo "$PWD/$REPRO_BIN") ;;
esac

for tool in nginx wrk tcpdump tshark curl python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || die "cannot find '$tool' in PATH"
done
if [ "$anchors_only" = 0 ] && [ "$record_only" = 0 ] && [ ! -x "$REPRO_BIN" ]; then
    die "cannot run repro '$REPRO_BIN': not an executable (build it, set REPRO_BIN, or use --anchors-only)"
fi

mkdir -p "$CACHE"
TRACE=$CACHE/wrk16.pcap
TRACE_META=$CACHE/wrk16.meta.json
TRACE2X=$CACHE/wrk16x2.pcap

# ---------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------

work=
nginx_pid=
tcpdump_pid=
cleanup() {
    # Only the processes this script started, by pid.
    if [ -n "$tcpdump_pid" ]; then kill -INT "$tcpdump_pid" 2>/dev/null || true; wait "$tcpdump_pid" 2>/dev/null || true; fi
    if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
    if [ -n "$work" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port, start_nginx DIR (sets nginx_pid and port) and wait_listening: shared with the
# other benchmarks.
. "$HERE/lib_nginx.sh"

# record_once OUT DURATION THREADS BUFFER_KIB: one nginx + tcpdump + wrk run.
# Writes $work/wrk.out and $work/tcpdump.err; sets rec_requests, rec_dropped.
record_once() {
    local out=$1 duration=$2 threads=$3 buffer=$4
    start_nginx "$work/nginx" || die "cannot start nginx (see above)"
    log "nginx (pid $nginx_pid) listening on 127.0.0.1:$port"

    rm -f "$out"
    tcpdump -i lo -s 0 -B "$buffer" -w "$out" "tcp port $port" 2> "$work/tcpdump.err" &
    tcpdump_pid=$!
    wait_listening "$work/tcpdump.err" "$tcpdump_pid" ||
        die "tcpdump did not start: $(tr '\n' ' ' < "$work/tcpdump.err")"

    log "wrk -t$threads -c$WRK_CONNS -d$duration http://127.0.0.1:$port/"
    wrk -t"$threads" -c"$WRK_CONNS" -d"$duration" "http://127.0.0.1:$port/" > "$work/wrk.out" ||
        die "wrk failed: $(cat "$work/wrk.out")"
    # tcpdump exits on SIGINT without reading a ring-buffer block the kernel
    # has not retired yet (TPACKET_V3 retires a partly filled block after
    # tcpdump's 1 s timeout), so the last few hundred packets were missing
    # with a 0.2 s pause. Wait past the timeout before stopping it.
    sleep 2

    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" || die "tcpdump exited with an error: $(cat "$work/tcpdump.err")"
    tcpdump_pid=
    kill -QUIT "$nginx_pid"
    wait "$nginx_pid" || true
    nginx_pid=

    rec_requests=$(awk '/requests in/ {print $1; exit}' "$work/wrk.out")
    rec_dropped=$(awk '/packets dropped by kernel/ {print $1; exit}' "$work/tcpdump.err")
    rec_captured=$(awk '/packets captured/ {print $1; exit}' "$work/tcpdump.err")
    [ -n "$rec_requests" ] || die "cannot read the request count from wrk: $(cat "$work/wrk.out")"
    [ -n "$rec_dropped" ] || die "cannot read the drop count from tcpdump: $(cat "$work/tcpdump.err")"
    log "wrk: $rec_requests requests; tcpdump: $rec_captured packets captured, $rec_dropped dropped by kernel"
}

# record_trace OUT META DURATION: records, and if tcpdump drops packets,
# retries with a 4x buffer, then with one wrk thread, then with half the
# duration. The settings that were used end up in META.
record_trace() {
    local out=$1 meta=$2 duration=$3
    local threads=$WRK_THREADS buffer=$TCPDUMP_BUFFER_KIB step notes=""
    work=$(mktemp -d "${TMPDIR:-/tmp}/repro-bench-rec.XXXXXX")
    for step in 0 1 2 3; do
        record_once "$out.part" "$duration" "$threads" "$buffer"
        [ "$rec_dropped" = 0 ] && break
        case $step in
            0) buffer=$((buffer * 4)); notes+="dropped $rec_dropped, retried with -B $buffer; " ;;
            1) threads=1; notes+="dropped $rec_dropped, retried with wrk -t1; " ;;
            2) duration=$(( ${duration%s} / 2 ))s; notes+="dropped $rec_dropped, retried with -d$duration; " ;;
            3) log "WARNING: tcpdump still dropped $rec_dropped packets; keeping this trace" ;;
        esac
    done
    mv "$out.part" "$out"
    python3 - "$meta" "$work/wrk.out" "$work/tcpdump.err" <<EOF
import json, sys, datetime, subprocess
meta, wrk_out, tcpdump_err = sys.argv[1:4]
def first_line(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    return (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else None
json.dump({
    "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "server_port": int("$port"),
    "port_source": "python bind(('127.0.0.1', 0)) just before nginx starts (nginx rejects listen :0)",
    "wrk_command": "wrk -t$threads -c$WRK_CONNS -d$duration http://127.0.0.1:$port/",
    "tcpdump_command": "tcpdump -i lo -s 0 -B $buffer -w FILE 'tcp port $port'",
    "wrk_requests": int("$rec_requests"),
    "tcpdump_captured": int("$rec_captured"),
    "tcpdump_dropped": int("$rec_dropped"),
    "notes": "$notes".strip(),
    "wrk_output": open(wrk_out).read(),
    "tcpdump_stderr": open(tcpdump_err).read(),
    "versions": {
        "nginx": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "tcpdump": first_line(["tcpdump", "--version"]),
    },
}, open(meta, "w"), indent=2)
EOF
    rm -rf "$work"
    work=
}

if [ "$rerecord" = 1 ] || [ ! -s "$TRACE" ] || [ ! -s "$TRACE_META" ]; then
    log "recording $TRACE"
    rm -f "$TRACE2X"
    record_trace "$TRACE" "$TRACE_META" "$WRK_DURATION"
else
    log "using cached $TRACE (--rerecord to record it again)"
fi

# The 2x trace for the RSS-vs-size check: the same trace twice, the second
# copy shifted past the end of the first so timestamps stay monotonic (the
# copies reuse 4-tuples, which is legal after the first copy's FINs).
if [ "$rss_check" = 1 ] && [ ! -s "$TRACE2X" ]; then
    if command -v mergecap >/dev/null && command -v editcap >/dev/null; then
        span=$(python3 "$HERE/capture_bench.py" --span-only "$TRACE")
        shift_s=$((span + 10))
        editcap -F pcap -t "$shift_s" "$TRACE" "$CACHE/wrk16.shifted.pcap"
        mergecap -F pcap -a -w "$TRACE2X.part" "$TRACE" "$CACHE/wrk16.shifted.pcap"
        rm -f "$CACHE/wrk16.shifted.pcap"
        mv "$TRACE2X.part" "$TRACE2X"
        log "built $TRACE2X with mergecap (second copy shifted by ${shift_s}s)"
    else
        log "mergecap/editcap not found; recording a second trace for twice as long"
        d=${WRK_DURATION%s}
        record_trace "$TRACE2X" "$CACHE/wrk16x2.meta.json" "$((d * 2))s"
    fi
fi

if [ "$record_only" = 1 ]; then
    python3 "$HERE/capture_bench.py" --describe-only --trace "$TRACE" --trace-meta "$TRACE_META"
    exit 0
fi

# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------

mkdir -p "$HERE/results"
args=(--trace "$TRACE" --trace-meta "$TRACE_META"
      --runs "$RUNS" --runs-tshark "$RUNS_TSHARK"
      --tmp-dir "$CACHE/tmp" --repo-root "$ROOT"
      --json "$HERE/results/capture-$(date +%Y%m%d-%H%M%S).json")
if [ "$anchors_only" = 0 ]; then
    args+=(--repro-bin "$REPRO_BIN")
    [ "$rss_check" = 1 ] && args+=(--trace2x "$TRACE2X")
fi
exec python3 "$HERE/capture_bench.py" "${args[@]}"
