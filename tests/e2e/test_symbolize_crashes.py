#!/usr/bin/env python3
"""Crash symbolization end to end: a stripped binary symbolized later from a
build-id tree (`repro symbolize --debug-dir`), a debug file with the wrong
build-id refused, the same crash twice grouped under one signature, the
text/JSON/markdown reports of `repro crashes`, and debuginfod: a local
`debuginfod` server on loopback serving a directory of debug files.

usage: test_symbolize_crashes.py REPRO FIXTURES_DIR
Exit 0 when all checks pass, 1 on the first failure, 77 if a tool is missing.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from e2e_common import exit_code, skip_part

REPRO, FIX = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="repro-sym-")
checks = 0


def fail(msg):
    print("FAIL " + msg)
    shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(1)


def ok(msg):
    global checks
    checks += 1
    print("ok   " + msg)


def run(args, env=None, ok_codes=(0,), timeout=120):
    p = subprocess.run(args, capture_output=True, timeout=timeout, env=env)
    if p.returncode not in ok_codes:
        fail("%s exited %d\n%s" % (" ".join(args), p.returncode, p.stderr.decode()[-1500:]))
    return p.stdout.decode(), p.stderr.decode()


def crashes_json(db):
    out, _ = run([REPRO, "crashes", "--db", db, "--format", "json"])
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def build_id(path):
    out, _ = run(["readelf", "-n", path])
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    fail("no build-id in " + path)


def crashing_functions(c):
    t = next(t for t in c["threads"] if t["crashed"])
    return [f["function"] for f in t["frames"]]


for tool in ("objcopy", "strip", "readelf"):
    if shutil.which(tool) is None:
        print("SKIP: %s missing" % tool)
        sys.exit(77)

# A stripped copy of the null_deref fixture and its debug file in a build-id tree.
src = os.path.join(FIX, "null_deref")
binary = os.path.join(TMP, "null_deref")
shutil.copy(src, binary)
bid = build_id(binary)
debug_dir = os.path.join(TMP, "debug")
tree = os.path.join(debug_dir, ".build-id", bid[:2])
os.makedirs(tree)
debug_file = os.path.join(tree, bid[2:] + ".debug")
run(["objcopy", "--only-keep-debug", binary, debug_file])
run(["strip", "--strip-all", binary])

db = os.path.join(TMP, "r.db")
run([REPRO, "run", "--db", db, "--", binary], ok_codes=(139,))
c = crashes_json(db)[-1]
if "store_result" in crashing_functions(c):
    fail("a stripped binary was symbolized without its debug file: %s" % crashing_functions(c))
t = next(t for t in c["threads"] if t["crashed"])
if t["frames"][0]["build_id"] != bid or t["frames"][0]["offset"] is None:
    fail("unsymbolized frames must keep module, build-id and offset: %s" % t["frames"][0])
ok("stripped binary: frames stored as module+build-id+offset")

out, err = run([REPRO, "symbolize", "--db", db, "--debug-dir", debug_dir, str(c["id"])])
c = crashes_json(db)[-1]
funcs = crashing_functions(c)
want = ["store_result", "route_handler", "lookup_route", "parse_request", "main"]
if funcs[:5] != want:
    fail("after repro symbolize --debug-dir: %s, want %s\n%s" % (funcs, want, err))
frame0 = next(t for t in c["threads"] if t["crashed"])["frames"][0]
if not (frame0["file"] or "").endswith("null_deref.c") or not frame0["line"]:
    fail("no file:line after symbolize: %s" % frame0)
ok("repro symbolize --debug-dir finds the debug file by build-id: %s" % " > ".join(funcs[:5]))

# A debug file whose build-id differs is refused (and said so).
db2 = os.path.join(TMP, "r2.db")
run([REPRO, "run", "--db", db2, "--", binary], ok_codes=(139,))
bad_dir = os.path.join(TMP, "bad")
os.makedirs(os.path.join(bad_dir, ".build-id", bid[:2]))
other = os.path.join(FIX, "div_zero")
run(["objcopy", "--only-keep-debug", other,
     os.path.join(bad_dir, ".build-id", bid[:2], bid[2:] + ".debug")])
out, err = run([REPRO, "symbolize", "--db", db2, "--debug-dir", bad_dir])
c2 = crashes_json(db2)[-1]
if "store_result" in crashing_functions(c2) or "divide" in crashing_functions(c2):
    fail("a debug file with another build-id was used: %s" % crashing_functions(c2))
if "refusing" not in err:
    fail("the refusal is not reported: %s" % err)
ok("a debug file with the wrong build-id is refused")

# The same crash twice: one signature, one group of 2.
run([REPRO, "run", "--db", db, "--", src], ok_codes=(139,))
all_c = crashes_json(db)
sigs = {x["signature"] for x in all_c}
if len(all_c) != 2 or len(sigs) != 1 or None in sigs:
    fail("two crashes of the same bug must share a signature: %s" % sigs)
sig = sigs.pop()
if not sig.startswith("SIGSEGV|store_result|route_handler|lookup_route"):
    fail("unexpected signature %r" % sig)
text, _ = run([REPRO, "crashes", "--db", db])
if "(2 crashes, first" not in text or "#0 0x" not in text or "in store_result" not in text:
    fail("text report lacks the group or the frames:\n" + text[:1500])
md, _ = run([REPRO, "crashes", "--db", db, "--format", "markdown"])
if not md.startswith("## repro crash report") or "```" not in md or "store_result" not in md:
    fail("markdown report:\n" + md[:800])
ok("same crash twice: signature %s, grouped (2 crashes); text and markdown reports" % sig)

# debuginfod on loopback serving the debug directory.
if shutil.which("debuginfod") is None:
    skip_part("debuginfod on loopback (debuginfod is not installed)")
else:
    db3 = os.path.join(TMP, "r3.db")
    run([REPRO, "run", "--db", db3, "--", binary], ok_codes=(139,))
    serve = os.path.join(TMP, "serve")
    os.makedirs(serve)
    shutil.copy(debug_file, os.path.join(serve, "null_deref.debug"))
    proc = port = None
    for _ in range(3):  # debuginfod takes no port 0: ask the kernel for a free one
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        proc = subprocess.Popen(["debuginfod", "-p", str(port), "-F", serve,
                                 "-d", os.path.join(TMP, "dbgd.sqlite"), "-t", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = "http://127.0.0.1:%d/buildid/%s/debuginfo" % (port, bid)
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    ready = r.status == 200
            except Exception:
                ready = False
            if ready:
                break
            time.sleep(0.2)  # polling the server's readiness, bounded by the deadline
        if ready:
            break
        proc.kill()
        proc.wait()
        proc = None
    if proc is None:
        fail("debuginfod did not serve the debug file")
    try:
        env = dict(os.environ, DEBUGINFOD_URLS="http://127.0.0.1:%d" % port,
                   DEBUGINFOD_CACHE_PATH=os.path.join(TMP, "cache"))
        out, err = run([REPRO, "symbolize", "--db", db3], env=env)
        c3 = crashes_json(db3)[-1]
        if crashing_functions(c3)[:5] != want:
            fail("symbolize through debuginfod: %s\n%s" % (crashing_functions(c3), err))
        ok("debuginfod on loopback: symbolized %s" % " > ".join(crashing_functions(c3)[:5]))
    finally:
        proc.kill()
        proc.wait()

# A debuginfod that is down, and one that accepts and never answers: the
# command still succeeds, promptly, and the frames keep module+offset.
if shutil.which("debuginfod") is not None:
    db4 = os.path.join(TMP, "r4.db")
    run([REPRO, "run", "--db", db4, "--", binary], ok_codes=(139,))
    down = socket.socket()
    down.bind(("127.0.0.1", 0))
    down_port = down.getsockname()[1]
    down.close()  # nothing listens there now
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # accepts connections (backlog), never answers
    for label, port in (("down", down_port), ("hung", hung.getsockname()[1])):
        env = dict(os.environ, DEBUGINFOD_URLS="http://127.0.0.1:%d" % port,
                   DEBUGINFOD_CACHE_PATH=os.path.join(TMP, "cache-" + label))
        env.pop("DEBUGINFOD_TIMEOUT", None)
        t0 = time.monotonic()
        out, err = run([REPRO, "symbolize", "--db", db4], env=env, timeout=60)
        took = time.monotonic() - t0
        c4 = crashes_json(db4)[-1]
        f0 = next(t for t in c4["threads"] if t["crashed"])["frames"][0]
        if f0["offset"] is None or f0["build_id"] != bid:
            fail("with debuginfod %s the frame lost module/offset: %s" % (label, f0))
        if "missing" not in err and "no debug information" not in err:
            fail("with debuginfod %s the report does not say what was missing: %s" % (label, err))
        ok("debuginfod %s: symbolize still succeeds (%.1f s), frames keep module+offset"
           % (label, took))
    hung.close()

shutil.rmtree(TMP, ignore_errors=True)
print("%d passed, 0 failed" % checks)
sys.exit(exit_code(False))
