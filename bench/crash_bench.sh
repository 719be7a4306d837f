#!/usr/bin/env bash
# crash_bench.sh - how long `repro run` holds a crashed 16-thread process
# before its record is committed, against two anchors that unwind the same
# kind of process: `eu-stack -p PID` and
# `gdb -batch -ex 'thread apply all bt' -p PID`. With --wrk, also the
# requests/s of nginx (1 worker) plain versus under `repro run`. With
# --unwinders, also the measurement that chose the supervisor's unwinder:
# libdwfl versus libunwind-ptrace on the same stopped 16-thread process.
#
# The crash program (built here with cc -O1 -g, no sanitizers) starts 16
# threads that wait a few calls deep; one of them writes CLOCK_REALTIME to
# stderr and dereferences a bad pointer. `repro run --verbose` logs when the
# record committed (wall clock) and how long stopping, unwinding and storing
# took (monotonic): fault-to-commit is the difference of the two wall clocks.
#
# Usage: bench/crash_bench.sh [--repro-bin PATH] [--wrk] [--unwinders]
# Env:   RUNS (15), RUNS_GDB (3), REPRO_BIN (./build/repro from the repo
#        root), WRK_DURATION (5s), WRK_ROUNDS (3)
# Exit:  0 = benchmark ran (targets are informational), 1 = a command
#        failed, 64 = usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
RUNS=${RUNS:-15}
RUNS_GDB=${RUNS_GDB:-3}
REPRO_BIN=${REPRO_BIN:-$ROOT/build/repro}
WRK_DURATION=${WRK_DURATION:-5s}
WRK_ROUNDS=${WRK_ROUNDS:-3}
do_wrk=0
do_unw=0

while [ $# -gt 0 ]; do
    case "$1" in
    --repro-bin) REPRO_BIN=$2; shift 2 ;;
    --wrk) do_wrk=1; shift ;;
    --unwinders) do_unw=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "crash_bench.sh: unknown argument '$1'" >&2; exit 64 ;;
    esac
done
[ -x "$REPRO_BIN" ] || { echo "crash_bench.sh: no repro binary '$REPRO_BIN'" >&2; exit 1; }

TMP=$(mktemp -d /tmp/repro-crash-bench.XXXXXX)
waiter=""
cleanup() {
    [ -n "$waiter" ] && kill -9 "$waiter" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

cat > "$TMP/crash16.c" <<'EOF'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* crash16: 16 threads; thread 9 stamps the wall clock and faults.
 * crash16 wait: nobody faults; prints the pid and waits (anchor target). */
static pthread_barrier_t bar;
static int crash = 1;
__attribute__((noinline)) static void fault(void) {
    struct timespec ts; char b[64]; int n;
    clock_gettime(CLOCK_REALTIME, &ts);
    n = snprintf(b, sizeof b, "fault_us %lld\n", (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
    write(2, b, (size_t)n);
    *(volatile int *)16 = 1;
}
__attribute__((noinline)) static void level2(long me) { if (crash && me == 9) fault(); else pause(); }
__attribute__((noinline)) static void level1(long me) { level2(me); __asm__ volatile(""); }
static void *run(void *a) { pthread_barrier_wait(&bar); level1((long)a); return NULL; }
int main(int argc, char **argv) {
    pthread_t t[15];
    long i;
    crash = !(argc > 1 && strcmp(argv[1], "wait") == 0);
    pthread_barrier_init(&bar, NULL, 16);
    for (i = 0; i < 15; i++) pthread_create(&t[i], NULL, run, (void *)(i + 1));
    pthread_barrier_wait(&bar);
    printf("%d\n", (int)getpid());
    fflush(stdout);
    level1(0);
    return 0;
}
EOF
cc -O1 -g -pthread -o "$TMP/crash16" "$TMP/crash16.c"

stats() { # label unit < numbers
    python3 -c '
import statistics, sys
v = sorted(float(x) for x in sys.stdin.read().split())
if not v:
    print("%-34s no data" % sys.argv[1]); sys.exit()
print("%-34s median %8.3f %s  min %8.3f  max %8.3f  (n=%d)" % (
    sys.argv[1], statistics.median(v), sys.argv[2], v[0], v[-1], len(v)))' "$1" "$2"
}

echo "== supervisor: fault to committed record, 16 threads ($RUNS runs) =="
: > "$TMP/f2c"; : > "$TMP/total"; : > "$TMP/stop"; : > "$TMP/unwind"; : > "$TMP/store"
for i in $(seq "$RUNS"); do
    rm -f "$TMP/b.db"*
    rc=0
    "$REPRO_BIN" run --verbose --db "$TMP/b.db" -- "$TMP/crash16" > /dev/null 2> "$TMP/log" || rc=$?
    [ "$rc" -eq 139 ] || { echo "repro run exited $rc, not 139:" >&2; cat "$TMP/log" >&2; exit 1; }
    python3 - "$TMP" <<'EOF'
import re, sys
d = sys.argv[1]
log = open(d + "/log").read()
f = int(re.search(r"fault_us (\d+)", log).group(1))
m = re.search(r"recorded in ([\d.]+) ms \(stop ([\d.]+), unwind ([\d.]+), store ([\d.]+)\), "
              r"committed at (\d+) us", log)
for name, v in (("f2c", (int(m.group(5)) - f) / 1000.0), ("total", m.group(1)),
                ("stop", m.group(2)), ("unwind", m.group(3)), ("store", m.group(4))):
    open(d + "/" + name, "a").write("%s\n" % v)
EOF
done
stats "fault -> committed (wall)" ms < "$TMP/f2c"
stats "  handling (monotonic)" ms < "$TMP/total"
stats "    stop all threads" ms < "$TMP/stop"
stats "    regs+modules+stacks+conns" ms < "$TMP/unwind"
stats "    store transaction" ms < "$TMP/store"
echo "target: <= 5 ms fault to committed record"

echo "== anchors on a stopped-in-pause 16-thread process =="
"$TMP/crash16" wait > "$TMP/pid" &
waiter=$!
while [ ! -s "$TMP/pid" ]; do :; done  # the pid is printed once all 16 threads run
timeit() { # label runs cmd...
    local label=$1 runs=$2 t0 t1
    shift 2
    : > "$TMP/t"
    for i in $(seq "$runs"); do
        t0=$(date +%s%N)
        "$@" > /dev/null 2>&1 || true
        t1=$(date +%s%N)
        echo "$(( (t1 - t0) / 1000 ))" | awk '{ print $1 / 1000 }' >> "$TMP/t"
    done
    stats "$label" ms < "$TMP/t"
}
if command -v eu-stack > /dev/null; then
    timeit "eu-stack -p PID" "$RUNS" env DEBUGINFOD_URLS= eu-stack -p "$waiter"
    timeit "eu-stack -q -p PID (no symbols)" "$RUNS" env DEBUGINFOD_URLS= eu-stack -q -p "$waiter"
else
    echo "eu-stack not installed: anchor skipped"
fi
if command -v gdb > /dev/null; then
    timeit "gdb thread apply all bt" "$RUNS_GDB" gdb -nx -batch -ex 'set debuginfod enabled off' \
        -ex 'thread apply all bt' -p "$waiter"
else
    echo "gdb not installed: anchor skipped"
fi
if [ "$do_unw" -eq 1 ]; then
    echo "== unwinders on the same stopped process (fresh state per run) =="
    cat > "$TMP/unw.c" <<'UNW'
#include <dirent.h>
#include <elfutils/libdwfl.h>
#include <libunwind-ptrace.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
/* unw PID RUNS: seizes and interrupts every thread of PID, then prints one
 * line per run: "dwfl US FRAMES MODULES" and "libunwind US FRAMES". */
static double now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static int tids[4096], ntid, nfr;
static int frame_cb(Dwfl_Frame *st, void *a) { Dwarf_Addr pc; bool act; (void)a; if (!dwfl_frame_pc(st, &pc, &act)) return DWARF_CB_ABORT; return ++nfr > 256 ? DWARF_CB_ABORT : DWARF_CB_OK; }
static int no_debug(Dwfl_Module *m, void **u, const char *n, Dwarf_Addr b, const char *f, const char *d, GElf_Word c, char **p) { return -1; }
static int mod_cb(Dwfl_Module *m, void **u, const char *n, Dwarf_Addr s, void *a) { const unsigned char *bits; GElf_Addr v, bias; dwfl_module_getelf(m, &bias); dwfl_module_build_id(m, &bits, &v); ++*(int *)a; return DWARF_CB_OK; }
int main(int argc, char **argv) {
    static const Dwfl_Callbacks cb = {.find_elf = dwfl_linux_proc_find_elf, .find_debuginfo = no_debug};
    int pid = atoi(argv[1]), runs = atoi(argv[2]), r, i, st;
    char path[64]; struct dirent *e; DIR *d;
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    d = opendir(path);
    while ((e = readdir(d)) && ntid < 4096) if (e->d_name[0] != '.') tids[ntid++] = atoi(e->d_name);
    closedir(d);
    for (i = 0; i < ntid; i++) { ptrace(PTRACE_SEIZE, tids[i], 0, 0); ptrace(PTRACE_INTERRUPT, tids[i], 0, 0); waitpid(tids[i], &st, __WALL); }
    for (r = 0; r < runs; r++) {
        double t0 = now_us(); int nm = 0; Dwfl *dw = dwfl_begin(&cb);
        nfr = 0;
        dwfl_linux_proc_report(dw, pid); dwfl_report_end(dw, NULL, NULL);
        dwfl_linux_proc_attach(dw, pid, true);
        for (i = 0; i < ntid; i++) dwfl_getthread_frames(dw, tids[i], frame_cb, NULL);
        dwfl_getmodules(dw, mod_cb, &nm, 0);
        dwfl_end(dw);
        printf("dwfl %.1f %d %d\n", now_us() - t0, nfr, nm);
    }
    for (r = 0; r < runs; r++) {
        double t0 = now_us(); unw_addr_space_t as = unw_create_addr_space(&_UPT_accessors, 0);
        nfr = 0;
        unw_set_caching_policy(as, UNW_CACHE_GLOBAL);
        for (i = 0; i < ntid; i++) {
            void *u = _UPT_create(tids[i]); unw_cursor_t c;
            if (unw_init_remote(&c, as, u) == 0) do nfr++; while (unw_step(&c) > 0 && nfr < 100000);
            _UPT_destroy(u);
        }
        unw_destroy_addr_space(as);
        printf("libunwind %.1f %d\n", now_us() - t0, nfr);
    }
    return 0;
}
UNW
    if cc -O2 -o "$TMP/unw" "$TMP/unw.c" $(pkg-config --cflags --libs libdw libunwind-ptrace libunwind-generic) 2> "$TMP/unw.err"; then
        "$TMP/unw" "$waiter" "$RUNS" > "$TMP/unw.out"
        awk '$1 == "dwfl" { print $2 / 1000 }' "$TMP/unw.out" | stats "libdwfl (stacks + module table)" ms
        awk '$1 == "libunwind" { print $2 / 1000 }' "$TMP/unw.out" | stats "libunwind-ptrace (stacks only)" ms
        awk '$1 == "dwfl" { f = $3; m = $4 } $1 == "libunwind" { g = $3 }
             END { print "frames: libdwfl " f ", libunwind-ptrace " g "; modules: " m }' "$TMP/unw.out"
    else
        echo "cannot build the unwinder comparison (libdw-dev, libunwind-dev?):"
        cat "$TMP/unw.err"
    fi
fi
kill -9 "$waiter"; wait "$waiter" 2>/dev/null || true; waiter=""

[ "$do_wrk" -eq 1 ] || exit 0
echo "== healthy service: nginx (1 worker) plain vs under repro run =="
for tool in nginx wrk curl; do
    command -v "$tool" > /dev/null || [ -x "/usr/sbin/$tool" ] || { echo "$tool missing: skipped"; exit 0; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
mkdir -p "$TMP/nginx/logs"
echo "hello from nginx under repro" > "$TMP/nginx/index.html"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log $TMP/nginx/logs/error.log;
pid $TMP/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$port; root $TMP/nginx; }
}
EOF
# nginx (and repro) on CPU 0, wrk on CPU 1 when taskset can: less noise.
pin0=(); pin1=()
if command -v taskset > /dev/null && [ "$(nproc)" -ge 2 ]; then pin0=(taskset -c 0); pin1=(taskset -c 1); fi
run_wrk() { # label cmd...
    local label=$1 pid rps
    shift
    "${pin0[@]}" "$@" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
    pid=$!
    for i in $(seq 100); do curl -fs "http://127.0.0.1:$port/" > /dev/null && break; sleep 0.05; done
    rps=$("${pin1[@]}" wrk -t1 -c16 -d"$WRK_DURATION" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ { print $2 }')
    kill -QUIT "$pid"; wait "$pid" || true
    echo "$rps" >> "$TMP/rps_$label"
}
for r in $(seq "$WRK_ROUNDS"); do
    run_wrk plain "$NGINX"
    run_wrk supervised "$REPRO_BIN" run --db "$TMP/w.db" -- "$NGINX"
done
stats "nginx plain" req/s < "$TMP/rps_plain"
stats "nginx under repro run" req/s < "$TMP/rps_supervised"
echo "target: at most 2% fewer requests/s under repro run"
