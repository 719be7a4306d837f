#!/usr/bin/env python3
"""repro replay --exec end to end (issue 10): traffic to the sample service,
the last request of which crashes it (GET /crash?depth=3, its planted bug),
is captured live; replayed against a fresh staging copy started by
`repro replay --exec 'sample_service --port {port}'` under the crash
supervisor, the crashing request gets the verdict `crash`, the others
match, the staging crash is stored and symbolized (crash_store_record on
its stack), exit 1. Replayed against the hotfix build the crashing request
is answered (production never answered it: `unanswered`), nothing else
differs: exit 0.

usage: test_replay_exec.py REPRO_BIN SAMPLE_SERVICE SAMPLE_SERVICE_HOTFIX
Exit 0 pass, 1 fail, 77 skipped (not root, no curl).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import (Fail, skip_all, run, run_test, start_live_capture,  # noqa: E402
                        stop_live_capture)

REPRO, SERVICE, HOTFIX = sys.argv[1], sys.argv[2], sys.argv[3]


def main(tmp, procs):
    prod = subprocess.Popen([SERVICE, "--port", "0"], stdout=subprocess.PIPE, text=True)
    procs.append(prod)
    line = prod.stdout.readline().split()
    if len(line) != 2 or line[0] != "LISTENING":
        raise Fail("sample_service did not say LISTENING: %r" % line)
    port = int(line[1])
    db = os.path.join(tmp, "exec.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs)
    base = "http://127.0.0.1:%d" % port
    subprocess.run(["curl", "-sS", "--max-time", "10", base + "/health", base + "/items/5"],
                   check=True, stdout=subprocess.DEVNULL)
    # the planted bug: production dies, curl gets no answer
    subprocess.run(["curl", "-sS", "--max-time", "10", base + "/crash?depth=3"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prod.wait(timeout=10)
    rc, summary = stop_live_capture(cap, err)
    if rc not in (0, 1):
        raise Fail("repro capture exited %d: %s" % (rc, summary))

    report = os.path.join(tmp, "crash.json")
    _, e, rc = run([REPRO, "replay", "--db", db, "--exec", SERVICE + " --port {port}",
                    "--speed", "max", "--report", report], ok_codes=(0, 1, 2), timeout=60)
    if rc != 1:
        raise Fail("replay --exec against the buggy build exited %d:\n%s" % (rc, e))
    r = json.load(open(report))
    verdicts = sorted(x["verdict"] for x in r["results"])
    if verdicts != ["crash", "match", "match"] or r["crashes"] != 1:
        raise Fail("expected crash + 2 matches, got %s\n%s" % (verdicts, e))
    if "staging crashed: crash" not in e:
        raise Fail("the staging crash was not reported:\n" + e)
    out, _, _ = run([REPRO, "crashes", "--db", db, "--format", "json"])
    crashes = [json.loads(x) for x in out.decode().splitlines()]
    frames = [f.get("function") for c in crashes for t in c["threads"] if t.get("crashed")
              for f in t["frames"]]
    if not crashes or crashes[-1]["signal"] != "SIGSEGV" or "crash_store_record" not in frames:
        raise Fail("staging crash not stored and symbolized: %s" % out.decode()[:2000])

    report = os.path.join(tmp, "hotfix.json")
    _, e, rc = run([REPRO, "replay", "--db", db, "--exec", HOTFIX + " --port {port}",
                    "--speed", "max", "--report", report], ok_codes=(0, 1, 2), timeout=60)
    r = json.load(open(report))
    verdicts = sorted(x["verdict"] for x in r["results"])
    if rc != 0 or verdicts != ["match", "match", "unanswered"]:
        raise Fail("replay --exec against the hotfix: exit %d, %s\n%s" % (rc, verdicts, e))
    print("PASSED replay_exec")


if os.geteuid() != 0:
    skip_all("needs root (live capture on lo)")
if not shutil.which("curl"):
    skip_all("needs curl")
run_test("replay_exec", main)
