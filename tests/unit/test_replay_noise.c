/*
 * Unit tests for baseline noise (replay/noise.c): Diffy's rule over a run
 * (a field is a regression only when the target differs on it clearly more
 * often than the known-good baseline), the per-request rule, the rules
 * suggested for noisy fields and the ones refused as too broad.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "repro/replay.h"

static struct repro_diff mk(const char *key)
{
    return (struct repro_diff){.kind = REPRO_DIFF_JSON_VALUE, .where = (char *)key,
                               .key = (char *)key};
}

/* Adds a request where the target differs on the keys of t (n_t of them)
 * and the baseline on those of b. */
static void add(struct repro_noise *n, const char **t, size_t n_t, const char **b, size_t n_b)
{
    struct repro_diff dt[8], db[8];
    for (size_t i = 0; i < n_t; i++)
        dt[i] = mk(t[i]);
    for (size_t i = 0; i < n_b; i++)
        db[i] = mk(b[i]);
    struct repro_diffs T = {.v = dt, .n = n_t}, B = {.v = db, .n = n_b};
    assert_int_equal(repro_noise_add(n, &T, &B), REPRO_OK);
}

static const struct repro_noise_field *field(struct repro_noise *n, const char *key)
{
    const struct repro_noise_field *f;
    size_t k = repro_noise_fields(n, &f);
    for (size_t i = 0; i < k; i++)
        if (strcmp(f[i].key, key) == 0)
            return &f[i];
    fail_msg("no field %s", key);
    return NULL;
}

static void test_run_rule(void **state)
{
    (void)state;
    struct repro_noise *n;
    assert_int_equal(repro_noise_new(&n), REPRO_OK);
    for (int i = 0; i < 100; i++) {
        const char *t[8], *b[8];
        size_t nt = 0, nb = 0;
        t[nt++] = "$.ts", b[nb++] = "$.ts"; /* always differs, on both */
        if (i < 10)
            t[nt++] = "$.price"; /* the target alone: a regression */
        if (i < 50)
            t[nt++] = "$.rand";
        if (i >= 50 && i < 95)
            b[nb++] = "$.rand"; /* random on both sides: noise */
        if (i < 60)
            t[nt++] = "$.x";
        if (i >= 60)
            b[nb++] = "$.x"; /* 60% vs 40%: clearly more: a regression */
        if (i % 10 == 0)
            t[nt++] = "header x-trace", b[nb++] = "header x-trace";
        t[nt++] = "$.ts"; /* counted once per request */
        add(n, t, nt, b, nb);
    }
    repro_noise_classify(n, 0, 0);
    assert_true(field(n, "$.ts")->noisy);
    assert_int_equal(field(n, "$.ts")->n_target, 100);
    assert_false(field(n, "$.price")->noisy);
    assert_true(field(n, "$.rand")->noisy);
    assert_false(field(n, "$.x")->noisy);
    assert_true(field(n, "header x-trace")->noisy);

    /* per request: the baseline differed on it too */
    struct repro_diff d = mk("$.price"), bd = mk("$.price");
    struct repro_diffs B = {.v = &bd, .n = 1}, none = {0};
    assert_true(repro_noise_is_noise(n, &d, &B));
    assert_false(repro_noise_is_noise(n, &d, &none));
    d = mk("$.rand");
    assert_true(repro_noise_is_noise(n, &d, NULL));
    d = mk("$.never_seen");
    assert_false(repro_noise_is_noise(n, &d, NULL));
    repro_noise_free(n);
}

static void test_many_fields(void **state)
{
    (void)state;
    struct repro_noise *n;
    char keys[3000][16];
    assert_int_equal(repro_noise_new(&n), REPRO_OK);
    for (int i = 0; i < 3000; i++) {
        const char *t[1] = {keys[i]};
        snprintf(keys[i], sizeof keys[i], "$.f%d", i);
        add(n, t, 1, t, i % 2);
    }
    repro_noise_classify(n, 0, 0);
    const struct repro_noise_field *f;
    assert_int_equal(repro_noise_fields(n, &f), 3000);
    assert_true(field(n, "$.f1")->noisy);
    assert_false(field(n, "$.f2")->noisy);
    assert_int_equal(field(n, "$.f2999")->n_target, 1);
    repro_noise_free(n);
}

static void test_suggestions(void **state)
{
    (void)state;
    char buf[256];
    const char *why;
    struct repro_noise_field f = {.key = "$.meta.ts"};
    assert_string_equal(repro_noise_suggest(&f, buf, sizeof buf, &why),
                        "--ignore-json-path '$.meta.ts'");
    f.key = "$.items[*].updated";
    assert_string_equal(repro_noise_suggest(&f, buf, sizeof buf, &why),
                        "--ignore-json-path '$.items[*].updated'");
    f.key = "header x-request-start";
    assert_string_equal(repro_noise_suggest(&f, buf, sizeof buf, &why),
                        "--ignore-header 'x-request-start'");
    const char *broad[] = {"$.items[*]", "body", "$", "status", "body (sha256)"};
    for (size_t i = 0; i < sizeof broad / sizeof *broad; i++) {
        f.key = broad[i];
        assert_null(repro_noise_suggest(&f, buf, sizeof buf, &why));
        assert_non_null(why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_rule),
        cmocka_unit_test(test_many_fields),
        cmocka_unit_test(test_suggestions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
