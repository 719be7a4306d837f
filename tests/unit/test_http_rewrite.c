/*
 * Unit tests for http/http_rewrite.c: the lenient line scanner and the head
 * rewriter, one table line per case, each input behind a guard page; the
 * rewritten request must parse with the strict parser and carry the edits.
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

#define V(s) {(const uint8_t *)(s), sizeof(s) - 1}

static const struct {
    const char *desc;
    const char *in;
    struct repro_http_edit edits[4];
    size_t n_edits;
    int want_rc;
    const char *want; /* the output, when want_rc is REPRO_OK */
} cases[] = {
    {"no edits: copied byte for byte",
     "GET /a HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\n\r\n", {{0}}, 0, REPRO_OK,
     "GET /a HTTP/1.1\r\nHost: x\r\nX-A:  1 \r\n\r\n"},
    {"set an existing field: spelling and spacing kept, duplicates go",
     "GET / HTTP/1.1\r\nx-trace:   old\r\nHost: x\r\nX-Trace: dup\r\n\r\n",
     {{REPRO_HTTP_EDIT_SET, "X-Trace", V("new")}}, 1, REPRO_OK,
     "GET / HTTP/1.1\r\nx-trace:   new\r\nHost: x\r\n\r\n"},
    {"set an absent field: added before the empty line",
     "GET / HTTP/1.1\r\nHost: x\r\n\r\n", {{REPRO_HTTP_EDIT_SET, "X-Replay", V("1")}}, 1,
     REPRO_OK, "GET / HTTP/1.1\r\nHost: x\r\nX-Replay: 1\r\n\r\n"},
    {"replace only when present",
     "GET / HTTP/1.1\r\nHost: x\r\n\r\n", {{REPRO_HTTP_EDIT_REPLACE, "Content-Length", V("3")}},
     1, REPRO_OK, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
    {"remove every instance and its obs-fold lines",
     "GET / HTTP/1.1\r\nCookie: a\r\n  folded\r\nHost: x\r\ncookie: b\r\n\r\n",
     {{REPRO_HTTP_EDIT_REMOVE, "Cookie", {NULL, 0}}}, 1, REPRO_OK,
     "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
    {"target and host", "POST /old?q=1 HTTP/1.1\nHost: prod:80\n\n",
     {{REPRO_HTTP_EDIT_TARGET, NULL, V("/new?q=2")}, {REPRO_HTTP_EDIT_HOST, NULL, V("staging:8080")}},
     2, REPRO_OK, "POST /new?q=2 HTTP/1.1\nHost: staging:8080\n\n"},
    {"host added when absent, with the start line's line ending",
     "GET / HTTP/1.0\r\n\r\n", {{REPRO_HTTP_EDIT_HOST, NULL, V("h")}}, 1, REPRO_OK,
     "GET / HTTP/1.0\r\nHost: h\r\n\r\n"},
    {"a target with spaces before the version is replaced whole",
     "GET /a b HTTP/1.1\r\n\r\n", {{REPRO_HTTP_EDIT_TARGET, NULL, V("/c")}}, 1, REPRO_OK,
     "GET /c HTTP/1.1\r\n\r\n"},
    {"responses: a field set, the status line kept",
     "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
     {{REPRO_HTTP_EDIT_SET, "Content-Length", V("4")}, {REPRO_HTTP_EDIT_TARGET, NULL, V("/x")}}, 2,
     REPRO_OK, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"},
    {"lines that are not fields are kept as they are",
     "GET / HTTP/1.1\r\nnot a field\r\nBad Name: v\r\n\r\n",
     {{REPRO_HTTP_EDIT_SET, "Bad", V("x")}}, 1, REPRO_OK,
     "GET / HTTP/1.1\r\nnot a field\r\nBad Name: v\r\nBad: x\r\n\r\n"},
    {"a value with CRLF is refused (header injection)", "GET / HTTP/1.1\r\n\r\n",
     {{REPRO_HTTP_EDIT_SET, "X", V("a\r\nEvil: 1")}}, 1, REPRO_E_INVAL, NULL},
    {"a name that is not a token is refused", "GET / HTTP/1.1\r\n\r\n",
     {{REPRO_HTTP_EDIT_SET, "X Y", V("a")}}, 1, REPRO_E_INVAL, NULL},
    {"a target with a space is refused", "GET / HTTP/1.1\r\n\r\n",
     {{REPRO_HTTP_EDIT_TARGET, NULL, V("/a b")}}, 1, REPRO_E_INVAL, NULL},
    {"a head cut short", "GET / HTTP/1.1\r\nHost: x\r\n", {{0}}, 0, REPRO_E_MALFORMED, NULL},
    {"no start line", "GET / HTTP/1.1", {{0}}, 0, REPRO_E_MALFORMED, NULL},
    {"empty input", "", {{0}}, 0, REPRO_E_MALFORMED, NULL},
};

static void test_rewrite_cases(void **state)
{
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = strlen(cases[i].in), hl = 0;
        uint8_t *g = guard_copy(cases[i].in, len);
        struct repro_buf out;
        struct repro_error err = {0};
        enum repro_http_kind kind = memcmp(cases[i].in, "HTTP/", len < 5 ? len : 5) == 0 && len
                                        ? REPRO_HTTP_RESPONSE
                                        : REPRO_HTTP_REQUEST;
        int rc;

        repro_buf_init(&out, 1 << 16);
        rc = repro_http_head_rewrite(kind, g, len, cases[i].edits, cases[i].n_edits, &out, &hl,
                                     &err);
        if (rc != cases[i].want_rc)
            fail_msg("case '%s': rc %d (%s)", cases[i].desc, rc, err.msg);
        if (rc == REPRO_OK) {
            struct repro_http_head h;
            if (out.len != strlen(cases[i].want) || memcmp(out.data, cases[i].want, out.len))
                fail_msg("case '%s': got '%.*s'", cases[i].desc, (int)out.len,
                         (const char *)out.data);
            if (hl != len)
                fail_msg("case '%s': head_len %zu", cases[i].desc, hl);
            if (repro_http_parse_head(&h, kind, out.data, out.len, out.len + 1, NULL, NULL) !=
                    REPRO_HTTP_DONE &&
                strstr(cases[i].desc, "not fields") == NULL)
                fail_msg("case '%s': the output does not parse", cases[i].desc);
        } else if (err.msg[0] == '\0') {
            fail_msg("case '%s': no error message", cases[i].desc);
        }
        repro_buf_release(&out);
        guard_free(g, len);
    }
}

/* The body after the head is not touched; head_len says where it starts. */
static void test_rewrite_with_body(void **state)
{
    const char *msg = "POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    struct repro_http_edit e[] = {{REPRO_HTTP_EDIT_SET, "Content-Length", V("4")}};
    struct repro_buf out;
    size_t hl = 0;
    (void)state;

    repro_buf_init(&out, 4096);
    assert_int_equal(repro_http_head_rewrite(REPRO_HTTP_REQUEST, (const uint8_t *)msg, strlen(msg),
                                             e, 1, &out, &hl, NULL),
                     REPRO_OK);
    assert_int_equal(hl, strlen(msg) - 5);
    assert_int_equal(repro_buf_append(&out, "hell", 4), REPRO_OK);
    assert_int_equal(out.len, strlen(msg) - 1);
    assert_memory_equal(out.data, "POST /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nhell", out.len);
    /* out cannot grow: a clean limit error */
    repro_buf_release(&out);
    repro_buf_init(&out, 8);
    assert_int_equal(repro_http_head_rewrite(REPRO_HTTP_REQUEST, (const uint8_t *)msg, strlen(msg),
                                             e, 1, &out, NULL, NULL),
                     REPRO_E_LIMIT);
    repro_buf_release(&out);
}

/* Fail the n-th allocation for every n until the rewrite runs clean: each
 * run ends in a clean error (E_NOMEM) and no leak (ASan, valgrind). */
static void test_rewrite_alloc_failures(void **state)
{
    const char *msg = "GET /a HTTP/1.1\r\nHost: prod\r\nCookie: c\r\n\r\n";
    struct repro_http_edit e[] = {{REPRO_HTTP_EDIT_HOST, NULL, V("staging")},
                                  {REPRO_HTTP_EDIT_REMOVE, "Cookie", {NULL, 0}},
                                  {REPRO_HTTP_EDIT_SET, "X-Replay", V("1")}};
    unsigned long n;
    (void)state;
    for (n = 1; n < 50; n++) {
        struct repro_buf out;
        struct repro_error err = {0};
        unsigned long made;
        int rc;
        repro_buf_init(&out, 1 << 16);
        repro_alloc_fail_after(n);
        rc = repro_http_head_rewrite(REPRO_HTTP_REQUEST, (const uint8_t *)msg, strlen(msg), e, 3,
                                     &out, NULL, &err);
        made = repro_alloc_fail_after(0);
        assert_true(rc == REPRO_OK || (rc == REPRO_E_NOMEM && err.code == REPRO_E_NOMEM));
        repro_buf_release(&out);
        if (made < n) {
            assert_int_equal(rc, REPRO_OK);
            break;
        }
    }
    assert_true(n < 50);
}

static void test_head_line(void **state)
{
    static const struct {
        const char *desc, *in;
        int kind;
        const char *name, *value;
    } lines[] = {
        {"field", "Host:  x y \r\n", REPRO_HTTP_LINE_FIELD, "Host", "x y"},
        {"space before the colon", "Authorization : b\r\n", REPRO_HTTP_LINE_FIELD, "Authorization",
         "b"},
        {"empty value", "X-E:\n", REPRO_HTTP_LINE_FIELD, "X-E", ""},
        {"obs-fold", " more\r\n", REPRO_HTTP_LINE_CONT, NULL, NULL},
        {"no colon", "garbage\r\n", REPRO_HTTP_LINE_OTHER, NULL, NULL},
        {"name with a space", "A B: c\r\n", REPRO_HTTP_LINE_OTHER, NULL, NULL},
        {"the empty line", "\r\n", REPRO_HTTP_LINE_END, NULL, NULL},
        {"bare LF empty line", "\n", REPRO_HTTP_LINE_END, NULL, NULL},
        {"cut short", "X-A: 1", REPRO_HTTP_LINE_FIELD, "X-A", "1"},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof lines / sizeof *lines; i++) {
        size_t len = strlen(lines[i].in);
        uint8_t *g = guard_copy(lines[i].in, len);
        struct repro_http_line l;
        size_t next = repro_http_head_line(g, len, 0, &l);
        if (l.kind != lines[i].kind || next != len)
            fail_msg("case '%s': kind %d next %zu", lines[i].desc, l.kind, next);
        if (lines[i].name && (!repro_slice_ieq(l.name, lines[i].name) ||
                              l.value.len != strlen(lines[i].value) ||
                              (l.value.len && memcmp(l.value.ptr, lines[i].value, l.value.len))))
            fail_msg("case '%s': name/value", lines[i].desc);
        guard_free(g, len);
    }
}

/* A string literal as (pointer, length). */
#define QIN(lit) lit, sizeof(lit) - 1

/* repro_http_head_field_quick() takes only lines repro_http_head_line()
 * calls FIELDs, with the same name and end; the rest go to it. */
static void test_head_field_quick(void **state)
{
    static const struct {
        const char *desc;
        const char *in;
        size_t len;
        size_t want_next; /* 0: not taken */
    } qcases[] = {
        {"field", QIN("Host: h\r\nX"), 9},
        {"no space", QIN("a:b\n"), 4},
        {"empty value", QIN("Cookie:\r\n"), 9},
        {"space before colon", QIN("Cookie : a\r\n"), 0},
        {"obs-fold", QIN(" Cookie: a\r\n"), 0},
        {"no colon", QIN("Cookie\r\n"), 0},
        {"empty name", QIN(":a\r\n"), 0},
        {"control byte in name", QIN("Coo\x01kie: a\r\n"), 0},
        {"no LF", QIN("Cookie: a"), 0},
        {"ends at the colon", QIN("Cookie:"), 0},
        {"empty line", QIN("\r\n"), 0},
        {"CR in name", QIN("Coo\rkie: a\r\n"), 0},
        {"colon after LF", QIN("Cookie\n: a\n"), 0},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof qcases / sizeof *qcases; i++) {
        uint8_t *p = guard_copy(qcases[i].in, qcases[i].len);
        struct repro_slice name = {NULL, 0};
        struct repro_http_line l;
        size_t q = repro_http_head_field_quick(p, qcases[i].len, 0, &name);
        repro_http_head_line(p, qcases[i].len, 0, &l);
        if (q != qcases[i].want_next)
            fail_msg("%s: quick returned %zu, want %zu", qcases[i].desc, q, qcases[i].want_next);
        if (q > 0) {
            assert_int_equal(l.kind, REPRO_HTTP_LINE_FIELD);
            assert_int_equal(l.next, q);
            assert_ptr_equal(l.name.ptr, name.ptr);
            assert_int_equal(l.name.len, name.len);
        } else {
            assert_null(name.ptr);
        }
        guard_free(p, qcases[i].len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_field_quick),
        cmocka_unit_test(test_head_line),
        cmocka_unit_test(test_rewrite_cases),
        cmocka_unit_test(test_rewrite_with_body),
        cmocka_unit_test(test_rewrite_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
