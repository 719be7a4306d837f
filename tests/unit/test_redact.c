/*
 * Unit tests for capture/redact.c and capture/redact_json.c called
 * directly: the JSON scanner against jansson as an oracle (same verdict on
 * random and mutated texts; the scrubbed copy parses to jansson's tree of
 * the input with secret members replaced), a table of malformed and
 * truncated JSON, truncated and corrupt gzip bodies, and the helpers that
 * recognise HTTP/2, TLS and h2c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/redact.h"
#include "test_util.h"

static int secret_name(void *ctx, const uint8_t *p, size_t n)
{
    (void)ctx;
    return (n == 8 && memcmp(p, "password", 8) == 0) || (n == 5 && memcmp(p, "token", 5) == 0);
}

/* ---- a table of texts ---------------------------------------------- */

struct json_case {
    const char *desc, *in;
    enum repro_json_scrub want;
    const char *out; /* NULL: not checked */
};

static const struct json_case json_cases[] = {
    {"string value", "{\"password\":\"x\"}", REPRO_JSON_OK, "{\"password\":\"[REDACTED]\"}"},
    {"number value", "{\"token\": -1.5e3 }", REPRO_JSON_OK, "{\"token\": \"[REDACTED]\" }"},
    {"nested object value", "{\"token\":{\"a\":[1,{\"b\":null}]},\"c\":2}", REPRO_JSON_OK,
     "{\"token\":\"[REDACTED]\",\"c\":2}"},
    {"escaped name", "[{\"\\u0074oken\":true}]", REPRO_JSON_OK, "[{\"\\u0074oken\":\"[REDACTED]\"}]"},
    {"substring is not a match", "{\"tokens\":1,\"xtoken\":2}", REPRO_JSON_OK,
     "{\"tokens\":1,\"xtoken\":2}"},
    {"JSON lines", "{\"token\":1}\n{\"token\":2}\n", REPRO_JSON_OK,
     "{\"token\":\"[REDACTED]\"}\n{\"token\":\"[REDACTED]\"}\n"},
    {"top-level number", "12", REPRO_JSON_OK, "12"},
    {"whitespace only", " \n", REPRO_JSON_EMPTY, NULL},
    {"cut inside a secret", "{\"a\":1,\"password\":\"hun", REPRO_JSON_PREFIX,
     "{\"a\":1,\"password\":\"[REDACTED]\""},
    {"cut inside a secret array", "{\"token\":[\"a\",\"b", REPRO_JSON_PREFIX,
     "{\"token\":\"[REDACTED]\""},
    {"cut after a name", "{\"password\"", REPRO_JSON_PREFIX, "{\"password\""},
    {"cut in an escape", "[\"\\u00", REPRO_JSON_PREFIX, NULL},
    {"bad literal", "{\"a\":tru}", REPRO_JSON_INVALID, NULL},
    {"single quotes", "{'password':'x'}", REPRO_JSON_INVALID, NULL},
    {"trailing comma", "[1,]", REPRO_JSON_INVALID, NULL},
    {"control byte in string", "[\"a\x01\"]", REPRO_JSON_INVALID, NULL},
    {"lone low surrogate", "[\"\\udc00\"]", REPRO_JSON_INVALID, NULL},
    {"leading zero", "[01]", REPRO_JSON_INVALID, NULL},
    {"bad escape", "[\"\\x\"]", REPRO_JSON_INVALID, NULL},
    {"missing colon", "{\"password\" \"x\"}", REPRO_JSON_INVALID, NULL},
};

static void test_json_table(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof json_cases / sizeof *json_cases; i++) {
        const struct json_case *c = &json_cases[i];
        size_t len = strlen(c->in), hits;
        uint8_t *g = guard_copy(c->in, len);
        struct repro_buf out;
        enum repro_json_scrub rc;

        repro_buf_init(&out, 1 << 16);
        rc = repro__json_scrub(g, len, secret_name, NULL, &out, &hits);
        if (rc != c->want)
            print_error("case '%s': got %d\n", c->desc, rc);
        assert_int_equal(rc, c->want);
        if (c->out) {
            assert_int_equal(out.len, strlen(c->out));
            assert_memory_equal(out.data, c->out, out.len);
        }
        repro_buf_release(&out);
        guard_free(g, len);
    }
}

/* ---- jansson as an oracle ------------------------------------------- */

static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 16) % n;
}

static void gen_value(char *b, size_t *n, size_t cap, int depth)
{
    static const char *names[] = {"password", "token", "a", "\\u0074oken", "pass", "tokens", "b"};
    static const char *scalars[] = {"1", "-0.5e+2", "true", "false", "null", "\"s\"",
                                    "\"\\\"q\\u00e9\"", "0", "123456"};
    unsigned k, m;
    if (*n + 64 > cap)
        return;
    switch (depth > 4 ? 2 : rnd(3)) {
    case 0:
        b[(*n)++] = '{';
        m = rnd(4);
        for (k = 0; k < m && *n + 64 < cap; k++) {
            *n += (size_t)snprintf(b + *n, cap - *n, "%s\"%s\"%s:%s", k ? "," : "",
                                   names[rnd(7)], rnd(2) ? " " : "", rnd(2) ? "\n" : "");
            gen_value(b, n, cap, depth + 1);
        }
        b[(*n)++] = '}';
        break;
    case 1:
        b[(*n)++] = '[';
        m = rnd(4);
        for (k = 0; k < m && *n + 64 < cap; k++) {
            if (k)
                b[(*n)++] = ',';
            gen_value(b, n, cap, depth + 1);
        }
        b[(*n)++] = ']';
        break;
    default:
        *n += (size_t)snprintf(b + *n, cap - *n, "%s", scalars[rnd(9)]);
        break;
    }
}

/* jansson's tree of the input with secret members' values replaced. */
static void redact_tree(json_t *v)
{
    const char *key;
    json_t *val;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach(v, key, val) {
            if (secret_name(NULL, (const uint8_t *)key, strlen(key)))
                json_object_set_new(v, key, json_string("[REDACTED]"));
            else
                redact_tree(val);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, val)
            redact_tree(val);
    }
}

/* Errors where jansson is stricter than JSON itself (number ranges) or
 * where the texts hold several values: no verdict to compare. */
static int oracle_silent(const json_error_t *e)
{
    return strstr(e->text, "too big") || strstr(e->text, "overflow") ||
           strstr(e->text, "end of file expected");
}

static void test_json_oracle(void **state)
{
    static char b[8192];
    int iter, compared = 0;
    (void)state;

    for (iter = 0; iter < 4000; iter++) {
        size_t n = 0, hits;
        struct repro_buf out;
        json_error_t e;
        json_t *want, *got;
        enum repro_json_scrub rc;

        gen_value(b, &n, sizeof b, 0);
        if (iter % 2 == 1 && n > 0) { /* mutate a byte, or cut the text */
            unsigned k = rnd((unsigned)n);
            if (rnd(3) == 0)
                n = k;
            else
                b[k] = "{}[],:\"\\ 0ax"[rnd(12)];
        }
        repro_buf_init(&out, 1 << 16);
        rc = repro__json_scrub((uint8_t *)b, n, secret_name, NULL, &out, &hits);
        want = json_loadb(b, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        if (want == NULL && oracle_silent(&e)) {
            repro_buf_release(&out);
            continue;
        }
        if ((want != NULL) != (rc == REPRO_JSON_OK))
            print_error("verdict differs on '%.*s': ours %d, jansson '%s'\n", (int)n, b, rc,
                        want ? "ok" : e.text);
        assert_int_equal(want != NULL, rc == REPRO_JSON_OK);
        if (want != NULL) {
            redact_tree(want);
            got = json_loadb((char *)out.data, out.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
            assert_non_null(got);
            assert_true(json_equal(want, got));
            json_decref(got);
            json_decref(want);
            compared++;
        }
        repro_buf_release(&out);
    }
    assert_true(compared > 1000);
}

/* ---- messages -------------------------------------------------------- */

static int redact_msg(const char *msg, size_t len, unsigned mflags,
                      struct repro_redact_result *res)
{
    struct repro_http_head h;
    struct repro_http_info info;
    int have = repro_http_parse_head(&h, REPRO_HTTP_REQUEST, (const uint8_t *)msg, len, 65536,
                                     NULL, NULL) == REPRO_HTTP_DONE;
    if (have) {
        repro_http_info_from_head(&info, &h, (const uint8_t *)msg);
        info.body = repro_http_body_kind(&h, (struct repro_slice){NULL, 0});
    }
    return repro__redact(NULL, REPRO_HTTP_REQUEST, (struct repro_slice){(const uint8_t *)msg, len},
                         have ? &info : NULL, mflags, 1 << 20, res);
}

/* A gzip body cut short by the end of the connection is stored decoded as
 * far as it goes; a corrupt one is not stored, its digest is noted. */
static void test_encoded_bodies(void **state)
{
    static const char head[] = "POST / HTTP/1.1\r\nContent-Encoding: gzip\r\n"
                               "Content-Type: application/json\r\nContent-Length: 26\r\n\r\n";
    /* the first 26 bytes of zlib.compressobj(6, DEFLATED, 31) of
     * {"password":"S3KRIT"} (Python) */
    static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                       0x03, 0xab, 0x56, 0x2a, 0x48, 0x2c, 0x2e, 0x2e, 0xcf,
                                       0x2f, 0x4a, 0x51, 0xb2, 0x52, 0x0a, 0x36, 0xf6};
    char msg[256];
    struct repro_redact_result res;
    size_t hl = sizeof head - 1;
    int rc;
    (void)state;

    memcpy(msg, head, hl);
    memcpy(msg + hl, gz, sizeof gz);
    /* truncated: the stream stops inside the secret */
    rc = redact_msg(msg, hl + sizeof gz, REPRO_XF_TRUNCATED, &res);
    assert_int_equal(rc, 1);
    assert_true(res.xflags & REPRO_XF_DECODED);
    assert_null(memmem(res.out.data, res.out.len, "S3K", 3));
    assert_non_null(memmem(res.out.data, res.out.len, "{\"password\":\"[REDACTED]\"", 24));
    assert_null(memmem(res.out.data, res.out.len, "Content-Encoding", 16));
    repro_buf_release(&res.out);
    /* the same bytes in a message said to be complete: corrupt */
    rc = redact_msg(msg, hl + sizeof gz, 0, &res);
    assert_int_equal(rc, 1);
    assert_true(res.xflags & REPRO_XF_BODY_DROPPED);
    assert_non_null(strstr(res.note, "sha256 "));
    assert_int_equal(res.out.len, hl);
    repro_buf_release(&res.out);
}

static void test_sniff(void **state)
{
    (void)state;
    assert_int_equal(repro__sniff_proto((const uint8_t *)"PRI * HTTP/2.0\r\n", 16),
                     REPRO_PROTO_HTTP2);
    assert_int_equal(repro__sniff_proto((const uint8_t *)"PRI", 3), REPRO_PROTO_HTTP2);
    assert_int_equal(repro__sniff_proto((const uint8_t *)"PRIX", 4), REPRO_PROTO_OTHER);
    assert_int_equal(repro__sniff_proto((const uint8_t *)"\x16\x03\x01\x02", 4), REPRO_PROTO_TLS);
    assert_int_equal(repro__sniff_proto((const uint8_t *)"\x16\x03\x09", 3), REPRO_PROTO_OTHER);
    assert_int_equal(repro__sniff_proto((const uint8_t *)"GET / HTTP/1.1", 14),
                     REPRO_PROTO_OTHER);
    assert_true(repro__is_h2c_upgrade((struct repro_slice){
        (const uint8_t *)"GET / HTTP/1.1\r\nUpgrade: websocket, h2c\r\n\r\n", 43}));
    assert_false(repro__is_h2c_upgrade((struct repro_slice){
        (const uint8_t *)"GET / HTTP/1.1\r\nUpgrade: xh2c\r\n\r\n", 34}));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_table),
        cmocka_unit_test(test_json_oracle),
        cmocka_unit_test(test_encoded_bodies),
        cmocka_unit_test(test_sniff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
