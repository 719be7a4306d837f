/*
 * Unit tests for the crash record model (crash/crash.c) and its storage
 * (store/crash_store.c): building, module resolution, invariants, caps,
 * a full store round trip, symbol updates, allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "repro/crash.h"
#include "repro/store.h"
#include "app/crash_rows.h"
#include "test_util.h"

static struct repro_crash *sample(void)
{
    struct repro_crash *c = repro_crash_new();
    struct repro_crash_thread *t;
    struct repro_crash_conn k;

    assert_non_null(c);
    c->time_us = 1700000000123456;
    c->pid = 4242;
    c->tid = 4243;
    c->signo = SIGSEGV;
    c->si_code = 1;
    c->fault_address = 0x10;
    snprintf(c->source, sizeof c->source, "ptrace");
    assert_int_equal(repro_crash_set_str(&c->executable, "/srv/app"), REPRO_OK);
    assert_int_equal(repro_crash_set_str(&c->cmdline, "/srv/app --port 9000"), REPRO_OK);
    assert_int_equal(repro_crash_add_module(c, "/srv/app", 0x555500000000, 0x555500010000,
                                            0x555500000000, "abcdef0123"), REPRO_OK);
    assert_int_equal(repro_crash_add_module(c, "/lib/libc.so.6", 0x7f0000000000, 0x7f0000200000,
                                            0x7f0000000000, "99"), REPRO_OK);
    t = repro_crash_add_thread(c, 4242, "main", 0);
    assert_non_null(t);
    assert_int_equal(repro_crash_add_frame(t, 0x7f0000001234), REPRO_OK);
    t = repro_crash_add_thread(c, 4243, "worker", 1);
    assert_non_null(t);
    assert_int_equal(repro_crash_set_str(&t->registers, "rip=0x555500001000"), REPRO_OK);
    assert_int_equal(repro_crash_add_frame(t, 0x555500001000), REPRO_OK);
    assert_int_equal(repro_crash_add_frame(t, 0x555500002000), REPRO_OK);
    assert_int_equal(repro_crash_add_frame(t, 0xffffffffff600000ull), REPRO_OK); /* no module */
    memset(&k, 0, sizeof k);
    k.fd = 7;
    k.family = 4;
    k.local_ip[0] = 127;
    k.local_ip[3] = 1;
    k.remote_ip[0] = 10;
    k.remote_ip[3] = 2;
    k.local_port = 9000;
    k.remote_port = 51000;
    k.state = 1;
    assert_int_equal(repro_crash_add_conn(c, &k), REPRO_OK);
    repro_crash_resolve_modules(c);
    return c;
}

static void test_resolve_and_validate(void **state)
{
    struct repro_crash *c = sample();
    struct repro_error err = {0};
    char buf[16];
    (void)state;

    assert_int_equal(c->threads[0].frames[0].module, 1);
    assert_int_equal(c->threads[0].frames[0].offset, 0x1234);
    assert_int_equal(c->threads[1].frames[1].module, 0);
    assert_int_equal(c->threads[1].frames[1].offset, 0x2000);
    assert_int_equal(c->threads[1].frames[2].module, -1);
    assert_int_equal(repro_crash_validate(c, &err), REPRO_OK);
    c->threads[0].crashed = 1;
    assert_int_equal(repro_crash_validate(c, &err), REPRO_E_MALFORMED);
    assert_non_null(strstr(err.msg, "crashing"));
    c->threads[0].crashed = 0;
    c->threads[1].frames[0].module = 9;
    repro_error_clear(&err);
    assert_int_equal(repro_crash_validate(c, &err), REPRO_E_MALFORMED);
    c->threads[1].frames[0].module = 0;
    repro_crash_mark_partial(c, "thread %d vanished", 7);
    repro_crash_mark_partial(c, "second reason");
    assert_string_equal(c->partial_reason, "thread 7 vanished");
    assert_string_equal(repro_signal_name(SIGABRT, buf, sizeof buf), "SIGABRT");
    assert_string_equal(repro_signal_name(77, buf, sizeof buf), "SIG77");
    repro_crash_free(c);
    repro_crash_free(NULL);
}

static void test_caps(void **state)
{
    struct repro_crash *c = repro_crash_new();
    struct repro_crash_thread *t = repro_crash_add_thread(c, 1, "x", 1);
    int i;
    (void)state;
    for (i = 0; i < REPRO_CRASH_MAX_FRAMES; i++)
        assert_int_equal(repro_crash_add_frame(t, (uint64_t)i), REPRO_OK);
    assert_int_equal(repro_crash_add_frame(t, 1), REPRO_E_LIMIT);
    assert_int_equal(t->n_frames, REPRO_CRASH_MAX_FRAMES);
    repro_crash_free(c);
}

static void test_store_roundtrip(void **state)
{
    char path[512];
    struct repro_store *s;
    struct repro_error err = {0};
    struct repro_crash *c = sample(), *back;
    int64_t id;
    (void)state;

    snprintf(path, sizeof path, "%s/c.db", test_tmpdir());
    assert_int_equal(repro_store_open(path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_app_store_crash(s, c, &id, &err), REPRO_OK);
    assert_int_equal(repro_app_load_crash(s, id, &back, &err), REPRO_OK);
    assert_int_equal(back->pid, 4242);
    assert_int_equal(back->tid, 4243);
    assert_int_equal(back->signo, SIGSEGV);
    assert_int_equal(back->fault_address, 0x10);
    assert_string_equal(back->executable, "/srv/app");
    assert_string_equal(back->source, "ptrace");
    assert_int_equal(back->n_modules, 2);
    assert_string_equal(back->modules[1].path, "/lib/libc.so.6");
    assert_string_equal(back->modules[0].build_id, "abcdef0123");
    assert_int_equal(back->n_threads, 2);
    assert_true(back->threads[1].crashed);
    assert_string_equal(back->threads[1].name, "worker");
    assert_string_equal(back->threads[1].registers, "rip=0x555500001000");
    assert_int_equal(back->threads[1].n_frames, 3);
    assert_int_equal(back->threads[1].frames[2].pc, 0xffffffffff600000ull);
    assert_int_equal(back->threads[1].frames[2].module, -1);
    assert_int_equal(back->threads[1].frames[1].offset, 0x2000);
    assert_int_equal(back->n_conns, 1);
    assert_int_equal(back->conns[0].remote_port, 51000);
    assert_int_equal(back->conns[0].remote_ip[3], 2);

    /* symbols and signature are updated in place */
    assert_int_equal(repro_crash_set_str(&back->threads[1].frames[0].function, "handler"), REPRO_OK);
    assert_int_equal(repro_crash_set_str(&back->threads[1].frames[0].file, "app.c"), REPRO_OK);
    back->threads[1].frames[0].line = 42;
    assert_int_equal(repro_crash_set_str(&back->signature, "SIGSEGV|handler"), REPRO_OK);
    assert_int_equal(repro_app_update_crash_symbols(s, id, back, &err), REPRO_OK);
    repro_crash_free(back);
    assert_int_equal(repro_app_load_crash(s, id, &back, &err), REPRO_OK);
    assert_string_equal(back->threads[1].frames[0].function, "handler");
    assert_int_equal(back->threads[1].frames[0].line, 42);
    assert_string_equal(back->signature, "SIGSEGV|handler");
    repro_crash_free(back);

    /* insert-once by record key */
    {
        int64_t a, b;
        assert_int_equal(repro_crash_set_str(&c->record_key, "inproc:h:1:2:3"), REPRO_OK);
        assert_int_equal(repro_app_store_crash(s, c, &a, &err), REPRO_OK);
        assert_int_equal(repro_app_store_crash(s, c, &b, &err), REPRO_OK);
        assert_int_equal(a, b);
        assert_int_not_equal(a, id);
    }
    repro_error_clear(&err);
    assert_int_equal(repro_app_load_crash(s, id + 100, &back, &err), REPRO_E_NOTFOUND);
    assert_null(back);
    /* An invalid record is refused and nothing is stored. */
    c->threads[0].frames[0].module = 77;
    repro_error_clear(&err);
    assert_int_equal(repro_app_store_crash(s, c, NULL, &err), REPRO_E_MALFORMED);
    repro_crash_free(c);
    repro_store_close(s);
}

static void test_signature(void **state)
{
    struct repro_crash *c = repro_crash_new();
    struct repro_crash_thread *t;
    static const char *const fn[] = {"__pthread_kill_implementation", "raise", "abort",
                                     "free_list_push", "clone_widget", "__assert_fail",
                                     "handler", "main"};
    size_t i;
    (void)state;

    c->signo = 6;
    repro_crash_add_module(c, "/srv/app", 0x1000, 0x9000, 0, "aa");
    repro_crash_add_module(c, "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x10000, 0x90000, 0, "bb");
    t = repro_crash_add_thread(c, 1, "app", 1);
    for (i = 0; i < sizeof fn / sizeof *fn; i++) {
        /* the first three and __assert_fail are in libc, the rest in the app */
        assert_int_equal(repro_crash_add_frame(t, i < 3 || i == 5 ? 0x10100 + i : 0x1100 + i),
                         REPRO_OK);
    }
    repro_crash_resolve_modules(c);
    for (i = 0; i < sizeof fn / sizeof *fn; i++)
        assert_int_equal(repro_crash_set_str(&t->frames[i].function, fn[i]), REPRO_OK);
    assert_int_equal(repro_crash_compute_signature(c), REPRO_OK);
    /* runtime frames skipped; application names that merely start like
     * runtime ones (free..., clone...) kept */
    assert_string_equal(c->signature, "SIGABRT|free_list_push|clone_widget|handler");

    /* unsymbolized application frames count as module+offset */
    for (i = 0; i < t->n_frames; i++) {
        repro_free(t->frames[i].function);
        t->frames[i].function = NULL;
    }
    assert_int_equal(repro_crash_compute_signature(c), REPRO_OK);
    assert_string_equal(c->signature, "SIGABRT|app+0x1103|app+0x1104|app+0x1106");
    repro_crash_free(c);
}

static void test_alloc_failures(void **state)
{
    unsigned long n;
    (void)state;
    for (n = 1; n < 200; n++) {
        struct repro_crash *c;
        struct repro_crash_thread *t;
        unsigned long made;
        int i;
        repro_alloc_fail_after(n);
        c = repro_crash_new();
        if (c != NULL) {
            repro_crash_add_module(c, "/x", 0, 100, 0, "ab");
            t = repro_crash_add_thread(c, 1, "t", 1);
            for (i = 0; t != NULL && i < 40; i++)
                if (repro_crash_add_frame(t, (uint64_t)i) != REPRO_OK)
                    break;
            repro_crash_set_str(&c->executable, "/x");
            repro_crash_resolve_modules(c);
        }
        made = repro_alloc_fail_after(0);
        repro_crash_free(c);
        if (made < n)
            break;
    }
    assert_true(n < 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_and_validate),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_store_roundtrip),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
