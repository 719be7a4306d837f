/*
 * The Prometheus exporter of `repro capture --metrics HOST:PORT`: a writer
 * of the text exposition format 0.0.4 (prometheus.io/docs/instrumenting/
 * exposition_formats) and a small HTTP/1.1 server (RFC 9112) for it.
 *
 * The server is one thread polling its listening socket, a wake pipe (so
 * that stop returns at once) and up to max_conns connections. Each
 * connection carries one request, read with the project's HTTP framer, and
 * gets one answer with Connection: close; a connection that has not been
 * answered and closed within timeout_ms is dropped, so a silent or slow
 * client costs one slot for a while and delays no one. Deliberately left
 * out: keep-alive, TLS, authentication, compression, the OpenMetrics and
 * protobuf formats. The workload is a scrape every few seconds of a few
 * kilobytes of text.
 */
#include "app/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the text format writer -------------------------------------------- */

static int is_alpha_(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static int metric_name_ok(const char *s)
{
    if (s == NULL || !(is_alpha_(s[0]) || s[0] == ':'))
        return 0;
    for (s++; *s; s++)
        if (!(is_alpha_(*s) || is_digit(*s) || *s == ':'))
            return 0;
    return 1;
}

/* [a-zA-Z_][a-zA-Z0-9_]*, and "__" is reserved for Prometheus itself. */
static int label_name_ok(const char *s)
{
    if (s == NULL || !is_alpha_(s[0]) || (s[0] == '_' && s[1] == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(is_alpha_(*s) || is_digit(*s)))
            return 0;
    return 1;
}

/* Appends s with backslash and newline escaped, and the double quote too
 * when quote is set (label values; HELP text leaves it alone). */
static int append_escaped(struct repro_buf *b, const char *s, int quote)
{
    int rc = REPRO_OK;
    const char *run = s;

    for (; *s && rc == REPRO_OK; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                                              : (quote && *s == '"') ? "\\\""
                                                                     : NULL;
        if (esc == NULL)
            continue;
        REPRO_TRY(rc, repro_buf_append(b, run, (size_t)(s - run)));
        REPRO_TRY(rc, repro_buf_append(b, esc, 2));
        run = s + 1;
    }
    REPRO_TRY(rc, repro_buf_append(b, run, strlen(run)));
    return rc;
}

int repro_metrics_family(struct repro_buf *b, const char *name, enum repro_metrics_type type,
                         const char *help)
{
    size_t old = b->len;
    int rc = REPRO_OK;

    if (!metric_name_ok(name) || help == NULL ||
        (type != REPRO_METRICS_COUNTER && type != REPRO_METRICS_GAUGE))
        return REPRO_E_INVAL;
    REPRO_TRY(rc, repro_buf_printf(b, "# HELP %s ", name));
    REPRO_TRY(rc, append_escaped(b, help, 0));
    REPRO_TRY(rc, repro_buf_printf(b, "\n# TYPE %s %s\n", name,
                                   type == REPRO_METRICS_COUNTER ? "counter" : "gauge"));
    if (rc != REPRO_OK)
        b->len = old;
    return rc;
}

/* Appends `name{a="x",b="y"} ` (no braces without labels). */
static int sample_start(struct repro_buf *b, const char *name,
                        const struct repro_metrics_label *labels, size_t n_labels)
{
    int rc = REPRO_OK;
    size_t i, k;

    if (!metric_name_ok(name) || (labels == NULL && n_labels > 0))
        return REPRO_E_INVAL;
    for (i = 0; i < n_labels; i++) {
        if (!label_name_ok(labels[i].name) || labels[i].value == NULL)
            return REPRO_E_INVAL;
        for (k = 0; k < i; k++)
            if (strcmp(labels[k].name, labels[i].name) == 0)
                return REPRO_E_INVAL;
    }
    REPRO_TRY(rc, repro_buf_append(b, name, strlen(name)));
    for (i = 0; i < n_labels; i++) {
        REPRO_TRY(rc, repro_buf_printf(b, "%c%s=\"", i == 0 ? '{' : ',', labels[i].name));
        REPRO_TRY(rc, append_escaped(b, labels[i].value, 1));
        REPRO_TRY(rc, repro_buf_append(b, "\"", 1));
    }
    if (n_labels > 0)
        REPRO_TRY(rc, repro_buf_append(b, "}", 1));
    REPRO_TRY(rc, repro_buf_append(b, " ", 1));
    return rc;
}

int repro_metrics_counter(struct repro_buf *b, const char *name,
                          const struct repro_metrics_label *labels, size_t n_labels,
                          uint64_t value)
{
    size_t old = b->len;
    int rc = sample_start(b, name, labels, n_labels);

    REPRO_TRY(rc, repro_buf_printf(b, "%llu\n", (unsigned long long)value));
    if (rc != REPRO_OK)
        b->len = old;
    return rc;
}

int repro_metrics_gauge(struct repro_buf *b, const char *name,
                        const struct repro_metrics_label *labels, size_t n_labels, double value)
{
    size_t old = b->len;
    int rc = sample_start(b, name, labels, n_labels);
    char num[40];

    if (isnan(value))
        snprintf(num, sizeof num, "NaN");
    else if (isinf(value))
        snprintf(num, sizeof num, "%cInf", value > 0 ? '+' : '-');
    else {
        /* The shortest of %.15g and %.17g that reads back as the same
         * double: 0.1 stays "0.1". */
        snprintf(num, sizeof num, "%.15g", value);
        if (strtod(num, NULL) != value)
            snprintf(num, sizeof num, "%.17g", value);
    }
    REPRO_TRY(rc, repro_buf_printf(b, "%s\n", num));
    if (rc != REPRO_OK)
        b->len = old;
    return rc;
}

/* ---- the request reader -------------------------------------------------- */

#define DEFAULT_MAX_HEAD 8192

void repro_metrics_request_init(struct repro_metrics_request *rq, size_t max_head)
{
    struct repro_http_limits lim;

    repro_http_limits_default(&lim);
    lim.max_head = max_head ? max_head : DEFAULT_MAX_HEAD;
    lim.max_store = 0; /* a body is never needed: keep none of it */
    lim.max_trailer = 1024;
    memset(rq, 0, sizeof *rq);
    repro_http_framer_init(&rq->framer, REPRO_HTTP_REQUEST, &lim, 0);
}

void repro_metrics_request_release(struct repro_metrics_request *rq)
{
    if (rq != NULL)
        repro_http_framer_release(&rq->framer);
}

static int slice_is(struct repro_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* The path of a request target: origin-form up to '?' or '#', or the path
 * of an absolute-form target ("http://host:9100/metrics"). */
static struct repro_slice target_path(struct repro_slice t)
{
    size_t i = 0, end;
    const uint8_t *slashes = t.len > 3 ? memchr(t.ptr, ':', t.len) : NULL;

    if (t.len > 0 && t.ptr[0] != '/' && slashes != NULL &&
        (size_t)(slashes - t.ptr) + 2 < t.len && slashes[1] == '/' && slashes[2] == '/') {
        const uint8_t *p;
        i = (size_t)(slashes - t.ptr) + 3;
        p = memchr(t.ptr + i, '/', t.len - i);
        if (p == NULL)
            return (struct repro_slice){(const uint8_t *)"/", 1};
        i = (size_t)(p - t.ptr);
    }
    for (end = i; end < t.len && t.ptr[end] != '?' && t.ptr[end] != '#'; end++)
        ;
    return (struct repro_slice){t.ptr + i, end - i};
}

/* Chooses the answer from a parsed head (info's spans lie in raw). */
static void decide(struct repro_metrics_request *rq, const struct repro_http_info *info,
                   struct repro_slice raw)
{
    struct repro_slice method = repro_http_span_slice(raw, info->method);
    struct repro_slice path = target_path(repro_http_span_slice(raw, info->target));
    int known = 1;

    rq->done = 1;
    if (info->version_major != 1) { /* "PRI * HTTP/2.0", the HTTP/2 preface */
        rq->route = REPRO_METRICS_R_MALFORMED;
        return;
    }
    if (slice_is(path, "/metrics"))
        rq->route = REPRO_METRICS_R_METRICS;
    else if (slice_is(path, "/"))
        rq->route = REPRO_METRICS_R_INDEX;
    else
        rq->route = REPRO_METRICS_R_NOT_FOUND, known = 0;
    /* Methods are case-sensitive (RFC 9110 section 9.1). */
    rq->head_only = slice_is(method, "HEAD");
    if (known && !rq->head_only && !slice_is(method, "GET"))
        rq->route = REPRO_METRICS_R_BAD_METHOD;
}

enum repro_http_outcome repro_metrics_request_feed(struct repro_metrics_request *rq,
                                                   const uint8_t *p, size_t len)
{
    struct repro_http_framer *f = &rq->framer;
    size_t off = 0;

    while (!rq->done && off < len) {
        /* One line at a time: the head ends at a line end, so the framer
         * never sees a body byte, and the decision (taken on the head
         * alone) cannot depend on how the bytes were segmented. */
        const uint8_t *lf = memchr(p + off, '\n', len - off);
        size_t n = lf != NULL ? (size_t)(lf - (p + off)) + 1 : len - off, used = 0;
        enum repro_http_outcome rc = repro_http_framer_feed(f, p + off, n, 0, &used);
        const struct repro_http_msg *m = repro_http_framer_msg(f);

        off += used;
        if (rc == REPRO_HTTP_DONE && m->info != NULL) {
            decide(rq, m->info, m->raw);
        } else if (rc != REPRO_HTTP_NEED_MORE) {
            rq->done = 1;
            rq->route = m->info == NULL && m->raw.len >= f->limits.max_head
                            ? REPRO_METRICS_R_TOO_LARGE
                            : REPRO_METRICS_R_MALFORMED;
        } else if (f->head_raw_len > 0) {
            /* The head is in and a body follows: the answer does not
             * depend on the body, so it is not waited for. */
            decide(rq, &f->info, (struct repro_slice){f->raw.data, f->raw.len});
        } else if (used == 0) {
            break;
        }
    }
    return rq->done ? REPRO_HTTP_DONE : REPRO_HTTP_NEED_MORE;
}

int repro_metrics_route_status(enum repro_metrics_route route, const char **reason)
{
    static const struct {
        int code;
        const char *reason;
    } t[] = {
        [REPRO_METRICS_R_METRICS] = {200, "OK"},
        [REPRO_METRICS_R_INDEX] = {200, "OK"},
        [REPRO_METRICS_R_NOT_FOUND] = {404, "Not Found"},
        [REPRO_METRICS_R_BAD_METHOD] = {405, "Method Not Allowed"},
        [REPRO_METRICS_R_MALFORMED] = {400, "Bad Request"},
        [REPRO_METRICS_R_TOO_LARGE] = {431, "Request Header Fields Too Large"},
    };
    size_t i = (size_t)route < sizeof t / sizeof *t ? (size_t)route : REPRO_METRICS_R_MALFORMED;
    if (reason != NULL)
        *reason = t[i].reason;
    return t[i].code;
}

/* ---- the server ------------------------------------------------------------ */

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* Bytes of a request body read and thrown away after the answer, so that
 * closing does not reset the connection under a response still in flight. */
#define MAX_DRAIN (256 * 1024)

enum conn_state { C_FREE = 0, C_READ, C_WRITE, C_DRAIN };

struct conn {
    enum conn_state state;
    int fd;
    uint64_t deadline_ns;
    size_t drained;
    struct repro_metrics_request rq;
    struct repro_buf out; /* the whole answer */
    size_t out_off;       /* bytes of out sent */
};

struct repro_metrics_server {
    int listen_fd;
    int wake[2]; /* stop writes a byte to wake[1] */
    int port;
    pthread_t thread;
    repro_metrics_render_fn render;
    void *ctx;
    struct repro_metrics_limits lim;
    struct conn *conns; /* lim.max_conns slots */
    struct pollfd *pfd; /* lim.max_conns + 2: wake pipe, connections, listener */
    struct conn **owner; /* the connection of each pfd entry */
    struct repro_buf body;
    uint64_t accept_pause_ns; /* out of descriptors: no accept before this */
    _Atomic uint64_t scrapes, errors, timeouts;
};

static void conn_close(struct conn *c)
{
    if (c->state == C_FREE)
        return;
    close(c->fd);
    repro_metrics_request_release(&c->rq);
    repro_buf_release(&c->out);
    c->state = C_FREE;
    c->fd = -1;
}

/* Builds the answer of a decided request in c->out. */
static void conn_answer(struct repro_metrics_server *s, struct conn *c)
{
    const struct repro_metrics_request *rq = &c->rq;
    const char *reason, *type = "text/plain; charset=utf-8", *extra = "";
    int code = repro_metrics_route_status(rq->route, &reason), rc = REPRO_OK;
    struct repro_buf *body = &s->body;

    repro_buf_reset(body);
    switch (rq->route) {
    case REPRO_METRICS_R_METRICS:
        type = CONTENT_TYPE;
        if (s->render(s->ctx, body) != REPRO_OK) {
            code = 500;
            reason = "Internal Server Error";
            type = "text/plain; charset=utf-8";
            repro_buf_reset(body);
            rc = repro_buf_printf(body, "the metrics could not be rendered\n");
        }
        break;
    case REPRO_METRICS_R_INDEX:
        rc = repro_buf_printf(body, "repro capture: metrics at /metrics\n");
        break;
    case REPRO_METRICS_R_BAD_METHOD:
        extra = "Allow: GET, HEAD\r\n";
        /* fall through */
    default:
        rc = repro_buf_printf(body, "%d %s: try GET /metrics\n", code, reason);
        break;
    }
    if (code == 200 && rq->route == REPRO_METRICS_R_METRICS)
        atomic_fetch_add(&s->scrapes, 1);
    else if (code >= 400)
        atomic_fetch_add(&s->errors, 1);
    repro_buf_init(&c->out, s->lim.max_body + 1024);
    REPRO_TRY(rc, repro_buf_printf(&c->out,
                                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                   "%sCache-Control: no-store\r\nConnection: close\r\n\r\n",
                                   code, reason, type, body->len, extra));
    if (!rq->head_only)
        REPRO_TRY(rc, repro_buf_append(&c->out, body->data, body->len));
    c->out_off = 0;
    c->state = rc == REPRO_OK ? C_WRITE : C_DRAIN;
    if (rc != REPRO_OK) /* out of memory: nothing sensible can be sent */
        shutdown(c->fd, SHUT_WR);
}

/* Sends what the socket takes; on the last byte, half-closes and drains. */
static void conn_write(struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    repro_buf_release(&c->out);
    c->state = C_DRAIN;
}

static void conn_read(struct repro_metrics_server *s, struct conn *c)
{
    uint8_t buf[4096];

    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            /* The client closed (or reset): after an answer that is the
             * normal end; before one, a request cut short is answered 400
             * (the client may still read) and silence is just closed. */
            if (c->state == C_READ && n == 0 && repro_http_framer_busy(&c->rq.framer)) {
                c->rq.done = 1;
                c->rq.route = REPRO_METRICS_R_MALFORMED;
                conn_answer(s, c);
                conn_write(c);
            } else {
                conn_close(c);
            }
            return;
        }
        if (c->state == C_DRAIN) {
            c->drained += (size_t)n;
            if (c->drained > MAX_DRAIN) {
                conn_close(c);
                return;
            }
            continue;
        }
        if (repro_metrics_request_feed(&c->rq, buf, (size_t)n) == REPRO_HTTP_DONE) {
            conn_answer(s, c);
            conn_write(c);
            return;
        }
    }
}

static void accept_all(struct repro_metrics_server *s, uint64_t now_ns)
{
    size_t i;

    for (i = 0; i < s->lim.max_conns; i++) {
        struct conn *c = &s->conns[i];
        int fd;
        if (c->state != C_FREE)
            continue;
        fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* Out of descriptors or memory the connection stays in the
             * backlog and the socket readable: wait a while rather than
             * spin. EAGAIN or an aborted connection: poll again. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                s->accept_pause_ns = now_ns + 100 * 1000000ull;
            return;
        }
        c->fd = fd;
        c->state = C_READ;
        c->drained = 0;
        c->deadline_ns = now_ns + (uint64_t)s->lim.timeout_ms * 1000000u;
        repro_metrics_request_init(&c->rq, s->lim.max_head);
        repro_buf_init(&c->out, 0);
    }
}

/* Fills pfd (wake pipe, listening socket, then the open connections) and
 * returns how many; *timeout_ms gets the wait until the nearest deadline. */
static nfds_t poll_set(struct repro_metrics_server *s, struct pollfd *pfd, struct conn **owner,
                       uint64_t now_ns, int *timeout_ms)
{
    nfds_t n = 0;
    size_t i, open = 0;
    uint64_t next = UINT64_MAX;

    pfd[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
    for (i = 0; i < s->lim.max_conns; i++) {
        struct conn *c = &s->conns[i];
        if (c->state == C_FREE)
            continue;
        open++;
        owner[n] = c;
        pfd[n++] = (struct pollfd){.fd = c->fd, .events = c->state == C_WRITE ? POLLOUT : POLLIN};
        if (c->deadline_ns < next)
            next = c->deadline_ns;
    }
    /* A full table leaves new connections in the listen backlog. */
    if (s->accept_pause_ns > now_ns && s->accept_pause_ns < next)
        next = s->accept_pause_ns;
    pfd[n++] = (struct pollfd){
        .fd = open < s->lim.max_conns && s->accept_pause_ns <= now_ns ? s->listen_fd : -1,
        .events = POLLIN};
    if (next == UINT64_MAX)
        *timeout_ms = -1;
    else
        *timeout_ms = next <= now_ns ? 0 : (int)((next - now_ns + 999999) / 1000000);
    return n;
}

static void *server_main(void *arg)
{
    struct repro_metrics_server *s = arg;
    struct pollfd *pfd = s->pfd;
    struct conn **owner = s->owner;
    size_t i;

    for (;;) {
        int timeout_ms;
        uint64_t now = repro_mono_ns();
        nfds_t n = poll_set(s, pfd, owner, now, &timeout_ms), k;

        if (poll(pfd, n, timeout_ms) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents)
            break; /* stop */
        now = repro_mono_ns();
        for (k = 1; k + 1 < n; k++) {
            struct conn *c = owner[k];
            if (pfd[k].revents == 0 || c->state == C_FREE)
                continue;
            if (c->state == C_WRITE)
                conn_write(c);
            else
                conn_read(s, c);
        }
        for (i = 0; i < s->lim.max_conns; i++) {
            struct conn *c = &s->conns[i];
            if (c->state != C_FREE && c->deadline_ns <= now) {
                if (c->state != C_DRAIN)
                    atomic_fetch_add(&s->timeouts, 1);
                conn_close(c);
            }
        }
        if (pfd[n - 1].revents)
            accept_all(s, now);
    }
    for (i = 0; i < s->lim.max_conns; i++)
        conn_close(&s->conns[i]);
    return NULL;
}

/* Splits "HOST:PORT", "[V6]:PORT" or ":PORT" into host (empty for every
 * address) and a checked numeric port. */
static int split_hostport(const char *hp, char *host, size_t host_len, char port[8],
                          struct repro_error *err)
{
    const char *colon, *h = hp;
    size_t hl, i, pl;

    if (hp == NULL || hp[0] == '\0')
        return repro_error_set(err, REPRO_E_INVAL, "cannot serve metrics on '': expected HOST:PORT");
    if (hp[0] == '[') {
        const char *close = strchr(hp, ']');
        if (close == NULL || close[1] != ':')
            return repro_error_set(err, REPRO_E_INVAL,
                                   "cannot serve metrics on '%s': expected [ADDRESS]:PORT", hp);
        h = hp + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (colon == NULL)
            return repro_error_set(err, REPRO_E_INVAL,
                                   "cannot serve metrics on '%s': expected HOST:PORT", hp);
        hl = (size_t)(colon - hp);
        if (memchr(hp, ':', hl) != NULL)
            return repro_error_set(err, REPRO_E_INVAL,
                                   "cannot serve metrics on '%s': write an IPv6 address in "
                                   "brackets, as [::1]:9100", hp);
    }
    if (hl >= host_len)
        return repro_error_set(err, REPRO_E_INVAL, "cannot serve metrics on '%s': host too long",
                               hp);
    memcpy(host, h, hl);
    host[hl] = '\0';
    pl = strlen(colon + 1);
    for (i = 0; i < pl && is_digit(colon[1 + i]); i++)
        ;
    if (pl == 0 || pl > 5 || i != pl || atoi(colon + 1) > 65535)
        return repro_error_set(err, REPRO_E_INVAL, "cannot serve metrics on '%s': bad port", hp);
    memcpy(port, colon + 1, pl + 1);
    return REPRO_OK;
}

/* A listening socket on one address; -1 with *why set on failure. */
static int listen_on(const struct sockaddr *sa, socklen_t len, const char **why, int *saved)
{
    int one = 1, zero = 0;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        *why = "socket";
        *saved = errno;
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* ":PORT" binds "::" for IPv4 too, whatever net.ipv6.bindv6only says. */
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, len) != 0) {
        *why = "bind";
    } else if (listen(fd, 64) != 0) {
        *why = "listen";
    } else {
        return fd;
    }
    *saved = errno;
    close(fd);
    return -1;
}

static int open_listener(const char *hp, struct repro_metrics_server *s, struct repro_error *err)
{
    char host[256], port[8];
    struct addrinfo hints, *ai = NULL, *a;
    const char *why = "bind";
    int rc, saved = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;

    if ((rc = split_hostport(hp, host, sizeof host, port, err)) != REPRO_OK)
        return rc;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (host[0] ? 0 : AI_PASSIVE);
    /* Every address: "::" first (it takes IPv4 too), then 0.0.0.0 on a
     * host without IPv6. */
    hints.ai_family = host[0] ? AF_UNSPEC : AF_INET6;
    rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (rc != 0 && !host[0]) {
        hints.ai_family = AF_INET;
        rc = getaddrinfo(NULL, port, &hints, &ai);
    }
    if (rc != 0)
        return repro_error_set(err, REPRO_E_IO, "cannot serve metrics on '%s': %s", hp,
                               gai_strerror(rc));
    s->listen_fd = -1;
    for (a = ai; a != NULL && s->listen_fd < 0; a = a->ai_next)
        s->listen_fd = listen_on(a->ai_addr, a->ai_addrlen, &why, &saved);
    if (s->listen_fd < 0 && !host[0] && saved == EAFNOSUPPORT) {
        struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
        s->listen_fd = listen_on((struct sockaddr *)&v4, sizeof v4, &why, &saved);
    }
    freeaddrinfo(ai);
    if (s->listen_fd < 0) {
        errno = saved;
        return repro_error_sys(err, REPRO_E_IO, "cannot serve metrics on '%s': %s: %s", hp, why,
                               strerror(saved));
    }
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) != 0)
        return repro_error_sys(err, REPRO_E_IO, "cannot serve metrics on '%s': getsockname: %s",
                               hp, strerror(errno));
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return REPRO_OK;
}

static void server_free(struct repro_metrics_server *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    repro_buf_release(&s->body);
    repro_free(s->conns);
    repro_free(s->pfd);
    repro_free(s->owner);
    repro_free(s);
}

int repro_metrics_server_start_with(const char *hostport, const struct repro_metrics_limits *lim,
                                    repro_metrics_render_fn render, void *ctx,
                                    struct repro_metrics_server **out, struct repro_error *err)
{
    struct repro_metrics_server *s;
    sigset_t all, old;
    int rc;

    *out = NULL;
    if (render == NULL)
        return repro_error_set(err, REPRO_E_INVAL, "cannot serve metrics: no render function");
    s = repro_calloc(1, sizeof *s);
    if (s == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot serve metrics: out of memory");
    s->listen_fd = s->wake[0] = s->wake[1] = -1;
    s->render = render;
    s->ctx = ctx;
    s->lim = (struct repro_metrics_limits){5000, 16, DEFAULT_MAX_HEAD, 16u << 20};
    if (lim != NULL) {
        if (lim->timeout_ms > 0)
            s->lim.timeout_ms = lim->timeout_ms;
        if (lim->max_conns > 0)
            s->lim.max_conns = lim->max_conns;
        if (lim->max_head > 0)
            s->lim.max_head = lim->max_head;
        if (lim->max_body > 0)
            s->lim.max_body = lim->max_body;
    }
    repro_buf_init(&s->body, s->lim.max_body);
    s->conns = repro_calloc(s->lim.max_conns, sizeof *s->conns);
    s->pfd = repro_calloc(s->lim.max_conns + 2, sizeof *s->pfd);
    s->owner = repro_calloc(s->lim.max_conns + 2, sizeof *s->owner);
    if (s->conns == NULL || s->pfd == NULL || s->owner == NULL) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot serve metrics: out of memory");
        goto fail;
    }
    if ((rc = open_listener(hostport, s, err)) != REPRO_OK)
        goto fail;
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = repro_error_sys(err, REPRO_E_IO, "cannot serve metrics on '%s': pipe: %s", hostport,
                             strerror(errno));
        goto fail;
    }
    /* The thread takes no signal: SIGINT and SIGTERM must reach the
     * capture loop, not interrupt a poll nobody checks. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&s->thread, NULL, server_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        rc = repro_error_sys(err, REPRO_E_IO, "cannot serve metrics on '%s': thread: %s",
                             hostport, strerror(errno));
        goto fail;
    }
    *out = s;
    return REPRO_OK;
fail:
    server_free(s);
    return rc;
}

int repro_metrics_server_start(const char *hostport, repro_metrics_render_fn render, void *ctx,
                               struct repro_metrics_server **out, struct repro_error *err)
{
    return repro_metrics_server_start_with(hostport, NULL, render, ctx, out, err);
}

int repro_metrics_server_port(const struct repro_metrics_server *s)
{
    return s->port;
}

void repro_metrics_server_stats(const struct repro_metrics_server *s,
                                struct repro_metrics_server_stats *out)
{
    out->scrapes = atomic_load(&s->scrapes);
    out->errors = atomic_load(&s->errors);
    out->timeouts = atomic_load(&s->timeouts);
}

void repro_metrics_server_stop(struct repro_metrics_server *s)
{
    ssize_t n;

    if (s == NULL)
        return;
    do
        n = write(s->wake[1], "x", 1);
    while (n < 0 && errno == EINTR);
    pthread_join(s->thread, NULL);
    server_free(s);
}
