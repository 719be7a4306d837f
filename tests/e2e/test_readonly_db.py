#!/usr/bin/env python3
"""A database another user may read but not write can be read (issue 12,
item 3): recorded as root into a directory of mode 755 (file 644, then
444), every reading command run as `nobody` succeeds and creates nothing
next to the file (WAL mode would want a -shm file there).

usage: test_readonly_db.py REPRO_BIN FIXTURES_DIR
Exit 0 pass, 1 fail, 77 skipped (not root, no runuser).
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import Fail, run, run_test, skip_all  # noqa: E402

REPRO, FIXTURES = sys.argv[1], sys.argv[2]


def main(tmp, procs):
    d = os.path.join(tmp, "shared")
    os.makedirs(d)
    db = os.path.join(d, "x.db")
    run([REPRO, "capture", "-r", os.path.join(FIXTURES, "nginx_curl.pcap"), "--db", db],
        ok_codes=(0, 1))
    os.chmod(tmp, 0o755)
    os.chmod(d, 0o755)
    for mode in (0o644, 0o444):
        os.chmod(db, mode)
        before = sorted(os.listdir(d))
        for cmd in (["exchanges"], ["exchanges", "--format", "json"], ["show", "1"],
                    ["crashes"], ["replays"]):
            out, err, _ = run(["runuser", "-u", "nobody", "--", REPRO] + cmd + ["--db", db])
            if cmd[0] == "exchanges" and len(out.decode().splitlines()) < 10:
                raise Fail("%s as nobody listed too little:\n%s%s" % (cmd, out.decode(), err))
        if sorted(os.listdir(d)) != before:
            raise Fail("reading created files: %s -> %s" % (before, sorted(os.listdir(d))))
    print("PASSED readonly_db")


if os.geteuid() != 0:
    skip_all("needs root (to read as another user)")
if not shutil.which("runuser"):
    skip_all("needs runuser")
run_test("readonly-db", main)
