#!/usr/bin/env bash
# live_bench.sh - live capture at full load: what `repro capture -i lo` costs
# the service it watches and what it stores, next to tcpdump (issue 11,
# "Speed").
#
# nginx (one worker) on a free loopback port answers every request with its
# own URI (`return 200 "$request_uri\n"`); wrk -cCONNS sends requests whose
# URIs are all different (/bROUND/THREAD/N) at full rate for DURATION
# seconds. RUNS rounds, each of three runs (four for an A/B run) in this
# order:
#   none     no capture
#   tcpdump  tcpdump -i lo -B TCPDUMP_BUFFER_KIB -w FILE 'tcp port P'
#   repro    repro capture -i lo --db DB 'tcp port P' (its default buffer)
#   repro_b  only with REPRO_BIN_B: the same with that second build (and
#            REPRO_ARGS_B if set, else REPRO_ARGS); in even rounds it runs
#            before repro
# After wrk ends the capture keeps running DRAIN seconds, then gets SIGINT.
# Every exchange repro stored is checked in the database: complete, status
# 200, response body equal to its own request URI. Reported per run and as
# medians: wrk's rate and completed requests, kernel drops, stored-complete
# / wrk-completed, the agent's CPU us per exchange and peak RSS. The report
# also goes to bench/results/live-YYYYmmdd-HHMMSS.{txt,json}.
# A/B run: repro_b is checked and reported like repro, and the report adds
# its ratios to repro (service rate, CPU us per exchange, peak RSS) round
# by round, their medians and the ratios of the medians: the VM's speed
# swings between runs, so only ratios within one round compare two builds.
#
# Usage: bench/live_bench.sh [--repro-bin PATH] [--repro-bin-b PATH]
# Env:   DURATION (10), RUNS (3), WRK_THREADS (1), WRK_CONNS (16), DRAIN (2),
#        TCPDUMP_BUFFER_KIB (32768), REPRO_BIN (build/repro of this tree),
#        REPRO_ARGS (extra options for repro capture, none),
#        REPRO_BIN_B (a second build for an A/B run, none; --repro-bin-b),
#        REPRO_ARGS_B (repro_b's extra options; REPRO_ARGS when unset),
#        BENCH_TMP (work directory parent, ${TMPDIR:-/tmp}; keep it on disk)
# Needs: root (capture on lo), nginx, wrk, tcpdump, curl, python3,
#        /usr/bin/time.
# Exit:  0 = benchmark ran (targets are informational), 1 = a command failed,
#        64 = usage, 77 = skipped (a tool is missing or not root).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-16}
DRAIN=${DRAIN:-2}
TCPDUMP_BUFFER_KIB=${TCPDUMP_BUFFER_KIB:-32768}
REPRO_BIN=${REPRO_BIN:-$ROOT/build/repro}
REPRO_ARGS=${REPRO_ARGS:-}
REPRO_BIN_B=${REPRO_BIN_B:-}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}
read -r -a repro_args <<< "$REPRO_ARGS"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case $1 in
        --repro-bin) [ $# -ge 2 ] || { usage >&2; exit 64; }; REPRO_BIN=$2; shift ;;
        --repro-bin=*) REPRO_BIN=${1#*=} ;;
        --repro-bin-b) [ $# -ge 2 ] || { usage >&2; exit 64; }; REPRO_BIN_B=$2; shift
                       [ -n "$REPRO_BIN_B" ] || { echo "live_bench: --repro-bin-b needs a path" >&2; exit 64; } ;;
        --repro-bin-b=*) REPRO_BIN_B=${1#*=}
                         [ -n "$REPRO_BIN_B" ] || { echo "live_bench: --repro-bin-b needs a path" >&2; exit 64; } ;;
        -h|--help) usage; exit 0 ;;
        *) echo "live_bench: unknown argument '$1'" >&2; usage >&2; exit 64 ;;
    esac
    shift
done
for v in DURATION RUNS WRK_THREADS WRK_CONNS DRAIN TCPDUMP_BUFFER_KIB STOP_TIMEOUT; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -eq 0 ]; then
        echo "live_bench: $v must be a positive whole number, not '${!v}'" >&2; exit 64
    fi
done
# REPRO_ARGS_B set (even to nothing) gives repro_b its own options.
if [ -n "${REPRO_ARGS_B+set}" ] && [ -z "$REPRO_BIN_B" ]; then
    echo "live_bench: REPRO_ARGS_B is for repro_b: set REPRO_BIN_B (or --repro-bin-b) too" >&2; exit 64
fi
REPRO_ARGS_B=${REPRO_ARGS_B-$REPRO_ARGS}
read -r -a repro_args_b <<< "$REPRO_ARGS_B"
modes=(none tcpdump repro)
[ -z "$REPRO_BIN_B" ] || modes+=(repro_b)

log() { printf 'live_bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
skip() { log "SKIP: $*"; exit 77; }

for tool in nginx wrk tcpdump curl python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || skip "cannot find '$tool' (scripts/bootstrap.sh deps installs it)"
done
[ "$(id -u)" = 0 ] || skip "capturing on lo needs root"
case $REPRO_BIN in /*) ;; *) REPRO_BIN=$PWD/$REPRO_BIN ;; esac
[ -x "$REPRO_BIN" ] || die "cannot run repro '$REPRO_BIN': build it (cmake --build build) or set REPRO_BIN"
if [ -n "$REPRO_BIN_B" ]; then
    case $REPRO_BIN_B in /*) ;; *) REPRO_BIN_B=$PWD/$REPRO_BIN_B ;; esac
    [ -x "$REPRO_BIN_B" ] || die "cannot run repro_b '$REPRO_BIN_B': build it or fix REPRO_BIN_B"
    if [ "$REPRO_BIN_B" -ef "$REPRO_BIN" ] && [ "$REPRO_ARGS_B" = "$REPRO_ARGS" ]; then
        log "repro_b is repro again ('$REPRO_BIN'): an A/A run, which shows what running second does"
    fi
fi

work=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/repro-livebench.XXXXXX")
nginx_pid=
cap_pid=   # /usr/bin/time wrapping the capture
cap_child= # the capture itself (GNU time ignores SIGINT while it waits)
# The capture runs under /usr/bin/time, which ignores SIGINT while it
# waits: the signal goes to its child.
child_of() {
    local c
    c=$(cat "/proc/$1/task/$1/children" 2>/dev/null || true)
    echo "${c%% *}"
}
# stop_capture SECONDS: SIGINT to the capture, SIGKILL if it is still there
# SECONDS later; then reaps it. Sets cap_rc and cap_stop (sigint or killed).
stop_capture() {
    local child=${cap_child:-$(child_of "$cap_pid")}
    cap_stop=sigint cap_rc=0
    if [ -n "$child" ]; then
        kill -INT "$child" 2>/dev/null || true
        for _ in $(seq $(($1 * 10))); do
            kill -0 "$child" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$child" 2>/dev/null; then
            kill -KILL "$child" 2>/dev/null || true
            cap_stop=killed
        fi
    else
        kill -KILL "$cap_pid" 2>/dev/null || true # time has not started it yet
    fi
    wait "$cap_pid" || cap_rc=$?
    cap_pid='' cap_child=''
}
cleanup() {
    # Only the processes this script started, by pid.
    if [ -n "$cap_pid" ]; then stop_capture 5; fi
    if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=bench/lib_nginx.sh
. "$HERE/lib_nginx.sh"

# Every request answered with its own URI; the counters through a unix
# socket, so that they are not captured by 'tcp port P'.
# shellcheck disable=SC2016 # nginx variables, not shell ones
echo_conf='        location / { default_type text/plain; return 200 "$request_uri\n"; }'
status_conf="    server { listen unix:$work/nginx/status.sock; location / { stub_status; } }"
start_nginx "$work/nginx" "$echo_conf" "$status_conf" || die "cannot start nginx (see above)"
log "nginx (pid $nginx_pid) on 127.0.0.1:$port"
body=$(curl -fsS "http://127.0.0.1:$port/probe/1") || die "nginx does not answer /probe/1"
[ "$body" = /probe/1 ] || die "nginx answered /probe/1 with '$body', not its URI"
nginx_requests() {
    curl -fsS --unix-socket "$work/nginx/status.sock" http://localhost/ |
        awk 'f {print $3; exit} /server accepts handled requests/ {f=1}'
}
[ -n "$(nginx_requests)" ] || die "cannot read nginx's stub_status counters"

# wrk: every URI unique (a counter per thread plus the thread's number); at
# the end the number of requests generated, i.e. written, which is at most
# CONNS more than the completed ones wrk counts.
cat > "$work/unique.lua" <<'EOF'
local threads = {}
function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end
function init(args)
    prefix = args[1] or "u"
    n = 0
end
function request()
    n = n + 1
    return wrk.format(nil, "/" .. prefix .. "/" .. tid .. "/" .. n)
end
function done(summary, latency, requests)
    local sent = 0
    for _, t in ipairs(threads) do sent = sent + t:get("n") end
    io.write(string.format("live_bench: sent %d completed %d\n", sent, summary.requests))
end
EOF

mkdir -m 0700 "$work/cap"
# run_one ROUND MODE: one wrk run with capture MODE (none, tcpdump, repro,
# repro_b);
# leaves its files in $work/ROUND-MODE/ and appends a line to rounds.jsonl.
run_one() {
    local round=$1 mode=$2 dir=$work/$1-$2 before after cmd=()
    local out=$work/cap/$1-$2
    mkdir -p "$dir"
    case $mode in
        none) ;;
        tcpdump) cmd=(tcpdump -i lo -B "$TCPDUMP_BUFFER_KIB" -w "$out.pcap" "tcp port $port") ;;
        repro) cmd=("$REPRO_BIN" capture -i lo --db "$out.db" "${repro_args[@]}" "tcp port $port") ;;
        repro_b) cmd=("$REPRO_BIN_B" capture -i lo --db "$out.db" "${repro_args_b[@]}" "tcp port $port") ;;
    esac
    if [ "$mode" != none ]; then
        printf '%q ' "${cmd[@]}" > "$dir/cmd"
        /usr/bin/time -f '%e %U %S %M' -o "$dir/time" "${cmd[@]}" 2> "$dir/stderr" &
        cap_pid=$!
        wait_listening "$dir/stderr" "$cap_pid" || die "$mode did not start: $(tr '\n' ' ' < "$dir/stderr")"
        cap_child=$(child_of "$cap_pid")
        [ -n "$cap_child" ] || die "cannot find the pid of $mode under /usr/bin/time (pid $cap_pid)"
    fi
    before=$(nginx_requests)
    wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" -s "$work/unique.lua" \
        "http://127.0.0.1:$port/" -- "b$round" > "$dir/wrk.out" 2>&1 ||
        die "wrk failed: $(cat "$dir/wrk.out")"
    after=$(nginx_requests)
    # The status request that read `after` is counted in it.
    echo $((after - before - 1)) > "$dir/nginx_served"
    if [ "$mode" != none ]; then
        # tcpdump (TPACKET_V3) does not read a ring block the kernel has not
        # retired yet when it gets SIGINT (bench/README.md, capture_bench):
        # wait past its 1 s block timeout so both tools see the last packets.
        sleep "$DRAIN"
        stop_capture "$STOP_TIMEOUT"
        [ "$cap_stop" = sigint ] || log "$mode did not stop within $STOP_TIMEOUT s of SIGINT: killed"
        echo "$cap_stop" > "$dir/stop"
        echo "$cap_rc" > "$dir/rc"
    fi
    python3 "$HERE/live_bench.py" run --round "$round" --mode "$mode" --dir "$dir" \
        --out "$out" >> "$work/rounds.jsonl" || die "cannot analyse $round-$mode"
    rm -f "$out".*
    tail -n 1 "$work/rounds.jsonl" | python3 "$HERE/live_bench.py" line >&2
}

# Warm-up (not counted): nginx, wrk and the page cache.
log "warm-up: 1 s of wrk"
wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d1s -s "$work/unique.lua" "http://127.0.0.1:$port/" -- warm > /dev/null ||
    die "wrk failed in the warm-up"

log "$RUNS rounds of $(IFS=/; echo "${modes[*]}"), ${DURATION} s of wrk -t$WRK_THREADS -c$WRK_CONNS each, drain ${DRAIN} s"
for round in $(seq "$RUNS"); do
    order=("${modes[@]}")
    # A/B: the two builds take turns at running first, so that neither
    # gets the position's effect in every round.
    if [ -n "$REPRO_BIN_B" ] && [ $((round % 2)) = 0 ]; then order=(none tcpdump repro_b repro); fi
    for mode in "${order[@]}"; do
        run_one "$round" "$mode"
    done
done

mkdir -p "$HERE/results"
stamp=$(date -u +%Y%m%d-%H%M%S)
ab_opts=()
if [ -n "$REPRO_BIN_B" ]; then
    ab_opts=(--repro-bin-b "$REPRO_BIN_B" --setting "repro_bin=$REPRO_BIN" --setting "repro_bin_b=$REPRO_BIN_B"
             --setting "repro_args_b=$REPRO_ARGS_B")
fi
python3 "$HERE/live_bench.py" report --rounds "$work/rounds.jsonl" --repo-root "$ROOT" \
    --repro-bin "$REPRO_BIN" --text "$HERE/results/live-$stamp.txt" --json "$HERE/results/live-$stamp.json" \
    --setting "duration_s=$DURATION" --setting "runs=$RUNS" --setting "wrk_threads=$WRK_THREADS" \
    --setting "wrk_conns=$WRK_CONNS" --setting "drain_s=$DRAIN" \
    --setting "tcpdump_buffer_kib=$TCPDUMP_BUFFER_KIB" --setting "repro_args=$REPRO_ARGS" \
    --setting "port=$port" "${ab_opts[@]}" \
    --command "wrk: wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s -s unique.lua http://127.0.0.1:$port/ -- bROUND"
log "report written to bench/results/live-$stamp.txt and .json"
