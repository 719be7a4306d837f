#!/usr/bin/env python3
"""Analysis half of live_bench.sh (which runs nginx, wrk and the captures).

  run     reads one run's files (wrk output, GNU time, the capture's stderr,
          for repro its database) and prints one JSON line
  line    turns such a line into one human-readable line
  report  the per-round tables, the medians and ratios against the targets,
          written to the terminal and to --text / --json; when the runs
          include repro_b (a second build, REPRO_BIN_B), the same for it and
          its ratios to repro, round by round and of the medians

Every exchange repro stored is checked with SQL: complete (no
incompleteness flag), status 200, and a response body equal to its own
request URI plus "\\n" (nginx answers `return 200 "$request_uri\\n"` and
every URI wrk sends is different), so a response paired with the wrong
request does not count.
"""

import argparse
import datetime
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys

TARGET_RATE_VS_TCPDUMP = 0.90   # service rate under repro / under tcpdump
TARGET_STORED = 1.0             # stored complete and correct / wrk completed
TARGET_KERNEL_DROPS = 0
# repro_b: the same capture with a second build (REPRO_BIN_B), right after
# repro in every round; present only when live_bench.sh was given one.
MODES = ("none", "tcpdump", "repro", "repro_b")
REPRO_MODES = ("repro", "repro_b")
# docs/schema.md, "Exchange flags"
FLAG_NAMES = ("gap", "truncated", "unanswered", "no_request", "malformed", "redacted", "body_capped",
              "tunnel", "interim", "pairing_uncertain", "body_dropped", "decoded")


def flag_names(flags):
    names = [n for i, n in enumerate(FLAG_NAMES) if flags & (1 << i)]
    rest = flags & ~((1 << len(FLAG_NAMES)) - 1)
    return "+".join(names + ([hex(rest)] if rest else [])) or "0"


def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return default


def num(pattern, text, conv=int):
    m = re.search(pattern, text, re.M)
    return conv(m.group(1)) if m else None


def parse_wrk(text):
    r = {
        "wrk_completed": num(r"^\s*(\d+) requests in", text),
        "wrk_rate": num(r"^Requests/sec:\s*([\d.]+)", text, float),
        "wrk_sent": num(r"^live_bench: sent (\d+)", text),
        "wrk_non2xx": num(r"Non-2xx or 3xx responses:\s*(\d+)", text) or 0,
    }
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["wrk_socket_errors"] = sum(map(int, m.groups())) if m else 0
    if r["wrk_completed"] is None or r["wrk_rate"] is None:
        raise SystemExit(f"live_bench.py: cannot read wrk's output:\n{text}")
    return r


def parse_time(text):
    """GNU time -f '%e %U %S %M' -o FILE; a first line says so when the
    command exited non-zero or died of a signal."""
    lines = [ln for ln in text.splitlines() if re.match(r"^[\d.]+ [\d.]+ [\d.]+ \d+$", ln)]
    if not lines:
        return {}
    wall, user, sys_, rss = lines[-1].split()
    return {"wall_s": float(wall), "cpu_s": float(user) + float(sys_), "user_s": float(user),
            "sys_s": float(sys_), "peak_rss_kib": int(rss)}


def kernel_drops_from_text(text):
    """repro's summary (today `kernel dropped N packets`, only when N > 0)
    or any `kernel ... drop...: N` spelling a later summary may use."""
    pats = [r"kernel dropped (\d+)", r"(\d+) packets dropped by kernel",
            r"kernel[ _-]?drop\w*\D{0,3}(\d+)", r"dropped by (?:the )?kernel\D{0,3}(\d+)"]
    vals = [int(v) for p in pats for v in re.findall(p, text, re.I)]
    return max(vals) if vals else None


def analyse_tcpdump(stderr):
    return {
        "packets": num(r"^(\d+) packets captured", stderr),
        "received_by_filter": num(r"^(\d+) packets received by filter", stderr),
        "kernel_drops": num(r"^(\d+) packets dropped by kernel", stderr),
        "kernel_drops_source": "tcpdump's 'packets dropped by kernel'",
    }


def analyse_repro(db, stderr, prefix):
    r = {"summary_exchanges": num(r"exchanges: (\d+)", stderr)}
    text_drops = kernel_drops_from_text(stderr)
    if not os.path.exists(db):
        r["error"] = "no database"
        r["kernel_drops"] = text_drops
        return r
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cap = con.execute("SELECT id, status, packets, exchanges, incomplete, stats_json "
                          "FROM captures ORDER BY id DESC LIMIT 1").fetchone()
        if cap is None:
            r["error"] = "no captures row"
            r["kernel_drops"] = text_drops
            return r
        cid = cap[0]
        r.update(capture_status=cap[1], packets=cap[2], row_exchanges=cap[3], row_incomplete=cap[4])
        stats = json.loads(cap[5]) if cap[5] else {}
        # Every counter that says something was dropped or cut, when non-zero.
        r["drop_counters"] = {k: v for k, v in stats.items()
                              if isinstance(v, (int, float)) and v and re.search(r"drop|lost|evict|kernel", k)}
        json_drops = [v for k, v in stats.items()
                      if isinstance(v, (int, float)) and "kernel" in k and "drop" in k]
        q = """SELECT count(*),
                      coalesce(sum(complete), 0),
                      coalesce(sum(ok), 0),
                      coalesce(sum(complete AND NOT ok), 0),
                      count(DISTINCT CASE WHEN ok THEN uri END),
                      coalesce(sum(ok AND uri LIKE ?), 0)
               FROM (SELECT complete, uri,
                            complete AND status = 200 AND
                            CAST(substr(response, instr(response, X'0D0A0D0A') + 4) AS TEXT)
                              = uri || char(10) AS ok
                     FROM exchanges WHERE capture_id = ?)"""
        (r["stored"], r["complete"], r["ok"], r["complete_wrong_body"], r["ok_distinct"],
         r["ok_wrk"]) = con.execute(q, (f"/{prefix}/%", cid)).fetchone()
        r["incomplete_by"] = [
            {"flags": f, "count": n, "note": note}
            for f, n, note in con.execute(
                "SELECT flags, count(*), min(note) FROM exchanges WHERE capture_id = ? AND NOT complete "
                "GROUP BY flags ORDER BY 2 DESC LIMIT 8", (cid,))]
    finally:
        con.close()
    cands = [v for v in [text_drops] + json_drops if v is not None]
    r["kernel_drops"] = max(cands) if cands else 0
    r["kernel_drops_source"] = " and ".join(
        (["the summary on stderr"] if text_drops is not None else []) +
        (["stats_json"] if json_drops else [])) or \
        "neither summary nor stats_json names them (repro prints 'kernel dropped N packets' only when N > 0)"
    return r


def cmd_run(a):
    d = a.dir
    run = {"round": a.round, "mode": a.mode, "loadavg": read("/proc/loadavg").split()[:3]}
    run.update(parse_wrk(read(os.path.join(d, "wrk.out"))))
    run["nginx_served"] = int(read(os.path.join(d, "nginx_served"), "0").strip() or 0)
    if a.mode != "none":
        stderr = read(os.path.join(d, "stderr"))
        run["command"] = read(os.path.join(d, "cmd")).strip()
        run["rc"] = int(read(os.path.join(d, "rc"), "-1").strip() or -1)
        run["killed"] = read(os.path.join(d, "stop")).strip() == "killed"
        run["stderr_tail"] = stderr[-3000:]
        run.update(parse_time(read(os.path.join(d, "time"))))
        if a.mode == "tcpdump":
            run.update(analyse_tcpdump(stderr))
            # tcpdump has no exchanges: per exchange on the wire (nginx's count).
            run["exchanges_for_cpu"] = run["nginx_served"]
        else:
            run.update(analyse_repro(a.out + ".db", stderr, f"b{a.round}"))
            run["exchanges_for_cpu"] = run.get("stored")
        n = run.get("exchanges_for_cpu")
        if run.get("cpu_s") is not None and n:
            run["cpu_us_per_exchange"] = run["cpu_s"] * 1e6 / n
        if run.get("cpu_s") is not None and run["nginx_served"]:
            run["cpu_us_per_served"] = run["cpu_s"] * 1e6 / run["nginx_served"]
        if a.mode in REPRO_MODES and run.get("ok") is not None and run["wrk_completed"]:
            run["stored_ok_vs_wrk"] = run["ok_wrk"] / run["wrk_completed"]
            if run["nginx_served"]:
                run["stored_ok_vs_nginx"] = run["ok_wrk"] / run["nginx_served"]
            # wrk counts only answers it read; up to one request per
            # connection was in flight when it stopped. Those in-flight
            # requests may be among the stored ones, so at least this many
            # of wrk's completed requests were stored correctly:
            inflight = max(0, (run["wrk_sent"] or run["wrk_completed"]) - run["wrk_completed"])
            run["stored_ok_vs_wrk_lower"] = min(run["ok_wrk"], run["wrk_completed"],
                                                max(0, run["ok_wrk"] - inflight)) / run["wrk_completed"]
    print(json.dumps(run))


def fmt(v, spec=",.0f", none="-"):
    if v is None:
        return none
    return format(v, spec)


def one_line(r):
    s = (f"round {r['round']} {r['mode']:<7} wrk {fmt(r['wrk_rate'])} req/s, {fmt(r['wrk_completed'])} completed "
         f"({fmt(r['wrk_sent'])} sent, nginx served {fmt(r['nginx_served'])})")
    if r["mode"] == "none":
        return s
    s += f"; kernel drops {fmt(r.get('kernel_drops'))}"
    if r["mode"] in REPRO_MODES:
        s += (f"; stored {fmt(r.get('stored'))}, complete {fmt(r.get('complete'))}, "
              f"body = own URI {fmt(r.get('ok'))} ({fmt(r.get('stored_ok_vs_wrk'), '.2%')} of wrk's)")
    s += (f"; CPU {fmt(r.get('cpu_s'), '.2f')} s = {fmt(r.get('cpu_us_per_exchange'), '.1f')} us/exchange, "
          f"peak RSS {fmt(r.get('peak_rss_kib') and r['peak_rss_kib'] / 1024, '.1f')} MiB, exit {r.get('rc')}")
    if r.get("killed"):
        s += " (killed: did not stop on SIGINT)"
    return s


def cmd_line(_a):
    for ln in sys.stdin:
        print("live_bench: " + one_line(json.loads(ln)))


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def table(headers, rows):
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    out = ["| " + " | ".join(str(h).ljust(w[i]) for i, h in enumerate(headers)) + " |",
           "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    out += ["| " + " | ".join(str(c).rjust(w[i]) for i, c in enumerate(r)) + " |" for r in rows]
    return out


def mib(kib):
    return kib / 1024 if kib is not None else None


def round_notes(r, label):
    """The lines under a round's table for one repro run; label ("" or, in
    an A/B run, the mode and a colon) tells repro's from repro_b's."""
    notes = [f"{r['mode']}: {r['error']}"] if r.get("error") else []
    extra = []
    if r.get("complete_wrong_body"):
        extra.append(f"{r['complete_wrong_body']} complete exchanges whose body is not their URI")
    if r.get("ok") is not None and r.get("ok_wrk") != r.get("ok"):
        extra.append(f"{r['ok'] - r['ok_wrk']} correct exchanges outside this round's URIs")
    if r.get("ok_distinct") is not None and r["ok_distinct"] != r["ok"]:
        extra.append(f"{r['ok'] - r['ok_distinct']} URIs stored more than once")
    if r.get("stored") is not None and r["stored"] > r["ok"]:
        extra.append(f"not complete: {r['stored'] - r['complete']} "
                     f"({', '.join(flag_names(x['flags']) + ' ' + str(x['count']) for x in r['incomplete_by'])})")
    if r.get("stored_ok_vs_wrk_lower") is not None and r["stored_ok_vs_wrk_lower"] < 1 <= r["stored_ok_vs_wrk"]:
        extra.append(f"at least {r['stored_ok_vs_wrk_lower']:.2%} of wrk's completed requests stored "
                     f"correctly (the {r['wrk_sent'] - r['wrk_completed']} requests in flight at wrk's "
                     "stop may be among the stored ones)")
    if r.get("stored_ok_vs_nginx") is not None:
        extra.append(f"stored correctly / requests nginx served (stub_status): "
                     f"{r['stored_ok_vs_nginx']:.2%}")
    if r.get("drop_counters"):
        extra.append("drop counters: " + ", ".join(f"{k} {v}" for k, v in r["drop_counters"].items()))
    if r.get("capture_status"):
        extra.append(f"captures row: status {r['capture_status']}, kernel drops from "
                     f"{r.get('kernel_drops_source')}")
    return notes + [label + e for e in extra]


def ratio(x, y):
    return x / y if x is not None and y else None


def ab_rounds(runs, rounds):
    """Per round, repro_b against repro and both against tcpdump: the VM's
    speed drifts between runs, so a ratio within one round is the
    comparison that means something."""
    out = []
    for rnd in rounds:
        r = {mode: next((x for x in runs if x["round"] == rnd and x["mode"] == mode), {})
             for mode in ("tcpdump", "repro", "repro_b")}

        def get(mode, key):
            return r[mode].get(key)
        out.append({
            "round": rnd,
            "rate_repro_vs_tcpdump": ratio(get("repro", "wrk_rate"), get("tcpdump", "wrk_rate")),
            "rate_repro_b_vs_tcpdump": ratio(get("repro_b", "wrk_rate"), get("tcpdump", "wrk_rate")),
            "rate_repro_b_vs_repro": ratio(get("repro_b", "wrk_rate"), get("repro", "wrk_rate")),
            "cpu_us_per_exchange_repro": get("repro", "cpu_us_per_exchange"),
            "cpu_us_per_exchange_repro_b": get("repro_b", "cpu_us_per_exchange"),
            "cpu_per_exchange_repro_b_vs_repro": ratio(get("repro_b", "cpu_us_per_exchange"),
                                                       get("repro", "cpu_us_per_exchange")),
            "peak_rss_repro_b_vs_repro": ratio(get("repro_b", "peak_rss_kib"), get("repro", "peak_rss_kib")),
        })
    return out


def cmd_report(a):
    runs = [json.loads(ln) for ln in open(a.rounds) if ln.strip()]
    by = {m: [r for r in runs if r["mode"] == m] for m in MODES}
    # A/B run: repro_b rows, lines and JSON keys only then, so that a run
    # without REPRO_BIN_B reports exactly what it did before.
    ab = bool(by["repro_b"])
    modes = MODES if ab else MODES[:3]
    rmodes = [mode for mode in modes if mode in REPRO_MODES]
    out = []
    rounds = sorted({r["round"] for r in runs})
    for rnd in rounds:
        out.append(f"\n## Round {rnd}\n")
        rows = []
        for r in (r for r in runs if r["round"] == rnd):
            cap = r["mode"] != "none"
            rep = r["mode"] in REPRO_MODES
            rows.append([
                r["mode"], fmt(r["wrk_rate"]), fmt(r["wrk_completed"]), fmt(r["wrk_sent"]),
                fmt(r["nginx_served"]),
                fmt(r.get("kernel_drops")) if cap else "",
                fmt(r.get("stored")) if rep else "",
                fmt(r.get("complete")) if rep else "",
                fmt(r.get("ok")) if rep else "",
                fmt(r.get("stored_ok_vs_wrk"), ".2%") if rep else "",
                fmt(r.get("cpu_s"), ".2f") if cap else "",
                fmt(r.get("cpu_us_per_exchange"), ".1f") if cap else "",
                fmt(mib(r.get("peak_rss_kib")), ".1f") if cap else "",
                (str(r.get("rc")) + (" killed" if r.get("killed") else "")) if cap else "",
            ])
        out += table(["capture", "req/s", "wrk completed", "wrk sent", "nginx served", "kernel drops",
                      "stored", "complete", "body = URI", "ok / wrk", "CPU s", "CPU us/exch",
                      "peak RSS MiB", "exit"], rows)
        for r in (r for r in runs if r["round"] == rnd and r["mode"] in REPRO_MODES):
            out += ["", *("- " + e for e in round_notes(r, f"{r['mode']}: " if ab else ""))]

    m = {mode: {k: med(by[mode], k) for k in (
        "wrk_rate", "wrk_completed", "nginx_served", "kernel_drops", "stored", "ok", "stored_ok_vs_wrk",
        "cpu_us_per_exchange", "cpu_us_per_served", "cpu_s", "peak_rss_kib", "wall_s")} for mode in modes}
    out.append(f"\n## Medians of {len(rounds)} round(s)\n")
    rows = []
    for mode in modes:
        x = m[mode]
        cap = mode != "none"
        rep = mode in REPRO_MODES
        rows.append([mode, fmt(x["wrk_rate"]),
                     fmt(x["wrk_rate"] / m["none"]["wrk_rate"], ".2f") if x["wrk_rate"] and m["none"]["wrk_rate"] else "-",
                     fmt(x["wrk_completed"]), fmt(x["kernel_drops"]) if cap else "",
                     fmt(x["ok"]) if rep else "",
                     fmt(x["stored_ok_vs_wrk"], ".2%") if rep else "",
                     fmt(x["cpu_us_per_exchange"], ".2f") if cap else "",
                     fmt(x["cpu_s"] / x["wall_s"], ".0%") if cap and x["cpu_s"] and x["wall_s"] else "",
                     fmt(mib(x["peak_rss_kib"]), ".1f") if cap else ""])
    out += table(["capture", "req/s", "vs none", "wrk completed", "kernel drops", "stored ok", "ok / wrk",
                  "CPU us/exchange", "CPU of a core", "peak RSS MiB"], rows)

    # Against tcpdump, for repro and (A/B) repro_b.
    t = {mode: {
        "rate": ratio(m[mode]["wrk_rate"], m["tcpdump"]["wrk_rate"]),
        "worst_stored": min((r["stored_ok_vs_wrk"] for r in by[mode] if r.get("stored_ok_vs_wrk") is not None),
                            default=None),
        "max_drops": max((r["kernel_drops"] for r in by[mode] if r.get("kernel_drops") is not None), default=None),
        "cpu": ratio(m[mode]["cpu_us_per_exchange"], m["tcpdump"]["cpu_us_per_exchange"]),
        "rss": ratio(m[mode]["peak_rss_kib"], m["tcpdump"]["peak_rss_kib"]),
    } for mode in rmodes}

    def verdict(ok):
        return "-" if ok is None else ("PASS" if ok else "FAIL")

    def rows_of(row):
        return [row(mode, t[mode], m[mode]) for mode in rmodes]
    stored_label = "{}: ".format if ab else (lambda _mode: "")
    out.append("\n## Targets (issue 11, Speed)\n")
    out += table(["target", "measured", ""], [
        *rows_of(lambda mode, x, _: [
            f"service rate under {mode} / under tcpdump >= 0.90", fmt(x["rate"], ".3f"),
            verdict(x["rate"] >= TARGET_RATE_VS_TCPDUMP if x["rate"] is not None else None)]),
        *rows_of(lambda mode, x, y: [
            stored_label(mode) + "stored complete with own response / wrk completed = 100% (median; worst round)",
            f"{fmt(y['stored_ok_vs_wrk'], '.2%')}; {fmt(x['worst_stored'], '.2%')}",
            verdict(x["worst_stored"] >= TARGET_STORED if x["worst_stored"] is not None else None)]),
        *rows_of(lambda mode, x, _: [
            f"{mode} kernel drops = 0 (worst round)", fmt(x["max_drops"]),
            verdict(x["max_drops"] <= TARGET_KERNEL_DROPS if x["max_drops"] is not None else None)]),
        *rows_of(lambda mode, x, y: [
            f"CPU us per exchange, {mode} vs tcpdump",
            f"{fmt(y['cpu_us_per_exchange'], '.2f')} vs {fmt(m['tcpdump']['cpu_us_per_exchange'], '.2f')}"
            f" ({fmt(x['cpu'], '.1f')}x; {mode} per request served: "
            f"{fmt(y['cpu_us_per_served'], '.2f')})", ""]),
        *rows_of(lambda mode, x, y: [
            f"peak RSS, {mode} vs tcpdump",
            f"{fmt(mib(y['peak_rss_kib']), '.1f')} vs {fmt(mib(m['tcpdump']['peak_rss_kib']), '.1f')} MiB"
            f" ({fmt(x['rss'], '.1f')}x)", ""]),
    ])

    ab_doc = None
    if ab:
        per = ab_rounds(runs, rounds)

        def med_of(key):
            return med(per, key)
        ab_doc = {"rounds": per}
        for key in ("rate_repro_vs_tcpdump", "rate_repro_b_vs_tcpdump", "rate_repro_b_vs_repro",
                    "cpu_per_exchange_repro_b_vs_repro", "peak_rss_repro_b_vs_repro"):
            ab_doc[key + "_median_of_rounds"] = med_of(key)
        ab_doc.update(rate_repro_b_vs_repro_of_medians=ratio(m["repro_b"]["wrk_rate"], m["repro"]["wrk_rate"]),
                      cpu_per_exchange_repro_b_vs_repro_of_medians=ratio(m["repro_b"]["cpu_us_per_exchange"],
                                                                         m["repro"]["cpu_us_per_exchange"]),
                      peak_rss_repro_b_vs_repro_of_medians=ratio(m["repro_b"]["peak_rss_kib"],
                                                                 m["repro"]["peak_rss_kib"]))
        out.append("\n## repro_b vs repro, round by round\n")
        out += table(["round", "repro / tcpdump", "repro_b / tcpdump", "repro_b / repro",
                      "CPU us/exch repro", "CPU us/exch repro_b", "CPU repro_b / repro"], [
            [str(p["round"]), fmt(p["rate_repro_vs_tcpdump"], ".3f"), fmt(p["rate_repro_b_vs_tcpdump"], ".3f"),
             fmt(p["rate_repro_b_vs_repro"], ".3f"), fmt(p["cpu_us_per_exchange_repro"], ".2f"),
             fmt(p["cpu_us_per_exchange_repro_b"], ".2f"), fmt(p["cpu_per_exchange_repro_b_vs_repro"], ".3f")]
            for p in per])
        out.append("")
        out += table(["repro_b vs repro", "median of per-round ratios", "ratio of medians", "medians"], [
            ["service rate repro_b / repro", fmt(med_of("rate_repro_b_vs_repro"), ".3f"),
             fmt(ab_doc["rate_repro_b_vs_repro_of_medians"], ".3f"),
             f"{fmt(m['repro_b']['wrk_rate'])} vs {fmt(m['repro']['wrk_rate'])} req/s"],
            ["service rate repro_b / tcpdump", fmt(med_of("rate_repro_b_vs_tcpdump"), ".3f"),
             fmt(t["repro_b"]["rate"], ".3f"), ""],
            ["service rate repro / tcpdump", fmt(med_of("rate_repro_vs_tcpdump"), ".3f"),
             fmt(t["repro"]["rate"], ".3f"), ""],
            ["CPU us per exchange repro_b vs repro", fmt(med_of("cpu_per_exchange_repro_b_vs_repro"), ".3f"),
             fmt(ab_doc["cpu_per_exchange_repro_b_vs_repro_of_medians"], ".3f"),
             f"{fmt(m['repro_b']['cpu_us_per_exchange'], '.2f')} vs {fmt(m['repro']['cpu_us_per_exchange'], '.2f')}"],
            ["peak RSS repro_b vs repro", fmt(med_of("peak_rss_repro_b_vs_repro"), ".3f"),
             fmt(ab_doc["peak_rss_repro_b_vs_repro_of_medians"], ".3f"),
             f"{fmt(mib(m['repro_b']['peak_rss_kib']), '.1f')} vs {fmt(mib(m['repro']['peak_rss_kib']), '.1f')} MiB"],
        ])
    out.append("\nCPU is user + system time of the whole process (start, run, drain, flush; GNU time), "
               "'CPU of a core' that over the process's wall time. "
               "repro's CPU per exchange is divided by the exchanges it stored, tcpdump's by the "
               "requests nginx served while it ran (exchanges on the wire). 'ok / wrk' counts the "
               "stored exchanges that are complete, status 200 and carry their own URI as body, "
               "over wrk's completed requests; requests wrk sent but whose answer it had not read "
               "when it stopped can make it exceed 100%.")
    if ab:
        out.append("\nrepro_b is the same capture with the second build (REPRO_BIN_B), run next to "
                   "repro in every round (after it in odd rounds, before it in even ones); it is "
                   "counted and checked like repro. The VM's speed drifts between runs, so the median "
                   "of the per-round ratios is the A/B figure to trust; an A/A run (REPRO_BIN_B = "
                   "REPRO_BIN) shows how much noise is left.")
    out.append("\nCommands:")
    out += [f"- {c}" for c in a.command]
    out += [f"- {mode}: {r['command']}" for mode in modes[1:] for r in by[mode][:1] if r.get("command")]
    loads = [r["loadavg"][0] for r in runs]
    out.append(f"Load average (1 min) before each run: {', '.join(loads)}.")
    text = "\n".join(out).lstrip("\n") + "\n"
    sys.stdout.write(text)

    def git(*args):
        p = subprocess.run(["git", "-C", a.repo_root, *args], capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else None

    def first_line(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True)
        except OSError:
            return None
        t = (p.stdout + p.stderr).strip()
        return t.splitlines()[0] if t else None
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    header = (f"# live_bench {now}\n\nhost {platform.node()}, {os.cpu_count()} CPUs, "
              f"{platform.platform()}; git {git('rev-parse', '--short', 'HEAD')}"
              f"{' (dirty)' if git('status', '--porcelain') else ''}; "
              + ", ".join(a.setting) + "\n\n")
    if a.text:
        with open(a.text, "w") as f:
            f.write(header + text)
    if a.json:
        doc = {
            "date": now, "host": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "git": {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))},
            "settings": dict(s.split("=", 1) for s in a.setting),
            "versions": {"nginx": first_line(["nginx", "-v"]), "wrk": first_line(["wrk", "-v"]),
                         "tcpdump": first_line(["tcpdump", "--version"]),
                         "repro": first_line([a.repro_bin, "--version"])},
            "medians": m,
            "targets": {"rate_repro_vs_tcpdump": t["repro"]["rate"],
                        "stored_ok_vs_wrk_worst": t["repro"]["worst_stored"],
                        "repro_kernel_drops_worst": t["repro"]["max_drops"],
                        "cpu_per_exchange_repro_vs_tcpdump": t["repro"]["cpu"],
                        "peak_rss_repro_vs_tcpdump": t["repro"]["rss"]},
            "runs": runs,
            "report": text,
        }
        if ab:
            doc["versions"]["repro_b"] = first_line([a.repro_bin_b, "--version"]) if a.repro_bin_b else None
            doc["targets"].update(rate_repro_b_vs_tcpdump=t["repro_b"]["rate"],
                                  stored_ok_vs_wrk_worst_repro_b=t["repro_b"]["worst_stored"],
                                  repro_b_kernel_drops_worst=t["repro_b"]["max_drops"],
                                  cpu_per_exchange_repro_b_vs_tcpdump=t["repro_b"]["cpu"],
                                  peak_rss_repro_b_vs_tcpdump=t["repro_b"]["rss"])
            doc["ab"] = ab_doc
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--mode", choices=MODES, required=True)
    r.add_argument("--dir", required=True)
    r.add_argument("--out", required=True, help="capture output path without extension")
    sub.add_parser("line")
    rep = sub.add_parser("report")
    rep.add_argument("--rounds", required=True)
    rep.add_argument("--repo-root", default=".")
    rep.add_argument("--repro-bin", default="repro")
    rep.add_argument("--repro-bin-b", help="the second build (A/B run), for its --version")
    rep.add_argument("--text")
    rep.add_argument("--json")
    rep.add_argument("--setting", action="append", default=[])
    rep.add_argument("--command", action="append", default=[], help="a command line to list in the report")
    a = p.parse_args()
    {"run": cmd_run, "line": cmd_line, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
