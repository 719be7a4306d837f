/*
 * Each connection's exchange id range (schema version 6, store/
 * sqlite_ranges.c), which replaced the index on exchanges(connection_id,
 * seq). Every check compares against an oracle that scans the whole
 * exchanges table: the bounds must hold every exchange of the connection,
 * and the readers that use them (`--connection`, the requests in flight at
 * a crash, retention) must find exactly what the scan finds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "repro/store.h"
#include "store/store_int.h"
#include "test_util.h"
#include "tu_sqlite.h"

#define T0 1700000000000000LL

static char db_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof db_path, "%s/ranges.db", test_tmpdir());
    unlink(db_path);
    return 0;
}

/* Every connection's stored range holds all of its exchanges, and is
 * exactly their first and last id: checked for all rows at once. */
static void assert_ranges_exact(sqlite3 *db)
{
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM connections c WHERE"
                               " c.first_exchange_id IS NOT"
                               "  (SELECT min(id) FROM exchanges e WHERE e.connection_id = c.id)"
                               " OR c.last_exchange_id IS NOT"
                               "  (SELECT max(id) FROM exchanges e WHERE e.connection_id = c.id)"),
                     0);
}

static void fill_conn(struct repro_store_conn *c, int64_t cap, uint16_t cport)
{
    tu_fill_conn(c, cport, T0);
    c->capture_id = cap;
}

/* Exchange seq of a connection: its request begins at T0 + 10 * t, its
 * response at T0 + 10 * t + 5, or never (answered 0). */
static void put_x(struct repro_store *s, int64_t cap, int64_t conn, int64_t seq, int64_t t,
                  int answered, int64_t *id)
{
    struct repro_store_exchange x;
    struct repro_error err = {0};

    memset(&x, 0, sizeof x);
    x.capture_id = cap;
    x.connection_id = conn;
    x.seq = (uint64_t)seq;
    x.method = (struct repro_slice){(const uint8_t *)"GET", 3};
    x.uri = (struct repro_slice){(const uint8_t *)"/", 1};
    x.http_version = "HTTP/1.1";
    x.request_first_us = x.request_last_us = T0 + 10 * t;
    x.response_first_us = x.response_last_us = answered ? T0 + 10 * t + 5 : -1;
    x.status = answered ? 200 : 0;
    x.complete = answered;
    assert_int_equal(repro_store_exchange_insert(s, &x, id, &err), REPRO_OK);
}

static void close_conn(struct repro_store *s, struct repro_store_conn *c, int64_t n)
{
    struct repro_error err = {0};
    c->closed_us = T0 + 1000000;
    c->end_reason = "fin";
    c->n_exchanges = (uint64_t)n;
    assert_int_equal(repro_store_conn_update(s, c, &err), REPRO_OK);
}

static int count_fn(void *ctx, const struct repro_exchange_row *r)
{
    int64_t *n = ctx;
    (void)r;
    (*n)++;
    return 0;
}

/* Exchanges of connections interleaved, some connections closed midway,
 * batches committed now and then, one batch rolled back and stored again
 * (the writer's retry after a lock): the ranges are exact, and the
 * `--connection` filter finds what a scan finds. */
static void test_ranges_follow_inserts_commits_rollbacks(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_capture crow = {"file", "x", NULL, 1, 0, 0};
    struct repro_store_conn c[6];
    int64_t cap, seq[6] = {0}, n_rows = 0;
    sqlite3 *db;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    repro_store_set_batch(s, 50);
    for (int k = 0; k < 6; k++) {
        fill_conn(&c[k], cap, (uint16_t)(1000 + k));
        assert_int_equal(repro_store_conn_insert(s, &c[k], &c[k].id, &err), REPRO_OK);
    }
    for (int i = 0; i < 400; i++) {
        int k = (i * 7 + i / 13) % 6;
        if (k == 5 && seq[5] >= 20) /* connection 5 closes after 20 */
            k = 4;
        put_x(s, cap, c[k].id, seq[k], i, 1, NULL);
        seq[k]++;
        if (i == 250)
            close_conn(s, &c[5], seq[5]);
        if (i == 300) {
            /* a batch in flight is rolled back: its rows and ranges go */
            assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
            assert_int_equal(repro_store_begin(s, &err), REPRO_OK);
            put_x(s, cap, c[0].id, 999, 999, 1, NULL);
            put_x(s, cap, c[3].id, 998, 998, 1, NULL);
            repro_store_rollback(s);
        }
    }
    close_conn(s, &c[1], seq[1]);
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);

    db = tu_sql_open(db_path);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM exchanges"), 400);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM exchanges WHERE seq >= 998"), 0);
    assert_ranges_exact(db);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name ="
                               " 'exchanges_by_connection'"),
                     0);
    for (int k = 0; k < 6; k++) {
        struct repro_exchange_filter f;
        char sql[128];
        memset(&f, 0, sizeof f);
        f.connection_id = c[k].id;
        n_rows = 0;
        assert_int_equal(repro_store_exchanges(s, &f, 0, count_fn, &n_rows, &err), REPRO_OK);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM exchanges WHERE connection_id = %lld",
                 (long long)c[k].id);
        assert_int_equal(n_rows, tu_sql_int(db, sql));
        assert_int_equal(n_rows, seq[k]);
    }
    sqlite3_close(db);
    repro_store_close(s);
}

/* The `--connection` filter reads the connection's id range, not the
 * whole table: the plan of the query repro_store_exchanges runs. */
static void test_connection_filter_plan(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_exchange_filter f;
    struct repro_buf sql, plan;
    sqlite3 *db;
    sqlite3_stmt *q;
    int range = 0, scans = 0;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    repro_store_close(s);
    memset(&f, 0, sizeof f);
    f.connection_id = 7;
    repro_buf_init(&sql, 1 << 16);
    repro_buf_init(&plan, 1 << 16);
    assert_int_equal(repro__sqlite_exchanges_sql(&sql, &f, 1), REPRO_OK);
    assert_int_equal(repro_buf_printf(&plan, "EXPLAIN QUERY PLAN %.*s", (int)sql.len,
                                      (const char *)sql.data),
                     REPRO_OK);
    db = tu_sql_open(db_path);
    assert_int_equal(sqlite3_prepare_v2(db, (const char *)plan.data, (int)plan.len, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, f.connection_id);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *d = (const char *)sqlite3_column_text(q, 3);
        if (strstr(d, "SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"))
            range = 1;
        if (strncmp(d, "SCAN", 4) == 0 || strstr(d, "TEMP B-TREE"))
            scans = 1;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    repro_buf_release(&sql);
    repro_buf_release(&plan);
    assert_true(range);
    assert_false(scans);
}

static int collect_ids(void *ctx, int64_t id)
{
    int64_t *ids = ctx;
    assert_true(ids[0] < 255);
    ids[++ids[0]] = id;
    return 0;
}

/* The requests in flight at a crash on a connection that lived long
 * (300 exchanges, interleaved with another connection's), the last three
 * pipelined and never answered (the process died with them): the same ids
 * as a scan of every exchange finds, for crash times all along the
 * connection and after it. */
static void test_in_flight_long_connection(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_capture crow = {"file", "x", NULL, 1, 0, 0};
    struct repro_store_conn c[2];
    struct repro_store_crash_conn kc;
    int64_t cap;
    int most = 0;
    sqlite3 *db;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    for (int k = 0; k < 2; k++) {
        fill_conn(&c[k], cap, (uint16_t)(2000 + k));
        assert_int_equal(repro_store_conn_insert(s, &c[k], &c[k].id, &err), REPRO_OK);
    }
    /* connection 0: requests at t = 0..299, answered but 297-299;
     * connection 1 in between */
    for (int t = 0; t < 300; t++) {
        put_x(s, cap, c[0].id, t, 2 * t, t < 297, NULL);
        put_x(s, cap, c[1].id, t, 2 * t + 1, 1, NULL);
    }
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);

    memset(&kc, 0, sizeof kc);
    kc.family = 4;
    memcpy(kc.remote_ip, c[0].client_ip, 4);
    memcpy(kc.local_ip, c[0].server_ip, 4);
    kc.remote_port = c[0].client_port;
    kc.local_port = c[0].server_port;
    kc.state = 1;
    db = tu_sql_open(db_path);
    for (int64_t t = 0; t < 640; t += 37) {
        struct repro_store_crash crash;
        int64_t crash_id, got[256] = {0};
        sqlite3_stmt *q;
        int n_want = 0;
        memset(&crash, 0, sizeof crash);
        crash.time_us = T0 + 10 * t + 3; /* inside an exchange's request-response gap */
        crash.signo = 11;
        crash.signal = "SIGSEGV";
        crash.source = "ptrace";
        crash.conns = &kc;
        crash.n_conns = 1;
        assert_int_equal(repro_store_crash_add(s, &crash, &crash_id, &err), REPRO_OK);
        assert_int_equal(repro_store_crash_in_flight(s, crash_id, collect_ids, got, &err),
                         REPRO_OK);
        /* the oracle: every exchange of the connection, scanned */
        assert_int_equal(sqlite3_prepare_v2(db,
                                            "SELECT id FROM exchanges WHERE connection_id = ?1"
                                            " AND request_first_us <= ?2 AND"
                                            " (response_first_us IS NULL OR response_first_us >= ?2)"
                                            " ORDER BY id",
                                            -1, &q, NULL),
                         SQLITE_OK);
        sqlite3_bind_int64(q, 1, c[0].id);
        sqlite3_bind_int64(q, 2, crash.time_us);
        while (sqlite3_step(q) == SQLITE_ROW) {
            assert_true(n_want < got[0]);
            assert_int_equal(got[1 + n_want], sqlite3_column_int64(q, 0));
            n_want++;
        }
        sqlite3_finalize(q);
        assert_int_equal(got[0], n_want);
        most = n_want > most ? n_want : most;
    }
    assert_true(most >= 3); /* 297-299, never answered */
    sqlite3_close(db);
    repro_store_close(s);
}

/* A version-5 file (with the index) gets the ranges of the exchanges it
 * holds and loses the index; what is stored next extends them. */
static void test_migrate_v5_to_v6(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_conn c;
    sqlite3 *db;
    (void)state;

    db = tu_sql_old_file(db_path, 5);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO captures(started_us, source_kind, source) VALUES (1, 'file', 'x');"
                     "INSERT INTO connections(capture_id, client_ip, client_port, server_ip,"
                     " server_port, opened_us, mid_stream) VALUES"
                     " (1, '127.0.0.1', 1, '10.0.0.9', 80, 1, 0),"
                     " (1, '127.0.0.1', 2, '10.0.0.9', 80, 1, 0),"
                     " (1, '127.0.0.1', 3, '10.0.0.9', 80, 1, 0);"
                     "INSERT INTO exchanges(capture_id, connection_id, seq, request_bytes,"
                     " response_bytes, flags, complete) VALUES"
                     " (1, 1, 0, 0, 0, 0, 1), (1, 2, 0, 0, 0, 0, 1), (1, 1, 1, 0, 0, 0, 1),"
                     " (1, 2, 1, 0, 0, 0, 1), (1, 1, 2, 0, 0, 0, 1);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    db = tu_sql_open(db_path);
    assert_int_equal(tu_sql_int(db, "PRAGMA user_version"), REPRO_SCHEMA_VERSION);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name ="
                               " 'exchanges_by_connection'"),
                     0);
    assert_ranges_exact(db);
    assert_int_equal(tu_sql_int(db, "SELECT last_exchange_id FROM connections WHERE id = 1"), 5);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM connections WHERE id = 3"
                               " AND first_exchange_id IS NULL AND last_exchange_id IS NULL"),
                     1);
    /* stored by this version: connection 2 goes on, 3 gets its first */
    fill_conn(&c, 1, 2);
    c.id = 2;
    put_x(s, 1, 2, 2, 1, 1, NULL);
    put_x(s, 1, 3, 0, 2, 1, NULL);
    close_conn(s, &c, 3);
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
    assert_ranges_exact(db);
    sqlite3_close(db);
    repro_store_close(s);
}

/* Many exchanges in one statement: consecutive ids from the one returned,
 * in the order given, the ranges exact; a statement that fails midway
 * stores none of its rows and leaves the ranges as they were. */
static void test_insert_many(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_capture crow = {"file", "x", NULL, 1, 0, 0};
    struct repro_store_conn c[3];
    static struct repro_store_exchange xs[300];
    static char uris[300][16];
    static uint8_t body[4000];
    int64_t cap, first = 0;
    sqlite3 *db;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    for (int k = 0; k < 3; k++) {
        fill_conn(&c[k], cap, (uint16_t)(3000 + k));
        assert_int_equal(repro_store_conn_insert(s, &c[k], &c[k].id, &err), REPRO_OK);
    }
    for (int i = 0; i < 300; i++) {
        memset(&xs[i], 0, sizeof xs[i]);
        snprintf(uris[i], sizeof uris[i], "/%d", i);
        xs[i].capture_id = cap;
        xs[i].connection_id = c[i % 3].id;
        xs[i].seq = (uint64_t)(i / 3);
        xs[i].uri = (struct repro_slice){(const uint8_t *)uris[i], strlen(uris[i])};
        xs[i].request_first_us = T0 + i;
        xs[i].request_last_us = xs[i].response_first_us = xs[i].response_last_us = -1;
        xs[i].request = (struct repro_slice){body, sizeof body};
    }
    put_x(s, cap, c[0].id, 99, 0, 1, NULL); /* an id before them */
    assert_int_equal(repro_store_exchange_insert_many(s, xs, 300, &first, &err), REPRO_OK);
    assert_int_equal(first, 2);
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
    db = tu_sql_open(db_path);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM exchanges WHERE uri = '/' || (id - 2)"
                               " AND request_first_us = 1700000000000000 + id - 2"
                               " AND response_first_us IS NULL AND length(request) = 4000"),
                     300);
    assert_ranges_exact(db);

    /* a row that fails (here: a trigger) fails the 249 before it too */
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TRIGGER no250 BEFORE INSERT ON exchanges"
                                  " WHEN NEW.uri = '/250' BEGIN SELECT RAISE(ABORT, 'no'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_not_equal(repro_store_exchange_insert_many(s, xs, 300, NULL, &err), REPRO_OK);
    /* committing what the transaction holds commits none of them */
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM exchanges"), 301);
    assert_ranges_exact(db);
    sqlite3_close(db);
    repro_store_close(s);
}

/* A connection's closing UPDATE that fails (here: a trigger) inside a
 * batch that is then committed anyway, as test_insert_many does: the
 * exchange it was to cover still gets its range, and the next connection
 * closed, which has no exchanges, does not get the failed statement's
 * range (SQLite keeps a statement's bindings after a failed step). */
static void test_close_that_fails(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_capture crow = {"file", "x", NULL, 1, 0, 0};
    struct repro_store_conn a, b;
    int64_t cap, xid = 0;
    char sql[256];
    sqlite3 *db;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    fill_conn(&a, cap, 4000);
    fill_conn(&b, cap, 4001);
    assert_int_equal(repro_store_conn_insert(s, &a, &a.id, &err), REPRO_OK);
    assert_int_equal(repro_store_conn_insert(s, &b, &b.id, &err), REPRO_OK);
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
    db = tu_sql_open(db_path);
    snprintf(sql, sizeof sql,
             "CREATE TRIGGER no_close BEFORE UPDATE ON connections"
             " WHEN OLD.id = %lld AND NEW.closed_us IS NOT NULL"
             " BEGIN SELECT RAISE(ABORT, 'no'); END",
             (long long)a.id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);

    put_x(s, cap, a.id, 0, 0, 1, &xid);
    a.closed_us = T0 + 1000000;
    a.end_reason = "fin";
    a.n_exchanges = 1;
    assert_int_not_equal(repro_store_conn_update(s, &a, &err), REPRO_OK);
    close_conn(s, &b, 0);
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);

    snprintf(sql, sizeof sql, "SELECT last_exchange_id FROM connections WHERE id = %lld",
             (long long)a.id);
    assert_int_equal(tu_sql_int(db, sql), xid);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM connections WHERE id = %lld AND first_exchange_id IS NULL"
             " AND last_exchange_id IS NULL AND closed_us IS NOT NULL",
             (long long)b.id);
    assert_int_equal(tu_sql_int(db, sql), 1);
    assert_ranges_exact(db);
    sqlite3_close(db);
    repro_store_close(s);
}

/* The range table's allocations fail (the n-th and every later one, for
 * each n until none is left to fail): a range that cannot be kept in
 * memory is written at once, so every call still succeeds and the stored
 * ranges are exact. 150 connections take the table past its first size. */
static void test_alloc_failures(void **state)
{
    struct repro_store_capture crow = {"file", "x", NULL, 1, 0, 0};
    static struct repro_store_conn c[150];
    unsigned long made = 0;
    (void)state;

    for (unsigned long n = 1; n < 100; n++) {
        struct repro_store *s = NULL;
        struct repro_error err = {0};
        int64_t cap;
        sqlite3 *db;

        unlink(db_path);
        assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
        assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
        repro_store_set_batch(s, 1000);
        for (int k = 0; k < 150; k++) {
            fill_conn(&c[k], cap, (uint16_t)(5000 + k));
            assert_int_equal(repro_store_conn_insert(s, &c[k], &c[k].id, &err), REPRO_OK);
        }
        assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
        repro_alloc_fail_after(n);
        for (int i = 0; i < 600; i++) {
            put_x(s, cap, c[(i * 7) % 150].id, i, i, 1, NULL);
            if (i % 150 == 149)
                close_conn(s, &c[i % 150], 1);
            if (i == 300)
                assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
            if (i == 450) { /* a batch rolled back, then the next one goes on */
                assert_int_equal(repro_store_begin(s, &err), REPRO_OK);
                put_x(s, cap, c[1].id, 999, 999, 1, NULL);
                put_x(s, cap, c[149].id, 998, 998, 1, NULL);
                repro_store_rollback(s);
            }
        }
        assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
        made = repro_alloc_fail_after(0);
        db = tu_sql_open(db_path);
        assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM exchanges"), 600);
        assert_ranges_exact(db);
        sqlite3_close(db);
        repro_store_close(s);
        if (made < n)
            break; /* nothing failed: every allocation was reached */
    }
    assert_true(made > 0);
}

/* Exchanges stored for a connection after its closing UPDATE, in the same
 * batch and in a later one, widen its range; exchanges naming connection 0
 * or one that does not exist change no connection's range. */
static void test_after_close_and_unknown_ids(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_capture crow = {"file", "x", NULL, 1, 0, 0};
    struct repro_store_conn a, b;
    int64_t cap, n_rows = 0;
    struct repro_exchange_filter f;
    sqlite3 *db;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    fill_conn(&a, cap, 6000);
    fill_conn(&b, cap, 6001);
    assert_int_equal(repro_store_conn_insert(s, &a, &a.id, &err), REPRO_OK);
    assert_int_equal(repro_store_conn_insert(s, &b, &b.id, &err), REPRO_OK);
    put_x(s, cap, a.id, 0, 0, 1, NULL);
    put_x(s, cap, b.id, 0, 1, 1, NULL);
    close_conn(s, &a, 1);
    put_x(s, cap, a.id, 1, 2, 1, NULL); /* same batch, after the close */
    put_x(s, cap, 0, 0, 3, 1, NULL);
    put_x(s, cap, b.id + 100, 0, 4, 1, NULL);
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);
    put_x(s, cap, b.id, 1, 5, 1, NULL);
    put_x(s, cap, a.id, 2, 6, 1, NULL); /* a later batch */
    close_conn(s, &b, 2);
    assert_int_equal(repro_store_flush(s, &err), REPRO_OK);

    db = tu_sql_open(db_path);
    assert_ranges_exact(db);
    memset(&f, 0, sizeof f);
    f.connection_id = a.id;
    assert_int_equal(repro_store_exchanges(s, &f, 0, count_fn, &n_rows, &err), REPRO_OK);
    assert_int_equal(n_rows, 3);
    sqlite3_close(db);
    repro_store_close(s);
}

/* Small batches outside the writer: every row goes into a batch and the
 * batch commits after its last row. (Counting before the row once
 * committed the batch first and left its last row to autocommit, whose
 * range nothing wrote: closing the store lost it.) */
static void test_small_batches(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_capture crow = {"file", "x", NULL, 1, 0, 0};
    struct repro_store_conn c;
    int64_t cap;
    sqlite3 *db;
    (void)state;

    for (unsigned batch = 1; batch <= 4; batch++) {
        unlink(db_path);
        assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
        assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
        repro_store_set_batch(s, batch);
        fill_conn(&c, cap, 4000);
        assert_int_equal(repro_store_conn_insert(s, &c, &c.id, &err), REPRO_OK);
        for (int i = 0; i < 5; i++)
            put_x(s, cap, c.id, i, i, 1, NULL);
        repro_store_close(s);
        db = tu_sql_open(db_path);
        assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM exchanges"), 5);
        assert_ranges_exact(db);
        sqlite3_close(db);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ranges_follow_inserts_commits_rollbacks, setup),
        cmocka_unit_test_setup(test_connection_filter_plan, setup),
        cmocka_unit_test_setup(test_in_flight_long_connection, setup),
        cmocka_unit_test_setup(test_migrate_v5_to_v6, setup),
        cmocka_unit_test_setup(test_insert_many, setup),
        cmocka_unit_test_setup(test_small_batches, setup),
        cmocka_unit_test_setup(test_close_that_fails, setup),
        cmocka_unit_test_setup(test_alloc_failures, setup),
        cmocka_unit_test_setup(test_after_close_and_unknown_ids, setup),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
