/*
 * Unit tests for core/: error codes and first-error-wins, bounded buffers,
 * budgets, JSON strings, excerpts, the allocation hook.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "repro/core.h"

static void test_error_first_wins(void **state)
{
    struct repro_error err = {0};
    (void)state;
    assert_int_equal(repro_error_set(&err, REPRO_E_IO, "cannot open '%s'", "a"), REPRO_E_IO);
    assert_int_equal(repro_error_set(&err, REPRO_E_NOMEM, "later"), REPRO_E_NOMEM);
    assert_int_equal(err.code, REPRO_E_IO);
    assert_string_equal(err.msg, "cannot open 'a'");
    repro_error_prefix(&err, "capture %d: ", 3);
    assert_string_equal(err.msg, "capture 3: cannot open 'a'");
    assert_int_equal(repro_error_set(NULL, REPRO_E_INVAL, "x"), REPRO_E_INVAL);
    repro_error_clear(&err);
    assert_int_equal(err.code, 0);
}

static void test_error_table(void **state)
{
    (void)state;
    assert_string_equal(repro_strerror(REPRO_OK), "success");
    assert_string_equal(repro_strerror(REPRO_E_MALFORMED), "malformed input");
    assert_string_equal(repro_errname(REPRO_E_LIMIT), "E_LIMIT");
    assert_string_equal(repro_strerror(-999), "unknown error");
    /* Released numbers never change. */
    assert_int_equal(REPRO_E_NOMEM, -1);
    assert_int_equal(REPRO_E_MALFORMED, -4);
    assert_int_equal(REPRO_E_SCHEMA, -11);
    assert_int_equal(REPRO_E_BUSY, -12);
}

/* Durations (--retain): one line per case, valid and malformed. */
static void test_duration_parse(void **state)
{
    static const struct {
        const char *desc, *text;
        int rc;
        int64_t us;
    } cases[] = {
        {"seconds", "90s", REPRO_OK, 90000000},
        {"minutes", "30m", REPRO_OK, 1800000000},
        {"hours", "12h", REPRO_OK, 43200000000},
        {"days", "7d", REPRO_OK, 604800000000},
        {"zero alone is off", "0", REPRO_OK, 0},
        {"zero with a unit", "0d", REPRO_OK, 0},
        {"leading zeros", "007s", REPRO_OK, 7000000},
        {"a hundred years in days", "36600d", REPRO_OK, 36600 * 86400000000LL},
        {"empty", "", REPRO_E_INVAL, 0},
        {"no unit", "90", REPRO_E_INVAL, 0},
        {"unit only", "s", REPRO_E_INVAL, 0},
        {"unknown unit", "5w", REPRO_E_INVAL, 0},
        {"upper-case unit", "5S", REPRO_E_INVAL, 0},
        {"milliseconds are not a unit", "5ms", REPRO_E_INVAL, 0},
        {"two units", "1h30m", REPRO_E_INVAL, 0},
        {"negative", "-5s", REPRO_E_INVAL, 0},
        {"plus sign", "+5s", REPRO_E_INVAL, 0},
        {"leading space", " 5s", REPRO_E_INVAL, 0},
        {"trailing space", "5s ", REPRO_E_INVAL, 0},
        {"fraction", "1.5h", REPRO_E_INVAL, 0},
        {"over a hundred years", "36601d", REPRO_E_INVAL, 0},
        {"overflowing digits", "99999999999999999999999s", REPRO_E_INVAL, 0},
        {"hex", "0x10s", REPRO_E_INVAL, 0},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct repro_error err = {0};
        int64_t us = -1;
        int rc = repro_duration_parse(cases[i].text, &us, &err);
        if (rc != cases[i].rc || us != cases[i].us)
            fail_msg("%s ('%s'): rc %d us %lld", cases[i].desc, cases[i].text, rc, (long long)us);
        if (rc != REPRO_OK)
            assert_non_null(strstr(err.msg, "cannot read duration '"));
    }
}

static void test_buf_cap(void **state)
{
    struct repro_buf b;
    (void)state;
    repro_buf_init(&b, 10);
    assert_int_equal(repro_buf_append(&b, "0123456789", 10), REPRO_OK);
    assert_int_equal(b.len, 10);
    assert_true(b.cap <= b.max);
    /* Past the cap: refused, unchanged. */
    assert_int_equal(repro_buf_append(&b, "x", 1), REPRO_E_LIMIT);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "0123456789", 10);
    repro_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    assert_int_equal(repro_buf_printf(&b, "%d-%s", 42, "ab"), REPRO_OK);
    assert_memory_equal(b.data, "42-ab", 5);
    assert_int_equal(repro_buf_printf(&b, "%s", "too long for it"), REPRO_E_LIMIT);
    repro_buf_release(&b);
    assert_null(b.data);
    repro_buf_release(NULL);
}

static void test_buf_overflow_len(void **state)
{
    struct repro_buf b;
    (void)state;
    repro_buf_init(&b, SIZE_MAX);
    assert_int_equal(repro_buf_append(&b, "ab", 2), REPRO_OK);
    assert_int_equal(repro_buf_reserve(&b, SIZE_MAX), REPRO_E_LIMIT);
    repro_buf_release(&b);
}

static void test_alloc_fault(void **state)
{
    struct repro_buf b;
    unsigned long n;
    (void)state;
    for (n = 1; n < 10; n++) {
        int rc;
        repro_buf_init(&b, 1 << 20);
        repro_alloc_fail_after(n);
        rc = repro_buf_append(&b, "hello", 5);
        if (n == 1)
            assert_int_equal(rc, REPRO_E_NOMEM);
        repro_alloc_fail_after(0);
        assert_true(b.len <= b.cap);
        repro_buf_release(&b);
    }
}

/* repro_size_parse: one line per case. */
static void test_size_parse(void **state)
{
    static const struct {
        const char *text;
        int ok;
        uint64_t bytes;
        const char *what;
    } cases[] = {
        {"0", 1, 0, "zero"},
        {"65536", 1, 65536, "plain bytes"},
        {"512k", 1, 512 << 10, "k"},
        {"512K", 1, 512 << 10, "K"},
        {"64M", 1, (uint64_t)64 << 20, "M"},
        {"64MB", 1, (uint64_t)64 << 20, "MB"},
        {"64MiB", 1, (uint64_t)64 << 20, "MiB"},
        {"2G", 1, (uint64_t)2 << 30, "G"},
        {"3t", 1, (uint64_t)3 << 40, "t"},
        {"18446744073709551615", 1, UINT64_MAX, "the largest"},
        {"16777215T", 1, (uint64_t)16777215 << 40, "the largest in T"},
        {"", 0, 0, "empty"},
        {"M", 0, 0, "a suffix alone"},
        {"-1", 0, 0, "a sign"},
        {"+1", 0, 0, "a plus sign"},
        {" 1", 0, 0, "a leading space"},
        {"1 ", 0, 0, "a trailing space"},
        {"1.5G", 0, 0, "a fraction"},
        {"1MM", 0, 0, "two suffixes"},
        {"1Mi", 0, 0, "Mi without B"},
        {"1iB", 0, 0, "iB without a suffix"},
        {"1b", 0, 0, "a lower-case b alone"},
        {"1P", 0, 0, "an unknown suffix"},
        {"18446744073709551616", 0, 0, "2^64"},
        {"16777216T", 0, 0, "2^64 in T"},
        {"99999999999999999999999", 0, 0, "far too many digits"},
    };
    size_t i;
    (void)state;

    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct repro_error err = {0};
        uint64_t v = 1;
        int rc = repro_size_parse(cases[i].text, &v, &err);
        if ((rc == REPRO_OK) != cases[i].ok || (cases[i].ok && v != cases[i].bytes))
            fail_msg("case %zu (%s) '%s': rc %d value %llu", i, cases[i].what, cases[i].text, rc,
                     (unsigned long long)v);
        if (!cases[i].ok) {
            assert_int_equal(rc, REPRO_E_INVAL);
            assert_int_equal(v, 0);
            assert_non_null(strstr(err.msg, "cannot read size"));
        }
    }
    /* and back to MiB for messages, parsed sizes exactly */
    {
        uint64_t v = 0;
        assert_int_equal(repro_size_parse("3M", &v, NULL), REPRO_OK);
        assert_true(repro_mib(v) == 3.0);
        assert_true(repro_mib(512u * 1024u) == 0.5);
        assert_true(repro_mib(0) == 0.0);
    }
}

static void test_budget(void **state)
{
    struct repro_budget bg = {0, 100, 0};
    (void)state;
    assert_true(repro_budget_take(&bg, 60));
    assert_false(repro_budget_take(&bg, 41));
    assert_int_equal(bg.refused, 41);
    assert_true(repro_budget_take(&bg, 40));
    assert_int_equal(bg.used, 100);
    repro_budget_give(&bg, 100);
    assert_int_equal(bg.used, 0);
    assert_true(repro_budget_take(NULL, 1000));
    /* take_upto grants what fits and counts the rest as refused */
    assert_int_equal(repro_budget_take_upto(&bg, 70), 70);
    assert_int_equal(repro_budget_take_upto(&bg, 50), 30);
    assert_int_equal(bg.used, 100);
    assert_int_equal(bg.refused, 41 + 20);
    assert_int_equal(repro_budget_take_upto(&bg, 5), 0);
    assert_int_equal(repro_budget_take_upto(NULL, 5), 5);
}

static void test_json(void **state)
{
    struct repro_buf b;
    static const struct {
        const char *desc;
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain", "abc", 3, "\"abc\""},
        {"quote and backslash", "a\"b\\", 4, "\"a\\\"b\\\\\""},
        {"controls", "\n\r\t\x01", 4, "\"\\n\\r\\t\\u0001\""},
        {"utf-8 kept", "\xc3\xa9", 2, "\"\xc3\xa9\""},
        {"invalid utf-8 escaped", "\xff\xc3", 2, "\"\\u00ff\\u00c3\""},
        {"overlong rejected", "\xc0\x80", 2, "\"\\u00c0\\u0080\""},
        {"nul", "a\0b", 3, "\"a\\u0000b\""},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        repro_buf_init(&b, 1024);
        assert_int_equal(repro_json_str(&b, cases[i].in, cases[i].len), REPRO_OK);
        if (b.len != strlen(cases[i].out) || memcmp(b.data, cases[i].out, b.len) != 0)
            fail_msg("case '%s': got %.*s", cases[i].desc, (int)b.len, (const char *)b.data);
        repro_buf_release(&b);
    }
    repro_buf_init(&b, 1024);
    assert_int_equal(repro_json_time_us(&b, 1700000000123456), REPRO_OK);
    assert_memory_equal(b.data, "1700000000.123456", 17);
    repro_buf_reset(&b);
    repro_json_time_us(&b, -1);
    assert_memory_equal(b.data, "null", 4);
    repro_buf_reset(&b);
    repro_json_cstr(&b, NULL);
    assert_memory_equal(b.data, "null", 4);
    repro_buf_release(&b);
}

static void test_excerpt(void **state)
{
    char out[16];
    (void)state;
    assert_string_equal(repro_excerpt(out, sizeof out, (const uint8_t *)"GET /\r\n", 7), "GET /..");
    repro_excerpt(out, sizeof out, (const uint8_t *)"0123456789abcdefghij", 20);
    assert_string_equal(out, "0123456789ab...");
}

static void test_clock(void **state)
{
    uint64_t a = repro_mono_ns(), b = repro_mono_ns();
    (void)state;
    assert_true(b >= a);
    assert_true(repro_wall_us() > INT64_C(1600000000000000));
    /* a deadline is normalised and not before now (+1999 ms carries a second) */
    uint64_t now = repro_mono_ns();
    struct timespec d = repro_deadline_ms(CLOCK_MONOTONIC, 1999);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    assert_true((uint64_t)d.tv_sec * 1000000000u + (uint64_t)d.tv_nsec >= now + 1999000000u);
}

/* repro_time_parse: the formats listings print, and what is refused. */
static void test_time_parse(void **state)
{
    static const struct {
        const char *desc, *in;
        int rc;
        int64_t us;
    } cases[] = {
        {"as listed", "2023-11-14 22:13:20.123456", REPRO_OK, INT64_C(1700000000123456)},
        {"T and Z", "2023-11-14T22:13:20Z", REPRO_OK, INT64_C(1700000000000000)},
        {"minutes only", "2023-11-14 22:13", REPRO_OK, INT64_C(1699999980000000)},
        {"date only", "1970-01-02", REPRO_OK, INT64_C(86400000000)},
        {"nanoseconds truncate", "2023-11-14 22:13:20.123456789", REPRO_OK,
         INT64_C(1700000000123456)},
        {"short fraction", "2023-11-14 22:13:20.5", REPRO_OK, INT64_C(1700000000500000)},
        {"epoch", "@1700000000.25", REPRO_OK, INT64_C(1700000000250000)},
        {"epoch integer", "@0", REPRO_OK, 0},
        {"empty", "", REPRO_E_INVAL, 0},
        {"epoch empty", "@", REPRO_E_INVAL, 0},
        {"epoch sign", "@-5", REPRO_E_INVAL, 0},
        {"epoch overflow", "@99999999999999999999", REPRO_E_INVAL, 0},
        {"epoch empty fraction", "@5.", REPRO_E_INVAL, 0},
        {"fraction too long", "2023-11-14 22:13:20.1234567890", REPRO_E_INVAL, 0},
        {"31 February", "2023-02-31", REPRO_E_INVAL, 0},
        {"month 13", "2023-13-01", REPRO_E_INVAL, 0},
        {"hour 24", "2023-01-01 24:00", REPRO_E_INVAL, 0},
        {"before the epoch", "1969-12-31 23:59:59", REPRO_E_INVAL, 0},
        {"trailing byte", "2023-11-14 22:13:20x", REPRO_E_INVAL, 0},
        {"an offset", "2023-11-14T22:13:20+01:00", REPRO_E_INVAL, 0},
        {"one-digit day", "2023-11-4", REPRO_E_INVAL, 0},
        {"a lone separator", "2023-11-14 ", REPRO_E_INVAL, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = -7;
        int rc = repro_time_parse(cases[i].in, &us);
        if (rc != cases[i].rc || (rc == REPRO_OK && us != cases[i].us))
            fail_msg("%s: '%s' gave %d, %lld", cases[i].desc, cases[i].in, rc, (long long)us);
    }
    /* what repro_time_text writes parses back to itself */
    for (int64_t us = 0; us < INT64_C(4000000000000000); us += INT64_C(123456789012345)) {
        char t[40];
        int64_t back;
        repro_time_text(t, sizeof t, us);
        assert_int_equal(repro_time_parse(t, &back), REPRO_OK);
        assert_true(back == us);
    }
}

static void test_id_ranges_parse(void **state)
{
    static const struct {
        const char *desc, *in;
        int rc;
        size_t n;
    } cases[] = {
        {"one", "3", REPRO_OK, 1},
        {"list and range", "3,5-9", REPRO_OK, 2},
        {"a range of one", "4-4", REPRO_OK, 1},
        {"at the limit", "1,2,3,4", REPRO_OK, 4},
        {"over the limit", "1,2,3,4,5", REPRO_E_LIMIT, 0},
        {"empty", "", REPRO_E_INVAL, 0},
        {"zero", "0", REPRO_E_INVAL, 0},
        {"reversed", "9-5", REPRO_E_INVAL, 0},
        {"empty item", "3,,4", REPRO_E_INVAL, 0},
        {"trailing comma", "3,", REPRO_E_INVAL, 0},
        {"open range", "3-", REPRO_E_INVAL, 0},
        {"negative", "-3", REPRO_E_INVAL, 0},
        {"space", "3, 4", REPRO_E_INVAL, 0},
        {"overflow", "99999999999999999999", REPRO_E_INVAL, 0},
        {"letters", "3a", REPRO_E_INVAL, 0},
    };
    struct repro_id_range r[4];
    size_t n;
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = repro_id_ranges_parse(cases[i].in, r, 4, &n);
        if (rc != cases[i].rc || (rc == REPRO_OK && n != cases[i].n))
            fail_msg("%s: '%s' gave %d, %zu ranges", cases[i].desc, cases[i].in, rc, n);
    }
    assert_int_equal(repro_id_ranges_parse("3,5-9", r, 4, &n), REPRO_OK);
    assert_true(r[0].lo == 3 && r[0].hi == 3 && r[1].lo == 5 && r[1].hi == 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_first_wins), cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_buf_cap),          cmocka_unit_test(test_buf_overflow_len),
        cmocka_unit_test(test_alloc_fault),      cmocka_unit_test(test_budget),
        cmocka_unit_test(test_json),             cmocka_unit_test(test_excerpt),
        cmocka_unit_test(test_clock),            cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_size_parse),       cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_id_ranges_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
