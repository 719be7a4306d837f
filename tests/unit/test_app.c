/*
 * Unit tests for app/: the conversions between producers' records and the
 * store's rows (capture counters, connections, exchanges with digests,
 * crashes both ways), the store sink through the background writer, and
 * the core formatters app/ and capture/ share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app/capture_rows.h"
#include "app/crash_rows.h"
#include "repro/capture.h"
#include "repro/crash.h"
#include "repro/store.h"
#include "test_util.h"
#include "app/replay_run.h"
#include <stdatomic.h>

static char db_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof db_path, "%s/app.db", test_tmpdir());
    unlink(db_path);
    return 0;
}

/* Every counter the captures table keeps in a column is one of capture's
 * counters (the store cannot include capture.h to check it itself), and
 * every capture counter reaches the store. */
static void test_counter_lists_agree(void **state)
{
    static const char *const columns[] = {
#define NAME(n) #n,
        REPRO_STORE_CAPTURE_COLUMNS(NAME)
#undef NAME
    };
    static const char *const counters[] = {
#define NAME2(n, doc) #n,
        REPRO_CAPTURE_COUNTERS(NAME2)
#undef NAME2
    };
    struct repro_capture_stats st;
    struct repro_store_counter out[REPRO_APP_CAPTURE_N_COUNTERS];
    size_t i, k, n;
    (void)state;

    for (i = 0; i < sizeof columns / sizeof *columns; i++) {
        int found = 0;
        for (k = 0; k < sizeof counters / sizeof *counters; k++)
            found |= strcmp(columns[i], counters[k]) == 0;
        if (!found)
            fail_msg("store column '%s' is not a capture counter", columns[i]);
    }
    memset(&st, 0, sizeof st);
    st.packets = 7;
    st.errors = 3;
    st.skipped[REPRO_SKIP_FRAGMENT] = 2;
    n = repro_app_capture_counters(&st, out);
    assert_int_equal(n, REPRO_APP_CAPTURE_N_COUNTERS);
    assert_int_equal(n, sizeof counters / sizeof *counters + 4);
    for (k = 0; k < sizeof counters / sizeof *counters; k++)
        assert_string_equal(out[k].name, counters[k]);
    assert_string_equal(out[0].name, "packets");
    assert_int_equal(out[0].value, 7);
    for (k = 0; k < n; k++)
        if (strcmp(out[k].name, "skipped_fragments") == 0)
            assert_int_equal(out[k].value, 2);
}

/* The core text formatters: endpoints, addresses, times. */
static void test_endpoint_text_matches_capture(void **state)
{
    static const uint8_t v4[16] = {10, 0, 0, 1};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    static const uint8_t mapped[16] = {[10] = 0xff, [11] = 0xff, 1, 2, 3, 4};
    const struct {
        int family;
        const uint8_t *ip;
    } cases[] = {{4, v4}, {6, v6}, {6, mapped}};
    char a[64], b[64];
    size_t i;
    (void)state;

    static const char *const want[] = {"10.0.0.1:8080", "[2001:db8::1]:8080",
                                       "[::ffff:1.2.3.4]:8080"};
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        repro_endpoint_format(b, sizeof b, cases[i].family, cases[i].ip, 8080);
        assert_string_equal(b, want[i]);
    }
    repro_ip_format(a, sizeof a, 6, mapped);
    assert_string_equal(a, "::ffff:1.2.3.4");
    repro_time_text(a, sizeof a, 1700000000123456);
    assert_string_equal(a, "2023-11-14 22:13:20.123456");
    repro_time_text(a, sizeof a, -1);
    assert_string_equal(a, "-");
}

static int digest_row(void *ctx, const struct repro_exchange_row *r)
{
    char *out = ctx;
    snprintf(out, 200, "%s %s %d %s", r->request_body_sha256 ? r->request_body_sha256 : "-",
             r->response_body_sha256 ? r->response_body_sha256 : "-", r->complete, r->client);
    return 0;
}

/* A capture session's records through the store sink and the background
 * writer: the connection is mapped, the digest stored as hex, complete
 * derived from the flags. */
static void test_store_sink_through_writer(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_app_store_sink ss;
    struct repro_capture_sink sink;
    struct repro_store_capture crow = {"file", "t", NULL, 1, 0, 0};
    struct repro_conn_info c;
    struct repro_exchange x;
    struct repro_exchange_filter f;
    char got[200];
    int i;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    memset(&ss, 0, sizeof ss);
    ss.store = s;
    ss.err = &err;
    assert_int_equal(repro_store_capture_begin(s, &crow, &ss.capture_id, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &ss.writer, &err), REPRO_OK);
    sink = repro_app_store_sink(&ss);
    memset(&c, 0, sizeof c);
    c.id = 1;
    c.store_id = -1; /* as capture hands it */
    c.family = 4;
    c.client_ip[0] = 10;
    c.client_ip[3] = 1;
    c.client_port = 999;
    c.closed_us = -1;
    c.end_reason = -1;
    assert_int_equal(sink.conn_open(sink.ctx, &c), REPRO_OK);
    memset(&x, 0, sizeof x);
    x.conn_id = 1;
    x.method = (struct repro_slice){(const uint8_t *)"GET", 3};
    x.req_first_us = x.req_last_us = x.resp_first_us = x.resp_last_us = -1;
    x.flags = REPRO_XF_REDACTED;
    for (i = 0; i < 32; i++)
        x.response_digest[i] = (uint8_t)i;
    x.has_response_digest = 1;
    assert_int_equal(sink.exchange(sink.ctx, &c, &x), REPRO_OK);
    c.end_reason = REPRO_END_FIN;
    c.closed_us = 5;
    assert_int_equal(sink.conn_close(sink.ctx, &c), REPRO_OK);
    assert_int_equal(repro_store_writer_finish(ss.writer, &err), REPRO_OK);
    memset(&f, 0, sizeof f);
    assert_int_equal(repro_store_exchanges(s, &f, 0, digest_row, got, &err), REPRO_OK);
    assert_string_equal(got, "- 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 1 "
                             "10.0.0.1:999");
    repro_store_close(s);
}

static struct repro_crash *sample_crash(void)
{
    struct repro_crash *c = repro_crash_new();
    struct repro_crash_thread *t;
    struct repro_crash_conn k;

    assert_non_null(c);
    c->time_us = 1700000000000000;
    c->pid = 4242;
    c->tid = 4243;
    c->signo = 11;
    c->fault_address = 0xdeadbeef;
    snprintf(c->source, sizeof c->source, "ptrace");
    assert_int_equal(repro_crash_set_str(&c->executable, "/srv/app"), REPRO_OK);
    assert_int_equal(repro_crash_set_str(&c->service, "web"), REPRO_OK);
    assert_int_equal(repro_crash_add_module(c, "/srv/app", 0x400000, 0x500000, 0x400000, "abcd"),
                     REPRO_OK);
    t = repro_crash_add_thread(c, 4242, "main", 0);
    assert_non_null(t);
    assert_int_equal(repro_crash_add_frame(t, 0x401000), REPRO_OK);
    t = repro_crash_add_thread(c, 4243, "worker", 1);
    assert_non_null(t);
    assert_int_equal(repro_crash_set_str(&t->registers, "rip=0x401234"), REPRO_OK);
    assert_int_equal(repro_crash_add_frame(t, 0x401234), REPRO_OK);
    assert_int_equal(repro_crash_add_frame(t, 0x7f0000001000), REPRO_OK);
    repro_crash_resolve_modules(c);
    assert_int_equal(repro_crash_set_str(&t->frames[0].function, "boom"), REPRO_OK);
    t->frames[0].line = 12;
    memset(&k, 0, sizeof k);
    k.fd = 7;
    k.family = 6;
    k.local_ip[15] = 1;
    k.remote_ip[10] = k.remote_ip[11] = 0xff;
    k.remote_ip[12] = 127;
    k.remote_ip[15] = 1;
    k.local_port = 80;
    k.remote_port = 5555;
    k.state = 1;
    assert_int_equal(repro_crash_add_conn(c, &k), REPRO_OK);
    return c;
}

/* A crash record stored through its row and loaded back is the same
 * record. */
static void test_crash_round_trip(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_crash *c = sample_crash(), *back = NULL;
    int64_t id = 0;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_app_store_crash(s, c, &id, &err), REPRO_OK);
    assert_int_equal(repro_app_load_crash(s, id, &back, &err), REPRO_OK);
    assert_int_equal(back->pid, 4242);
    assert_int_equal(back->fault_address, 0xdeadbeef);
    assert_string_equal(back->source, "ptrace");
    assert_string_equal(back->service, "web");
    assert_int_equal(back->n_modules, 1);
    assert_string_equal(back->modules[0].build_id, "abcd");
    assert_int_equal(back->n_threads, 2);
    assert_int_equal(back->threads[1].crashed, 1);
    assert_string_equal(back->threads[1].registers, "rip=0x401234");
    assert_int_equal(back->threads[1].n_frames, 2);
    assert_string_equal(back->threads[1].frames[0].function, "boom");
    assert_int_equal(back->threads[1].frames[0].module, 0);
    assert_int_equal(back->threads[1].frames[0].offset, 0x1234);
    assert_int_equal(back->threads[1].frames[1].module, -1);
    assert_int_equal(back->n_conns, 1);
    assert_memory_equal(back->conns[0].remote_ip, c->conns[0].remote_ip, 16);
    assert_int_equal(back->conns[0].remote_port, 5555);
    repro_crash_free(back);
    /* An invalid record is refused before the store sees it. */
    c->threads[0].frames[0].module = 5;
    assert_int_equal(repro_app_store_crash(s, c, NULL, &err), REPRO_E_MALFORMED);
    repro_crash_free(c);
    repro_store_close(s);
}

/* A crash queued through the background writer between rows of another
 * domain is stored whole. */
static int count_id(void *ctx, int64_t id)
{
    (void)id;
    ++*(int *)ctx;
    return 0;
}

static void test_crash_through_writer(void **state)
{
    struct repro_store *s = NULL;
    struct repro_store_writer *w = NULL;
    struct repro_error err = {0};
    struct repro_crash *c = sample_crash(), *back = NULL;
    struct repro_app_crash_row row;
    struct repro_store_row r;
    int n = 0;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    assert_int_equal(repro_app_crash_row_init(&row, c, &err), REPRO_OK);
    r.kind = REPRO_ROW_CRASH;
    r.u.crash = &row.row;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    repro_app_crash_row_release(&row);
    repro_crash_free(c);
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    assert_int_equal(repro_store_crash_ids(s, count_id, &n, &err), REPRO_OK);
    assert_int_equal(n, 1);
    assert_int_equal(repro_app_load_crash(s, 1, &back, &err), REPRO_OK);
    assert_string_equal(back->threads[1].frames[0].function, "boom");
    assert_string_equal(back->modules[0].path, "/srv/app");
    repro_crash_free(back);
    repro_store_close(s);
}

struct end_seen {
    char status[16], error[64], stats[4096];
    int64_t exchanges;
};

static int end_fn(void *ctx, const struct repro_capture_row *r)
{
    struct end_seen *e = ctx;
    snprintf(e->status, sizeof e->status, "%s", r->status);
    snprintf(e->error, sizeof e->error, "%s", r->error ? r->error : "(null)");
    snprintf(e->stats, sizeof e->stats, "%s", r->stats_json ? r->stats_json : "");
    e->exchanges = r->exchanges;
    return 0;
}

/* A failed capture's record: its reason, the exchanges the writer
 * committed rather than those parsed, the writer's figures and the live
 * agent's extra counters at the end of stats_json, in order. */
static void test_capture_end_is_honest(void **state)
{
    struct repro_store *s = NULL;
    struct repro_store_capture cap = {"live", "lo", NULL, 1, 0, 0};
    struct repro_capture_stats st;
    struct repro_store_writer_stats ws;
    struct repro_store_counter extra[] = {{"kernel_drops", 7}, {"queue_drops_full", 2}};
    struct repro_app_capture_outcome how = {"failed", "disk full", &ws, extra, 2};
    struct repro_error err = {0};
    struct end_seen seen;
    const char *tail = "\"kernel_drops\":7,\"queue_drops_full\":2}";
    int64_t id = 0;
    (void)state;

    memset(&st, 0, sizeof st);
    memset(&ws, 0, sizeof ws);
    st.packets = 40;
    st.exchanges = 5;
    ws.exchanges = 3;
    ws.connections = 2;
    ws.busy_retries = 4;
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &cap, &id, &err), REPRO_OK);
    how.n_extra = REPRO_APP_CAPTURE_MAX_EXTRA + 1;
    assert_int_equal(repro_app_capture_end(s, id, &st, &how, &err), REPRO_E_INVAL);
    repro_error_clear(&err);
    how.n_extra = 2;
    assert_int_equal(repro_app_capture_end(s, id, &st, &how, &err), REPRO_OK);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(repro_store_captures(s, end_fn, &seen, &err), REPRO_OK);
    assert_string_equal(seen.status, "failed");
    assert_string_equal(seen.error, "disk full");
    assert_int_equal(seen.exchanges, 3);
    assert_non_null(strstr(seen.stats, "\"exchanges\":3,"));
    assert_non_null(strstr(seen.stats, "\"exchanges_not_stored\":2,"));
    assert_non_null(strstr(seen.stats, "\"stored_connections\":2,"));
    assert_non_null(strstr(seen.stats, "\"store_busy_retries\":4,"));
    assert_string_equal(seen.stats + strlen(seen.stats) - strlen(tail), tail);
    repro_store_close(s);
}

/* The live line of repro replay: what it says for known counts. */
static void test_replay_progress_line(void **state)
{
    static struct repro_replay_progress p;
    char line[256];
    (void)state;
    memset(&p, 0, sizeof p);
    repro_app_replay_progress_line(line, sizeof line, &p, 10, 0, 1);
    assert_string_equal(line, "replay: 0/10 sent, 0 req/s, 0 match, 0 mismatch, 0 error, "
                              "schedule p99 0.0 us");
    atomic_store(&p.sent, 4);
    atomic_store(&p.matched, 2);
    atomic_store(&p.mismatched, 1);
    atomic_store(&p.errors, 1);
    for (int i = 0; i < 99; i++) /* 99 errors of 31 ns (bucket 23), one of 40 us */
        atomic_fetch_add(&p.sched_hist[23], 1);
    atomic_fetch_add(&p.sched_hist[100], 1);
    assert_int_equal(repro_replay_progress_sched_ns(&p, 0.98), 31);
    assert_true(repro_replay_progress_sched_ns(&p, 1.0) > 31);
    repro_app_replay_progress_line(line, sizeof line, &p, 10, 2000000000u, 0);
    assert_string_equal(line, "replay: 4/10 sent, 2 req/s, 2 match, 1 mismatch, 1 error, ETA 3 s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counter_lists_agree, setup),
        cmocka_unit_test_setup(test_endpoint_text_matches_capture, setup),
        cmocka_unit_test_setup(test_store_sink_through_writer, setup),
        cmocka_unit_test_setup(test_crash_round_trip, setup),
        cmocka_unit_test_setup(test_crash_through_writer, setup),
        cmocka_unit_test_setup(test_capture_end_is_honest, setup),
        cmocka_unit_test(test_replay_progress_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
