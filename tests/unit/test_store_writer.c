/*
 * Unit tests for the store's background writer under a production load
 * (store/writer.c, store/sqlite_prune.c): a database another process holds
 * locked (nothing lost, retries counted, a bounded wait at finish), a
 * rolled-back segment applied again with its connection ids undone, kick
 * (rows visible to another connection without a flush), retention by size
 * and by age (which rows go, which never do), the figures, and the schema
 * 4 -> 5 migration (captures.error).
 *
 * Waits for the writer thread poll the database or the writer's figures
 * for a condition; a hang guard fails the test after a minute, far beyond
 * any expected time, so nothing asserts on timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "repro/store.h"
#include "store/store_int.h"
#include "test_util.h"
#include "tu_sqlite.h"

static char db_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof db_path, "%s/w.db", test_tmpdir());
    return 0;
}

/* Polls cond(ctx) every millisecond; fails after a minute (a hang guard,
 * not a timing assertion). */
static void wait_for(int (*cond)(void *ctx), void *ctx, const char *what)
{
    const struct timespec ms = {0, 1000 * 1000};
    int i;

    for (i = 0; i < 60000; i++) {
        if (cond(ctx))
            return;
        nanosleep(&ms, NULL);
    }
    fail_msg("still waiting for %s after a minute", what);
}

/* ---- rows -------------------------------------------------------------- */

static struct repro_slice sl(const char *s)
{
    return (struct repro_slice){(const uint8_t *)s, strlen(s)};
}

static void put_conn(struct repro_store_writer *w, enum repro_store_row_kind kind, uint64_t local,
                     int64_t capture_id)
{
    struct repro_store_conn c;
    struct repro_store_row r = {kind, {.conn = &c}};
    struct repro_error err = {0};

    memset(&c, 0, sizeof c);
    c.local_id = local;
    c.capture_id = capture_id;
    c.family = 4;
    c.client_ip[0] = 127;
    c.client_ip[3] = 1;
    c.server_ip[0] = 127;
    c.server_ip[3] = 2;
    c.client_port = (uint16_t)(1024 + local % 60000);
    c.server_port = 80;
    c.opened_us = 1700000000000000;
    c.closed_us = kind == REPRO_ROW_CONN_CLOSE ? 1700000000000001 : -1;
    c.end_reason = kind == REPRO_ROW_CONN_CLOSE ? "fin" : NULL;
    c.is_http = 1;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
}

/* An exchange of connection local at time_us with a body of body_len. */
static void put_x(struct repro_store_writer *w, uint64_t local, uint64_t seq, int64_t capture_id,
                  int64_t time_us, size_t body_len)
{
    static char body[16384];
    struct repro_store_exchange x;
    struct repro_store_row r = {REPRO_ROW_EXCHANGE, {.exchange = &x}};
    struct repro_error err = {0};
    char uri[32];

    assert_true(body_len <= sizeof body);
    memset(body, 'b', sizeof body);
    snprintf(uri, sizeof uri, "/%llu/%llu", (unsigned long long)local, (unsigned long long)seq);
    memset(&x, 0, sizeof x);
    x.capture_id = capture_id;
    x.conn_local_id = local;
    x.seq = seq;
    x.method = sl("GET");
    x.uri = sl(uri);
    x.status = 200;
    x.reason = sl("OK");
    x.request = sl("GET / HTTP/1.1\r\n\r\n");
    x.response = (struct repro_slice){(const uint8_t *)body, body_len};
    x.request_first_us = x.request_last_us = time_us;
    x.response_first_us = x.response_last_us = time_us + 1;
    x.complete = 1;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
}

static struct repro_store *open_store(int64_t *capture_id)
{
    struct repro_store *s = NULL;
    struct repro_store_capture cap = {"live", "lo", NULL, 1, 0, 0};
    struct repro_error err = {0};

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &cap, capture_id, &err), REPRO_OK);
    return s;
}

/* ---- a locked database -------------------------------------------------- */

struct busy_wait {
    struct repro_store_writer *w;
    uint64_t retries;
};

static int retried(void *ctx)
{
    struct busy_wait *b = ctx;
    struct repro_store_writer_stats st;
    repro_store_writer_stats(b->w, &st);
    return st.busy_retries >= b->retries;
}

/* Another connection holds the write lock far longer than the busy
 * timeout while rows are queued: the writer keeps them, retries, and
 * once the lock goes every row is stored; the producer never fails. */
static void test_locked_database_loses_nothing(void **state)
{
    struct repro_store *s;
    struct repro_store_writer *w = NULL;
    struct repro_store_writer_stats st;
    struct repro_error err = {0};
    struct busy_wait bw;
    sqlite3 *locker;
    int64_t cap;
    int i;
    (void)state;

    s = open_store(&cap);
    repro_store_set_busy_timeout(s, 20);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    locker = tu_sql_open(db_path);
    assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    put_conn(w, REPRO_ROW_CONN_OPEN, 1, cap);
    for (i = 0; i < 100; i++)
        put_x(w, 1, (uint64_t)i, cap, 1700000000000000, 100);
    assert_int_equal(repro_store_writer_kick(w, &err), REPRO_OK);
    bw.w = w;
    bw.retries = 3;
    wait_for(retried, &bw, "three busy retries");
    /* Still locked: the producer goes on queueing. */
    for (; i < 200; i++)
        put_x(w, 1, (uint64_t)i, cap, 1700000000000000, 100);
    put_conn(w, REPRO_ROW_CONN_CLOSE, 1, cap);
    assert_int_equal(repro_store_writer_kick(w, &err), REPRO_OK); /* one is queued: no-op */
    repro_store_writer_stats(w, &st);
    assert_int_equal(st.exchanges, 0);
    assert_true(st.queued_bytes > 0);
    assert_int_equal(st.failed, 0);
    assert_int_equal(tu_sql_int(locker, "SELECT count(*) FROM exchanges"), 0);

    assert_int_equal(sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(repro_store_writer_flush(w, &err), REPRO_OK);
    repro_store_writer_stats(w, &st);
    assert_int_equal(st.exchanges, 200);
    assert_int_equal(st.connections, 1);
    assert_int_equal(st.connection_updates, 1);
    assert_int_equal(st.queued_bytes, 0);
    assert_true(st.busy_retries >= 3);
    assert_true(st.blocked_ms > 0);
    assert_true(st.transactions >= 1);
    assert_string_equal(st.last_error, "");
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    assert_int_equal(tu_sql_int(locker, "SELECT count(*) FROM exchanges"), 200);
    assert_int_equal(tu_sql_int(locker, "SELECT count(DISTINCT seq) FROM exchanges"), 200);
    assert_int_equal(tu_sql_int(locker, "SELECT count(*) FROM connections WHERE end_reason = 'fin'"), 1);
    sqlite3_close(locker);
    repro_store_close(s);
}

/* Puts 16 KiB rows until one fails (the writer, retrying the locked
 * database, holds a full batch and the producer waits): returns that
 * put's code, or REPRO_OK if limit rows went in. */
static int put_until_blocked(struct repro_store_writer *w, int64_t cap, int limit,
                             struct repro_error *err)
{
    static char body[16384];
    struct repro_store_exchange x;
    struct repro_store_row r = {REPRO_ROW_EXCHANGE, {.exchange = &x}};
    int i, rc = REPRO_OK;

    memset(body, 'b', sizeof body);
    memset(&x, 0, sizeof x);
    x.capture_id = cap;
    x.conn_local_id = 1;
    x.method = sl("GET");
    x.uri = sl("/big");
    x.response = (struct repro_slice){(const uint8_t *)body, sizeof body};
    x.request_first_us = x.request_last_us = x.response_first_us = x.response_last_us = 1;
    for (i = 0; i < limit && rc == REPRO_OK; i++) {
        x.seq = (uint64_t)i;
        rc = repro_store_writer_put(w, &r, err);
    }
    return rc;
}

static void *interrupt_later(void *arg)
{
    struct busy_wait bw = {arg, 2};
    /* Once the writer is retrying the lock; whether the producer is already
     * blocked or blocks later, the interrupt lets it go (the flag stays). */
    wait_for(retried, &bw, "two busy retries");
    repro_store_writer_interrupt(arg);
    return NULL;
}

/* A producer blocked behind a database another process holds is let go
 * by an interrupt (SIGINT in the live agent) or by its deadline
 * (--duration), with a clear error; without either it would wait for as
 * long as the lock lasts. So is a flush (pass 2: the live agent flushes
 * after recovering a spool). */
static void test_blocked_put_interrupted(void **state)
{
    struct repro_store *s;
    struct repro_store_writer *w = NULL;
    struct repro_error err = {0};
    sqlite3 *locker;
    pthread_t t;
    int64_t cap;
    int pass;
    (void)state;

    for (pass = 0; pass < 3; pass++) {
        snprintf(db_path, sizeof db_path, "%s/blocked%d.db", test_tmpdir(), pass);
        s = open_store(&cap);
        repro_store_set_busy_timeout(s, 20);
        assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
        repro_store_writer_set_finish_wait(w, 50);
        locker = tu_sql_open(db_path);
        assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        put_conn(w, REPRO_ROW_CONN_OPEN, 1, cap);
        if (pass != 1) {
            assert_int_equal(pthread_create(&t, NULL, interrupt_later, w), 0);
        } else {
            repro_store_writer_set_deadline(w, repro_mono_ns() + 300000000u);
        }
        repro_error_clear(&err);
        if (pass < 2) /* 4 MiB batches: 2000 rows of 16 KiB are far more than two */
            assert_int_equal(put_until_blocked(w, cap, 2000, &err), REPRO_E_BUSY);
        else
            assert_int_equal(repro_store_writer_flush(w, &err), REPRO_E_BUSY);
        assert_non_null(strstr(err.msg, "stopped while the database was locked"));
        if (pass != 1)
            pthread_join(t, NULL);
        repro_error_clear(&err);
        assert_int_equal(repro_store_writer_finish(w, &err), REPRO_E_BUSY);
        sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(locker);
        repro_store_close(s);
    }
}

/* Still locked when finish() is called: the writer waits the bounded
 * time, then fails naming the database and the lock; the figures count
 * nothing committed. */
static void test_locked_past_finish_wait_fails_clearly(void **state)
{
    struct repro_store *s;
    struct repro_store_writer *w = NULL;
    struct repro_store_writer_stats st;
    struct repro_error err = {0};
    sqlite3 *locker;
    int64_t cap;
    (void)state;

    s = open_store(&cap);
    repro_store_set_busy_timeout(s, 20);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    repro_store_writer_set_finish_wait(w, 50);
    locker = tu_sql_open(db_path);
    assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    put_conn(w, REPRO_ROW_CONN_OPEN, 1, cap);
    put_x(w, 1, 0, cap, 1700000000000000, 10);
    memset(&st, 0xff, sizeof st);
    assert_int_equal(repro_store_writer_finish_stats(w, &st, &err), REPRO_E_BUSY);
    assert_non_null(strstr(err.msg, db_path));
    assert_non_null(strstr(err.msg, "locked by another process"));
    assert_non_null(strstr(err.msg, "gave up"));
    assert_int_equal(st.exchanges, 0);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.failed, 1);
    assert_true(st.busy_retries >= 1);
    assert_string_equal(st.last_error, err.msg);
    sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(locker);
    repro_store_close(s);
}

/* ---- a segment rolled back and applied again ---------------------------- */

/* A backend with transactions that records committed rows only, gives
 * ids that are never reused (as after another process's inserts) and
 * fails one row with REPRO_E_BUSY. */
struct tx_fake {
    char log[1024];
    size_t mark; /* log length at BEGIN */
    int in_tx, rows, busy_at, begins, rollbacks;
    int64_t next_id;
};
static struct tx_fake txf;

static void tx_log(const char *what)
{
    size_t n = strlen(txf.log);
    snprintf(txf.log + n, sizeof txf.log - n, "%s%s", n ? " " : "", what);
}
static int tx_row(const char *what, int64_t *id, struct repro_error *err)
{
    assert_true(txf.in_tx);
    if (++txf.rows == txf.busy_at)
        return repro_error_set(err, REPRO_E_BUSY, "fake lock at row %d", txf.rows);
    tx_log(what);
    if (id)
        *id = ++txf.next_id;
    return REPRO_OK;
}
static int tx_open(const char *path, int flags, void **impl, struct repro_error *err)
{
    (void)path, (void)flags, (void)err;
    *impl = &txf;
    return REPRO_OK;
}
static void tx_close(void *impl)
{
    (void)impl;
}
static int tx_begin(void *impl, struct repro_error *err)
{
    (void)impl, (void)err;
    txf.in_tx = 1;
    txf.begins++;
    txf.mark = strlen(txf.log);
    return REPRO_OK;
}
static int tx_flush(void *impl, struct repro_error *err)
{
    (void)impl, (void)err;
    if (txf.in_tx)
        tx_log("|");
    txf.in_tx = 0;
    return REPRO_OK;
}
static void tx_rollback(void *impl)
{
    (void)impl;
    txf.log[txf.mark] = '\0';
    txf.in_tx = 0;
    txf.rollbacks++;
}
static int tx_conn_insert(void *impl, const struct repro_store_conn *row, int64_t *id,
                          struct repro_error *err)
{
    char w[32];
    (void)impl;
    snprintf(w, sizeof w, "conn+%llu", (unsigned long long)row->local_id);
    return tx_row(w, id, err);
}
static int tx_conn_update(void *impl, const struct repro_store_conn *row, struct repro_error *err)
{
    char w[32];
    (void)impl;
    snprintf(w, sizeof w, "close=%lld", (long long)row->id);
    return tx_row(w, NULL, err);
}
static int tx_exchange(void *impl, const struct repro_store_exchange *rows, size_t n,
                       int64_t *id, struct repro_error *err)
{
    char w[32];
    int rc = REPRO_OK;
    (void)impl;
    for (size_t k = 0; rc == REPRO_OK && k < n; k++) {
        snprintf(w, sizeof w, "x@%lld", (long long)rows[k].connection_id);
        rc = tx_row(w, k == 0 ? id : NULL, err);
    }
    return rc;
}

static const struct repro_store_ops tx_ops = {
    .name = "txfake",
    .open = tx_open,
    .close = tx_close,
    .flush = tx_flush,
    .begin = tx_begin,
    .rollback = tx_rollback,
    .conn_insert = tx_conn_insert,
    .conn_update = tx_conn_update,
    .exchange_insert = tx_exchange,
};

/* A lock found in the middle of a batch: the batch is rolled back and
 * applied again; the connection it opened gets its new id, the one it
 * closed is still known, and nothing is stored twice. */
static void test_rolled_back_segment_undoes_ids(void **state)
{
    struct repro_store *s = NULL;
    struct repro_store_writer *w = NULL;
    struct repro_store_writer_stats st;
    struct repro_error err = {0};
    (void)state;

    memset(&txf, 0, sizeof txf);
    txf.busy_at = 5; /* the second batch's third row */
    assert_int_equal(repro_store_open_with(&tx_ops, "txfake:", 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    put_conn(w, REPRO_ROW_CONN_OPEN, 1, 1);
    put_x(w, 1, 0, 1, 1, 1);
    assert_int_equal(repro_store_writer_flush(w, &err), REPRO_OK);
    put_conn(w, REPRO_ROW_CONN_OPEN, 2, 1);
    put_x(w, 2, 0, 1, 1, 1);
    put_conn(w, REPRO_ROW_CONN_CLOSE, 1, 1);
    put_x(w, 2, 1, 1, 1, 1);
    put_conn(w, REPRO_ROW_CONN_CLOSE, 2, 1);
    assert_int_equal(repro_store_writer_flush(w, &err), REPRO_OK);
    repro_store_writer_stats(w, &st);
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    repro_store_close(s);
    /* conn 2 was id 2 in the rolled-back attempt, 3 in the one that
     * committed (ids are not reused). */
    assert_string_equal(txf.log, "conn+1 x@1 | conn+2 x@3 close=1 x@3 close=3 |");
    assert_int_equal(txf.rollbacks, 1);
    assert_int_equal(st.busy_retries, 1);
    assert_int_equal(st.exchanges, 3);
    assert_int_equal(st.connections, 2);
    assert_int_equal(st.connection_updates, 2);
    assert_int_equal(st.transactions, 2);
}

/* ---- kick ------------------------------------------------------------- */

struct seen {
    sqlite3 *db;
    int64_t want;
};

static int rows_seen(void *ctx)
{
    struct seen *s = ctx;
    return tu_sql_int(s->db, "SELECT count(*) FROM exchanges") == s->want;
}

/* Kick hands the rows over without waiting: another connection sees them
 * with no flush. */
static void test_kick_makes_rows_visible(void **state)
{
    struct repro_store *s;
    struct repro_store_writer *w = NULL;
    struct repro_error err = {0};
    struct seen seen;
    int64_t cap;
    (void)state;

    s = open_store(&cap);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    seen.db = tu_sql_open(db_path);
    assert_int_equal(repro_store_writer_kick(w, &err), REPRO_OK); /* empty: nothing to do */
    put_conn(w, REPRO_ROW_CONN_OPEN, 1, cap);
    put_x(w, 1, 0, cap, 1700000000000000, 10);
    put_x(w, 1, 1, cap, 1700000000000000, 10);
    put_x(w, 1, 2, cap, 1700000000000000, 10);
    assert_int_equal(repro_store_writer_kick(w, &err), REPRO_OK);
    seen.want = 3;
    wait_for(rows_seen, &seen, "three exchanges visible to another connection");
    put_x(w, 1, 3, cap, 1700000000000000, 10);
    assert_int_equal(repro_store_writer_kick(w, &err), REPRO_OK);
    seen.want = 4;
    wait_for(rows_seen, &seen, "the fourth exchange");
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    sqlite3_close(seen.db);
    repro_store_close(s);
}

/* ---- retention ---------------------------------------------------------- */

struct pruned {
    sqlite3 *db;
    uint64_t max_bytes;
    int64_t want_exchanges;
};

static uint64_t used_bytes(sqlite3 *db)
{
    return (uint64_t)(tu_sql_int(db, "PRAGMA page_count") - tu_sql_int(db, "PRAGMA freelist_count")) *
           (uint64_t)tu_sql_int(db, "PRAGMA page_size");
}

/* Retention is done: under the size (or down to the wanted count) and no
 * closed connection left without exchanges. */
static int pruned_enough(void *ctx)
{
    struct pruned *p = ctx;
    if (p->max_bytes && used_bytes(p->db) > p->max_bytes)
        return 0;
    if (p->want_exchanges >= 0 &&
        tu_sql_int(p->db, "SELECT count(*) FROM exchanges") != p->want_exchanges)
        return 0;
    return tu_sql_int(p->db, "SELECT count(*) FROM connections c WHERE closed_us IS NOT NULL AND NOT"
                        " EXISTS (SELECT 1 FROM exchanges e WHERE e.connection_id = c.id)") == 0;
}

/* A crash, a replay run whose result refers to exchange 1, and an open
 * connection without exchanges: none of them is retention's to delete. */
static void add_protected_rows(struct repro_store *s, int64_t cap)
{
    struct repro_store_crash c;
    struct repro_store_replay_run run = {1700000000000000, "127.0.0.1:1", NULL, 0, NULL};
    struct repro_store_replay_result res;
    struct repro_store_conn open_conn;
    struct repro_error err = {0};
    int64_t run_id = 0;

    memset(&c, 0, sizeof c);
    c.time_us = 1;
    c.signal = "SIGSEGV";
    c.signo = 11;
    c.source = "inproc";
    assert_int_equal(repro_store_crash_add(s, &c, NULL, &err), REPRO_OK);
    assert_int_equal(repro_store_replay_run_begin(s, &run, &run_id, &err), REPRO_OK);
    memset(&res, 0, sizeof res);
    res.run_id = run_id;
    res.exchange_id = 1;
    res.verdict = "match";
    assert_int_equal(repro_store_replay_result_insert(s, &res, &err), REPRO_OK);
    memset(&open_conn, 0, sizeof open_conn);
    open_conn.capture_id = cap;
    open_conn.family = 4;
    open_conn.closed_us = -1;
    assert_int_equal(repro_store_conn_insert(s, &open_conn, NULL, &err), REPRO_OK);
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
}

/* Over the size limit the oldest exchanges go first, in small
 * transactions, until the used size is under it; then their connections.
 * Crashes, replay rows, the exchange a replay refers to and open
 * connections stay. */
static void test_retention_by_size(void **state)
{
    const uint64_t max_bytes = 2u << 20;
    const int n = 1200; /* 8 KiB bodies: about 10 MiB, five times the limit */
    struct repro_store *s;
    struct repro_store_writer *w = NULL;
    struct repro_store_writer_stats st;
    struct repro_error err = {0};
    struct pruned p;
    int64_t cap, min_id, left;
    int i;
    (void)state;

    s = open_store(&cap);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    for (i = 1; i <= n; i++) {
        put_conn(w, REPRO_ROW_CONN_OPEN, (uint64_t)i, cap);
        put_x(w, (uint64_t)i, 0, cap, 1700000000000000 + i, 8192);
        put_conn(w, REPRO_ROW_CONN_CLOSE, (uint64_t)i, cap);
        if (i == 1) { /* exchange 1 exists: protect it before the limit */
            assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
            add_protected_rows(s, cap);
            assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
        }
    }
    assert_int_equal(repro_store_writer_flush(w, &err), REPRO_OK);
    p.db = tu_sql_open(db_path);
    assert_true(used_bytes(p.db) > 4 * max_bytes);
    repro_store_writer_set_retention(w, max_bytes, 0);
    p.max_bytes = max_bytes;
    p.want_exchanges = -1;
    wait_for(pruned_enough, &p, "the database under 2 MiB");
    repro_store_writer_stats(w, &st);
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);

    left = tu_sql_int(p.db, "SELECT count(*) FROM exchanges");
    if (left <= 1 || left >= n / 2)
        fail_msg("%lld exchanges left of %d", (long long)left, n);
    assert_true(st.pruned_exchanges >= (uint64_t)(n - left));
    assert_true(st.pruned_connections > 0);
    /* The newest stayed, contiguous (and exchange 1, which a replay
     * result refers to). */
    min_id = tu_sql_int(p.db, "SELECT min(id) FROM exchanges WHERE id > 1");
    assert_int_equal(tu_sql_int(p.db, "SELECT max(id) FROM exchanges"), n);
    assert_int_equal(left, n - min_id + 1 + 1);
    assert_int_equal(tu_sql_int(p.db, "SELECT count(*) FROM exchanges WHERE id = 1"), 1);
    assert_int_equal(tu_sql_int(p.db, "SELECT count(*) FROM crashes"), 1);
    assert_int_equal(tu_sql_int(p.db, "SELECT count(*) FROM replay_runs"), 1);
    assert_int_equal(tu_sql_int(p.db, "SELECT count(*) FROM replay_results"), 1);
    assert_int_equal(tu_sql_int(p.db, "SELECT count(*) FROM captures"), 1);
    assert_int_equal(tu_sql_int(p.db, "SELECT count(*) FROM connections WHERE closed_us IS NULL"), 1);
    /* Every exchange left still has its connection. */
    assert_int_equal(tu_sql_int(p.db, "SELECT count(*) FROM exchanges e WHERE NOT EXISTS"
                                 " (SELECT 1 FROM connections c WHERE c.id = e.connection_id)"),
                     0);
    sqlite3_close(p.db);
    repro_store_close(s);
}

/* Exchanges older than the retention go, the younger stay, even with no
 * batch written after the limit is set (the writer checks once a second
 * while idle). */
static void test_retention_by_age(void **state)
{
    const int64_t hour_us = 3600 * (int64_t)1000000;
    struct repro_store *s;
    struct repro_store_writer *w = NULL;
    struct repro_store_writer_stats st;
    struct repro_error err = {0};
    struct pruned p;
    int64_t cap, now = repro_wall_us();
    int i;
    (void)state;

    s = open_store(&cap);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    for (i = 1; i <= 700; i++) {
        int old = i <= 600;
        put_conn(w, REPRO_ROW_CONN_OPEN, (uint64_t)i, cap);
        put_x(w, (uint64_t)i, 0, cap, old ? now - 2 * hour_us : now, 10);
        put_conn(w, REPRO_ROW_CONN_CLOSE, (uint64_t)i, cap);
    }
    assert_int_equal(repro_store_writer_flush(w, &err), REPRO_OK);
    repro_store_writer_set_retention(w, 0, hour_us);
    p.db = tu_sql_open(db_path);
    p.max_bytes = 0;
    p.want_exchanges = 100;
    wait_for(pruned_enough, &p, "the exchanges older than an hour gone");
    repro_store_writer_stats(w, &st);
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    assert_int_equal(st.pruned_exchanges, 600);
    assert_int_equal(st.pruned_connections, 600);
    assert_int_equal(tu_sql_int(p.db, "SELECT min(id) FROM exchanges"), 601);
    assert_int_equal(tu_sql_int(p.db, "SELECT count(*) FROM connections"), 100);
    sqlite3_close(p.db);
    repro_store_close(s);
}

/* The prune call itself, without a writer: limits off delete nothing; a
 * limit nothing can meet (every exchange referred to) does not spin. */
static void test_prune_call(void **state)
{
    struct repro_store *s;
    struct repro_store_writer *w = NULL;
    struct repro_store_prune req = {0, 0, 10};
    struct repro_store_prune_result res;
    struct repro_error err = {0};
    sqlite3 *db;
    int64_t cap;
    (void)state;

    s = open_store(&cap);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    put_conn(w, REPRO_ROW_CONN_OPEN, 1, cap);
    put_x(w, 1, 0, cap, 1, 10);
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    assert_int_equal(repro_store_prune(s, &req, &res, &err), REPRO_OK);
    assert_int_equal(res.exchanges, 0);
    assert_int_equal(res.more, 0);
    assert_true(res.used_bytes > 0);
    db = tu_sql_open(db_path);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO replay_runs(started_us, target, speed, status)"
                                  " VALUES (1, 'x', 0, 'complete');"
                                  "INSERT INTO replay_results(run_id, exchange_id, loop, verdict)"
                                  " VALUES (1, 1, 0, 'match')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    req.max_db_bytes = 1; /* unreachable */
    assert_int_equal(repro_store_prune(s, &req, &res, &err), REPRO_OK);
    assert_int_equal(res.exchanges, 0);
    assert_int_equal(res.more, 0);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM exchanges"), 1);
    sqlite3_close(db);
    repro_store_close(s);
}

/* ---- schema version 5 ------------------------------------------------- */

struct capture_seen {
    char status[16], error[128];
    int64_t exchanges;
    int n;
};

static int capture_fn(void *ctx, const struct repro_capture_row *r)
{
    struct capture_seen *c = ctx;
    snprintf(c->status, sizeof c->status, "%s", r->status);
    snprintf(c->error, sizeof c->error, "%s", r->error ? r->error : "(null)");
    c->exchanges = r->exchanges;
    c->n++;
    return 0;
}

/* A version-4 file with a running capture migrates to 5 on open: the
 * error column (NULL for what was there) and the index exist, and a
 * failed capture's reason goes in and comes back. */
static void test_migrate_v4_to_v5(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_counter counters[] = {{"packets", 5}, {"exchanges", 2}};
    struct repro_store_capture_end end = {"failed", counters, 2, "disk full"};
    struct capture_seen seen;
    sqlite3 *db;
    (void)state;

    db = tu_sql_old_file(db_path, 4);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO captures(started_us, source_kind, source)"
                                  " VALUES (1, 'live', 'lo')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    db = tu_sql_open(db_path);
    assert_int_equal(tu_sql_int(db, "PRAGMA user_version"), REPRO_SCHEMA_VERSION);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM captures WHERE error IS NULL"), 1);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                               " AND name = 'replay_results_by_exchange'"),
                     1);
    assert_int_equal(repro_store_capture_end(s, 1, &end, &err), REPRO_OK);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(repro_store_captures(s, capture_fn, &seen, &err), REPRO_OK);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.status, "failed");
    assert_string_equal(seen.error, "disk full");
    assert_int_equal(seen.exchanges, 2);
    sqlite3_close(db);
    repro_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_locked_database_loses_nothing, setup),
        cmocka_unit_test_setup(test_locked_past_finish_wait_fails_clearly, setup),
        cmocka_unit_test_setup(test_blocked_put_interrupted, setup),
        cmocka_unit_test_setup(test_rolled_back_segment_undoes_ids, setup),
        cmocka_unit_test_setup(test_kick_makes_rows_visible, setup),
        cmocka_unit_test_setup(test_retention_by_size, setup),
        cmocka_unit_test_setup(test_retention_by_age, setup),
        cmocka_unit_test_setup(test_prune_call, setup),
        cmocka_unit_test_setup(test_migrate_v4_to_v5, setup),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
