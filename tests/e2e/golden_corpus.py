#!/usr/bin/env python3
"""Golden test against the development corpus and its committed tshark oracle.

usage:
  golden_corpus.py [--repro BIN] [--check-times] CORPUS_DIR [TRACE...]
  golden_corpus.py --list CORPUS_DIR

CORPUS_DIR is the shared corpus (in CI: <clone>/../shared/corpus). With no
TRACE every trace of CORPUS_DIR/MANIFEST.tsv is tested; with TRACE names
(e.g. zeek_wikipedia.pcap) only those, so that ctest can register one test
per trace. REPRO_BIN comes from --repro or the environment.

For each trace:
  1. `repro capture -r TRACE --db FRESH` (exit 0 or 1: gaps and truncation are
     "input had problems") and `repro exchanges --db FRESH --format json`;
     every line is checked against the exchanges contract.
  2. Per connection 4-tuple, the ordered list of (method, uri, host, status)
     must equal the oracle's <trace>.requests.tsv. Where the oracle has no
     resp_status but a resp_status_hint, repro may report null or the hinted
     status, and then complete must be false. Exchanges with method null
     (orphan responses) are ignored but counted in the printout.
  3. A second capture into another fresh database gives byte-identical
     exchanges output.
  4. With --check-times: request_time equals the oracle's first_time_epoch
     (time of the frame with the request's first byte), 2 us slack.
Exit 0 when every trace matches, 1 on any mismatch (a diff is printed),
2 when the test cannot run (missing binary, trace or oracle), 77 when
CORPUS_DIR does not exist (register with SKIP_RETURN_CODE 77).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_common as C  # noqa: E402

TIME_SLACK_S = 2e-6


def manifest(corpus):
    rows = C.read_tsv(os.path.join(corpus, "MANIFEST.tsv"))
    if not rows or "file" not in rows[0]:
        raise C.Setup("'%s/MANIFEST.tsv' has no 'file' column" % corpus)
    return rows


def check_times(oracle, xs):
    problems = []
    for er, ax in C.align_all(oracle, xs):
        if er is None or ax is None or er["method"] != ax["method"] or er["uri"] != ax["uri"]:
            continue
        want = float(er["first_time_epoch"])
        got = ax["request_time"]
        if got is None or abs(got - want) > TIME_SLACK_S:
            problems.append("exchange %d (%s %s on %s): request_time is %r, oracle's first byte is at %s" % (
                ax["id"], ax["method"], ax["uri"], ax["client"], got, er["first_time_epoch"]))
    return problems


def test_trace(repro, corpus, row, check_time):
    name = row["file"]
    pcap = os.path.join(corpus, name)
    if not os.path.isfile(pcap):
        raise C.Setup("trace '%s' listed in MANIFEST.tsv is missing" % pcap)
    oracle = C.read_oracle_tsv(pcap + ".requests.tsv")
    if row.get("http_requests", "").isdigit() and int(row["http_requests"]) != len(oracle):
        raise C.Setup("MANIFEST says %s requests for '%s', its oracle has %d rows" % (
            row["http_requests"], name, len(oracle)))
    problems = []
    with C.TempDir() as tmp:
        db_a, db_b = os.path.join(tmp, "a.db"), os.path.join(tmp, "b.db")
        rc, err = C.capture_file(repro, pcap, db_a)
        print("== %s  (%s)" % (name, row.get("notable_features", "")[:100]))
        print("repro capture exit %d; stderr: %s" % (rc, err.strip().replace("\n", " | ")[:500]))
        raw_a = C.exchanges_raw(repro, db_a)
        xs = C.parse_exchanges(raw_a)
        report, ok = C.compare(oracle, xs, name)
        print("\n".join(report))
        if not ok:
            problems.append("exchanges differ from the oracle (see table above)")
        if check_time:
            problems += check_times(oracle, xs)
        rc_b, _ = C.capture_file(repro, pcap, db_b)
        raw_b = C.exchanges_raw(repro, db_b)
        if rc_b != rc:
            problems.append("non-deterministic: capture exit %d then %d" % (rc, rc_b))
        if raw_a != raw_b:
            problems.append("non-deterministic: two captures give different exchanges output" +
                            C.first_diff(raw_a.decode().split("\n"), raw_b.decode().split("\n")))
    for p in problems:
        print("  - " + p)
    return not problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus")
    ap.add_argument("trace", nargs="*")
    ap.add_argument("--repro", help="repro binary (default: $REPRO_BIN)")
    ap.add_argument("--check-times", action="store_true")
    ap.add_argument("--list", action="store_true", help="print the trace names and exit")
    a = ap.parse_args()
    if not os.path.isdir(a.corpus):
        print("SKIPPED: corpus directory '%s' does not exist" % a.corpus)
        return 77
    try:
        rows = manifest(a.corpus)
        if a.list:
            print("\n".join(r["file"] for r in rows))
            return 0
        by_name = {r["file"]: r for r in rows}
        for t in a.trace:
            if t not in by_name:
                raise C.Setup("trace '%s' is not in %s/MANIFEST.tsv" % (t, a.corpus))
        repro = C.repro_bin(a.repro)
        names = a.trace or [r["file"] for r in rows]
        failed = []
        for n in names:
            try:
                ok = test_trace(repro, a.corpus, by_name[n], a.check_times)
            except C.Fail as e:
                print("  - %s" % e)
                ok = False
            if not ok:
                failed.append(n)
    except C.Setup as e:
        print("ERROR (test cannot run): %s" % e)
        return 2
    print("\ngolden_corpus: %d of %d traces match%s" % (
        len(names) - len(failed), len(names), (": FAILED " + " ".join(failed)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
