/*
 * Unit tests for the crash record reader (crash/crash_file.c,
 * docs/crash-record.md): a complete record field by field, a table of
 * malformed records (one line per case, each naming the line it must
 * blame), every prefix of a record (a record cut anywhere is partial, never
 * complete, never an over-read: inputs sit against a PROT_NONE page), caps,
 * versions, and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repro/crash.h"
#include "test_util.h"

/* A record with every kind of line, escapes and an unknown key. */
static const char full[] =
    "REPRO-CRASH 1\n"
    "source inproc\n"
    "pid 31337\n"
    "tid 31339\n"
    "time_us 1718000000123456\n"
    "signo 11\n"
    "si_code 1\n"
    "fault_address 0x10\n"
    "executable /srv/app\\x0abin/server\n"
    "cmdline /srv/app/bin/server --name a\\\\b --port 9000\n"
    "hostname web-1\n"
    "module 0x555555554000 0x555555559000 0x555555554000 5F0C7A2E /srv/app\\x0abin/server\n"
    "module 0x7ffff7dab000 0x7ffff7f8f000 0x7ffff7d80000 - /lib/x86_64-linux-gnu/libc.so.6\n"
    "future_key anything at all\n"
    "thread 31339 1 worker #2\n"
    "regs rip=0x555555555139 rsp=0x7ffff7d9fe40\n"
    "frame 0 0x555555555139\n"
    "frame 1 0x555555555160\n"
    "frame 2 0x7ffff7e1b044\n"
    "frame 3 0x10\n"
    "unwind end\n"
    "conn 5 4 7f000001 9000 0a000002 51234 1\n"
    "conn 6 6 00000000000000000000000000000001 8080 00000000000000000000000000000000 0 10\n"
    "elapsed_ns 48213\n"
    "end\n";

/* Parses len bytes of s placed against a guard page. */
static int parse(const char *s, size_t len, struct repro_crash **out, struct repro_error *err)
{
    uint8_t *g = guard_copy(s, len);
    int rc;
    memset(err, 0, sizeof *err);
    rc = repro_crash_file_parse(g, len, out, err);
    guard_free(g, len);
    return rc;
}

static void test_full_record(void **state)
{
    struct repro_crash *c = NULL;
    struct repro_error err;
    const struct repro_crash_thread *t;
    (void)state;

    assert_int_equal(parse(full, strlen(full), &c, &err), REPRO_OK);
    assert_non_null(c);
    assert_int_equal(err.code, 0);
    assert_string_equal(c->source, "inproc");
    assert_int_equal(c->pid, 31337);
    assert_int_equal(c->tid, 31339);
    assert_true(c->time_us == 1718000000123456LL);
    assert_int_equal(c->signo, SIGSEGV);
    assert_int_equal(c->si_code, 1);
    assert_true(c->fault_address == 0x10);
    assert_string_equal(c->executable, "/srv/app\nbin/server");
    assert_string_equal(c->cmdline, "/srv/app/bin/server --name a\\b --port 9000");
    assert_string_equal(c->hostname, "web-1");
    assert_false(c->partial);

    assert_int_equal(c->n_modules, 2);
    assert_string_equal(c->modules[0].path, "/srv/app\nbin/server");
    assert_string_equal(c->modules[0].build_id, "5f0c7a2e");
    assert_true(c->modules[1].load_bias == 0x7ffff7d80000ull);
    assert_string_equal(c->modules[1].build_id, "");

    assert_int_equal(c->n_threads, 1);
    t = &c->threads[0];
    assert_int_equal(t->tid, 31339);
    assert_true(t->crashed);
    assert_string_equal(t->name, "worker #2");
    assert_string_equal(t->registers, "rip=0x555555555139 rsp=0x7ffff7d9fe40");
    assert_int_equal(t->n_frames, 4);
    assert_false(t->partial);
    /* Modules and offsets are resolved from the module lines. */
    assert_int_equal(t->frames[0].module, 0);
    assert_true(t->frames[0].offset == 0x1139);
    assert_int_equal(t->frames[2].module, 1);
    assert_true(t->frames[2].offset == 0x7ffff7e1b044ull - 0x7ffff7d80000ull);
    assert_int_equal(t->frames[3].module, -1);

    assert_int_equal(c->n_conns, 2);
    assert_int_equal(c->conns[0].fd, 5);
    assert_int_equal(c->conns[0].family, 4);
    assert_memory_equal(c->conns[0].local_ip, "\x7f\0\0\x01", 4);
    assert_memory_equal(c->conns[0].remote_ip, "\x0a\0\0\x02", 4);
    assert_int_equal(c->conns[0].local_port, 9000);
    assert_int_equal(c->conns[0].remote_port, 51234);
    assert_int_equal(c->conns[0].state, 1);
    assert_int_equal(c->conns[1].family, 6);
    assert_int_equal(c->conns[1].local_ip[15], 1);
    assert_int_equal(c->conns[1].state, 10);
    assert_int_equal(repro_crash_validate(c, &err), REPRO_OK);
    repro_crash_free(c);
}

/* The minimum: header, pid, signo, end. tid comes from the crashed thread. */
static void test_minimal_record(void **state)
{
    static const char rec[] = "REPRO-CRASH 1\npid 1\nsigno 6\nthread 7 1 \nend\n";
    struct repro_crash *c = NULL;
    struct repro_error err;
    (void)state;

    assert_int_equal(parse(rec, strlen(rec), &c, &err), REPRO_OK);
    assert_int_equal(c->tid, 7);
    assert_string_equal(c->threads[0].name, "");
    assert_string_equal(c->source, "inproc");
    assert_int_equal(c->n_modules, 0);
    repro_crash_free(c);
}

/* Lines that are well formed but say the record is incomplete. */
static void test_partial_lines(void **state)
{
    static const char rec[] = "REPRO-CRASH 1\npid 1\nsigno 11\nthread 2 1 t\nframe 0 0x1\n"
                              "unwind limit\nthread 3 0 u\nunwind error -7\n"
                              "partial module table as of load time\nend\n";
    struct repro_crash *c = NULL;
    struct repro_error err;
    (void)state;

    assert_int_equal(parse(rec, strlen(rec), &c, &err), REPRO_OK);
    assert_true(c->partial);
    assert_string_equal(c->partial_reason, "thread 2: stack cut at 1 frames");
    assert_true(c->threads[0].partial);
    assert_true(c->threads[1].partial);
    repro_crash_free(c);
}

#define HDR "REPRO-CRASH 1\npid 1\nsigno 11\n"
#define THR "thread 2 1 t\n"

static const struct bad_case {
    const char *what;
    const char *input;
    int rc;      /* expected return */
    int line;    /* the line the message must name, 0: none */
    int has_out; /* a partial crash comes back */
} bad_cases[] = {
    {"empty file", "", REPRO_E_MALFORMED, 1, 0},
    {"header only, cut", "REPRO-CRASH 1", REPRO_E_MALFORMED, 1, 0},
    {"not a record", "hello world\n", REPRO_E_MALFORMED, 1, 0},
    {"header in lower case", "repro-crash 1\nend\n", REPRO_E_MALFORMED, 1, 0},
    {"header without version", "REPRO-CRASH \nend\n", REPRO_E_MALFORMED, 1, 0},
    {"version with sign", "REPRO-CRASH +1\nend\n", REPRO_E_MALFORMED, 1, 0},
    {"newer version", "REPRO-CRASH 2\nanything\n", REPRO_E_UNSUPPORTED, 0, 0},
    {"version overflow", "REPRO-CRASH 99999999999999999999999\n", REPRO_E_MALFORMED, 1, 0},
    {"no end line", HDR, REPRO_E_MALFORMED, 4, 1},
    {"last line cut", HDR "frame 0 0x1", REPRO_E_MALFORMED, 4, 1},
    {"data after end", HDR "end\npid 2\n", REPRO_E_MALFORMED, 5, 1},
    {"end with a value", HDR "end now\n", REPRO_E_MALFORMED, 4, 1},
    {"no pid", "REPRO-CRASH 1\nsigno 11\nend\n", REPRO_E_MALFORMED, 3, 1},
    {"no signo", "REPRO-CRASH 1\npid 3\nend\n", REPRO_E_MALFORMED, 3, 1},
    {"NUL byte", HDR "tid 4\0\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"tab byte", HDR "tid\t4\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"carriage return", HDR "tid 4\r\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"DEL byte", HDR "hostname a\x7f\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"empty line", HDR "\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"key with capital", HDR "Pid 4\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"key with a dash", HDR "fault-address 0x1\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"duplicate pid", HDR "pid 2\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"pid zero", "REPRO-CRASH 1\npid 0\nsigno 1\nend\n", REPRO_E_MALFORMED, 2, 1},
    {"pid negative", "REPRO-CRASH 1\npid -5\nsigno 1\nend\n", REPRO_E_MALFORMED, 2, 1},
    {"pid too big", "REPRO-CRASH 1\npid 2147483648\nend\n", REPRO_E_MALFORMED, 2, 1},
    {"pid with plus", "REPRO-CRASH 1\npid +5\nend\n", REPRO_E_MALFORMED, 2, 1},
    {"pid with space", "REPRO-CRASH 1\npid 5 \nend\n", REPRO_E_MALFORMED, 2, 1},
    {"signo 65", "REPRO-CRASH 1\npid 1\nsigno 65\nend\n", REPRO_E_MALFORMED, 3, 1},
    {"si_code out of range", HDR "si_code -2147483649\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"time_us overflow", HDR "time_us 9223372036854775808\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"fault_address decimal", HDR "fault_address 16\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"fault_address 17 digits", HDR "fault_address 0x10000000000000000\nend\n", REPRO_E_MALFORMED,
     4, 1},
    {"fault_address bare 0x", HDR "fault_address 0x\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"bad escape", HDR "executable /a\\q\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"escape cut", HDR "executable /a\\x4\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"trailing backslash", HDR "executable /a\\\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"escaped NUL", HDR "executable /a\\x00b\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"module short", HDR "module 0x1 0x2 0x0\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"module double space", HDR "module 0x1  0x2 0x0 - /x\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"module ends first", HDR "module 0x2 0x1 0x0 - /x\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"module odd build-id", HDR "module 0x1 0x2 0x0 abc /x\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"module build-id not hex", HDR "module 0x1 0x2 0x0 zz /x\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"frame before thread", HDR "frame 0 0x1\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"regs before thread", HDR "regs rip=0x1\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"frame index skips", HDR THR "frame 1 0x1\nend\n", REPRO_E_MALFORMED, 5, 1},
    {"frame pc bad", HDR THR "frame 0 0x55zz\nend\n", REPRO_E_MALFORMED, 5, 1},
    {"frame extra field", HDR THR "frame 0 0x1 x\nend\n", REPRO_E_MALFORMED, 5, 1},
    {"frame after unwind", HDR THR "unwind end\nframe 0 0x1\nend\n", REPRO_E_MALFORMED, 6, 1},
    {"two regs lines", HDR THR "regs a\nregs b\nend\n", REPRO_E_MALFORMED, 6, 1},
    {"two unwind lines", HDR THR "unwind end\nunwind end\nend\n", REPRO_E_MALFORMED, 6, 1},
    {"unwind status unknown", HDR THR "unwind maybe\nend\n", REPRO_E_MALFORMED, 5, 1},
    {"unwind error without code", HDR THR "unwind error\nend\n", REPRO_E_MALFORMED, 5, 1},
    {"thread crashed 2", HDR "thread 2 2 t\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"thread id 0", HDR "thread 0 1 t\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"two crashed threads", HDR THR "thread 3 1 u\nend\n", REPRO_E_MALFORMED, 5, 1},
    {"thread name 32 bytes", HDR "thread 2 1 abcdefghijklmnopqrstuvwxyz012345\nend\n",
     REPRO_E_MALFORMED, 4, 1},
    {"crashed thread is not tid", HDR "tid 9\n" THR "end\n", REPRO_E_MALFORMED, 6, 1},
    {"conn family 5", HDR "conn 5 5 7f000001 1 7f000001 2 1\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"conn v4 address long", HDR "conn 5 4 7f00000100 1 7f000001 2 1\nend\n", REPRO_E_MALFORMED, 4,
     1},
    {"conn v6 address short", HDR "conn 5 6 7f000001 1 7f000001 2 1\nend\n", REPRO_E_MALFORMED, 4,
     1},
    {"conn port 65536", HDR "conn 5 4 7f000001 65536 7f000001 2 1\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"conn state 256", HDR "conn 5 4 7f000001 1 7f000001 2 256\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"conn eighth field", HDR "conn 5 4 7f000001 1 7f000001 2 1 9\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"source with digits", HDR "source in9\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"source too long", HDR "source abcdefghijklmnop\nend\n", REPRO_E_MALFORMED, 4, 1},
    {"elapsed_ns negative", HDR "elapsed_ns -1\nend\n", REPRO_E_MALFORMED, 4, 1},
};

static void test_malformed_table(void **state)
{
    size_t i;
    (void)state;

    for (i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const struct bad_case *k = &bad_cases[i];
        /* sizeof-based length keeps embedded NUL bytes in the input */
        size_t len = strlen(k->input);
        struct repro_crash *c = (struct repro_crash *)1;
        struct repro_error err;
        char want[32];
        int rc;

        if (strcmp(k->what, "NUL byte") == 0)
            len = strlen(HDR) + sizeof "tid 4\0\nend\n" - 1;
        rc = parse(k->input, len, &c, &err);
        if (rc != k->rc || (c != NULL) != k->has_out)
            fail_msg("case '%s': rc %d (want %d), crash %s (want %s), message '%s'", k->what, rc,
                     k->rc, c ? "set" : "NULL", k->has_out ? "set" : "NULL", err.msg);
        if (err.code != rc || err.msg[0] == '\0')
            fail_msg("case '%s': error not recorded ('%s')", k->what, err.msg);
        snprintf(want, sizeof want, "line %d:", k->line);
        if (k->line && strstr(err.msg, want) == NULL)
            fail_msg("case '%s': message '%s' does not name %s", k->what, err.msg, want);
        if (c != NULL) {
            if (!c->partial || strstr(c->partial_reason, want) == NULL)
                fail_msg("case '%s': crash not partial with the line ('%s')", k->what,
                         c->partial_reason);
            assert_int_equal(repro_crash_validate(c, NULL), REPRO_OK);
        }
        repro_crash_free(c);
    }
}

/* What the good lines before the bad one held is kept. */
static void test_partial_keeps_prefix(void **state)
{
    static const char rec[] = HDR "executable /x\nthread 2 1 t\nframe 0 0x10\nframe 1 0x20\n"
                                  "frame 9 0x30\nframe 3 0x40\nend\n";
    struct repro_crash *c = NULL;
    struct repro_error err;
    (void)state;

    assert_int_equal(parse(rec, strlen(rec), &c, &err), REPRO_E_MALFORMED);
    assert_non_null(c);
    assert_non_null(strstr(err.msg, "crash record line 8: frame 9 of thread 2, expected frame 2"));
    assert_string_equal(c->executable, "/x");
    assert_int_equal(c->threads[0].n_frames, 2);
    assert_true(c->partial);
    assert_string_equal(c->partial_reason,
                        "damaged record: line 8: frame 9 of thread 2, expected frame 2");
    repro_crash_free(c);
}

/* A record cut at any byte is never complete and never over-read. */
static void test_every_prefix(void **state)
{
    size_t len = strlen(full), cut, header_len = strlen("REPRO-CRASH 1\n");
    (void)state;

    for (cut = 0; cut < len; cut++) {
        struct repro_crash *c = NULL;
        struct repro_error err;
        int rc = parse(full, cut, &c, &err);
        if (rc != REPRO_E_MALFORMED)
            fail_msg("prefix of %zu bytes: rc %d", cut, rc);
        if ((cut >= header_len) != (c != NULL))
            fail_msg("prefix of %zu bytes: crash %s", cut, c ? "set" : "NULL");
        if (c != NULL) {
            if (strncmp(c->partial_reason, "truncated record: line ", 23) != 0)
                fail_msg("prefix of %zu bytes: reason '%s'", cut, c->partial_reason);
            assert_int_equal(repro_crash_validate(c, NULL), REPRO_OK);
        }
        repro_crash_free(c);
    }
}

static char *repeat_lines(const char *head, const char *fmt, int n, const char *tail)
{
    size_t cap = strlen(head) + strlen(tail) + (size_t)n * 128 + 1, len;
    char *s = malloc(cap);
    int i;
    assert_non_null(s);
    len = (size_t)snprintf(s, cap, "%s", head);
    for (i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, fmt, i, i + 1);
    snprintf(s + len, cap - len, "%s", tail);
    return s;
}

static void expect_malformed(const char *s, const char *needle)
{
    struct repro_crash *c = NULL;
    struct repro_error err;
    int rc = parse(s, strlen(s), &c, &err);
    if (rc != REPRO_E_MALFORMED || strstr(err.msg, needle) == NULL)
        fail_msg("rc %d, message '%s', want '%s'", rc, err.msg, needle);
    assert_non_null(c);
    assert_true(c->partial);
    repro_crash_free(c);
}

static void test_caps(void **state)
{
    char *s, *line;
    (void)state;

    s = repeat_lines(HDR THR, "frame %d 0x%x\n", REPRO_CRASH_MAX_FRAMES, "end\n");
    {
        struct repro_crash *c = NULL;
        struct repro_error err;
        assert_int_equal(parse(s, strlen(s), &c, &err), REPRO_OK);
        assert_int_equal(c->threads[0].n_frames, REPRO_CRASH_MAX_FRAMES);
        repro_crash_free(c);
    }
    free(s);
    s = repeat_lines(HDR THR, "frame %d 0x%x\n", REPRO_CRASH_MAX_FRAMES + 1, "end\n");
    expect_malformed(s, "more than 256 frames");
    free(s);
    s = repeat_lines(HDR, "module 0x%x 0x%x 0x0 - /m\n", REPRO_CRASH_MAX_MODULES + 1, "end\n");
    expect_malformed(s, "more than 1024 modules");
    free(s);

    /* A line of 32768 bytes with its LF is too long; one byte less is not. */
    line = malloc(40000);
    assert_non_null(line);
    memcpy(line, HDR "hostname ", strlen(HDR "hostname "));
    memset(line + strlen(HDR "hostname "), 'h', 32768 - strlen("hostname ") - 1);
    strcpy(line + strlen(HDR) + 32767, "\nend\n");
    {
        struct repro_crash *c = NULL;
        struct repro_error err;
        assert_int_equal(parse(line, strlen(line), &c, &err), REPRO_OK);
        assert_int_equal(strlen(c->hostname), 32767 - strlen("hostname "));
        repro_crash_free(c);
    }
    memset(line + strlen(HDR "hostname "), 'h', 32768 - strlen("hostname "));
    strcpy(line + strlen(HDR) + 32768, "\nend\n");
    expect_malformed(line, "line 4: longer than 32768 bytes");
    free(line);
}

static void test_alloc_failures(void **state)
{
    unsigned long n;
    (void)state;

    for (n = 1; n < 500; n++) {
        struct repro_crash *c = NULL;
        struct repro_error err;
        unsigned long made;
        int rc;

        repro_alloc_fail_after(n);
        rc = parse(full, strlen(full), &c, &err);
        made = repro_alloc_fail_after(0);
        if (rc == REPRO_E_NOMEM) {
            assert_null(c);
            assert_non_null(strstr(err.msg, "out of memory"));
        } else {
            assert_int_equal(rc, REPRO_OK);
        }
        repro_crash_free(c);
        if (made < n)
            break;
    }
    assert_true(n < 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_record),
        cmocka_unit_test(test_minimal_record),
        cmocka_unit_test(test_partial_lines),
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_partial_keeps_prefix),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
