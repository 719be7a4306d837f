#!/usr/bin/env python3
"""End-to-end test of the in-process crash agent (librepro_crash.so) and
`repro ingest`, with gdb as the oracle.

Small crash programs are compiled into a temporary directory: a null
dereference a few calls deep (at -O0, and at -O2 -fomit-frame-pointer), an
abort, a stack overflow by unbounded recursion in the main thread and in a
second thread, a division by zero, a crash in a non-main thread, a fault 256
frames deep, a crash in a library loaded with dlopen after start-up, two
threads faulting at once, a breakpoint trap, an illegal instruction, a bus
error and a SIGSEGV sent with kill(). Each runs with LD_PRELOAD=librepro_crash.so under
`setarch -R` (no ASLR) and must die of its own signal leaving exactly one
.rcr record; `repro ingest` stores it. The crashing thread's frame pcs must
agree with gdb's backtrace of the same program, run the same way (frame 0 is
the faulting pc in both; gdb stops at main, so its frames are compared as a
prefix), and the module table must hold the executable with the build-id
`readelf -n` reports. Then: damaged records (a truncated one, garbage) are
reported and kept aside, a truncated one is still stored as partial, ingest
is idempotent, and a fault inside the crash handler neither hangs nor loses
what was written.

usage: test_agent.py --repro BIN --agent LIBREPRO_CRASH_SO [--cc CC]
Exit 0 when every check passes, 1 on failures, 77 when gdb, setarch or
readelf is missing. Prints the agent's fault-to-record times (elapsed_ns) of
the 256-frame program; nothing asserts on them.
"""
import argparse
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from e2e_common import exit_code, skip_part

TIMEOUT_S = 60

PROGRAMS = {
    "null_deref": ("SIGSEGV", r"""
#include <stdio.h>
__attribute__((noinline)) int level3(int *p) { return *p + 1; }
__attribute__((noinline)) int level2(int *p) { return level3(p) * 2; }
__attribute__((noinline)) int level1(int *p) { return level2(p) + 3; }
int main(void) { int *volatile p = 0; printf("%d\n", level1(p)); return 0; }
"""),
    "abort": ("SIGABRT", r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) void check(int ok) { if (!ok) { fprintf(stderr, "check failed\n"); abort(); } }
__attribute__((noinline)) int work(int v) { check(v > 10); return v; }
int main(void) { volatile int v = 3; return work(v); }
"""),
    "stack_overflow": ("SIGSEGV", r"""
#include <string.h>
__attribute__((noinline)) int recurse(int n) {
    volatile char pad[512];
    memset((char *)pad, n, sizeof pad);
    return recurse(n + 1) + pad[n % 512];
}
int main(void) { return recurse(0); }
"""),
    "thread_stack_overflow": ("SIGSEGV", r"""
#include <pthread.h>
#include <string.h>
__attribute__((noinline)) int recurse(int n) {
    volatile char pad[512];
    memset((char *)pad, n, sizeof pad);
    return recurse(n + 1) + pad[n % 512];
}
static void *run(void *arg) { (void)arg; pthread_setname_np(pthread_self(), "deep"); recurse(0); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); pthread_join(t, 0); return 0; }
"""),
    "div_zero": ("SIGFPE", r"""
__attribute__((noinline)) int divide(int a, int b) { return a / b; }
__attribute__((noinline)) int average(int sum, int n) { return divide(sum, n); }
int main(void) { volatile int n = 0; return average(10, n); }
"""),
    "thread_crash": ("SIGSEGV", r"""
#include <pthread.h>
#include <unistd.h>
__attribute__((noinline)) void handle(int *job) { *job = 42; }
static void *worker(void *arg) { pthread_setname_np(pthread_self(), "worker"); handle(arg); return 0; }
static void *idle(void *arg) { (void)arg; pause(); return 0; }
int main(void) {
    pthread_t a, b;
    pthread_create(&b, 0, idle, 0);
    pthread_create(&a, 0, worker, 0);
    pthread_join(a, 0);
    return 0;
}
"""),
    "deep256": ("SIGSEGV", r"""
__attribute__((noinline)) int descend(int n, int *p) { if (n == 0) return *p; return descend(n - 1, p) + 1; }
/* 252 descend frames, main and three below it: 256 frames. */
int main(void) { int *volatile p = 0; return descend(251, p); }
"""),
}
PROGRAMS["null_deref_O2"] = PROGRAMS["null_deref"]
# A crash inside a library loaded with dlopen after start-up: the agent finds
# it at crash time in the dynamic linker's list (it is not in the load-time
# module table).
PROGRAMS["dlopen_crash"] = ("SIGSEGV", r"""
#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    void *h = dlopen(PLUGIN_PATH, RTLD_NOW);
    int (*fn)(int *);
    if (h == NULL) { fprintf(stderr, "%s\n", dlerror()); return 3; }
    *(void **)&fn = dlsym(h, "plugin_entry");
    return fn(0);
}
""")
PLUGIN_SRC = r"""
__attribute__((noinline)) int plugin_deref(int *p) { return *p * 3; }
int plugin_entry(int *p) { return plugin_deref(p) + 1; }
"""
# Two threads fault at once: one record, the other thread waits.
PROGRAMS["two_faults"] = ("SIGSEGV", r"""
#include <pthread.h>
static pthread_barrier_t go;
static void *fault(void *arg) { pthread_barrier_wait(&go); *(volatile int *)arg = 1; return 0; }
int main(void) {
    pthread_t a, b;
    pthread_barrier_init(&go, 0, 2);
    pthread_create(&a, 0, fault, 0);
    pthread_create(&b, 0, fault, 0);
    pthread_join(a, 0);
    pthread_join(b, 0);
    return 0;
}
""")
# The other fatal signals, including one sent by a process (re-raised, not
# re-executed).
PROGRAMS["breakpoint"] = ("SIGTRAP", r"""
__attribute__((noinline)) void stop_here(void) { __asm__ volatile("int3"); }
int main(void) { stop_here(); return 0; }
""")
PROGRAMS["illegal"] = ("SIGILL", r"""
__attribute__((noinline)) void unreachable_code(void) { __builtin_trap(); }
int main(void) { unreachable_code(); return 0; }
""")
PROGRAMS["bus_error"] = ("SIGBUS", r"""
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>
__attribute__((noinline)) int touch(volatile char *p) { return p[10]; }
int main(void) {
    FILE *f = tmpfile();
    char *p;
    ftruncate(fileno(f), 4096);
    p = mmap(0, 4096, PROT_READ, MAP_SHARED, fileno(f), 0);
    ftruncate(fileno(f), 0);
    return touch(p);
}
""")
PROGRAMS["killed"] = ("SIGSEGV", r"""
#include <signal.h>
#include <unistd.h>
__attribute__((noinline)) void shoot(void) { kill(getpid(), SIGSEGV); }
int main(void) { shoot(); pause(); return 0; }
""")
# name -> extra compiler flags (default: -O0 -g)
FLAGS = {"null_deref_O2": ["-O2", "-g", "-fomit-frame-pointer"]}
# Which thread gdb stops in is a race: no gdb comparison.
NO_GDB = {"two_faults"}

failures = []


def check(cond, what, detail=""):
    if cond:
        print("ok   " + what)
    else:
        failures.append(what)
        print("FAIL " + what + ("\n    " + str(detail).replace("\n", "\n    ") if detail else ""))
    return cond


def run(cmd, env=None, timeout=TIMEOUT_S):
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "", "timed out after %d s" % timeout
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def compile_c(cc, src, out, flags):
    c = out + ".c"
    with open(c, "w") as f:
        f.write(src)
    rc, _, err = run([cc] + flags + ["-Wl,--build-id", "-pthread", "-o", out, c])
    if rc != 0:
        raise SystemExit("cannot compile %s: %s" % (out, err))
    return out


def build(cc, tmp, name, src):
    flags = FLAGS.get(name, ["-O0", "-g"])
    if name == "dlopen_crash":
        plugin = compile_c(cc, PLUGIN_SRC, os.path.join(tmp, "libplugin.so"),
                           ["-O0", "-g", "-shared", "-fPIC"])
        flags = flags + ['-DPLUGIN_PATH="%s"' % plugin, "-ldl"]
    return compile_c(cc, src, os.path.join(tmp, name), flags)


def base_env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}


def run_with_agent(agent, exe, spool, extra=None):
    env = base_env()
    env.update({"LD_PRELOAD": agent, "REPRO_CRASH_DIR": spool})
    env.update(extra or {})
    return run(["setarch", "-R", exe], env=env)


GDB_SCRIPT = r"""
import gdb
gdb.execute("run")
gdb.execute("bt 8")
f = gdb.newest_frame()
n = 0
while f is not None and n < 300:
    kind = {gdb.NORMAL_FRAME: "normal", gdb.INLINE_FRAME: "inline",
            gdb.TAILCALL_FRAME: "tailcall", gdb.SIGTRAMP_FRAME: "sigtramp"}.get(f.type(), "other")
    print("FRAME %s 0x%x" % (kind, f.pc()))
    f = f.older()
    n += 1
"""


def gdb_pcs(agent, exe, spool, tmp):
    """The crashing thread's frame pcs under gdb. Inlined frames (they share
    the pc of the frame they are inlined into) and the tail-call frames gdb
    synthesizes from DWARF call-site information are left out: neither has a
    return address of its own on the stack."""
    script = os.path.join(tmp, "frames.py")
    with open(script, "w") as f:
        f.write(GDB_SCRIPT)
    cmd = ["setarch", "-R", "gdb", "-nx", "-batch",
           "-ex", "set startup-with-shell off",
           "-ex", "set environment LD_PRELOAD=" + agent,
           "-ex", "set environment REPRO_CRASH_DIR=" + spool,
           "-ex", "unset environment LINES", "-ex", "unset environment COLUMNS",
           "-x", script, "--args", exe]
    rc, out, err = run(cmd, env=base_env(), timeout=120)
    pcs = []
    for line in out.splitlines():
        m = re.match(r"^FRAME (\w+) (0x[0-9a-f]+)$", line.strip())
        if m and m.group(1) in ("normal", "sigtramp", "other"):
            pcs.append(int(m.group(2), 16))
    return pcs, out + err


def build_id(exe):
    rc, out, err = run(["readelf", "-n", exe])
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def ingest(repro, db, spool, ok=(0,)):
    rc, out, err = run([repro, "ingest", "--db", db, spool])
    return rc, out, err


def crash_rows(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, pid, tid, signo, signal, source, partial, partial_reason,"
                           " executable FROM crashes ORDER BY id").fetchall()
    finally:
        con.close()


def crashed_frames(db, crash_id):
    con = sqlite3.connect(db)
    try:
        t = con.execute("SELECT idx, tid, name FROM crash_threads WHERE crash_id = ? AND crashed",
                        (crash_id,)).fetchone()
        pcs = [r[0] & 0xffffffffffffffff for r in con.execute(
            "SELECT pc FROM crash_frames WHERE crash_id = ? AND thread_idx = ? ORDER BY idx",
            (crash_id, t[0]))]
        mods = con.execute("SELECT path, build_id FROM crash_modules WHERE crash_id = ?",
                           (crash_id,)).fetchall()
        return t, pcs, mods
    finally:
        con.close()


def frame_module(db, crash_id, idx):
    con = sqlite3.connect(db)
    try:
        r = con.execute("SELECT m.path FROM crash_frames f JOIN crash_threads t"
                        " ON t.crash_id = f.crash_id AND t.idx = f.thread_idx AND t.crashed"
                        " JOIN crash_modules m ON m.crash_id = f.crash_id AND m.idx = f.module_idx"
                        " WHERE f.crash_id = ? AND f.idx = ?", (crash_id, idx)).fetchone()
        return r[0] if r else None
    finally:
        con.close()


def spool_files(spool):
    return sorted(f for f in os.listdir(spool) if os.path.isfile(os.path.join(spool, f)))


def one_program(args, tmp, name, db):
    signame, src = PROGRAMS[name]
    signo = getattr(signal, signame)
    exe = build(args.cc, tmp, name, src)
    spool = os.path.join(tmp, "spool-" + name)
    os.mkdir(spool)
    rc, out, err = run_with_agent(args.agent, exe, spool)
    check(rc == -signo, "%s dies of %s" % (name, signame), "exit %s, stderr %s" % (rc, err[-500:]))
    files = spool_files(spool)
    rcr = [f for f in files if f.endswith(".rcr")]
    if not check(len(rcr) == 1 and len(files) == 1, "%s leaves exactly one .rcr record" % name,
                 files):
        return None
    with open(os.path.join(spool, rcr[0]), "rb") as f:
        record = f.read()
    before = len(crash_rows(db)) if os.path.exists(db) else 0
    rc, out, err = ingest(args.repro, db, spool)
    check(rc == 0 and spool_files(spool) == [], "%s: repro ingest stores it and removes the file"
          % name, "exit %s, stderr %s, left %s" % (rc, err, spool_files(spool)))
    rows = crash_rows(db)
    if not check(len(rows) == before + 1, "%s: one crash stored" % name, rows):
        return record
    cid, pid, tid, got_signo, got_signal, source, partial, reason, executable = rows[-1]
    check(got_signo == signo and got_signal == signame and source == "inproc"
          and executable == exe, "%s: signal, source and executable recorded" % name, rows[-1])
    thread, pcs, mods = crashed_frames(db, cid)
    check(thread is not None and thread[1] == tid, "%s: the crashing thread is tid %d" % (name, tid),
          thread)
    if name in ("thread_crash", "thread_stack_overflow"):
        check(tid != pid and thread[2] == ("worker" if name == "thread_crash" else "deep"),
              "%s: crash in a non-main thread, named" % name, (pid, tid, thread))
    if "stack_overflow" in name:
        check(len(pcs) == 256 and partial == 1, "%s: stack cut at 256 frames, marked partial"
              % name, (len(pcs), partial, reason))
    bid = build_id(exe)
    check(bid is not None and (exe, bid) in mods, "%s: modules hold the executable with build-id %s"
          % (name, bid), mods)
    if name == "dlopen_crash":
        plugin = os.path.join(tmp, "libplugin.so")
        pbid = build_id(plugin)
        check((plugin, pbid) in mods and frame_module(db, cid, 0) == plugin,
              "%s: the library loaded after start-up is in the modules and holds frame 0" % name,
              mods)
    if name in NO_GDB:
        return record
    gpcs, gout = gdb_pcs(args.agent, exe, os.path.join(tmp, "gdb-spool"), tmp)
    n = min(len(gpcs), len(pcs))
    check(len(gpcs) >= 2 and n == min(len(gpcs), 256) and pcs[:n] == gpcs[:n],
          "%s: %d frame pcs agree with gdb's backtrace" % (name, n),
          "agent: %s\ngdb:   %s\n%s" % ([hex(x) for x in pcs[:12]], [hex(x) for x in gpcs[:12]],
                                        gout[-1500:]))
    return record


def measure(args, tmp, where, runs=15):
    exe = os.path.join(tmp, "deep256")
    times = []
    for i in range(runs):
        spool = tempfile.mkdtemp(dir=where, prefix="repro-measure-")
        run_with_agent(args.agent, exe, spool)
        for f in spool_files(spool):
            with open(os.path.join(spool, f)) as fh:
                m = re.search(r"^elapsed_ns (\d+)$", fh.read(), re.M)
                if m:
                    times.append(int(m.group(1)))
        shutil.rmtree(spool, ignore_errors=True)
    if times:
        times.sort()
        print("measure: fault-to-record (elapsed_ns) of 256 frames into %s, %d runs: median %.0f us,"
              " min %.0f us, max %.0f us" % (where, len(times), statistics.median(times) / 1000,
                                               times[0] / 1000, times[-1] / 1000))


def damaged_records(args, tmp, db, record):
    spool = os.path.join(tmp, "spool-damaged")
    os.mkdir(spool)
    cut = record[: len(record) // 2]
    with open(os.path.join(spool, "crash-1-1-0.rcr"), "wb") as f:
        f.write(cut)
    with open(os.path.join(spool, "crash-2-2-0.rcr"), "wb") as f:
        f.write(bytes((i * 37 + 11) % 256 for i in range(3000)))
    with open(os.path.join(spool, "crash-3-3-0.rcr"), "wb") as f:
        f.write(record)
    before = len(crash_rows(db))
    rc, out, err = ingest(args.repro, db, spool)
    check(rc == 1, "damaged records: ingest exits 1", "exit %s, stderr %s" % (rc, err))
    for fname in ("crash-1-1-0.rcr", "crash-2-2-0.rcr"):
        check(re.search(re.escape(fname) + r".*line \d+", err) is not None,
              "damaged record %s reported with its line" % fname, err)
        check(os.path.exists(os.path.join(spool, "damaged", fname)),
              "damaged record %s kept in damaged/" % fname, os.listdir(spool))
    check(spool_files(spool) == [], "no record left in the spool", spool_files(spool))
    rows = crash_rows(db)
    check(len(rows) == before + 2, "the whole record and the truncated one are stored",
          rows[before:])
    partial = [r for r in rows[before:] if r[6] == 1]
    check(len(partial) == 1 and partial[0][7].startswith("truncated record: line "),
          "the truncated record is stored as partial, with the reason", rows[before:])
    rc, out, err = ingest(args.repro, db, spool)
    check(rc == 0 and len(crash_rows(db)) == before + 2, "ingest twice stores each record once",
          "exit %s, stderr %s" % (rc, err))


def ingest_edges(args, tmp, db):
    for argv, what in [(["ingest"], "no directory"), (["ingest", "--core", "c"], "--core alone"),
                       (["ingest", "a", "b"], "two directories"),
                       (["ingest", "--core", "c", "--exe", "e", "d"], "--core with a directory")]:
        rc, out, err = run([args.repro] + argv + ["--db", db])
        check(rc == 64, "ingest usage error exits 64: " + what, "exit %s, %s" % (rc, err))
    missing = os.path.join(tmp, "no-such-spool")
    rc, out, err = ingest(args.repro, db, missing)
    check(rc == 2 and missing in err, "ingest of a missing directory exits 2 naming it",
          "exit %s, %s" % (rc, err))
    spool = os.path.join(tmp, "spool-edges")
    os.mkdir(spool)
    os.mkdir(os.path.join(spool, "dir.rcr"))
    os.symlink("/etc/passwd", os.path.join(spool, "crash-9-9-0.rcr"))
    with open(os.path.join(spool, "crash-8-8-0.rcr"), "w") as f:
        f.write("REPRO-CRASH 2\npid 8\nend\n")
    with open(os.path.join(spool, "crash-7-7-0.tmp"), "w") as f:
        f.write("REPRO-CRASH 1\npid 7\n")  # pid 7 may live: left alone either way if fresh
    before = len(crash_rows(db))
    rc, out, err = ingest(args.repro, db, spool)
    check(rc == 1 and len(crash_rows(db)) == before, "ingest: unknown version and symlink exit 1,"
          " store nothing", "exit %s, %s" % (rc, err))
    check(os.path.isfile(os.path.join(spool, "crash-8-8-0.rcr")) and "version 2" in err,
          "a record of an unknown version is reported and left in place", err)
    check(os.path.islink(os.path.join(spool, "damaged", "crash-9-9-0.rcr")),
          "a symbolic link named like a record is moved aside", os.listdir(spool))
    check(os.path.isdir(os.path.join(spool, "dir.rcr")) and
          os.path.isfile(os.path.join(spool, "crash-7-7-0.tmp")),
          "directories and fresh .tmp files are left alone", os.listdir(spool))


def fault_in_handler(args, tmp, db):
    exe = os.path.join(tmp, "null_deref")
    spool = os.path.join(tmp, "spool-reentry")
    os.mkdir(spool)
    t0 = time.monotonic()
    rc, out, err = run_with_agent(args.agent, exe, spool,
                                  {"REPRO_CRASH_TEST": "fault-in-handler"})
    check(rc == -signal.SIGSEGV and time.monotonic() - t0 < 20,
          "a fault inside the crash handler kills the process (no hang)", "exit %s" % rc)
    files = spool_files(spool)
    check(len(files) == 1 and files[0].endswith(".tmp"),
          "it leaves the unfinished record as .tmp", files)
    if not files:
        return
    old = time.time() - 60
    os.utime(os.path.join(spool, files[0]), (old, old))
    before = len(crash_rows(db))
    rc, out, err = ingest(args.repro, db, spool)
    rows = crash_rows(db)
    check(rc == 1 and len(rows) == before + 1 and rows[-1][6] == 1,
          "ingest stores the abandoned record as partial", "exit %s, stderr %s" % (rc, err))
    check(os.path.exists(os.path.join(spool, "damaged", files[0])),
          "the abandoned record is kept in damaged/", os.listdir(spool))


def parse_args():
    """--repro, --agent and --cc: the arguments of the agent's e2e scripts."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repro", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
    return ap.parse_args()


def main():
    args = parse_args()
    for tool in ("gdb", "setarch", "readelf", args.cc):
        if shutil.which(tool) is None:
            print("skipped: %s not found" % tool)
            return 77
    args.agent = os.path.abspath(args.agent)
    tmp = tempfile.mkdtemp(prefix="repro-agent-")
    try:
        db = os.path.join(tmp, "crashes.db")
        os.mkdir(os.path.join(tmp, "gdb-spool"))
        records = {}
        for name in PROGRAMS:
            records[name] = one_program(args, tmp, name, db)
        if records.get("null_deref"):
            damaged_records(args, tmp, db, records["null_deref"])
        ingest_edges(args, tmp, db)
        fault_in_handler(args, tmp, db)
        measure(args, tmp, tmp)
        if os.path.isdir("/dev/shm"):
            measure(args, tmp, "/dev/shm")
        else:
            skip_part("the spool on tmpfs (/dev/shm is absent)")
    finally:
        if os.environ.get("KEEP_TMP") == "1":
            print("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
    return exit_code(failures)


if __name__ == "__main__":
    sys.exit(main())
