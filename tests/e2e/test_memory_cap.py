#!/usr/bin/env python3
"""Live capture under a memory cap (issue 11, "Budgets that cannot be
starved"): 20,000 idle client connections, each having sent the start of a
request head, then one complete request with curl.

Small Python servers (three processes sharing the port with SO_REUSEPORT,
as a process may hold fewer than 20,000 files here) accept every connection
and answer a request once its head is complete; two client processes hold
10,000 connections each. repro
captures on lo with --max-memory 64M. The checks:
  - the curl request is stored complete with its response;
  - the capture says what it cut (connections evicted from the table or
    closed to free held bytes), never malformed;
  - the agent's own peak memory stays under the cap: VmHWM less the
    file-backed pages (the kernel's packet ring, mapped into the process
    and sized by the buffer option, and the binary), read from
    /proc/PID/status until the process exits.

usage: test_memory_cap.py REPRO_BIN
Exit 0 pass, 1 fail, 77 skipped (not root, no curl, too low a file limit).
"""
import json
import os
import resource
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import Fail, run, run_test, skip_all, start_live_capture  # noqa: E402

REPRO = sys.argv[1]
N_IDLE = 20000
N_CLIENT_PROCS = 2   # a process may hold fewer than 20,000 files here
N_SERVER_PROCS = 3   # SO_REUSEPORT: the kernel spreads the connections
CAP_BYTES = 64 << 20

SERVER = r"""
import resource, selectors, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(4096)
ls.setblocking(False)
print(ls.getsockname()[1], flush=True)
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
bufs = {}
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is ls:
            while True:
                try:
                    c, _ = ls.accept()
                except OSError:
                    break
                c.setblocking(False)
                bufs[c] = b""
                sel.register(c, selectors.EVENT_READ)
            continue
        try:
            d = s.recv(65536)
        except OSError:
            d = b""
        if not d:
            sel.unregister(s)
            bufs.pop(s, None)
            s.close()
            continue
        bufs[s] += d
        if b"\r\n\r\n" in bufs[s]:
            bufs[s] = b""
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
"""

# Opens N connections, each sending the start of a request head that never
# ends, says "ready", and holds them until its stdin closes.
CLIENTS = r"""
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, n = int(sys.argv[1]), int(sys.argv[2])
head = b"GET /idle HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 900
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(head)
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


def status_of(pid):
    """VmHWM, RssFile and RssAnon in bytes, or None once the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            st = dict(line.split(":", 1) for line in f if ":" in line)
        return {k: int(st[k].split()[0]) * 1024 for k in ("VmHWM", "RssFile", "RssAnon")}
    except (OSError, KeyError, ValueError):
        return None


def main(tmp, procs):
    first = subprocess.Popen([sys.executable, "-c", SERVER, "0"], stdout=subprocess.PIPE)
    procs.append(first)
    port = int(first.stdout.readline())
    for _ in range(N_SERVER_PROCS - 1):
        more = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE)
        procs.append(more)
        more.stdout.readline()
    db = os.path.join(tmp, "memcap.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs,
                                  ["--max-memory", "64M"])

    # The ring is mapped from the start: the most file-backed memory seen is
    # the ring and the binary (it falls when the ring is unmapped at exit).
    file_max = status_of(cap.pid)["RssFile"]
    clients = []
    for _ in range(N_CLIENT_PROCS):
        c = subprocess.Popen([sys.executable, "-c", CLIENTS, str(port),
                              str(N_IDLE // N_CLIENT_PROCS)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        procs.append(c)
        clients.append(c)
    for c in clients:
        if c.stdout.readline().strip() != b"ready":
            raise Fail("a client process could not open its connections")
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "http://127.0.0.1:%d/final" % port],
                         stdout=subprocess.PIPE, check=False).stdout
    if out != b"ok":
        raise Fail("the server did not answer curl (got %r)" % out)
    # Stop, reading the agent's memory until it has exited (sampling, not
    # synchronisation: the last reading is the one that counts).
    last = status_of(cap.pid)
    file_max = max(file_max, last["RssFile"])
    cap.send_signal(2)
    while cap.poll() is None:
        last = status_of(cap.pid) or last
        try:
            cap.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass
    err.seek(0)
    summary = err.read()
    if cap.returncode not in (0, 1):
        raise Fail("repro capture exited %d:\n%s" % (cap.returncode, summary[-3000:]))
    for c in clients:
        c.stdin.close()
        c.wait(timeout=60)

    peak_own = last["VmHWM"] - file_max
    print("peak: VmHWM %.1f MiB, of which file-backed (packet ring, binary) %.1f MiB: "
          "own %.1f MiB (cap %d MiB); RssAnon at the end %.1f MiB" % (
              last["VmHWM"] / 2**20, file_max / 2**20, peak_own / 2**20,
              CAP_BYTES >> 20, last["RssAnon"] / 2**20))
    if os.environ.get("REPRO_SANITIZED") == "1":
        # ASan's shadow memory and quarantine are in RSS and are not the
        # agent's: the cap is checked in the plain build only.
        print("sanitizer build: peak memory reported, not checked against the cap")
    elif peak_own > CAP_BYTES:
        raise Fail("the agent's peak memory %.1f MiB is over --max-memory 64M\n%s" % (
            peak_own / 2**20, summary[-2000:]))

    raw, _, _ = run([REPRO, "exchanges", "--db", db, "--format", "json", "--path-prefix", "/final"])
    rows = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    if len(rows) != 1 or not rows[0]["complete"] or rows[0]["status"] != 200:
        raise Fail("the request after 20,000 idle connections was not stored complete: %r\n%s" % (
            rows, summary[-2000:]))
    raw, _, _ = run([REPRO, "captures", "--db", db, "--format", "json"])
    capture = json.loads(raw.decode().splitlines()[-1])
    counters = capture.get("counters") or {}
    cut = {k: counters.get(k) for k in ("dropped_connections", "evicted_pressure_connections",
                                        "evicted_pressure_bytes", "capped_budget_messages",
                                        "dropped_alloc_packets")}
    if not (cut["dropped_connections"] or 0) + (cut["evicted_pressure_connections"] or 0):
        raise Fail("the capture row does not say what was cut: %s" % json.dumps(capture)[:2000])
    print("stored: /final complete; what the caps cut: %s" % json.dumps(cut))
    print("".join(line + "\n" for line in summary.splitlines() if "kernel" in line
                  or line.startswith("connections")), end="")

if __name__ == "__main__":
    if os.geteuid() != 0:
        skip_all("needs root (capture on lo)")
    if not shutil.which("curl"):
        skip_all("needs curl")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < N_IDLE // N_CLIENT_PROCS + 100:
        skip_all("a process may open only %d files" % hard)
    run_test("memory_cap", main)
