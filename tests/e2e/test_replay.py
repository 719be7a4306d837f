#!/usr/bin/env python3
"""repro replay end to end (issue 10): curl traffic captured live against
nginx "production", replayed against a second nginx with the same content
(everything matches) and one where one file changed (exactly the requests
for that file mismatch); keep-alive kept (the staging nginx logs each
request's connection number); production refused as a target; the JSON
report read back and the JUnit file parsed with Python's XML parser;
--dry-run; a database with nothing selected.

usage: test_replay.py REPRO_BIN
Exit 0 pass, 1 fail, 77 skipped (not root, no nginx or curl).
"""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_common import (NGINX, Fail, skip_all, run, start_live_capture,  # noqa: E402
                        start_nginx, run_test, stop_live_capture)

REPRO = sys.argv[1]
FILES = {"index.html": "<html>home</html>\n", "items/1.json": '{"id":1,"name":"one"}',
         "items/2.json": '{"id":2,"name":"two","tags":["a","b"]}'}


def docroot(tmp, name, changes=None):
    d = os.path.join(tmp, name + "-www")
    for rel, text in dict(FILES, **(changes or {})).items():
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)
        for x in files:
            os.chmod(os.path.join(root, x), 0o644)
    return d


def serve(tmp, name, procs, changes=None):
    root = docroot(tmp, name, changes)
    # etag off: staging and production files differ in mtime, not content
    return start_nginx(tmp, name, "root %s; etag off; default_type application/json;" % root,
                       procs, log_format="$connection $http_x_staging $host $request")


def main(tmp, procs):
    prod = serve(tmp, "prod", procs)
    db = os.path.join(tmp, "replay.db")
    cap, err = start_live_capture(REPRO, db, "tcp port %d" % prod, tmp, procs)
    base = "http://127.0.0.1:%d" % prod
    # one keep-alive connection with three requests, then a HEAD, then
    # items/2.json again on a connection of its own
    for args in (["%s/" % base, "%s/items/1.json" % base, "%s/items/2.json" % base],
                 ["-I", "%s/items/1.json" % base], ["%s/items/2.json" % base]):
        subprocess.run(["curl", "-sS", "--max-time", "10"] + args, check=True,
                       stdout=subprocess.DEVNULL)
    rc, summary = stop_live_capture(cap, err)
    if rc not in (0, 1):
        raise Fail("repro capture exited %d: %s" % (rc, summary))
    out, _, _ = run([REPRO, "exchanges", "--db", db, "--format", "json"])
    xs = [json.loads(line) for line in out.decode().splitlines()]
    if len(xs) != 5 or not all(x["complete"] for x in xs):
        raise Fail("expected 5 complete exchanges, got %s" % out.decode())

    # production itself is refused
    _, e, _ = run([REPRO, "replay", "--db", db, "--target", "127.0.0.1:%d" % prod], ok_codes=(2,))
    if "refusing" not in e:
        raise Fail("production target not refused clearly: " + e)

    # the dry run lists what would be sent, in order
    out, _, _ = run([REPRO, "replay", "--db", db, "--target", "127.0.0.1:1", "--dry-run"])
    lines = out.decode().splitlines()
    if len(lines) != 6 or "GET / HTTP/1.1" not in lines[1] or "HEAD /items/1.json" not in lines[4]:
        raise Fail("unexpected dry run:\n" + out.decode())

    # same content: everything matches, exit 0, one staging connection per
    # recorded connection
    same = serve(tmp, "same", procs)
    report = os.path.join(tmp, "same.json")
    junit = os.path.join(tmp, "same.xml")
    _, e, rc = run([REPRO, "replay", "--db", db, "--target", "127.0.0.1:%d" % same,
                    "--speed", "max", "--report", report, "--junit", junit], ok_codes=(0, 1))
    r = json.load(open(report))
    if rc != 0 or r["matched"] != 5 or r["mismatched"] or r["errors"]:
        raise Fail("replay against the same content: exit %d, %s\n%s" % (
            rc, json.dumps({k: r[k] for k in ("matched", "mismatched", "errors")}), e))
    with open(os.path.join(tmp, "same", "access.log")) as f:
        conns = [line.split()[0] for line in f if line.strip()]
    if len(conns) != 5 or len(set(conns)) != 3:
        raise Fail("staging saw %d requests on %d connections, expected 5 on 3: %s" % (
            len(conns), len(set(conns)), conns))
    suite = ET.parse(junit).getroot().find("testsuite")
    if suite.get("tests") != "5" or suite.get("failures") != "0":
        raise Fail("JUnit: %s" % suite.attrib)

    # rewriting: every request carries the header and Host asked for
    _, e, rc = run([REPRO, "replay", "--db", db, "--target", "127.0.0.1:%d" % same, "--speed", "max",
                    "--set-header", "X-Staging: yes", "--host", "staging.example"], ok_codes=(0, 1))
    with open(os.path.join(tmp, "same", "access.log")) as f:
        lines = [line.split() for line in f if line.strip()][5:]
    if rc != 0 or len(lines) != 5 or any(x[1:3] != ["yes", "staging.example"] for x in lines):
        raise Fail("rewritten replay: exit %d, staging saw %s\n%s" % (rc, lines, e))

    # one file changed: exactly its two requests mismatch, exit 1
    changed = serve(tmp, "changed", procs,
                    {"items/2.json": '{"id":2,"name":"TWO","tags":["a","b"]}'})
    report = os.path.join(tmp, "changed.json")
    junit = os.path.join(tmp, "changed.xml")
    _, e, rc = run([REPRO, "replay", "--db", db, "--target", "127.0.0.1:%d" % changed,
                    "--report", report, "--junit", junit], ok_codes=(0, 1))
    r = json.load(open(report))
    bad = [x for x in r["results"] if x["verdict"] != "match"]
    uris = {x["id"]: x["uri"] for x in xs}
    if rc != 1 or len(bad) != 2 or any(uris[x["exchange_id"]] != "/items/2.json" for x in bad):
        raise Fail("replay against changed content: exit %d, not matching: %s\n%s" % (rc, bad, e))
    if [d["where"] for d in bad[0]["differences"]] != ["$.name"]:
        raise Fail("expected one difference at $.name: %s" % bad[0]["differences"])
    suite = ET.parse(junit).getroot().find("testsuite")
    fails = suite.findall("testcase/failure")
    if suite.get("failures") != "2" or len(fails) != 2 or "$.name" not in fails[0].text:
        raise Fail("JUnit for the changed content: %s" % suite.attrib)
    # the runs are stored: repro replays lists them, --diff shows the findings
    out, _, _ = run([REPRO, "replays", "--db", db, "--format", "json"])
    runs = [json.loads(line) for line in out.decode().splitlines()]
    if [x["mismatched"] for x in runs] != [0, 0, 2] or runs[2]["run_id"] != r["run_id"]:
        raise Fail("repro replays: %s" % out.decode())
    out, _, _ = run([REPRO, "replays", "--db", db, str(r["run_id"]), "--diff"])
    text = out.decode()
    if text.count("mismatch") < 2 or '$.name' not in text or '"TWO"' not in text:
        raise Fail("repro replays RUN --diff:\n" + text)

    # the same run without that path compared: no findings
    _, _, rc = run([REPRO, "replay", "--db", db, "--target", "127.0.0.1:%d" % changed,
                    "--ignore-json-path", "$.name"], ok_codes=(0, 1))
    if rc != 0:
        raise Fail("--ignore-json-path '$.name' did not remove the difference")

    # filters that select nothing: a clear error, exit 2
    _, e, _ = run([REPRO, "replay", "--db", db, "--target", "127.0.0.1:%d" % same,
                   "--path-prefix", "/nothing"], ok_codes=(2,))
    if "select no exchange" not in e:
        raise Fail("empty selection: " + e)
    print("PASSED replay")


if os.geteuid() != 0:
    skip_all("needs root (live capture on lo)")
if not NGINX or not shutil.which("curl"):
    skip_all("needs nginx and curl")
run_test("replay", main)
