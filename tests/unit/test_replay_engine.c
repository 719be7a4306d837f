/*
 * Unit tests for the replay sender/reader (replay/engine.c) against a real
 * HTTP server on a loopback port chosen by the kernel (a thread of this
 * test). The server logs, per request, which accepted connection carried
 * it and when it arrived and was answered, so the tests check session
 * fidelity (one server connection per recorded connection, keep-alive,
 * pipelining), causal order across connections, timing on an absolute
 * clock, and every error kind: refused, closed early (reopened and
 * counted), reset, timeout, malformed; plus HEAD, 1xx and chunked
 * responses.
 *
 * Paths steer the server (by what comes before a '~', so "/close~r1c2" is
 * /close): /close answers with Connection: close and closes, /quiet
 * answers as if keeping the connection and closes it, /reset resets, /hang never answers, /garbage answers non-HTTP,
 * /continue sends a 100 first, /chunked answers chunked, /slowN answers
 * after N ms. Every other path is echoed in the body.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "repro/replay.h"
#include "test_util.h"

#include <jansson.h>
#include <zlib.h>
#include <stdatomic.h>

/* ---- the server ------------------------------------------------------------ */

#define MAXC 512
#define MAXLOG 4096

struct logent {
    int conn;          /* accepted connection number */
    char path[64];
    int64_t in_ns, out_ns; /* arrival, answer about to be written (mono) */
};

struct server {
    int lfd, port, stop_pipe[2];
    pthread_t th;
    pthread_mutex_t m;
    int accepted;
    int variant; /* 1: /variant answers differently (a regression) */
    struct logent log[MAXLOG];
    int n_log;
};

static int64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* /gzip: its JSON body gzip-encoded, chunked; /gzipbad: bytes said to be
 * gzip that are not; /gzipbomb: 2 MiB of zeros in about 2 KiB. */
static void put_gzip(int fd, const char *path)
{
    static uint8_t zeros[1 << 16], out[1 << 16];
    char head[160], json[96];
    z_stream z;
    size_t n;

    if (strcmp(path, "/gzipbad") == 0) {
        put(fd, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!");
        return;
    }
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_out = out;
    z.avail_out = sizeof out;
    if (strcmp(path, "/gzipbomb") == 0) {
        for (int i = 0; i < 32; i++) {
            z.next_in = zeros;
            z.avail_in = sizeof zeros;
            assert_int_equal(deflate(&z, Z_NO_FLUSH), Z_OK);
        }
    } else {
        snprintf(json, sizeof json, "{\"path\":\"%s\"}", path);
        z.next_in = (Bytef *)json;
        z.avail_in = (uInt)strlen(json);
    }
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    n = sizeof out - z.avail_out;
    deflateEnd(&z);
    snprintf(head, sizeof head,
             "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
             n);
    put(fd, head);
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, out + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
    put(fd, "\r\n0\r\n\r\n");
}

/* Logs a request; out_ns 0: not answered. Called before the answer is
 * written, so that whoever got the answer finds the entry. */
static void note(struct server *sv, int cn, const char *full, int64_t in, int64_t out_ns)
{
    pthread_mutex_lock(&sv->m);
    if (sv->n_log < MAXLOG) {
        struct logent *l = &sv->log[sv->n_log++];
        l->conn = cn;
        snprintf(l->path, sizeof l->path, "%s", full);
        l->in_ns = in;
        l->out_ns = out_ns;
    }
    pthread_mutex_unlock(&sv->m);
}

/* Answers one request head; returns 0 when the connection must close. */
static int answer(struct server *sv, int fd, int cn, const char *head)
{
    char method[16] = "", full[64] = "", path[64], body[128], out[512];
    int keep = 1;
    sscanf(head, "%15s %63s", method, full);
    snprintf(path, sizeof path, "%.*s", (int)strcspn(full, "~"), full); /* what steers */
    int64_t in = mono();
    if (strncmp(path, "/slow", 5) == 0) {
        struct timespec ts = {0, atoi(path + 5) * 1000000L};
        nanosleep(&ts, NULL);
    }
    char extra[160] = "";
    static int stamp;
    snprintf(body, sizeof body, "{\"path\":\"%s\"}", full);
    if (strcmp(path, "/stamp") == 0) { /* a value that differs on every answer */
        pthread_mutex_lock(&sv->m);
        int t = ++stamp;
        pthread_mutex_unlock(&sv->m);
        snprintf(body, sizeof body, "{\"path\":\"%s\",\"t\":%d}", path, t);
    } else if (strcmp(path, "/login") == 0) {
        pthread_mutex_lock(&sv->m);
        int t = ++stamp;
        pthread_mutex_unlock(&sv->m);
        snprintf(extra, sizeof extra, "Set-Cookie: sid=staging%d; Path=/\r\n", t);
    } else if (strcmp(path, "/variant") == 0) {
        pthread_mutex_lock(&sv->m);
        int v = sv->variant;
        pthread_mutex_unlock(&sv->m);
        snprintf(body, sizeof body, "{\"path\":\"%s\",\"v\":%d}", path, v);
    } else if (strcmp(path, "/me") == 0) { /* echoes the session cookie */
        const char *ck = strstr(head, "Cookie: ");
        int cl = ck ? (int)strcspn(ck + 8, "\r\n") : 0;
        snprintf(body, sizeof body, "{\"path\":\"/me\",\"cookie\":\"%.*s\"}", cl, ck ? ck + 8 : "");
    }
    if (strcmp(path, "/hang") == 0) {
        note(sv, cn, full, in, 0);
        keep = 1; /* never answered */
    } else if (strcmp(path, "/reset") == 0) {
        note(sv, cn, full, in, 0);
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        keep = 0;
    } else if (strcmp(path, "/garbage") == 0) {
        note(sv, cn, full, in, 0);
        put(fd, "NOT HTTP AT ALL\r\n\r\n");
    } else if (strncmp(path, "/gzip", 5) == 0) {
        note(sv, cn, full, in, mono());
        put_gzip(fd, path);
    } else if (strcmp(path, "/chunked") == 0) {
        note(sv, cn, full, in, mono());
        put(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    } else {
        if (strcmp(path, "/continue") == 0)
            put(fd, "HTTP/1.1 100 Continue\r\n\r\n");
        keep = strcmp(path, "/close") != 0 && strcmp(path, "/quiet") != 0;
        snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s%s\r\n%s",
                 strlen(body), extra, strcmp(path, "/close") ? "" : "Connection: close\r\n",
                 strcmp(method, "HEAD") == 0 ? "" : body);
        note(sv, cn, full, in, mono()); /* before the write: the answer cannot arrive earlier */
        put(fd, out);
    }
    return keep;
}

struct cthread {
    struct server *sv;
    int fd, num;
    pthread_t th;
};

/* One thread per connection, so a slow answer delays only its own
 * connection (as in a real server) and arrival times are true. */
static void *conn_main(void *arg)
{
    struct cthread *ct = arg;
    char buf[8192];
    size_t blen = 0;
    int keep = 1;

    while (keep) {
        ssize_t r = recv(ct->fd, buf + blen, sizeof buf - 1 - blen, 0);
        if (r <= 0)
            break;
        blen += (size_t)r;
        buf[blen] = 0;
        char *end;
        while (keep && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            size_t hl = (size_t)(end + 4 - buf);
            char head[8192];
            memcpy(head, buf, hl);
            head[hl] = 0;
            memmove(buf, buf + hl, blen - hl + 1);
            blen -= hl;
            keep = answer(ct->sv, ct->fd, ct->num, head);
        }
    }
    shutdown(ct->fd, SHUT_RDWR);
    return NULL;
}

static void *server_main(void *arg)
{
    struct server *sv = arg;
    struct cthread *ct[MAXC];
    int n = 0;
    struct pollfd p[2] = {{.fd = sv->lfd, .events = POLLIN}, {.fd = sv->stop_pipe[0], .events = POLLIN}};

    for (;;) {
        if (poll(p, 2, -1) < 0)
            continue;
        if (p[1].revents)
            break;
        int fd = accept(sv->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        if (n == MAXC) {
            close(fd);
            continue;
        }
        ct[n] = calloc(1, sizeof **ct);
        ct[n]->sv = sv;
        ct[n]->fd = fd;
        pthread_mutex_lock(&sv->m);
        ct[n]->num = sv->accepted++;
        pthread_mutex_unlock(&sv->m);
        if (pthread_create(&ct[n]->th, NULL, conn_main, ct[n]) != 0) {
            close(fd);
            free(ct[n]);
            continue;
        }
        n++;
    }
    for (int i = 0; i < n; i++) {
        shutdown(ct[i]->fd, SHUT_RDWR);
        pthread_join(ct[i]->th, NULL);
        close(ct[i]->fd);
        free(ct[i]);
    }
    return NULL;
}

static struct server *server_start(void)
{
    struct server *sv = calloc(1, sizeof *sv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int one = 1;
    assert_non_null(sv);
    sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(sv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(sv->lfd, 128), 0);
    assert_int_equal(getsockname(sv->lfd, (struct sockaddr *)&a, &al), 0);
    sv->port = ntohs(a.sin_port);
    assert_int_equal(pipe(sv->stop_pipe), 0);
    pthread_mutex_init(&sv->m, NULL);
    assert_int_equal(pthread_create(&sv->th, NULL, server_main, sv), 0);
    return sv;
}

static void server_stop(struct server *sv)
{
    assert_int_equal(write(sv->stop_pipe[1], "x", 1), 1);
    pthread_join(sv->th, NULL);
    close(sv->lfd);
    close(sv->stop_pipe[0]);
    close(sv->stop_pipe[1]);
    pthread_mutex_destroy(&sv->m);
    free(sv);
}

/* A copy of the first log entry for path (the server may still run). */
static struct logent logged_copy(struct server *sv, const char *path)
{
    struct logent l = {.conn = -1};
    pthread_mutex_lock(&sv->m);
    for (int i = 0; i < sv->n_log; i++)
        if (strcmp(sv->log[i].path, path) == 0) {
            l = sv->log[i];
            break;
        }
    pthread_mutex_unlock(&sv->m);
    if (l.conn < 0)
        fail_msg("the server never saw %s", path);
    return l;
}

static int accepted(struct server *sv)
{
    pthread_mutex_lock(&sv->m);
    int n = sv->accepted;
    pthread_mutex_unlock(&sv->m);
    return n;
}

/* ---- a recorded trace and its run --------------------------------------- */

struct trace {
    struct repro_replay_req r[256];
    struct repro_slice q[256];
    char text[256][128];
    size_t n;
};

static void add(struct trace *t, int64_t conn, int64_t sent_us, int64_t answered_us,
                const char *method, const char *path)
{
    size_t i = t->n++;
    uint64_t seq = 0;
    for (size_t k = 0; k < i; k++)
        seq += t->r[k].conn_id == conn;
    t->r[i] = (struct repro_replay_req){.exchange_id = (int64_t)i + 1, .conn_id = conn, .seq = seq,
                                        .sent_us = sent_us, .answered_us = answered_us,
                                        .conn_opened_us = -1, .conn_closed_us = -1};
    snprintf(t->text[i], sizeof t->text[i], "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, path);
    t->q[i] = (struct repro_slice){(const uint8_t *)t->text[i], strlen(t->text[i])};
}

struct got {
    struct repro_replay_result r[1024];
    char body[1024][64];
    size_t n;
};

static int collect(void *ctx, const struct repro_replay_result *r)
{
    struct got *g = ctx;
    if (g->n < 1024) {
        g->r[g->n] = *r;
        const uint8_t *b = r->response.len ? memmem(r->response.ptr, r->response.len, "\r\n\r\n", 4)
                                           : NULL;
        size_t bl = b ? r->response.len - (size_t)(b + 4 - r->response.ptr) : 0;
        snprintf(g->body[g->n], sizeof g->body[g->n], "%.*s", (int)(bl < 63 ? bl : 63),
                 b ? (const char *)b + 4 : "");
        g->r[g->n].response = (struct repro_slice){0};
        g->n++;
    }
    return 0;
}

/* The result of input request i (first loop). */
static const struct repro_replay_result *result_of(const struct got *g,
                                                    const struct repro_replay_plan *p, size_t i,
                                                    const char **body)
{
    for (size_t k = 0; k < g->n; k++)
        if (p->steps[g->r[k].step].req == i && g->r[k].loop == 0) {
            if (body)
                *body = g->body[k];
            return &g->r[k];
        }
    fail_msg("no result for request %zu", i);
    return NULL;
}

static int run(struct trace *t, int port, double speed, struct repro_replay_opts *extra,
               struct repro_replay_plan **plan, struct got *g, struct repro_replay_stats *st)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct repro_replay_opts o = extra ? *extra : (struct repro_replay_opts){0};
    struct repro_error err = {0};
    o.target = (const struct sockaddr *)&a;
    o.target_len = sizeof a;
    o.speed = speed;
    if (!o.timeout_ms)
        o.timeout_ms = 2000;
    assert_int_equal(repro_replay_plan_build(t->r, t->n, plan, &err), REPRO_OK);
    memset(g, 0, sizeof *g);
    return repro_replay_run(*plan, t->q, &o, collect, g, st, &err);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_sessions_and_causality(void **state)
{
    (void)state;
    struct server *sv = server_start();
    static struct trace t;
    static struct got g;
    struct repro_replay_plan *p;
    struct repro_replay_stats st;
    const char *body;

    memset(&t, 0, sizeof t);
    /* conn 1: a slow login, then two requests on keep-alive; conn 2 asks
     * for /me after the login answer (recorded at 1000+50 ms < 1060 ms);
     * conn 3 pipelines three requests behind a slow one, one a HEAD */
    add(&t, 1, 1000000, 1050000, "POST", "/slow30");
    add(&t, 1, 1070000, 1075000, "GET", "/a");
    add(&t, 2, 1060000, 1065000, "GET", "/me");
    add(&t, 3, 1080000, 1090000, "GET", "/slow50");
    add(&t, 3, 1080001, 1090001, "HEAD", "/p2");
    add(&t, 3, 1080002, 1090002, "GET", "/continue");
    add(&t, 1, 1100000, 1110000, "GET", "/chunked");
    assert_int_equal(run(&t, sv->port, 0, NULL, &p, &g, &st), REPRO_OK);

    assert_int_equal(g.n, 7);
    assert_int_equal(st.answered, 7);
    assert_int_equal(st.sent, 7);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(result_of(&g, p, i, NULL)->error, REPRO_REPLAY_OK);
    result_of(&g, p, 1, &body);
    assert_string_equal(body, "{\"path\":\"/a\"}");
    assert_int_equal(result_of(&g, p, 4, &body)->status, 200);
    assert_string_equal(body, ""); /* HEAD: no body although Content-Length */
    assert_int_equal(result_of(&g, p, 5, &body)->status, 200); /* after the 100 */
    assert_string_equal(body, "{\"path\":\"/continue\"}");
    assert_int_equal(result_of(&g, p, 6, &body)->status, 200);
    /* one server connection per recorded connection */
    assert_int_equal(accepted(sv), 3);
    assert_int_equal(st.connections_opened, 3);
    assert_int_equal(st.reopened, 0);
    struct logent login = logged_copy(sv, "/slow30"), me = logged_copy(sv, "/me"),
                  a = logged_copy(sv, "/a"), p1 = logged_copy(sv, "/slow50"), p2 = logged_copy(sv, "/p2");
    assert_int_equal(a.conn, login.conn);
    assert_int_not_equal(me.conn, login.conn);
    assert_int_equal(p1.conn, p2.conn);
    /* /me waited for the login answer although speed is max */
    assert_true(me.in_ns >= login.out_ns);
    /* pipelined as recorded: /p2 and /continue were written while /slow50
     * (50 ms) was unanswered, on its connection */
    assert_true(st.pipelined >= 2);
    assert_true(p2.in_ns >= p1.out_ns); /* the server reads them in order */
    repro_replay_plan_free(p);
    server_stop(sv);
}

/* At speed max the reader sends what an answer lets go (drain) instead of
 * waking the sender: the causal order must hold all the same. 8 connections,
 * 12 rounds; every request of round i was recorded after every answer of
 * round i-1, on all connections. Run with the reader sending and with only
 * the sender (no_inline_send): the same answers, the same order. */
static void test_inline_send(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        struct server *sv = server_start();
        static struct trace t;
        static struct got g;
        struct repro_replay_plan *p;
        struct repro_replay_stats st;
        struct repro_replay_opts o = {.no_inline_send = mode};
        enum { CONNS = 8, ROUNDS = 12 };

        memset(&t, 0, sizeof t);
        for (int i = 0; i < ROUNDS; i++)
            for (int c = 0; c < CONNS; c++) {
                char path[16];
                snprintf(path, sizeof path, "/r%dc%d", i, c);
                add(&t, c, 1000 * i + 10 * c, 1000 * i + 10 * c + 5, "GET", path);
            }
        assert_int_equal(run(&t, sv->port, 0, &o, &p, &g, &st), REPRO_OK);
        assert_int_equal(st.answered, CONNS * ROUNDS);
        assert_int_equal(st.sent, CONNS * ROUNDS);
        for (size_t k = 0; k < g.n; k++)
            assert_int_equal(g.r[k].error, REPRO_REPLAY_OK);
        assert_int_equal(st.connections_opened, CONNS);
        if (mode == 0)
            assert_true(st.sent_inline > 0);
        else
            assert_int_equal(st.sent_inline, 0);
        /* the server saw no request of round i before it had answered
         * every request of round i-1 */
        for (int i = 1; i < ROUNDS; i++)
            for (int c = 0; c < CONNS; c++) {
                char path[16];
                snprintf(path, sizeof path, "/r%dc%d", i, c);
                struct logent now = logged_copy(sv, path);
                for (int d = 0; d < CONNS; d++) {
                    snprintf(path, sizeof path, "/r%dc%d", i - 1, d);
                    assert_true(now.in_ns >= logged_copy(sv, path).out_ns);
                }
            }
        repro_replay_plan_free(p);
        server_stop(sv);
    }
}

/* A real-time sender that falls 10 ms behind (here: a request waits for an
 * answer the target gives 60 ms late) runs as a normal thread until a
 * deadline is ahead again, so that it cannot starve the reader and a
 * target on the same host while it catches up. Needs SCHED_FIFO (root or
 * CAP_SYS_NICE): skipped without it. */
static void test_realtime_catch_up(void **state)
{
    (void)state;
    struct server *sv = server_start();
    static struct trace t;
    static struct got g;
    struct repro_replay_plan *p;
    struct repro_replay_stats st;
    struct repro_replay_opts o = {.sched_fifo = 1};

    memset(&t, 0, sizeof t);
    add(&t, 1, 0, 1000, "GET", "/slow60");  /* answered after 1 ms when recorded */
    add(&t, 2, 2000, 3000, "GET", "/after"); /* waits for it: ~58 ms late */
    add(&t, 3, 200000, 201000, "GET", "/later"); /* on time again */
    assert_int_equal(run(&t, sv->port, 1.0, &o, &p, &g, &st), REPRO_OK);
    assert_int_equal(st.answered, 3);
    if (!st.sender_fifo) {
        repro_replay_plan_free(p);
        server_stop(sv);
        tu_skip("SCHED_FIFO is not permitted here (needs root or CAP_SYS_NICE)");
    }
    assert_int_equal(st.sender_rt_dropped, 1);
    repro_replay_plan_free(p);
    server_stop(sv);
}

/* ---- stress: the reader sending (drain) beside the sender --------------- */

/* What these tests check at every request, whichever thread sends it: the
 * prepare hook runs right before the write, so it sees what the target is
 * about to get. Two prepares at once mean two threads writing at once; a
 * prepare before the callbacks of every answer recorded earlier means a
 * request out of causal order; a second prepare of a request in one loop
 * means it went twice. Each send is rewritten to carry its loop ("~L" at
 * the end of the path), so the server's log tells every send apart. */

#define SLOOPS 3

struct checker {
    pthread_mutex_t m;
    const struct trace *t;
    const struct repro_replay_plan *plan;
    struct got *g;
    int n_prep[256], n_res[256];
    int active, overlap, causal, twice, bad_loop, unprepared;
    int slow;       /* 1: every prepare sleeps a little (wider windows, not timing) */
    int fail_every; /* > 0: prepare fails for inputs i % fail_every == fail_every - 1 */
    int stop_at;    /* > 0: the callback stops the run at this result */
    int loops;      /* of the run, at most SLOOPS */
    int n_results;
    char buf[256][SLOOPS][160];
    pthread_t who[256][SLOOPS]; /* the thread that prepared (so wrote) it */
};

static void checker_start(struct checker *k, int slow, int fail_every, int stop_at)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->m, NULL);
    k->slow = slow;
    k->fail_every = fail_every;
    k->stop_at = stop_at;
}

static int chk_prepare(void *ctx, size_t i, struct repro_slice *bytes)
{
    struct checker *k = ctx;
    int rc = 0;

    pthread_mutex_lock(&k->m);
    if (k->active++ > 0)
        k->overlap++;
    int l = k->n_prep[i]++;
    if (l < SLOOPS)
        k->who[i][l] = pthread_self();
    for (size_t j = 0; j < k->t->n; j++)
        if (k->t->r[j].answered_us >= 0 && k->t->r[j].answered_us < k->t->r[i].sent_us &&
            k->n_res[j] < l + 1)
            k->causal++;
    pthread_mutex_unlock(&k->m);
    if (k->slow) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    if (l >= k->loops) {
        pthread_mutex_lock(&k->m);
        k->twice++;
        pthread_mutex_unlock(&k->m);
    } else if (k->fail_every && (int)(i % (size_t)k->fail_every) == k->fail_every - 1) {
        rc = -1;
    } else {
        /* "GET /x~i3 HTTP/1.1..." becomes "GET /x~i3~L HTTP/1.1..." */
        const char *txt = k->t->text[i], *sp = strchr(strchr(txt, ' ') + 1, ' ');
        snprintf(k->buf[i][l], sizeof k->buf[i][l], "%.*s~%d%s", (int)(sp - txt), txt, l, sp);
        *bytes = (struct repro_slice){(const uint8_t *)k->buf[i][l], strlen(k->buf[i][l])};
    }
    pthread_mutex_lock(&k->m);
    k->active--;
    pthread_mutex_unlock(&k->m);
    return rc;
}

static int chk_result(void *ctx, const struct repro_replay_result *r)
{
    struct checker *k = ctx;
    size_t i = k->plan->steps[r->step].req;

    pthread_mutex_lock(&k->m);
    if ((unsigned)k->n_res[i]++ != r->loop)
        k->bad_loop++;
    if (r->error == REPRO_REPLAY_OK && k->n_prep[i] < (int)r->loop + 1)
        k->unprepared++;
    int n = ++k->n_results;
    pthread_mutex_unlock(&k->m);
    collect(k->g, r);
    return k->stop_at && n == k->stop_at ? 77 : 0;
}

static int run_checked(struct trace *t, int port, const struct repro_replay_opts *extra,
                       struct checker *k, struct got *g, struct repro_replay_plan **plan,
                       struct repro_replay_stats *st)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct repro_replay_opts o = *extra;
    struct repro_error err = {0};
    o.target = (const struct sockaddr *)&a;
    o.target_len = sizeof a;
    o.speed = 0;
    if (!o.loops)
        o.loops = SLOOPS;
    assert_true(o.loops <= SLOOPS);
    k->loops = (int)o.loops;
    if (!o.timeout_ms)
        o.timeout_ms = 2000;
    o.prepare = chk_prepare;
    o.prepare_ctx = k;
    assert_int_equal(repro_replay_plan_build(t->r, t->n, plan, &err), REPRO_OK);
    memset(g, 0, sizeof *g);
    k->t = t;
    k->plan = *plan;
    k->g = g;
    return repro_replay_run(*plan, t->q, &o, chk_result, k, st, &err);
}

/* The input before i on its recorded connection (-1: none). */
static int prev_on_conn(const struct trace *t, size_t i)
{
    for (size_t j = i; j-- > 0;)
        if (t->r[j].conn_id == t->r[i].conn_id)
            return (int)j;
    return -1;
}

/* The engine's own invariants, whatever the target did: nothing written by
 * two threads at once, in causal order, once per loop at most; a request
 * recorded pipelined written by the thread that wrote the one before it
 * (back to back, as recorded: not one by the reader and the next by the
 * sender after a wakeup, by when the first may have been answered). */
static void check_engine(struct checker *k, int complete)
{
    for (size_t x = 0; x < k->plan->n_steps; x++) {
        size_t i = k->plan->steps[x].req;
        int j = prev_on_conn(k->t, i);
        for (int l = 0; k->plan->steps[x].pipelined && l < k->loops; l++)
            if (l < k->n_prep[i] && l < k->n_prep[j])
                assert_true(pthread_equal(k->who[i][l], k->who[j][l]));
    }
    assert_int_equal(k->overlap, 0);
    assert_int_equal(k->causal, 0);
    assert_int_equal(k->twice, 0);
    assert_int_equal(k->bad_loop, 0);
    assert_int_equal(k->unprepared, 0);
    for (size_t i = 0; complete && i < k->t->n; i++) {
        assert_int_equal(k->n_res[i], k->loops);
        assert_true(k->n_prep[i] <= k->loops);
    }
    pthread_mutex_destroy(&k->m);
}

/* A request "/kind~i<input>", as the stress tests name them. */
static void add_i(struct trace *t, int64_t conn, int64_t sent_us, int64_t answered_us,
                  const char *method, const char *kind)
{
    char path[40];
    snprintf(path, sizeof path, "%s~i%zu", kind, t->n);
    add(t, conn, sent_us, answered_us, method, path);
}

/* What the server saw, per input and loop: how often, when. */
static struct seen {
    int n[256][SLOOPS];
    int64_t in[256][SLOOPS], out[256][SLOOPS];
} seen;

struct ev {
    int64_t at;
    int d; /* -1 an end, +1 a start: an end first at a tie */
};

static int by_at(const void *a, const void *b)
{
    const struct ev *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->d - y->d;
}

/* Checks the server's log: every send at most once (exactly once when
 * strict), after the answers recorded before it (at the server: its
 * arrival after their answers were written); one server connection
 * carries one recorded connection's requests of one loop, in their order;
 * and with cap, at most cap server connections busy at once (a connection
 * is busy from its first arrival to its last answer, inside the engine's
 * open-to-close, so the engine's cap bounds it). */
static void check_server(struct server *sv, const struct trace *t, int loops, int strict,
                         unsigned cap)
{
    struct seen *sn = &seen;
    static int owner[MAXC], last_i[MAXC], last_l[MAXC];
    static int64_t first_in[MAXC], last_out[MAXC];
    int n_srv = 0;

    memset(sn, 0, sizeof *sn);
    for (int c = 0; c < MAXC; c++)
        owner[c] = -1, first_in[c] = INT64_MAX, last_out[c] = 0;
    pthread_mutex_lock(&sv->m);
    for (int e = 0; e < sv->n_log; e++) {
        const struct logent *x = &sv->log[e];
        const char *p = strstr(x->path, "~i");
        int i = -1, l = -1;
        if (!p || sscanf(p, "~i%d~%d", &i, &l) != 2 || i < 0 || (size_t)i >= t->n || l < 0 ||
            l >= loops || x->conn < 0 || x->conn >= MAXC)
            fail_msg("the server saw an unexpected request %s", x->path);
        sn->n[i][l]++;
        sn->in[i][l] = x->in_ns;
        sn->out[i][l] = x->out_ns;
        int c = x->conn;
        if (c >= n_srv)
            n_srv = c + 1;
        if (owner[c] < 0) {
            owner[c] = (int)t->r[i].conn_id;
        } else {
            assert_int_equal(owner[c], (int)t->r[i].conn_id); /* no mixing */
            assert_int_equal(last_l[c], l);                   /* nor loops */
            assert_true(i > last_i[c]);                       /* in seq order */
        }
        last_i[c] = i;
        last_l[c] = l;
        if (x->in_ns < first_in[c])
            first_in[c] = x->in_ns;
        if (x->out_ns > last_out[c])
            last_out[c] = x->out_ns;
    }
    pthread_mutex_unlock(&sv->m);
    for (size_t i = 0; i < t->n; i++)
        for (int l = 0; l < loops; l++) {
            if (strict)
                assert_int_equal(sn->n[i][l], 1);
            else
                assert_true(sn->n[i][l] <= 1);
            for (size_t j = 0; sn->n[i][l] && j < t->n; j++)
                if (t->r[j].answered_us >= 0 && t->r[j].answered_us < t->r[i].sent_us &&
                    sn->n[j][l] && sn->out[j][l] > 0)
                    assert_true(sn->in[i][l] >= sn->out[j][l]);
        }
    if (!cap)
        return;
    static struct ev ev[2 * MAXC];
    size_t n_ev = 0;
    for (int c = 0; c < n_srv; c++) {
        if (owner[c] < 0)
            continue;
        assert_true(last_out[c] > 0); /* every request there answered */
        ev[n_ev++] = (struct ev){first_in[c], 1};
        ev[n_ev++] = (struct ev){last_out[c], -1};
    }
    qsort(ev, n_ev, sizeof *ev, by_at);
    int busy = 0, most = 0;
    for (size_t e = 0; e < n_ev; e++) {
        busy += ev[e].d;
        most = busy > most ? busy : most;
    }
    assert_true(most <= (int)cap);
}

/* Ten rounds at speed max: every request of round r was recorded after
 * every answer of round r-1. Connections 0-2 carry one each round (some
 * HEAD, some answered after a 100, some chunked), 3-5 take turns on odd
 * rounds, 6 pipelines two every third round. */
static void build_rounds(struct trace *t)
{
    static const char *const kinds[] = {"/x", "/continue", "/x", "/chunked", "/x"};
    memset(t, 0, sizeof *t);
    for (int r = 0; r < 10; r++) {
        int64_t b = 1000 * r;
        for (int c = 0; c < 3; c++) {
            const char *kind = kinds[(r + c) % 5];
            add_i(t, c, b + c, b + 500 + c, kind == kinds[0] && r % 2 ? "HEAD" : "GET", kind);
        }
        if (r % 2)
            add_i(t, 3 + r % 3, b + 5, b + 505, "GET", "/x");
        if (r % 3 == 0) {
            add_i(t, 6, b + 10, b + 600, "GET", "/x");
            add_i(t, 6, b + 11, b + 601, "GET", "/chunked"); /* before the answer above */
        }
    }
}

/* The rounds, three loops, with the reader sending (without a connection
 * cap and with a cap of 3, which makes the sender retire and reopen
 * connections while the reader sends on others; with a fast prepare and
 * with one that sleeps) and with only the sender (no_inline_send): every
 * send once, one thread at a time, in causal order, on its own recorded
 * connection, under the cap. */
static void test_inline_stress_rounds(void **state)
{
    (void)state;
    static struct trace t;
    static struct got g;
    static struct checker k;
    static const struct {
        int no_inline, slow;
        unsigned cap;
    } modes[] = {{0, 0, 0}, {0, 1, 0}, {0, 0, 3}, {0, 1, 3}, {1, 0, 3}};

    build_rounds(&t);
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        struct server *sv = server_start();
        struct repro_replay_plan *p;
        struct repro_replay_stats st;
        struct repro_replay_opts o = {.no_inline_send = modes[m].no_inline,
                                      .connections = modes[m].cap};
        checker_start(&k, modes[m].slow, 0, 0);
        assert_int_equal(run_checked(&t, sv->port, &o, &k, &g, &p, &st), REPRO_OK);
        check_engine(&k, 1);
        assert_int_equal(st.sent, t.n * SLOOPS);
        assert_int_equal(st.answered, t.n * SLOOPS);
        for (size_t x = 0; x < g.n; x++)
            assert_int_equal(g.r[x].error, REPRO_REPLAY_OK);
        if (modes[m].no_inline)
            assert_int_equal(st.sent_inline, 0);
        if (!modes[m].cap) {
            assert_int_equal(st.connections_opened, 7 * SLOOPS); /* each once a loop */
            assert_int_equal(accepted(sv), 7 * SLOOPS);
            if (!modes[m].no_inline)
                assert_true(st.sent_inline > 0);
        }
        check_server(sv, &t, SLOOPS, 1, modes[m].cap);
        repro_replay_plan_free(p);
        server_stop(sv);
    }
}

/* A connection cap of 2 under five connections that all take part in every
 * round: the sender retires an idle connection for nearly every request,
 * while answers (and the reader's sends) go on. A retired connection is
 * shut down before the reader lets it go: no request may be written into
 * it then (it fails as WRITE, EPIPE), and no second one retired while the
 * first is going. */
static void test_inline_stress_cap(void **state)
{
    (void)state;
    static struct trace t;
    static struct got g;
    static struct checker k;

    memset(&t, 0, sizeof t);
    for (int r = 0; r < 12; r++)
        for (int c = 0; c < 5; c++)
            add_i(&t, c, 1000 * r + c, 1000 * r + 500 + c, "GET", "/x");
    for (int m = 0; m < 2; m++) {
        struct server *sv = server_start();
        struct repro_replay_plan *p;
        struct repro_replay_stats st;
        struct repro_replay_opts o = {.no_inline_send = m, .connections = 2};
        checker_start(&k, 0, 0, 0);
        assert_int_equal(run_checked(&t, sv->port, &o, &k, &g, &p, &st), REPRO_OK);
        check_engine(&k, 1);
        for (size_t x = 0; x < g.n; x++)
            assert_int_equal(g.r[x].error, REPRO_REPLAY_OK);
        assert_int_equal(st.answered, t.n * SLOOPS);
        check_server(sv, &t, SLOOPS, 1, 2);
        repro_replay_plan_free(p);
        server_stop(sv);
    }
}

/* Eight rounds on six connections, every request after every answer of the
 * round before; kind(r, c) picks what the target does with some of them. */
static void build_closing(struct trace *t, const char *(*kind)(int r, int c))
{
    memset(t, 0, sizeof *t);
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 6; c++)
            add_i(t, c, 1000 * r + c, 1000 * r + 500 + c, "GET", kind(r, c));
}

static const char *kind_close(int r, int c)
{
    return (r * 6 + c) % 5 == 2 ? "/close" : "/x";
}

static const char *kind_rude(int r, int c)
{
    static const char *const k[] = {"/x", "/quiet", "/x", "/reset", "/x", "/garbage", "/x"};
    return k[(r * 6 + c) % 7];
}

static int is_kind(const struct trace *t, int i, const char *kind)
{
    char want[24];
    snprintf(want, sizeof want, " %s~", kind);
    return i >= 0 && strstr(t->text[i], want) != NULL;
}

/* The target closes connections early at speed max, three loops: with
 * Connection: close (the engine lets the connection go before the answer
 * lets the next request go: every request answered, each close reopened),
 * then without a word, resetting, or answering garbage (requests may then
 * fail, but each is sent at most once, by one thread at a time, in causal
 * order, and has exactly one result). */
static void test_inline_stress_reopen(void **state)
{
    (void)state;
    static struct trace t;
    static struct got g;
    static struct checker k;
    struct repro_replay_plan *p;
    struct repro_replay_stats st;
    struct repro_replay_opts o = {.timeout_ms = 5000};
    struct server *sv = server_start();

    build_closing(&t, kind_close);
    uint64_t reopens = 0;
    for (size_t i = 0; i < t.n; i++)
        reopens += is_kind(&t, prev_on_conn(&t, i), "/close");
    checker_start(&k, 0, 0, 0);
    assert_int_equal(run_checked(&t, sv->port, &o, &k, &g, &p, &st), REPRO_OK);
    check_engine(&k, 1);
    assert_int_equal(st.answered, t.n * SLOOPS);
    assert_int_equal(st.reopened, reopens * SLOOPS);
    for (size_t x = 0; x < g.n; x++) {
        size_t i = p->steps[g.r[x].step].req;
        assert_int_equal(g.r[x].error, REPRO_REPLAY_OK);
        int after_close = 0; /* the rest of the connection goes on the reopened one */
        for (int j = prev_on_conn(&t, i); j >= 0; j = prev_on_conn(&t, (size_t)j))
            after_close |= is_kind(&t, j, "/close");
        assert_int_equal(g.r[x].reopened, after_close);
    }
    check_server(sv, &t, SLOOPS, 1, 0);
    repro_replay_plan_free(p);
    server_stop(sv);

    sv = server_start();
    build_closing(&t, kind_rude);
    checker_start(&k, 0, 0, 0);
    assert_int_equal(run_checked(&t, sv->port, &o, &k, &g, &p, &st), REPRO_OK);
    check_engine(&k, 1);
    check_server(sv, &t, SLOOPS, 0, 0);
    for (size_t x = 0; x < g.n; x++) {
        size_t i = p->steps[g.r[x].step].req;
        enum repro_replay_errkind e = g.r[x].error;
        if (is_kind(&t, (int)i, "/reset"))
            assert_true(e == REPRO_REPLAY_RESET || e == REPRO_REPLAY_CLOSED);
        else if (is_kind(&t, (int)i, "/garbage"))
            assert_int_equal(e, REPRO_REPLAY_MALFORMED);
        else if (is_kind(&t, prev_on_conn(&t, i), "/quiet")) /* may go into the closing one */
            assert_true(e == REPRO_REPLAY_OK || e == REPRO_REPLAY_CLOSED ||
                        e == REPRO_REPLAY_RESET);
        else
            assert_int_equal(e, REPRO_REPLAY_OK);
        if (e == REPRO_REPLAY_OK)
            assert_int_equal(seen.n[i][g.r[x].loop], 1);
    }
    repro_replay_plan_free(p);
    server_stop(sv);
}

/* prepare failing on some requests (on whichever thread sends them): just
 * those fail, as WRITE, unsent; their connection is reopened for the
 * next. A callback stopping the run: the run ends with its code. A request
 * that times out: its answer's dependants go when the reader gives up on
 * it (from the timeout check, which may send them itself). */
static void test_inline_stress_failures(void **state)
{
    (void)state;
    static struct trace t;
    static struct got g;
    static struct checker k;
    struct repro_replay_plan *p;
    struct repro_replay_stats st;
    struct repro_replay_opts o = {0};
    struct server *sv = server_start();

    build_closing(&t, kind_close);
    for (size_t i = 0; i < t.n; i++) /* no closes: only prepare fails */
        if (is_kind(&t, (int)i, "/close"))
            memcpy(strchr(t.text[i], '/') + 1, "xxxxx", 5);
    checker_start(&k, 0, 7, 0);
    assert_int_equal(run_checked(&t, sv->port, &o, &k, &g, &p, &st), REPRO_OK);
    check_engine(&k, 1);
    check_server(sv, &t, SLOOPS, 0, 0);
    for (size_t x = 0; x < g.n; x++) {
        size_t i = p->steps[g.r[x].step].req;
        assert_int_equal(g.r[x].error, i % 7 == 6 ? REPRO_REPLAY_WRITE : REPRO_REPLAY_OK);
        assert_int_equal(seen.n[i][g.r[x].loop], i % 7 == 6 ? 0 : 1);
    }
    assert_int_equal(st.errors[REPRO_REPLAY_WRITE], t.n / 7 * SLOOPS);
    repro_replay_plan_free(p);
    server_stop(sv);

    sv = server_start();

    build_rounds(&t);
    checker_start(&k, 0, 0, 40);
    assert_int_equal(run_checked(&t, sv->port, &o, &k, &g, &p, &st), 77);
    check_engine(&k, 0);
    assert_true(k.n_results >= 40);
    assert_true(st.sent < t.n * SLOOPS);
    repro_replay_plan_free(p);
    server_stop(sv);

    sv = server_start();

    memset(&t, 0, sizeof t);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            add_i(&t, c, 1000 * r + c, 1000 * r + 500 + c, "GET", r == 1 && c == 2 ? "/hang" : "/x");
    o = (struct repro_replay_opts){.timeout_ms = 200, .loops = 1};
    checker_start(&k, 0, 0, 0);
    assert_int_equal(run_checked(&t, sv->port, &o, &k, &g, &p, &st), REPRO_OK);
    check_engine(&k, 1);
    check_server(sv, &t, 1, 1, 0);
    for (size_t x = 0; x < g.n; x++)
        assert_int_equal(g.r[x].error, is_kind(&t, (int)p->steps[g.r[x].step].req, "/hang")
                                           ? REPRO_REPLAY_TIMEOUT
                                           : REPRO_REPLAY_OK);
    repro_replay_plan_free(p);
    server_stop(sv);
}

static void test_timing(void **state)
{
    (void)state;
    struct server *sv = server_start();
    static struct trace t;
    static struct got g;
    struct repro_replay_plan *p;
    struct repro_replay_stats st;

    memset(&t, 0, sizeof t);
    /* 40 requests 5 ms apart on 4 connections, replayed at 2x: 2.5 ms apart */
    for (int i = 0; i < 40; i++) {
        char path[16];
        snprintf(path, sizeof path, "/t%d", i);
        add(&t, i % 4, 5000 * i, 5000 * i + 100, "GET", path);
    }
    static struct repro_replay_progress prog;
    struct repro_replay_opts po = {.progress = &prog};
    memset(&prog, 0, sizeof prog);
    assert_int_equal(run(&t, sv->port, 2.0, &po, &p, &g, &st), REPRO_OK);
    assert_int_equal(st.answered, 40);
    /* the live counts agree with the run's: every send, and the largest
     * schedule error in the top bucket (12.5% wide) */
    assert_int_equal(atomic_load(&prog.sent), 40);
    int64_t top = repro_replay_progress_sched_ns(&prog, 1.0);
    assert_true(top >= st.sched_max_ns && top <= st.sched_max_ns + st.sched_max_ns / 8 + 1);
    assert_true(repro_replay_progress_sched_ns(&prog, 0.5) <= top);
    for (size_t k = 0; k < g.n; k++) {
        const struct repro_replay_result *r = &g.r[k];
        int64_t want = p->steps[r->step].at_us * 1000 / 2;
        assert_int_equal(r->intended_ns - g.r[0].intended_ns + p->steps[g.r[0].step].at_us * 500,
                         want);
        assert_true(r->sent_ns >= r->intended_ns);
    }
    /* the run lasted at least as long as the trace at 2x (97.5 ms from the
     * first intended send): no request went out early. That lateness does
     * not accumulate is the exact intended times above (each from the
     * run's start, never from the previous send), not a wall-clock bound */
    int64_t start = INT64_MAX;
    for (size_t k = 0; k < g.n; k++)
        start = g.r[k].intended_ns < start ? g.r[k].intended_ns : start;
    assert_true(st.last_done_ns - start >= 97500000);
    assert_true(st.sched_p50_ns >= 0);
    assert_true(st.sched_max_ns >= st.sched_p99_ns && st.sched_p99_ns >= st.sched_p50_ns);
    repro_replay_plan_free(p);
    server_stop(sv);
}

static void test_errors(void **state)
{
    (void)state;
    struct server *sv = server_start();
    static struct trace t;
    static struct got g;
    struct repro_replay_plan *p;
    struct repro_replay_stats st;
    struct repro_replay_opts o = {.timeout_ms = 300};
    const char *body;

    memset(&t, 0, sizeof t);
    add(&t, 1, 0, 10, "GET", "/close");   /* answered, then closed by the target */
    add(&t, 1, 20, 30, "GET", "/after");  /* reopened */
    add(&t, 2, 40, 50, "GET", "/reset");
    add(&t, 3, 60, 70, "GET", "/hang");
    add(&t, 4, 80, 90, "GET", "/garbage");
    add(&t, 5, 100, 110, "GET", "/fine");
    assert_int_equal(run(&t, sv->port, 0, &o, &p, &g, &st), REPRO_OK);
    assert_int_equal(g.n, 6);
    assert_int_equal(result_of(&g, p, 0, NULL)->error, REPRO_REPLAY_OK);
    assert_int_equal(result_of(&g, p, 1, &body)->error, REPRO_REPLAY_OK);
    assert_string_equal(body, "{\"path\":\"/after\"}");
    assert_true(result_of(&g, p, 1, NULL)->reopened);
    assert_int_equal(st.reopened, 1);
    enum repro_replay_errkind k = result_of(&g, p, 2, NULL)->error;
    assert_true(k == REPRO_REPLAY_RESET || k == REPRO_REPLAY_CLOSED);
    assert_int_equal(result_of(&g, p, 3, NULL)->error, REPRO_REPLAY_TIMEOUT);
    assert_true(result_of(&g, p, 3, NULL)->done_ns - result_of(&g, p, 3, NULL)->sent_ns >=
                300000000);
    assert_int_equal(result_of(&g, p, 4, NULL)->error, REPRO_REPLAY_MALFORMED);
    assert_int_equal(result_of(&g, p, 5, NULL)->error, REPRO_REPLAY_OK);
    assert_int_equal(st.errors[REPRO_REPLAY_TIMEOUT], 1);
    assert_string_equal(repro_replay_errkind_name(REPRO_REPLAY_TIMEOUT), "timeout");
    repro_replay_plan_free(p);

    /* nobody listens: every request is refused, the run completes */
    int port = sv->port;
    server_stop(sv);
    assert_int_equal(run(&t, port, 0, &o, &p, &g, &st), REPRO_OK);
    assert_int_equal(g.n, 6);
    assert_int_equal(st.errors[REPRO_REPLAY_REFUSED], 6);
    assert_int_equal(result_of(&g, p, 0, NULL)->sent_ns, -1);
    repro_replay_plan_free(p);
}

static void test_caps_and_loops(void **state)
{
    (void)state;
    struct server *sv = server_start();
    static struct trace t;
    static struct got g;
    struct repro_replay_plan *p;
    struct repro_replay_stats st;
    struct repro_replay_opts o = {.connections = 2, .loops = 3};

    memset(&t, 0, sizeof t);
    /* 6 connections open at once, two requests each */
    for (int c = 0; c < 6; c++) {
        char path[16];
        snprintf(path, sizeof path, "/c%da", c);
        add(&t, c, c, 1000 + c, "GET", path);
    }
    for (int c = 0; c < 6; c++) {
        char path[16];
        snprintf(path, sizeof path, "/c%db", c);
        add(&t, c, 2000 + c, 3000 + c, "GET", path);
    }
    assert_int_equal(run(&t, sv->port, 0, &o, &p, &g, &st), REPRO_OK);
    assert_int_equal(g.n, 36);
    assert_int_equal(st.answered, 36);
    for (size_t k = 0; k < g.n; k++)
        assert_int_equal(g.r[k].error, REPRO_REPLAY_OK);
    assert_int_equal(g.r[35].loop, 2);
    repro_replay_plan_free(p);
    server_stop(sv);
}

/* ---- whole runs (replay/run.c) ------------------------------------------ */

struct outcomes {
    struct repro_replay_report *rep; /* optional */
    const struct repro_replay_input *in;
    struct repro_replay_outcome o[64];
    struct repro_diffs d[64];
    char sub_kind[64][16];
    size_t n;
};

static int keep_outcome(void *ctx, const struct repro_replay_outcome *o)
{
    struct outcomes *s = ctx;
    if (s->rep)
        assert_int_equal(repro_replay_report_add(s->rep, o, &s->in[o->input]), REPRO_OK);
    if (s->n < 64) {
        s->o[s->n] = *o;
        s->d[s->n] = (struct repro_diffs){.n = o->diffs->n};
        s->o[s->n].diffs = NULL;
        s->o[s->n].result = NULL;
        s->o[s->n].subs = NULL;
        snprintf(s->sub_kind[s->n], sizeof s->sub_kind[s->n], "%s", o->n_subs ? o->subs[0].kind : "");
        s->n++;
    }
    return 0;
}

static const struct repro_replay_outcome *outcome(const struct outcomes *s, size_t input,
                                                  size_t *at)
{
    for (size_t k = 0; k < s->n; k++)
        if (s->o[k].input == input && s->o[k].loop == 0) {
            if (at)
                *at = k;
            return &s->o[k];
        }
    fail_msg("no outcome for input %zu", input);
    return NULL;
}

static void input(struct repro_replay_input *in, struct trace *t, size_t i, const char *response)
{
    in[i] = (struct repro_replay_input){.exchange_id = t->r[i].exchange_id, .conn_id = t->r[i].conn_id,
                                        .client_key = 1, .seq = t->r[i].seq,
                                        .sent_us = t->r[i].sent_us,
                                        .answered_us = response ? t->r[i].answered_us : -1,
                                        .conn_opened_us = -1, .conn_closed_us = -1,
                                        .request = t->q[i]};
    if (response)
        in[i].response = (struct repro_slice){(const uint8_t *)response, strlen(response)};
}

/* The JSON report read back with jansson, the JUnit file with Python's XML
 * parser (independent parsers). */
static void check_reports(const char *json, const char *junit)
{
    json_error_t je;
    json_t *j = json_load_file(json, 0, &je);
    if (!j)
        fail_msg("report %s does not parse: %s (line %d)", json, je.text, je.line);
    assert_int_equal(json_integer_value(json_object_get(j, "run_id")), 7);
    assert_string_equal(json_string_value(json_object_get(j, "speed")), "max");
    assert_int_equal(json_integer_value(json_object_get(j, "sent")), 8);
    assert_int_equal(json_integer_value(json_object_get(j, "mismatched")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "timeouts")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "unanswered")), 1);
    assert_non_null(json_object_get(json_object_get(j, "schedule_error_us"), "p99"));
    json_t *res = json_object_get(j, "results");
    assert_int_equal(json_array_size(res), 8);
    int seen_mismatch = 0;
    for (size_t i = 0; i < json_array_size(res); i++) {
        json_t *x = json_array_get(res, i);
        const char *v = json_string_value(json_object_get(x, "verdict"));
        assert_non_null(v);
        if (strcmp(v, "mismatch") == 0) {
            json_t *d = json_array_get(json_object_get(x, "differences"), 0);
            assert_string_equal(json_string_value(json_object_get(d, "where")), "$.v");
            assert_int_equal(json_integer_value(json_object_get(x, "exchange_id")), 8);
            seen_mismatch = 1;
        }
    }
    assert_true(seen_mismatch);
    assert_true(json_array_size(json_object_get(j, "noisy_fields")) >= 1);
    json_decref(j);

    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sys, xml.etree.ElementTree as E; s = E.parse(sys.argv[1]).getroot()[0]; "
             "c = s.findall('testcase'); "
             "assert s.get('tests') == '8' and len(c) == 8, s.attrib; "
             "assert s.get('failures') == '1' and len(s.findall('testcase/failure')) == 1; "
             "assert len(s.findall('testcase/skipped')) == 1; "
             "assert '$.v' in s.find('testcase/failure').text\" %s",
             junit);
    assert_int_equal(system(cmd), 0);
}

static void test_run_verdicts(void **state)
{
    (void)state;
    struct server *sv = server_start(), *base = server_start();
    static struct trace t;
    static struct outcomes got;
    struct repro_replay_input in[8];
    struct repro_replay_summary sum;
    struct repro_error err = {0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sv->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in b = a;
    b.sin_port = htons((uint16_t)base->port);

    memset(&t, 0, sizeof t);
    add(&t, 1, 0, 10, "GET", "/same");
    add(&t, 1, 20, 30, "GET", "/changed");
    add(&t, 2, 40, 50, "GET", "/never");
    add(&t, 2, 60, 70, "GET", "/stamp");
    add(&t, 3, 80, 90, "GET", "/login");
    add(&t, 3, 100, 110, "GET", "/me");
    add(&t, 4, 120, 130, "GET", "/hang");
    add(&t, 4, 140, 150, "GET", "/variant");
    snprintf(t.text[5], sizeof t.text[5], "GET /me HTTP/1.1\r\nHost: t\r\nCookie: [REDACTED]\r\n\r\n");
    t.q[5] = (struct repro_slice){(const uint8_t *)t.text[5], strlen(t.text[5])};
    input(in, &t, 0, "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"path\":\"/same\"}");
    input(in, &t, 1, "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"path\":\"/other\"}");
    input(in, &t, 2, NULL);
    input(in, &t, 3, "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n{\"path\":\"/stamp\",\"t\":999}");
    input(in, &t, 4, "HTTP/1.1 200 OK\r\nSet-Cookie: [REDACTED]\r\nContent-Length: 17\r\n\r\n{\"path\":\"/login\"}");
    input(in, &t, 5, "HTTP/1.1 200 OK\r\nContent-Length: 36\r\n\r\n{\"path\":\"/me\",\"cookie\":\"[REDACTED]\"}");
    input(in, &t, 6, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    input(in, &t, 7, "HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n{\"path\":\"/variant\",\"v\":0}");
    pthread_mutex_lock(&sv->m);
    sv->variant = 1; /* the target regressed on /variant; the baseline did not */
    pthread_mutex_unlock(&sv->m);

    struct repro_replay_run_opts o = {.engine = {.target = (const struct sockaddr *)&a,
                                                 .target_len = sizeof a, .timeout_ms = 300}};
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_replay_execute(in, 8, &o, keep_outcome, &got, &sum, &err), REPRO_OK);
    assert_int_equal(got.n, 8);
    assert_int_equal(outcome(&got, 7, NULL)->verdict, REPRO_VERDICT_MISMATCH);
    assert_int_equal(outcome(&got, 0, NULL)->verdict, REPRO_VERDICT_MATCH);
    assert_int_equal(outcome(&got, 1, NULL)->verdict, REPRO_VERDICT_MISMATCH);
    assert_int_equal(outcome(&got, 2, NULL)->verdict, REPRO_VERDICT_UNANSWERED);
    assert_int_equal(outcome(&got, 3, NULL)->verdict, REPRO_VERDICT_MISMATCH); /* $.t, no baseline */
    assert_int_equal(outcome(&got, 6, NULL)->verdict, REPRO_VERDICT_TIMEOUT);
    /* the staging session cookie went with /me, and matched the redacted record */
    size_t at;
    const struct repro_replay_outcome *me = outcome(&got, 5, &at);
    assert_int_equal(me->n_subs, 1);
    assert_string_equal(got.sub_kind[at], "cookie");
    assert_false(me->still_redacted);
    assert_int_equal(me->verdict, REPRO_VERDICT_MATCH);
    assert_int_equal(sum.verdicts[REPRO_VERDICT_MATCH], 3);
    assert_int_equal(sum.substitutions, 1);
    assert_null(sum.noise);

    /* without correlation the mark goes out, and is flagged */
    o.no_correlate = 1;
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_replay_execute(in, 8, &o, keep_outcome, &got, &sum, &err), REPRO_OK);
    assert_true(outcome(&got, 5, NULL)->still_redacted);
    assert_int_equal(sum.still_redacted, 1);

    /* with a baseline, $.t is noise: /stamp matches; so does /changed (the
     * known-good build differs from production the same way); /variant,
     * where only the target differs, does not */
    o.no_correlate = 0;
    o.baseline = (const struct sockaddr *)&b;
    o.baseline_len = sizeof b;
    memset(&got, 0, sizeof got);
    char json[256], junit[256];
    snprintf(json, sizeof json, "%s/report.json", test_tmpdir());
    snprintf(junit, sizeof junit, "%s/report.xml", test_tmpdir());
    struct repro_replay_report_meta meta = {.run_id = 7, .target = "127.0.0.1:1", .speed = 0};
    assert_int_equal(repro_replay_report_open(json, junit, &meta, &got.rep, &err), REPRO_OK);
    got.in = in;
    assert_int_equal(repro_replay_execute(in, 8, &o, keep_outcome, &got, &sum, &err), REPRO_OK);
    assert_int_equal(repro_replay_report_close(got.rep, &sum, &err), REPRO_OK);
    check_reports(json, junit);
    assert_int_equal(outcome(&got, 3, NULL)->verdict, REPRO_VERDICT_MATCH);
    assert_int_equal(outcome(&got, 3, NULL)->n_noise, 1);
    assert_int_equal(outcome(&got, 1, NULL)->verdict, REPRO_VERDICT_MATCH);
    assert_int_equal(outcome(&got, 7, NULL)->verdict, REPRO_VERDICT_MISMATCH);
    assert_non_null(sum.noise);
    const struct repro_noise_field *f;
    size_t nf = repro_noise_fields(sum.noise, &f), noisy = 0;
    for (size_t k = 0; k < nf; k++)
        if (f[k].noisy) {
            noisy++;
            assert_true(strcmp(f[k].key, "$.t") == 0 || strcmp(f[k].key, "$.path") == 0);
        }
    assert_int_equal(noisy, 2);
    repro_noise_free(sum.noise);
    server_stop(base);
    server_stop(sv);
}

/* Staging bodies in gzip are decoded before comparing, as capture decodes
 * recorded ones (stored without Content-Encoding); what cannot be decoded
 * or decodes past the cap is compared as it is, and counted. */
static void test_run_gzip(void **state)
{
    (void)state;
    struct server *sv = server_start();
    static struct trace t;
    static struct outcomes got;
    struct repro_replay_input in[3];
    struct repro_replay_summary sum;
    struct repro_error err = {0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sv->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    memset(&t, 0, sizeof t);
    add(&t, 1, 0, 10, "GET", "/gzip");
    add(&t, 1, 20, 30, "GET", "/gzipbad");
    add(&t, 1, 40, 50, "GET", "/gzipbomb");
    input(in, &t, 0, "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"path\":\"/gzip\"}");
    input(in, &t, 1, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"path\":\"/gzipbad\"}");
    input(in, &t, 2, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    struct repro_replay_run_opts o = {.engine = {.target = (const struct sockaddr *)&a,
                                                 .target_len = sizeof a, .timeout_ms = 5000},
                                      .decode_cap = 1u << 20};
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_replay_execute(in, 3, &o, keep_outcome, &got, &sum, &err), REPRO_OK);
    assert_int_equal(got.n, 3);
    assert_int_equal(outcome(&got, 0, NULL)->verdict, REPRO_VERDICT_MATCH);
    assert_int_equal(outcome(&got, 1, NULL)->verdict, REPRO_VERDICT_MISMATCH);
    assert_int_equal(outcome(&got, 2, NULL)->verdict, REPRO_VERDICT_MISMATCH);
    assert_int_equal(sum.decode_failed, 1);
    assert_int_equal(sum.decode_capped, 1);
    server_stop(sv);
}

/* More responses than the comparer's queue holds (256): a full queue holds
 * the reader back, nothing is dropped, every one is compared. */
static void test_run_many(void **state)
{
    (void)state;
    struct server *sv = server_start();
    static struct trace t;
    static struct outcomes got;
    static struct repro_replay_input in[200];
    static char resp[200][96];
    struct repro_replay_summary sum;
    struct repro_error err = {0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sv->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    memset(&t, 0, sizeof t);
    for (int i = 0; i < 200; i++) {
        char path[16], body[48];
        snprintf(path, sizeof path, "/q%d", i);
        add(&t, i % 4, 10 * i, 10 * i + 5, "GET", path);
        snprintf(body, sizeof body, "{\"path\":\"%s\"}", path);
        snprintf(resp[i], sizeof resp[i], "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        input(in, &t, (size_t)i, resp[i]);
    }
    struct repro_replay_run_opts o = {.engine = {.target = (const struct sockaddr *)&a,
                                                 .target_len = sizeof a, .timeout_ms = 10000,
                                                 .loops = 3},
                                      .compare_where = REPRO_COMPARE_THREAD};
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_replay_execute(in, 200, &o, keep_outcome, &got, &sum, &err), REPRO_OK);
    assert_int_equal(sum.target.sent, 600);
    assert_int_equal(sum.verdicts[REPRO_VERDICT_MATCH], 600);
    server_stop(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sessions_and_causality),
        cmocka_unit_test(test_inline_send),
        cmocka_unit_test(test_inline_stress_rounds),
        cmocka_unit_test(test_inline_stress_cap),
        cmocka_unit_test(test_inline_stress_reopen),
        cmocka_unit_test(test_inline_stress_failures),
        cmocka_unit_test(test_timing),
        cmocka_unit_test(test_realtime_catch_up),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_caps_and_loops),
        cmocka_unit_test(test_run_verdicts),
        cmocka_unit_test(test_run_gzip),
        cmocka_unit_test(test_run_many),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
