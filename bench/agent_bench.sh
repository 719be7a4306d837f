#!/usr/bin/env bash
# agent_bench.sh - fault-to-record time of the in-process agent
# (librepro_crash.so) for a 256-frame stack, the issue's target being
# <= 200 us. The crash program recurses 256 calls deep and dereferences a bad
# pointer; the agent writes `elapsed_ns` (CLOCK_MONOTONIC from the handler's
# first instruction to the record's last data line) into each record. Runs
# RUNS times into a spool on /tmp (the default REPRO_CRASH_DIR, ext4 here)
# and on /dev/shm (tmpfs), and prints median / p90 / min / max per spool.
# The anchors for unwinding a live process (eu-stack, gdb) are measured side
# by side in bench/crash_bench.sh.
#
# Usage: bench/agent_bench.sh [--agent PATH]      Env: RUNS (31)
# Exit: 0 = ran (the target is informational), 1 = a command failed.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
AGENT=${AGENT:-$ROOT/build/librepro_crash.so}
RUNS=${RUNS:-31}
[ "${1:-}" = "--agent" ] && AGENT=$2
[ -f "$AGENT" ] || { echo "agent_bench: no agent at '$AGENT' (build first)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat > "$WORK/deep.c" <<'C'
#include <stdlib.h>
__attribute__((noinline)) static int down(volatile int *p, int n)
{
    if (n == 0)
        return *p;
    return down(p, n - 1) + 1;
}
int main(int argc, char **argv)
{
    /* main + down x N: 256 frames with libc's start frames */
    return down((volatile int *)16, argc > 1 ? atoi(argv[1]) : 250);
}
C
cc -O1 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -o "$WORK/deep" "$WORK/deep.c"

measure() {  # measure SPOOL_PARENT LABEL
    local spool="$1/repro-agent-bench.$$" vals=()
    mkdir -p "$spool"
    for _ in $(seq "$RUNS"); do
        rm -f "$spool"/*
        # (braces around a subshell keep bash's "Segmentation fault" notice quiet)
        { (LD_PRELOAD="$AGENT" REPRO_CRASH_DIR="$spool" exec "$WORK/deep" 250) >/dev/null 2>&1; } 2>/dev/null || true
        local f
        f=$(ls "$spool"/*.rcr 2>/dev/null | head -1)
        [ -n "$f" ] || { echo "agent_bench: no record written" >&2; exit 1; }
        vals+=("$(awk '$1=="elapsed_ns"{print $2}' "$f")")
        frames=$(grep -c '^frame ' "$f" || true)
    done
    rm -rf "$spool"
    printf '%s\n' "${vals[@]}" | sort -n | awk -v label="$2" -v frames="$frames" '
        {v[NR]=$1} END {
            med=v[int((NR+1)/2)]; p90=v[int(NR*0.9+0.5)];
            printf "%-18s runs %3d  frames %3d  median %7.1f us  p90 %7.1f us  min %7.1f us  max %7.1f us  %s\n",
                label, NR, frames, med/1000, p90/1000, v[1]/1000, v[NR]/1000,
                (med <= 200000 ? "PASS (<= 200 us)" : "FAIL (> 200 us)")
        }'
}

echo "librepro_crash.so fault-to-record, 256-frame stack ($RUNS runs each)"
measure /tmp "/tmp (ext4)"
[ -d /dev/shm ] && measure /dev/shm "/dev/shm (tmpfs)"
