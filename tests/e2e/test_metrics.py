#!/usr/bin/env python3
"""The Prometheus exporter (app/metrics.c) end to end, through the
metrics_server test program: started on port 0, scraped with urllib, the
text parsed by Prometheus' own Python parser (Debian python3-prometheus-
client) and by a strict line grammar of the text format 0.0.4; HEAD, the
index, wrong paths and methods, malformed and oversized requests, a request
cut short, a silent client that must delay no one and is closed at the
timeout, IPv6 and every-address listening, bad addresses and a port in use.

usage: test_metrics.py METRICS_SERVER_BINARY
"""
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import (exit_code, prometheus_parser, send_and_read, skip_all,  # noqa: E402
                        skip_part)

text_string_to_metric_families = prometheus_parser()
if text_string_to_metric_families is None:
    skip_all("needs the Debian package python3-prometheus-client")

SERVER = sys.argv[1] if len(sys.argv) > 1 else None
if not SERVER or not os.access(SERVER, os.X_OK):
    print("usage: test_metrics.py METRICS_SERVER_BINARY", file=sys.stderr)
    sys.exit(2)
TIMEOUT_S = 30
problems = []


def check(cond, what):
    if not cond:
        problems.append(what)
        print("FAIL: " + what, flush=True)


class Server:
    """metrics_server HOSTPORT [TIMEOUT_MS]; port read back from stdout."""

    def __init__(self, hostport, timeout_ms=None):
        cmd = [SERVER, hostport] + ([str(timeout_ms)] if timeout_ms else [])
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        line = self.p.stdout.readline().decode()
        if not line.startswith("LISTENING "):
            err = self.p.stderr.read().decode()
            self.p.wait(timeout=TIMEOUT_S)
            raise RuntimeError("metrics_server %s: %r %s" % (hostport, line, err))
        self.port = int(line.split()[1])

    def stop(self):
        """Closes stdin (the program stops the server); returns its last line."""
        self.p.stdin.close()
        out = self.p.stdout.read().decode()
        self.p.wait(timeout=TIMEOUT_S)
        return out.strip()


def start_error(hostport):
    """metrics_server that must fail: (exit code, stderr)."""
    p = subprocess.run([SERVER, hostport], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=TIMEOUT_S)
    return p.returncode, p.stderr.decode()


def raw(port, data, host="127.0.0.1", family=socket.AF_INET, shut=False):
    """Sends data on a fresh connection and reads until the server closes."""
    return send_and_read(port, data, host, family, shut, TIMEOUT_S)


def status_of(answer):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return int(m.group(1)) if m else None


# The text format 0.0.4, strictly: every line a HELP, a TYPE or a sample,
# each family's HELP and TYPE once and before its samples, sample names
# equal to the family's (counters and gauges have no suffixes).
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]Inf|NaN)"
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)\})? (%s)$" % (NAME, LABEL, LABEL, VALUE))
HELP = re.compile(r"^# HELP (%s) (?:[^\\\n]|\\[\\n])*$" % NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge)$" % NAME)


def strict_check(text):
    check(text.endswith("\n"), "text does not end with a newline")
    seen, current, label_sets = set(), None, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        m = HELP.match(line)
        if m:
            check(m.group(1) not in seen, "line %d: family %s twice" % (n, m.group(1)))
            seen.add(m.group(1))
            current = m.group(1)
            continue
        m = TYPE.match(line)
        if m:
            check(m.group(1) == current, "line %d: TYPE of %s after HELP of %s" % (
                n, m.group(1), current))
            continue
        m = SAMPLE.match(line)
        check(m is not None, "line %d is not in the text format: %r" % (n, line))
        if m:
            check(m.group(1) == current, "line %d: sample of %s in family %s" % (
                n, m.group(1), current))
            key = (m.group(1), m.group(2))
            check(key not in label_sets, "line %d: label set repeated" % n)
            label_sets.add(key)


def test_scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=TIMEOUT_S) as r:
        check(r.status == 200, "GET /metrics: status %d" % r.status)
        ctype = r.headers.get("Content-Type", "")
        check(ctype.startswith("text/plain; version=0.0.4"), "Content-Type %r" % ctype)
        check(r.headers.get("Connection") == "close", "no Connection: close")
        body = r.read()
        check(int(r.headers.get("Content-Length", -1)) == len(body), "Content-Length wrong")
    text = body.decode("utf-8")
    strict_check(text)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    want = {"repro_test_renders": "counter", "repro_test_dropped_packets": "counter",
            "repro_test_value": "gauge"}
    for name, typ in want.items():
        check(name in fams and fams[name].type == typ, "family %s (%s) missing: %s" % (
            name, typ, sorted(fams)))
    if problems:
        return text
    drops = {s.labels["reason"]: s.value for s in fams["repro_test_dropped_packets"].samples}
    check(drops == {"kernel": 0, "queue_full": 1, "memory_cap": 9007199254740993.0},
          "drops %r" % drops)
    check("\nrepro_test_dropped_packets_total{reason=\"memory_cap\"} 9007199254740993\n" in text,
          "a counter above 2^53 is not written exactly")
    check(fams["repro_test_dropped_packets"].documentation ==
          "Packets dropped, by reason.\nA second line \\ too.",
          "HELP unescaped to %r" % fams["repro_test_dropped_packets"].documentation)
    values = {tuple(sorted(s.labels.items())): s.value for s in fams["repro_test_value"].samples}
    odd = (("empty", ""), ("path", "C:\\dir \"quoted\"\nnext line"))
    check(values.get(odd) == 0.1, "escaped label values: %r" % values)
    check(values.get((("v", "inf"),)) == float("inf"), "+Inf")
    check(values.get((("v", "-inf"),)) == float("-inf"), "-Inf")
    nan = values.get((("v", "nan"),))
    check(nan is not None and nan != nan, "NaN")
    check(values.get((("v", "big"),)) == -1.5e300, "-1.5e300")
    return text


def renders(text):
    m = re.search(r"^repro_test_renders_total (\d+)$", text, re.M)
    return int(m.group(1)) if m else -1


def test_answers(port):
    # render runs for every scrape
    a, b = renders(test_scrape(port)), renders(test_scrape(port))
    check(b == a + 1, "renders %d then %d" % (a, b))

    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=TIMEOUT_S) as r:
        check(r.status == 200 and b"/metrics" in r.read(), "GET / has no pointer to /metrics")
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % port, method="HEAD")
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
        check(r.status == 200 and r.read() == b"" and int(r.headers["Content-Length"]) > 0,
              "HEAD /metrics")
    for path, method, code in (("/nope", "GET", 404), ("/metrics/", "GET", 404),
                               ("/metrics", "POST", 405), ("/", "DELETE", 405)):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                     data=b"x=1" if method == "POST" else None)
        try:
            urllib.request.urlopen(req, timeout=TIMEOUT_S)
            check(False, "%s %s answered 2xx" % (method, path))
        except urllib.error.HTTPError as e:
            check(e.code == code, "%s %s: %d, expected %d" % (method, path, e.code, code))
            if code == 405:
                check(e.headers.get("Allow") == "GET, HEAD", "405 without Allow")

    cases = [
        ("not HTTP", b"hello there\r\n\r\n", 400),
        ("TLS hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, 400),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
        ("header without colon", b"GET /metrics HTTP/1.1\r\nbroken\r\n\r\n", 400),
        ("head over 8 KiB", b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
        ("pipelined second request ignored",
         b"GET /nope HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n", 404),
        ("large body not read", b"POST /metrics HTTP/1.1\r\nContent-Length: 10000000\r\n\r\n"
         + b"x" * 100000, 405),
    ]
    for what, data, code in cases:
        got = raw(port, data)
        check(status_of(got) == code and got.count(b"HTTP/1.1 ") == 1,
              "%s: %r" % (what, got[:80]))
    got = raw(port, b"GET /metrics HTTP/1.1\r\nHost", shut=True)
    check(status_of(got) == 400, "a request cut short by the client: %r" % got[:80])
    check(raw(port, b"", shut=True) == b"", "a client that closes at once gets nothing")


def test_silent_client():
    """A silent client delays no scrape and is closed at the timeout."""
    srv = Server("127.0.0.1:0", timeout_ms=300)
    try:
        silent = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT_S)
        slow = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT_S)
        slow.sendall(b"GET /met")
        test_scrape(srv.port)
        for s, what in ((silent, "silent"), (slow, "slow")):
            check(s.recv(100) == b"", "the %s client was answered, not closed" % what)
            s.close()
    finally:
        last = srv.stop()
    check(re.match(r"STOPPED scrapes=\d+ errors=0 timeouts=2$", last) is not None,
          "stats after timeouts: %r" % last)


def test_addresses():
    for hp, why in (("127.0.0.1:99999", "cannot serve metrics on '127.0.0.1:99999': bad port"),
                    ("localhost", "cannot serve metrics on 'localhost': expected HOST:PORT"),
                    ("::1:0", "write an IPv6 address in brackets")):
        rc, err = start_error(hp)
        check(rc == 2 and why in err, "%s: exit %d, %r" % (hp, rc, err))
    srv = Server("127.0.0.1:0")
    try:
        rc, err = start_error("127.0.0.1:%d" % srv.port)
        check(rc == 2 and "bind: Address already in use" in err, "port in use: %r" % err)
    finally:
        srv.stop()
    if not socket.has_ipv6:
        skip_part("IPv6 listening (no IPv6 here)")
        return
    try:
        srv = Server("[::1]:0")
    except RuntimeError as e:
        skip_part("IPv6 loopback (%s)" % e)
        return
    try:
        got = raw(srv.port, b"GET /metrics HTTP/1.1\r\n\r\n", host="::1", family=socket.AF_INET6)
        check(status_of(got) == 200, "[::1]: %r" % got[:60])
    finally:
        srv.stop()
    srv = Server(":0")
    try:
        for host, fam in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
            got = raw(srv.port, b"GET /metrics HTTP/1.1\r\n\r\n", host=host, family=fam)
            check(status_of(got) == 200, ":0 over %s: %r" % (host, got[:60]))
    finally:
        srv.stop()


def main():
    srv = Server("127.0.0.1:0")
    try:
        test_answers(srv.port)
    finally:
        last = srv.stop()
    check(last.startswith("STOPPED scrapes="), "the server did not stop cleanly: %r" % last)
    test_silent_client()
    test_addresses()
    if problems:
        print("%d problem(s)" % len(problems))
    return exit_code(len(problems))


sys.exit(main())
