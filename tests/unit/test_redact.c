/*
 * Unit tests for capture/redact.c and capture/redact_json.c called
 * directly: the JSON scanner against jansson as an oracle (same verdict on
 * random and mutated texts; the scrubbed copy parses to jansson's tree of
 * the input with secret members replaced), a table of malformed and
 * truncated JSON, truncated and corrupt gzip bodies, the helpers that
 * recognise HTTP/2, TLS and h2c, and the shortcuts of the head pass (a
 * parsed head not scanned again, names rejected by their bit) against the
 * full field-by-field scan: a table of secrets in every form a head can
 * carry them, and random heads.
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

/* ---- the head shortcuts against the full scan ------------------------ */

#define SECRET "S3KRIT"

static const char *const custom_headers[] = {"X-My-Secret", "accept"};
static const char *const keep_auth[] = {"AUTHORIZATION"};

/* Rule sets: defaults; defaults plus custom headers; none of the
 * defaults; defaults keeping Authorization. */
static struct repro_redact_rules rule_set(int which)
{
    struct repro_redact_rules r;
    memset(&r, 0, sizeof r);
    if (which == 1) {
        r.headers = (const char **)custom_headers;
        r.n_headers = 2;
    } else if (which == 2) {
        r.no_defaults = 1;
    } else if (which == 3) {
        r.keep = (const char **)keep_auth;
        r.n_keep = 1;
    }
    return r;
}

/* The framer's info for the one whole message raw[0..len), the framer
 * watching secret_bits as capture's does; 0 when the framer does not end
 * one message with a parsed head exactly there. */
static int framed_info(enum repro_http_kind kind, const uint8_t *raw, size_t len,
                       const uint64_t *secret_bits, struct repro_http_info *info)
{
    struct repro_http_limits lim;
    struct repro_http_framer fr;
    const struct repro_http_msg *m;
    size_t used = 0;
    int ok = 0;

    repro_http_limits_default(&lim);
    lim.watched_names = secret_bits;
    repro_http_framer_init(&fr, kind, &lim, 0);
    if (repro_http_framer_feed(&fr, raw, len, 0, &used) == REPRO_HTTP_DONE && used == len) {
        m = repro_http_framer_msg(&fr);
        if (m->info != NULL && m->raw.len == len) {
            *info = *m->info;
            ok = 1;
        }
    }
    repro_http_framer_release(&fr);
    return ok;
}

/*
 * Redacts raw[0..len) twice: as capture does (with the framer's info,
 * reused when head_as_parsed) and with the full field-by-field scan
 * (repro__redact), and asserts both store the same bytes, flags, note and
 * digest. info_in: a head parsed elsewhere instead of the framer's (NULL:
 * the framer's). Returns 1 when the stored bytes (or raw, when stored as
 * they are) hold SECRET.
 */
static int redact_both(const struct repro_redact_rules *rules, enum repro_http_kind kind,
                       const char *raw, size_t len, const struct repro_http_info *info_in,
                       int head_as_parsed)
{
    struct repro_http_info info;
    struct repro__name_filter f;
    struct repro_redact_result quick, full;
    uint8_t *p = guard_copy(raw, len); /* over-reads fault */
    int have, rq, rf, leak;

    repro__redact_filter_init(&f, rules);
    if (info_in != NULL) {
        info = *info_in;
        have = 1;
    } else {
        have = framed_info(kind, p, len, f.secret_bits, &info);
    }
    rq = repro__redact_filtered(rules, &f, kind, (struct repro_slice){p, len}, have ? &info : NULL,
                                have && head_as_parsed, 0, 1 << 20, &quick);
    rf = repro__redact(rules, kind, (struct repro_slice){p, len}, have ? &info : NULL, 0, 1 << 20,
                       &full);
    assert_int_equal(rq, rf);
    assert_int_equal(quick.xflags, full.xflags);
    assert_string_equal(quick.note, full.note);
    assert_int_equal(quick.digest, full.digest);
    assert_int_equal(quick.out.len, full.out.len);
    if (rq == 1) {
        assert_memory_equal(quick.out.data, full.out.data, full.out.len);
        leak = memmem(quick.out.data, quick.out.len, SECRET, strlen(SECRET)) != NULL;
    } else {
        leak = memmem(raw, len, SECRET, strlen(SECRET)) != NULL;
    }
    repro_buf_release(&quick.out);
    repro_buf_release(&full.out);
    guard_free(p, len);
    return leak;
}

struct head_case {
    const char *desc;
    enum repro_http_kind kind;
    const char *msg;
    unsigned leaks; /* bit i: SECRET may stay under rule set i (not a secret there) */
};

static const struct head_case head_cases[] = {
    {"authorization", REPRO_HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: " SECRET "\r\n\r\n", 0xc},
    {"upper case", REPRO_HTTP_REQUEST, "GET / HTTP/1.1\r\nAUTHORIZATION: " SECRET "\r\n\r\n", 0xc},
    {"mixed case", REPRO_HTTP_REQUEST, "GET / HTTP/1.1\r\naUtHoRiZaTiOn: " SECRET "\r\n\r\n", 0xc},
    {"second of duplicates", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nX-Api-Key: a\r\nHost: h\r\nx-api-key: " SECRET "\r\n\r\n", 0x4},
    {"obs-fold of a secret", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nCookie: a=1\r\n " SECRET "\r\nHost: h\r\n\r\n", 0x4},
    {"obs-fold tab", REPRO_HTTP_REQUEST, "GET / HTTP/1.1\r\nCookie: a=1\r\n\t" SECRET "\r\n\r\n", 0x4},
    {"space before colon", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nHost: h\r\nAuthorization : " SECRET "\r\n\r\n", 0xc},
    {"no colon", REPRO_HTTP_REQUEST, "GET / HTTP/1.1\r\nHost: h\r\n" SECRET "\r\n\r\n", 0},
    {"whitespace before the first field", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\n Authorization: " SECRET "\r\nHost: h\r\n\r\n", 0},
    {"a tab before the first field, then a fold", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\n\tX: 1\r\n " SECRET "\r\nHost: h\r\n\r\n", 0},
    {"whitespace before a response's first field", REPRO_HTTP_RESPONSE,
     "HTTP/1.1 200 OK\r\n Set-Cookie: " SECRET "\r\nContent-Length: 0\r\n\r\n", 0},
    {"whitespace before the first trailer", REPRO_HTTP_REQUEST,
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
     "1\r\na\r\n0\r\n Authorization: " SECRET "\r\n\r\n", 0},
    {"control byte in a name", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nX\x01Y: " SECRET "\r\n\r\n", 0},
    {"bare LF", REPRO_HTTP_REQUEST, "GET / HTTP/1.1\nHost: h\nX-Auth-Token: " SECRET "\n\n", 0x4},
    {"empty value", REPRO_HTTP_REQUEST, "GET / HTTP/1.1\r\nCookie:\r\n " SECRET "\r\n\r\n", 0x4},
    {"custom header", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nX-MY-SECRET: " SECRET "\r\nHost: h\r\n\r\n", 0xd},
    {"custom header, common name", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nAccept: " SECRET "\r\n\r\n", 0xd},
    {"query of a URL header", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nReferer: http://x/?a=1&access_token=" SECRET "\r\n\r\n", 0x4},
    {"query of the target", REPRO_HTTP_REQUEST, "GET /?token=" SECRET " HTTP/1.1\r\nHost: h\r\n\r\n", 0x4},
    {"names near the secret ones", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nAuthorizatio: a\r\nauthorizationn: b\r\nCookie2: c\r\nCOOKIe: " SECRET
     "\r\n\r\n", 0x4},
    {"a long name", REPRO_HTTP_REQUEST,
     "GET / HTTP/1.1\r\nX-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: 1\r\n"
     "Proxy-Authorization: " SECRET "\r\n\r\n", 0x4},
    {"json body by Content-Type", REPRO_HTTP_REQUEST,
     "POST / HTTP/1.1\r\ncontent-type: application/json\r\nContent-Length: 20\r\n\r\n"
     "{\"password\":\"" SECRET "\"}", 0x4},
    {"first Content-Type decides", REPRO_HTTP_REQUEST,
     "POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n"
     "Content-Length: 20\r\n\r\n{\"password\":\"" SECRET "\"}", 0x4},
    {"sniffed json body", REPRO_HTTP_REQUEST,
     "POST / HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"password\":\"" SECRET "\"}", 0x4},
    {"empty Content-Type", REPRO_HTTP_REQUEST,
     "POST / HTTP/1.1\r\nContent-Type:\r\nContent-Length: 20\r\n\r\n{\"password\":\"" SECRET "\"}", 0xf},
    {"form body", REPRO_HTTP_REQUEST,
     "POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n"
     "\r\npassword=" SECRET, 0x4},
    {"unknown coding", REPRO_HTTP_REQUEST,
     "POST / HTTP/1.1\r\nContent-Encoding: \r\nContent-Encoding: br\r\nContent-Length: 6\r\n\r\n" SECRET, 0x4},
    {"trailer", REPRO_HTTP_REQUEST,
     "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
     "1\r\na\r\n0\r\nAuthorization: " SECRET "\r\n\r\n", 0xc},
    {"set-cookie", REPRO_HTTP_RESPONSE,
     "HTTP/1.1 200 OK\r\nServer: s\r\nSet-Cookie: " SECRET "\r\nContent-Length: 0\r\n\r\n", 0x4},
    {"location", REPRO_HTTP_RESPONSE,
     "HTTP/1.1 302 Found\r\nLocation: /x#id_token=" SECRET "\r\nContent-Length: 0\r\n\r\n", 0x4},
    {"no secret", REPRO_HTTP_RESPONSE,
     "HTTP/1.1 200 OK\r\nServer: s\r\nDate: d\r\nContent-Type: text/html\r\nContent-Length: 2\r\n"
     "\r\nok", 0xf},
};

static void test_head_shortcut_table(void **state)
{
    size_t i;
    int rs;
    (void)state;

    for (i = 0; i < sizeof head_cases / sizeof *head_cases; i++) {
        const struct head_case *c = &head_cases[i];
        for (rs = 0; rs < 4; rs++) {
            struct repro_redact_rules r = rule_set(rs);
            int leak = redact_both(&r, c->kind, c->msg, strlen(c->msg), NULL, 1);
            if (leak && !((c->leaks >> rs) & 1))
                fail_msg("%s: the secret is stored under rule set %d", c->desc, rs);
        }
    }
}

/* A response with interim heads in front: the head info describes is not
 * where the message starts, so no shortcut may be taken even when the
 * caller says the head is as parsed; the interim's secrets go. */
static void test_head_shortcut_interim(void **state)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\nSet-Cookie: " SECRET "\r\n\r\n"
                              "HTTP/1.1 102 Processing\r\nX-Api-Key: " SECRET "\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const char *final = strstr(msg, "HTTP/1.1 200");
    struct repro_redact_rules r = rule_set(0);
    struct repro_http_head h;
    struct repro_http_info info;
    (void)state;

    /* the final head's info as capture has it after the interim heads
     * were put in front, flagged as if no name were watched */
    assert_int_equal(repro_http_parse_head(&h, REPRO_HTTP_RESPONSE, (const uint8_t *)final,
                                           strlen(final), 65536, NULL, NULL),
                     REPRO_HTTP_DONE);
    repro_http_info_from_head(&info, &h, (const uint8_t *)msg);
    info.body = REPRO_HTTP_BODY_LENGTH;
    info.flags |= REPRO_HTTP_H_UNWATCHED;
    assert_false(redact_both(&r, REPRO_HTTP_RESPONSE, msg, sizeof msg - 1, &info, 1));
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random heads of names near and equal to secret ones, in every case,
 * with obs-fold and malformed lines: the shortcuts store what the full
 * scan stores, under every rule set. */
static void test_head_shortcut_random(void **state)
{
    static const char *const names[] = {
        "Host", "Authorization", "authorization", "COOKIE", "Set-Cookie", "X-Api-Key",
        "x-auth-token", "X-Csrf-Token", "Proxy-Authorization", "Referer", "Location", "Origin",
        "Content-Location", "Content-Type", "content-type", "Content-Encoding", "Content-Length",
        "Accept", "Server", "Date", "X-My-Secret", "Cookie2", "Authorizatio", "Xauthorization",
        "cookiE", "x-api-keY"};
    static const char *const values[] = {"a", SECRET, "http://h/?token=" SECRET "&a=1", "gzip",
                                         "application/json", "", "text/html", " \t"};
    uint64_t seed = 42;
    int iter;
    (void)state;

    for (iter = 0; iter < 3000; iter++) {
        char msg[2048];
        size_t n = 0;
        int lines, k, rs;
        enum repro_http_kind kind = (enum repro_http_kind)(next_rand(&seed) % 2);

        n += (size_t)snprintf(msg + n, sizeof msg - n, "%s",
                              kind == REPRO_HTTP_REQUEST ? "GET /p HTTP/1.1\r\n" : "HTTP/1.1 200 OK\r\n");
        lines = (int)(next_rand(&seed) % 10);
        for (k = 0; k < lines; k++) {
            const char *nm = names[next_rand(&seed) % (sizeof names / sizeof *names)];
            const char *v = values[next_rand(&seed) % (sizeof values / sizeof *values)];
            switch (next_rand(&seed) % 8) {
            case 0:
                n += (size_t)snprintf(msg + n, sizeof msg - n, " %s\r\n", v); /* obs-fold */
                break;
            case 1:
                n += (size_t)snprintf(msg + n, sizeof msg - n, "%s : %s\r\n", nm, v);
                break;
            case 2:
                n += (size_t)snprintf(msg + n, sizeof msg - n, "%s:%s\n", nm, v);
                break;
            default:
                n += (size_t)snprintf(msg + n, sizeof msg - n, "%s: %s\r\n", nm, v);
                break;
            }
        }
        n += (size_t)snprintf(msg + n, sizeof msg - n, "Content-Length: 0\r\n\r\n");
        for (rs = 0; rs < 4; rs++) {
            struct repro_redact_rules r = rule_set(rs);
            (void)redact_both(&r, kind, msg, n, NULL, 1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_table),
        cmocka_unit_test(test_json_oracle),
        cmocka_unit_test(test_encoded_bodies),
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_head_shortcut_table),
        cmocka_unit_test(test_head_shortcut_interim),
        cmocka_unit_test(test_head_shortcut_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
