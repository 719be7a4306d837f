#!/usr/bin/env python3
"""End-to-end checks of repro's error messages (issue 12 item 12): a table
of bad invocations of every command, each checked for its exit code (2
error, 64 usage, 1 for addr2line's binutils cases, 127 for run), one line
on stderr that starts with `repro: COMMAND: ` (just `repro: ` before a
command), names the option or file at fault, names a file once (no
`'x.pcap': x.pcap: ...`), never says `(no error)`, and for usage errors
points to `repro COMMAND --help`. Then: `--version` in `--help`, `repro help
CMD` is `repro CMD --help`, and the "missing debug info" list of `repro run`
names only modules that are on a stack (a program linked with libz that
crashes in main: libz, without debug info, is not named).

usage: test_messages.py REPRO_BIN FIXTURES_DIR
Exit 0 when every check passes, 1 when one fails, 77 when a part could not
run (no cc, ptrace not allowed).
"""
import os
import shutil
import subprocess
import sys
import tempfile

from e2e_common import exit_code, skip_part

REPRO, FIX = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
TMP = tempfile.mkdtemp(prefix="repro-msgs-")
failures = []


def run(args, timeout=60):
    p = subprocess.run([REPRO] + args, capture_output=True, timeout=timeout, cwd=TMP,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check(cond, what, detail=""):
    if not cond:
        failures.append(what)
        print(f"FAIL {what}\n    {detail}")
    else:
        print(f"ok   {what}")


def path(name):
    return os.path.join(TMP, name)


DB = path("good.db")
DIR = path("a-dir")
NOTELF = path("not-elf.bin")
MISSING = path("missing-thing")
os.mkdir(DIR)
with open(NOTELF, "w") as f:
    f.write("int main(void) { return 0; }\n")
rc, _, err = run(["capture", "-r", os.path.join(FIX, "nginx_curl.pcap"), "--db", DB])
if rc != 0:
    print("cannot set up: capture exited %d: %s" % (rc, err))
    sys.exit(2)

# (args, exit code, substrings the one stderr line must hold)
CASES = [
    (["capture", "-x"], 64, ["unknown option '-x'"]),
    (["capture", "--bogus"], 64, ["unknown option '--bogus'"]),
    (["capture", "--re", "x"], 64, ["'--re' is ambiguous"]),
    (["capture", "-r"], 64, ["'-r' needs a value"]),
    (["capture", "--quiet=1", "-r", "x"], 64, ["'--quiet' takes no value"]),
    (["capture", "-r", "nope.pcap"], 2, ["'nope.pcap'"]),
    (["capture", "-r", DIR], 2, ["'%s'" % DIR]),
    (["capture", "-r", NOTELF], 2, ["'%s'" % NOTELF]),
    (["capture", "-r", "x", "--count", "abc"], 64, ["--count: ", "'abc'"]),
    (["capture", "-r", "x", "--duration", "0"], 64, ["--duration: ", "'0'"]),
    (["capture"], 64, ["-r FILE"]),
    (["captures", "--db", DIR], 2, ["'%s': is a directory" % DIR]),
    (["captures", "extra"], 64, ["'extra'"]),
    (["exchanges", "--status", "abc"], 64, ["--status: needs a positive number, not 'abc'"]),
    (["exchanges", "--limit", "0"], 64, ["--limit: ", "'0'"]),
    (["exchanges", "--format", "xml"], 64, ["--format: ", "'xml'"]),
    (["exchanges", "--db", DIR], 2, ["'%s': is a directory" % DIR]),
    (["exchanges", "--db", MISSING], 2, ["'%s'" % MISSING]),
    (["exchanges", "--db", NOTELF], 2, ["'%s'" % NOTELF]),
    (["exchanges", "--trace=bogus"], 64, ["--trace: unknown component 'bogus'"]),
    (["show"], 64, ["exchange ID"]),
    (["show", "abc"], 64, ["'abc'"]),
    (["show", "99999", "--db", DB], 2, ["no exchange 99999", "'%s'" % DB]),
    (["show", "1", "--db", DIR], 2, ["is a directory"]),
    (["crashes", "--format", "x"], 64, ["--format: ", "'x'"]),
    (["crashes", "abc"], 64, ["'abc'"]),
    (["crashes", "99", "--db", DB], 2, ["99"]),
    (["symbolize", "--db", DB, "--debug-dir", MISSING], 2, ["--debug-dir '%s'" % MISSING]),
    (["symbolize", "--db", DB, "--debug-dir", NOTELF], 2, ["--debug-dir '%s': not a directory" % NOTELF]),
    (["symbolize", "abc"], 64, ["'abc'"]),
    (["ingest"], 64, ["crash directory"]),
    (["ingest", "--db", DB, MISSING], 2, ["'%s'" % MISSING]),
    (["ingest", "--db", DB, "--core", NOTELF, "--exe", "/bin/true"], 2,
     ["'%s': not an ELF file" % NOTELF]),
    (["ingest", "--core", NOTELF], 64, ["--core and --exe"]),
    (["run"], 64, ["no command"]),
    (["run", "--bogus", "--", "true"], 64, ["unknown option '--bogus'"]),
    (["run", "--db", DIR, "--", "true"], 2, ["'%s': is a directory" % DIR]),
    (["run", "--db", path("run.db"), "--", MISSING], 127, ["cannot run '%s'" % MISSING]),
    (["replay"], 64, ["--target"]),
    (["replay", "--target", "x:1", "--speed", "abc"], 64, ["--speed: ", "'abc'"]),
    (["replay", "--target", "x:1", "--connections", "0"], 64, ["--connections: ", "'0'"]),
    (["replay", "--target", "x:1", "--fail-on", "bogus"], 64, ["--fail-on: ", "'bogus'"]),
    (["replays", "abc"], 64, ["'abc'"]),
    (["replays", "--db", DB, "5", "--diff"], 2, ["no replay run 5"]),
    (["addr2line", "-e", MISSING, "0x1"], 1, ["'%s': No such file" % MISSING]),
    (["addr2line", "-e", NOTELF, "0x1"], 1, ["'%s'" % NOTELF, "not an ELF file"]),
    (["addr2line", "-x"], 64, ["unknown option '-x'"]),
    (["addr2line", "--debug-dir", MISSING, "-e", "/bin/true", "0"], 2, ["--debug-dir '%s'" % MISSING]),
    (["demo", "extra"], 64, ["'extra'"]),
    (["frobnicate"], 64, ["unknown command 'frobnicate'"]),
    (["--bogus"], 64, ["unknown option '--bogus'"]),
    (["--db"], 64, ["'--db' needs a value"]),
    (["--trace=bogus", "exchanges"], 64, ["--trace: unknown component 'bogus'"]),
    (["help", "frobnicate"], 64, ["unknown command 'frobnicate'"]),
]

COMMANDS = {"capture", "captures", "exchanges", "show", "run", "ingest", "crashes", "symbolize",
            "replay", "replays", "addr2line", "demo", "help"}

for args, want_rc, needles in CASES:
    rc, out, err = run(args)
    label = "repro " + " ".join(a.replace(TMP, "$TMP") for a in args)
    cmd = args[0] if args[0] in COMMANDS else None
    prefix = "repro: %s: " % cmd if cmd else "repro: "
    lines = err.splitlines()
    problems = []
    if rc != want_rc:
        problems.append("exit %d, not %d" % (rc, want_rc))
    if len(lines) != 1:
        problems.append("%d lines on stderr, not 1" % len(lines))
    if not err.startswith(prefix):
        problems.append("does not start with %r" % prefix)
    for n in needles:
        if n not in err:
            problems.append("does not name %r" % n)
    if "(no error)" in err:
        problems.append("says '(no error)'")
    for a in args:  # a file named twice: 'x.pcap': x.pcap: No such file
        if ("/" in a or a.endswith(".pcap")) and err.count(a) > 1:
            problems.append("names %r twice" % a)
    # (--trace lists the valid names itself)
    if want_rc == 64 and "(known: " not in err and "see 'repro %s--help'" % (cmd + " " if cmd and cmd != "help" else "") not in err:
        problems.append("does not point to --help")
    if out:
        problems.append("wrote to stdout: %r" % out[:80])
    check(not problems, "%s: exit %d, %s..." % (label, want_rc, prefix),
          "; ".join(problems) + "\n    stderr: " + err.strip()[:300])

# a truncated capture: exit 1, the error first (then the summary of what
# was stored)
TRUNC = path("trunc.pcap")
with open(os.path.join(FIX, "nginx_curl.pcap"), "rb") as f, open(TRUNC, "wb") as g:
    g.write(f.read(5000))
rc, out, err = run(["capture", "-r", TRUNC, "--db", path("trunc.db")])
first = err.splitlines()[0] if err else ""
check(rc == 1 and first.startswith("repro: capture: cannot read capture '%s' after record " % TRUNC)
      and first.count(TRUNC) == 1 and "what was read before is stored" in first,
      "a truncated capture: exit 1, 'repro: capture: cannot read capture ...' first", err[:300])

# the library's log lines carry the command too
rc, out, err = run(["capture", "-r", os.path.join(FIX, "nginx_curl.pcap"), "--db", path("t.db"),
                    "--trace=capture.tcp"])
first = err.splitlines()[0] if err else ""
check(rc == 0 and first.startswith("repro: capture: debug: capture.tcp: "),
      "--trace lines read 'repro: capture: debug: capture.tcp: ...'", first)

# --version is in --help; repro help [CMD] is the --help text
rc, top, err = run(["--help"])
check(rc == 0 and "--version" in top and "repro help" in top, "--help mentions --version and help",
      top[:300])
rc, out, err = run(["help"])
check(rc == 0 and out == top, "repro help prints repro --help", (rc, err))
for name in sorted(COMMANDS - {"help"}):
    rc1, h1, _ = run([name, "--help"])
    rc2, h2, e2 = run(["help", name])
    check(rc1 == rc2 == 0 and h1 == h2 and h1.startswith("usage: repro " + name),
          "repro help %s is repro %s --help" % (name, name), (rc2, e2, h2[:100]))


def missing_list():
    """The missing-debug-info list names only modules on a stack."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        skip_part("missing debug info list: no cc")
        return
    src, exe, db = path("z.c"), path("zcrash"), path("z.db")
    with open(src, "w") as f:
        f.write("#include <stdio.h>\n#include <zlib.h>\n"
                "int main(void) { printf(\"%s\\n\", zlibVersion()); fflush(stdout);\n"
                "  volatile int *p = 0; return *p; }\n")
    r = subprocess.run([cc, "-g", "-O0", "-o", exe, src, "-lz"], capture_output=True, text=True)
    if r.returncode != 0:
        skip_part("missing debug info list: cannot build with -lz: " + r.stderr.strip()[:200])
        return
    rc, out, err = run(["run", "--db", db, "--", exe])
    if rc == 2 and "cannot trace" in err:
        skip_part("missing debug info list: ptrace is not allowed here")
        return
    lines = err.splitlines()
    check(rc == 139 and len(lines) == 2 and lines[0].startswith("repro: ") and
          " crashed with SIGSEGV at 0x" in lines[0] and "frames symbolized" in lines[1],
          "repro run of a crash prints two lines: the crash, then its symbolization", err)
    check("libz" not in err, "the missing debug info list leaves out libz (on no stack)", err)
    rc, out, err = run(["symbolize", "--db", db])
    check(rc == 0 and "libz" not in err, "repro symbolize leaves out libz too", err)


missing_list()
shutil.rmtree(TMP, ignore_errors=True)
print("test_messages: %d failed" % len(failures))
sys.exit(exit_code(failures))
