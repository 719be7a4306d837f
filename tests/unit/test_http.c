/*
 * Unit tests for the HTTP/1.x component (include/repro/http.h): head
 * parsing, body framing rules, the message-start check and the framer over
 * whole streams (the chunked scanner and decoder: test_http_chunked.c).
 *
 * Every parser input sits right before a PROT_NONE page (guard_copy) so an
 * over-read faults. Results are rendered to short strings so that each table
 * line states every field it expects. Every framer case is fed whole, split
 * in two at every byte boundary, and one byte at a time; all runs must give
 * the same messages with the same raw bytes, because a capture must not
 * depend on how TCP happened to segment the stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repro/http.h"
#include "test_util.h"

/* A string literal as (pointer, length), so inputs may hold NUL bytes. */
#define IN(lit) lit, sizeof(lit) - 1

/* ---- small string builder for rendering results ---------------------- */

struct sb {
    char s[4096];
    size_t len;
};

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->len >= sizeof b->s - 1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->s + b->len, sizeof b->s - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n < sizeof b->s - b->len ? (size_t)n : sizeof b->s - 1 - b->len;
}

/* Appends bytes with non-printable ones as \xNN. */
static void sb_bytes(struct sb *b, const uint8_t *p, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f)
            sb_add(b, "%c", p[i]);
        else
            sb_add(b, "\\x%02x", p[i]);
    }
}

static void sb_slice(struct sb *b, struct repro_slice s)
{
    sb_bytes(b, s.ptr, s.len);
}

/* Head flags as letters, in bit order, after prefix; nothing when 0. */
static void sb_head_flags(struct sb *b, const char *prefix, unsigned flags)
{
    static const char letters[] = "cotKUEBL";
    unsigned i;
    if (flags == 0)
        return;
    sb_add(b, "%s", prefix);
    for (i = 0; i < 8; i++)
        if (flags & (1u << i))
            sb_add(b, "%c", letters[i]);
    if (flags >> 8)
        sb_add(b, "+0x%x", flags >> 8);
}

static void expect_same(const char *desc, const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        print_error("case '%s' (%s):\n   got: %s\n  want: %s\n", desc, what, got, want);
        tu_failures++;
    }
}

/* ---- repro_http_parse_head ------------------------------------------- */

struct head_case {
    const char *desc;
    enum repro_http_kind kind;
    const char *in; /* NULL: a request with len generated header fields */
    size_t len;
    size_t max_head; /* 0: 64 KiB */
    const char *want;
};

/*
 * Rendering of a parse result:
 *  DONE, request:  "GET / 1.1 host=h cl=5 f=<flags> len=<head_len> n=<n_headers> [Name:value]..."
 *  DONE, response: "200 'OK' 1.1 cl=5 f=<flags> len=<head_len> n=<n_headers> [Name:value]..."
 *  NEED_MORE: "need";  MALFORMED: "bad@<err_off> <why>"
 * host, cl and f are left out when absent (len 0, -1, 0). Header fields are
 * listed when there are at most four.
 * Flags: c chunked, o other TE, t Connection: close, K keep-alive, U Upgrade,
 * E Expect: 100-continue, B both Content-Length and TE, L bare LF.
 */
static void render_head(struct sb *b, enum repro_http_outcome rc, const struct repro_http_head *h,
                        size_t err_off, const char *why)
{
    size_t i;

    if (rc == REPRO_HTTP_NEED_MORE) {
        sb_add(b, "need");
        return;
    }
    if (rc == REPRO_HTTP_MALFORMED) {
        sb_add(b, "bad@%zu %s", err_off, why ? why : "(null)");
        return;
    }
    if (rc != REPRO_HTTP_DONE) {
        sb_add(b, "rc=%d", (int)rc);
        return;
    }
    if (h->kind == REPRO_HTTP_REQUEST) {
        sb_slice(b, h->method);
        sb_add(b, " ");
        sb_slice(b, h->target);
    } else {
        sb_add(b, "%d '", h->status);
        sb_slice(b, h->reason);
        sb_add(b, "'");
    }
    sb_add(b, " %d.%d", h->version_major, h->version_minor);
    if (h->host.len > 0) {
        sb_add(b, " host=");
        sb_slice(b, h->host);
    }
    if (h->content_length != -1)
        sb_add(b, " cl=%lld", (long long)h->content_length);
    sb_head_flags(b, " f=", h->flags);
    sb_add(b, " len=%zu n=%zu", h->head_len, h->n_headers);
    if (h->n_headers <= 4) {
        sb_add(b, h->n_headers ? " " : "");
        for (i = 0; i < h->n_headers; i++) {
            sb_add(b, "[");
            sb_slice(b, h->headers[i].name);
            sb_add(b, ":");
            sb_slice(b, h->headers[i].value);
            sb_add(b, "]");
        }
    }
}

static int in_range(struct repro_slice s, const uint8_t *p, size_t len)
{
    return s.len == 0 || (s.ptr >= p && s.ptr + s.len <= p + len);
}

/* The invariants that http.h states for a DONE head. */
static void check_head_invariants(const char *desc, const struct repro_http_head *h,
                                  const uint8_t *p, size_t len)
{
    size_t i;
    TU_CHECK(h->head_len > 0 && h->head_len <= len, "case '%s': head_len %zu", desc, h->head_len);
    TU_CHECK(h->n_headers <= REPRO_HTTP_MAX_HEADERS, "case '%s'", desc);
    TU_CHECK(h->content_length >= -1, "case '%s'", desc);
    if (h->kind == REPRO_HTTP_REQUEST)
        TU_CHECK(h->method.len > 0 && h->target.len > 0, "case '%s'", desc);
    else
        TU_CHECK(h->status >= 100 && h->status <= 999, "case '%s': status %d", desc, h->status);
    TU_CHECK(in_range(h->method, p, h->head_len) && in_range(h->target, p, h->head_len) &&
              in_range(h->reason, p, h->head_len) && in_range(h->host, p, h->head_len),
          "case '%s': slice outside the head", desc);
    for (i = 0; i < h->n_headers; i++)
        TU_CHECK(h->headers[i].name.len > 0 && in_range(h->headers[i].name, p, h->head_len) &&
                  in_range(h->headers[i].value, p, h->head_len),
              "case '%s': header %zu", desc, i);
}

static enum repro_http_outcome parse_guarded(struct repro_http_head *h, enum repro_http_kind kind,
                                             const uint8_t *in, size_t len, size_t max_head,
                                             struct sb *out)
{
    uint8_t *p = guard_copy(in, len);
    size_t err_off = (size_t)-1;
    const char *why = NULL;
    enum repro_http_outcome rc = repro_http_parse_head(h, kind, p, len, max_head, &err_off, &why);

    render_head(out, rc, h, err_off, why);
    if (rc == REPRO_HTTP_DONE)
        check_head_invariants("(parse)", h, p, len);
    guard_free(p, len);
    return rc;
}

#define REQ REPRO_HTTP_REQUEST
#define RESP REPRO_HTTP_RESPONSE

static const struct head_case head_cases[] = {
    /* requests */
    {"simple GET with Host", REQ, IN("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
     "GET / 1.1 host=example.com len=37 n=1 [Host:example.com]"},
    {"method is any token", REQ, IN("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n"), 0,
     "M-SEARCH * 1.1 host=239.255.255.250:1900 len=51 n=1 [HOST:239.255.255.250:1900]"},
    {"odd token method", REQ, IN("f0o!b~r /x HTTP/1.1\r\n\r\n"), 0, "f0o!b~r /x 1.1 len=23 n=0"},
    {"absolute-form target", REQ,
     IN("GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
     "GET http://example.com/a?b=c 1.1 host=example.com len=60 n=1 [Host:example.com]"},
    {"authority-form target", REQ,
     IN("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 0,
     "CONNECT example.com:443 1.1 host=example.com:443 len=59 n=1 [Host:example.com:443]"},
    {"HTTP/1.0 without headers", REQ, IN("GET /old HTTP/1.0\r\n\r\n"), 0,
     "GET /old 1.0 len=21 n=0"},
    {"bare LF line endings", REQ, IN("GET / HTTP/1.1\nHost: a\n\nBODY"), 0,
     "GET / 1.1 host=a f=L len=24 n=1 [Host:a]"},
    {"mixed CRLF and LF", REQ, IN("GET / HTTP/1.1\r\nHost: a\n\r\n"), 0,
     "GET / 1.1 host=a f=L len=26 n=1 [Host:a]"},
    {"obs-fold line is skipped", REQ,
     IN("GET / HTTP/1.1\r\nX-Long: a\r\n  continued\r\n\tmore\r\nHost: h\r\n\r\n"), 0,
     "GET / 1.1 host=h len=58 n=2 [X-Long:a][Host:h]"},
    {"obs-fold before any field", REQ, IN("GET / HTTP/1.1\r\n continued\r\n\r\n"), 0,
     "bad@16 continuation line before any header"},
    {"Host value trimmed of OWS", REQ, IN("GET / HTTP/1.1\r\nHost: \t example.org \t\r\n\r\n"), 0,
     "GET / 1.1 host=example.org len=41 n=1 [Host:example.org]"},
    {"first Host wins", REQ, IN("GET / HTTP/1.1\r\nhost: a\r\nHost: b\r\n\r\n"), 0,
     "GET / 1.1 host=a len=36 n=2 [host:a][Host:b]"},
    {"empty field value", REQ, IN("GET / HTTP/1.1\r\nX-Empty:\r\nX-Sp:   \r\n\r\n"), 0,
     "GET / 1.1 len=38 n=2 [X-Empty:][X-Sp:]"},
    {"Content-Length with body after the head", REQ,
     IN("POST /f HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), 0,
     "POST /f 1.1 cl=5 len=39 n=1 [Content-Length:5]"},
    {"Content-Length list of equal values", REQ,
     IN("POST /f HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"), 0,
     "POST /f 1.1 cl=5 len=42 n=1 [Content-Length:5, 5]"},
    {"Content-Length repeated, equal", REQ,
     IN("POST /f HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n"), 0,
     "POST /f 1.1 cl=7 len=58 n=2 [Content-Length:7][content-length:7]"},
    {"Content-Length zero", REQ, IN("POST /f HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0,
     "POST /f 1.1 cl=0 len=39 n=1 [Content-Length:0]"},
    {"Content-Length 2^60 accepted", REQ,
     IN("POST /f HTTP/1.1\r\nContent-Length: 1152921504606846976\r\n\r\n"), 0,
     "POST /f 1.1 cl=1152921504606846976 len=57 n=1 [Content-Length:1152921504606846976]"},
    {"conflicting Content-Length fields", REQ,
     IN("POST /f HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 0,
     "bad@37 conflicting Content-Length headers"},
    {"conflicting Content-Length list", REQ, IN("POST /f HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n"),
     0, "bad@18 bad Content-Length"},
    {"negative Content-Length", REQ, IN("POST /f HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 0,
     "bad@18 bad Content-Length"},
    {"plus sign in Content-Length", REQ, IN("POST /f HTTP/1.1\r\nContent-Length: +1\r\n\r\n"), 0,
     "bad@18 bad Content-Length"},
    {"non-digit Content-Length", REQ, IN("POST /f HTTP/1.1\r\nContent-Length: 5a\r\n\r\n"), 0,
     "bad@18 bad Content-Length"},
    {"empty Content-Length", REQ, IN("POST /f HTTP/1.1\r\nContent-Length:\r\n\r\n"), 0,
     "bad@18 bad Content-Length"},
    {"empty element in Content-Length list", REQ,
     IN("POST /f HTTP/1.1\r\nContent-Length: 5,,5\r\n\r\n"), 0, "bad@18 bad Content-Length"},
    {"huge Content-Length overflows", REQ,
     IN("POST /f HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"), 0,
     "bad@18 bad Content-Length"},
    {"Transfer-Encoding chunked", REQ, IN("POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
     0, "POST /f 1.1 f=c len=48 n=1 [Transfer-Encoding:chunked]"},
    {"Transfer-Encoding gzip, chunked", REQ,
     IN("POST /f HTTP/1.1\r\nTransfer-Encoding: gzip, CHUNKED \r\n\r\n"), 0,
     "POST /f 1.1 f=c len=55 n=1 [Transfer-Encoding:gzip, CHUNKED]"},
    {"Transfer-Encoding chunked, gzip", REQ,
     IN("POST /f HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 0,
     "POST /f 1.1 f=o len=54 n=1 [Transfer-Encoding:chunked, gzip]"},
    {"Transfer-Encoding in two fields, last wins", REQ,
     IN("POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), 0,
     "POST /f 1.1 f=o len=73 n=2 [Transfer-Encoding:chunked][Transfer-Encoding:gzip]"},
    {"Transfer-Encoding and Content-Length", REQ,
     IN("POST /f HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 0,
     "POST /f 1.1 cl=3 f=cB len=67 n=2 [Content-Length:3][Transfer-Encoding:chunked]"},
    {"Connection and Upgrade", REQ,
     IN("GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"), 0,
     "GET /ws 1.1 f=KU len=73 n=2 [Connection:keep-alive, Upgrade][Upgrade:websocket]"},
    {"Connection: close", REQ, IN("GET / HTTP/1.0\r\nconnection: CLOSE\r\n\r\n"), 0,
     "GET / 1.0 f=t len=37 n=1 [connection:CLOSE]"},
    {"Expect: 100-continue", REQ,
     IN("PUT /f HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n"), 0,
     "PUT /f 1.1 cl=4 f=E len=60 n=2 [Expect:100-Continue][Content-Length:4]"},
    {"space before colon", REQ, IN("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 0,
     "bad@20 bad header line"},
    {"field line without colon", REQ, IN("GET / HTTP/1.1\r\nHost a\r\n\r\n"), 0,
     "bad@20 bad header line"},
    {"empty field name", REQ, IN("GET / HTTP/1.1\r\n: a\r\n\r\n"), 0, "bad@16 bad header line"},
    {"control byte in field value", REQ,
     IN("GET / HTTP/1.1\r\nX: a\x01"
        "b\r\n\r\n"),
     0, "bad@20 control byte in header value"},
    {"DEL in field value", REQ, IN("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n"), 0,
     "bad@20 control byte in header value"},
    {"NUL in field value", REQ, IN("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), 0,
     "bad@20 control byte in header value"},
    {"control byte in method", REQ, IN("G\x01T / HTTP/1.1\r\n\r\n"), 0, "bad@1 bad request method"},
    {"control byte in target", REQ, IN("GET /a\x02 HTTP/1.1\r\n\r\n"), 0,
     "bad@6 bad request target"},
    {"NUL in target", REQ, IN("GET /\0 HTTP/1.1\r\n\r\n"), 0, "bad@5 bad request target"},
    {"missing target", REQ, IN("GET HTTP/1.1\r\n\r\n"), 0, "bad@12 bad request target"},
    {"missing version", REQ, IN("GET /\r\n\r\n"), 0, "bad@5 bad request target"},
    {"leading space", REQ, IN(" GET / HTTP/1.1\r\n\r\n"), 0, "bad@0 bad request method"},
    {"bad version", REQ, IN("GET / HTTP/1.x\r\n\r\n"), 0, "bad@6 bad HTTP version in request line"},
    {"version with two digits", REQ, IN("GET / HTTP/11.1\r\n\r\n"), 0,
     "bad@6 bad HTTP version in request line"},
    {"trailing space after version", REQ, IN("GET / HTTP/1.1 \r\n\r\n"), 0,
     "bad@6 bad HTTP version in request line"},
    {"lower-case version", REQ, IN("GET / http/1.1\r\n\r\n"), 0,
     "bad@6 bad HTTP version in request line"},
    {"100 header fields accepted", REQ, NULL, 100, 0, "GET / 1.1 len=1118 n=100"},
    {"101 header fields rejected", REQ, NULL, 101, 0, "bad@1116 too many header fields"},
    {"head exactly max_head", REQ, IN("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 27,
     "GET / 1.1 host=a len=27 n=1 [Host:a]"},
    {"head longer than max_head", REQ, IN("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 26,
     "bad@26 message head too long"},
    {"start line longer than max_head", REQ, IN("GET /aaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"), 10,
     "bad@10 message head too long"},
    {"incomplete head", REQ, IN("GET / HTTP/1.1\r\nHost: a\r\n"), 0, "need"},
    {"incomplete start line", REQ, IN("GET / HT"), 0, "need"},
    {"empty input", REQ, IN(""), 0, "need"},
    {"head ending in CR only", REQ, IN("GET / HTTP/1.1\r\n\r"), 0, "need"},
    /* responses */
    {"status line with reason", RESP, IN("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0,
     "200 'OK' 1.1 cl=2 len=38 n=1 [Content-Length:2]"},
    {"reason with spaces", RESP, IN("HTTP/1.0 500 Internal Server Error\r\n\r\n"), 0,
     "500 'Internal Server Error' 1.0 len=38 n=0"},
    {"status line without reason", RESP, IN("HTTP/1.1 204\r\n\r\n"), 0, "204 '' 1.1 len=16 n=0"},
    {"status line with empty reason", RESP, IN("HTTP/1.1 404 \r\n\r\n"), 0,
     "404 '' 1.1 len=17 n=0"},
    {"tab in reason is allowed", RESP, IN("HTTP/1.1 200 O\tK\r\n\r\n"), 0,
     "200 'O\\x09K' 1.1 len=20 n=0"},
    {"response with bare LF", RESP, IN("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"), 0,
     "200 'OK' 1.1 f=cL len=44 n=1 [Transfer-Encoding:chunked]"},
    {"100 Continue", RESP, IN("HTTP/1.1 100 Continue\r\n\r\n"), 0, "100 'Continue' 1.1 len=25 n=0"},
    {"101 Switching Protocols", RESP,
     IN("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), 0,
     "101 'Switching Protocols' 1.1 f=U len=77 n=2 [Upgrade:websocket][Connection:Upgrade]"},
    {"304 Not Modified", RESP, IN("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"), 0,
     "304 'Not Modified' 1.1 len=40 n=1 [ETag:\"x\"]"},
    {"status 999", RESP, IN("HTTP/1.1 999 Odd\r\n\r\n"), 0, "999 'Odd' 1.1 len=20 n=0"},
    {"response Content-Length conflict", RESP,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 0,
     "bad@36 conflicting Content-Length headers"},
    {"status code with a letter", RESP, IN("HTTP/1.1 2x0 OK\r\n\r\n"), 0, "bad@10 bad status code"},
    {"status code below 100", RESP, IN("HTTP/1.1 099 Low\r\n\r\n"), 0,
     "bad@9 status code below 100"},
    {"four-digit status", RESP, IN("HTTP/1.1 2000 OK\r\n\r\n"), 0, "bad@12 bad status line"},
    {"short status line", RESP, IN("HTTP/1.1 20\r\n\r\n"), 0, "bad@0 bad status line"},
    {"HTTP/2 status line", RESP, IN("HTTP/2 200 OK\r\n\r\n"), 0, "bad@0 bad status line"},
    {"ICY status line", RESP, IN("ICY 200 OK\r\n\r\n"), 0, "bad@0 bad status line"},
    {"no space after version", RESP, IN("HTTP/1.1\t200 OK\r\n\r\n"), 0, "bad@0 bad status line"},
    {"control byte in reason", RESP, IN("HTTP/1.1 200 O\x01K\r\n\r\n"), 0,
     "bad@14 control byte in reason phrase"},
    {"bad field in response", RESP, IN("HTTP/1.1 200 OK\r\nX-Bad[]: 1\r\n\r\n"), 0,
     "bad@22 bad header line"},
    {"incomplete response head", RESP, IN("HTTP/1.1 200 OK\r\nContent-Len"), 0, "need"},
};

/* Builds a request with n generated header fields "X-Hnnn: v". */
static uint8_t *gen_headers(size_t n, size_t *len)
{
    size_t cap = 32 + n * 16, i;
    char *p = malloc(cap);
    size_t off;

    assert_non_null(p);
    off = (size_t)snprintf(p, cap, "GET / HTTP/1.1\r\n");
    for (i = 0; i < n; i++)
        off += (size_t)snprintf(p + off, cap - off, "X-H%03zu: v\r\n", i);
    off += (size_t)snprintf(p + off, cap - off, "\r\n");
    *len = off;
    return (uint8_t *)p;
}

static void test_parse_head(void **state)
{
    size_t i, k;
    (void)state;

    tu_failures = 0;
    for (i = 0; i < sizeof head_cases / sizeof head_cases[0]; i++) {
        const struct head_case *c = &head_cases[i];
        struct repro_http_head h;
        struct sb out = {.len = 0};
        size_t len = c->len, max_head = c->max_head ? c->max_head : 64 * 1024;
        uint8_t *gen = NULL;
        const uint8_t *in = (const uint8_t *)c->in;
        enum repro_http_outcome rc;

        if (c->in == NULL) {
            gen = gen_headers(c->len, &len);
            in = gen;
        }
        rc = parse_guarded(&h, c->kind, in, len, max_head, &out);
        expect_same(c->desc, "whole input", out.s, c->want);

        /* Every proper prefix: a DONE head needs more until its end; a
         * MALFORMED one needs more or fails the same way (the verdict never
         * changes once the offending line is complete). */
        for (k = 0; k < len; k++) {
            struct repro_http_head hp;
            struct sb pre = {.len = 0};
            enum repro_http_outcome prc = parse_guarded(&hp, c->kind, in, k, max_head, &pre);
            if (rc == REPRO_HTTP_MALFORMED && prc == REPRO_HTTP_MALFORMED)
                expect_same(c->desc, "prefix", pre.s, out.s);
            else if (rc == REPRO_HTTP_DONE && k >= h.head_len)
                TU_CHECK(prc == REPRO_HTTP_DONE && hp.head_len == h.head_len,
                      "case '%s': prefix %zu gave '%s'", c->desc, k, pre.s);
            else
                TU_CHECK(prc == REPRO_HTTP_NEED_MORE, "case '%s': prefix %zu gave '%s'", c->desc, k,
                      pre.s);
        }
        free(gen);
    }
    assert_int_equal(tu_failures, 0);
}

/* Bytes after a DONE head (body, next message) change nothing. */
static void test_parse_head_suffix(void **state)
{
    size_t i;
    (void)state;

    tu_failures = 0;
    for (i = 0; i < sizeof head_cases / sizeof head_cases[0]; i++) {
        const struct head_case *c = &head_cases[i];
        struct repro_http_head h;
        struct sb whole = {.len = 0}, more = {.len = 0};
        uint8_t buf[2048];

        if (c->in == NULL || c->max_head != 0 || c->len + 16 > sizeof buf)
            continue;
        if (parse_guarded(&h, c->kind, (const uint8_t *)c->in, c->len, 64 * 1024, &whole) !=
            REPRO_HTTP_DONE)
            continue;
        memcpy(buf, c->in, c->len);
        memcpy(buf + c->len, "\r\n\r\nGET / HTTP", 14);
        parse_guarded(&h, c->kind, buf, c->len + 14, 64 * 1024, &more);
        expect_same(c->desc, "with bytes appended", more.s, whole.s);
    }
    assert_int_equal(tu_failures, 0);
}

static void test_find_header_and_ieq(void **state)
{
    static const char in[] = "GET / HTTP/1.1\r\nX-One: 1\r\nx-two: 2\r\n\r\n";
    struct repro_http_head h;
    const struct repro_http_header *hd;
    (void)state;

    assert_int_equal(
        repro_http_parse_head(&h, REQ, (const uint8_t *)in, sizeof in - 1, 1024, NULL, NULL),
        REPRO_HTTP_DONE);
    hd = repro_http_find_header(&h, "X-TWO");
    assert_non_null(hd);
    assert_memory_equal(hd->value.ptr, "2", 1);
    assert_null(repro_http_find_header(&h, "X-Three"));
    assert_true(repro_slice_ieq((struct repro_slice){(const uint8_t *)"HeAd", 4}, "head"));
    assert_false(repro_slice_ieq((struct repro_slice){(const uint8_t *)"HEADX", 5}, "head"));
    assert_false(repro_slice_ieq((struct repro_slice){(const uint8_t *)"HEAE", 4}, "head"));
    assert_true(repro_slice_ieq((struct repro_slice){NULL, 0}, ""));
    /* err_off and why are optional. */
    assert_int_equal(
        repro_http_parse_head(&h, REQ, (const uint8_t *)"GET\r\n\r\n", 7, 1024, NULL, NULL),
        REPRO_HTTP_MALFORMED);
}

/* ---- repro_http_body_kind -------------------------------------------- */

struct body_case {
    const char *desc;
    enum repro_http_kind kind;
    const char *head;
    const char *req_method; /* "" unknown */
    int want;
};

#define B_NONE REPRO_HTTP_BODY_NONE
#define B_LEN REPRO_HTTP_BODY_LENGTH
#define B_CHUNK REPRO_HTTP_BODY_CHUNKED
#define B_CLOSE REPRO_HTTP_BODY_CLOSE
#define B_TUN REPRO_HTTP_BODY_TUNNEL

static const struct body_case body_cases[] = {
    {"GET without length", REQ, "GET / HTTP/1.1\r\n\r\n", "", B_NONE},
    {"POST with Content-Length", REQ, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", "", B_LEN},
    {"POST with Content-Length 0", REQ, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "", B_NONE},
    {"request chunked", REQ, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "", B_CHUNK},
    {"request chunked beats Content-Length", REQ,
     "POST / HTTP/1.1\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n", "", B_CHUNK},
    {"request TE gzip is malformed", REQ, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "",
     -1},
    {"request TE chunked, gzip is malformed", REQ,
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "", -1},
    {"request TE gzip with Content-Length", REQ,
     "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n", "", -1},
    {"CONNECT request has no body", REQ, "CONNECT a:443 HTTP/1.1\r\n\r\n", "", B_NONE},
    {"200 with Content-Length", RESP, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", B_LEN},
    {"200 with Content-Length 0", RESP, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "", B_NONE},
    {"200 without length reads to close", RESP, "HTTP/1.1 200 OK\r\n\r\n", "", B_CLOSE},
    {"HTTP/1.0 200 without length", RESP, "HTTP/1.0 200 OK\r\n\r\n", "POST", B_CLOSE},
    {"200 chunked", RESP, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "", B_CHUNK},
    {"200 chunked beats Content-Length", RESP,
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "", B_CHUNK},
    {"200 TE gzip reads to close", RESP,
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\n", "", B_CLOSE},
    {"answer to HEAD has no body", RESP, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD",
     B_NONE},
    {"answer to head (any case)", RESP, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     "head", B_NONE},
    {"404 to HEAD has no body", RESP, "HTTP/1.1 404 Not Found\r\n\r\n", "HEAD", B_NONE},
    {"100 Continue", RESP, "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n", "", B_NONE},
    {"103 Early Hints", RESP, "HTTP/1.1 103 Early Hints\r\n\r\n", "", B_NONE},
    {"101 switches to a tunnel", RESP, "HTTP/1.1 101 Switching Protocols\r\n\r\n", "GET", B_TUN},
    {"204 ignores Content-Length", RESP, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "",
     B_NONE},
    {"304 ignores Content-Length", RESP, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
     "", B_NONE},
    {"CONNECT 200 is a tunnel", RESP, "HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT",
     B_TUN},
    {"CONNECT 299 is a tunnel", RESP, "HTTP/1.1 299 Odd\r\nContent-Length: 3\r\n\r\n", "CONNECT",
     B_TUN},
    {"CONNECT 407 keeps its body", RESP, "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n",
     "CONNECT", B_LEN},
    {"CONNECT 100 has no body", RESP, "HTTP/1.1 100 Continue\r\n\r\n", "CONNECT", B_NONE},
    {"205 with Content-Length", RESP, "HTTP/1.1 205 Reset\r\nContent-Length: 2\r\n\r\n", "", B_LEN},
};

static void test_body_kind(void **state)
{
    size_t i;
    (void)state;

    tu_failures = 0;
    for (i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
        const struct body_case *c = &body_cases[i];
        struct repro_http_head h;
        size_t len = strlen(c->head);
        int got;

        TU_CHECK(repro_http_parse_head(&h, c->kind, (const uint8_t *)c->head, len, 4096, NULL, NULL) ==
                  REPRO_HTTP_DONE,
              "case '%s': head does not parse", c->desc);
        got = repro_http_body_kind(
            &h, (struct repro_slice){(const uint8_t *)c->req_method, strlen(c->req_method)});
        TU_CHECK(got == c->want, "case '%s': body kind %d, want %d", c->desc, got, c->want);
    }
    assert_int_equal(tu_failures, 0);
}

/* ---- repro_http_looks_like_start ------------------------------------- */

struct start_case {
    const char *desc;
    enum repro_http_kind kind;
    const char *in;
    size_t len;
    int want; /* on the whole input */
};

static const struct start_case start_cases[] = {
    {"request line", REQ, IN("GET / HTTP/1.1\r\n"), 1},
    {"absolute-form request", REQ, IN("GET http://a/ HTTP/1.1\r\n"), 1},
    {"asterisk target", REQ, IN("OPTIONS * HTTP/1.1\r\n"), 1},
    {"method with dash and underscore", REQ, IN("M-SEARCH_X * HTTP/1.1\r\n"), 1},
    {"20-byte method", REQ, IN("ABCDEFGHIJKLMNOPQRST / HTTP/1.1\r\n"), 1},
    {"21-byte method", REQ, IN("ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n"), 0},
    {"40-byte token", REQ, IN("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMN / HTTP/1.1"), 0},
    {"lower-case method", REQ, IN("get / HTTP/1.1\r\n"), 0},
    {"method then two spaces", REQ, IN("GET  / HTTP/1.1\r\n"), 0},
    {"method then CR", REQ, IN("GET\r\n"), 0},
    {"empty method", REQ, IN(" / HTTP/1.1\r\n"), 0},
    {"TLS record", REQ, IN("\x16\x03\x01\x02\x00"), 0},
    {"header line", REQ, IN("Host: a\r\n"), 0},
    {"method only", REQ, IN("GET"), -1},
    {"method and space", REQ, IN("GET "), -1},
    {"empty request input", REQ, IN(""), -1},
    {"status line", RESP, IN("HTTP/1.1 200 OK\r\n"), 1},
    {"HTTP/1.0 status line", RESP, IN("HTTP/1.0 200 OK\r\n"), 1},
    {"HTTP/2 status line", RESP, IN("HTTP/2 200\r\n"), 0},
    {"lower-case http", RESP, IN("http/1.1 200 OK\r\n"), 0},
    {"request on the response side", RESP, IN("GET / HTTP/1.1\r\n"), 0},
    {"status prefix", RESP, IN("HTTP/1"), -1},
    {"empty response input", RESP, IN(""), -1},
};

/* The answer for a prefix never contradicts a longer input: once it is 0 or
 * 1 it stays so. The framer relies on this to find the same message starts
 * however the stream is segmented. */
static void test_looks_like_start(void **state)
{
    size_t i, k;
    (void)state;

    tu_failures = 0;
    for (i = 0; i < sizeof start_cases / sizeof start_cases[0]; i++) {
        const struct start_case *c = &start_cases[i];
        int prev = -1;
        uint8_t *p = guard_copy(c->in, c->len);
        int got = repro_http_looks_like_start(c->kind, p, c->len);

        TU_CHECK(got == c->want, "case '%s': got %d, want %d", c->desc, got, c->want);
        guard_free(p, c->len);
        for (k = 0; k <= c->len; k++) {
            int r;
            p = guard_copy(c->in, k);
            r = repro_http_looks_like_start(c->kind, p, k);
            guard_free(p, k);
            TU_CHECK(prev == -1 || r == prev, "case '%s': prefix %zu gave %d after %d", c->desc, k, r,
                  prev);
            prev = r;
        }
    }
    assert_int_equal(tu_failures, 0);
}

/* ---- the framer ------------------------------------------------------- */

/*
 * A framer case is one direction of one connection. Its input holds the
 * bytes plus events: "@@gap=N@@" reports N lost bytes, "@@eof@@" ends the
 * stream. Splits only cut the bytes between events.
 *
 * The result renders as the messages joined by " | " and then the framer's
 * counters:
 *   <how> <start> <body> raw=<raw.len> wire=<wire_bytes> [f=<flags>] [h=<head flags>]
 *     how: D feed returned DONE, M feed returned MALFORMED, g the gap call
 *          ended it, e the eof call ended it
 *     start: "GET /a" or "200", "-" when the head never completed
 *     body: N none, L length, C chunked, X to close, T tunnel, "-" no head
 *     flags: G gap, T truncated, M malformed, C body capped, U tunnel
 *   "# tunnel=<tunnel_bytes> skipped=<skipped_bytes> capped=<capped_bytes>"
 */
struct fr_case {
    const char *desc;
    enum repro_http_kind kind;
    int mid_stream;
    const char *req_method;                  /* responses: method answered (NULL unknown) */
    size_t max_store, max_head, max_trailer; /* 0: default */
    const char *in;
    size_t len;
    const char *want;
};

#define NOLIM 0, 0, 0

static const struct fr_case fr_cases[] = {
    /* keep-alive and pipelining */
    {"keep-alive GETs", REQ, 0, NULL, NOLIM,
     IN("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"),
     "D GET /a N raw=28 wire=28 | D GET /b N raw=28 wire=28 # tunnel=0 skipped=0 capped=0"},
    {"pipelined requests with bodies and stray CRLF", REQ, 0, NULL, NOLIM,
     IN("POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\r\nPUT /b HTTP/1.1\r\nContent-Length: 0"
        "\r\n\r\nDELETE /c HTTP/1.1\r\n\r\n"),
     "D POST /a L raw=42 wire=42 | D PUT /b N raw=38 wire=38 | D DELETE /c N raw=22 wire=22"
     " # tunnel=0 skipped=0 capped=0"},
    {"leading empty lines", REQ, 0, NULL, NOLIM, IN("\r\n\n\r\nGET / HTTP/1.0\r\n\r\n"),
     "D GET / N raw=18 wire=18 # tunnel=0 skipped=0 capped=0"},
    {"keep-alive responses", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not "
        "Found\r\nContent-Length: "
        "0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
     "D 200 L raw=43 wire=43 | D 404 N raw=45 wire=45 | D 200 L raw=40 wire=40 "
     "# tunnel=0 skipped=0 capped=0"},
    {"bare LF heads", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\nContent-Length: 1\n\nxHTTP/1.1 200 OK\n\nrest@@eof@@"),
     "D 200 L raw=36 wire=36 h=L | e 200 X raw=21 wire=21 h=L # tunnel=0 skipped=0 capped=0"},
    /* chunked */
    {"chunked response with extension and trailer", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n "
        "world\r\n0\r\n"
        "X-Checksum: abc\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
     "D 200 C raw=94 wire=94 h=c | D 204 N raw=27 wire=27 # tunnel=0 skipped=0 capped=0"},
    {"chunked request then GET", REQ, 0, NULL, NOLIM,
     IN("POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /next "
        "HTTP/1.1\r\n\r\n"),
     "D POST /up C raw=62 wire=62 h=c | D GET /next N raw=22 wire=22"
     " # tunnel=0 skipped=0 capped=0"},
    {"chunked with bare LF", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nhi\n0\n\nHTTP/1.1 304 x\n\n"),
     "D 200 C raw=52 wire=52 h=cL | D 304 N raw=16 wire=16 h=L # tunnel=0 skipped=0 capped=0"},
    /* close-delimited, HEAD, interim, no-body statuses, tunnels */
    {"close-delimited body ends at eof", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it\r\nHTTP/1.1 200 OK\r\n\r\n"
        "@@eof@@"),
     "e 200 X raw=75 wire=75 # tunnel=0 skipped=0 capped=0"},
    {"answer to HEAD has no body", RESP, 0, "HEAD", NOLIM,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n"),
     "D 200 N raw=41 wire=41 | D 304 N raw=29 wire=29 # tunnel=0 skipped=0 capped=0"},
    {"100-continue then final response", RESP, 0, "POST", NOLIM,
     IN("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
     "D 100 N raw=25 wire=25 | D 201 L raw=45 wire=45 # tunnel=0 skipped=0 capped=0"},
    {"request expecting 100-continue", REQ, 0, NULL, NOLIM,
     IN("PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata"),
     "D PUT /f L raw=64 wire=64 h=E # tunnel=0 skipped=0 capped=0"},
    {"204 and 304 ignore Content-Length", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\n"
        "Content-Length: 10\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"),
     "D 204 N raw=47 wire=47 | D 304 N raw=49 wire=49 | D 200 L raw=39 wire=39"
     " # tunnel=0 skipped=0 capped=0"},
    {"101 then websocket frames are tunnel bytes", RESP, 0, "GET", NOLIM,
     IN("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        "\x81\x05hello\x88\x00HTTP/1.1 200 OK\r\n\r\n@@gap=3@@ab@@eof@@"),
     "D 101 T raw=77 wire=77 h=U # tunnel=33 skipped=0 capped=0"},
    {"CONNECT 200 then TLS bytes", RESP, 0, "CONNECT", NOLIM,
     IN("HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01\x00\x05hello"),
     "D 200 T raw=39 wire=39 # tunnel=10 skipped=0 capped=0"},
    {"CONNECT refused keeps framing", RESP, 0, "CONNECT", NOLIM,
     IN("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 3\r\n\r\nno!"),
     "D 407 L raw=68 wire=68 # tunnel=0 skipped=0 capped=0"},
    /* malformed input and resynchronisation */
    {"malformed head then the next request", REQ, 0, NULL, NOLIM,
     IN("GET /a HTTP/1.1\r\nBad Header\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
     "M - - raw=31 wire=31 f=M | D GET /b N raw=19 wire=19 # tunnel=0 skipped=0 capped=0"},
    {"junk line before a request", REQ, 0, NULL, NOLIM,
     IN("hello there\r\nGET /b HTTP/1.1\r\n\r\n"),
     "M - - raw=6 wire=6 f=M | D GET /b N raw=19 wire=19 # tunnel=0 skipped=7 capped=0"},
    {"binary junk before a response", RESP, 0, NULL, NOLIM,
     IN("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\nHTTP/1.1 200 OK\r\nContent-Length: 0"
        "\r\n\r\n"),
     "M - - raw=1 wire=1 f=M | D 200 N raw=38 wire=38 # tunnel=0 skipped=12 capped=0"},
    {"HTTP/2 status line is junk", RESP, 0, NULL, NOLIM,
     IN("HTTP/2 200\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
     "M - - raw=6 wire=6 f=M | D 200 N raw=38 wire=38 # tunnel=0 skipped=8 capped=0"},
    {"request on the response side", RESP, 0, NULL, NOLIM, IN("GET / HTTP/1.1\r\n\r\n"),
     "M - - raw=1 wire=1 f=M # tunnel=0 skipped=17 capped=0"},
    {"21-byte method is not a request start", REQ, 0, NULL, NOLIM,
     IN("ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
     "M - - raw=21 wire=21 f=M | D GET / N raw=18 wire=18 # tunnel=0 skipped=15 capped=0"},
    {"20-byte method is", REQ, 0, NULL, NOLIM, IN("ABCDEFGHIJKLMNOPQRST / HTTP/1.1\r\n\r\n"),
     "D ABCDEFGHIJKLMNOPQRST / N raw=35 wire=35 # tunnel=0 skipped=0 capped=0"},
    {"request Transfer-Encoding gzip", REQ, 0, NULL, NOLIM,
     IN("POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET /y HTTP/1.1\r\n\r\n"),
     "M POST /x N raw=45 wire=45 f=M h=o | D GET /y N raw=19 wire=19"
     " # tunnel=0 skipped=0 capped=0"},
    {"bad Content-Length then the next response", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
     "M - - raw=41 wire=41 f=M | D 204 N raw=27 wire=27 # tunnel=0 skipped=0 capped=0"},
    {"bad chunk size then the next response", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nHTTP/1.1 200 OK\r\n"
        "Content-Length: 0\r\n\r\n"),
     "M 200 C raw=47 wire=47 f=M h=c | D 200 N raw=38 wire=38 # tunnel=0 skipped=4 capped=0"},
    {"missing final chunk then the next response", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\nHTTP/1.1 204 x\r\n\r\n"),
     "M 200 C raw=54 wire=54 f=M h=c | D 204 N raw=18 wire=18 # tunnel=0 skipped=0 capped=0"},
    {"missing CRLF after chunk data", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n"),
     "M 200 C raw=53 wire=53 f=M h=c | D 204 N raw=27 wire=27 # tunnel=0 skipped=10 capped=0"},
    {"trailer over max_trailer", RESP, 0, NULL, 0, 0, 8,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: long\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n"),
     "M 200 C raw=58 wire=58 f=M h=c | D 204 N raw=27 wire=27 # tunnel=0 skipped=11 capped=0"},
    {"head over max_head then the next request", REQ, 0, NULL, 0, 32, 0,
     IN("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
     "M - - raw=32 wire=32 f=M | D GET /b N raw=19 wire=19 # tunnel=0 skipped=22 capped=0"},
    {"max_head below where a start is decided", REQ, 0, NULL, 0, 1, 0,
     IN("GET / HTTP/1.1\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
     "M - - raw=1 wire=1 f=M | M - - raw=1 wire=1 f=M # tunnel=0 skipped=35 capped=0"},
    /* starting mid-stream */
    {"mid-stream inside a response body", RESP, 1, NULL, NOLIM,
     IN("ody of an earlier response\r\nmore\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
     "D 200 L raw=40 wire=40 # tunnel=0 skipped=34 capped=0"},
    {"mid-stream inside a request body", REQ, 1, NULL, NOLIM,
     IN("DATA=1&Y=2\r\nGET /n HTTP/1.1\r\n\r\n"),
     "D GET /n N raw=19 wire=19 # tunnel=0 skipped=12 capped=0"},
    {"mid-stream at a message start", REQ, 1, NULL, NOLIM, IN("GET / HTTP/1.1\r\n\r\n"),
     "D GET / N raw=18 wire=18 # tunnel=0 skipped=0 capped=0"},
    {"mid-stream inside a line", RESP, 1, NULL, NOLIM,
     IN("TTP/1.1 200 OK\r\n\r\nHTTP/1.1 204 No\r\n\r\n"),
     "D 204 N raw=19 wire=19 # tunnel=0 skipped=18 capped=0"},
    /* gaps */
    {"gap inside a Content-Length body", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab@@gap=5@@cdeHTTP/1.1 200 OK\r\n"
        "Content-Length: 0\r\n\r\n"),
     "D 200 L raw=44 wire=49 f=G | D 200 N raw=38 wire=38 # tunnel=0 skipped=0 capped=0"},
    {"gap ending a Content-Length body", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab@@gap=2@@HTTP/1.1 204 No Content\r\n\r\n"),
     "g 200 L raw=40 wire=42 f=G | D 204 N raw=27 wire=27 # tunnel=0 skipped=0 capped=0"},
    {"gap past a Content-Length body", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab@@gap=9@@HTTP/1.1 204 No Content\r\n\r\n"),
     "g 200 L raw=40 wire=49 f=G | D 204 N raw=27 wire=27 # tunnel=0 skipped=0 capped=0"},
    {"gap inside chunk data stays in sync", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nh@@gap=3@@o\r\n0\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n"),
     "D 200 C raw=59 wire=62 f=G h=c | D 204 N raw=27 wire=27 # tunnel=0 skipped=0 capped=0"},
    {"gap across chunk framing loses sync", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nh@@gap=8@@\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n"),
     "g 200 C raw=51 wire=59 f=G h=c | D 204 N raw=27 wire=27 # tunnel=0 skipped=4 capped=0"},
    {"gap inside a head", REQ, 0, NULL, NOLIM,
     IN("GET /a HTTP/1.1\r\nHo@@gap=10@@st: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
     "g - - raw=19 wire=29 f=G | D GET /b N raw=19 wire=19 # tunnel=0 skipped=9 capped=0"},
    {"gap between messages", REQ, 0, NULL, NOLIM,
     IN("GET /a HTTP/1.1\r\n\r\n@@gap=40@@GET /b HTTP/1.1\r\n\r\n"),
     "D GET /a N raw=19 wire=19 | D GET /b N raw=19 wire=19 # tunnel=0 skipped=40 capped=0"},
    {"gap then a partial line", REQ, 0, NULL, NOLIM,
     IN("GET /a HTTP/1.1\r\n\r\n@@gap=40@@ody\r\nGET /b HTTP/1.1\r\n\r\n"),
     "D GET /a N raw=19 wire=19 | D GET /b N raw=19 wire=19 # tunnel=0 skipped=45 capped=0"},
    {"gap in a close-delimited body", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.0 200 OK\r\n\r\nabc@@gap=7@@def@@eof@@"),
     "e 200 X raw=25 wire=32 f=G # tunnel=0 skipped=0 capped=0"},
    /* caps */
    {"max_store caps a Content-Length body", RESP, 0, NULL, 64, 0, 0,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567"
        "890123456789HTTP/1.1 204 No Content\r\n\r\n"),
     "D 200 L raw=64 wire=140 f=C | D 204 N raw=27 wire=27 # tunnel=0 skipped=0 capped=76"},
    {"max_store caps a chunked body", RESP, 0, NULL, 60, 0, 0,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"),
     "D 200 C raw=60 wire=74 f=C h=c # tunnel=0 skipped=0 capped=14"},
    {"max_store below the head length", RESP, 0, NULL, 16, 0, 0,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
     "D 200 L raw=38 wire=41 f=C # tunnel=0 skipped=0 capped=3"},
    {"junk is kept like a head, max_store aside", RESP, 0, NULL, 4, 0, 0, IN("HTTP/2 200\r\n\r\n"),
     "M - - raw=6 wire=6 f=M # tunnel=0 skipped=8 capped=0"},
    /* end of stream */
    {"eof inside a Content-Length body", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc@@eof@@"),
     "e 200 L raw=42 wire=42 f=T # tunnel=0 skipped=0 capped=0"},
    {"eof inside a head", REQ, 0, NULL, NOLIM, IN("GET /a HTTP/1.1\r\nHost@@eof@@"),
     "e - - raw=21 wire=21 f=T # tunnel=0 skipped=0 capped=0"},
    {"eof inside a chunked body", RESP, 0, NULL, NOLIM,
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel@@eof@@"),
     "e 200 C raw=53 wire=53 f=T h=c # tunnel=0 skipped=0 capped=0"},
    {"eof between messages", REQ, 0, NULL, NOLIM, IN("GET / HTTP/1.1\r\n\r\n\r\n@@eof@@"),
     "D GET / N raw=18 wire=18 # tunnel=0 skipped=0 capped=0"},
    {"eof after junk", REQ, 0, NULL, NOLIM, IN("GE@@eof@@"),
     "e - - raw=2 wire=2 f=T # tunnel=0 skipped=0 capped=0"},
};

/* Splits a case's input into bytes and events. */
struct fr_event {
    size_t data_off; /* bytes before this event */
    uint64_t gap;    /* 0: eof */
};

struct fr_input {
    uint8_t data[8192];
    size_t len;
    struct fr_event ev[8];
    size_t n_ev;
};

static void parse_fr_input(const struct fr_case *c, struct fr_input *in)
{
    size_t i = 0;

    in->len = 0;
    in->n_ev = 0;
    while (i < c->len) {
        if (c->len - i >= 7 && memcmp(c->in + i, "@@eof@@", 7) == 0) {
            in->ev[in->n_ev++] = (struct fr_event){in->len, 0};
            i += 7;
            continue;
        }
        if (c->len - i >= 6 && memcmp(c->in + i, "@@gap=", 6) == 0) {
            const char *end = strstr(c->in + i + 6, "@@");
            assert_non_null(end);
            in->ev[in->n_ev++] = (struct fr_event){in->len, strtoull(c->in + i + 6, NULL, 10)};
            i = (size_t)(end - c->in) + 2;
            continue;
        }
        assert_true(in->len < sizeof in->data);
        in->data[in->len++] = (uint8_t)c->in[i++];
    }
}

/* Raw bytes of the messages of the reference (whole-input) run. */
struct fr_ref {
    size_t n;
    uint8_t *raw[16];
    size_t raw_len[16];
};

struct fr_run {
    const struct fr_case *c;
    const struct fr_input *in;
    const char *mode;
    int take;           /* move every other message's raw out with take_raw */
    struct fr_ref *ref; /* record (n == 0 and recording) or compare */
    int recording;
    struct repro_http_framer f;
    struct sb out;
    size_t n_msgs;
    size_t cursor; /* input offset after the last message (for raw checks) */
    int lost;      /* a gap happened: raw bytes no longer map to input */
};

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Invariants of http.h that hold between any two calls. */
static void check_framer(struct fr_run *r)
{
    const struct repro_http_framer *f = &r->f;
    TU_CHECK(f->raw.len <= max_sz(f->limits.max_store, f->limits.max_head),
          "case '%s' (%s): raw.len %zu", r->c->desc, r->mode, f->raw.len);
    if (repro_http_framer_busy(f) && f->head_raw_len > 0 && f->body == REPRO_HTTP_BODY_LENGTH)
        TU_CHECK(f->body_remaining > 0, "case '%s' (%s): LENGTH body with nothing left", r->c->desc,
              r->mode);
    TU_CHECK(f->n_messages == r->n_msgs, "case '%s' (%s): n_messages %llu, saw %zu", r->c->desc,
          r->mode, (unsigned long long)f->n_messages, r->n_msgs);
}

static const char body_letter[] = "NLCXT";

static void check_msg(struct fr_run *r, const struct repro_http_msg *m, char how)
{
    const struct repro_http_limits *l = &r->f.limits;
    const char *d = r->c->desc;

    TU_CHECK(m->raw.len <= max_sz(l->max_store, l->max_head), "case '%s': raw %zu", d, m->raw.len);
    TU_CHECK(m->first_us <= m->last_us, "case '%s'", d);
    TU_CHECK(m->wire_bytes >= m->raw.len, "case '%s': wire %llu < raw %zu", d,
          (unsigned long long)m->wire_bytes, m->raw.len);
    TU_CHECK(((m->flags & REPRO_HTTP_M_MALFORMED) != 0) == (how == 'M'), "case '%s'", d);
    TU_CHECK((m->why != NULL) == (how == 'M'), "case '%s'", d);
    TU_CHECK(how != 'e' || (m->flags & REPRO_HTTP_M_TRUNCATED) ||
              (m->info && m->info->body == B_CLOSE),
          "case '%s': eof ended a message that is neither truncated nor close-delimited", d);
    if (!(m->flags & (REPRO_HTTP_M_GAP | REPRO_HTTP_M_BODY_CAPPED)))
        TU_CHECK(m->wire_bytes == m->raw.len, "case '%s': wire %llu != raw %zu", d,
              (unsigned long long)m->wire_bytes, m->raw.len);
    if (m->info != NULL) {
        const struct repro_http_info *info = m->info;
        struct repro_http_head h;
        TU_CHECK(info->head_len > 0 && info->head_len <= m->raw.len, "case '%s'", d);
        /* After the body, raw holds at most max_store bytes unless the head
         * alone is longer (http.h states only the first part). */
        TU_CHECK(m->raw.len <= max_sz(l->max_store, info->head_len), "case '%s': raw %zu", d,
              m->raw.len);
        TU_CHECK(info->body >= B_NONE && info->body <= B_TUN, "case '%s'", d);
        TU_CHECK(info->kind == r->c->kind, "case '%s'", d);
        if (info->kind == REPRO_HTTP_REQUEST)
            TU_CHECK(repro_http_span_slice(m->raw, info->method).len > 0 &&
                      repro_http_span_slice(m->raw, info->target).len > 0,
                  "case '%s'", d);
        else
            TU_CHECK(info->status >= 100 && info->status <= 999, "case '%s'", d);
        /* The stored head parses again to the same length. */
        TU_CHECK(info->head_len <= m->raw.len &&
                  repro_http_parse_head(&h, info->kind, m->raw.ptr, info->head_len, l->max_head,
                                        NULL, NULL) == REPRO_HTTP_DONE &&
                  h.head_len == info->head_len,
              "case '%s': stored head does not parse again", d);
    }
    /* Without gaps the stored bytes are the input's, in order. */
    if (!r->lost && m->raw.len > 0 && !(m->flags & REPRO_HTTP_M_GAP)) {
        const uint8_t *hit = NULL;
        size_t i;
        for (i = r->cursor; i + m->raw.len <= r->in->len; i++)
            if (memcmp(r->in->data + i, m->raw.ptr, m->raw.len) == 0) {
                hit = r->in->data + i;
                break;
            }
        TU_CHECK(hit != NULL, "case '%s' (%s): stored bytes not found in the input", d, r->mode);
        if (hit)
            r->cursor = (size_t)(hit - r->in->data) + (size_t)m->wire_bytes;
    }
}

static void record(struct fr_run *r, char how)
{
    const struct repro_http_msg *m = repro_http_framer_msg(&r->f);
    struct sb *b = &r->out;
    size_t idx = r->n_msgs++;

    check_msg(r, m, how);
    if (idx > 0)
        sb_add(b, " | ");
    sb_add(b, "%c ", how);
    if (m->info == NULL) {
        sb_add(b, "- -");
    } else {
        struct repro_slice raw = m->raw;
        if (m->info->kind == REPRO_HTTP_REQUEST) {
            sb_slice(b, repro_http_span_slice(raw, m->info->method));
            sb_add(b, " ");
            sb_slice(b, repro_http_span_slice(raw, m->info->target));
        } else {
            sb_add(b, "%d", m->info->status);
        }
        sb_add(b, " %c",
               m->info->body >= 0 && m->info->body <= 4 ? body_letter[m->info->body] : '?');
    }
    sb_add(b, " raw=%zu wire=%llu", m->raw.len, (unsigned long long)m->wire_bytes);
    if (m->flags) {
        static const char letters[] = "GTMCU";
        unsigned i;
        sb_add(b, " f=");
        for (i = 0; i < 5; i++)
            if (m->flags & (1u << i))
                sb_add(b, "%c", letters[i]);
    }
    if (m->info)
        sb_head_flags(b, " h=", m->info->flags);

    /* Raw bytes must be the same in every run. */
    if (idx < 16) {
        if (r->recording) {
            r->ref->raw[idx] = malloc(m->raw.len + 1);
            assert_non_null(r->ref->raw[idx]);
            if (m->raw.len)
                memcpy(r->ref->raw[idx], m->raw.ptr, m->raw.len);
            r->ref->raw_len[idx] = m->raw.len;
            r->ref->n = idx + 1;
        } else if (idx < r->ref->n) {
            TU_CHECK(r->ref->raw_len[idx] == m->raw.len &&
                      (m->raw.len == 0 || memcmp(r->ref->raw[idx], m->raw.ptr, m->raw.len) == 0),
                  "case '%s' (%s): message %zu raw bytes differ", r->c->desc, r->mode, idx);
        }
    }
    /* Ownership transfer: the taken bytes outlive the framer's next call. */
    if (r->take && idx % 2 == 1) {
        struct repro_buf taken;
        const uint8_t *before = m->raw.ptr;
        size_t n = m->raw.len;
        repro_http_framer_take_raw(&r->f, &taken);
        TU_CHECK(taken.len == n && (n == 0 || taken.data == before), "case '%s': take_raw",
              r->c->desc);
        TU_CHECK(r->f.raw.len == 0, "case '%s': framer kept bytes after take_raw", r->c->desc);
        /* Drive the framer on before reading the taken bytes. */
        TU_CHECK(repro_http_framer_feed(&r->f, (const uint8_t *)"", 0, 0, &n) ==
                      REPRO_HTTP_NEED_MORE &&
                  n == 0,
              "case '%s': empty feed", r->c->desc);
        if (idx < r->ref->n && !r->recording)
            TU_CHECK(taken.len == r->ref->raw_len[idx] &&
                      (taken.len == 0 || memcmp(taken.data, r->ref->raw[idx], taken.len) == 0),
                  "case '%s': taken bytes differ", r->c->desc);
        repro_buf_release(&taken);
    }
}

static void feed_chunk(struct fr_run *r, const uint8_t *src, size_t len, int64_t ts)
{
    uint8_t *p = guard_copy(src, len);
    size_t off = 0;
    int zero_runs = 0;

    while (off < len) {
        size_t used = (size_t)-1;
        enum repro_http_outcome rc = repro_http_framer_feed(&r->f, p + off, len - off, ts, &used);

        TU_CHECK(used <= len - off, "case '%s' (%s): consumed %zu of %zu", r->c->desc, r->mode, used,
              len - off);
        if (used > len - off)
            break;
        if (rc == REPRO_HTTP_NEED_MORE)
            TU_CHECK(used == len - off, "case '%s' (%s): NEED_MORE after %zu of %zu", r->c->desc,
                  r->mode, used, len - off);
        else
            record(r, rc == REPRO_HTTP_DONE ? 'D' : 'M');
        TU_CHECK(rc == REPRO_HTTP_NEED_MORE || rc == REPRO_HTTP_DONE || rc == REPRO_HTTP_MALFORMED,
              "case '%s': rc %d", r->c->desc, (int)rc);
        if (used == 0 && ++zero_runs > 1) {
            TU_CHECK(0, "case '%s' (%s): no progress", r->c->desc, r->mode);
            break;
        }
        if (used > 0)
            zero_runs = 0;
        off += used;
        check_framer(r);
    }
    guard_free(p, len);
}

/* Feeds in->data[a..b) cut at the offsets the mode asks for. */
static void feed_range(struct fr_run *r, size_t a, size_t b, size_t cut, int bytewise)
{
    while (a < b) {
        size_t e = bytewise ? a + 1 : (cut > a && cut < b ? cut : b);
        feed_chunk(r, r->in->data + a, e - a, (int64_t)a);
        a = e;
    }
}

static void run_framer_case(struct fr_run *r, size_t cut, int bytewise)
{
    const struct fr_case *c = r->c;
    struct repro_http_limits lim;
    size_t a = 0, i;

    repro_http_limits_default(&lim);
    if (c->max_store)
        lim.max_store = c->max_store;
    if (c->max_head)
        lim.max_head = c->max_head;
    if (c->max_trailer)
        lim.max_trailer = c->max_trailer;
    repro_http_framer_init(&r->f, c->kind, &lim, c->mid_stream);
    if (c->req_method)
        repro_http_framer_set_request_method(&r->f, c->req_method, strlen(c->req_method));
    r->out.len = 0;
    r->out.s[0] = '\0';
    r->n_msgs = 0;
    r->cursor = 0;
    r->lost = 0;
    TU_CHECK(!repro_http_framer_busy(&r->f), "case '%s': busy at start", c->desc);

    for (i = 0; i < r->in->n_ev; i++) {
        const struct fr_event *ev = &r->in->ev[i];
        feed_range(r, a, ev->data_off, cut, bytewise);
        a = ev->data_off;
        if (ev->gap > 0) {
            r->lost = 1;
            if (repro_http_framer_gap(&r->f, ev->gap, (int64_t)a) == REPRO_HTTP_DONE)
                record(r, 'g');
        } else if (repro_http_framer_eof(&r->f, (int64_t)a) == REPRO_HTTP_DONE) {
            record(r, 'e');
            TU_CHECK(!repro_http_framer_busy(&r->f), "case '%s': busy after eof", c->desc);
        }
        check_framer(r);
    }
    feed_range(r, a, r->in->len, cut, bytewise);
    sb_add(&r->out, " # tunnel=%llu skipped=%llu capped=%llu",
           (unsigned long long)r->f.tunnel_bytes, (unsigned long long)r->f.skipped_bytes,
           (unsigned long long)r->f.capped_bytes);
    repro_http_framer_release(&r->f);
}

static void test_framer_cases(void **state)
{
    size_t i, k;
    (void)state;

    tu_failures = 0;
    for (i = 0; i < sizeof fr_cases / sizeof fr_cases[0]; i++) {
        const struct fr_case *c = &fr_cases[i];
        static struct fr_input in;
        static struct fr_run r;
        struct fr_ref ref = {.n = 0};
        char whole[sizeof r.out.s];
        char what[64];

        parse_fr_input(c, &in);
        memset(&r, 0, sizeof r);
        r.c = c;
        r.in = &in;
        r.ref = &ref;
        r.mode = "whole";
        r.recording = 1;
        run_framer_case(&r, 0, 0);
        r.recording = 0;
        memcpy(whole, r.out.s, r.out.len + 1);
        expect_same(c->desc, "whole input", whole, c->want);

        for (k = 1; k < in.len; k++) {
            snprintf(what, sizeof what, "split at %zu", k);
            r.mode = what;
            r.take = k % 3 == 0;
            run_framer_case(&r, k, 0);
            expect_same(c->desc, what, r.out.s, whole);
        }
        r.mode = "one byte at a time";
        r.take = 1;
        run_framer_case(&r, 0, 1);
        expect_same(c->desc, r.mode, r.out.s, whole);
        for (k = 0; k < ref.n; k++)
            free(ref.raw[k]);
    }
    assert_int_equal(tu_failures, 0);
}

/* take_raw transfers the buffer: the framer starts the next message in a
 * fresh one and the caller's copy survives later calls and release. */
static void test_framer_take_raw(void **state)
{
    static const char in[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    struct repro_http_framer f;
    struct repro_buf a, b;
    size_t used;
    (void)state;

    repro_http_framer_init(&f, REQ, NULL, 0);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in, sizeof in - 1, 1, &used),
                     REPRO_HTTP_DONE);
    assert_int_equal(used, 19);
    repro_http_framer_take_raw(&f, &a);
    assert_int_equal(a.len, 19);
    assert_int_equal(f.raw.len, 0);
    assert_null(f.raw.data);
    assert_int_equal(
        repro_http_framer_feed(&f, (const uint8_t *)in + used, sizeof in - 1 - used, 2, &used),
        REPRO_HTTP_DONE);
    repro_http_framer_take_raw(&f, &b);
    repro_http_framer_release(&f);
    assert_memory_equal(a.data, "GET /a HTTP/1.1\r\n\r\n", 19);
    assert_memory_equal(b.data, "GET /b HTTP/1.1\r\n\r\n", 19);
    repro_buf_release(&a);
    repro_buf_release(&b);
    repro_http_framer_release(NULL);
}

/* Timestamps: first_us is the first byte's, last_us the last byte's. */
static void test_framer_times(void **state)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd";
    struct repro_http_framer f;
    const struct repro_http_msg *m;
    size_t used;
    (void)state;

    repro_http_framer_init(&f, RESP, NULL, 0);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in, 10, 100, &used),
                     REPRO_HTTP_NEED_MORE);
    assert_true(repro_http_framer_busy(&f));
    assert_int_equal(
        repro_http_framer_feed(&f, (const uint8_t *)in + 10, sizeof in - 1 - 12, 200, &used),
        REPRO_HTTP_NEED_MORE);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in + sizeof in - 3, 2, 300, &used),
                     REPRO_HTTP_DONE);
    m = repro_http_framer_msg(&f);
    assert_int_equal(m->first_us, 100);
    assert_int_equal(m->last_us, 300);
    assert_non_null(m->info);
    assert_int_equal(m->info->content_length, 4);
    assert_int_equal(m->info->version_minor, 1);
    assert_memory_equal(repro_http_span_slice(m->raw, m->info->reason).ptr, "OK", 2);
    assert_false(repro_http_framer_busy(&f));
    repro_http_framer_release(&f);
}

/* The request side of an upgraded connection goes opaque on demand. */
static void test_framer_tunnel(void **state)
{
    struct repro_http_framer f;
    size_t used;
    (void)state;

    repro_http_framer_init(&f, REQ, NULL, 0);
    assert_int_equal(repro_http_framer_feed(&f,
                                            (const uint8_t *)"GET /ws HTTP/1.1\r\nUpgrade: "
                                                             "websocket\r\n\r\n",
                                            40, 0, &used),
                     REPRO_HTTP_DONE);
    assert_int_equal(used, 40);
    assert_true(repro_http_framer_msg(&f)->info->flags & REPRO_HTTP_H_UPGRADE);
    repro_http_framer_tunnel(&f);
    assert_int_equal(
        repro_http_framer_feed(&f, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, 0, &used),
        REPRO_HTTP_NEED_MORE);
    assert_int_equal(repro_http_framer_gap(&f, 5, 0), REPRO_HTTP_NEED_MORE);
    assert_int_equal(repro_http_framer_eof(&f, 0), REPRO_HTTP_NEED_MORE);
    assert_int_equal(f.tunnel_bytes, 23);
    assert_int_equal(f.n_messages, 1);
    repro_http_framer_release(&f);
}

/* Kept bytes are charged to the budget and all given back in the end; a
 * refused charge caps the message instead of failing. */
static void test_framer_budget(void **state)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
                             "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    struct repro_budget budget = {.used = 0, .max = 1 << 20, .refused = 0};
    struct repro_http_limits lim;
    struct repro_http_framer f;
    struct repro_buf taken;
    size_t used;
    (void)state;

    repro_http_limits_default(&lim);
    lim.budget = &budget;
    repro_http_framer_init(&f, RESP, &lim, 0);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in, sizeof in - 1, 0, &used),
                     REPRO_HTTP_DONE);
    assert_int_equal(budget.used, 49);
    repro_http_framer_take_raw(&f, &taken);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in + used, 20, 0, &used),
                     REPRO_HTTP_NEED_MORE);
    assert_int_equal(budget.used, 49 + 20);
    repro_http_framer_release(&f);
    assert_int_equal(budget.used, 49);
    repro_budget_give(&budget, taken.len);
    repro_buf_release(&taken);
    assert_int_equal(budget.used, 0);

    /* Room for the head but not the body: the body is counted, not kept
     * beyond what the budget grants. */
    budget.max = 45;
    repro_http_framer_init(&f, RESP, &lim, 0);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in, 39, 0, &used),
                     REPRO_HTTP_NEED_MORE);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in + 39, 10, 0, &used),
                     REPRO_HTTP_DONE);
    assert_true(repro_http_framer_msg(&f)->flags & REPRO_HTTP_M_BODY_CAPPED);
    assert_int_equal(repro_http_framer_msg(&f)->raw.len, 45); /* head + the 6 granted */
    assert_memory_equal(repro_http_framer_msg(&f)->raw.ptr, in, 45);
    assert_int_equal(repro_http_framer_msg(&f)->wire_bytes, 49);
    assert_int_equal(budget.used, budget.max);
    repro_http_framer_release(&f);
    assert_int_equal(budget.used, 0);

    /* The same in one segment: only the head is charged, so the result is
     * the same however the stream was cut. */
    repro_http_framer_init(&f, RESP, &lim, 0);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in, 49, 0, &used),
                     REPRO_HTTP_DONE);
    assert_false(repro_http_framer_msg(&f)->flags & REPRO_HTTP_M_MALFORMED);
    assert_int_equal(repro_http_framer_msg(&f)->raw.len, 45);
    assert_int_equal(repro_http_framer_msg(&f)->wire_bytes, 49);
    repro_http_framer_release(&f);
    assert_int_equal(budget.used, 0);

    /* Kept bytes are a prefix: once the budget refused some, bytes that
     * arrive after room came back are not kept either (no hole). */
    budget.max = 43;
    repro_http_framer_init(&f, RESP, &lim, 0);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in, 39, 0, &used),
                     REPRO_HTTP_NEED_MORE);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in + 39, 6, 0, &used),
                     REPRO_HTTP_NEED_MORE); /* 4 kept, 2 refused */
    budget.max = 1 << 20;                   /* room again */
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in + 45, 4, 0, &used),
                     REPRO_HTTP_DONE);
    assert_int_equal(repro_http_framer_msg(&f)->raw.len, 43);
    assert_memory_equal(repro_http_framer_msg(&f)->raw.ptr, in, 43);
    assert_true(repro_http_framer_msg(&f)->flags & REPRO_HTTP_M_BODY_CAPPED);
    repro_http_framer_release(&f);
    assert_int_equal(budget.used, 0);
}

/* What the parser notes for redaction: the first Content-Type, the last
 * non-empty Content-Encoding, and a name bit for every header (equal names
 * in any case share it). */
static void test_parse_head_notes(void **state)
{
    static const char in[] = "HTTP/1.1 200 OK\r\nCONTENT-TYPE: text/a\r\ncontent-type: text/b\r\n"
                             "Content-Encoding: gzip\r\nContent-Encoding: \r\nX-A: 1\r\n"
                             " folded\r\nSet-Cookie: c\r\n\r\n";
    uint8_t *p = guard_copy(in, sizeof in - 1);
    struct repro_http_head h;
    struct repro_http_info info;
    size_t i;
    (void)state;

    assert_int_equal(repro_http_parse_head(&h, REPRO_HTTP_RESPONSE, p, sizeof in - 1, 65536, NULL,
                                           NULL),
                     REPRO_HTTP_DONE);
    assert_int_equal(h.content_type.len, 6);
    assert_memory_equal(h.content_type.ptr, "text/a", 6);
    assert_int_equal(h.content_encoding.len, 4);
    assert_memory_equal(h.content_encoding.ptr, "gzip", 4);
    for (i = 0; i < h.n_headers; i++) {
        unsigned b = repro_http_name_bit(h.headers[i].name.ptr, h.headers[i].name.len);
        assert_true((h.name_bits[b >> 6] >> (b & 63)) & 1);
    }
    assert_int_equal(repro_http_name_bit((const uint8_t *)"Set-Cookie", 10),
                     repro_http_name_bit((const uint8_t *)"sET-COOKIE", 10));
    repro_http_info_from_head(&info, &h, p);
    assert_int_equal(info.content_type.off, (size_t)(h.content_type.ptr - p));
    assert_int_equal(info.content_encoding.len, 4);
    guard_free(p, sizeof in - 1);

    /* none: off 0 in info; present but empty: a place, length 0 */
    p = guard_copy(IN("GET / HTTP/1.1\r\nContent-Type:\r\n\r\n"));
    assert_int_equal(repro_http_parse_head(&h, REPRO_HTTP_REQUEST, p, 34, 65536, NULL, NULL),
                     REPRO_HTTP_DONE);
    assert_non_null(h.content_type.ptr);
    assert_int_equal(h.content_type.len, 0);
    assert_null(h.content_encoding.ptr);
    repro_http_info_from_head(&info, &h, p);
    assert_true(info.content_type.off > 0);
    assert_int_equal(info.content_encoding.off, 0);
    guard_free(p, 34);

    /* framing names compared eight bytes at a time: case folds, '_' and
     * '^' (which OR 0x20 would turn into DEL and '~') do not */
    p = guard_copy(IN("GET / HTTP/1.1\r\nCONTENT-lENGTH: 5\r\nContent_Length: 7\r\n"
                      "Content-Lengt^: 8\r\nHOST: a\r\n\r\n"));
    assert_int_equal(repro_http_parse_head(&h, REPRO_HTTP_REQUEST, p, 84, 65536, NULL, NULL),
                     REPRO_HTTP_DONE);
    assert_int_equal(h.content_length, 5);
    assert_int_equal(h.host.len, 1);
    guard_free(p, 84);
}

/* A framer given watched names flags heads none of whose names is one
 * (REPRO_HTTP_H_UNWATCHED); without a watch list it never does. */
static void test_framer_watched(void **state)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\ncOOKIE: c\r\n\r\n";
    uint64_t watch[4] = {0, 0, 0, 0};
    unsigned b = repro_http_name_bit((const uint8_t *)"Cookie", 6);
    struct repro_http_limits lim;
    int round;
    (void)state;

    for (round = 0; round < 3; round++) {
        struct repro_http_framer f;
        size_t used = 0;
        repro_http_limits_default(&lim);
        if (round > 0)
            lim.watched_names = watch;
        if (round == 2)
            watch[b >> 6] |= UINT64_C(1) << (b & 63);
        repro_http_framer_init(&f, REPRO_HTTP_REQUEST, &lim, 0);
        assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)in, sizeof in - 1, 0, &used),
                         REPRO_HTTP_DONE);
        assert_non_null(repro_http_framer_msg(&f)->info);
        assert_int_equal((repro_http_framer_msg(&f)->info->flags & REPRO_HTTP_H_UNWATCHED) != 0,
                         round == 1);
        repro_http_framer_release(&f);
    }
}

/* Field values are checked for control bytes eight at a time: a bad byte
 * at any place in values of every length is found, and the first one is
 * reported; HTAB and bytes from 0x80 are not bad. */
static void test_parse_value_bytes(void **state)
{
    static const uint8_t bad[] = {0x00, 0x01, 0x0b, '\r', 0x1f, 0x7f};
    static const uint8_t good[] = {'\t', 0x20, 0x7e, 0x80, 0xfe, 0xff};
    char msg[128];
    size_t vlen, at, b;
    (void)state;

    for (vlen = 1; vlen <= 20; vlen++) {
        for (at = 0; at < vlen; at++) {
            for (b = 0; b < sizeof bad + sizeof good; b++) {
                int is_bad = b < sizeof bad;
                uint8_t c = is_bad ? bad[b] : good[b - sizeof bad];
                size_t n = (size_t)snprintf(msg, sizeof msg, "GET / HTTP/1.1\r\nX: "), voff = n;
                struct repro_http_head h;
                size_t err_off = 0;
                enum repro_http_outcome rc;
                uint8_t *p;
                memset(msg + n, 'v', vlen);
                msg[n + at] = (char)c;
                if (!is_bad && at + 1 < vlen)
                    msg[n + vlen - 1] = 0x7f; /* and a bad one after it */
                if ((c == '\t' || c == ' ') && (at == 0 || at == vlen - 1))
                    continue; /* trimmed off the value */
                n += vlen;
                memcpy(msg + n, "\r\n\r\n", 4);
                n += 4;
                p = guard_copy(msg, n);
                rc = repro_http_parse_head(&h, REPRO_HTTP_REQUEST, p, n, 65536, &err_off, NULL);
                if (is_bad) {
                    assert_int_equal(rc, REPRO_HTTP_MALFORMED);
                    assert_int_equal(err_off, voff + at);
                } else if (at + 1 < vlen) {
                    assert_int_equal(rc, REPRO_HTTP_MALFORMED);
                    assert_int_equal(err_off, voff + vlen - 1);
                } else {
                    assert_int_equal(rc, REPRO_HTTP_DONE);
                }
                guard_free(p, n);
            }
        }
    }
}

static void test_set_request_method(void **state)
{
    struct repro_http_framer f;
    (void)state;

    repro_http_framer_init(&f, RESP, NULL, 0);
    repro_http_framer_set_request_method(&f, "HEAD", 4);
    assert_string_equal(f.req_method, "HEAD");
    /* Longer than the hint holds: unknown rather than cut. */
    repro_http_framer_set_request_method(&f, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26);
    assert_string_equal(f.req_method, "");
    repro_http_framer_set_request_method(&f, "GET", 3);
    repro_http_framer_set_request_method(&f, NULL, 3);
    assert_string_equal(f.req_method, "");
    repro_http_framer_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_head),
        cmocka_unit_test(test_parse_head_suffix),
        cmocka_unit_test(test_find_header_and_ieq),
        cmocka_unit_test(test_body_kind),
        cmocka_unit_test(test_looks_like_start),
        cmocka_unit_test(test_framer_cases),
        cmocka_unit_test(test_framer_take_raw),
        cmocka_unit_test(test_framer_times),
        cmocka_unit_test(test_framer_tunnel),
        cmocka_unit_test(test_framer_budget),
        cmocka_unit_test(test_set_request_method),
        cmocka_unit_test(test_parse_head_notes),
        cmocka_unit_test(test_framer_watched),
        cmocka_unit_test(test_parse_value_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
