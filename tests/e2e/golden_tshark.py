#!/usr/bin/env python3
"""Golden test: repro's HTTP exchanges for a pcap must match tshark's.

usage:
  golden_tshark.py [--repro BIN] [--port N]... [--no-times] [--no-filters]
                   [--secret TEXT]... [--allow-empty] PCAP
  golden_tshark.py --selftest-corpus CORPUS_DIR [TRACE...]

Test mode (REPRO_BIN from --repro or the environment):
  1. `repro capture -r PCAP --db A` (exit 0 or 1 accepted) and
     `repro exchanges --db A --format json`; every line is checked against the
     exchanges contract (fields, types, flags, endpoint syntax).
  2. tshark extracts the requests (method, uri, Host, 4-tuple) and the
     responses, and pairs them in order per connection, skipping 1xx
     (tshark_http.py). HTTP ports: --port, else the destination ports of the
     SYNs in the capture (pinned with -d tcp.port==N,http).
  3. Per connection (client, server), the ordered lists of
     (method, uri, host, status) must be equal. Orphan responses (method null)
     are ignored but counted.
  4. Unless --no-times: request_time / response_time must equal the time of
     the frame holding the first byte of the request / response (2 us slack;
     after a 1xx, the 1xx or the final response).
  5. Determinism: a second capture into a fresh database B must give
     byte-identical `exchanges --format json` output, ids included.
  6. Unless --no-filters: --method, --status, --path-prefix, --host and
     --connection must each return exactly the matching subset of the
     unfiltered lines, in the same order, both for a value present in the
     data (the rarest one) and for a value that matches nothing.
  7. Every --secret TEXT must appear neither in the database files (db, -wal)
     nor in the exchanges output: secrets are redacted before storage.
Exit 0 when all hold; 1 on any mismatch (with a diff), and when repro crashes,
times out, exits 2/64 or breaks the output contract; 2 when the test itself
cannot run (no tshark, no pcap, no repro binary).

Self-test mode (no repro needed): runs the same tshark extraction on every
trace of the development corpus with the oracle's settings and checks that it
reproduces the committed <trace>.requests.tsv byte for byte (every column:
method, uri, host, status, status hint, interim statuses, 4-tuple, frames,
times) and the counts of oracle-summary.tsv. Exit 77 (skip) when CORPUS_DIR
does not exist. This proves the extraction and
pairing logic that test mode relies on.

  golden_tshark.py --write-expected [--port N]... PCAP...
writes PCAP.requests.tsv in the corpus oracle format next to each PCAP (used
by fixtures/capture/record.sh, so that golden_corpus.py can also run on
fixtures/capture/ without tshark).
"""
import argparse
import difflib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as C  # noqa: E402
import tshark_http as T  # noqa: E402

TIME_SLACK_S = 2e-6


def check_times(expected, exchanges):
    """Time of first byte of request/response vs repro, for rows that line up
    (same connection, method and uri)."""
    problems = []
    for r, x in C.align_all(expected, exchanges):
        if r is None or x is None or x["method"] != r["method"] or x["uri"] != r["uri"]:
            continue  # already reported by the list comparison
        checks = [("request_time", [r["first_time"]])]
        if r["status"]:
            # with interim 1xx responses "first byte of the response" may be
            # read as the first 1xx or as the final response: accept both
            checks.append(("response_time", [r["resp_first_time"]] + r["interim_first_times"][:1]))
        for field, wants in checks:
            got = x[field]
            if got is None or all(abs(got - float(w)) > TIME_SLACK_S for w in wants):
                problems.append("exchange %d (%s %s on %s): %s is %r, tshark's first byte is at %s" % (
                    x["id"], x["method"], x["uri"], x["client"], field, got, " or ".join(wants)))
    return problems


def rarest(values):
    """The value that occurs least often (ties: the smallest), so that a
    filter on it selects a strict subset whenever one exists."""
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return min(counts, key=lambda v: (counts[v], str(v))) if counts else None


def check_filters(repro, db, raw, exchanges):
    """Each filter must return exactly the matching lines of the unfiltered
    output, for a value that selects a subset and for one that selects none."""
    lines = raw.decode().split("\n")[:-1]
    with_req = [x for x in exchanges if x["method"]]
    cases = [(["--method", "NOSUCHMETHOD"], lambda x: False),
             (["--status", "599"], lambda x: False),
             (["--path-prefix", "/no-such-prefix-e2e"], lambda x: False),
             (["--host", "no-such-host.invalid"], lambda x: False),
             (["--connection", "999999999"], lambda x: False)]
    m = rarest(x["method"] for x in with_req)
    if m:
        cases.append((["--method", m], lambda x: x["method"] == m))
    s = rarest(x["status"] for x in exchanges if x["status"] is not None)
    if s is not None:
        cases.append((["--status", str(s)], lambda x: x["status"] == s))
    prefixes = [x["uri"][:x["uri"].index("/", 1)] for x in with_req
                if x["uri"] and x["uri"].startswith("/") and "/" in x["uri"][1:]]
    pfx = rarest(prefixes)
    if pfx:
        cases.append((["--path-prefix", pfx], lambda x: (x["uri"] or "").startswith(pfx)))
    h = rarest(x["host"] for x in with_req if x["host"])
    if h:
        cases.append((["--host", h], lambda x: x["host"] == h))
    c = rarest(x["connection_id"] for x in exchanges)
    if c is not None:
        cases.append((["--connection", str(c)], lambda x: x["connection_id"] == c))
    problems = []
    for args, pred in cases:
        want = [l for l, x in zip(lines, exchanges) if pred(x)]
        got = C.exchanges_raw(repro, db, args).decode().split("\n")[:-1]
        if got != want:
            problems.append("`exchanges %s` returned %d lines, expected the %d matching lines of the "
                            "unfiltered output%s" % (" ".join(args), len(got), len(want),
                                                     C.first_diff(want, got)))
    return problems


def check_secrets(db, raw, secrets):
    problems = []
    for path in (db, db + "-wal", db + "-journal"):
        if not os.path.exists(path):
            continue
        data = open(path, "rb").read()
        for s in secrets:
            at = data.find(s.encode())
            if at >= 0:
                problems.append("secret %r is stored unredacted in '%s' at byte %d" % (
                    s, os.path.basename(path), at))
    for s in secrets:
        if s.encode() in raw:
            problems.append("secret %r appears in `exchanges` output" % s)
    return problems


def test(a):
    repro = C.repro_bin(a.repro)
    pcap = a.pcap
    if not os.path.isfile(pcap):
        raise C.Setup("no such pcap '%s'" % pcap)
    label = os.path.basename(pcap)
    ports = a.port or T.syn_ports(pcap)
    expected, stats = T.extract(pcap, ports)
    if not expected and not a.allow_empty:
        raise C.Fail("tshark found no HTTP request in '%s' (ports %s): nothing to compare; "
                     "pass --port or --allow-empty" % (pcap, ports))
    print("tshark (ports %s): %s" % (",".join(map(str, ports)) or "-",
                                      " ".join("%s=%d" % kv for kv in stats.items())))
    problems = []
    with C.TempDir() as tmp:
        db_a, db_b = os.path.join(tmp, "a.db"), os.path.join(tmp, "b.db")
        rc, err = C.capture_file(repro, pcap, db_a)
        print("repro capture exit %d; stderr: %s" % (rc, err.strip().replace("\n", " | ")[:500]))
        raw_a = C.exchanges_raw(repro, db_a)
        xs = C.parse_exchanges(raw_a)
        report, ok = C.compare(expected, xs, label)
        print("\n".join(report))
        if not ok:
            problems.append("exchanges differ from tshark (see table above)")
        if not a.no_times:
            problems += check_times(expected, xs)
        rc_b, _ = C.capture_file(repro, pcap, db_b)
        raw_b = C.exchanges_raw(repro, db_b)
        if rc_b != rc:
            problems.append("non-deterministic: capture exit %d then %d" % (rc, rc_b))
        if raw_a != raw_b:
            problems.append("non-deterministic: two captures of the same file give different "
                            "`exchanges --format json` output" +
                            C.first_diff(raw_a.decode().split("\n"), raw_b.decode().split("\n")))
        if not a.no_filters:
            problems += check_filters(repro, db_a, raw_a, xs)
        if a.secret:
            problems += check_secrets(db_a, raw_a, a.secret)
    if problems:
        print("\nFAILED %s:" % label)
        for p in problems:
            print("  - " + p)
        return 1
    print("PASSED %s: %d requests on %d connections match tshark; output deterministic" % (
        label, len(expected), len({(r["client"], r["server"]) for r in expected})))
    return 0


def selftest(corpus, traces):
    manifest = C.read_tsv(os.path.join(corpus, "MANIFEST.tsv"))
    settings = {r["file"]: r for r in C.read_tsv(os.path.join(corpus, "oracle-summary.tsv"))}
    names = traces or [r["file"] for r in manifest]
    bad = 0
    for name in names:
        st = settings.get(name)
        if st is None:
            raise C.Setup("trace '%s' is not in %s/oracle-summary.tsv" % (name, corpus))
        extra = st["extra_tshark_args"].split()
        ports = [int(x.split("==")[1].split(",")[0]) for x in extra if x.startswith("tcp.port==")]
        if len(ports) * 2 != len(extra):
            raise C.Setup("cannot interpret extra tshark arguments %r of '%s'" % (extra, name))
        got, stats = T.extract(os.path.join(corpus, name), ports, st["out_of_order_reassembly"] == "TRUE")
        oracle_path = os.path.join(corpus, name + ".requests.tsv")
        try:
            want = open(oracle_path, encoding="utf-8", newline="\n").read()
        except OSError as e:
            raise C.Setup("cannot read oracle '%s': %s" % (oracle_path, e.strerror))
        mine = T.to_tsv(got)
        diffs = list(difflib.unified_diff(want.split("\n"), mine.split("\n"), "oracle " + name,
                                          "this extraction", n=0, lineterm=""))
        counts_ok = all(str(stats[k]) == st[k] for k in stats)
        if diffs or not counts_ok:
            bad += 1
            print("MISMATCH %s" % name)
            print("\n".join(diffs[:40]))
            if not counts_ok:
                print("  counts: oracle %s, here %s" % ({k: st[k] for k in stats}, stats))
        else:
            print("ok %s: %d requests" % (name, len(got)))
    print("selftest: %d of %d traces reproduce the oracle" % (len(names) - bad, len(names)))
    return 1 if bad else 0


def write_expected(pcaps, ports):
    for pcap in pcaps:
        if not os.path.isfile(pcap):
            raise C.Setup("no such pcap '%s'" % pcap)
        rows, stats = T.extract(pcap, ports or T.syn_ports(pcap))
        with open(pcap + ".requests.tsv", "w", encoding="utf-8", newline="\n") as f:
            f.write(T.to_tsv(rows))
        print("wrote %s.requests.tsv: %s" % (pcap, " ".join("%s=%d" % kv for kv in stats.items())))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pcap", nargs="*")
    ap.add_argument("--repro", help="repro binary (default: $REPRO_BIN)")
    ap.add_argument("--port", type=int, action="append", help="HTTP server port (repeatable)")
    ap.add_argument("--no-times", action="store_true")
    ap.add_argument("--no-filters", action="store_true")
    ap.add_argument("--allow-empty", action="store_true")
    ap.add_argument("--secret", action="append", help="text that must not be stored (repeatable)")
    ap.add_argument("--selftest-corpus", metavar="DIR")
    ap.add_argument("--write-expected", action="store_true")
    a = ap.parse_args()
    try:
        if a.selftest_corpus:
            if not os.path.isdir(a.selftest_corpus):
                print("SKIPPED: corpus directory '%s' does not exist" % a.selftest_corpus)
                return 77
            return selftest(a.selftest_corpus, a.pcap)
        if a.write_expected:
            return write_expected(a.pcap, a.port)
        if len(a.pcap) != 1:
            ap.error("give exactly one PCAP")
        a.pcap = a.pcap[0]
        return test(a)
    except C.Fail as e:
        print("FAILED: %s" % e)
        return 1
    except (C.Setup, T.TsharkError) as e:
        print("ERROR (test cannot run): %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
