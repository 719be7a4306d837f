"""Shared code of the golden end-to-end tests: running repro, checking the
`repro exchanges --format json` contract, and comparing repro's exchanges with
an oracle (tshark, or a committed oracle TSV) per TCP connection.

Every failure raises Fail with a message that says what was expected, what
repro did, and the command that did it.

Skips: every e2e script, whatever it imports, reports "cannot run here" (not
root, a tool such as gdb, nginx or tshark missing) by exiting SKIP_EXIT,
which ctest (SKIP_RETURN_CODE) shows as Skipped, never as Passed; CI fails
on any skip (scripts/bootstrap.sh). A script that can run only in part says
which part with skip_part() and exits with exit_code(): the checks that did
run still fail the test, and a skipped part makes the whole test skipped.
"""
import difflib
import ipaddress
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

FLAGS = {"gap", "truncated", "unanswered", "no_request", "malformed", "redacted",
         "body_capped", "tunnel", "interim", "pairing_uncertain", "body_dropped", "decoded"}
# field -> allowed JSON types (None = null allowed)
FIELDS = {
    "id": (int,), "capture_id": (int, None), "connection_id": (int,),
    "client": (str,), "server": (str,), "method": (str, None), "uri": (str, None),
    "host": (str, None), "http_version": (str, None), "status": (int, None),
    "reason": (str, None), "request_time": (float, int, None),
    "response_time": (float, int, None), "request_bytes": (int, None),
    "response_bytes": (int, None), "complete": (bool,), "flags": (list,),
}
ENDPOINT = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):(\d{1,5})$")
CMD_TIMEOUT_S = 60


SKIP_EXIT = 77
_skipped_parts = []


def skip_all(why):
    """The test cannot run here at all: says why and exits SKIP_EXIT."""
    print("SKIPPED: " + why, flush=True)
    sys.exit(SKIP_EXIT)


def skip_part(why):
    """One part of the test cannot run here (why names the part and what
    it needs); the test goes on and exit_code() reports it skipped."""
    _skipped_parts.append(why)
    print("SKIPPED part: " + why, flush=True)


def exit_code(failed):
    """1 when failed (a count or a truth value), else SKIP_EXIT when a part
    was skipped, else 0."""
    if failed:
        return 1
    if _skipped_parts:
        print("%d part(s) skipped, so the test is reported skipped (exit %d): %s" % (
            len(_skipped_parts), SKIP_EXIT, "; ".join(_skipped_parts)), flush=True)
        return SKIP_EXIT
    return 0


class Fail(Exception):
    """repro did something wrong: the test fails (exit 1)."""


class Setup(Exception):
    """The test cannot run (missing binary, file or tool): exit 2."""


def repro_bin(arg):
    b = arg or os.environ.get("REPRO_BIN")
    if not b:
        raise Setup("no repro binary: pass --repro BIN or set REPRO_BIN")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        raise Setup("repro binary '%s' is not an executable file" % b)
    return b


def run(cmd, ok_codes=(0,), timeout=CMD_TIMEOUT_S):
    """Runs cmd; returns (stdout bytes, stderr text, exit code). Raises Fail on
    a timeout, a signal, or an exit code outside ok_codes."""
    shown = " ".join(cmd)
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Fail("command timed out after %d s: %s" % (timeout, shown))
    err = r.stderr.decode(errors="replace")
    if r.returncode < 0:
        raise Fail("command died of signal %d: %s\nstderr:\n%s" % (-r.returncode, shown, err[-3000:]))
    if r.returncode not in ok_codes:
        raise Fail("command exited %d (expected %s): %s\nstderr:\n%s" % (
            r.returncode, "/".join(map(str, ok_codes)), shown, err[-3000:]))
    return r.stdout, err, r.returncode


class TempDir:
    """A private temporary directory, removed on exit unless KEEP_TMP=1."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="repro-e2e-")
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("KEEP_TMP") == "1":
            print("kept temporary directory %s" % self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def capture_file(repro, pcap, db, ok_codes=(0, 1)):
    """repro capture -r PCAP --db DB. Returns (exit code, stderr summary)."""
    _, err, rc = run([repro, "capture", "-r", pcap, "--db", db], ok_codes=ok_codes)
    if not os.path.isfile(db):
        raise Fail("repro capture exited %d but created no database '%s'" % (rc, db))
    return rc, err


def exchanges_raw(repro, db, extra=()):
    out, _, _ = run([repro, "exchanges", "--db", db, "--format", "json"] + list(extra))
    return out


def parse_exchanges(raw, what="repro exchanges"):
    """Parses JSON Lines and checks every object against the contract.
    Returns the list of objects in output order."""
    xs = []
    text = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else raw
    if text and not text.endswith("\n"):
        raise Fail("%s: output does not end with a newline" % what)
    for n, line in enumerate(text.split("\n")[:-1] if text else [], 1):
        try:
            x = json.loads(line)
        except ValueError as e:
            raise Fail("%s: line %d is not JSON (%s): %.200r" % (what, n, e, line))
        if not isinstance(x, dict):
            raise Fail("%s: line %d is not a JSON object: %.200r" % (what, n, line))
        problems = check_exchange(x)
        if problems:
            raise Fail("%s: line %d breaks the contract: %s\n  %s" % (what, n, "; ".join(problems), line))
        xs.append(x)
    ids = [x["id"] for x in xs]
    if len(set(ids)) != len(ids):
        raise Fail("%s: duplicate exchange ids" % what)
    return xs


def check_exchange(x):
    p = []
    for k, types in FIELDS.items():
        if k not in x:
            p.append("missing field '%s'" % k)
            continue
        v = x[k]
        ok = (v is None and None in types) or any(
            t is not None and isinstance(v, t) and not (t is int and isinstance(v, bool))
            for t in types)
        if not ok:
            p.append("field '%s' has type %s" % (k, type(v).__name__))
    if p:
        return p
    for k in ("client", "server"):
        if not ENDPOINT.match(x[k]):
            p.append("%s %r is not ip:port / [ipv6]:port" % (k, x[k]))
    bad = [f for f in x["flags"] if f not in FLAGS]
    if bad:
        p.append("unknown flags %s" % bad)
    if x["status"] is None and x["complete"]:
        p.append("complete=true but status is null")
    if x["method"] is None and x["complete"]:
        p.append("complete=true but method is null")
    for k in ("request_time", "response_time"):
        if x[k] is not None and (not math.isfinite(x[k]) or x[k] < 0):
            p.append("%s %r is not an epoch time" % (k, x[k]))
    return p


def endpoint(s):
    """'1.2.3.4:80' or '[::1]:80' -> (canonical ip, 'port')."""
    m = ENDPOINT.match(s)
    ip = m.group(1) or m.group(2)
    try:
        ip = ipaddress.ip_address(ip).compressed
    except ValueError:
        pass
    return ip, str(int(m.group(3)))


def show_ep(ep):
    ip, port = ep
    return ("[%s]:%s" if ":" in ip else "%s:%s") % (ip, port)


def uri_matches(expected, actual, redacted):
    """Exact match, except that when repro flagged the exchange 'redacted' the
    values of query parameters may differ (names and order may not)."""
    if expected == actual:
        return True
    if not redacted or actual is None or expected is None:
        return False
    ep, _, eq = expected.partition("?")
    ap, _, aq = actual.partition("?")
    if ep != ap:
        return False
    en = [kv.partition("=")[0] for kv in eq.split("&")]
    an = [kv.partition("=")[0] for kv in aq.split("&")]
    return en == an


def compare(expected_rows, exchanges, label):
    """expected_rows: dicts with client, server ((ip, port) tuples), method,
    uri, host ('' when absent), status ('' when none), hint ('' or a status).
    exchanges: parsed repro objects. Returns a list of report lines; the first
    line says OK or MISMATCH. The comparison is per connection 4-tuple, on the
    ordered list of (method, uri, host, status)."""
    exp = {}
    for r in expected_rows:
        exp.setdefault((r["client"], r["server"]), []).append(r)
    act, orphans = {}, 0
    for x in exchanges:
        if x["method"] is None:
            orphans += 1
            continue
        act.setdefault((endpoint(x["client"]), endpoint(x["server"])), []).append(x)

    lines, bad = [], 0
    for key in sorted(set(exp) | set(act), key=lambda k: (show_ep(k[0]), show_ep(k[1]))):
        e, a = exp.get(key, []), act.get(key, [])
        rows, nbad = [], 0
        for er, ax in align(e, a):
            why = row_problem(er, ax)
            nbad += why is not None
            rows.append("  %s %-56s %-56s%s" % (
                "!" if why else " ", fmt_expected(er), fmt_actual(ax), ("  <- " + why) if why else ""))
            if why and er is not None and ax is not None:
                rows.append("      expected: %s" % fmt_expected(er, full=True))
                rows.append("      repro:    %s" % fmt_actual(ax, full=True))
        head = "connection %s -> %s: %d expected, %d from repro" % (
            show_ep(key[0]), show_ep(key[1]), len(e), len(a))
        if nbad:
            bad += 1
            lines.append(head + ": MISMATCH")
            lines.append("    %-56s %-56s" % ("expected (oracle), in wire order", "repro"))
            lines.extend(rows)
        else:
            lines.append(head + ": ok")
    total = sum(len(v) for v in exp.values())
    summary = "%s: %s: %d connections, %d expected requests, %d repro exchanges with a request, " \
              "%d orphan responses (method null) ignored, %d connections differ" % (
                  label, "MISMATCH" if bad else "OK", len(set(exp) | set(act)), total,
                  sum(len(v) for v in act.values()), orphans, bad)
    return [summary] + lines, bad == 0


def align(e, a):
    """Pairs expected rows with repro exchanges of one connection, in order,
    aligning on (method, uri, host) so that one missing or extra exchange
    shows up as such instead of shifting every later row. Yields (row or
    None, exchange or None)."""
    ek = [(r["method"], r["uri"], r["host"]) for r in e]
    ak = [(x["method"], x["uri"], x["host"] or "") for x in a]
    sm = difflib.SequenceMatcher(None, ek, ak, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                yield e[i1 + k], a[j1 + k]
        else:
            for k in range(max(i2 - i1, j2 - j1)):
                yield (e[i1 + k] if i1 + k < i2 else None), (a[j1 + k] if j1 + k < j2 else None)


def align_all(expected_rows, exchanges):
    """align() over every connection; orphan responses are left out."""
    exp, act = {}, {}
    for r in expected_rows:
        exp.setdefault((r["client"], r["server"]), []).append(r)
    for x in exchanges:
        if x["method"] is not None:
            act.setdefault((endpoint(x["client"]), endpoint(x["server"])), []).append(x)
    for key in set(exp) | set(act):
        for pair in align(exp.get(key, []), act.get(key, [])):
            yield pair


def first_diff(a, b):
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else "<none>"
        y = b[i] if i < len(b) else "<none>"
        if x != y:
            return "\n    first difference at line %d:\n    expected: %s\n    got:      %s" % (
                i + 1, x[:300], y[:300])
    return ""


def row_problem(er, ax):
    if er is None:
        return "extra exchange in repro"
    if ax is None:
        return "missing in repro"
    if ax["method"] != er["method"]:
        return "method differs"
    if not uri_matches(er["uri"], ax["uri"], "redacted" in ax["flags"]):
        return "uri differs"
    if (ax["host"] or "") != er["host"]:
        return "host differs"
    st = ax["status"]
    if er["status"]:
        if st != int(er["status"]):
            return "status differs"
    elif er.get("hint"):
        if st is not None and (st != int(er["hint"]) or ax["complete"]):
            return "status must be null, or %s with complete=false" % er["hint"]
    elif st is not None:
        return "oracle saw no response"
    return None


def fmt_expected(r, full=False):
    if r is None:
        return "-"
    st = r["status"] or ("null|%s(hint)" % r["hint"] if r.get("hint") else "null")
    return trunc("%s %s host=%s %s" % (r["method"], r["uri"], r["host"] or "-", st), full)


def fmt_actual(x, full=False):
    if x is None:
        return "-"
    st = "null" if x["status"] is None else str(x["status"])
    if not x["complete"]:
        st += " (incomplete)"
    s = "%s %s host=%s %s" % (x["method"], x["uri"], x["host"] or "-", st)
    if full:
        s += "  [id %d, flags %s]" % (x["id"], ",".join(x["flags"]) or "-")
    return trunc(s, full)


def trunc(s, full=False, n=56):
    s = s.encode("unicode_escape").decode("ascii")
    return s if full or len(s) <= n else s[:n - 3] + "..."


def unescape(s):
    """Undoes the oracle TSV escaping: \\t \\r \\n \\\\."""
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"t": "\t", "r": "\r", "n": "\n", "\\": "\\"}.get(s[i + 1], "\\" + s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read_oracle_tsv(path):
    """Rows of a corpus <trace>.requests.tsv as dicts (values unescaped), plus
    client/server as (canonical ip, port) tuples."""
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise Setup("cannot read oracle '%s': %s" % (path, e.strerror))
    if not lines or not lines[0].startswith("time_epoch\t"):
        raise Fail("oracle '%s' has no header line" % path)
    cols = lines[0].split("\t")
    rows = []
    for n, line in enumerate(lines[1:], 2):
        if not line:
            continue
        vals = line.split("\t")
        if len(vals) != len(cols):
            raise Fail("oracle '%s' line %d has %d columns, header has %d" % (path, n, len(vals), len(cols)))
        r = {c: unescape(v) for c, v in zip(cols, vals)}
        r["client"] = (ipaddress.ip_address(r["client_ip"]).compressed, r["client_port"])
        r["server"] = (ipaddress.ip_address(r["server_ip"]).compressed, r["server_port"])
        r["status"] = r["resp_status"]
        r["hint"] = r["resp_status_hint"]
        rows.append(r)
    return rows


def read_tsv(path):
    """A TSV file with a header line -> list of dicts."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [l for l in f.read().split("\n") if l]
    except OSError as e:
        raise Setup("cannot read '%s': %s" % (path, e.strerror))
    cols = lines[0].split("\t")
    return [dict(zip(cols, l.split("\t") + [""] * (len(cols) - len(l.split("\t"))))) for l in lines[1:]]


# ---- live servers and captures (test_live_loss.py, test_replay.py) ----------

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def wait_for(pred, what, tries=200):
    """Bounded polling, 50 ms apart: no sleep used as synchronisation."""
    import time
    for _ in range(tries):
        if pred():
            return
        time.sleep(0.05)
    raise Fail("timed out waiting for " + what)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_nginx(tmp, name, server_conf, procs, log_format=None):
    """Starts a private nginx in tmp/name whose server block holds
    server_conf (the listen line is added); returns its port. nginx cannot
    listen on port 0, so a free port is picked and the start retried if
    another process took it. log_format: an access log format, written to
    tmp/name/access.log. The process joins procs (the caller kills it)."""
    import socket
    d = os.path.join(tmp, name)
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    os.chmod(tmp, 0o755)
    os.chmod(d, 0o755)
    log = ("log_format t '%s';\n    access_log %s/access.log t;" % (log_format, d)
           if log_format else "access_log off;")
    for _ in range(3):
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 256; }
http {
    %(log)s
    keepalive_requests 100000;
    client_body_temp_path %(d)s/tmp/body;
    proxy_temp_path %(d)s/tmp/proxy;
    fastcgi_temp_path %(d)s/tmp/fastcgi;
    uwsgi_temp_path %(d)s/tmp/uwsgi;
    scgi_temp_path %(d)s/tmp/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        %(server)s
    }
}
""" % {"d": d, "log": log, "port": port, "server": server_conf})
        # A group of its own: killing only the master would leave its
        # worker running, orphaned, after the test (stop_all kills the group).
        p = subprocess.Popen([NGINX, "-p", d, "-e", d + "/error.log", "-c", conf],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        p.repro_kill_group = True

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return p.poll() is not None
        wait_for(up, "nginx to listen")
        if p.poll() is None:
            procs.append(p)
            return port
    raise Fail("cannot start nginx (see %s/error.log)" % d)


def prometheus_parser():
    """prometheus_client's text parser (Debian python3-prometheus-client),
    or None. A python3 other than Debian's (pyenv, a venv) does not see
    Debian's packages; the parser is pure Python, so it is taken from
    there."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            return None
    return text_string_to_metric_families


def send_and_read(port, data, host="127.0.0.1", family=None, shut=False, timeout=None):
    """Sends data on a fresh TCP connection and reads until the peer
    closes; returns the bytes read."""
    import socket
    s = socket.socket(family or socket.AF_INET, socket.SOCK_STREAM)
    if timeout is not None:
        s.settimeout(timeout)
    s.connect((host, port))
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    return got


def start_live_capture(repro, db, bpf, tmp, procs, extra=()):
    """repro capture -i lo -f bpf into db, once it listens; returns (proc,
    stderr file). Without --defer-max in extra it gets --defer-max 0: a
    test's timing must not depend on whether other tests saturate the CPUs
    meanwhile (deferral has tests of its own: test_live_agent.py, part
    defer)."""
    err = open(os.path.join(tmp, "capture.err"), "w+")
    extra = list(extra)
    if "--defer-max" not in extra:
        extra += ["--defer-max", "0"]
    cap = subprocess.Popen([repro, "capture", "-i", "lo", "-f", bpf, "--db", db] + extra,
                           stderr=err)
    procs.append(cap)

    def listening():
        err.seek(0)
        return "listening on lo" in err.read() or cap.poll() is not None
    wait_for(listening, "capture to listen")
    if cap.poll() is not None:
        err.seek(0)
        raise Fail("repro capture exited early: " + err.read())
    return cap, err


def stop_live_capture(cap, err):
    """SIGINT, then its exit code and summary."""
    import signal
    cap.send_signal(signal.SIGINT)
    try:
        rc = cap.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise Fail("repro capture did not stop within 30 s of SIGINT")
    err.seek(0)
    return rc, err.read()


def kill_all(procs):
    """Kills and reaps what the test started (an nginx with its worker)
    and empties procs."""
    for p in procs:
        if getattr(p, "repro_kill_group", False):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        elif p.poll() is None:
            p.kill()
            p.wait()
    del procs[:]


def stop_all(procs, tmp):
    """Kills what the test started and removes tmp (unless KEEP_TMP=1)."""
    kill_all(procs)
    if os.environ.get("KEEP_TMP") != "1":
        shutil.rmtree(tmp, ignore_errors=True)


def run_test(name, main):
    """Runs main(tmp, procs) with a private tmp and the processes it starts
    cleaned up; a Fail is printed and exits 1."""
    tmp = tempfile.mkdtemp(prefix="repro-%s-" % name)
    procs = []
    try:
        main(tmp, procs)
    except Fail as e:
        print("FAILED %s: %s" % (name, e))
        sys.exit(1)
    finally:
        stop_all(procs, tmp)
