#!/usr/bin/env bash
# Live capture end-to-end test (needs root: it captures on lo).
#
# usage: live_capture.sh [--nginx] [REPRO_BIN [SAMPLE_SERVICE_BIN]]
#   REPRO_BIN and SAMPLE_SERVICE_BIN may also come from the environment.
#   Default: against the sample service (fixtures/service/sample_service,
#   which binds port 0 and prints "LISTENING <port>"). With --nginx: against
#   a throwaway nginx (nginx rejects port 0, so the port comes from the kernel
#   via a python bind to port 0 right before start; retried if taken).
#
# Steps: start the server and read its port; start
#   repro capture -i lo -f "tcp port $PORT" --db TMP/live.db --duration 20
# in the background and poll its stderr (bounded) for "listening on lo"; send
# N requests with curl (single requests and a keep-alive batch); send SIGINT
# to the capture right after the last response and wait (bounded) for it to
# exit 0; then `repro exchanges --format json` must hold exactly those N
# requests: method GET, the right URIs in order of request_time, status 200,
# complete, Host and server = 127.0.0.1:$PORT, no gap/truncated flag.
# SIGINT comes straight after the last response on purpose: a capture that
# loses packets still in the kernel's ring buffer at stop time fails here.
#
# Exit: 0 pass, 1 fail, 2 cannot run (missing binaries/tools), 77 not root.
set -u

mode=service
if [ "${1:-}" = "--nginx" ]; then mode=nginx; shift; fi
REPRO_BIN=${1:-${REPRO_BIN:-}}
SAMPLE_SERVICE_BIN=${2:-${SAMPLE_SERVICE_BIN:-}}

fail() { echo "FAILED live_capture ($mode): $*" >&2; exit 1; }
cannot() { echo "ERROR live_capture ($mode): cannot run: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || { echo "SKIPPED live_capture: needs root (capture on lo)"; exit 77; }
[ -n "$REPRO_BIN" ] && [ -x "$REPRO_BIN" ] || cannot "REPRO_BIN '$REPRO_BIN' is not executable"
for t in curl python3; do command -v "$t" >/dev/null || cannot "missing tool '$t'"; done
if [ "$mode" = service ]; then
    [ -n "$SAMPLE_SERVICE_BIN" ] && [ -x "$SAMPLE_SERVICE_BIN" ] ||
        cannot "SAMPLE_SERVICE_BIN '$SAMPLE_SERVICE_BIN' is not executable"
else
    command -v nginx >/dev/null || cannot "missing tool 'nginx'"
fi

tmp=$(mktemp -d /tmp/repro-e2e-live.XXXXXX)
chmod 755 "$tmp"   # nginx workers run as nobody
server_pid=
cap_pid=
cleanup() {
    [ -n "$cap_pid" ] && kill -KILL "$cap_pid" 2>/dev/null
    [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null
    [ -n "$server_pid" ] && wait "$server_pid" 2>/dev/null
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# poll N CMD...: up to N tries, 50 ms apart (bounded polling, no sleep-based sync)
poll() {
    local n=$1 i; shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}
alive() { kill -0 "$1" 2>/dev/null; }

# ------------------------------------------------------------- server
if [ "$mode" = service ]; then
    "$SAMPLE_SERVICE_BIN" > "$tmp/server.out" 2> "$tmp/server.err" &
    server_pid=$!
    poll 200 grep -qs '^LISTENING [0-9]' "$tmp/server.out" ||
        fail "sample service printed no LISTENING line within 10 s: $(cat "$tmp/server.err")"
    port=$(awk '/^LISTENING/ {print $2; exit}' "$tmp/server.out")
    paths=(/health /items/1 /items/2 /chunked /items/3 /items/4 /items/5 /health)
else
    mkdir -p "$tmp/www/items" "$tmp/ngx-tmp"
    for i in 1 2 3 4 5; do printf '{"id":%d}\n' "$i" > "$tmp/www/items/$i.json"; done
    printf 'ok\n' > "$tmp/www/index.html"
    chmod -R a+rX "$tmp/www"
    for attempt in 1 2 3; do
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
        cat > "$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $tmp/ngx-tmp/body;
    proxy_temp_path $tmp/ngx-tmp/proxy;
    fastcgi_temp_path $tmp/ngx-tmp/fastcgi;
    uwsgi_temp_path $tmp/ngx-tmp/uwsgi;
    scgi_temp_path $tmp/ngx-tmp/scgi;
    types { application/json json; text/html html; }
    server { listen 127.0.0.1:$port; root $tmp/www; }
}
EOF
        nginx -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" &
        server_pid=$!
        if poll 200 curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/index.html"; then break; fi
        kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; server_pid=
        echo "nginx did not come up on port $port (attempt $attempt)" >&2
    done
    [ -n "$server_pid" ] || fail "cannot start nginx: $(tail -3 "$tmp/nginx-error.log" 2>/dev/null)"
    paths=(/items/1.json /items/2.json /index.html /items/3.json /items/4.json /items/5.json /index.html)
fi
base="http://127.0.0.1:$port"
echo "server ($mode) on port $port"

# ------------------------------------------------------------- capture
db="$tmp/live.db"
"$REPRO_BIN" capture -i lo -f "tcp port $port" --db "$db" --duration 20 2> "$tmp/capture.err" &
cap_pid=$!
if ! poll 200 grep -qs "listening on lo" "$tmp/capture.err"; then
    alive "$cap_pid" || { wait "$cap_pid"; rc=$?; cap_pid=; fail "repro capture exited $rc before listening: $(cat "$tmp/capture.err")"; }
    fail "repro capture printed no 'listening on lo' within 10 s; stderr: $(cat "$tmp/capture.err")"
fi

# ------------------------------------------------------------- traffic
# the first three paths one curl each (one connection each), the rest as one
# keep-alive batch
sent=()
for p in "${paths[@]:0:3}"; do
    curl -sS -f -o /dev/null --max-time 5 "$base$p" || fail "curl $base$p failed"
    sent+=("$p")
done
batch=()
for p in "${paths[@]:3}"; do batch+=("$base$p" -o /dev/null); sent+=("$p"); done
curl -sS -f --max-time 5 "${batch[@]}" || fail "keep-alive curl batch failed"
n=${#sent[@]}

# ------------------------------------------------------------- stop
kill -INT "$cap_pid"
poll 200 bash -c '! kill -0 '"$cap_pid"' 2>/dev/null' ||
    fail "repro capture did not exit within 10 s of SIGINT; stderr: $(cat "$tmp/capture.err")"
wait "$cap_pid"; rc=$?; cap_pid=
echo "repro capture exit $rc; stderr: $(tr '\n' '|' < "$tmp/capture.err" | cut -c1-400)"
[ "$rc" = 0 ] || fail "repro capture exited $rc after SIGINT (want 0)"
[ -f "$db" ] || fail "no database '$db' after capture"
[ "$(stat -c %a "$db")" = 600 ] || fail "database mode is $(stat -c %a "$db"), want 600 (it holds traffic)"

"$REPRO_BIN" exchanges --db "$db" --format json > "$tmp/exchanges.jsonl" 2> "$tmp/exchanges.err" ||
    fail "repro exchanges exited $?: $(cat "$tmp/exchanges.err")"

# ------------------------------------------------------------- check
EXPECT_PATHS=$(printf '%s\n' "${sent[@]}") PORT=$port N=$n python3 - "$tmp/exchanges.jsonl" <<'EOF' || exit 1
import json, os, sys
port, n = os.environ["PORT"], int(os.environ["N"])
want = os.environ["EXPECT_PATHS"].split()
lines = open(sys.argv[1]).read().splitlines()
bad = []
try:
    xs = [json.loads(l) for l in lines]
except ValueError as e:
    sys.exit("FAILED: exchanges output is not JSON Lines: %s" % e)
if len(xs) != n:
    bad.append("expected exactly %d exchanges, got %d" % (n, len(xs)))
xs.sort(key=lambda x: (x.get("request_time") is None, x.get("request_time") or 0, x.get("id")))
got = [x.get("uri") for x in xs]
if got != want:
    bad.append("URIs in order of request_time differ:\n    expected %s\n    got      %s" % (want, got))
for x in xs:
    why = []
    if x.get("method") != "GET": why.append("method %r" % x.get("method"))
    if x.get("status") != 200: why.append("status %r" % x.get("status"))
    if x.get("complete") is not True: why.append("complete %r" % x.get("complete"))
    if x.get("server") != "127.0.0.1:" + port: why.append("server %r" % x.get("server"))
    if x.get("host") != "127.0.0.1:" + port: why.append("host %r" % x.get("host"))
    if not str(x.get("client", "")).startswith("127.0.0.1:"): why.append("client %r" % x.get("client"))
    fl = set(x.get("flags") or [])
    if fl & {"gap", "truncated", "malformed", "unanswered", "no_request"}: why.append("flags %s" % sorted(fl))
    for k in ("request_time", "response_time"):
        if not isinstance(x.get(k), (int, float)): why.append("%s %r" % (k, x.get(k)))
    if isinstance(x.get("request_time"), (int, float)) and isinstance(x.get("response_time"), (int, float)) \
            and x["response_time"] < x["request_time"]:
        why.append("response_time before request_time")
    if why:
        bad.append("exchange %s (%s): %s" % (x.get("id"), x.get("uri"), ", ".join(why)))
if bad:
    print("FAILED live_capture: exchanges do not match the %d requests sent" % n)
    for b in bad:
        print("  - " + b)
    print("exchanges output:")
    print("\n".join("  " + l for l in lines))
    sys.exit(1)
print("PASSED live_capture: %d exchanges, all GET 200 complete, URIs in order" % n)
EOF

# the server must still be healthy and stop cleanly
kill -TERM "$server_pid"
wait "$server_pid"; rc=$?; server_pid=
[ "$rc" = 0 ] || fail "server exited $rc on SIGTERM"
exit 0
