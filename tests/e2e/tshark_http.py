"""HTTP/1.x request/response extraction with tshark: the independent oracle of
the golden end-to-end tests.

extract(pcap) runs tshark twice (per-frame facts, then the reassembled HTTP
messages as JSON) and pairs responses with requests in order per TCP
connection, skipping interim 1xx responses (not 101). It follows the rules of
/work/shared/corpus/oracle.sh, so that on the development corpus it reproduces
the committed <trace>.requests.tsv files (checked by
golden_tshark.py --selftest-corpus):

- tshark's own pairing (http.response_in) numbers messages per frame and goes
  wrong on pipelining, so it is not used;
- a message that starts in a frame tshark flags as a retransmission, at the
  same seq/direction as one already seen, is a duplicate and is dropped;
- when server->client data was lost between request i and i+1 ("Previous
  segment(s) not captured" from the server, or the client ACKing unseen data)
  request i's response is taken as lost instead of shifting later pairs;
- a status line on the wire that tshark did not turn into a response (a gap
  inside the body) becomes the "hint" of the first earlier unanswered request.

Stdlib only. Needs tshark on PATH (or TSHARK=/path/to/tshark).
"""
import ipaddress
import json
import os
import re
import subprocess

TSHARK = os.environ.get("TSHARK", "tshark")
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})")
WANT = ("http.request.method", "http.request.uri", "http.request.full_uri",
        "http.request.version", "http.host", "http.content_length",
        "http.response.code", "http.response_in")
TSV_COLUMNS = ["time_epoch", "tcp_stream", "method", "uri", "host", "req_content_length",
               "resp_status", "client_ip", "client_port", "server_ip", "server_port",
               "req_frame", "first_frame", "first_time_epoch", "http_version", "full_uri",
               "resp_frame", "interim_status", "resp_status_hint", "tshark_resp_frame"]


class TsharkError(Exception):
    pass


def norm_ip(s):
    """Canonical text of an IPv4/IPv6 address (RFC 5952 for IPv6)."""
    try:
        return ipaddress.ip_address(s).compressed
    except ValueError:
        return s


def is_interim(code):
    return code.isdigit() and 100 <= int(code) < 200 and code != "101"


def _aslist(x):
    return [] if x is None else (x if isinstance(x, list) else [x])


def _first(v):
    while isinstance(v, list):
        if not v:
            return None
        v = v[0]
    return v


def _collect(node, out):
    # depth-first; the first occurrence of each wanted field wins
    if isinstance(node, dict):
        for k, v in node.items():
            if k in WANT and k not in out and not isinstance(v, dict):
                fv = _first(v)
                if fv is not None and not isinstance(fv, dict):
                    out[k] = fv
            if isinstance(v, (dict, list)):
                _collect(v, out)
    elif isinstance(node, list):
        for x in node:
            _collect(x, out)


def prefs(http_ports=(), out_of_order=False):
    a = ["-n", "-2", "-o", "tcp.desegment_tcp_streams:TRUE",
         "-o", "tcp.reassemble_out_of_order:%s" % ("TRUE" if out_of_order else "FALSE"),
         "-o", "tcp.check_checksum:FALSE", "-o", "http.desegment_headers:TRUE",
         "-o", "http.desegment_body:TRUE", "-o", "http.dechunk_body:TRUE"]
    for p in http_ports:
        a += ["-d", "tcp.port==%d,http" % int(p)]
    return a


def _run(args, timeout=60):
    try:
        r = subprocess.run([TSHARK] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except FileNotFoundError:
        raise TsharkError("cannot run tshark '%s': not found (apt-get install tshark)" % TSHARK)
    except subprocess.TimeoutExpired:
        raise TsharkError("tshark timed out after %d s: %s" % (timeout, " ".join(args)))
    if r.returncode != 0:
        raise TsharkError("tshark failed (exit %d): %s\n%s" % (
            r.returncode, " ".join(args), r.stderr.decode(errors="replace")[-2000:]))
    return r.stdout


def syn_ports(pcap):
    """Destination ports of connection-opening SYNs: the servers' ports."""
    out = _run(["-r", pcap, "-n", "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0",
                "-T", "fields", "-e", "tcp.dstport"])
    return sorted({int(x) for x in out.decode().split() if x.isdigit()})


def _frames(pcap, p):
    out = _run(["-r", pcap] + p + ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
               "-e", "frame.number", "-e", "frame.time_epoch", "-e", "tcp.stream",
               "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
               "-e", "_ws.expert.message", "-e", "tcp.seq", "-e", "ip.dst",
               "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "tcp.payload"])
    fr = {}
    for line in out.decode(errors="replace").split("\n"):
        a = line.split("\t")
        a += [""] * (12 - len(a))
        if not a[0].isdigit():
            continue
        # tunnels: keep the innermost (last) occurrence of every field but the
        # expert messages, which are all kept
        a = [x if i == 6 else x.split("|")[-1] for i, x in enumerate(a)]
        fr[int(a[0])] = dict(time=a[1], stream=a[2], src=norm_ip(a[4] or a[3]), sport=a[5],
                             expert=a[6], seq=a[7], dst=norm_ip(a[9] or a[8]), dport=a[10],
                             payload=a[11])
    return fr


def extract(pcap, http_ports=(), out_of_order=False):
    """Returns (requests, stats). requests: list of dicts, ordered by the frame
    that completed the request, with keys method, uri, host, version, status,
    hint, interim (list), client (ip, port), server (ip, port), req_frame,
    first_frame, first_time, resp_first_frame, resp_first_time (of the final
    response), interim_first_times (of the 1xx responses), stream. Times are
    tshark's frame.time_epoch strings."""
    p = prefs(http_ports, out_of_order)
    fr = _frames(pcap, p)
    raw = _run(["-r", pcap] + p + ["-Y", "http", "-T", "json", "--no-duplicate-keys",
                "-J", "frame tcp tcp.segments http"])
    pkts = json.loads(raw.decode(errors="replace") or "[]")

    def ep(fn):
        f = fr.get(fn)
        return (f["src"], f["sport"]) if f else None

    reqs, resps, seen, dups = [], [], set(), 0
    for pkt in pkts:
        L = pkt["_source"]["layers"]
        fnum = int(_first(_aslist(L.get("frame")))["frame.number"])
        tcp = _aslist(L.get("tcp"))
        if not tcp:
            continue  # HTTP over UDP (SSDP) is out of scope
        stream = _first(tcp[-1].get("tcp.stream"))
        segs = _aslist(L.get("tcp.segments"))
        segframes = [int(x) for x in _aslist(segs[-1].get("tcp.segment"))] if segs else []
        reasm_len = _first(segs[-1].get("tcp.reassembled.length")) if segs else None
        msgs = [h for h in _aslist(L.get("http")) if isinstance(h, dict)]
        for idx, h in enumerate(msgs):
            f = {}
            _collect(h, f)
            ff = min(segframes) if (idx == 0 and segframes) else fnum
            key = (stream, ep(ff), fr.get(ff, {}).get("seq"),
                   idx if ff == fnum else ("R", reasm_len),
                   f.get("http.request.method"), f.get("http.request.uri"),
                   f.get("http.response.code"))
            if "retransmission" in fr.get(ff, {}).get("expert", "") and key in seen:
                dups += 1
                continue
            seen.add(key)
            rec = dict(f, frame=fnum, idx=idx, stream=stream, first_frame=ff, nmsg=len(msgs))
            if "http.request.method" in f:
                reqs.append(rec)
            elif "http.response.code" in f:
                resps.append(rec)

    # pairing, per tcp.stream, in wire order
    by = {}
    for r in reqs:
        by.setdefault(r["stream"], ([], []))[0].append(r)
    for r in resps:
        by.setdefault(r["stream"], ([], []))[1].append(r)
    orphans = 0
    for st, (rq, rs) in by.items():
        rq.sort(key=lambda r: (r["first_frame"], r["frame"], r["idx"]))
        rs.sort(key=lambda r: (r["first_frame"], r["frame"], r["idx"]))
        srv = ep(rs[0]["first_frame"]) if rs else None
        losses = []
        if srv is not None:
            for fn, f in fr.items():
                if f["stream"] != st:
                    continue
                if (f["src"], f["sport"]) == srv and "Previous segment(s) not captured" in f["expert"]:
                    losses.append(fn)
                elif (f["src"], f["sport"]) != srv and "ACKed segment that wasn't captured" in f["expert"]:
                    losses.append(fn)
        events = sorted([(r["first_frame"], 0, i) for i, r in enumerate(rq)] +
                        [(r["first_frame"], 1, i) for i, r in enumerate(rs)])
        queue = []
        for _, kind, i in events:
            if kind == 0:
                queue.append(rq[i])
                continue
            code = str(rs[i].get("http.response.code", ""))
            if not queue:
                orphans += 1
                continue
            if is_interim(code):
                queue[0].setdefault("interim", []).append(code)
                queue[0].setdefault("interim_frames", []).append(rs[i]["first_frame"])
                continue
            while len(queue) >= 2 and any(queue[0]["first_frame"] <= x < queue[1]["first_frame"]
                                          for x in losses):
                queue.pop(0)
            q = queue.pop(0)
            q["status"], q["resp_first_frame"] = code, rs[i]["first_frame"]
            q["resp_frame"] = rs[i]["frame"]

    # hints: status lines on the wire that tshark did not turn into a response
    accounted = {(r["stream"], r["first_frame"]) for r in resps}
    wseen, hinted = set(), 0
    for fn in sorted(fr):
        f = fr[fn]
        if not f["payload"] or not f["stream"]:
            continue
        try:
            b = bytes.fromhex(f["payload"].replace(":", "")[:40])
        except ValueError:
            continue
        m = STATUS_LINE.match(b)
        if not m:
            continue
        k = (f["stream"], f["src"], f["sport"], f["seq"])
        if k in wseen:
            continue
        wseen.add(k)
        code = m.group(1).decode()
        if (f["stream"], fn) in accounted or is_interim(code):
            continue
        cands = [r for r in by.get(f["stream"], ([], []))[0]
                 if not r.get("status") and not r.get("hint") and r["first_frame"] < fn]
        if cands:
            cands[0]["hint"] = code
            hinted += 1

    reqs.sort(key=lambda r: (r["frame"], r["idx"]))
    out = []
    for r in reqs:
        f0 = fr.get(r["first_frame"], {})
        rf = fr.get(r.get("resp_first_frame"), {})
        out.append(dict(
            method=r.get("http.request.method"), uri=r.get("http.request.uri"),
            host=r.get("http.host") or "", version=r.get("http.request.version"),
            status=r.get("status", ""), hint=r.get("hint", ""), interim=r.get("interim", []),
            client=(f0.get("src"), f0.get("sport")), server=(f0.get("dst"), f0.get("dport")),
            req_frame=r["frame"], first_frame=r["first_frame"], first_time=f0.get("time", ""),
            resp_first_frame=r.get("resp_first_frame"), resp_first_time=rf.get("time", ""),
            interim_first_times=[fr.get(x, {}).get("time", "") for x in r.get("interim_frames", [])],
            stream=r["stream"], time=fr.get(r["frame"], {}).get("time", ""),
            content_length=r.get("http.content_length"), full_uri=r.get("http.request.full_uri"),
            resp_frame=r.get("resp_frame", ""),
            tshark_resp_frame=r.get("http.response_in", "") if r["nmsg"] == 1 else "n/a"))
    n1xx = sum(1 for r in resps if is_interim(str(r.get("http.response.code", ""))))
    stats = dict(requests=len(reqs), responses=len(resps), interim_1xx=n1xx,
                 paired=sum(1 for r in out if r["status"]), orphan_responses=orphans,
                 retrans_dups_dropped=dups, status_hints=hinted)
    return out, stats


def _esc(v):
    s = "" if v is None else str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def to_tsv(rows):
    """The rows of extract() in the format of the corpus oracle's
    <trace>.requests.tsv (same columns, order and escaping)."""
    out = ["\t".join(TSV_COLUMNS)]
    for r in rows:
        out.append("\t".join(_esc(x) for x in [
            r["time"], r["stream"], r["method"], r["uri"], r["host"], r["content_length"],
            r["status"], r["client"][0], r["client"][1], r["server"][0], r["server"][1],
            r["req_frame"], r["first_frame"], r["first_time"], r["version"], r["full_uri"],
            r["resp_frame"], ",".join(r["interim"]), r["hint"], r["tshark_resp_frame"]]))
    return "\n".join(out) + "\n"
