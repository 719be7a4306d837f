#!/usr/bin/env python3
"""Every crash fixture through the two live crash paths, against gdb.

For one fixture of fixtures/crash/: gdb runs it (ASLR off) and gives the
oracle; then
  - the supervisor: `setarch -R repro run --db DB -- FIXTURE` must exit with
    128+signal and store a crash whose signal, si_code and crashing thread's
    frames agree with gdb, with every thread of the process recorded;
  - the in-process agent: FIXTURE under `setarch -R` with
    LD_PRELOAD=librepro_crash.so must die of the same signal and leave one
    record that `repro ingest` stores, agreeing with gdb the same way.
(Core import of the same fixtures is test_core.py.)

usage: test_crash_paths.py REPRO AGENT_SO FIXTURES_DIR CASE
Exit 0 on agreement, 1 on a difference, 77 when gdb or setarch is missing.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash_oracle as co  # noqa: E402

REPRO, AGENT, FIX, CASE = sys.argv[1:5]
TIMEOUT_S = 120


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


FIXTURE_SOURCES = {n for n in os.listdir(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "..", "..", "fixtures", "crash"))
                   if n.endswith((".c", ".cpp", ".h"))}


def norm_function(name):
    """'void descend<0, Widget>(Widget*)' -> 'descend<0, Widget>'; C names as is."""
    if name is None:
        return None
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # drop the parameter list (outside template brackets)
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and i > 0:
            cut = i
            break
    name = name[:cut]
    depth, start = 0, 0
    for i, ch in enumerate(name):  # drop a return type in front
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == " " and depth == 0:
            start = i + 1
    return name[start:]


def groups(frames):
    """Frames grouped by physical frame, in stack order: each group is the
    inlined frames (innermost first) followed by the physical one."""
    out, cur = [], []
    for f in frames:
        cur.append(f)
        if not f.inline:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def compare_symbols(o, r):
    """The crashing thread's frames as gdb names them (inlined ones
    included) against repro's symbolized frames: function, file basename,
    line and inlined flag, for every physical frame of the program's own
    code (gdb's view of libc frames depends on its own debug-file search),
    matched by pc."""
    g = groups(f for f in o.crashed_thread().frames if not f.tailcall)
    rt = next(t for t in r.threads if t.crashed)
    rg = groups(rt.frames)
    problems, compared = [], 0
    for gfs, rfs in zip(g, rg):
        pc = gfs[-1].pc
        if not any(f.file and os.path.basename(f.file) in FIXTURE_SOURCES for f in gfs):
            continue
        if rfs[-1].pc != pc:
            problems.append("physical frames out of step: gdb 0x%x, repro 0x%x" % (pc, rfs[-1].pc))
            break
        want = [(norm_function(f.function), os.path.basename(f.file or ""), f.line, f.inline)
                for f in gfs]
        got = [(norm_function(f.function), os.path.basename(f.file or ""), f.line, f.inline)
               for f in rfs]
        compared += len(gfs)
        if want != got:
            problems.append("pc 0x%x: gdb %s, repro %s" % (pc, want, got))
    if compared == 0:
        problems.append("no frame of the program itself to compare")
    return problems, compared

if not co.gdb_available() or shutil.which("setarch") is None:
    print("SKIP: gdb or setarch not available")
    sys.exit(77)

prog = os.path.join(FIX, CASE)
if not os.access(prog, os.X_OK):
    fail("fixture '%s' is not built" % prog)
if CASE.startswith("dwz_"):
    # the point of the fixture: inline functions' DIEs in partial units
    dump = subprocess.run(["readelf", "--debug-dump=info", prog], capture_output=True,
                          text=True).stdout
    if "DW_TAG_partial_unit" not in dump:
        fail("%s has no DW_TAG_partial_unit: dwz did not process it" % prog)
tmp = tempfile.mkdtemp(prefix="repro-paths-")
try:
    oracle = co.run_under_gdb([prog])
    if oracle.signo is None:
        fail("%s did not crash under gdb (exit %s)" % (CASE, oracle.exit_code))
    want_rc = 128 + oracle.signo
    env = dict(os.environ)
    # A sanitizer build of repro must not leak its options into the fixture.
    env.pop("ASAN_OPTIONS", None)

    # --- the supervisor
    db = os.path.join(tmp, "run.db")
    p = subprocess.run(["setarch", "-R", REPRO, "run", "--db", db, "--", prog],
                       capture_output=True, timeout=TIMEOUT_S, env=env)
    if p.returncode != want_rc:
        fail("repro run exited %d, want %d (%s)\n%s" % (p.returncode, want_rc, oracle.signal,
                                                       p.stderr.decode()[-800:]))
    r = co.load_repro_crash(db)
    if CASE == "stack_overflow":
        # Where in `recurse` the stack runs out depends on the environment's
        # size (gdb sets LINES/COLUMNS): the faulting instruction may differ
        # from gdb's run, the return addresses below it may not.
        gt, rt = oracle.crashed_thread(), next(t for t in r.threads if t.crashed)
        if (gt.frames[0].function or "") != "recurse" or rt.frames[0].function != "recurse":
            fail("stack_overflow: the fault is not in recurse (gdb %s, repro %s)"
                 % (gt.frames[0].function, rt.frames[0].function))
        gt.frames, rt.frames = gt.frames[1:], rt.frames[1:]
    if r.source != "ptrace":
        fail("repro run stored source %r" % r.source)
    problems = co.compare_crash(oracle, r, by="pc", same_tids=False)
    if problems:
        fail("repro run vs gdb on %s:\n  %s" % (CASE, "\n  ".join(problems)))
    print("ok   repro run: %s, %d threads, crashing stack agrees with gdb"
          % (oracle.signal, len(r.threads)))
    problems, compared = compare_symbols(oracle, r)
    if problems:
        fail("repro's symbolization vs gdb on %s:\n  %s" % (CASE, "\n  ".join(problems)))
    print("ok   symbolized at store time: function, file:line, inlined flag of %d frames agree "
          "with gdb" % compared)

    # --- the in-process agent
    spool = os.path.join(tmp, "spool")
    os.mkdir(spool)
    aenv = dict(env, LD_PRELOAD=os.path.abspath(AGENT), REPRO_CRASH_DIR=spool)
    # the program runs under setarch -R like gdb's inferior (ASLR off)
    p = subprocess.run(["setarch", "-R", prog], capture_output=True, timeout=TIMEOUT_S, env=aenv)
    if p.returncode != -oracle.signo:
        fail("with librepro_crash.so %s ended with %d, want signal %d\n%s"
             % (CASE, p.returncode, oracle.signo, p.stderr.decode()[-800:]))
    records = [f for f in os.listdir(spool) if f.endswith(".rcr")]
    if len(records) != 1:
        fail("want one crash record in the spool, found %r" % os.listdir(spool))
    db2 = os.path.join(tmp, "agent.db")
    p = subprocess.run([REPRO, "ingest", "--db", db2, spool], capture_output=True,
                       timeout=TIMEOUT_S, env=env)
    if p.returncode != 0:
        fail("repro ingest exited %d\n%s" % (p.returncode, p.stderr.decode()[-800:]))
    r = co.load_repro_crash(db2)
    if CASE == "stack_overflow":  # as above
        r_t = next(t for t in r.threads if t.crashed)
        r_t.frames = r_t.frames[1:]
    if r.source != "inproc":
        fail("ingest stored source %r" % r.source)
    # The preloaded agent moves the libraries (and wraps thread start), so
    # gdb's oracle for this path runs the fixture with the agent preloaded
    # too (through env(1), so that gdb itself is not preloaded).
    junk = os.path.join(tmp, "junk")
    os.mkdir(junk)
    oracle_a = co.run_under_gdb(["env", "LD_PRELOAD=" + os.path.abspath(AGENT),
                                 "REPRO_CRASH_DIR=" + junk, prog])
    # The agent records the crashing thread alone (the others keep running).
    if CASE == "stack_overflow":
        oracle_a.crashed_thread().frames = oracle_a.crashed_thread().frames[1:]
    problems = co.compare_crash(oracle_a, r, by="pc", same_tids=False, count_threads=False)
    if problems:
        fail("librepro_crash.so vs gdb on %s:\n  %s" % (CASE, "\n  ".join(problems)))
    print("ok   librepro_crash.so: %s, crashing stack agrees with gdb" % oracle.signal)
finally:
    shutil.rmtree(tmp, ignore_errors=True)
print("1 passed, 0 failed")
