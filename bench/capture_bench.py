#!/usr/bin/env python3
"""Timing half of capture_bench.sh: runs repro, tshark and tcpdump on the
recorded trace, alternating, after one warm-up run each; reports the median
wall time, the min/max spread, the peak RSS and the rates; checks the
capture targets; writes the results as JSON.

Each run is timed with time.monotonic() around the spawn; its peak RSS and
CPU time come from GNU time (/usr/bin/time -f %M), i.e. ru_maxrss of that
one process, not of any grandchildren (see run_timed for why not wait4
from here). Targets are informational: the
exit status is 0 unless a command failed (1).

It leaves out recording the trace (capture_bench.sh does that) and any
comparison between result files.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time

TARGET_REPRO_RATE = 300_000      # exchanges/s
TARGET_VS_TSHARK = 10.0          # repro rate / tshark rate
TARGET_RSS_MIB = 64.0            # peak RSS, worst run
RSS_GROWTH_SLACK_MIB = 4.0       # 2x file may use at most this much more
RSS_GROWTH_SLACK_FRAC = 0.10     # ... or this fraction more, whichever is larger


class CommandFailed(Exception):
    pass


def log(msg):
    print(f"capture_bench: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# pcap scanning (classic pcap only; tcpdump -w and mergecap -F pcap write it)
# --------------------------------------------------------------------------

def scan_pcap(path, port_sample=5000):
    """Returns packets, bytes, first/last timestamp, link type and the most
    common TCP port in the first port_sample packets (the server port).
    Streams the file: this process must stay small (see run_timed)."""
    ports = collections.Counter()
    n = 0
    first_ts = last_ts = None
    with open(path, "rb", buffering=1 << 20) as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            raise ValueError(f"cannot read capture '{path}': shorter than a pcap header")
        magic = hdr[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            raise ValueError(f"cannot read capture '{path}': not a classic pcap file (magic {magic.hex()})")
        ts_div = 1e9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
        linktype = struct.unpack_from(endian + "I", hdr, 20)[0]
        l3 = {1: 14, 0: 4, 113: 16, 228: 0}.get(linktype)  # EN10MB, NULL, SLL, IPV4
        rec = struct.Struct(endian + "IIII")
        read = f.read
        while True:
            rh = read(16)
            if len(rh) < 16:
                break
            sec, frac, incl, _orig = rec.unpack(rh)
            pkt = read(incl)
            if len(pkt) < incl:
                break  # truncated last record
            last_ts = sec + frac / ts_div
            if first_ts is None:
                first_ts = last_ts
            if n < port_sample and l3 is not None and incl >= l3 + 24:
                ip = pkt[l3:]
                if ip[0] >> 4 == 4 and ip[9] == 6:
                    ihl = (ip[0] & 0x0F) * 4
                    if len(ip) >= ihl + 4:
                        sport, dport = struct.unpack_from(">HH", ip, ihl)
                        ports[sport] += 1
                        ports[dport] += 1
            n += 1
    return {
        "path": path,
        "size_bytes": os.path.getsize(path),
        "packets": n,
        "first_ts": first_ts,
        "last_ts": last_ts,
        "duration_s": (last_ts - first_ts) if n else 0.0,
        "linktype": linktype,
        "server_port_guess": ports.most_common(1)[0][0] if ports else None,
    }


# --------------------------------------------------------------------------
# Running and timing
# --------------------------------------------------------------------------

GNU_TIME = "/usr/bin/time"


def run_timed(argv, stdout_path=None, stderr_path=None, tmp_dir="/tmp"):
    """Runs argv under GNU time with stdin from /dev/null; returns wall_s,
    maxrss_kib, user_s, sys_s, rc.

    Wall time is time.monotonic() around the whole spawn (GNU time adds
    about a millisecond). Peak RSS comes from GNU time, not from our own
    wait4: Linux carries the parent's RSS high-water mark across fork/vfork
    + exec into the child's ru_maxrss, so a child spawned by this Python
    process would never report less than Python's own ~14 MiB. GNU time is
    a small C process, so its child starts from ~1 MiB."""
    rfile = os.path.join(tmp_dir, "gnu-time.out")
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    try:
        t0 = time.monotonic()
        rc = subprocess.call([GNU_TIME, "-q", "-o", rfile, "-f", "%M %U %S %x", "--", *argv],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        t1 = time.monotonic()
    finally:
        for fh in (out, err):
            if fh is not subprocess.DEVNULL:
                fh.close()
    with open(rfile) as f:
        lines = f.read().split("\n")
    os.unlink(rfile)
    fields = next((l.split() for l in reversed(lines) if len(l.split()) == 4), None)
    if fields is None:
        return {"wall_s": t1 - t0, "maxrss_kib": 0, "user_s": 0.0, "sys_s": 0.0,
                "rc": rc or 255, "time_output": " ".join(lines).strip()}
    # GNU time exits with the command's status (128+N after signal N, 127
    # if it could not run it); %x reads 0 after a signal, so use rc.
    return {
        "wall_s": t1 - t0,
        "maxrss_kib": int(fields[0]),
        "user_s": float(fields[1]),
        "sys_s": float(fields[2]),
        "rc": rc,
    }


def tail(path, limit=2000):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return text[-limit:]


def remove_db(db):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(db + suffix)
        except FileNotFoundError:
            pass


def count_exchanges(db):
    """Row count of the exchanges table via the sqlite3 CLI (falls back to
    Python's sqlite3 module); None when there is no such table."""
    if not os.path.exists(db):
        return None
    if shutil.which("sqlite3"):
        r = subprocess.run(["sqlite3", db, "select count(*) from exchanges"],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip().isdigit():
            return int(r.stdout.strip())
        return None
    import sqlite3
    try:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from exchanges").fetchone()[0]
    except sqlite3.Error:
        return None


SUMMARY_RES = [
    re.compile(r"(\d[\d,_]*)\s+(?:http\s+)?exchanges", re.I),
    re.compile(r"exchanges\s*[=:]\s*(\d[\d,_]*)", re.I),
]


def summary_exchanges(text):
    for rx in SUMMARY_RES:
        m = rx.search(text)
        if m:
            return int(re.sub(r"[,_]", "", m.group(1)))
    return None


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = args.tmp_dir
        os.makedirs(self.tmp, exist_ok=True)
        self.runs = collections.defaultdict(list)   # tool -> [run]
        self.warnings = []

    def check(self, tool, run, stderr_path, ok_rcs=(0,)):
        if run["rc"] not in ok_rcs:
            raise CommandFailed(f"{tool} exited with status {run['rc']}:\n{tail(stderr_path)}")

    def repro(self, key, trace, i, counted=True):
        db = os.path.join(self.tmp, f"fresh-{key}-{i}.db")
        errp = os.path.join(self.tmp, f"{key}.stderr")
        remove_db(db)
        argv = [self.args.repro_bin, "capture", "-r", trace, "--db", db]
        run = run_timed(argv, stderr_path=errp, tmp_dir=self.tmp)
        # 1 = finished but some records failed: timing is valid, note it.
        self.check(key, run, errp, ok_rcs=(0, 1))
        if run["rc"] == 1:
            self.warnings.append(f"{key} run {i}: exit status 1 (some records failed)")
        run["db_exchanges"] = count_exchanges(db)
        run["summary_exchanges"] = summary_exchanges(tail(errp, 20000))
        run["stderr_tail"] = tail(errp, 1000)
        remove_db(db)
        if counted:
            self.runs[key].append(run)
        return run

    def tshark(self, trace, port, i, counted=True, count_path=None):
        errp = os.path.join(self.tmp, "tshark.stderr")
        argv = ["tshark", "-r", trace, "-d", f"tcp.port=={port},http",
                "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"]
        run = run_timed(argv, stdout_path=count_path or "/dev/null", stderr_path=errp, tmp_dir=self.tmp)
        self.check("tshark", run, errp)
        if counted:
            self.runs["tshark"].append(run)
        return run

    def tcpdump(self, trace, i, counted=True):
        errp = os.path.join(self.tmp, "tcpdump.stderr")
        run = run_timed(["tcpdump", "-r", trace, "-w", "/dev/null"], stderr_path=errp, tmp_dir=self.tmp)
        self.check("tcpdump", run, errp)
        if counted:
            self.runs["tcpdump"].append(run)
        return run


def summarize(runs, count, unit):
    walls = [r["wall_s"] for r in runs]
    rss = [r["maxrss_kib"] / 1024 for r in runs]
    med = statistics.median(walls)
    return {
        "runs": runs,
        "n_runs": len(runs),
        "median_wall_s": med,
        "min_wall_s": min(walls),
        "max_wall_s": max(walls),
        "median_cpu_s": statistics.median(r["user_s"] + r["sys_s"] for r in runs),
        "median_rss_mib": statistics.median(rss),
        "max_rss_mib": max(rss),
        "count": count,
        "count_unit": unit,
        "rate_per_s": (count / med) if (count is not None and med > 0) else None,
    }


def first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (r.stdout + r.stderr).strip()
    return text.splitlines()[0] if text else None


def fmt_rate(v):
    return f"{v:,.0f}" if v is not None else "n/a"


def describe(trace_info, meta):
    log(f"trace {trace_info['path']}: {trace_info['size_bytes'] / 1e6:.1f} MB, "
        f"{trace_info['packets']:,} packets over {trace_info['duration_s']:.2f} s")
    if meta:
        log(f"recorded {meta.get('recorded_at')}: {meta.get('wrk_command')}; "
            f"wrk {meta.get('wrk_requests', 0):,} requests; tcpdump "
            f"{meta.get('tcpdump_captured', 0):,} captured, "
            f"{meta.get('tcpdump_dropped')} dropped by kernel"
            + (f"; {meta['notes']}" if meta.get("notes") else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace")
    ap.add_argument("--trace-meta")
    ap.add_argument("--trace2x")
    ap.add_argument("--repro-bin")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--runs-tshark", type=int, default=3)
    ap.add_argument("--tmp-dir", default="/tmp/repro-bench")
    ap.add_argument("--repo-root", default=".")
    ap.add_argument("--json")
    ap.add_argument("--span-only", metavar="PCAP",
                    help="print the trace's duration in whole seconds (rounded up) and exit")
    ap.add_argument("--describe-only", action="store_true")
    args = ap.parse_args()

    if args.span_only:
        info = scan_pcap(args.span_only)
        print(int(info["duration_s"]) + 1)
        return 0

    meta = {}
    if args.trace_meta and os.path.exists(args.trace_meta):
        with open(args.trace_meta) as f:
            meta = json.load(f)
    trace = scan_pcap(args.trace)
    describe(trace, meta)
    if args.describe_only:
        return 0
    if args.runs < 1 or args.runs_tshark < 1:
        log("RUNS and RUNS_TSHARK must be at least 1")
        return 64
    trace2x = scan_pcap(args.trace2x) if args.trace2x else None
    if trace2x:
        log(f"2x trace {trace2x['path']}: {trace2x['size_bytes'] / 1e6:.1f} MB, "
            f"{trace2x['packets']:,} packets")

    port = meta.get("server_port") or trace["server_port_guess"]
    if meta.get("server_port") and trace["server_port_guess"] != meta["server_port"]:
        log(f"warning: metadata says port {meta['server_port']}, trace suggests "
            f"{trace['server_port_guess']}; using {port}")

    b = Bench(args)
    with_repro = args.repro_bin is not None
    started = time.monotonic()
    try:
        # Warm-up, not counted. The tshark warm-up also counts the requests.
        log("warm-up runs (not counted)")
        tshark_out = os.path.join(b.tmp, "tshark.uris")
        if with_repro:
            w = b.repro("repro", args.trace, "warmup", counted=False)
            log(f"  repro    {w['wall_s']:8.3f} s  db rows {w['db_exchanges']}  "
                f"summary {w['summary_exchanges']}")
            if trace2x:
                b.repro("repro_2x", args.trace2x, "warmup", counted=False)
        w = b.tshark(args.trace, port, "warmup", counted=False, count_path=tshark_out)
        with open(tshark_out, "rb") as f:
            tshark_requests = sum(1 for _ in f)
        os.unlink(tshark_out)
        log(f"  tshark   {w['wall_s']:8.3f} s  {tshark_requests:,} http requests")
        w = b.tcpdump(args.trace, "warmup", counted=False)
        log(f"  tcpdump  {w['wall_s']:8.3f} s")

        for i in range(args.runs):
            parts = []
            if with_repro:
                r = b.repro("repro", args.trace, i)
                parts.append(f"repro {r['wall_s']:.3f}s/{r['maxrss_kib'] / 1024:.1f}MiB")
                if trace2x:
                    r = b.repro("repro_2x", args.trace2x, i)
                    parts.append(f"repro-2x {r['wall_s']:.3f}s/{r['maxrss_kib'] / 1024:.1f}MiB")
            if i < args.runs_tshark:
                r = b.tshark(args.trace, port, i)
                parts.append(f"tshark {r['wall_s']:.3f}s/{r['maxrss_kib'] / 1024:.1f}MiB")
            r = b.tcpdump(args.trace, i)
            parts.append(f"tcpdump {r['wall_s']:.3f}s/{r['maxrss_kib'] / 1024:.1f}MiB")
            log(f"round {i + 1}/{args.runs}: " + "  ".join(parts))
    except CommandFailed as e:
        log(f"command failed: {e}")
        return 1
    elapsed = time.monotonic() - started

    # ---------------------------------------------------------------- report
    results = {}
    if with_repro:
        def exchanges_of(key):
            db_counts = {r["db_exchanges"] for r in b.runs[key]}
            sum_counts = {r["summary_exchanges"] for r in b.runs[key]}
            if len(db_counts - {None}) > 1:
                b.warnings.append(f"{key}: exchanges row count differs between runs: {sorted(db_counts - {None})}")
            cnt = max(db_counts - {None}, default=None)
            if cnt is None:
                cnt = max(sum_counts - {None}, default=None)
                if cnt is not None:
                    b.warnings.append(f"{key}: no exchanges table; using the stderr summary count")
            elif cnt not in sum_counts and sum_counts != {None}:
                b.warnings.append(f"{key}: stderr summary {sorted(sum_counts - {None})} != db rows {cnt}")
            return cnt
        results["repro"] = summarize(b.runs["repro"], exchanges_of("repro"), "exchanges")
        if trace2x:
            results["repro_2x"] = summarize(b.runs["repro_2x"], exchanges_of("repro_2x"), "exchanges")
    results["tshark"] = summarize(b.runs["tshark"], tshark_requests, "http requests")
    results["tcpdump"] = summarize(b.runs["tcpdump"], trace["packets"], "packets")

    rp, ts, td = results.get("repro"), results["tshark"], results["tcpdump"]
    ratios = {
        "repro_rate_over_tshark_rate":
            (rp["rate_per_s"] / ts["rate_per_s"]) if rp and rp["rate_per_s"] and ts["rate_per_s"] else None,
        "repro_time_over_tcpdump_time":
            (rp["median_wall_s"] / td["median_wall_s"]) if rp else None,
    }
    if rp and rp["count"] is not None and abs(rp["count"] - tshark_requests) > 0.01 * max(tshark_requests, 1):
        b.warnings.append(f"repro found {rp['count']:,} exchanges but tshark {tshark_requests:,} requests")
    if meta.get("tcpdump_dropped"):
        b.warnings.append(f"tcpdump dropped {meta['tcpdump_dropped']} packets while recording the trace")
    if meta.get("wrk_requests") and abs(tshark_requests - meta["wrk_requests"]) > 0.01 * meta["wrk_requests"]:
        b.warnings.append(f"tshark found {tshark_requests:,} requests but wrk reported {meta['wrk_requests']:,}")

    targets = []
    if rp:
        targets.append({"name": f"repro >= {TARGET_REPRO_RATE:,} exchanges/s",
                        "value": rp["rate_per_s"], "threshold": TARGET_REPRO_RATE,
                        "pass": rp["rate_per_s"] is not None and rp["rate_per_s"] >= TARGET_REPRO_RATE})
        v = ratios["repro_rate_over_tshark_rate"]
        targets.append({"name": f"repro >= {TARGET_VS_TSHARK:g}x tshark (exchanges/s)",
                        "value": v, "threshold": TARGET_VS_TSHARK,
                        "pass": v is not None and v >= TARGET_VS_TSHARK})
        targets.append({"name": f"repro peak RSS < {TARGET_RSS_MIB:g} MiB (worst run)",
                        "value": rp["max_rss_mib"], "threshold": TARGET_RSS_MIB,
                        "pass": rp["max_rss_mib"] < TARGET_RSS_MIB})
        if "repro_2x" in results:
            r1, r2 = rp["median_rss_mib"], results["repro_2x"]["median_rss_mib"]
            allowed = r1 + max(RSS_GROWTH_SLACK_MIB, RSS_GROWTH_SLACK_FRAC * r1)
            targets.append({"name": "repro peak RSS does not grow with file size (2x file)",
                            "value": r2 - r1, "threshold": allowed - r1,
                            "pass": r2 <= allowed})

    print()
    print(f"trace: {trace['path']}")
    wrk_req = meta.get("wrk_requests")
    print(f"  {trace['size_bytes'] / 1e6:.1f} MB, {trace['packets']:,} packets, "
          f"{trace['duration_s']:.2f} s; wrk requests {f'{wrk_req:,}' if wrk_req else 'n/a'}; "
          f"tcpdump dropped {meta.get('tcpdump_dropped', 'n/a')}; "
          f"tshark http requests {tshark_requests:,}")
    if trace2x:
        print(f"2x trace: {trace2x['size_bytes'] / 1e6:.1f} MB, {trace2x['packets']:,} packets")
    print()
    hdr = f"{'tool':<10} {'runs':>4} {'median s':>9} {'min s':>8} {'max s':>8} {'cpu s':>8} {'RSS MiB':>8}  rate"
    print(hdr)
    print("-" * (len(hdr) + 24))
    for key in ("repro", "repro_2x", "tshark", "tcpdump"):
        r = results.get(key)
        if not r:
            continue
        print(f"{key:<10} {r['n_runs']:>4} {r['median_wall_s']:>9.3f} {r['min_wall_s']:>8.3f} "
              f"{r['max_wall_s']:>8.3f} {r['median_cpu_s']:>8.3f} {r['median_rss_mib']:>8.1f}  "
              f"{fmt_rate(r['rate_per_s'])} {r['count_unit']}/s"
              + (f" ({r['count']:,})" if r["count"] is not None else " (count unknown)"))
    print()
    if rp:
        v = ratios["repro_rate_over_tshark_rate"]
        print(f"repro rate / tshark rate:   {v:.1f}x" if v else "repro rate / tshark rate:   n/a")
        print(f"repro time / tcpdump time:  {ratios['repro_time_over_tcpdump_time']:.2f}x")
        print()
        print("targets (informational):")
        for t in targets:
            val = t["value"]
            sval = "n/a" if val is None else (f"{val:,.0f}" if abs(val) >= 1000 else f"{val:.2f}")
            print(f"  {'PASS' if t['pass'] else 'FAIL'}  {t['name']}  (measured {sval})")
    else:
        print("repro: skipped (--anchors-only); no ratios or targets")
    for w in b.warnings:
        print(f"warning: {w}")

    if args.json:
        def git(*a):
            r = subprocess.run(["git", "-C", args.repo_root, *a], capture_output=True, text=True)
            return r.stdout.strip() if r.returncode == 0 else None
        doc = {
            "schema": 1,
            "benchmark": "capture",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "bench_elapsed_s": elapsed,
            "host": {
                "hostname": platform.node(),
                "kernel": platform.release(),
                "cpus": os.cpu_count(),
                "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                                   if l.startswith("model name")), None),
            },
            "git": {"commit": git("rev-parse", "HEAD"),
                    "dirty": bool(git("--no-optional-locks", "status", "--porcelain")) if git("rev-parse", "--git-dir") else None},
            "versions": {
                "repro": first_line([args.repro_bin, "--version"]) if with_repro else None,
                "tshark": first_line(["tshark", "--version"]),
                "tcpdump": first_line(["tcpdump", "--version"]),
            },
            "params": {"runs": args.runs, "runs_tshark": args.runs_tshark,
                       "repro_bin": args.repro_bin, "tshark_decode_as_port": port,
                       "commands": {
                           "repro": "REPRO_BIN capture -r FILE --db FRESH.db",
                           "tshark": f"tshark -r FILE -d tcp.port=={port},http -Y http.request "
                                     "-T fields -e http.request.uri > /dev/null",
                           "tcpdump": "tcpdump -r FILE -w /dev/null"}},
            "trace": {**trace, "meta": {k: v for k, v in meta.items()
                                        if k not in ("wrk_output", "tcpdump_stderr")},
                      "tshark_http_requests": tshark_requests},
            "trace2x": trace2x,
            "results": results,
            "ratios": ratios,
            "targets": targets,
            "warnings": b.warnings,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
