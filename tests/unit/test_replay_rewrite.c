/*
 * Unit tests for request rewriting (replay/rewrite.c): each option alone
 * and together, on heads with odd spacing, a redacted Cookie, chunked and
 * plain JSON bodies, and options that are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "repro/replay.h"

static char text[4096];

static const char *rewrite(const struct repro_replay_rewrite_opts *o, const char *req)
{
    struct repro_replay_rewrite *rw = NULL;
    struct repro_error err = {0};
    struct repro_buf out;
    assert_int_equal(repro_replay_rewrite_new(o, &rw, &err), REPRO_OK);
    assert_non_null(rw);
    repro_buf_init(&out, 1 << 20);
    int rc = repro_replay_rewrite_apply(rw, (struct repro_slice){(const uint8_t *)req, strlen(req)},
                                        &out, &err);
    if (rc != REPRO_OK)
        fail_msg("rewrite failed: %s", err.msg);
    snprintf(text, sizeof text, "%.*s", (int)out.len, (const char *)out.data);
    repro_buf_release(&out);
    repro_replay_rewrite_free(rw);
    return text;
}

static void test_head_options(void **state)
{
    (void)state;
    const char *req = "GET /api/v1/items?page=2&token=%5BREDACTED%5D HTTP/1.1\r\nHost: prod.example\r\n"
                      "X-Trace:  abc\r\nCookie: [REDACTED]\r\nAccept: */*\r\n\r\n";
    const char *set_h[] = {"Authorization: Bearer staging", "X-Trace: new"};
    const char *rm_h[] = {"accept"};
    const char *paths[] = {"/api/v1/=/api/v2/"};
    const char *queries[] = {"token=tok123", "debug=1"};
    const char *cookies[] = {"sid=S1"};
    struct repro_replay_rewrite_opts o = {
        .host = "staging:8080", .set_headers = set_h, .n_set_headers = 2, .remove_headers = rm_h,
        .n_remove_headers = 1, .rewrite_paths = paths, .n_rewrite_paths = 1, .set_queries = queries,
        .n_set_queries = 2, .set_cookies = cookies, .n_set_cookies = 1};
    assert_string_equal(rewrite(&o, req),
                        "GET /api/v2/items?page=2&token=tok123&debug=1 HTTP/1.1\r\n"
                        "Host: staging:8080\r\nX-Trace:  new\r\nCookie: sid=S1\r\n"
                        "Authorization: Bearer staging\r\n\r\n");

    /* a clear Cookie keeps the others; nothing else is touched */
    struct repro_replay_rewrite_opts c = {.set_cookies = cookies, .n_set_cookies = 1};
    assert_string_equal(rewrite(&c, "GET / HTTP/1.1\r\nCookie: a=1; sid=old;b=2\r\n\r\n"),
                        "GET / HTTP/1.1\r\nCookie: a=1; sid=S1; b=2\r\n\r\n");
    assert_string_equal(rewrite(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                        "GET / HTTP/1.1\r\nHost: x\r\nCookie: sid=S1\r\n\r\n");
    /* a path that does not start with the prefix stays */
    struct repro_replay_rewrite_opts p = {.rewrite_paths = paths, .n_rewrite_paths = 1};
    assert_string_equal(rewrite(&p, "GET /other HTTP/1.1\r\n\r\n"), "GET /other HTTP/1.1\r\n\r\n");
}

static void test_json_fields(void **state)
{
    (void)state;
    const char *fields[] = {"$.password=\"hunter2\"", "$.user.id=42", "$.tags[1]=x", "$.missing.deep=1"};
    struct repro_replay_rewrite_opts o = {.set_json_fields = fields, .n_set_json_fields = 4};
    assert_string_equal(
        rewrite(&o, "POST /login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n"
                    "{\"user\": {\"id\": 7}, \"password\": \"[REDACTED]\", \"tags\": [\"a\", \"b\"]}"),
        "POST /login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 56\r\n\r\n"
        "{\"user\":{\"id\":42},\"password\":\"hunter2\",\"tags\":[\"a\",\"x\"]}");
    /* chunked: written plain with a length */
    const char *one[] = {"$.a=2"};
    struct repro_replay_rewrite_opts c = {.set_json_fields = one, .n_set_json_fields = 1};
    assert_string_equal(rewrite(&c, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"),
                        "POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n{\"a\":2}");
    /* not JSON: left alone */
    assert_string_equal(rewrite(&c, "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na=1"),
                        "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na=1");
}

static void test_refused(void **state)
{
    (void)state;
    const char *bad_h[] = {"no colon"}, *bad_h2[] = {"Bad Name: x"}, *bad_p[] = {"api=/v2"},
               *bad_q[] = {"=x"}, *bad_j[] = {"$.a[*]=1"}, *bad_j2[] = {"nopath"};
    struct repro_replay_rewrite_opts cases[] = {
        {.set_headers = bad_h, .n_set_headers = 1},   {.set_headers = bad_h2, .n_set_headers = 1},
        {.rewrite_paths = bad_p, .n_rewrite_paths = 1}, {.set_queries = bad_q, .n_set_queries = 1},
        {.set_json_fields = bad_j, .n_set_json_fields = 1},
        {.set_json_fields = bad_j2, .n_set_json_fields = 1}, {.host = "a b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct repro_replay_rewrite *rw = NULL;
        struct repro_error err = {0};
        assert_int_equal(repro_replay_rewrite_new(&cases[i], &rw, &err), REPRO_E_INVAL);
        assert_null(rw);
        assert_true(strlen(err.msg) > 0);
    }
    /* nothing to do: no rewriter */
    struct repro_replay_rewrite *rw = (void *)1;
    struct repro_replay_rewrite_opts none = {0};
    assert_int_equal(repro_replay_rewrite_new(&none, &rw, NULL), REPRO_OK);
    assert_null(rw);
    /* a head that does not parse is reported, not guessed at */
    const char *h[] = {"X: y"};
    struct repro_replay_rewrite_opts o = {.set_headers = h, .n_set_headers = 1};
    struct repro_error err = {0};
    struct repro_buf out;
    assert_int_equal(repro_replay_rewrite_new(&o, &rw, &err), REPRO_OK);
    repro_buf_init(&out, 1024);
    assert_int_equal(repro_replay_rewrite_apply(rw, (struct repro_slice){(const uint8_t *)"GARBAGE", 7},
                                                &out, &err),
                     REPRO_E_MALFORMED);
    repro_buf_release(&out);
    repro_replay_rewrite_free(rw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_options),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
