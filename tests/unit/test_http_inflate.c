/*
 * http/http_inflate.c: gzip and deflate bodies undone, bounded. Inputs are
 * made here with zlib's deflate (the oracle: what it compressed must come
 * back) and then broken: cut at every byte, flipped, followed by garbage,
 * and inflated from a guard page so that an over-read faults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "repro/http.h"
#include "test_util.h"

/* window_bits: 15 + 16 gzip, 15 zlib, -15 raw deflate */
static size_t squeeze(const void *in, size_t n, int window_bits, uint8_t *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    return len;
}

static int inflate_guarded(const uint8_t *p, size_t n, enum repro_http_coding c, size_t cap,
                           struct repro_buf *out)
{
    uint8_t *g = guard_copy(p, n);
    int rc = repro_http_inflate(g, n, c, cap, out);
    guard_free(g, n);
    return rc;
}

static void test_coding_of(void **state)
{
    static const struct {
        const char *v;
        enum repro_http_coding c;
    } cases[] = {{"", REPRO_HTTP_CODING_NONE},      {"identity", REPRO_HTTP_CODING_NONE},
                 {"GZIP", REPRO_HTTP_CODING_GZIP},  {"x-gzip", REPRO_HTTP_CODING_GZIP},
                 {"deflate", REPRO_HTTP_CODING_DEFLATE}, {"br", REPRO_HTTP_CODING_OTHER},
                 {"gzip, br", REPRO_HTTP_CODING_OTHER}};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct repro_slice v = {(const uint8_t *)cases[i].v, strlen(cases[i].v)};
        assert_int_equal(repro_http_coding_of(v), cases[i].c);
    }
}

static void test_roundtrip_and_prefixes(void **state)
{
    static const struct {
        const char *desc;
        int bits;
        enum repro_http_coding c;
    } cases[] = {{"gzip", 15 + 16, REPRO_HTTP_CODING_GZIP},
                 {"zlib said to be gzip", 15, REPRO_HTTP_CODING_GZIP},
                 {"deflate as zlib", 15, REPRO_HTTP_CODING_DEFLATE},
                 {"deflate sent raw", -15, REPRO_HTTP_CODING_DEFLATE}};
    char text[600];
    uint8_t z[2048];
    struct repro_buf out;
    (void)state;
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "{\"path\":\"/a\",\"n\":12345}"[i % 24];
    repro_buf_init(&out, 1 << 20);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = squeeze(text, sizeof text, cases[k].bits, z, sizeof z);
        if (inflate_guarded(z, n, cases[k].c, 1 << 20, &out) != REPRO_HTTP_INFLATE_END ||
            out.len != sizeof text || memcmp(out.data, text, sizeof text) != 0)
            fail_msg("%s: not decoded back", cases[k].desc);
        /* every cut: a valid prefix, or (raw deflate tried after zlib) corrupt,
         * never an over-read or more than was sent */
        for (size_t cut = 0; cut < n; cut++) {
            int rc = inflate_guarded(z, cut, cases[k].c, 1 << 20, &out);
            if (rc != REPRO_HTTP_INFLATE_PARTIAL && rc != REPRO_HTTP_INFLATE_CORRUPT)
                fail_msg("%s cut at %zu: outcome %d", cases[k].desc, cut, rc);
            assert_true(out.len <= sizeof text);
            assert_memory_equal(out.data ? (const char *)out.data : text, text, out.len);
        }
    }
    repro_buf_release(&out);
}

static void test_malformed(void **state)
{
    uint8_t z[1024], two[2048];
    struct repro_buf out;
    size_t n;
    (void)state;
    repro_buf_init(&out, 1 << 20);
    n = squeeze("hello", 5, 15 + 16, z, sizeof z);
    /* two gzip members: both, as one body */
    memcpy(two, z, n);
    memcpy(two + n, z, n);
    assert_int_equal(inflate_guarded(two, 2 * n, REPRO_HTTP_CODING_GZIP, 100, &out),
                     REPRO_HTTP_INFLATE_END);
    assert_int_equal(out.len, 10);
    /* trailing bytes that start no member */
    memcpy(two + n, "junk", 4);
    assert_int_equal(inflate_guarded(two, n + 4, REPRO_HTTP_CODING_GZIP, 100, &out),
                     REPRO_HTTP_INFLATE_CORRUPT);
    /* a flipped CRC byte, not gzip at all, empty input, another coding */
    memcpy(two, z, n);
    two[n - 6] ^= 0xff;
    assert_int_equal(inflate_guarded(two, n, REPRO_HTTP_CODING_GZIP, 100, &out),
                     REPRO_HTTP_INFLATE_CORRUPT);
    assert_int_equal(inflate_guarded((const uint8_t *)"not gzip!", 9, REPRO_HTTP_CODING_GZIP, 100,
                                     &out),
                     REPRO_HTTP_INFLATE_CORRUPT);
    assert_int_equal(inflate_guarded((const uint8_t *)"\xff\xff\xff", 3, REPRO_HTTP_CODING_DEFLATE,
                                     100, &out),
                     REPRO_HTTP_INFLATE_CORRUPT);
    assert_int_equal(repro_http_inflate(NULL, 0, REPRO_HTTP_CODING_GZIP, 100, &out),
                     REPRO_HTTP_INFLATE_PARTIAL);
    assert_int_equal(repro_http_inflate(z, n, REPRO_HTTP_CODING_OTHER, 100, &out), REPRO_E_INVAL);
    /* the buffer's own cap below the asked cap is the buffer's error */
    struct repro_buf small;
    repro_buf_init(&small, 3);
    assert_int_equal(repro_http_inflate(z, n, REPRO_HTTP_CODING_GZIP, 100, &small), REPRO_E_LIMIT);
    repro_buf_release(&small);
    repro_buf_release(&out);
}

/* 16 MiB of zeros in a few KiB: cut at the cap, exactly, and flagged. */
static void test_bomb(void **state)
{
    static uint8_t zeros[1 << 16], z[1 << 16];
    z_stream s;
    struct repro_buf out;
    (void)state;
    memset(&s, 0, sizeof s);
    assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    s.next_out = z;
    s.avail_out = sizeof z;
    for (int i = 0; i < 256; i++) {
        s.next_in = zeros;
        s.avail_in = sizeof zeros;
        assert_int_equal(deflate(&s, Z_NO_FLUSH), Z_OK);
    }
    assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
    size_t n = sizeof z - s.avail_out;
    deflateEnd(&s);
    assert_true(n < 64 * 1024);
    repro_buf_init(&out, 1 << 20);
    assert_int_equal(inflate_guarded(z, n, REPRO_HTTP_CODING_GZIP, 100000, &out),
                     REPRO_HTTP_INFLATE_CAPPED);
    assert_int_equal(out.len, 100000);
    assert_true(out.cap <= 2 * 100000 + 65536); /* never held whole */
    /* a body exactly at the cap is whole, not cut */
    n = squeeze(zeros, 1000, 15 + 16, z, sizeof z);
    assert_int_equal(inflate_guarded(z, n, REPRO_HTTP_CODING_GZIP, 1000, &out),
                     REPRO_HTTP_INFLATE_END);
    assert_int_equal(out.len, 1000);
    repro_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coding_of),
        cmocka_unit_test(test_roundtrip_and_prefixes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bomb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
