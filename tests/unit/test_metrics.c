/*
 * Unit tests for app/metrics: the Prometheus text writer (families, label
 * sets, escaping, values, refused names, a full buffer leaving nothing
 * behind, failed allocations), the request reader (a table of requests,
 * each split at every byte boundary, on a guard page) and the server
 * (addresses, port 0, answers, a silent client that blocks no one, stop).
 * The same server is scraped and parsed by Prometheus' own parser in
 * tests/e2e/test_metrics.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app/metrics.h"
#include "test_util.h"

static void expect_text(const struct repro_buf *b, const char *want)
{
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
}

/* ---- the writer ---------------------------------------------------------- */

static void test_families_and_label_sets(void **state)
{
    struct repro_buf b;
    const struct repro_metrics_label qf[] = {{"reason", "queue_full"}};
    const struct repro_metrics_label two[] = {{"reason", "cap"}, {"stage", "reader"}};
    (void)state;

    repro_buf_init(&b, 1 << 16);
    assert_int_equal(repro_metrics_family(&b, "repro_packets_total", REPRO_METRICS_COUNTER,
                                          "Packets read from the interface."),
                     REPRO_OK);
    assert_int_equal(repro_metrics_counter(&b, "repro_packets_total", NULL, 0, 42), REPRO_OK);
    assert_int_equal(repro_metrics_family(&b, "repro_dropped_packets_total",
                                          REPRO_METRICS_COUNTER, "Packets dropped, by reason."),
                     REPRO_OK);
    assert_int_equal(repro_metrics_counter(&b, "repro_dropped_packets_total", qf, 1, 0), REPRO_OK);
    assert_int_equal(repro_metrics_counter(&b, "repro_dropped_packets_total", two, 2,
                                           UINT64_MAX),
                     REPRO_OK);
    assert_int_equal(repro_metrics_family(&b, "repro_queue_depth", REPRO_METRICS_GAUGE, "Depth."),
                     REPRO_OK);
    assert_int_equal(repro_metrics_gauge(&b, "repro_queue_depth", NULL, 0, 0.1), REPRO_OK);
    expect_text(&b, "# HELP repro_packets_total Packets read from the interface.\n"
                    "# TYPE repro_packets_total counter\n"
                    "repro_packets_total 42\n"
                    "# HELP repro_dropped_packets_total Packets dropped, by reason.\n"
                    "# TYPE repro_dropped_packets_total counter\n"
                    "repro_dropped_packets_total{reason=\"queue_full\"} 0\n"
                    "repro_dropped_packets_total{reason=\"cap\",stage=\"reader\"} "
                    "18446744073709551615\n"
                    "# HELP repro_queue_depth Depth.\n"
                    "# TYPE repro_queue_depth gauge\n"
                    "repro_queue_depth 0.1\n");
    repro_buf_release(&b);
}

/* HELP escapes backslash and newline; label values also the double quote. */
static void test_escaping(void **state)
{
    struct repro_buf b;
    const struct repro_metrics_label l[] = {{"path", "C:\\x \"q\"\nend"}, {"empty", ""}};
    (void)state;

    repro_buf_init(&b, 4096);
    assert_int_equal(repro_metrics_family(&b, "a:b_c", REPRO_METRICS_GAUGE,
                                          "two\nlines \\ and \"quotes\""),
                     REPRO_OK);
    assert_int_equal(repro_metrics_gauge(&b, "a:b_c", l, 2, -2.5), REPRO_OK);
    expect_text(&b, "# HELP a:b_c two\\nlines \\\\ and \"quotes\"\n"
                    "# TYPE a:b_c gauge\n"
                    "a:b_c{path=\"C:\\\\x \\\"q\\\"\\nend\",empty=\"\"} -2.5\n");
    repro_buf_release(&b);
}

static void test_gauge_values(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},           {1, "1"},          {-0.25, "-0.25"},       {1e21, "1e+21"},
        {123456789.5, "123456789.5"},          {1.0 / 3, "0.33333333333333331"},
        {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {NAN, "NaN"},
    };
    struct repro_buf b;
    char want[64];
    (void)state;
    tu_failures = 0;

    repro_buf_init(&b, 4096);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        repro_buf_reset(&b);
        assert_int_equal(repro_metrics_gauge(&b, "g", NULL, 0, cases[i].v), REPRO_OK);
        snprintf(want, sizeof want, "g %s\n", cases[i].text);
        TU_CHECK(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
                 "value %g: got '%.*s', want '%s'", cases[i].v, (int)b.len, (char *)b.data, want);
    }
    assert_int_equal(tu_failures, 0);
    repro_buf_release(&b);
}

/* Bad names are refused and leave the buffer as it was. */
static void test_refused(void **state)
{
    static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "é", "a{b}"};
    static const char *const bad_labels[] = {"", "1a", "a:b", "__reserved", "a-b"};
    struct repro_buf b;
    struct repro_metrics_label l[2] = {{"reason", "x"}, {"reason", "y"}};
    (void)state;
    tu_failures = 0;

    repro_buf_init(&b, 4096);
    assert_int_equal(repro_metrics_counter(&b, "ok", NULL, 0, 1), REPRO_OK);
    size_t len = b.len;
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        TU_CHECK(repro_metrics_family(&b, bad_names[i], REPRO_METRICS_GAUGE, "h") ==
                     REPRO_E_INVAL,
                 "family name '%s'", bad_names[i]);
        TU_CHECK(repro_metrics_counter(&b, bad_names[i], NULL, 0, 1) == REPRO_E_INVAL,
                 "sample name '%s'", bad_names[i]);
    }
    for (size_t i = 0; i < sizeof bad_labels / sizeof *bad_labels; i++) {
        struct repro_metrics_label one = {bad_labels[i], "v"};
        TU_CHECK(repro_metrics_gauge(&b, "g", &one, 1, 1) == REPRO_E_INVAL, "label '%s'",
                 bad_labels[i]);
    }
    assert_int_equal(tu_failures, 0);
    assert_int_equal(repro_metrics_counter(&b, "g", l, 2, 1), REPRO_E_INVAL); /* twice */
    l[1].name = "stage";
    l[1].value = NULL;
    assert_int_equal(repro_metrics_counter(&b, "g", l, 2, 1), REPRO_E_INVAL);
    assert_int_equal(repro_metrics_counter(&b, "g", NULL, 1, 1), REPRO_E_INVAL);
    assert_int_equal(repro_metrics_family(&b, "g", REPRO_METRICS_GAUGE, NULL), REPRO_E_INVAL);
    assert_int_equal(repro_metrics_family(&b, "g", (enum repro_metrics_type)7, "h"),
                     REPRO_E_INVAL);
    assert_int_equal(b.len, len);
    repro_buf_release(&b);
}

/* A full buffer or a failed allocation gives an error and no partial
 * line, at every size and at every allocation. */
static void test_limits_and_faults(void **state)
{
    const struct repro_metrics_label l[] = {{"reason", "a \"long\" value\\"}};
    struct repro_buf full, b;
    size_t max;
    (void)state;
    tu_failures = 0;

    repro_buf_init(&full, 1 << 16);
    assert_int_equal(repro_metrics_family(&full, "m", REPRO_METRICS_COUNTER, "help\ntext"),
                     REPRO_OK);
    assert_int_equal(repro_metrics_counter(&full, "m", l, 1, 7), REPRO_OK);
    for (max = 0; max < full.len; max++) {
        int rc;
        repro_buf_init(&b, max);
        rc = repro_metrics_family(&b, "m", REPRO_METRICS_COUNTER, "help\ntext");
        if (rc == REPRO_OK)
            rc = repro_metrics_counter(&b, "m", l, 1, 7);
        TU_CHECK(rc == REPRO_E_LIMIT, "max %zu: rc %d", max, rc);
        /* whole lines only */
        TU_CHECK(b.len == 0 || b.data[b.len - 1] == '\n', "max %zu: partial line", max);
        repro_buf_release(&b);
    }
    for (unsigned long n = 1;; n++) {
        int rc;
        repro_buf_init(&b, 1 << 16);
        repro_alloc_fail_after(n);
        rc = repro_metrics_family(&b, "m", REPRO_METRICS_COUNTER, "help\ntext");
        if (rc == REPRO_OK)
            rc = repro_metrics_counter(&b, "m", l, 1, 7);
        repro_alloc_fail_after(0);
        if (rc == REPRO_OK) {
            assert_int_equal(b.len, full.len);
            repro_buf_release(&b);
            break;
        }
        assert_int_equal(rc, REPRO_E_NOMEM);
        TU_CHECK(b.len == 0 || b.data[b.len - 1] == '\n', "alloc %lu: partial line", n);
        repro_buf_release(&b);
    }
    assert_int_equal(tu_failures, 0);
    repro_buf_release(&full);
}

/* ---- the request reader --------------------------------------------------- */

static const struct {
    const char *desc;
    const char *req;
    int need_more; /* 1: the input is a prefix, no decision yet */
    enum repro_metrics_route route;
    int head_only;
} requests[] = {
    {"scrape", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0, REPRO_METRICS_R_METRICS, 0},
    {"HTTP/1.0, no Host", "GET /metrics HTTP/1.0\r\n\r\n", 0, REPRO_METRICS_R_METRICS, 0},
    {"query string", "GET /metrics?name[]=x HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_METRICS, 0},
    {"absolute form", "GET http://h:9100/metrics HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_METRICS,
     0},
    {"absolute form, no path", "GET http://h:9100 HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_INDEX, 0},
    {"bare LF", "GET /metrics HTTP/1.1\nHost: x\n\n", 0, REPRO_METRICS_R_METRICS, 0},
    {"empty lines first", "\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_INDEX, 0},
    {"HEAD", "HEAD /metrics HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_METRICS, 1},
    {"index", "GET / HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_INDEX, 0},
    {"other path", "GET /metricsx HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_NOT_FOUND, 0},
    {"case of the path", "GET /Metrics HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_NOT_FOUND, 0},
    {"POST with a body not waited for",
     "POST /metrics HTTP/1.1\r\nContent-Length: 100000\r\n\r\nab", 0,
     REPRO_METRICS_R_BAD_METHOD, 0},
    {"chunked PUT", "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", 0,
     REPRO_METRICS_R_BAD_METHOD, 0},
    {"lower-case method (the framer's rule)", "get /metrics HTTP/1.1\r\n\r\n", 0,
     REPRO_METRICS_R_MALFORMED, 0},
    {"unknown method", "BREW /metrics HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_BAD_METHOD, 0},
    {"HTTP/1.9", "GET /metrics HTTP/1.9\r\n\r\n", 0, REPRO_METRICS_R_METRICS, 0},
    {"DELETE elsewhere", "DELETE /x HTTP/1.1\r\n\r\n", 0, REPRO_METRICS_R_NOT_FOUND, 0},
    {"head cut short", "GET /metrics HTTP/1.1\r\nHost: x\r\n", 1, 0, 0},
    {"nothing", "", 1, 0, 0},
    {"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, REPRO_METRICS_R_MALFORMED, 0},
    {"no version", "GET /metrics\r\n\r\n", 0, REPRO_METRICS_R_MALFORMED, 0},
    {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, REPRO_METRICS_R_MALFORMED, 0},
    {"bad header", "GET / HTTP/1.1\r\nno colon here\r\n\r\n", 0, REPRO_METRICS_R_MALFORMED, 0},
    {"bad Content-Length", "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 0,
     REPRO_METRICS_R_MALFORMED, 0},
    {"request TE not chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
     REPRO_METRICS_R_MALFORMED, 0},
};

/* Feeds req in two parts cut at `cut`, from guard-page copies. */
static void feed_split(const char *req, size_t cut, enum repro_http_outcome *rc,
                       struct repro_metrics_request *rq)
{
    size_t len = strlen(req);
    uint8_t *a = guard_copy(req, cut), *b = guard_copy(req + cut, len - cut);

    repro_metrics_request_init(rq, 0);
    *rc = repro_metrics_request_feed(rq, a, cut);
    if (*rc == REPRO_HTTP_NEED_MORE)
        *rc = repro_metrics_request_feed(rq, b, len - cut);
    guard_free(a, cut);
    guard_free(b, len - cut);
}

static void test_request_table(void **state)
{
    (void)state;
    tu_failures = 0;
    for (size_t i = 0; i < sizeof requests / sizeof *requests; i++) {
        size_t len = strlen(requests[i].req);
        for (size_t cut = 0; cut <= len; cut++) {
            struct repro_metrics_request rq;
            enum repro_http_outcome rc;
            feed_split(requests[i].req, cut, &rc, &rq);
            if (requests[i].need_more) {
                TU_CHECK(rc == REPRO_HTTP_NEED_MORE && !rq.done, "%s, cut %zu: decided %d",
                         requests[i].desc, cut, rq.route);
            } else {
                TU_CHECK(rc == REPRO_HTTP_DONE && rq.done && rq.route == requests[i].route &&
                             rq.head_only == requests[i].head_only,
                         "%s, cut %zu: rc %d route %d head_only %d", requests[i].desc, cut, rc,
                         rq.route, rq.head_only);
            }
            /* Once decided, more input changes nothing. */
            if (rc == REPRO_HTTP_DONE) {
                enum repro_metrics_route r = rq.route;
                TU_CHECK(repro_metrics_request_feed(&rq, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n",
                                                    18) == REPRO_HTTP_DONE &&
                             rq.route == r,
                         "%s: changed after the decision", requests[i].desc);
            }
            repro_metrics_request_release(&rq);
        }
    }
    assert_int_equal(tu_failures, 0);
}

/* A head over max_head is 431, however it arrives. */
static void test_request_too_large(void **state)
{
    char req[400];
    struct repro_metrics_request rq;
    size_t n;
    (void)state;

    n = (size_t)snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nX-Long: %0300d\r\n\r\n", 0);
    repro_metrics_request_init(&rq, 128);
    assert_int_equal(repro_metrics_request_feed(&rq, (const uint8_t *)req, n), REPRO_HTTP_DONE);
    assert_int_equal(rq.route, REPRO_METRICS_R_TOO_LARGE);
    repro_metrics_request_release(&rq);
    repro_metrics_request_init(&rq, 128);
    for (size_t i = 0; i < n && !rq.done; i++)
        repro_metrics_request_feed(&rq, (const uint8_t *)req + i, 1);
    assert_int_equal(rq.route, REPRO_METRICS_R_TOO_LARGE);
    repro_metrics_request_release(&rq);
}

static void test_route_status(void **state)
{
    const char *reason;
    (void)state;
    assert_int_equal(repro_metrics_route_status(REPRO_METRICS_R_METRICS, &reason), 200);
    assert_string_equal(reason, "OK");
    assert_int_equal(repro_metrics_route_status(REPRO_METRICS_R_NOT_FOUND, NULL), 404);
    assert_int_equal(repro_metrics_route_status(REPRO_METRICS_R_BAD_METHOD, NULL), 405);
    assert_int_equal(repro_metrics_route_status(REPRO_METRICS_R_MALFORMED, NULL), 400);
    assert_int_equal(repro_metrics_route_status(REPRO_METRICS_R_TOO_LARGE, NULL), 431);
}

/* ---- the server -------------------------------------------------------------- */

struct figures {
    _Atomic uint64_t renders;
    int fail;
};

static int render(void *ctx, struct repro_buf *out)
{
    struct figures *f = ctx;
    uint64_t n = atomic_fetch_add(&f->renders, 1) + 1;
    int rc = REPRO_OK;
    if (f->fail)
        return REPRO_E_INVAL;
    REPRO_TRY(rc, repro_metrics_family(out, "repro_test_scrapes_total", REPRO_METRICS_COUNTER,
                                       "Scrapes."));
    REPRO_TRY(rc, repro_metrics_counter(out, "repro_test_scrapes_total", NULL, 0, n));
    return rc;
}

static int connect_to(int family, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&ss, 0, sizeof ss);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Sends req and reads until the server closes; returns the answer (static). */
static const char *exchange(int fd, const char *req)
{
    static char ans[8192];
    size_t n = 0;
    ssize_t k;

    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    while (n + 1 < sizeof ans && (k = recv(fd, ans + n, sizeof ans - 1 - n, 0)) > 0)
        n += (size_t)k;
    ans[n] = '\0';
    close(fd);
    return ans;
}

static void test_server_answers(void **state)
{
    struct figures fig = {0};
    struct repro_metrics_server *s = NULL;
    struct repro_metrics_server_stats st;
    struct repro_error err = {0};
    const char *a;
    int port, silent;
    (void)state;

    assert_int_equal(repro_metrics_server_start("127.0.0.1:0", render, &fig, &s, &err), REPRO_OK);
    port = repro_metrics_server_port(s);
    assert_true(port > 0);
    /* A client that says nothing holds one slot and delays no one. */
    silent = connect_to(AF_INET, port);
    assert_true(silent >= 0);

    a = exchange(connect_to(AF_INET, port), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(a, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(a, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(a, "\r\nConnection: close\r\n"));
    assert_non_null(strstr(a, "\r\n\r\n# HELP repro_test_scrapes_total Scrapes.\n"));
    assert_non_null(strstr(a, "\nrepro_test_scrapes_total 1\n"));
    a = exchange(connect_to(AF_INET, port), "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(a, "HTTP/1.1 200 OK\r\n"));
    assert_null(strstr(a, "# HELP"));
    a = exchange(connect_to(AF_INET, port), "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
    assert_non_null(strstr(a, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(a, "\r\nAllow: GET, HEAD\r\n"));
    a = exchange(connect_to(AF_INET, port), "GET /x HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(a, "HTTP/1.1 404 Not Found\r\n"));
    a = exchange(connect_to(AF_INET, port), "hello\r\n\r\n");
    assert_non_null(strstr(a, "HTTP/1.1 400 Bad Request\r\n"));
    a = exchange(connect_to(AF_INET, port), "GET / HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(a, "\r\n\r\nrepro capture: metrics at /metrics\n"));
    fig.fail = 1;
    a = exchange(connect_to(AF_INET, port), "GET /metrics HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(a, "HTTP/1.1 500 Internal Server Error\r\n"));

    repro_metrics_server_stats(s, &st);
    assert_int_equal(st.scrapes, 2);
    assert_int_equal(st.errors, 4);
    /* Stop returns with a connection still open. */
    repro_metrics_server_stop(s);
    close(silent);
    repro_metrics_server_stop(NULL);
}

/* Every failed allocation while starting gives a clean error, no leak
 * (ASan) and no server. */
static void test_server_start_faults(void **state)
{
    struct figures fig = {0};
    struct repro_error err;
    (void)state;

    for (unsigned long n = 1;; n++) {
        struct repro_metrics_server *s = NULL;
        int rc;
        repro_error_clear(&err);
        repro_alloc_fail_after(n);
        rc = repro_metrics_server_start("127.0.0.1:0", render, &fig, &s, &err);
        repro_alloc_fail_after(0);
        if (rc == REPRO_OK) {
            assert_non_null(s);
            repro_metrics_server_stop(s);
            break;
        }
        assert_int_equal(rc, REPRO_E_NOMEM);
        assert_null(s);
        assert_string_equal(err.msg, "cannot serve metrics: out of memory");
    }
}

/* A connection still open at timeout_ms is closed and counted. */
static void test_server_timeout(void **state)
{
    struct figures fig = {0};
    struct repro_metrics_limits lim = {.timeout_ms = 50};
    struct repro_metrics_server *s = NULL;
    struct repro_metrics_server_stats st;
    struct repro_error err = {0};
    char c;
    int fd;
    (void)state;

    assert_int_equal(repro_metrics_server_start_with("127.0.0.1:0", &lim, render, &fig, &s, &err),
                     REPRO_OK);
    fd = connect_to(AF_INET, repro_metrics_server_port(s));
    assert_int_equal(send(fd, "GET /met", 8, MSG_NOSIGNAL), 8);
    assert_int_equal(recv(fd, &c, 1, 0), 0); /* closed by the server, no answer */
    close(fd);
    repro_metrics_server_stats(s, &st);
    assert_int_equal(st.timeouts, 1);
    repro_metrics_server_stop(s);
}

/* More clients than slots: the rest wait in the backlog and are served. */
static void test_server_backlog(void **state)
{
    struct figures fig = {0};
    struct repro_metrics_limits lim = {.max_conns = 1};
    struct repro_metrics_server *s = NULL;
    struct repro_error err = {0};
    int fds[4], port;
    (void)state;

    assert_int_equal(repro_metrics_server_start_with("127.0.0.1:0", &lim, render, &fig, &s, &err),
                     REPRO_OK);
    port = repro_metrics_server_port(s);
    for (int i = 0; i < 4; i++)
        fds[i] = connect_to(AF_INET, port);
    for (int i = 0; i < 4; i++)
        assert_non_null(strstr(exchange(fds[i], "GET /metrics HTTP/1.1\r\n\r\n"), " 200 OK"));
    assert_int_equal(atomic_load(&fig.renders), 4);
    repro_metrics_server_stop(s);
}

static void test_server_addresses(void **state)
{
    static const struct {
        const char *hp;
        int code;
        const char *msg;
    } bad[] = {
        {"127.0.0.1:99999", REPRO_E_INVAL, "cannot serve metrics on '127.0.0.1:99999': bad port"},
        {"127.0.0.1:", REPRO_E_INVAL, "cannot serve metrics on '127.0.0.1:': bad port"},
        {"127.0.0.1:-1", REPRO_E_INVAL, "cannot serve metrics on '127.0.0.1:-1': bad port"},
        {"127.0.0.1:80x", REPRO_E_INVAL, "cannot serve metrics on '127.0.0.1:80x': bad port"},
        {"127.0.0.1", REPRO_E_INVAL, "cannot serve metrics on '127.0.0.1': expected HOST:PORT"},
        {"", REPRO_E_INVAL, "cannot serve metrics on '': expected HOST:PORT"},
        {"::1:9100", REPRO_E_INVAL, "cannot serve metrics on '::1:9100': write an IPv6"},
        {"[::1]9100", REPRO_E_INVAL, "cannot serve metrics on '[::1]9100': expected [ADDRESS]"},
        {"192.0.2.1:0", REPRO_E_IO,
         "cannot serve metrics on '192.0.2.1:0': bind: Cannot assign requested address"},
    };
    struct figures fig = {0};
    struct repro_metrics_server *s = NULL, *t = NULL;
    struct repro_error err = {0};
    char hp[64];
    int fd;
    (void)state;

    tu_failures = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        repro_error_clear(&err);
        s = (struct repro_metrics_server *)&fig;
        TU_CHECK(repro_metrics_server_start(bad[i].hp, render, &fig, &s, &err) == bad[i].code &&
                     s == NULL && strncmp(err.msg, bad[i].msg, strlen(bad[i].msg)) == 0,
                 "'%s': %d '%s'", bad[i].hp, err.code, err.msg);
    }
    assert_int_equal(tu_failures, 0);

    /* The port in use names the address and the cause. */
    assert_int_equal(repro_metrics_server_start("127.0.0.1:0", render, &fig, &s, &err), REPRO_OK);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", repro_metrics_server_port(s));
    repro_error_clear(&err);
    assert_int_equal(repro_metrics_server_start(hp, render, &fig, &t, &err), REPRO_E_IO);
    assert_non_null(strstr(err.msg, "bind: Address already in use"));
    assert_non_null(strstr(err.msg, hp));
    repro_metrics_server_stop(s);

    /* ":0" listens on every address, IPv4 included. */
    repro_error_clear(&err);
    assert_int_equal(repro_metrics_server_start(":0", render, &fig, &s, &err), REPRO_OK);
    fd = connect_to(AF_INET, repro_metrics_server_port(s));
    assert_non_null(strstr(exchange(fd, "GET /metrics HTTP/1.1\r\n\r\n"), " 200 OK"));
    fd = connect_to(AF_INET6, repro_metrics_server_port(s));
    if (tu_require(fd >= 0, "IPv6 loopback"))
        assert_non_null(strstr(exchange(fd, "GET /metrics HTTP/1.1\r\n\r\n"), " 200 OK"));
    repro_metrics_server_stop(s);

    /* "[::1]:0" */
    repro_error_clear(&err);
    if (tu_require(repro_metrics_server_start("[::1]:0", render, &fig, &s, &err) == REPRO_OK,
                   "IPv6 loopback")) {
        fd = connect_to(AF_INET6, repro_metrics_server_port(s));
        assert_non_null(strstr(exchange(fd, "GET /metrics HTTP/1.1\r\n\r\n"), " 200 OK"));
        repro_metrics_server_stop(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families_and_label_sets),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_gauge_values),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_limits_and_faults),
        cmocka_unit_test(test_request_table),
        cmocka_unit_test(test_request_too_large),
        cmocka_unit_test(test_route_status),
        cmocka_unit_test(test_server_answers),
        cmocka_unit_test(test_server_start_faults),
        cmocka_unit_test(test_server_timeout),
        cmocka_unit_test(test_server_backlog),
        cmocka_unit_test(test_server_addresses),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
