#!/usr/bin/env python3
"""Live capture under induced packet loss (issue 8): never a response stored
complete with a request it does not answer.

nginx answers every request with its own URI as a JSON body without a
trailing newline ({"req":"/rN"}). repro captures on lo with a BPF filter
that drops about one packet in sixteen, chosen by low bits of the TCP
sequence number (this kernel has no netem). Traffic: curl keep-alive batches
(one connection, many requests) and raw-socket pipelined batches. The oracle
reads the database with sqlite3: every exchange stored complete must carry
its own response; some must survive.

usage: test_live_loss.py REPRO_BIN
Exit 0 pass, 1 fail, 77 skipped (not root, no nginx or curl).
"""
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import (NGINX, Fail, start_live_capture, start_nginx,  # noqa: E402
                        stop_all, stop_live_capture)

REPRO = sys.argv[1]
N_CURL, PER_CURL = 4, 150      # keep-alive batches
N_PIPE, PER_PIPE = 10, 12      # pipelined batches


def skip(why):
    print("SKIPPED live_loss: " + why)
    sys.exit(77)


def fail(why):
    print("FAILED live_loss: " + why)
    sys.exit(1)


if os.geteuid() != 0:
    skip("needs root (capture on lo)")
if not NGINX or not shutil.which("curl"):
    skip("needs nginx and curl")

tmp = tempfile.mkdtemp(prefix="repro-live-loss-")
os.chmod(tmp, 0o755)
procs = []


def curl_batch(port, first, n):
    cfg = os.path.join(tmp, f"curl{first}.cfg")
    with open(cfg, "w") as f:
        for i in range(first, first + n):
            f.write(f'url = "http://127.0.0.1:{port}/r{i}"\noutput = "/dev/null"\n')
    return subprocess.Popen(["curl", "-sS", "--max-time", "30", "-K", cfg])


def pipelined_batch(port, first, n):
    """n requests written at once on one connection, then every response read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"".join(b"GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(first, first + n)))
    want = n
    got = b""
    while got.count(b'{"req":') < want:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()


def main():
    port = start_nginx(tmp, "nginx", """location / { default_type application/json;
            return 200 '{"req":"$request_uri"}'; }""", procs)
    db = os.path.join(tmp, "loss.db")
    # drop packets whose sequence number has low nibble 5: about 1 in 16
    flt = f"tcp port {port} and (tcp[7] & 0x0f) != 5"
    cap, err = start_live_capture(REPRO, db, flt, tmp, procs, ["--duration", "120"])

    n_sent = 0
    curls = [curl_batch(port, 1 + k * PER_CURL, PER_CURL) for k in range(N_CURL)]
    for c in curls:
        if c.wait(timeout=60) != 0:
            fail("curl batch failed")
    n_sent += N_CURL * PER_CURL
    base = 1 + N_CURL * PER_CURL
    for k in range(N_PIPE):
        pipelined_batch(port, base + k * PER_PIPE, PER_PIPE)
    n_sent += N_PIPE * PER_PIPE

    rc, summary = stop_live_capture(cap, err)
    if rc not in (0, 1):
        fail(f"repro capture exited {rc}: {summary}")

    con = sqlite3.connect(db)
    rows = con.execute("SELECT uri, response, complete, flags FROM exchanges").fetchall()
    complete = mispaired = uncertain = 0
    for uri, resp, comp, flags in rows:
        if flags & 512:
            uncertain += 1
        if not comp:
            continue
        complete += 1
        body = bytes(resp or b"").split(b"\r\n\r\n", 1)[-1]
        if body != b'{"req":"%s"}' % (uri or "").encode():
            mispaired += 1
            print(f"  mispaired: {uri} stored with {body[:60]!r}")
    print(f"sent {n_sent} requests; stored {len(rows)} exchanges, {complete} complete, "
          f"{uncertain} pairing_uncertain, {mispaired} complete with another request's response")
    print("capture summary: " + summary.strip().replace("\n", " | ")[:600])
    if mispaired:
        fail(f"{mispaired} complete exchanges carry another request's response")
    if complete < n_sent // 2:
        fail(f"only {complete} of {n_sent} exchanges complete: too few survive the induced loss")
    if "gaps 0 " in summary:
        fail("the filter dropped nothing: the test did not test loss")
    print("PASSED live_loss")


try:
    main()
except Fail as e:
    fail(str(e))
finally:
    stop_all(procs, tmp)
