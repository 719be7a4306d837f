# lib_nginx.sh - sourced by the benchmark scripts: a private nginx on a free
# loopback port serving one small static page, and waiting for a capture
# (tcpdump, repro capture -i) to start.
#
# The caller defines log() and the variables work (a directory that the
# nginx worker, running as nobody, may traverse) and nginx_pid (killed by
# the caller's cleanup).

# nginx rejects `listen 127.0.0.1:0` ("invalid port"), so the kernel picks a
# free port through a bind(0) just before nginx starts; if another process
# takes it in between, nginx fails to bind and we retry with a new port.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_nginx DIR [SERVER_CONF [HTTP_CONF]]: sets nginx_pid and port, or
# returns 1. SERVER_CONF goes into the server block on the loopback port (for
# example a `location / { return ...; }` that replaces the static page),
# HTTP_CONF into the http block (another server). Both are copied verbatim.
start_nginx() {
    local dir=$1 server_conf=${2:-} http_conf=${3:-} attempt i
    mkdir -p "$dir/www" "$dir/tmp"
    # mktemp -d makes a 0700 directory; a root master runs its worker as
    # nobody, which must be able to read the page.
    chmod a+rx "$work" "$dir" "$dir/www"
    # ~150-byte static body.
    printf '<!doctype html><html><head><title>repro bench</title></head><body><p>%s</p></body></html>\n' \
        'static page served to wrk for the repro capture benchmark' > "$dir/www/index.html"
    chmod a+r "$dir/www/index.html"
    for attempt in 1 2 3; do
        port=$(free_port)
        cat > "$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    proxy_temp_path $dir/tmp;
    fastcgi_temp_path $dir/tmp;
    uwsgi_temp_path $dir/tmp;
    scgi_temp_path $dir/tmp;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$port;
        root $dir/www;
        default_type text/html;
$server_conf
    }
$http_conf
}
EOF
        : > "$dir/error.log"
        nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>>"$dir/error.log" &
        nginx_pid=$!
        # Readiness: poll for up to 5 s.
        for i in $(seq 50); do
            kill -0 "$nginx_pid" 2>/dev/null || break
            if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null; then
                return 0
            fi
            sleep 0.1
        done
        kill -QUIT "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
        nginx_pid=
        if grep -q 'Address already in use' "$dir/error.log"; then
            log "port $port was taken before nginx could bind it (attempt $attempt); retrying"
            continue
        fi
        log "nginx did not serve http://127.0.0.1:$port/ within 5 s: $(tail -n 2 "$dir/error.log" | tr '\n' ' ')"
        return 1
    done
    return 1
}


# wait_listening FILE PID: waits up to 10 s until the capture whose stderr
# goes to FILE prints "listening on" (tcpdump and repro capture -i both do
# once the interface is open); returns 1 if it did not, or if PID exited.
wait_listening() {
    local file=$1 pid=$2 i
    for i in $(seq 100); do
        grep -q 'listening on' "$file" && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    grep -q 'listening on' "$file"
}
