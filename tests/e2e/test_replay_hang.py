#!/usr/bin/env python3
"""repro replay --exec against a staging build that hangs (issue 10): every
request times out (verdict `timeout`, exit 1), and while staging still
hangs its threads' stacks are recorded without killing it: a crash row
with signal "hang" (signo 0), stored and listed by `repro crashes`, that
the summary names. No root: the recorded traffic is a pcap fixture; the
staging build is a Python server that accepts and reads but never answers.

usage: test_replay_hang.py REPRO_BIN FIXTURES_DIR
Exit 0 pass, 1 fail.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import Fail, capture_file, run, run_test  # noqa: E402

REPRO, FIX = sys.argv[1], sys.argv[2]

HANGING_SERVER = r'''
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    c, _ = s.accept()
    c.recv(65536)  # the request, never answered
    held.append(c)
'''


def main(tmp, procs):
    db = os.path.join(tmp, "h.db")
    capture_file(REPRO, os.path.join(FIX, "nginx_curl.pcap"), db)
    server = os.path.join(tmp, "hang.py")
    with open(server, "w") as f:
        f.write(HANGING_SERVER)
    report = os.path.join(tmp, "r.json")
    _, err, rc = run([REPRO, "replay", "--db", db, "--exec", "%s %s {port}" % (sys.executable, server),
                      "--speed", "max", "--timeout", "300", "--report", report, "--quiet"],
                     ok_codes=(0, 1, 2), timeout=120)
    if rc != 1:
        raise Fail("replay against a hanging staging exited %d:\n%s" % (rc, err))
    r = json.load(open(report))
    verdicts = {x["verdict"] for x in r["results"]}
    if verdicts - {"timeout", "unanswered"} or "timeout" not in verdicts:
        raise Fail("expected timeouts only, got %s" % sorted(verdicts))
    if "staging hung (a request timed out): its stacks are crash" not in err:
        raise Fail("the hang record is not named in the summary:\n" + err)
    out, _, _ = run([REPRO, "crashes", "--db", db, "--format", "json"])
    crashes = [json.loads(x) for x in out.decode().splitlines()]
    hangs = [c for c in crashes if c.get("signal") == "hang"]
    if not hangs or len(hangs) > 4:
        raise Fail("expected 1..4 hang records: %s" % out.decode()[:2000])
    h = hangs[0]
    frames = [f for t in h["threads"] for f in t["frames"]]
    if not frames or any(t.get("crashed") for t in h["threads"]):
        raise Fail("a hang record without stacks, or with a crashed thread: %s" % json.dumps(h)[:2000])
    if "python" not in (h.get("executable") or ""):
        raise Fail("the hang record is not of the staging process: %s" % h.get("executable"))
    print("PASSED replay_hang")


run_test("replay_hang", main)
