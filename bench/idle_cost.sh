#!/usr/bin/env bash
# idle_cost.sh - what running on "idle" CPU time costs the service on this
# machine: the question under the live agent's idle-first CPU (issue 11,
# docs/capture.md "CPU: idle first").
#
# SCHED_IDLE threads get a CPU only when nothing else wants one, so in
# theory they cost the service nothing. In a VM they can: a CPU that runs a
# SCHED_IDLE thread is not idle, so waking the service on it takes a
# reschedule interrupt (a VM exit) and a preemption instead of the cheap
# wakeup of a polling idle CPU (cpuidle-haltpoll), and the scheduler places
# wakeups on such CPUs as if they were idle. nginx and wrk ping-pong on
# loopback: each wakeup that gets slower lowers the request rate.
#
# nginx (one worker) on a free loopback port answers every request with its
# own URI; wrk -t1 -cCONNS runs DURATION seconds at full rate. ROUNDS
# rounds, each of two runs, in alternating order:
#   none      nothing else running
#   spinners  SPINNERS busy loops at SCHED_IDLE (chrt -i 0), one per CPU
#             by default
# Reported: each run's rate, each round's spinners / none ratio, and their
# median. A median near 1 means idle time is free here (idle-first costs
# the service only when the agent is raised); below 1, every CPU second the
# agent spends, even at SCHED_IDLE, costs the service.
#
# Usage: bench/idle_cost.sh
# Env:   DURATION (4), ROUNDS (6), WRK_CONNS (16), SPINNERS (nproc),
#        BENCH_TMP (work directory parent, ${TMPDIR:-/tmp})
# Needs: nginx, wrk, chrt, python3. No root.
# Exit:  0 = ran, 1 = a command failed, 64 = usage, 77 = skipped (a tool is
#        missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DURATION=${DURATION:-4}
ROUNDS=${ROUNDS:-6}
WRK_CONNS=${WRK_CONNS:-16}
SPINNERS=${SPINNERS:-$(nproc)}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }
case ${1:-} in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) echo "idle_cost: unknown argument '$1'" >&2; usage >&2; exit 64 ;;
esac
for v in DURATION ROUNDS WRK_CONNS SPINNERS; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -eq 0 ]; then
        echo "idle_cost: $v must be a positive whole number, not '${!v}'" >&2; exit 64
    fi
done
for tool in nginx wrk chrt python3; do
    command -v "$tool" > /dev/null || { echo "idle_cost: skipped: $tool is not installed" >&2; exit 77; }
done

log() { echo "idle_cost: $*" >&2; }
die() { log "$*"; exit 1; }
work=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/repro-idlecost.XXXXXX")
nginx_pid=
spin_pids=()
cleanup() {
    [ ${#spin_pids[@]} -eq 0 ] || kill "${spin_pids[@]}" 2> /dev/null || true
    [ -z "$nginx_pid" ] || kill -QUIT "$nginx_pid" 2> /dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=bench/lib_nginx.sh
. "$HERE/lib_nginx.sh"

start_nginx "$work/nginx" '        location / { default_type text/plain; return 200 "$request_uri\n"; }' ||
    die "nginx did not start: $(cat "$work/nginx/error.log" 2> /dev/null)"
cat > "$work/unique.lua" << 'EOF'
local n = 0
function request()
    n = n + 1
    return wrk.format(nil, "/i/" .. n)
end
EOF

# rate: one wrk run; prints its requests per second.
rate() {
    wrk -t1 -c"$WRK_CONNS" -d"${DURATION}s" -s "$work/unique.lua" "http://127.0.0.1:$port/" > "$work/wrk.out" 2>&1 ||
        die "wrk failed: $(cat "$work/wrk.out")"
    awk '/^Requests\/sec:/ { print $2 }' "$work/wrk.out"
}

spin_start() {
    local i
    for i in $(seq "$SPINNERS"); do
        chrt -i 0 sh -c 'while :; do :; done' &
        spin_pids+=($!)
    done
}

spin_stop() {
    kill "${spin_pids[@]}" 2> /dev/null || true
    wait "${spin_pids[@]}" 2> /dev/null || true
    spin_pids=()
}

log "nginx on 127.0.0.1:$port; $ROUNDS rounds of ${DURATION} s, $SPINNERS SCHED_IDLE spinners"
rate > /dev/null # warm-up
ratios=()
printf '| round | none req/s | spinners req/s | spinners / none |\n|---|---|---|---|\n'
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then
        none=$(rate)
        spin_start; spun=$(rate); spin_stop
    else
        spin_start; spun=$(rate); spin_stop
        none=$(rate)
    fi
    r=$(python3 -c "print(f'{$spun / $none:.3f}')")
    ratios+=("$r")
    printf '| %d | %.0f | %.0f | %s |\n' "$round" "$none" "$spun" "$r"
done
python3 -c "import statistics, sys; print(f'median spinners / none: {statistics.median(map(float, sys.argv[1:])):.3f}')" "${ratios[@]}"
