#!/usr/bin/env python3
"""End-to-end test: the crash spool belongs to the service (issue 8, section 3).

The in-process agent (librepro_crash.so):
- does not write through a file or a symbolic link that someone placed in
  the spool under the name the record would have had before (a hard link to
  a victim file at crash-PID-TID-0.tmp, a symbolic link there, a planted
  crash-PID-TID-0.rcr): the record goes to a fresh name, created with
  O_EXCL|O_NOFOLLOW, and nothing planted changes;
- refuses a spool writable by group or others (with and without the sticky
  bit), owned by another user (as root only), or reached through a symbolic
  link: it says so on stderr, writes nothing, and the process still dies of
  its signal;
- creates a missing spool 0700, and by default uses $XDG_RUNTIME_DIR/
  repro-crash when that directory is private;
- names records crash-PID-TID-TOKEN.rcr with 64 unpredictable bits: two
  crashes give two unrelated tokens.

`repro ingest`:
- finishes (under a timeout) when a record names a module that is a FIFO, a
  character device, or a module whose .gnu_debuglink file is a FIFO, and
  says which file it refused;
- moves aside a record that is a FIFO, and one larger than 16 MiB, without
  reading it;
- warns about a spool writable by others.

usage: test_spool.py --repro BIN --agent LIBREPRO_CRASH_SO [--cc CC]
Exit 0 when every check passes, 1 on failures, 77 when the compiler is missing.
"""
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

from e2e_common import exit_code, skip_part

# check(), run() and the failure list are test_agent.py's, shared by both.
import test_agent as agent_test
from test_agent import check, failures, run

TIMEOUT_S = 30
NAME_RE = re.compile(r"^crash-(\d+)-(\d+)-([0-9a-f]{16})\.rcr$")

# Waits for one byte on stdin (so that the test knows its pid and can plant
# files first), then dereferences NULL.
CRASH_SRC = r"""
#include <unistd.h>
__attribute__((noinline)) int deref(int *p) { return *p; }
int main(void) { char c; int *volatile p = 0; if (read(0, &c, 1) < 0) return 3; return deref(p); }
"""
LIB_SRC = r"""
__attribute__((noinline)) int lib_deref(int *p) { return *p * 3; }
int lib_entry(int *p) { return lib_deref(p) + 1; }
"""


def base_env(extra):
    env = agent_test.base_env()
    env.update(extra)
    return env


def crash(args, env_extra, plant=None):
    """Runs the crash program with the agent; plant(pid) runs once its pid is
    known, before it faults. Returns (returncode, stderr)."""
    p = subprocess.Popen([args.exe], env=base_env(dict(env_extra, LD_PRELOAD=args.agent)),
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        if plant:
            plant(p.pid)
        _, err = p.communicate(b"x", timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None, "timed out"
    return p.returncode, err.decode("utf-8", "replace")


def records(spool):
    return sorted(f for f in os.listdir(spool) if NAME_RE.match(f))


def private_dir(parent, name):
    d = os.path.join(parent, name)
    os.mkdir(d, 0o700)
    os.chmod(d, 0o700)  # whatever the umask
    return d


def read(path):
    with open(path, "rb") as f:
        return f.read()


def planted_files(args, tmp):
    victim = os.path.join(tmp, "victim.txt")
    with open(victim, "w") as f:
        f.write("the victim's own data\n")
    # 1. a hard link to the victim at the old predictable .tmp name, and a
    #    planted record at the old .rcr name
    spool = private_dir(tmp, "spool-planted")
    planted = {}

    def plant_link(pid):
        planted["tmp"] = os.path.join(spool, "crash-%d-%d-0.tmp" % (pid, pid))
        planted["rcr"] = os.path.join(spool, "crash-%d-%d-0.rcr" % (pid, pid))
        os.link(victim, planted["tmp"])
        with open(planted["rcr"], "w") as f:
            f.write("planted\n")

    rc, err = crash(args, {"REPRO_CRASH_DIR": spool}, plant_link)
    check(rc == -signal.SIGSEGV, "planted files: the program dies of SIGSEGV", (rc, err))
    check(read(victim) == b"the victim's own data\n" and os.stat(victim).st_nlink == 2,
          "a file pre-created at the record's old name (hard link to a victim) is not written "
          "through", read(victim)[:200])
    check(os.path.exists(planted.get("rcr", "")) and read(planted["rcr"]) == b"planted\n",
          "a file pre-created at the old .rcr name is not replaced", os.listdir(spool))
    new = [f for f in records(spool) if not f.endswith("-0.rcr")]
    check(len(new) == 1 and b"\nend\n" in read(os.path.join(spool, new[0])),
          "the record is written whole under a fresh name", os.listdir(spool))

    # 2. a symbolic link at the old .tmp name
    spool = private_dir(tmp, "spool-symlink")
    target = os.path.join(tmp, "through-the-symlink")

    def plant_symlink(pid):
        os.symlink(target, os.path.join(spool, "crash-%d-%d-0.tmp" % (pid, pid)))

    rc, err = crash(args, {"REPRO_CRASH_DIR": spool}, plant_symlink)
    check(not os.path.lexists(target), "a symbolic link pre-created in the spool is not followed",
          err)
    check(len(records(spool)) == 1,
          "with a symbolic link at the old name, the record is still written",
          (os.listdir(spool), err))


def refused_dirs(args, tmp):
    cases = [("0777", 0o777, "writable by group or others"),
             ("1777 (sticky, like /tmp)", 0o1777, "writable by group or others"),
             ("0770", 0o770, "writable by group or others"),
             ("0722", 0o722, "writable by group or others")]
    for label, mode, why in cases:
        spool = private_dir(tmp, "spool-mode-%o" % mode)
        os.chmod(spool, mode)
        rc, err = crash(args, {"REPRO_CRASH_DIR": spool})
        check(rc == -signal.SIGSEGV and os.listdir(spool) == [] and
              ("refusing crash directory '%s': %s" % (spool, why)) in err,
              "a spool of mode %s is refused with a message, nothing written, the process "
              "still dies of its signal" % label, (rc, err, os.listdir(spool)))
    if os.geteuid() == 0:
        spool = private_dir(tmp, "spool-other-owner")
        os.chown(spool, 65534, 65534)
        rc, err = crash(args, {"REPRO_CRASH_DIR": spool})
        check(rc == -signal.SIGSEGV and os.listdir(spool) == [] and
              "owned by another user" in err,
              "a spool owned by another user is refused", (rc, err, os.listdir(spool)))
    else:
        skip_part("a spool owned by another user (needs root to chown)")
    real = private_dir(tmp, "spool-real")
    link = os.path.join(tmp, "spool-link")
    os.symlink(real, link)
    rc, err = crash(args, {"REPRO_CRASH_DIR": link})
    check(rc == -signal.SIGSEGV and os.listdir(real) == [] and "symbolic link" in err,
          "a spool reached through a symbolic link is refused", (rc, err))
    missing = os.path.join(tmp, "spool-created")
    rc, err = crash(args, {"REPRO_CRASH_DIR": missing})
    check(os.path.isdir(missing) and stat.S_IMODE(os.stat(missing).st_mode) == 0o700 and
          len(records(missing)) == 1,
          "a missing spool is created 0700 and holds the record", (rc, err))
    xdg = private_dir(tmp, "xdg-runtime")
    rc, err = crash(args, {"XDG_RUNTIME_DIR": xdg})
    spool = os.path.join(xdg, "repro-crash")
    check(os.path.isdir(spool) and stat.S_IMODE(os.stat(spool).st_mode) == 0o700 and
          len(records(spool)) == 1,
          "by default the record goes to $XDG_RUNTIME_DIR/repro-crash (0700)", (rc, err))


def unpredictable_names(args, tmp):
    spool = private_dir(tmp, "spool-names")
    for _ in range(2):
        crash(args, {"REPRO_CRASH_DIR": spool})
    names = records(spool)
    tokens = [NAME_RE.match(n).group(3) for n in names]
    check(len(names) == 2 and len(set(tokens)) == 2 and
          abs(int(tokens[0], 16) - int(tokens[1], 16)) > 1 << 32,
          "two crashes give two records named crash-PID-TID-TOKEN with unrelated 64-bit tokens",
          os.listdir(spool))
    check(all(stat.S_IMODE(os.stat(os.path.join(spool, n)).st_mode) == 0o600 for n in names),
          "records are mode 0600", names)


RECORD = """REPRO-CRASH 1
source inproc
pid {pid}
tid {pid}
signo 11
si_code 1
fault_address 0x0
executable {module}
module 0x10000 0x20000 0x10000 {build_id} {module}
thread {pid} 1 main
frame 0 0x11000
frame 1 0x11100
unwind end
end
"""


def write_record(spool, pid, module, build_id="-"):
    path = os.path.join(spool, "crash-%d-%d-%016x.rcr" % (pid, pid, pid))
    with open(path, "w") as f:
        f.write(RECORD.format(pid=pid, module=module, build_id=build_id))
    return path


def ingest(args, db, spool):
    return run([args.repro, "ingest", "--db", db, spool], timeout=TIMEOUT_S)


def hostile_modules(args, tmp):
    db = os.path.join(tmp, "ingest.db")
    fifo = os.path.join(tmp, "module-fifo.so")
    os.mkfifo(fifo)
    spool = private_dir(tmp, "spool-fifo-module")
    write_record(spool, 101, fifo)
    rc, out, err = ingest(args, db, spool)
    check(rc is not None, "ingest of a record whose module is a FIFO finishes (no hang)", err)
    check(rc == 0 and records(spool) == [] and
          ("cannot open '%s': not a regular file (a FIFO)" % fifo) in err,
          "the crash is stored and the FIFO is reported by name", (rc, err))
    # the same again: a second run must not hang either
    write_record(spool, 102, fifo)
    rc, out, err = ingest(args, db, spool)
    check(rc == 0, "a second ingest with the FIFO module finishes too", (rc, err))

    spool = private_dir(tmp, "spool-device-module")
    write_record(spool, 103, "/dev/zero")
    rc, out, err = ingest(args, db, spool)
    check(rc == 0 and "cannot open '/dev/zero': not a regular file (a character device)" in err,
          "a module that is a character device is refused by name, not read", (rc, err))

    objcopy = shutil.which("objcopy")
    if objcopy is None:
        skip_part("a debuglink FIFO (objcopy not found)")
    else:
        lib = os.path.join(tmp, "libdebuglinked.so")
        dbg = lib + ".dbg"
        src = lib + ".c"
        with open(src, "w") as f:
            f.write(LIB_SRC)
        ok = run([args.cc, "-O0", "-g", "-shared", "-fPIC", "-o", lib, src])[0] == 0
        ok = ok and run([objcopy, "--only-keep-debug", lib, dbg])[0] == 0
        ok = ok and run([objcopy, "--strip-debug", "--add-gnu-debuglink=" + dbg, lib])[0] == 0
        if check(ok, "a stripped library with a .gnu_debuglink is built"):
            os.unlink(dbg)
            os.mkfifo(dbg)
            spool = private_dir(tmp, "spool-debuglink-fifo")
            write_record(spool, 104, lib)
            rc, out, err = ingest(args, db, spool)
            check(rc == 0 and records(spool) == [],
                  "a module whose debug file (.gnu_debuglink) is a FIFO does not hang ingest",
                  (rc, err))

    spool = private_dir(tmp, "spool-fifo-record")
    os.mkfifo(os.path.join(spool, "crash-105-105-0000000000000069.rcr"))
    rc, out, err = ingest(args, db, spool)
    check(rc == 1 and "is not a regular file" in err and
          os.path.exists(os.path.join(spool, "damaged", "crash-105-105-0000000000000069.rcr")),
          "a record that is a FIFO is reported and moved aside, not read", (rc, err))

    spool = private_dir(tmp, "spool-oversized")
    big = write_record(spool, 106, "/nonexistent/module.so")
    with open(big, "r+b") as f:
        f.truncate(17 << 20)  # sparse: 17 MiB of NUL after the record
    rc, out, err = ingest(args, db, spool)
    check(rc == 1 and "larger than 16 MiB" in err and
          os.path.exists(os.path.join(spool, "damaged", os.path.basename(big))),
          "a record larger than 16 MiB is refused without being read, and kept aside",
          (rc, err))

    spool = private_dir(tmp, "spool-shared")
    os.chmod(spool, 0o777)
    rc, out, err = ingest(args, db, spool)
    check(rc == 0 and "is writable by group or others" in err,
          "ingest warns about a spool writable by others", (rc, err))


def main():
    args = agent_test.parse_args()
    if shutil.which(args.cc) is None:
        print("skipped: %s not found" % args.cc)
        return 77
    args.agent = os.path.abspath(args.agent)
    tmp = tempfile.mkdtemp(prefix="repro-spool-")
    if os.environ.get("KEEP_TMP") == "1":
        print("keeping " + tmp)
    try:
        args.exe = agent_test.compile_c(args.cc, CRASH_SRC, os.path.join(tmp, "crash_on_input"),
                                        ["-O0", "-g"])
        for step in (planted_files, refused_dirs, unpredictable_names, hostile_modules):
            step(args, tmp)
    finally:
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d check(s) failed" % len(failures) if failures else "all checks passed")
    return exit_code(failures)

if __name__ == "__main__":
    sys.exit(main())
