/*
 * Unit tests for the capture pipeline (capture/pipeline.c, http_conn.c,
 * redact.c) driven by synthetic Ethernet/IPv4/TCP frames: pairing,
 * pipelining, interim responses, early responses, HEAD, tunnels, non-HTTP
 * streams, gaps, redaction, caps and allocation-failure injection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pcap/dlt.h>
#include <stdio.h>
#include <string.h>

#include "repro/capture.h"
#include "test_util.h"

/* ---- a recording sink ---------------------------------------------- */

struct rec_x {
    char method[16], uri[128], host[64], version[12], interim[64];
    int status;
    unsigned flags;
    uint64_t conn_id, seq, request_bytes, response_bytes;
    int64_t req_first_us, resp_first_us;
    char request[2048], response[2048];
    size_t request_len, response_len;
};

struct rec {
    struct rec_x x[32];
    int n_x, n_open, n_close;
    int end_reason[8];
    int is_http[8];
    uint64_t c2s[8], s2c[8];
};

static void copy_slice(char *dst, size_t n, struct repro_slice s)
{
    size_t k = s.len < n - 1 ? s.len : n - 1;
    if (k)
        memcpy(dst, s.ptr, k);
    dst[k] = '\0';
}

static int on_open(void *ctx, struct repro_conn_info *c)
{
    struct rec *r = ctx;
    r->n_open++;
    c->store_id = 100 + (int64_t)c->id;
    return 0;
}

static int on_exchange(void *ctx, const struct repro_conn_info *c, const struct repro_exchange *x)
{
    struct rec *r = ctx;
    struct rec_x *o = &r->x[r->n_x++];
    assert_true(r->n_x <= 32);
    assert_int_equal(c->store_id, 100 + (int64_t)c->id);
    copy_slice(o->method, sizeof o->method, x->method);
    copy_slice(o->uri, sizeof o->uri, x->uri);
    copy_slice(o->host, sizeof o->host, x->host);
    snprintf(o->version, sizeof o->version, "%s", x->version);
    snprintf(o->interim, sizeof o->interim, "%s", x->interim);
    o->status = x->status;
    o->flags = x->flags;
    o->conn_id = x->conn_id;
    o->seq = x->seq;
    o->request_bytes = x->request_bytes;
    o->response_bytes = x->response_bytes;
    o->req_first_us = x->req_first_us;
    o->resp_first_us = x->resp_first_us;
    o->request_len = x->request.len < sizeof o->request ? x->request.len : sizeof o->request;
    o->response_len = x->response.len < sizeof o->response ? x->response.len : sizeof o->response;
    if (o->request_len)
        memcpy(o->request, x->request.ptr, o->request_len);
    if (o->response_len)
        memcpy(o->response, x->response.ptr, o->response_len);
    return 0;
}

static int on_close(void *ctx, const struct repro_conn_info *c)
{
    struct rec *r = ctx;
    if (r->n_close < 8) {
        r->end_reason[r->n_close] = c->end_reason;
        r->is_http[r->n_close] = c->is_http;
        r->c2s[r->n_close] = c->bytes_c2s;
        r->s2c[r->n_close] = c->bytes_s2c;
    }
    r->n_close++;
    return 0;
}

/* ---- a tiny TCP conversation builder ------------------------------- */

struct conv {
    struct repro_capture *cap;
    uint32_t seq[2];  /* next sequence number per side (0 client, 1 server) */
    uint16_t port[2];
    int64_t ts;
    uint64_t record;
};

static void frame(struct conv *cv, int side, uint8_t flags, uint32_t seq, const char *data,
                  size_t len)
{
    uint8_t f[1600];
    size_t n = 14 + 20 + 20 + len;
    uint8_t *ip = f + 14, *tcp = ip + 20;
    uint8_t *g;
    uint32_t ack = cv->seq[!side];

    assert_true(n <= sizeof f);
    memset(f, 0, 54);
    f[12] = 0x08;
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + 20 + len) >> 8);
    ip[3] = (uint8_t)(20 + 20 + len);
    ip[9] = 6;
    ip[12] = 10; ip[15] = side == 0 ? 1 : 2;
    ip[16] = 10; ip[19] = side == 0 ? 2 : 1;
    tcp[0] = (uint8_t)(cv->port[side] >> 8);
    tcp[1] = (uint8_t)cv->port[side];
    tcp[2] = (uint8_t)(cv->port[!side] >> 8);
    tcp[3] = (uint8_t)cv->port[!side];
    tcp[4] = (uint8_t)(seq >> 24); tcp[5] = (uint8_t)(seq >> 16);
    tcp[6] = (uint8_t)(seq >> 8); tcp[7] = (uint8_t)seq;
    tcp[8] = (uint8_t)(ack >> 24); tcp[9] = (uint8_t)(ack >> 16);
    tcp[10] = (uint8_t)(ack >> 8); tcp[11] = (uint8_t)ack;
    tcp[12] = 0x50;
    tcp[13] = flags;
    if (len)
        memcpy(tcp + 20, data, len);
    g = guard_copy(f, n);
    repro_capture_packet(cv->cap, DLT_EN10MB, g, n, cv->ts, ++cv->record, NULL);
    guard_free(g, n);
    cv->ts += 1000;
}

static void conv_start(struct conv *cv, struct repro_capture *cap, uint16_t cport, int handshake)
{
    memset(cv, 0, sizeof *cv);
    cv->cap = cap;
    cv->port[0] = cport;
    cv->port[1] = 80;
    cv->seq[0] = 1000;
    cv->seq[1] = 4000000000u; /* wraps around during the test */
    cv->ts = INT64_C(1700000000000000);
    if (!handshake)
        return;
    frame(cv, 0, REPRO_TCP_SYN, cv->seq[0]++, NULL, 0);
    frame(cv, 1, REPRO_TCP_SYN | REPRO_TCP_ACK, cv->seq[1]++, NULL, 0);
    frame(cv, 0, REPRO_TCP_ACK, cv->seq[0], NULL, 0);
}

static void send_data(struct conv *cv, int side, const char *s)
{
    size_t len = strlen(s);
    frame(cv, side, REPRO_TCP_ACK | REPRO_TCP_PSH, cv->seq[side], s, len);
    cv->seq[side] += (uint32_t)len;
}

static void skip_data(struct conv *cv, int side, size_t len)
{
    cv->seq[side] += (uint32_t)len; /* bytes the capture never saw */
}

static void conv_fin(struct conv *cv)
{
    frame(cv, 0, REPRO_TCP_FIN | REPRO_TCP_ACK, cv->seq[0]++, NULL, 0);
    frame(cv, 1, REPRO_TCP_FIN | REPRO_TCP_ACK, cv->seq[1]++, NULL, 0);
    frame(cv, 0, REPRO_TCP_ACK, cv->seq[0], NULL, 0);
}

static struct repro_capture *new_cap(struct rec *r, const struct repro_redact_rules *rules,
                                     const struct repro_capture_limits *lim)
{
    struct repro_capture_sink sink = {r, on_open, on_exchange, on_close};
    memset(r, 0, sizeof *r);
    return repro_capture_new(&sink, rules, lim);
}

/* ---- tests ---------------------------------------------------------- */

static void test_simple_get(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40000, 1);
    send_data(&cv, 0, "GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 1);
    assert_string_equal(r.x[0].method, "GET");
    assert_string_equal(r.x[0].uri, "/a?x=1");
    assert_string_equal(r.x[0].host, "example.com");
    assert_string_equal(r.x[0].version, "HTTP/1.1");
    assert_int_equal(r.x[0].status, 200);
    assert_int_equal(r.x[0].flags, 0);
    assert_int_equal(r.x[0].request_bytes, 42);
    assert_int_equal(r.x[0].response_bytes, 43);
    assert_true(r.x[0].resp_first_us > r.x[0].req_first_us);
    assert_int_equal(r.n_open, 1);
    assert_int_equal(r.n_close, 1);
    assert_int_equal(r.end_reason[0], REPRO_END_FIN);
    assert_int_equal(r.c2s[0], 42);
    assert_int_equal(r.s2c[0], 43);
    assert_int_equal(repro_capture_finish(cap, NULL), REPRO_OK);
    assert_int_equal(repro_capture_stats(cap)->exchanges, 1);
    assert_int_equal(repro_capture_stats(cap)->http_connections, 1);
    repro_capture_free(cap);
}

static void test_pipelined(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40001, 1);
    send_data(&cv, 0, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                      "POST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"
                      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nBB\r\n0\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 3);
    assert_string_equal(r.x[0].uri, "/1");
    assert_int_equal(r.x[0].status, 200);
    assert_string_equal(r.x[1].uri, "/2");
    assert_int_equal(r.x[1].status, 404);
    assert_string_equal(r.x[2].method, "POST");
    assert_int_equal(r.x[2].status, 201);
    assert_int_equal(r.x[2].seq, 2);
    repro_capture_free(cap);
}

static void test_continue_and_head(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40002, 1);
    send_data(&cv, 0, "PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 100 Continue\r\n\r\n");
    send_data(&cv, 0, "data");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    send_data(&cv, 0, "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n");
    /* A HEAD response announces a length but has no body. */
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    send_data(&cv, 0, "GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 304 Not Modified\r\n\r\n");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 3);
    assert_string_equal(r.x[0].interim, "100");
    assert_true(r.x[0].flags & REPRO_XF_INTERIM);
    assert_int_equal(r.x[0].status, 200);
    assert_memory_equal(r.x[0].response, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", 36);
    assert_int_equal(r.x[1].status, 200);
    assert_string_equal(r.x[1].method, "HEAD");
    assert_int_equal(r.x[1].flags & REPRO_XF_INCOMPLETE, 0);
    assert_string_equal(r.x[2].uri, "/after");
    assert_int_equal(r.x[2].status, 304);
    repro_capture_free(cap);
}

static void test_early_response(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40003, 1);
    send_data(&cv, 0, "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01234");
    send_data(&cv, 1, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n");
    send_data(&cv, 0, "56789");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 1);
    assert_int_equal(r.x[0].status, 413);
    assert_string_equal(r.x[0].uri, "/big");
    assert_int_equal(r.x[0].flags, 0);
    repro_capture_free(cap);
}

static void test_unanswered_and_close_delimited(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40004, 1);
    send_data(&cv, 0, "GET /old HTTP/1.0\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.0 200 OK\r\n\r\nbody until close");
    conv_fin(&cv);
    conv_start(&cv, cap, 40005, 1);
    send_data(&cv, 0, "GET /never HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(repro_capture_finish(cap, NULL), REPRO_OK);
    assert_int_equal(r.n_x, 2);
    assert_int_equal(r.x[0].status, 200);
    assert_int_equal(r.x[0].flags, 0);
    assert_int_equal(r.x[0].response_bytes, 35);
    assert_string_equal(r.x[1].uri, "/never");
    assert_int_equal(r.x[1].status, 0);
    assert_true(r.x[1].flags & REPRO_XF_UNANSWERED);
    assert_int_equal(r.end_reason[1], REPRO_END_EOF);
    repro_capture_free(cap);
}

static void test_mid_stream_and_no_request(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40006, 0);
    /* The capture starts inside a response body. */
    send_data(&cv, 1, "tail of an earlier body\r\n");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    send_data(&cv, 0, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 204 No Content\r\n\r\n");
    assert_int_equal(repro_capture_finish(cap, NULL), REPRO_OK);
    assert_int_equal(r.n_x, 2);
    assert_true(r.x[0].flags & REPRO_XF_NO_REQUEST);
    assert_int_equal(r.x[0].status, 200);
    assert_string_equal(r.x[1].uri, "/next");
    assert_int_equal(r.x[1].status, 204);
    assert_int_equal(r.x[1].flags, 0);
    repro_capture_free(cap);
}

static void test_gap_in_body(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40007, 1);
    send_data(&cv, 0, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01");
    skip_data(&cv, 1, 5); /* lost in the capture */
    send_data(&cv, 1, "789");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 2);
    assert_true(r.x[0].flags & REPRO_XF_GAP);
    assert_int_equal(r.x[0].status, 200);
    assert_int_equal(r.x[0].response_bytes, 49);
    assert_int_equal(r.x[1].flags, 0);
    assert_int_equal(r.x[1].status, 200);
    assert_int_equal(repro_capture_stats(cap)->gap_bytes, 5);
    repro_capture_free(cap);
}

static void test_tunnel_and_not_http(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40008, 1);
    send_data(&cv, 0, "CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 200 Connection established\r\n\r\n");
    send_data(&cv, 0, "\x16\x03\x01 binary tunnel bytes GET / HTTP/1.1\r\n\r\n");
    send_data(&cv, 1, "\x16\x03\x03 more HTTP/1.1 200 OK\r\n\r\n");
    conv_fin(&cv);
    conv_start(&cv, cap, 40009, 1);
    send_data(&cv, 0, "\x16\x03\x01\x02\x00 a TLS client hello");
    send_data(&cv, 1, "\x16\x03\x03\x00\x40 a TLS server hello");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 1);
    assert_string_equal(r.x[0].method, "CONNECT");
    assert_string_equal(r.x[0].uri, "db:5432");
    assert_true(r.x[0].flags & REPRO_XF_TUNNEL);
    assert_int_equal(r.n_close, 2);
    assert_int_equal(r.is_http[1], 0);
    assert_int_equal(repro_capture_finish(cap, NULL), REPRO_OK);
    assert_int_equal(repro_capture_stats(cap)->non_http_connections, 1);
    assert_true(repro_capture_stats(cap)->tunnel_bytes > 0);
    repro_capture_free(cap);
}

static void test_malformed_http_counts(void **state)
{
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, NULL, NULL);
    (void)state;

    conv_start(&cv, cap, 40010, 1);
    send_data(&cv, 0, "GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n");
    send_data(&cv, 0, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 2);
    assert_true(r.x[0].flags & REPRO_XF_MALFORMED);
    assert_string_equal(r.x[1].uri, "/next");
    assert_int_equal(r.x[1].status, 200);
    assert_true(repro_capture_stats(cap)->errors >= 1);
    repro_capture_free(cap);
}

static void test_redaction(void **state)
{
    static const char *hdrs[] = {"X-Api-Key"};
    static const char *params[] = {"token"};
    static const char *fields[] = {"password", "pin"};
    struct repro_redact_rules rules = {0, hdrs, 1, params, 1, fields, 2, NULL, 0};
    struct rec r;
    struct conv cv;
    struct repro_capture *cap = new_cap(&r, &rules, NULL);
    const char *body = "{\"user\":\"bob\",\"password\":\"s3cr\\\"et\",\"pin\": 1234}";
    char req[512];
    (void)state;

    snprintf(req, sizeof req,
             "POST /login?token=abc&keep=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer xyz\r\n"
             "Cookie: sid=1\r\nx-api-key: k\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    conv_start(&cv, cap, 40011, 1);
    send_data(&cv, 0, req);
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nSet-Cookie: sid=2; HttpOnly\r\nContent-Length: 0\r\n\r\n");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 1);
    assert_true(r.x[0].flags & REPRO_XF_REDACTED);
    assert_string_equal(r.x[0].uri, "/login?token=%5BREDACTED%5D&keep=1");
    r.x[0].request[r.x[0].request_len < sizeof r.x[0].request ? r.x[0].request_len : 0] = '\0';
    assert_non_null(strstr(r.x[0].request, "Authorization: [REDACTED]\r\n"));
    assert_non_null(strstr(r.x[0].request, "Cookie: [REDACTED]\r\n"));
    assert_non_null(strstr(r.x[0].request, "x-api-key: [REDACTED]\r\n"));
    assert_null(strstr(r.x[0].request, "xyz"));
    assert_null(strstr(r.x[0].request, "s3cr"));
    assert_null(strstr(r.x[0].request, "1234"));
    /* JSON stays valid, with the marker; Content-Length follows. */
    assert_non_null(strstr(r.x[0].request, "\"password\":\"[REDACTED]\",\"pin\": \"[REDACTED]\"}"));
    assert_non_null(strstr(r.x[0].request, "Content-Length: 58\r\n"));
    r.x[0].response[r.x[0].response_len] = '\0';
    assert_non_null(strstr(r.x[0].response, "Set-Cookie: [REDACTED]\r\n"));
    repro_capture_free(cap);

    /* --no-default-redaction keeps Authorization. */
    rules.no_defaults = 1;
    rules.n_query_params = rules.n_json_fields = rules.n_headers = 0;
    cap = new_cap(&r, &rules, NULL);
    conv_start(&cv, cap, 40012, 1);
    send_data(&cv, 0, "GET / HTTP/1.1\r\nAuthorization: Basic abc\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    conv_fin(&cv);
    assert_int_equal(r.n_x, 1);
    assert_false(r.x[0].flags & REPRO_XF_REDACTED);
    r.x[0].request[r.x[0].request_len] = '\0';
    assert_non_null(strstr(r.x[0].request, "Basic abc"));
    repro_capture_free(cap);
}

static void test_caps(void **state)
{
    struct repro_capture_limits lim;
    struct rec r;
    struct conv cv;
    struct repro_capture *cap;
    char big[1200];
    (void)state;

    repro_capture_limits_default(&lim);
    lim.http.max_store = 64;
    lim.max_pipeline = 2;
    cap = new_cap(&r, NULL, &lim);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    conv_start(&cv, cap, 40013, 1);
    send_data(&cv, 0, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nContent-Length: 1199\r\n\r\n");
    send_data(&cv, 1, big);
    conv_fin(&cv);
    assert_int_equal(repro_capture_finish(cap, NULL), REPRO_OK);
    assert_int_equal(repro_capture_stats(cap)->dropped_pipeline, 1);
    assert_int_equal(r.n_x, 3);
    assert_true(r.x[0].flags & REPRO_XF_UNANSWERED); /* pushed out by the pipeline cap */
    assert_true(r.x[1].flags & REPRO_XF_BODY_CAPPED);
    assert_int_equal(r.x[1].response_len, 64);
    assert_int_equal(r.x[1].response_bytes, 1199 + 41);
    assert_true(repro_capture_stats(cap)->dropped_body_bytes > 0);
    repro_capture_free(cap);
}

static void scenario(struct repro_capture *cap)
{
    struct conv cv;
    conv_start(&cv, cap, 40020, 1);
    send_data(&cv, 0, "GET /1 HTTP/1.1\r\nHost: h\r\nCookie: a=b\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    send_data(&cv, 1, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    skip_data(&cv, 1, 3);
    send_data(&cv, 1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n");
    conv_fin(&cv);
    conv_start(&cv, cap, 40021, 0);
    send_data(&cv, 0, "POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial");
}

static void test_alloc_failures(void **state)
{
    unsigned long n;
    (void)state;
    /* Fail the n-th allocation for every n until the scenario runs clean:
     * every run must end without a crash or a leak (ASan checks). */
    for (n = 1; n < 400; n++) {
        struct rec r;
        struct repro_capture *cap;
        unsigned long made;
        repro_alloc_fail_after(n);
        cap = new_cap(&r, NULL, NULL);
        if (cap != NULL) {
            scenario(cap);
            repro_capture_finish(cap, NULL);
            repro_capture_free(cap);
        }
        made = repro_alloc_fail_after(0);
        if (made < n)
            break; /* the n-th allocation never happened: all paths covered */
    }
    assert_true(n < 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_continue_and_head),
        cmocka_unit_test(test_early_response),
        cmocka_unit_test(test_unanswered_and_close_delimited),
        cmocka_unit_test(test_mid_stream_and_no_request),
        cmocka_unit_test(test_gap_in_body),
        cmocka_unit_test(test_tunnel_and_not_http),
        cmocka_unit_test(test_malformed_http_counts),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
