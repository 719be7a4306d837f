#!/usr/bin/env python3
"""The database while others use it (issue 11, "readers and writers
alongside" and "an honest record of the run"):

1. readers alongside writers: while one process commits exchanges in a
   loop (WAL, as the live agent does) and repro imports a capture again
   and again, `repro exchanges`, `repro show` and `repro captures` run
   repeatedly; none fails and none says "database is locked";
2. a full disk: a capture whose writes fail (the file-size limit,
   RLIMIT_FSIZE, stands in for a full disk) exits 2, and its captures row
   ends 'failed' with the reason in captures.error and counts only the
   exchanges the database holds.

usage: test_store_concurrency.py REPRO_BIN FIXTURES_DIR
Exit 0 pass, 1 fail.
"""
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import Fail, run, run_test  # noqa: E402

REPRO, FIXTURES = sys.argv[1], sys.argv[2]
READS = 40  # rounds of the three reading commands

# Commits copies of exchange 1 one transaction at a time until the stop
# file exists, then prints how many it committed. A millisecond between
# transactions: SQLite's write lock is not queued, and a process that takes
# it again the moment it lets go can keep another writer (the import
# below) waiting past its 5 s busy timeout; seen once in CI under ASan with
# no pause. Still hundreds of commits a second; the live agent makes four.
WRITER = r"""
import os, sqlite3, sys, time
db, stop = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db, timeout=30, isolation_level=None)
n = 0
while not os.path.exists(stop):
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO exchanges(capture_id, connection_id, seq, method, uri, status,"
              " request_bytes, response_bytes, flags, complete, request, response)"
              " SELECT capture_id, connection_id, seq, method, uri || '?w', status,"
              " request_bytes, response_bytes, flags, complete, request, response"
              " FROM exchanges WHERE id = 1")
    c.execute("COMMIT")
    n += 1
    time.sleep(0.001)
print(n)
"""


def readers_alongside_writers(tmp, procs):
    db = os.path.join(tmp, "busy.db")
    stop = os.path.join(tmp, "stop")
    pcap = os.path.join(FIXTURES, "nginx_curl.pcap")
    run([REPRO, "capture", "-r", pcap, "--db", db], ok_codes=(0, 1))
    w = subprocess.Popen([sys.executable, "-c", WRITER, db, stop], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    procs.append(w)
    imports, problems = [0], []

    def import_loop():
        # repro's own writer, importing the same file again (--force)
        while not os.path.exists(stop):
            _, err, rc = run([REPRO, "capture", "-r", pcap, "--db", db, "--force", "--quiet"],
                             ok_codes=(0, 1, 2))
            if rc == 2 or "locked" in err:
                problems.append("repro capture exited %d: %s" % (rc, err.strip()[-500:]))
                return
            imports[0] += 1

    t = threading.Thread(target=import_loop)
    t.start()
    try:
        for i in range(READS):
            for cmd in (["exchanges", "--limit", "50"], ["exchanges", "--format", "json"],
                        ["show", "1"], ["captures"]):
                _, err, _ = run([REPRO] + cmd + ["--db", db])
                if "locked" in err:
                    raise Fail("%s said: %s" % (" ".join(cmd), err.strip()))
    finally:
        open(stop, "w").close()
        t.join()
        out, err = w.communicate(timeout=60)
    if w.returncode != 0:
        raise Fail("the committing process failed: %s" % err.decode()[-2000:])
    if problems:
        raise Fail(problems[0])
    print("readers alongside: %d rounds of reads, %s commits by another process, %d imports"
          % (READS, out.decode().strip(), imports[0]))


def disk_full(tmp, procs):
    db = os.path.join(tmp, "full.db")
    run([REPRO, "capture", "-r", os.path.join(FIXTURES, "nginx_curl.pcap"), "--db", db],
        ok_codes=(0, 1))
    # a full disk: the -wal may hold two pages (the capture's row, then its
    # end) but not the batches of exchanges in between
    c = sqlite3.connect(db)
    page = c.execute("PRAGMA page_size").fetchone()[0]
    c.close()
    limit = 32 + 2 * (24 + page) + page // 2

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    cmd = [REPRO, "capture", "-r", os.path.join(FIXTURES, "nginx_wrk.pcap"), "--db", db]
    r = subprocess.run(cmd, preexec_fn=limited, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    err = r.stderr.decode(errors="replace")
    if r.returncode != 2:
        raise Fail("a capture into a full disk exited %d, not 2: %s" % (r.returncode, err))
    c = sqlite3.connect(db)
    cid, status, error, stored_col, stats = c.execute(
        "SELECT id, status, error, exchanges, stats_json FROM captures ORDER BY id DESC"
        " LIMIT 1").fetchone()
    held = c.execute("SELECT count(*) FROM exchanges WHERE capture_id = ?", (cid,)).fetchone()[0]
    if status != "failed" or not error or db not in error:
        raise Fail("the failed capture's row: status %r, error %r" % (status, error))
    if stored_col != held:
        raise Fail("the failed capture's row counts %s exchanges, the database holds %d"
                   % (stored_col, held))
    if '"exchanges_not_stored":' not in (stats or ""):
        raise Fail("stats_json lacks exchanges_not_stored: %s" % stats)
    if "exchanges were stored before the failure" not in err:
        raise Fail("the summary does not say what was stored: %s" % err)
    out, _, _ = run([REPRO, "captures", "--db", db])
    if error not in out.decode():
        raise Fail("repro captures does not show why capture %d failed:\n%s" % (cid, out.decode()))
    print("disk full: capture %d failed (%s), %d exchanges counted and held" % (cid, error, held))


def main(tmp, procs):
    readers_alongside_writers(tmp, procs)
    disk_full(tmp, procs)
    print("PASSED store_concurrency")


run_test("store-concurrency", main)
