/*
 * Unit tests for response comparison (replay/compare.c): status, headers
 * (ignore lists, case, multiple values), JSON bodies (order, paths, types,
 * ignore paths), redaction marks as wildcards (checked against POSIX regex
 * as an independent oracle on random texts), masks, cut bodies by digest,
 * and rules that do not parse.
 */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repro/http.h"
#include "repro/replay.h"

struct side {
    struct repro_http_head head;
    struct repro_compare_msg msg;
};

/* A response from its head text (CRLF added) and body. */
static void side_init(struct side *s, const char *head, const char *body)
{
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    size_t n = 0;
    const char *p = head;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        memcpy(b + n, p, len);
        n += len;
        memcpy(b + n, "\r\n", 2);
        n += 2;
        p += len + (nl ? 1 : 0);
    }
    memcpy(b + n, "\r\n", 2);
    n += 2;
    memset(s, 0, sizeof *s);
    assert_int_equal(repro_http_parse_head(&s->head, REPRO_HTTP_RESPONSE, (const uint8_t *)b, n,
                                           65536, NULL, NULL),
                     REPRO_HTTP_DONE);
    s->msg.status = s->head.status;
    s->msg.head = &s->head;
    s->msg.body = (struct repro_slice){(const uint8_t *)body, strlen(body)};
}

static struct repro_comparer *comparer(const struct repro_compare_rules *r)
{
    struct repro_comparer *c = NULL;
    struct repro_error err = {0};
    assert_int_equal(repro_comparer_new(r, &c, &err), REPRO_OK);
    return c;
}

static void diff(const struct repro_comparer *c, const struct side *e, const struct side *a,
                 struct repro_diffs *d)
{
    struct repro_error err = {0};
    memset(d, 0, sizeof *d);
    assert_int_equal(repro_compare(c, &e->msg, &a->msg, d, &err), REPRO_OK);
}

static const struct repro_diff *find_diff(const struct repro_diffs *d, const char *where)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->v[i].where, where) == 0)
            return &d->v[i];
    return NULL;
}

static void test_status_and_headers(void **state)
{
    (void)state;
    struct repro_comparer *c = comparer(NULL);
    struct side e, a;
    struct repro_diffs d;

    side_init(&e, "HTTP/1.1 200 OK\nDate: Mon, 01 Jan 2024 00:00:00 GMT\nContent-Type: text/plain\n"
                  "X-A: 1\nX-A: 2\nX-Gone: yes\nContent-Length: 2", "hi");
    side_init(&a, "HTTP/1.1 200 OK\ndate: Tue, 02 Jan 2024 00:00:00 GMT\ncontent-type: text/plain\n"
                  "x-a: 1\nx-a: 2\nTransfer-Encoding: chunked", "hi");
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.v[0].kind, REPRO_DIFF_HEADER_MISSING);
    assert_string_equal(d.v[0].where, "header X-Gone");
    assert_string_equal(d.v[0].key, "header x-gone");
    assert_string_equal(d.v[0].expected, "yes");
    assert_null(d.v[0].actual);
    repro_diffs_release(&d);

    side_init(&a, "HTTP/1.1 404 Not Found\nContent-Type: text/html\nX-A: 2\nX-A: 1\nX-Gone: yes\n"
                  "X-New: 1", "hi");
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 4);
    assert_int_equal(find_diff(&d, "status")->kind, REPRO_DIFF_STATUS);
    assert_string_equal(find_diff(&d, "status")->expected, "200");
    assert_string_equal(find_diff(&d, "status")->actual, "404");
    assert_string_equal(find_diff(&d, "header Content-Type")->actual, "text/html");
    assert_string_equal(find_diff(&d, "header X-A")->expected, "1, 2"); /* order counts */
    assert_int_equal(find_diff(&d, "header X-New")->kind, REPRO_DIFF_HEADER_EXTRA);
    assert_string_equal(repro_diff_kind_name(REPRO_DIFF_HEADER_EXTRA), "header_extra");
    repro_diffs_release(&d);
    repro_comparer_free(c);

    /* more ignores, and none of the defaults */
    const char *ign[] = {"X-NEW", "x-a", "content-type"};
    struct repro_compare_rules r = {.ignore_headers = ign, .n_ignore_headers = 3,
                                    .no_default_ignores = 1};
    c = comparer(&r);
    diff(c, &e, &a, &d);
    assert_non_null(find_diff(&d, "status"));
    assert_non_null(find_diff(&d, "header Date"));
    assert_null(find_diff(&d, "header X-A"));
    assert_null(find_diff(&d, "header X-New"));
    repro_diffs_release(&d);
    repro_comparer_free(c);
}

static void test_json(void **state)
{
    (void)state;
    struct repro_comparer *c = comparer(NULL);
    struct side e, a;
    struct repro_diffs d;
    const char *h = "HTTP/1.1 200 OK\nContent-Type: application/json";

    side_init(&e, h, "{\"user\":{\"name\":\"ann\",\"id\":7},\"items\":[{\"id\":1,\"ts\":5},"
                     "{\"id\":2,\"ts\":6}],\"n\":1.0,\"ok\":true,\"gone\":null,\"odd key\":1}");
    side_init(&a, h, " {\"odd key\":1,\"ok\":true,\"gone\":null,\"n\":1,\"items\":[{\"ts\":5,\"id\":1},"
                     "{\"id\":2,\"ts\":6}],\"user\":{\"id\":7,\"name\":\"ann\"}}\n");
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 0); /* order, whitespace and 1.0 vs 1 do not matter */
    repro_diffs_release(&d);

    side_init(&a, h, "{\"user\":{\"name\":\"bob\",\"id\":\"7\"},\"items\":[{\"id\":1,\"ts\":9},"
                     "{\"id\":3,\"ts\":8},{\"id\":4}],\"n\":2,\"ok\":false,\"new\":[],\"odd key\":1}");
    diff(c, &e, &a, &d);
    assert_int_equal(find_diff(&d, "$.user.name")->kind, REPRO_DIFF_JSON_VALUE);
    assert_string_equal(find_diff(&d, "$.user.name")->expected, "\"ann\"");
    assert_string_equal(find_diff(&d, "$.user.name")->actual, "\"bob\"");
    assert_int_equal(find_diff(&d, "$.user.id")->kind, REPRO_DIFF_JSON_TYPE);
    assert_int_equal(find_diff(&d, "$.items[1].id")->kind, REPRO_DIFF_JSON_VALUE);
    assert_string_equal(find_diff(&d, "$.items[1].id")->key, "$.items[*].id");
    assert_int_equal(find_diff(&d, "$.items[2]")->kind, REPRO_DIFF_JSON_EXTRA);
    assert_int_equal(find_diff(&d, "$.gone")->kind, REPRO_DIFF_JSON_MISSING);
    assert_int_equal(find_diff(&d, "$.new")->kind, REPRO_DIFF_JSON_EXTRA);
    assert_int_equal(find_diff(&d, "$.ok")->kind, REPRO_DIFF_JSON_VALUE);
    assert_non_null(find_diff(&d, "$.n"));
    assert_non_null(find_diff(&d, "$.items[0].ts"));
    assert_int_equal(d.n, 10);
    repro_diffs_release(&d);
    repro_comparer_free(c);

    const char *paths[] = {"$.items[*].ts", "$.*.name", "$['gone']", "$.items[2]", "$.user.id",
                           "$.n", "$.ok", "$.new"};
    struct repro_compare_rules r = {.ignore_json_paths = paths, .n_ignore_json_paths = 8};
    c = comparer(&r);
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.v[0].where, "$.items[1].id");
    repro_diffs_release(&d);
    repro_comparer_free(c);
}

static void test_redaction_marks_and_masks(void **state)
{
    (void)state;
    struct repro_comparer *c = comparer(NULL);
    struct side e, a;
    struct repro_diffs d;

    side_init(&e, "HTTP/1.1 200 OK\nX-Token: Bearer [REDACTED]",
              "{\"token\":\"[REDACTED]\",\"a\":\"x[REDACTED]y\"}");
    side_init(&a, "HTTP/1.1 200 OK\nX-Token: Bearer abc.def", "{\"token\":\"s3cr3t\",\"a\":\"xQQy\"}");
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 0);
    repro_diffs_release(&d);
    side_init(&a, "HTTP/1.1 200 OK\nX-Token: Basic abc", "{\"token\":7,\"a\":\"xQQz\"}");
    diff(c, &e, &a, &d);
    assert_non_null(find_diff(&d, "header X-Token"));
    assert_int_equal(find_diff(&d, "$.token")->kind, REPRO_DIFF_JSON_TYPE);
    assert_non_null(find_diff(&d, "$.a"));
    repro_diffs_release(&d);

    side_init(&e, "HTTP/1.1 200 OK", "user=ann&pw=[REDACTED]&n=1");
    side_init(&a, "HTTP/1.1 200 OK", "user=ann&pw=hunter2&n=1");
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 0);
    repro_diffs_release(&d);
    side_init(&a, "HTTP/1.1 200 OK", "user=ann&pw=hunter2&n=2");
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.v[0].kind, REPRO_DIFF_BODY);
    assert_string_equal(d.v[0].key, "body");
    repro_diffs_release(&d);
    repro_comparer_free(c);

    /* masks, on plain bodies, JSON strings and header values */
    const char *masks[] = {"[0-9]{4}-[0-9]{2}-[0-9]{2}", "req-[a-f0-9]+"};
    struct repro_compare_rules r = {.masks = masks, .n_masks = 2};
    c = comparer(&r);
    side_init(&e, "HTTP/1.1 200 OK\nX-Id: req-abc1", "at 2024-01-01 ok {\"t\":\"2024-01-01\"}");
    side_init(&a, "HTTP/1.1 200 OK\nX-Id: req-99ff", "at 2025-12-31 ok {\"t\":\"2025-12-31\"}");
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 0);
    repro_diffs_release(&d);
    side_init(&e, "HTTP/1.1 200 OK", "{\"t\":\"2024-01-01\",\"u\":\"a\"}");
    side_init(&a, "HTTP/1.1 200 OK", "{\"t\":\"1999-02-03\",\"u\":\"b\"}");
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.v[0].where, "$.u");
    repro_diffs_release(&d);
    repro_comparer_free(c);
}

static void test_cut_bodies(void **state)
{
    (void)state;
    struct repro_comparer *c = comparer(NULL);
    struct side e, a;
    struct repro_diffs d;
    uint8_t d1[32], d2[32];
    memset(d1, 0x11, 32);
    memset(d2, 0x22, 32);

    side_init(&e, "HTTP/1.1 200 OK", "abc");
    side_init(&a, "HTTP/1.1 200 OK", "abcdef-different-after-the-cut");
    e.msg.body_cut = 1;
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 0);
    assert_true(d.body_unchecked); /* no digests: cannot tell */
    repro_diffs_release(&d);
    e.msg.digest = d1;
    a.msg.digest = d1;
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 0);
    assert_false(d.body_unchecked);
    repro_diffs_release(&d);
    a.msg.digest = d2;
    diff(c, &e, &a, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.v[0].kind, REPRO_DIFF_BODY_DIGEST);
    assert_int_equal(strlen(d.v[0].expected), 64);
    repro_diffs_release(&d);
    repro_comparer_free(c);
}

static void test_bad_rules(void **state)
{
    (void)state;
    const char *bad_paths[] = {"items", "$.", "$[x]", "$.a[1", "$['a]", "$"};
    for (size_t i = 0; i < sizeof bad_paths / sizeof *bad_paths; i++) {
        struct repro_compare_rules r = {.ignore_json_paths = &bad_paths[i],
                                        .n_ignore_json_paths = 1};
        struct repro_comparer *c = NULL;
        struct repro_error err = {0};
        assert_int_equal(repro_comparer_new(&r, &c, &err), REPRO_E_INVAL);
        assert_null(c);
        assert_non_null(strstr(err.msg, bad_paths[i]));
    }
    const char *bad_mask[] = {"a(b"};
    struct repro_compare_rules r = {.masks = bad_mask, .n_masks = 1};
    struct repro_comparer *c = NULL;
    struct repro_error err = {0};
    assert_int_equal(repro_comparer_new(&r, &c, &err), REPRO_E_INVAL);
    assert_non_null(strstr(err.msg, "a(b"));
}

/* ---- redaction marks against POSIX regex as the oracle ---------------------- */

static uint64_t rng = 1;
static uint32_t rnd(uint32_t n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33) % n;
}

static void random_text(char *out, size_t cap, int marks)
{
    static const char *const parts[] = {"a", "b", "ab", "[", "]", "R"};
    size_t n = 0, k = rnd(7);
    out[0] = 0;
    for (size_t i = 0; i < k; i++) {
        const char *p = marks && rnd(4) == 0 ? "[REDACTED]" : parts[rnd(6)];
        if (n + strlen(p) + 1 >= cap)
            break;
        strcpy(out + n, p);
        n += strlen(p);
    }
}

/* ^...$ with each mark as (.*) and everything else escaped. */
static int oracle(const char *expected, const char *actual)
{
    char re[1024] = "^";
    size_t n = 1;
    for (const char *p = expected; *p;) {
        if (strncmp(p, "[REDACTED]", 10) == 0) {
            n += (size_t)sprintf(re + n, "(.*)");
            p += 10;
            continue;
        }
        if (strchr(".[]()*+?{}|^$\\", *p))
            re[n++] = '\\';
        re[n++] = *p++;
    }
    re[n++] = '$';
    re[n] = 0;
    regex_t r;
    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
    int ok = regexec(&r, actual, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

static void test_marks_against_regex(void **state)
{
    (void)state;
    struct repro_comparer *c = comparer(NULL);
    char et[128], at[128];
    unsigned matched = 0;
    for (int i = 0; i < 20000; i++) {
        struct side e, a;
        struct repro_diffs d;
        random_text(et, sizeof et, 1);
        if (rnd(3) == 0) { /* make matches likely: fill the marks */
            char *m;
            strcpy(at, et);
            while ((m = strstr(at, "[REDACTED]")) != NULL) {
                const char *fill = rnd(2) ? "ab" : "";
                memmove(m + strlen(fill), m + 10, strlen(m + 10) + 1);
                memcpy(m, fill, strlen(fill));
            }
        } else {
            random_text(at, sizeof at, 0);
        }
        side_init(&e, "HTTP/1.1 200 OK", et);
        side_init(&a, "HTTP/1.1 200 OK", at);
        diff(c, &e, &a, &d);
        int want = oracle(et, at);
        if ((d.n == 0) != want)
            fail_msg("recorded '%s' vs '%s': compare says %s, regex says %s", et, at,
                     d.n ? "differ" : "match", want ? "match" : "differ");
        matched += want;
        repro_diffs_release(&d);
    }
    assert_true(matched > 3000);
    repro_comparer_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_and_headers),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_redaction_marks_and_masks),
        cmocka_unit_test(test_cut_bodies),
        cmocka_unit_test(test_bad_rules),
        cmocka_unit_test(test_marks_against_regex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
