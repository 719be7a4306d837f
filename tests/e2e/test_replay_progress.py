#!/usr/bin/env python3
"""repro replay's live progress line (issue 10): drawn on stderr when it is
a terminal (a pty here), with sent/total and the verdicts so far; never
when stderr is a pipe, nor with --quiet. --realtime: the summary says
whether the sender got SCHED_FIFO. No root: the recorded traffic is
a pcap fixture, the target a Python HTTP server on port 0.

usage: test_replay_progress.py REPRO_BIN FIXTURES_DIR
Exit 0 pass, 1 fail.
"""
import http.server
import os
import pty
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import Fail, capture_file, run, run_test  # noqa: E402

REPRO, FIX = sys.argv[1], sys.argv[2]


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_POST = do_HEAD = do_GET

    def log_message(self, *a):
        pass


def on_pty(cmd):
    """Runs cmd with stderr on a pty; returns (exit code, bytes written there)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            b = os.read(master, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not b:
            break
        out += b
    os.close(master)
    return p.wait(timeout=60), out


def main(tmp, procs):
    db = os.path.join(tmp, "p.db")
    capture_file(REPRO, os.path.join(FIX, "nginx_curl.pcap"), db)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        cmd = [REPRO, "replay", "--db", db, "--target", "127.0.0.1:%d" % srv.server_port,
               "--speed", "max", "--timeout", "5000"]
        rc, out = on_pty(cmd)
        text = out.decode(errors="replace")
        if rc not in (0, 1) or "\rreplay: " not in text or " sent, " not in text:
            raise Fail("no progress line on a terminal (exit %d): %r" % (rc, text[-800:]))
        last = text.split("\rreplay: ")[-1]
        total = last.split(" sent")[0]
        done, of = total.split("/")
        if done != of:
            raise Fail("the last progress line is not complete: %r" % last)
        if "replay run " not in text:
            raise Fail("no summary after the progress line: %r" % text[-800:])
        rc, out = on_pty(cmd + ["--quiet"])
        if b"\rreplay: " in out or b"replay run " not in out:
            raise Fail("--quiet still drew the progress line: %r" % out[-800:])
        _, err, _ = run(cmd, ok_codes=(0, 1))
        if "\r" in err or " sent, " in err:
            raise Fail("a progress line on a pipe: %r" % err[-800:])
        # --realtime: the summary says whether the sender got SCHED_FIFO
        paced = [x if x != "max" else "1000" for x in cmd]
        _, err, _ = run(paced + ["--realtime"], ok_codes=(0, 1))
        # (a run that fell 10 ms behind says how often it left real time)
        if ("(sender under SCHED_FIFO" not in err and
                "(sender not real-time: SCHED_FIFO not permitted)" not in err):
            raise Fail("--realtime: the summary does not say how the sender ran: %r" % err[-800:])
        _, err, _ = run(paced, ok_codes=(0, 1))
        if "schedule error:" not in err or "SCHED_FIFO" in err:
            raise Fail("without --realtime the summary speaks of SCHED_FIFO: %r" % err[-800:])
    finally:
        srv.shutdown()
    print("PASSED replay_progress")


run_test("replay_progress", main)
