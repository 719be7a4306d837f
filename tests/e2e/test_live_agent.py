#!/usr/bin/env python3
"""The live capture agent end to end (issue 11), on loopback as root.

Parts, each against a private nginx (Debian package; WebDAV PUT on, so
uploads are real) with `repro capture -i lo`:
  quiet     --duration on an interface where nothing matches ends, with
            no packet to wake it (it used to block in libpcap until one
            came); the time it took is printed
  visible   one curl request and no later packet on the port: a reader
            sees the exchange while the capture runs (it used to wait for
            the next packet or the stop); the delay is printed
  traffic   keep-alive GETs, a 2 MiB download, a chunked upload, an upload
            with `Expect: 100-continue`, pipelined requests on a raw socket;
            SIGTERM stops the capture with exit 0; every exchange is checked
            against what the client sent and received: method, target,
            status, complete, and the SHA-256 of each body (the stored
            digests, so bodies past --max-body are checked too)
  kill9     steady keep-alive traffic; readers see commits while it runs;
            then kill -9: the database opens clean (integrity_check) and
            every exchange a reader saw before the kill is still there;
            how many answered requests are missing, and how old the oldest
            of them was at the kill, is printed
  metrics   --metrics 127.0.0.1:0 while traffic runs: the text parses with
            prometheus_client's parser (Debian python3-prometheus-client),
            the counters match the traffic, every drop family has its
            reasons; SIGUSR1 prints a status line
  retain    --max-db-mb 2 under 30,000 requests: the oldest exchanges are
            deleted while capturing, the newest are kept, the used size
            stays near the limit, the count is in the captures row
  locked    another process holds the database's write lock for 7 s (past
            the 5 s busy timeout) while requests are captured: the agent
            keeps capturing, retries, and stores every request, exit 0
  user      --user nobody: the agent runs as nobody once the interface is
            open and still stores (idle-first CPU still on: it may raise its
            threads as nobody); a database directory others can write is
            refused before anything is captured
  busy      idle-first CPU (the default) on a host whose cores are all kept
            busy by spinning processes at normal priority: the parser and
            writer threads run SCHED_IDLE (read from /proc), and 300
            keep-alive requests are all still readable while it runs (the
            watcher raises the threads when they fall behind; the summary's
            and stats_json's count of raises agree and are printed);
            --priority normal keeps every thread SCHED_OTHER (with
            --defer-max 0: this part is about raising)
  defer     deferral: with every core spinning, the status line says parsing
            is deferred and nothing is committed; 200 small and 15 2-MiB
            keep-alive requests (more than the 16 MiB queue of
            --max-memory 64M: the spool takes the rest) come in complete
            after --defer-max (6 s) with the cores still busy, 50
            more after the spinners stop; the summary's deferral
            line agrees with stats_json, no spool error, no drop;
            --defer-max 0 under the same load does not defer
  spoolkill kill -9 while parsing is deferred (every core spinning, 200
            small and 15 2-MiB requests): the spool is left behind, the
            next capture -i on the database parses it first and stores
            every exchange complete, bodies intact; the killed capture's
            row ends failed, naming the capture that got its packets
  synced    a power cut cannot be staged: while exchanges come in, the
            database's WAL is synced to disk again and again (strace -y
            counts the fsyncs of the -wal file), and once more after the
            last commit with no later traffic; the longest gap and that
            delay are printed (no timed assertion)
  (every other part runs with --defer-max 0: its timing must not depend on
  other tests saturating the CPUs)

usage: test_live_agent.py REPRO_BIN [PART...]
Exit 0 pass, 1 fail, 77 skipped (not root, no nginx or curl).
"""
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import (NGINX, Fail, kill_all, prometheus_parser, run_test,  # noqa: E402
                        send_and_read, start_live_capture, start_nginx, stop_live_capture,
                        wait_for)

REPRO = sys.argv[1]
PARTS = sys.argv[2:] or ["quiet", "visible", "traffic", "kill9", "spoolkill", "synced", "metrics",
                         "user", "retain", "locked", "busy", "defer"]
INCOMPLETE = 1 | 2 | 4 | 8 | 16 | 512  # REPRO_XF_INCOMPLETE (docs/schema.md)


def skip(why):
    print("SKIPPED live_agent: " + why)
    sys.exit(77)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def db_exchanges(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    con.row_factory = sqlite3.Row
    rows = con.execute(
        "SELECT method, uri, status, flags, complete, interim, "
        "lower(hex(request_body_sha256)) AS rq, lower(hex(response_body_sha256)) AS rs "
        "FROM exchanges ORDER BY id").fetchall()
    con.close()
    return [dict(r) for r in rows]



def random_body(n):
    """n random bytes that do not look like JSON: a body whose first byte
    other than white space is '{' or '[' may be redacted, so once capped
    it gets no digest (docs/capture.md), and a random one did so about
    once in a hundred runs."""
    return b"B" + os.urandom(n - 1)


def nginx_dav(tmp, procs):
    www = os.path.join(tmp, "www")
    os.makedirs(www, exist_ok=True)
    os.chmod(www, 0o777)  # the worker (nobody) writes the uploads
    files = {"small.txt": b"small file\n", "big.bin": random_body(2 << 20)}
    for name, data in files.items():
        with open(os.path.join(www, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(www, name), 0o644)
    port = start_nginx(tmp, "ng",
                       "root %s; dav_methods PUT; client_max_body_size 64m;"
                       " client_body_temp_path %s/ng/tmp/body;" % (www, tmp), procs)
    return port, www, files


def part_quiet(tmp, procs):
    port, _, _ = nginx_dav(tmp, procs)
    db = os.path.join(tmp, "quiet.db")
    limit = 1.0
    t0 = time.monotonic()
    try:
        p = subprocess.run([REPRO, "capture", "-i", "lo", "--db", db, "--duration", str(limit),
                            "tcp port %d" % (port + 1 if port < 65535 else port - 1)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    except subprocess.TimeoutExpired:
        raise Fail("quiet: --duration %.1f on a silent interface did not end" % limit)
    took = time.monotonic() - t0  # reported, not asserted: a loaded host is slower
    if p.returncode != 0:
        raise Fail("quiet: exit %d: %s" % (p.returncode, p.stderr.decode()))
    # It ended (the 60 s timeout is only a hang guard), and nothing woke it:
    # not one packet matched the filter.
    con = sqlite3.connect(db)
    packets, status = con.execute(
        "SELECT json_extract(stats_json, '$.received_packets'), status FROM captures"
    ).fetchone()
    con.close()
    if packets != 0 or status != "complete":
        raise Fail("quiet: %s packets, status %s: the interface was not silent" %
                   (packets, status))
    print("quiet: --duration %.1f ended after %.2f s without a packet" % (limit, took))


def part_visible(tmp, procs):
    port, _, files = nginx_dav(tmp, procs)
    db = os.path.join(tmp, "visible.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs)
    body = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/small.txt" % port],
                          stdout=subprocess.PIPE, check=True).stdout
    t0 = time.monotonic()
    if body != files["small.txt"]:
        raise Fail("visible: curl got %r" % body)

    def stored():
        try:
            return len(db_exchanges(db)) >= 1
        except sqlite3.Error:
            return False
    # No packet on the port after curl's: only the agent's own clock can
    # commit it (before the fix it waited for the next packet or the stop).
    wait_for(stored, "the exchange to become visible with no later packet", tries=200)
    took = time.monotonic() - t0  # reported, not asserted
    if cap.poll() is not None:
        raise Fail("visible: the capture ended before the exchange was seen")
    rc, summary = stop_live_capture(cap, err)
    if rc != 0:
        raise Fail("visible: capture exit %d: %s" % (rc, summary))
    print("visible: readable %.2f s after the response, no later packet" % took)


def raw_pipelined(port, paths):
    req = b"".join(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (p.encode(), port)
                   for p in paths)
    data = send_and_read(port, req + b"GET /small.txt HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
    return data.count(b"HTTP/1.1 200")


def part_traffic(tmp, procs):
    port, www, files = nginx_dav(tmp, procs)
    db = os.path.join(tmp, "traffic.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs)
    base = "http://127.0.0.1:%d" % port
    expect = []  # (method, uri, status, request sha, response sha or None)
    # keep-alive: four requests on one connection, one a 2 MiB download
    out = os.path.join(tmp, "ka")
    os.makedirs(out)
    subprocess.run(["curl", "-sS", "-o", out + "/1", base + "/small.txt", "-o", out + "/2",
                    base + "/big.bin", "-o", out + "/3", base + "/small.txt", "-o",
                    out + "/4", base + "/small.txt?x=1"], check=True)
    for i, (uri, name) in enumerate([("/small.txt", "small.txt"), ("/big.bin", "big.bin"),
                                     ("/small.txt", "small.txt"),
                                     ("/small.txt?x=1", "small.txt")]):
        got = open("%s/%d" % (out, i + 1), "rb").read()
        if got != files[name]:
            raise Fail("traffic: curl got the wrong bytes for %s" % uri)
        expect.append(("GET", uri, 200, sha(b""), sha(got)))
    # chunked upload (curl -T - sends Transfer-Encoding: chunked)
    up = random_body(300000)
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-T", "-", base + "/up_chunked.bin"],
                   input=up, check=True)
    if open(os.path.join(www, "up_chunked.bin"), "rb").read() != up:
        raise Fail("traffic: nginx stored the chunked upload wrongly")
    expect.append(("PUT", "/up_chunked.bin", 201, sha(up), None))
    # Expect: 100-continue with a body of 1.5 MB
    big = random_body(1500000)
    path = os.path.join(tmp, "big_up")
    open(path, "wb").write(big)
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", "Expect: 100-continue", "-T", path,
                    base + "/up_expect.bin"], check=True)
    expect.append(("PUT", "/up_expect.bin", 201, sha(big), None))
    # pipelining on a raw socket: three requests in one write, then a close
    n = raw_pipelined(port, ["/small.txt?p=1", "/small.txt?p=2", "/small.txt?p=3"])
    if n != 4:
        raise Fail("traffic: %d of 4 pipelined responses" % n)
    for i in (1, 2, 3):
        expect.append(("GET", "/small.txt?p=%d" % i, 200, sha(b""), sha(files["small.txt"])))
    expect.append(("GET", "/small.txt", 200, sha(b""), sha(files["small.txt"])))
    # SIGTERM: stop, flush, exit 0
    cap.send_signal(signal.SIGTERM)
    rc = cap.wait(timeout=30)
    err.seek(0)
    summary = err.read()
    if rc != 0:
        raise Fail("traffic: capture exit %d after SIGTERM: %s" % (rc, summary))
    got = db_exchanges(db)
    if len(got) != len(expect):
        raise Fail("traffic: %d exchanges stored, %d sent:\n%s" %
                   (len(got), len(expect), "\n".join(str(g) for g in got)))
    for e, g in zip(sorted(expect, key=lambda e: e[1]), sorted(got, key=lambda g: g["uri"])):
        method, uri, status, rq, rs = e
        if (g["method"], g["uri"], g["status"]) != (method, uri, status):
            raise Fail("traffic: expected %s %s %d, stored %s" % (method, uri, status, g))
        if g["flags"] & INCOMPLETE or not g["complete"]:
            raise Fail("traffic: %s %s stored incomplete (flags %d)" % (method, uri, g["flags"]))
        if g["rq"] != rq:  # the store keeps the 32 bytes of each digest
            raise Fail("traffic: %s %s: request body digest %s, sent %s" %
                       (method, uri, g["rq"], rq))
        if rs is not None and g["rs"] != rs:
            raise Fail("traffic: %s %s: response body digest %s, received %s" %
                       (method, uri, g["rs"], rs))
    print("traffic: %d exchanges, each with the bodies the client sent and received" % len(got))


def part_kill9(tmp, procs):
    port, _, files = nginx_dav(tmp, procs)
    db = os.path.join(tmp, "kill9.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs)
    done = []  # (uri, monotonic time its response was read)
    stop = threading.Event()

    def client(k):
        s = socket.create_connection(("127.0.0.1", port))
        f = s.makefile("rb")
        i = 0
        while not stop.is_set():
            uri = "/small.txt?c=%d&i=%d" % (k, i)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % uri.encode())
            line = f.readline()
            length = 0
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":")[1])
            f.read(length)
            if line.startswith(b"HTTP/1.1 200"):
                done.append((uri, time.monotonic()))
            i += 1
        s.close()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(done) > 2000, "traffic to build up", tries=400)
    # Commits while traffic runs, seen by a reader: the count grows twice.
    seen = [0]

    def committed_grew():
        n = len(db_exchanges(db))
        grew = n > seen[-1]
        if grew:
            seen.append(n)
        return grew and len(seen) >= 3
    wait_for(committed_grew, "commits while traffic runs", tries=400)
    visible = set(g["uri"] for g in db_exchanges(db))  # committed before the kill
    t_kill = time.monotonic()
    cap.send_signal(signal.SIGKILL)
    cap.wait()
    stop.set()
    for t in threads:
        t.join()
    con = sqlite3.connect(db)
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    con.close()
    if ok != "ok":
        raise Fail("kill9: integrity_check says %s" % ok)
    p = subprocess.run([REPRO, "exchanges", "--db", db, "--format", "json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise Fail("kill9: repro exchanges after kill -9: %s" % p.stderr.decode())
    stored = set(g["uri"] for g in db_exchanges(db))
    lost = visible - stored
    if lost:
        raise Fail("kill9: %d exchanges a reader saw before kill -9 are gone, e.g. %s" %
                   (len(lost), sorted(lost)[:3]))
    missing = [(u, t) for u, t in done if u not in stored]
    oldest = max((t_kill - t for _, t in missing), default=0.0)
    print("kill9: %d answered before the kill, %d stored (all %d seen before it); %d missing, "
          "the oldest answered %.2f s before the kill" %
          (len(done), len(stored), len(visible), len(missing), oldest))



def part_metrics(tmp, procs):
    import re
    import urllib.request
    parse = prometheus_parser()
    if parse is None:
        skip("needs the Debian package python3-prometheus-client")
    port, _, files = nginx_dav(tmp, procs)
    db = os.path.join(tmp, "metrics.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs,
                                  extra=["--metrics", "127.0.0.1:0"])
    err.seek(0)
    m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", err.read())
    if not m:
        raise Fail("metrics: no 'metrics on' line")
    url = "http://127.0.0.1:%s/metrics" % m.group(1)
    n = 25
    subprocess.run(["curl", "-sS"] +
                   ["http://127.0.0.1:%d/small.txt?m=%d" % (port, i) for i in range(n)],
                   stdout=subprocess.DEVNULL, check=True)

    def scrape():
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        fams = {}
        for fam in parse(text):
            for smp in fam.samples:
                fams.setdefault(smp.name, {})[smp.labels.get("reason", "")] = smp.value
        return fams
    wait_for(lambda: scrape().get("repro_capture_exchanges_total", {}).get("") == n,
             "%d exchanges in the metrics" % n)
    fams = scrape()
    for name, reasons in [("repro_capture_dropped_packets_total",
                           {"kernel", "interface", "queue_full"}),
                          ("repro_capture_dropped_bytes_total",
                           {"out_of_order_cap", "body_cap", "resync", "never_captured"})]:
        if set(fams.get(name, {})) < reasons:
            raise Fail("metrics: %s has reasons %s" % (name, sorted(fams.get(name, {}))))
        if any(fams[name].values()):
            raise Fail("metrics: %s is not 0 on clean traffic: %s" % (name, fams[name]))
    if fams["repro_capture_received_packets_total"][""] < 2 * n:
        raise Fail("metrics: only %s packets received" % fams["repro_capture_received_packets_total"])
    for g in ("repro_capture_queue_bytes", "repro_capture_resident_memory_bytes"):
        if g not in fams:
            raise Fail("metrics: no %s" % g)
    cap.send_signal(signal.SIGUSR1)
    wait_for(lambda: (err.seek(0), "exchanges/s" in err.read())[1], "a status line on SIGUSR1")
    err.seek(0)
    line = [ln for ln in err.read().splitlines() if "exchanges/s" in ln][0]
    if "; cpu idle-first" not in line and "; cpu raised to nice" not in line:
        raise Fail("metrics: the status line does not say where the CPU policy is: %s" % line)
    for g in ("repro_capture_cpu_idle_first", "repro_capture_cpu_level",
              "repro_capture_cpu_raised_seconds_total"):
        if g not in fams:
            raise Fail("metrics: no %s" % g)
    if set(fams.get("repro_capture_cpu_raises_total", {})) != {"behind", "far_behind"}:
        raise Fail("metrics: repro_capture_cpu_raises_total has reasons %s" %
                   sorted(fams.get("repro_capture_cpu_raises_total", {})))
    rc, summary = stop_live_capture(cap, err)
    if rc != 0:
        raise Fail("metrics: capture exit %d: %s" % (rc, summary))
    print("metrics: %d families parsed; exchanges %d; SIGUSR1 status line seen" %
          (len(fams), n))


def part_user(tmp, procs):
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        skip("no user 'nobody'")
    port, _, files = nginx_dav(tmp, procs)
    # a directory others can write is refused before anything is captured
    bad = os.path.join(tmp, "open")
    os.makedirs(bad)
    os.chmod(bad, 0o777)
    p = subprocess.run([REPRO, "capture", "-i", "lo", "--db", os.path.join(bad, "x.db"),
                        "--duration", "5", "tcp port %d" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 2 or b"others can write" not in p.stderr and \
            b"other users can write" not in p.stderr:
        raise Fail("user: a 0777 database directory was not refused: exit %d %s" %
                   (p.returncode, p.stderr.decode()))
    if os.path.exists(os.path.join(bad, "x.db")):
        raise Fail("user: the refused database was created")
    own = os.path.join(tmp, "own")
    os.makedirs(own)
    os.chown(own, nobody.pw_uid, nobody.pw_gid)
    os.chmod(own, 0o700)
    db = os.path.join(own, "user.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs,
                                  extra=["--user", "nobody"])
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "http://127.0.0.1:%d/small.txt" % port],
                   check=True)
    with open("/proc/%d/status" % cap.pid) as f:
        uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
    if set(uids) != {str(nobody.pw_uid)}:
        raise Fail("user: the agent runs with uids %s, not nobody's %d" % (uids, nobody.pw_uid))
    rc, summary = stop_live_capture(cap, err)
    if rc != 0:
        raise Fail("user: capture exit %d: %s" % (rc, summary))
    if len(db_exchanges(db)) != 1 or os.stat(db).st_uid != nobody.pw_uid:
        raise Fail("user: the database does not hold the request as nobody's file")
    # repro lifts RLIMIT_NICE to 20 before the drop, so that nobody may
    # raise its idle threads again; root without CAP_SYS_RESOURCE (some
    # containers, this CI's) cannot, and then the agent says so and runs
    # at normal priority
    if has_cap(24):  # CAP_SYS_RESOURCE
        if "cpu: idle-first" not in summary or "CAP_SYS_NICE" in summary:
            raise Fail("user: idle-first CPU is off as nobody: %s" % summary)
    elif "CAP_SYS_NICE" not in summary or "cpu: idle-first" in summary:
        raise Fail("user: no warning that idle-first is off as nobody: %s" % summary)
    print("user: ran as uid %d after opening lo; a 0777 directory was refused" % nobody.pw_uid)


def has_cap(bit):
    """Whether this process has capability number bit in its effective set."""
    with open("/proc/self/status") as f:
        eff = [line.split()[1] for line in f if line.startswith("CapEff:")][0]
    return bool(int(eff, 16) >> bit & 1)


def part_retain(tmp, procs):
    import json
    port, _, _ = nginx_dav(tmp, procs)
    db = os.path.join(tmp, "retain.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs,
                                  extra=["--max-db-mb", "2"])
    n = 0
    for k in range(6):
        s = socket.create_connection(("127.0.0.1", port))
        f = s.makefile("rb")
        got = 0
        for j in range(0, 5000, 50):  # pipelined 50 at a time (the cap is 64 waiting)
            s.sendall(b"".join(b"GET /small.txt?r=%d HTTP/1.1\r\nHost: t\r\n\r\n" %
                               (n + j + i) for i in range(50)))
            want = got + 50
            while got < want:
                line = f.readline()
                if not line:
                    raise Fail("retain: nginx closed the connection")
                if line.startswith(b"HTTP/1.1 200"):
                    got += 1
        s.close()
        n += got
    last = "/small.txt?r=%d" % (n - 1)

    def newest_stored():
        try:
            return any(g["uri"] == last for g in db_exchanges(db))
        except sqlite3.Error:
            return False
    wait_for(newest_stored, "the newest exchange to be stored")
    rc, summary = stop_live_capture(cap, err)
    if rc != 0:
        raise Fail("retain: capture exit %d: %s" % (rc, summary))
    con = sqlite3.connect(db)
    page = con.execute("PRAGMA page_size").fetchone()[0]
    used = (con.execute("PRAGMA page_count").fetchone()[0] -
            con.execute("PRAGMA freelist_count").fetchone()[0]) * page
    stats = json.loads(con.execute("SELECT stats_json FROM captures").fetchone()[0])
    uris = [r[0] for r in con.execute("SELECT uri FROM exchanges ORDER BY id")]
    con.close()
    pruned = stats.get("pruned_exchanges", 0)
    if not pruned or len(uris) + pruned != n:
        raise Fail("retain: %d sent, %d kept, %d pruned" % (n, len(uris), pruned))
    if uris[-1] != last or uris[0] == "/small.txt?r=0":
        raise Fail("retain: not the oldest deleted first: kept %s .. %s" % (uris[0], uris[-1]))
    if used > (2 << 20) + (4 << 20):
        raise Fail("retain: %d bytes used with --max-db-mb 2" % used)
    print("retain: %d sent, %d oldest deleted while capturing, %d kept; %.1f MiB used" %
          (n, pruned, len(uris), used / 1048576.0))


def part_locked(tmp, procs):
    import json
    port, _, files = nginx_dav(tmp, procs)
    db = os.path.join(tmp, "locked.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs)
    base = "http://127.0.0.1:%d/small.txt?l=" % port
    subprocess.run(["curl", "-sS"] + [base + str(i) for i in range(10)],
                   stdout=subprocess.DEVNULL, check=True)
    wait_for(lambda: len(db_exchanges(db)) == 10, "the first requests to be stored")
    holder = sqlite3.connect(db, timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held past the busy timeout
    t0 = time.monotonic()
    for k in range(7):
        subprocess.run(["curl", "-sS"] + [base + "%d-%d" % (k, i) for i in range(20)],
                       stdout=subprocess.DEVNULL, check=True)
        time.sleep(1.0)  # traffic spread over the 7 s the lock is held; not a synchronisation
    if cap.poll() is not None:
        raise Fail("locked: the agent exited while the database was locked")
    holder.execute("ROLLBACK")
    holder.close()
    held = time.monotonic() - t0
    wait_for(lambda: len(db_exchanges(db)) == 150, "every request to be stored after the lock")
    rc, summary = stop_live_capture(cap, err)
    if rc != 0:
        raise Fail("locked: capture exit %d: %s" % (rc, summary))
    con = sqlite3.connect(db)
    stats = json.loads(con.execute("SELECT stats_json FROM captures").fetchone()[0])
    con.close()
    if not stats.get("store_busy_retries"):
        raise Fail("locked: no busy retries counted: %s" % stats)
    print("locked: write lock held %.1f s; all 150 requests stored, %d retries, %d ms blocked" %
          (held, stats["store_busy_retries"], stats.get("store_blocked_ms", 0)))


def thread_policies(pid):
    """{thread name: scheduling policy} of a process (stat field 41)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        out[name] = int(stat[stat.rindex(")") + 2:].split()[38])
    return out


def part_busy(tmp, procs):
    import re
    port, _, files = nginx_dav(tmp, procs)
    ncpu = len(os.sched_getaffinity(0))
    # every core busy at normal priority: SCHED_IDLE threads get no idle CPU
    for _ in range(ncpu):
        procs.append(subprocess.Popen(["sh", "-c", "while :; do :; done"]))
    db = os.path.join(tmp, "busy.db")
    # no deferral (start_live_capture's default): this part is about raising
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs)
    want = {"repro": 5, "repro-writer": 5, "repro-reader": 0, "repro-cpu": 0}
    # "listening on" comes as the interface opens, the policies just after
    try:
        wait_for(lambda: all(thread_policies(cap.pid).get(k) == v for k, v in want.items()),
                 "the idle-first policies")
    except Fail:
        raise Fail("busy: thread policies %s, want %s (5 SCHED_IDLE, 0 SCHED_OTHER)" %
                   (thread_policies(cap.pid), want))
    n = 300
    body = subprocess.run(["curl", "-sS"] + ["http://127.0.0.1:%d/small.txt?b=%d" % (port, i)
                                             for i in range(n)],
                          stdout=subprocess.PIPE, check=True).stdout
    t0 = time.monotonic()
    if body != files["small.txt"] * n:
        raise Fail("busy: curl got %d bytes, want %d" % (len(body), n * len(files["small.txt"])))

    def stored():
        try:
            return len(db_exchanges(db)) >= n
        except sqlite3.Error:
            return False
    wait_for(stored, "%d exchanges to become visible with every core busy" % n, tries=200)
    took = time.monotonic() - t0  # reported, not asserted: a loaded host is slower
    rc, summary = stop_live_capture(cap, err)
    if rc != 0:
        raise Fail("busy: capture exit %d: %s" % (rc, summary))
    m = re.search(r"cpu: idle-first; raised (\d+) times \((\d+) of them to nice 0\)", summary)
    if not m:
        raise Fail("busy: no idle-first line in the summary: %s" % summary)
    con = sqlite3.connect(db)
    raises = con.execute("SELECT json_extract(stats_json, '$.cpu_raises') FROM captures").fetchone()[0]
    con.close()
    if raises != int(m.group(1)):
        raise Fail("busy: stats_json cpu_raises %s, summary %s" % (raises, m.group(1)))
    # --priority normal: no SCHED_IDLE thread, no idle-first line
    cap, err = start_live_capture(REPRO, os.path.join(tmp, "normal.db"), "tcp port %d" % port,
                                  tmp, procs, extra=["--priority", "normal"])
    # a status line comes from the capture loop, which starts idle-first
    # (when on) before its first turn: after it, every thread is there
    cap.send_signal(signal.SIGUSR1)
    wait_for(lambda: (err.seek(0), "exchanges/s" in err.read())[1], "a status line on SIGUSR1")
    err.seek(0)
    line = [ln for ln in err.read().splitlines() if "exchanges/s" in ln][0]
    pol = thread_policies(cap.pid)
    if any(v != 0 for v in pol.values()) or "repro-cpu" in pol or "; cpu " in line:
        raise Fail("busy: --priority normal left policies %s, status %s" % (pol, line))
    rc, summary = stop_live_capture(cap, err)
    if rc != 0 or "cpu: idle-first" in summary:
        raise Fail("busy: --priority normal: exit %d: %s" % (rc, summary))
    print("busy: %d cores spinning; %d exchanges readable %.2f s after the last response; "
          "%s raise(s), %s to nice 0" % (ncpu, n, took, m.group(1), m.group(2)))


def status_line(cap, err, want, what):
    """SIGUSR1 until a status line containing want comes (bounded), among
    the lines printed from now on; returns it."""
    found = []
    err.seek(0, os.SEEK_END)
    mark = err.tell()

    def has():
        cap.send_signal(signal.SIGUSR1)
        time.sleep(0.05)  # a pause between requests; the loop prints on its next turn
        err.seek(mark)
        found[:] = [ln for ln in err.read().splitlines() if "exchanges/s" in ln and want in ln]
        return bool(found)
    try:
        wait_for(has, what, tries=100)
    except Fail:
        err.seek(0)
        raise Fail("%s; stderr so far: %s" % (what, err.read()[-2000:]))
    return found[-1]


N_SMALL, N_BIG = 200, 15


def small_and_big(port, files, tag, what):
    """One keep-alive curl: N_SMALL small and N_BIG 2-MiB requests (more
    than the 16 MiB packet queue of --max-memory 64M), URIs tagged with
    tag; checks what curl got; returns the small URLs."""
    urls = ["http://127.0.0.1:%d/small.txt?%s=%d" % (port, tag, i) for i in range(N_SMALL)]
    big = ["http://127.0.0.1:%d/big.bin?%s=%d" % (port, tag, i) for i in range(N_BIG)]
    body = subprocess.run(["curl", "-sS"] + urls + big, stdout=subprocess.PIPE, check=True).stdout
    if body != files["small.txt"] * N_SMALL + files["big.bin"] * N_BIG:
        raise Fail("%s: curl got %d bytes, want %d" %
                   (what, len(body), N_SMALL * len(files["small.txt"]) +
                    N_BIG * len(files["big.bin"])))
    return urls


def part_defer(tmp, procs):
    """Deferral: with every core spun at normal priority the host is
    saturated; the agent parses nothing (the status line says so) and the
    reader spools, until --defer-max; once the spinners stop, everything
    comes in; the summary, stats_json and the status line agree."""
    import re
    port, _, files = nginx_dav(tmp, procs)
    ncpu = len(os.sched_getaffinity(0))
    spinners = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(ncpu)]
    procs.extend(spinners)
    db = os.path.join(tmp, "defer.db")
    # a 16 MiB packet queue (a quarter of 64M): the big files overflow it
    # into the spool
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % port, tmp, procs,
                                  extra=["--defer-max", "6s", "--max-memory", "64M"])
    status_line(cap, err, "parsing deferred", "a status line saying parsing is deferred")

    def count():
        try:
            return len(db_exchanges(db))
        except sqlite3.Error:
            return -1
    n_small, n_big = N_SMALL, N_BIG
    n = n_small + n_big
    urls = small_and_big(port, files, "d", "defer")
    t0 = time.monotonic()
    # deferred: the loop takes no batch, so nothing can be committed; the
    # agent's own status line says both at once (one snapshot)
    line = status_line(cap, err, "parsing deferred", "a status line, still deferring")
    if " 0 stored;" not in line or count() != 0:
        raise Fail("defer: exchanges stored while parsing was deferred: %s" % line)
    # the age limit: with the cores still spinning they come in after 6 s
    wait_for(lambda: count() >= n, "%d exchanges after --defer-max with the cores busy" % n,
             tries=400)
    took = time.monotonic() - t0
    for p in spinners:
        p.kill()
        p.wait()
    # the spinners gone, 50 more come in: at once on an idle host, within
    # --defer-max where other tests keep the CPUs saturated (ctest -j2)
    subprocess.run(["curl", "-sS"] + urls[:50], stdout=subprocess.DEVNULL, check=True)
    wait_for(lambda: count() >= n + 50, "50 more exchanges after the spinners stopped", tries=400)
    rc, summary = stop_live_capture(cap, err)
    if rc != 0:
        raise Fail("defer: capture exit %d: %s" % (rc, summary))
    m = re.search(r"deferred: parsing put off (\d+) times while the host was saturated, "
                  r"([0-9.]+) s in all; spooled (\d+) batches", summary)
    if not m:
        raise Fail("defer: no deferral line in the summary: %s" % summary)
    con = sqlite3.connect(db)
    st = json.loads(con.execute("SELECT stats_json FROM captures").fetchone()[0])
    con.close()
    if st["cpu_deferrals"] != int(m.group(1)) or st["cpu_deferrals"] < 1:
        raise Fail("defer: stats_json cpu_deferrals %s, summary %s" % (st["cpu_deferrals"],
                                                                       m.group(1)))
    if st["spooled_batches"] < 1 or int(m.group(3)) != st["spooled_batches"]:
        raise Fail("defer: %s batches spooled (summary %s): the big files should overflow "
                   "the queue" % (st["spooled_batches"], m.group(3)))
    if st["spool_errors"] != 0 or st["dropped_packets_queue_full"] != 0:
        raise Fail("defer: spool errors %s, queue drops %s" % (st["spool_errors"],
                                                                st["dropped_packets_queue_full"]))
    con = sqlite3.connect(db)
    got = con.execute("SELECT count(*), sum(complete), sum(uri LIKE '/big.bin%' AND"
                      " response_body_sha256 = ?) FROM exchanges",
                      (hashlib.sha256(files["big.bin"]).digest(),)).fetchone()
    con.close()
    if got != (n + 50, n + 50, n_big):
        raise Fail("defer: (stored, complete, big files intact) = %s, want %s" %
                   (got, (n + 50, n + 50, n_big)))
    # --defer-max 0: the same saturation, no deferral
    spinners = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(ncpu)]
    procs.extend(spinners)
    cap, err = start_live_capture(REPRO, os.path.join(tmp, "nodefer.db"), "tcp port %d" % port,
                                  tmp, procs, extra=["--defer-max", "0"])
    # 200 requests under the same saturation: with deferral they would wait
    # 6 s; here they are parsed and the status line never says deferred
    subprocess.run(["curl", "-sS"] + urls, stdout=subprocess.DEVNULL, check=True)
    wait_for(lambda: len(db_exchanges(os.path.join(tmp, "nodefer.db"))) >= n_small,
             "%d exchanges with --defer-max 0 on busy cores" % n_small)
    line = status_line(cap, err, "exchanges/s", "a status line")
    rc, summary = stop_live_capture(cap, err)
    if "deferred" in line or rc != 0 or "deferred:" in summary:
        raise Fail("defer: --defer-max 0 deferred: %s / %s" % (line, summary))
    print("defer: %d cores spinning; %d exchanges readable %.2f s after the last response "
          "(--defer-max 6s); deferred %s time(s), %s s; spooled %s batch(es)" %
          (ncpu, n, took, m.group(1), m.group(2), m.group(3)))


def part_spoolkill(tmp, procs):
    """kill -9 while parsing is deferred: the spool stays behind (what
    waited in memory for half a second went there too), and the next
    capture -i on the database parses it before its live packets; every
    exchange is stored complete with its bodies intact, and the killed
    capture's row ends failed, saying where its packets went."""
    import re
    port, _, files = nginx_dav(tmp, procs)
    ncpu = len(os.sched_getaffinity(0))
    spinners = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(ncpu)]
    procs.extend(spinners)
    db = os.path.join(tmp, "spoolkill.db")
    bpf = "tcp port %d" % port
    cap, err = start_live_capture(REPRO, db, bpf, tmp, procs,
                                  extra=["--defer-max", "60s", "--max-memory", "64M"])
    status_line(cap, err, "parsing deferred", "a status line saying parsing is deferred")
    n_small, n_big = N_SMALL, N_BIG
    n = n_small + n_big
    small_and_big(port, files, "k", "spoolkill")
    t_done = time.monotonic()

    # The promise: what was answered more than a second before a kill -9
    # survives it. Batches go to the spool after half a second in memory
    # (the queue of --max-memory 64M would hold 16 MiB), so a second after
    # the last response the status line shows the backlog spooled and
    # nothing queued in memory.
    last = [""]

    def all_spooled():
        last[0] = status_line(cap, err, "parsing deferred", "a status line, still deferring")
        m = re.search(r"; queue ([0-9.]+) MiB;.*; spool ([0-9.]+) MiB", last[0])
        return (m is not None and float(m.group(1)) == 0 and
                float(m.group(2)) * (1 << 20) >= n_big * len(files["big.bin"]) and
                time.monotonic() - t_done >= 1.0)
    try:
        wait_for(all_spooled, "the whole backlog in the spool", tries=100)
    except Fail:
        raise Fail("spoolkill: the backlog did not reach the spool; the last status line: %s" %
                   last[0])
    cap.send_signal(signal.SIGKILL)
    cap.wait()
    for p in spinners:
        p.kill()
        p.wait()
    spool = "%s.spool.1.%d" % (db, cap.pid)  # capture 1, its pid
    if not os.path.exists(spool):
        raise Fail("spoolkill: no spool %s after kill -9: %s" % (spool, os.listdir(tmp)))
    con = sqlite3.connect(db)
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    before = con.execute("SELECT count(*) FROM exchanges").fetchone()[0]
    con.close()
    if ok != "ok" or before != 0:
        raise Fail("spoolkill: after kill -9: integrity %s, %d exchanges (deferred: none "
                   "should be committed)" % (ok, before))
    t0 = time.monotonic()
    cap, err = start_live_capture(REPRO, db, bpf, tmp, procs)
    try:
        wait_for(lambda: len(db_exchanges(db)) >= n, "%d exchanges recovered from the spool" % n,
                 tries=400)
    except Fail:
        err.seek(0)
        raise Fail("spoolkill: %d of %d exchanges after the restart; its stderr: %s" %
                   (len(db_exchanges(db)), n, err.read()[-2000:]))
    took = time.monotonic() - t0
    # the killed capture's row is ended at the recovery (once what it
    # recovered is committed), not at this run's end
    killed = []

    def killed_row():
        con = sqlite3.connect(db)
        killed[:] = [con.execute("SELECT status, error FROM captures WHERE id = 1").fetchone()]
        con.close()
        return killed[0][0] != "running"
    wait_for(killed_row, "the killed capture's row ended while the next runs")
    if killed[0][0] != "failed" or "into capture 2" not in (killed[0][1] or ""):
        raise Fail("spoolkill: the killed capture's row while the next runs: %s" % (killed[0],))
    rc, summary = stop_live_capture(cap, err)
    m = re.search(r"recovered: (\d+) packets \(([0-9.]+) MiB\) from 1 spool", summary)
    if rc != 0 or not m or os.path.exists(spool):
        raise Fail("spoolkill: restart exit %d, spool %s: %s" %
                   (rc, "left" if os.path.exists(spool) else "removed", summary))
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, status, error, stats_json FROM captures ORDER BY id").fetchall()
    got = con.execute("SELECT count(*), sum(complete), sum(uri LIKE '/big.bin%' AND"
                      " response_body_sha256 = ?), count(DISTINCT uri) FROM exchanges",
                      (hashlib.sha256(files["big.bin"]).digest(),)).fetchone()
    con.close()
    if got != (n, n, n_big, n):
        raise Fail("spoolkill: (stored, complete, big files intact, distinct) = %s, want %s" %
                   (got, (n, n, n_big, n)))
    if (len(rows) != 2 or rows[0][1] != "failed" or
            "recovered from its spool into capture %d" % rows[1][0] not in (rows[0][2] or "")):
        raise Fail("spoolkill: the killed capture's row: %s" % (rows[0],))
    st = json.loads(rows[1][3])
    if st["recovered_packets"] != int(m.group(1)) or st["recovery_skipped_bytes"] != 0:
        raise Fail("spoolkill: stats_json recovered_packets %s, skipped %s; summary %s" %
                   (st["recovered_packets"], st["recovery_skipped_bytes"], m.group(1)))
    print("spoolkill: kill -9 with %d exchanges deferred; the next capture recovered %s packets "
          "(%s MiB) and stored all %d, %.2f s after it started" %
          (n, m.group(1), m.group(2), n, took))


def part_synced(tmp, procs):
    """A power cut cannot be staged here, so what makes it lose at most
    about a second is checked instead: while exchanges come in, the
    database's WAL is synced to disk again and again (strace -y sees each
    fsync/fdatasync of the -wal file), and the last commit is synced with
    no later traffic; how long the gaps were is printed, not asserted. SQLite's synchronous=NORMAL
    alone syncs only at checkpoints, which a quiet database may not reach
    for minutes."""
    import re
    if subprocess.run(["sh", "-c", "command -v strace"], stdout=subprocess.DEVNULL).returncode:
        raise Fail("synced: strace not found (scripts/bootstrap.sh installs it)")
    port, _, _ = nginx_dav(tmp, procs)
    db = os.path.join(tmp, "synced.db")
    trace = os.path.join(tmp, "trace.txt")
    err = open(os.path.join(tmp, "capture.err"), "w+")
    # LeakSanitizer cannot run under ptrace (the ASan build of the suite)
    env = dict(os.environ, ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") +
                                         ":detect_leaks=0").lstrip(":"))
    tracer = subprocess.Popen(["strace", "-f", "--seccomp-bpf", "-y", "-ttt", "-e",
                               "trace=fsync,fdatasync", "-o", trace, REPRO, "capture", "-i", "lo",
                               "-f", "tcp port %d" % port, "--db", db, "--defer-max", "0"],
                              stderr=err, env=env)
    procs.append(tracer)

    def listening():
        err.seek(0)
        return "listening on lo" in err.read() or tracer.poll() is not None
    wait_for(listening, "capture under strace to listen")
    with open("/proc/%d/task/%d/children" % (tracer.pid, tracer.pid)) as f:
        agent = int(f.read().split()[0])
    t_first = None
    for i in range(12):  # one at a time, each waited for: about 4 s of traffic
        subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/small.txt?s=%d" % (port, i)],
                       stdout=subprocess.DEVNULL, check=True)
        wait_for(lambda: len(db_exchanges(db)) > i, "exchange %d stored" % i)
        if t_first is None:
            t_first = time.time()
    t_last = time.time()

    def wal_syncs():
        with open(trace) as f:
            return [float(m.group(1)) for m in
                    (re.match(r"\d+\s+([0-9.]+) f(?:data)?sync\(\d+<[^>]*-wal>\) = 0", ln)
                     for ln in f) if m]
    # the last commit is synced with no later traffic too (the writer
    # wakes for it): a sync after the last exchange became visible
    wait_for(lambda: any(t > t_last for t in wal_syncs()), "a WAL sync after the last commit")
    after = min(t for t in wal_syncs() if t > t_last) - t_last
    os.kill(agent, signal.SIGINT)
    rc = tracer.wait(timeout=30)
    if rc != 0:
        err.seek(0)
        raise Fail("synced: capture exit %d: %s" % (rc, err.read()))
    syncs = wal_syncs()
    # not timed: syncs come while the traffic lasts (SQLite alone made
    # none in it) and after its last commit; the gaps are printed
    during = [t for t in syncs if t_first <= t <= t_last]
    marks = [t_first] + during + [t_last]
    gap = max(b - a for a, b in zip(marks, marks[1:]))
    if len(during) < 2:
        raise Fail("synced: %d WAL syncs in the %.1f s of traffic (all syncs: %s)" %
                   (len(during), t_last - t_first, syncs))
    print("synced: %d WAL syncs in %.1f s of traffic, the longest gap %.2f s; the last commit "
          "synced %.2f s after it was visible, with no later traffic" %
          (len(during), t_last - t_first, gap, after))


def main(tmp, procs):
    os.chmod(tmp, 0o755)  # nginx workers (nobody) read the files
    for part in PARTS:
        sub = os.path.join(tmp, part)
        os.makedirs(sub)
        os.chmod(sub, 0o755)
        globals()["part_" + part](sub, procs)
        kill_all(procs)


if __name__ == "__main__":
    if os.geteuid() != 0:
        skip("needs root (capture on lo)")
    if NGINX is None:
        skip("nginx not found")
    if subprocess.run(["sh", "-c", "command -v curl"], stdout=subprocess.DEVNULL).returncode:
        skip("curl not found")
    run_test("live_agent", main)
    print("PASSED live_agent")
