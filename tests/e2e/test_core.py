#!/usr/bin/env python3
"""Core-file import against gdb, the oracle (issue 3, "Core files").

For each crash fixture (fixtures/crash/, built into BUILD/fixtures/crash):

1. run it under gdb (ASLR off) to the crash; take gdb's `bt` of every thread,
   $_siginfo and the mappings, and write a core of that very state with
   `generate-core-file` (crash_oracle.run_under_gdb);
2. import the core: `repro ingest --core CORE --exe BIN --db DB` when this
   repro has the command, else the test driver
   `test_core_import --import CORE EXE DB` (same library call, same store);
3. check the stored record (crash_oracle.load_repro_crash) against gdb:
   signal and si_code, the crashing thread (same tid), every gdb thread
   present, each thread's frames equal to gdb's physical frames by pc, and
   again by (module, offset); source "core"; partial only where expected
   (stack_overflow: deeper than 256 frames); the build-ids of the binary,
   libc (and libcrashy.so) equal to what `readelf -n` says.

Special cases: `bad_input` (a binary that does not match the core is refused
with exit 2 and nothing stored; a core cut in half is stored, partial, with
the reason) and `kernel_core` (a core the kernel writes, when core_pattern is
a plain file name: nothing on the machine is changed; compared by module and
offset with gdb's bt of another run).

usage: test_core.py --repro BIN [--driver BIN] --fixtures DIR CASE...
CASE: a fixture name, bad_input or kernel_core.
Exit: 0 pass, 1 fail, 2 cannot run, 77 skipped (no gdb).
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crash_oracle as co  # noqa: E402
from e2e_common import Fail, Setup, TempDir  # noqa: E402

# fixture -> (signal, partial expected, threads)
FIXTURES = {
    "null_deref": ("SIGSEGV", False, 1),
    "abort_assert": ("SIGABRT", False, 1),
    "stack_overflow": ("SIGSEGV", True, 1),
    "div_zero": ("SIGFPE", False, 1),
    "thread_crash": ("SIGSEGV", False, 16),
    "shlib_crash": ("SIGSEGV", False, 1),
    "omit_fp": ("SIGSEGV", False, 1),
    "cpp_template": ("SIGSEGV", False, 1),
}
TIMEOUT_S = 120


class Importer:
    """Runs the core import into a db: `repro ingest --core` or the driver."""

    def __init__(self, repro, driver):
        self.repro, self.driver = repro, driver
        forced = os.environ.get("REPRO_CORE_IMPORTER")
        self.use_repro = forced == "repro" if forced else self._repro_has_ingest()
        if not self.use_repro and not driver:
            raise Setup("repro has no `ingest --core` yet and no --driver was given")

    def _repro_has_ingest(self):
        if not (os.path.isfile(self.repro) and os.access(self.repro, os.X_OK)):
            raise Setup("repro binary '%s' is not an executable file" % self.repro)
        r = subprocess.run([self.repro, "ingest", "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        err = r.stderr.decode(errors="replace")
        return not (r.returncode == 64 and "unknown command" in err)

    def name(self):
        return "repro ingest --core" if self.use_repro else "test_core_import --import"

    def run(self, core, exe, db):
        if self.use_repro:
            cmd = [self.repro, "ingest", "--core", core, "--exe", exe, "--db", db]
        else:
            cmd = [self.driver, "--import", core, exe, db]
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise Fail("import timed out after %d s: %s" % (TIMEOUT_S, " ".join(cmd)))
        if r.returncode < 0:
            raise Fail("import died of signal %d: %s" % (-r.returncode, " ".join(cmd)))
        return r.returncode, r.stderr.decode(errors="replace"), " ".join(cmd)


def readelf_build_id(path):
    r = subprocess.run(["readelf", "-n", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    m = re.search(r"Build ID:\s*([0-9a-f]+)", r.stdout.decode(errors="replace"))
    return m.group(1) if m else None


def module_by_path(crash, path):
    real = os.path.realpath(path)
    for m in crash.modules:
        if m["path"] and os.path.exists(m["path"]) and os.path.realpath(m["path"]) == real:
            return m
    return None


def module_by_name(crash, basename):
    for m in crash.modules:
        if m["path"] and os.path.basename(m["path"]) == basename:
            return m
    return None


def check_build_ids(crash, paths):
    for path in paths:
        want = readelf_build_id(path)
        m = module_by_path(crash, path)
        if m is None:
            raise Fail("module '%s' is not in repro's module table: %s" %
                       (path, [x["path"] for x in crash.modules]))
        if not want or m["build_id"] != want:
            raise Fail("module '%s': build-id %s in repro, readelf -n says %s" %
                       (path, m["build_id"], want))


def fail_on(problems, o, r, what):
    if problems:
        ct = o.crashed_thread()
        raise Fail("%s: repro's record disagrees with gdb:\n  %s\ngdb bt (crashing thread):\n%s"
                   % (what, "\n  ".join(problems),
                      "\n".join("  %r" % f for f in (ct.frames if ct else []))))


def libc_path(crash):
    m = module_by_name(crash, "libc.so.6")
    return m["path"] if m and os.path.exists(m["path"]) else None


def case_fixture(name, fixtures, imp):
    signal, want_partial, n_threads = FIXTURES[name]
    exe = os.path.join(fixtures, name)
    if not os.access(exe, os.X_OK):
        raise Setup("fixture '%s' is not built (cmake --build)" % exe)
    with TempDir() as tmp:
        core, db = os.path.join(tmp, name + ".core"), os.path.join(tmp, "repro.db")
        # frames of stack_overflow: the oracle walks as many as repro keeps
        o = co.run_under_gdb([exe], core=core, frame_limit=300)
        if o.signal != signal:
            raise Fail("%s: gdb saw %s, the fixture promises %s" % (name, o.signal, signal))
        rc, err, cmd = imp.run(core, exe, db)
        if rc not in (0, 1):
            raise Fail("%s: import exited %d: %s\n%s" % (name, rc, cmd, err[-2000:]))
        r = co.load_repro_crash(db)
        if r.source != "core":
            raise Fail("%s: source %r, expected 'core'" % (name, r.source))
        if r.partial != want_partial:
            raise Fail("%s: partial=%s (%s), expected %s" % (name, r.partial, r.partial_reason,
                                                              want_partial))
        if (rc == 1) != r.partial:
            raise Fail("%s: exit %d for a record with partial=%s (%s)" % (name, rc, r.partial, cmd))
        if len(r.threads) != n_threads or len(o.threads) != n_threads:
            raise Fail("%s: %d threads in repro, %d in gdb, expected %d" %
                       (name, len(r.threads), len(o.threads), n_threads))
        if o.fault_address is not None and r.fault_address != o.fault_address:
            raise Fail("%s: fault address 0x%x, gdb's $_siginfo says 0x%x" %
                       (name, r.fault_address, o.fault_address))
        fail_on(co.compare_crash(o, r, by="pc", same_tids=True, all_threads=True), o, r,
                name + " (by pc)")
        fail_on(co.compare_crash(o, r, by="offset", same_tids=True, all_threads=True), o, r,
                name + " (by module+offset)")
        if name == "thread_crash" and r.tid == r.pid:
            raise Fail("thread_crash: the main thread is marked as crashed")
        if name == "stack_overflow":
            t = r.crashed_threads()[0]
            if len(t.frames) != 256 or not t.partial:
                raise Fail("stack_overflow: %d frames, partial=%s; expected 256, partial" %
                           (len(t.frames), t.partial))
        ids = [exe]
        if libc_path(r):
            ids.append(libc_path(r))
        else:
            raise Fail("%s: no libc.so.6 in repro's module table" % name)
        if name == "shlib_crash":
            ids.append(os.path.join(fixtures, "libcrashy.so"))
        check_build_ids(r, ids)
        ct = o.crashed_thread()
        n = min(len(ct.physical()), len(r.crashed_threads()[0].physical()))
        print("%s: %s, %d threads, crashing thread %d: %d frames agree with gdb by pc and by "
              "offset, every thread compared (%s)" % (name, r.signal, len(r.threads), ct.tid, n,
                                                       imp.name()))


def count_crashes(db):
    import sqlite3
    if not os.path.exists(db):
        return 0
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return con.execute("SELECT count(*) FROM crashes").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def case_bad_input(fixtures, imp):
    exe, other = os.path.join(fixtures, "null_deref"), os.path.join(fixtures, "div_zero")
    with TempDir() as tmp:
        core, db = os.path.join(tmp, "null_deref.core"), os.path.join(tmp, "repro.db")
        co.run_under_gdb([exe], core=core, frame_limit=8)
        # a binary that is not the one that crashed
        rc, err, cmd = imp.run(core, other, db)
        if rc != 2 or "does not match core" not in err or "build-id" not in err:
            raise Fail("mismatching binary: exit %d (expected 2 with 'does not match core ... "
                       "build-id'): %s\n%s" % (rc, cmd, err[-2000:]))
        if count_crashes(db) != 0:
            raise Fail("mismatching binary: a crash was stored anyway")
        want, have = readelf_build_id(other), readelf_build_id(exe)
        if want not in err or have not in err:
            raise Fail("mismatch message names neither build-id (%s, %s): %s" % (want, have, err))
        # a core cut in half: gdb writes its notes last, so the threads are
        # gone, and the record says why
        cut = os.path.join(tmp, "cut.core")
        with open(core, "rb") as f, open(cut, "wb") as g:
            g.write(f.read(os.path.getsize(core) // 2))
        rc, err, cmd = imp.run(cut, exe, db)
        if rc not in (0, 1):
            raise Fail("truncated core: exit %d (expected a partial record): %s\n%s" %
                       (rc, cmd, err[-2000:]))
        r = co.load_repro_crash(db)
        if not r.partial or "truncated" not in (r.partial_reason or ""):
            raise Fail("truncated core: partial=%s reason=%r" % (r.partial, r.partial_reason))
        # garbage
        junk = os.path.join(tmp, "junk.core")
        with open(junk, "wb") as g:
            g.write(b"\x7fELF" + b"\xff" * 200)
        rc, err, cmd = imp.run(junk, exe, db)
        if rc != 2 or "junk.core" not in err:
            raise Fail("garbage core: exit %d (expected 2, naming the file): %s\n%s" %
                       (rc, cmd, err[-2000:]))
    print("bad_input: mismatching binary refused, truncated core stored partial (%s), "
          "garbage refused (%s)" % (r.partial_reason, imp.name()))


def plain_core_pattern():
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().strip()
        with open("/proc/sys/kernel/core_uses_pid") as f:
            uses_pid = f.read().strip() == "1"
    except OSError:
        return None, False
    if not pattern or any(c in pattern for c in "|/%"):
        return None, False
    return pattern, uses_pid


def case_kernel_core(fixtures, imp):
    pattern, _ = plain_core_pattern()
    if pattern is None:
        print("kernel_core: skipped, core_pattern is not a plain file name")
        return 77
    exe = os.path.join(fixtures, "thread_crash")
    with TempDir() as tmp:
        # ulimit only for this child; the core lands in its cwd
        p = subprocess.run(["sh", "-c", 'ulimit -c unlimited && exec "$0"', exe], cwd=tmp,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=TIMEOUT_S)
        cands = [f for f in os.listdir(tmp) if f == pattern or f.startswith(pattern + ".")]
        if p.returncode != -11 or not cands:
            print("kernel_core: skipped, no core written (exit %d, files %s)" %
                  (p.returncode, os.listdir(tmp)))
            return 77
        core = os.path.join(tmp, cands[0])
        db = os.path.join(tmp, "repro.db")
        rc, err, cmd = imp.run(core, exe, db)
        if rc != 0:
            raise Fail("kernel core: import exited %d: %s\n%s" % (rc, cmd, err[-2000:]))
        r = co.load_repro_crash(db)
        o = co.run_under_gdb([exe], frame_limit=300)
        # another run: other tids, other ASLR; the crashing stack by offset
        fail_on(co.compare_crash(o, r, by="offset", same_tids=False), o, r, "kernel core")
        if r.tid == r.pid or len(r.threads) != 16:
            raise Fail("kernel core: %d threads, crashing tid %s, pid %s" %
                       (len(r.threads), r.tid, r.pid))
    print("kernel_core: %s, 16 threads, crashing thread agrees with gdb by module+offset (%s)"
          % (r.signal, imp.name()))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repro", required=True)
    ap.add_argument("--driver")
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("cases", nargs="+")
    a = ap.parse_args()
    a.fixtures = os.path.abspath(a.fixtures)
    try:
        if not co.gdb_available():
            print("skipped: gdb (with Python) is not available")
            return 77
        imp = Importer(a.repro, a.driver)
        rc = 0
        for case in a.cases:
            if case in FIXTURES:
                case_fixture(case, a.fixtures, imp)
            elif case == "bad_input":
                case_bad_input(a.fixtures, imp)
            elif case == "kernel_core":
                rc = max(rc, case_kernel_core(a.fixtures, imp))
            else:
                raise Setup("unknown case '%s'" % case)
        return rc
    except Fail as e:
        print("FAIL: %s" % e)
        return 1
    except (Setup, co.OracleError) as e:
        print("cannot run: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
