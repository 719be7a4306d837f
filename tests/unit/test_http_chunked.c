/*
 * Unit tests for the chunked-coding scanner and decoder of http/
 * (repro_http_chunked_scan, _skip, repro_http_dechunk): every input split
 * at every byte, over-long lines, skipping data lost in a gap, and the
 * decoder's output cap. Inputs sit before a PROT_NONE page (guard_copy).
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

/* ---- chunked scanner and decoder -------------------------------------- */

struct chunk_case {
    const char *desc;
    const char *in;
    size_t len;
    size_t max_trailer; /* 0: 16 KiB */
    enum repro_http_outcome want;
    size_t want_consumed; /* where DONE or MALFORMED stopped; len for NEED_MORE */
    const char *decoded;  /* what repro_http_dechunk yields (NULL: not checked) */
};

#define CH_DONE REPRO_HTTP_DONE
#define CH_MORE REPRO_HTTP_NEED_MORE
#define CH_BAD REPRO_HTTP_MALFORMED

static const struct chunk_case chunk_cases[] = {
    {"one chunk", IN("5\r\nhello\r\n0\r\n\r\n"), 0, CH_DONE, 15, "hello"},
    {"two chunks", IN("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 0, CH_DONE, 26, "hello world"},
    {"upper and lower hex", IN("A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n"), 0, CH_DONE, 35,
     "0123456789abcdefghij"},
    {"leading zeros in size", IN("0005\r\nhello\r\n000\r\n\r\n"), 0, CH_DONE, 20, "hello"},
    {"chunk extensions", IN("5;name=val;x\r\nhello\r\n0;last=\"y\"\r\n\r\n"), 0, CH_DONE, 35,
     "hello"},
    {"whitespace before extension", IN("5 ;a\r\nhello\r\n0\t\r\n\r\n"), 0, CH_DONE, 19, "hello"},
    {"trailers", IN("3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n"), 0, CH_DONE, 29, "abc"},
    {"bare LF everywhere", IN("5\nhello\n0\nX: y\n\n"), 0, CH_DONE, 16, "hello"},
    {"bytes after the last chunk", IN("0\r\n\r\nGET / HTTP/1.1\r\n"), 0, CH_DONE, 5, ""},
    {"empty body", IN("0\r\n\r\n"), 0, CH_DONE, 5, ""},
    {"incomplete data", IN("5\r\nhel"), 0, CH_MORE, 6, "hel"},
    {"incomplete size line", IN("5;ext"), 0, CH_MORE, 5, ""},
    {"last chunk without final CRLF", IN("0\r\n"), 0, CH_MORE, 3, ""},
    {"incomplete trailer", IN("0\r\nX: 1\r\n"), 0, CH_MORE, 9, ""},
    {"empty input", IN(""), 0, CH_MORE, 0, ""},
    {"non-hex size", IN("z\r\n"), 0, CH_BAD, 0, ""},
    {"empty size line", IN("\r\n5\r\nhello\r\n"), 0, CH_BAD, 0, ""},
    {"sign in size", IN("-5\r\nhello\r\n"), 0, CH_BAD, 0, ""},
    {"hex prefix in size", IN("0x5\r\nhello\r\n"), 0, CH_BAD, 1, ""},
    {"size of 2^60 - 1 accepted", IN("fffffffffffffff\r\nab"), 0, CH_MORE, 19, "ab"},
    {"size of 2^60 rejected", IN("1000000000000000\r\n"), 0, CH_BAD, 15, ""},
    {"size of 2^64 rejected", IN("10000000000000000\r\n"), 0, CH_BAD, 15, ""},
    {"data longer than its size", IN("3\r\nabcdef\r\n0\r\n\r\n"), 0, CH_BAD, 6, "abc"},
    {"CR without LF after data", IN("3\r\nabc\rX\r\n"), 0, CH_BAD, 7, "abc"},
    {"second chunk bad", IN("1\r\na\r\nq\r\n"), 0, CH_BAD, 6, "a"},
    {"final CR without LF", IN("0\r\n\rX"), 0, CH_BAD, 4, ""},
    {"trailer within max_trailer", IN("0\r\nX-Long: 1\r\n\r\n"), 11, CH_DONE, 16, ""},
    {"trailer over max_trailer", IN("0\r\nX-Long: 12\r\n\r\n"), 11, CH_BAD, 14, ""},
    {"trailers add up over max_trailer", IN("0\r\nA: 1\r\nB: 2\r\n\r\n"), 10, CH_BAD, 13, ""},
};

static enum repro_http_outcome scan_split(const uint8_t *in, size_t len, size_t max_trailer,
                                          size_t cut, int bytewise, size_t *total)
{
    struct repro_http_chunked c;
    size_t off = 0;

    memset(&c, 0, sizeof c);
    *total = 0;
    while (off < len || (off == 0 && len == 0)) {
        size_t end = bytewise ? off + 1 : (off < cut ? cut : len), used = (size_t)-1;
        uint8_t *p;
        enum repro_http_outcome rc;

        if (end > len)
            end = len;
        p = guard_copy(in + off, end - off);
        rc = repro_http_chunked_scan(&c, p, end - off, max_trailer, &used);
        guard_free(p, end - off);
        if (used > end - off)
            return (enum repro_http_outcome)99;
        *total = off + used;
        if (rc != REPRO_HTTP_NEED_MORE)
            return rc;
        if (used != end - off)
            return (enum repro_http_outcome)98;
        off = end;
        if (len == 0)
            break;
    }
    return REPRO_HTTP_NEED_MORE;
}

static void test_chunked(void **state)
{
    size_t i, k;
    (void)state;

    tu_failures = 0;
    for (i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
        const struct chunk_case *c = &chunk_cases[i];
        const uint8_t *in = (const uint8_t *)c->in;
        size_t max_trailer = c->max_trailer ? c->max_trailer : 16 * 1024, total;
        enum repro_http_outcome rc = scan_split(in, c->len, max_trailer, c->len, 0, &total);
        struct repro_buf out;
        uint8_t *p;
        int drc;

        TU_CHECK(rc == c->want && total == c->want_consumed,
              "case '%s': whole input gave %d at %zu, want %d at %zu", c->desc, (int)rc, total,
              (int)c->want, c->want_consumed);
        for (k = 1; k < c->len; k++) {
            size_t t2;
            enum repro_http_outcome r2 = scan_split(in, c->len, max_trailer, k, 0, &t2);
            TU_CHECK(r2 == rc && t2 == total, "case '%s': split at %zu gave %d at %zu", c->desc, k,
                  (int)r2, t2);
        }
        if (c->len > 0) {
            size_t t3;
            enum repro_http_outcome r3 = scan_split(in, c->len, max_trailer, 0, 1, &t3);
            TU_CHECK(r3 == rc && t3 == total, "case '%s': bytewise gave %d at %zu", c->desc, (int)r3,
                  t3);
        }
        if (c->max_trailer != 0 || c->decoded == NULL)
            continue;
        repro_buf_init(&out, 1 << 20);
        p = guard_copy(in, c->len);
        drc = repro_http_dechunk(p, c->len, &out);
        guard_free(p, c->len);
        TU_CHECK(drc == (int)c->want, "case '%s': dechunk gave %d", c->desc, drc);
        TU_CHECK(out.len == strlen(c->decoded) &&
                  memcmp(out.data ? (const char *)out.data : "", c->decoded, out.len) == 0,
              "case '%s': dechunk gave %zu bytes", c->desc, out.len);
        repro_buf_release(&out);
    }
    assert_int_equal(tu_failures, 0);
}

/* A size line or extension past 4 KiB is malformed; just under is fine. */
static void test_chunked_long_line(void **state)
{
    size_t n = 2 + 4096 + 2, used;
    uint8_t *in = malloc(n + 16), *p;
    struct repro_http_chunked c;
    (void)state;

    assert_non_null(in);
    in[0] = '1';
    in[1] = ';';
    memset(in + 2, 'e', 4096);
    memcpy(in + 2 + 4096, "\r\n", 2);
    p = guard_copy(in, n);
    memset(&c, 0, sizeof c);
    /* ';' starts the extension; the 4096 bytes after it, then CR, make 4097. */
    assert_int_equal(repro_http_chunked_scan(&c, p, n, 1024, &used), REPRO_HTTP_MALFORMED);
    assert_int_equal(used, 2 + 4096);
    guard_free(p, n);
    memcpy(in + 2 + 4095, "\r\nx\r\n0\r\n\r\n", 10);
    n = 2 + 4095 + 10;
    p = guard_copy(in, n);
    memset(&c, 0, sizeof c);
    assert_int_equal(repro_http_chunked_scan(&c, p, n, 1024, &used), REPRO_HTTP_DONE);
    assert_int_equal(used, n);
    guard_free(p, n);
    free(in);
}

static void test_chunked_skip(void **state)
{
    struct repro_http_chunked c;
    size_t used;
    (void)state;

    memset(&c, 0, sizeof c);
    assert_int_equal(repro_http_chunked_scan(&c, (const uint8_t *)"5\r\nhe", 5, 64, &used),
                     REPRO_HTTP_NEED_MORE);
    /* A gap inside the chunk data keeps the scanner in sync. */
    assert_int_equal(repro_http_chunked_skip(&c, 2), REPRO_HTTP_DONE);
    assert_int_equal(c.remaining, 1);
    /* One that reaches past the data does not. */
    assert_int_equal(repro_http_chunked_skip(&c, 1), REPRO_HTTP_MALFORMED);
    assert_int_equal(repro_http_chunked_scan(&c, (const uint8_t *)"o\r\n0\r\n\r\n", 8, 64, &used),
                     REPRO_HTTP_DONE);
    assert_int_equal(used, 8);
    /* Outside chunk data a gap always loses sync. */
    memset(&c, 0, sizeof c);
    assert_int_equal(repro_http_chunked_skip(&c, 1), REPRO_HTTP_MALFORMED);
    assert_int_equal(repro_http_chunked_scan(&c, (const uint8_t *)"5\r", 2, 64, &used),
                     REPRO_HTTP_NEED_MORE);
    assert_int_equal(repro_http_chunked_skip(&c, 1), REPRO_HTTP_MALFORMED);
}

static void test_dechunk_limit(void **state)
{
    static const char in[] = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
    struct repro_buf out;
    (void)state;

    repro_buf_init(&out, 7);
    assert_int_equal(repro_http_dechunk((const uint8_t *)in, sizeof in - 1, &out), REPRO_E_LIMIT);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "hello", 5);
    repro_buf_release(&out);
    /* Decoding appends to what out already holds. */
    repro_buf_init(&out, 64);
    assert_int_equal(repro_buf_append(&out, "<", 1), REPRO_OK);
    assert_int_equal(repro_http_dechunk((const uint8_t *)in, sizeof in - 1, &out), REPRO_HTTP_DONE);
    assert_int_equal(out.len, 11);
    assert_memory_equal(out.data, "<helloworld", 11);
    repro_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_long_line),
        cmocka_unit_test(test_chunked_skip),
        cmocka_unit_test(test_dechunk_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
