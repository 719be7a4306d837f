/*
 * Unit tests for http/http_digest.c: body digests with the transfer coding
 * removed, checked against SHA-256 values from Python's hashlib (an
 * independent oracle), one-shot and fed in pieces split at every byte, and
 * the framer's digest of a body larger than what it keeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "repro/http.h"
#include "test_util.h"

static void hex(char out[65], const uint8_t d[32])
{
    size_t i;
    for (i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static const struct {
    const char *desc;
    int body;
    const char *wire;
    enum repro_http_outcome want;
    const char *sha; /* hashlib.sha256(decoded).hexdigest() */
} cases[] = {
    {"empty body", REPRO_HTTP_BODY_NONE, "", REPRO_HTTP_DONE,
     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"Content-Length body", REPRO_HTTP_BODY_LENGTH, "hello", REPRO_HTTP_DONE,
     "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
    {"close-delimited body", REPRO_HTTP_BODY_CLOSE, "hello world", REPRO_HTTP_DONE,
     "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"},
    {"chunked: sizes, extension and trailer are not body", REPRO_HTTP_BODY_CHUNKED,
     "5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", REPRO_HTTP_DONE,
     "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"},
    {"chunked with bare LF and upper-case hex", REPRO_HTTP_BODY_CHUNKED,
     "B\nhello world\n0\n\n", REPRO_HTTP_DONE,
     "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"},
    {"chunked: empty", REPRO_HTTP_BODY_CHUNKED, "0\r\n\r\n", REPRO_HTTP_DONE,
     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"chunked: bytes after the last chunk are not body", REPRO_HTTP_BODY_CHUNKED,
     "2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n", REPRO_HTTP_DONE,
     "2689367b205c16ce32ed4200942b8b8b1e262dfc70d9bc9fbc77c49699a4f1df"},
    {"chunked: cut short", REPRO_HTTP_BODY_CHUNKED, "5\r\nhel", REPRO_HTTP_NEED_MORE, NULL},
    {"chunked: bad size", REPRO_HTTP_BODY_CHUNKED, "zz\r\nhello\r\n", REPRO_HTTP_MALFORMED, NULL},
};

static void test_vectors(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = strlen(cases[i].wire), cut;
        uint8_t *g = guard_copy(cases[i].wire, len);
        uint8_t d[32];
        char h[65];
        enum repro_http_outcome o = repro_http_body_digest(cases[i].body, g, len, d);
        if (o != cases[i].want)
            fail_msg("case '%s': outcome %d", cases[i].desc, (int)o);
        if (cases[i].sha != NULL) {
            hex(h, d);
            if (strcmp(h, cases[i].sha) != 0)
                fail_msg("case '%s': %s", cases[i].desc, h);
        }
        /* The same digest however the body is split. */
        for (cut = 0; cases[i].sha != NULL && cut <= len; cut++) {
            struct repro_http_digest dg;
            size_t used = 0, used2 = 0;
            repro_http_digest_init(&dg, cases[i].body);
            o = repro_http_digest_update(&dg, g, cut, &used);
            if (o == REPRO_HTTP_NEED_MORE)
                o = repro_http_digest_update(&dg, g + cut, len - cut, &used2);
            repro_http_digest_final(&dg, d);
            hex(h, d);
            if (strcmp(h, cases[i].sha) != 0)
                fail_msg("case '%s' cut at %zu: %s", cases[i].desc, cut, h);
        }
        guard_free(g, len);
    }
}

/* The framer digests the whole body even past max_store. */
static void test_framer_digest_past_cap(void **state)
{
    struct repro_http_limits lim;
    struct repro_http_framer f;
    static char msg[200000];
    const struct repro_http_msg *m;
    size_t off, len, used;
    char h[65];
    enum repro_http_outcome o = REPRO_HTTP_NEED_MORE;
    (void)state;

    /* 100000 'a' in chunks of 1000 */
    len = (size_t)snprintf(msg, sizeof msg, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (off = 0; off < 100; off++) {
        len += (size_t)snprintf(msg + len, sizeof msg - len, "3e8\r\n");
        memset(msg + len, 'a', 1000);
        len += 1000;
        len += (size_t)snprintf(msg + len, sizeof msg - len, "\r\n");
    }
    len += (size_t)snprintf(msg + len, sizeof msg - len, "0\r\n\r\n");
    repro_http_limits_default(&lim);
    lim.max_store = 100;
    repro_http_framer_init(&f, REPRO_HTTP_RESPONSE, &lim, 0);
    for (off = 0; off < len && o == REPRO_HTTP_NEED_MORE; off += used) {
        size_t n = len - off < 777 ? len - off : 777;
        o = repro_http_framer_feed(&f, (const uint8_t *)msg + off, n, 1, &used);
    }
    assert_int_equal(o, REPRO_HTTP_DONE);
    m = repro_http_framer_msg(&f);
    assert_true(m->flags & REPRO_HTTP_M_BODY_CAPPED);
    assert_true(m->has_body_digest);
    hex(h, m->body_digest);
    assert_string_equal(h, "6d1cf22d7cc09b085dfc25ee1a1f3ae0265804c607bc2074ad253bcc82fd81ee");
    /* a gap: no digest */
    o = repro_http_framer_feed(&f, (const uint8_t *)"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab",
                               40, 2, &used);
    assert_int_equal(o, REPRO_HTTP_NEED_MORE);
    assert_int_equal(repro_http_framer_gap(&f, 7, 3), REPRO_HTTP_DONE);
    assert_false(repro_http_framer_msg(&f)->has_body_digest);
    repro_http_framer_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_framer_digest_past_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
