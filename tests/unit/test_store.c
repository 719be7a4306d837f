/*
 * Unit tests for store/: file creation mode, WAL, schema version and
 * migrations, round trips through the writers and readers, filters,
 * the background writer, bad databases and allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "repro/store.h"
#include "store/store_int.h"
#include "test_util.h"
#include "tu_sqlite.h"

static char db_path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(db_path, sizeof db_path, "%s/t.db", test_tmpdir());
    return 0;
}

static void fill_conn(struct repro_store_conn *c, uint64_t id, uint16_t cport)
{
    tu_fill_conn(c, cport, 1700000000000000);
    c->local_id = id;
}

static struct repro_slice sl(const char *s)
{
    return (struct repro_slice){(const uint8_t *)s, strlen(s)};
}

static void fill_x(struct repro_store_exchange *x, const char *method, const char *uri, int status,
                   const char *req, const char *resp)
{
    memset(x, 0, sizeof *x);
    x->complete = 1;
    x->method = sl(method);
    x->uri = sl(uri);
    x->host = sl("Example.com");
    x->status = status;
    x->reason = sl("OK");
    x->http_version = "HTTP/1.1";
    x->request = sl(req);
    x->response = sl(resp);
    x->request_first_us = 1700000000000001;
    x->request_last_us = 1700000000000002;
    x->response_first_us = 1700000000000003;
    x->response_last_us = status ? 1700000000000004 : -1;
    x->request_bytes = strlen(req);
    x->response_bytes = strlen(resp);
}

struct collect {
    int n;
    int64_t ids[16];
    char uris[16][64];
    unsigned flags[16];
    int complete[16];
    size_t req_len[16];
    int status[16];
    int64_t resp_last[16];
    char client[16][64];
};

static int collect_fn(void *ctx, const struct repro_exchange_row *r)
{
    struct collect *c = ctx;
    assert_true(c->n < 16);
    c->ids[c->n] = r->id;
    snprintf(c->uris[c->n], 64, "%s", r->uri ? r->uri : "(null)");
    snprintf(c->client[c->n], 64, "%s", r->client);
    c->flags[c->n] = r->flags;
    c->complete[c->n] = r->complete;
    c->req_len[c->n] = r->request.len;
    c->status[c->n] = r->status;
    c->resp_last[c->n] = r->response_last_us;
    c->n++;
    return 0;
}

static void test_create_mode_wal_version(void **state)
{
    struct repro_store *s;
    struct repro_error err = {0};
    struct stat st;
    sqlite3 *db;
    sqlite3_stmt *q;
    (void)state;

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    repro_store_close(s);
    assert_int_equal(stat(db_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), REPRO_SCHEMA_VERSION);
    sqlite3_finalize(q);
    sqlite3_close(db);
    /* Reopening an up-to-date file migrates nothing and works. */
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    repro_store_close(s);
    assert_int_equal(repro_store_open(db_path, REPRO_STORE_READONLY, &s, &err), REPRO_OK);
    repro_store_close(s);
}

static void test_roundtrip_and_filters(void **state)
{
    struct repro_store *s;
    struct repro_error err = {0};
    struct repro_store_conn c1, c2;
    struct repro_store_exchange x;
    struct repro_exchange_filter f;
    struct repro_store_capture crow = {"file", "x.pcap", "tcp", 1, 0, 0};
    struct repro_store_counter counters[] = {{"exchanges", 3}, {"gaps", 1}};
    struct repro_store_capture_end end = {"complete", counters, 2, NULL};
    struct collect got;
    int64_t cap, id;
    (void)state;

    unlink(db_path);
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_string_equal(repro_store_backend(s)->name, "sqlite");
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    fill_conn(&c1, 1, 5000);
    fill_conn(&c2, 2, 5001);
    c1.capture_id = c2.capture_id = cap;
    c2.family = 6;
    memset(c2.client_ip, 0, 16);
    c2.client_ip[15] = 1;
    assert_int_equal(repro_store_conn_insert(s, &c1, &c1.id, &err), REPRO_OK);
    assert_int_equal(repro_store_conn_insert(s, &c2, &c2.id, &err), REPRO_OK);
    assert_true(c1.id > 0 && c2.id > c1.id);
    fill_x(&x, "GET", "/api/100%_x", 200, "GET /api HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n");
    x.capture_id = cap;
    x.connection_id = c1.id;
    assert_int_equal(repro_store_exchange_insert(s, &x, &id, &err), REPRO_OK);
    fill_x(&x, "POST", "/api/1000", 500, "POST /api/1000 HTTP/1.1\r\n\r\n", "HTTP/1.1 500 E\r\n\r\n");
    x.capture_id = cap;
    x.connection_id = c2.id;
    x.flags = 0x21; /* gap, redacted */
    x.complete = 0;
    assert_int_equal(repro_store_exchange_insert(s, &x, NULL, &err), REPRO_OK);
    fill_x(&x, "GET", "/other", 0, "GET /other HTTP/1.1\r\n\r\n", "");
    x.capture_id = cap;
    x.connection_id = c2.id;
    x.flags = 0x4; /* unanswered */
    x.complete = 0;
    assert_int_equal(repro_store_exchange_insert(s, &x, NULL, &err), REPRO_OK);
    c1.closed_us = c1.opened_us + 5;
    c1.end_reason = "rst";
    assert_int_equal(repro_store_conn_update(s, &c1, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_end(s, cap, &end, &err), REPRO_OK);

    memset(&f, 0, sizeof f);
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 1, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 3);
    assert_int_equal(got.ids[0], id);
    assert_string_equal(got.client[0], "127.0.0.1:5000");
    assert_string_equal(got.client[1], "[::1]:5001");
    assert_int_equal(got.flags[1], 0x21);
    assert_int_equal(got.complete[0], 1);
    assert_int_equal(got.complete[1], 0);
    assert_int_equal(got.req_len[0], 21);
    assert_int_equal(got.status[2], 0);
    assert_int_equal(got.resp_last[2], -1);

    /* path prefix treats % and _ literally */
    memset(&got, 0, sizeof got);
    f.path_prefix = "/api/100%";
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.uris[0], "/api/100%_x");
    assert_int_equal(got.req_len[0], 0); /* no bodies asked for */
    memset(&got, 0, sizeof got);
    f.path_prefix = "/API";
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 0); /* paths are case-sensitive */
    memset(&got, 0, sizeof got);
    memset(&f, 0, sizeof f);
    f.method = "POST";
    f.status = 500;
    f.host = "example.COM"; /* hosts are not */
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 1);
    memset(&got, 0, sizeof got);
    memset(&f, 0, sizeof f);
    f.connection_id = c2.id;
    f.limit = 1;
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.uris[0], "/api/1000");
    repro_store_close(s);
}

/* --since/--until, --path-regex and --ids: the filters both `repro
 * exchanges` and `repro replay` use. */
static void test_window_regex_ids(void **state)
{
    struct repro_store *s;
    struct repro_error err = {0};
    struct repro_store_conn c;
    struct repro_store_exchange x;
    struct repro_exchange_filter f;
    struct repro_store_capture crow = {"file", "x.pcap", "tcp", 1, 0, 0};
    struct repro_id_range ids[2] = {{2, 2}, {4, 5}};
    struct collect got;
    static const char *const uris[] = {"/a/1", "/b/22", "/a/333?x=1", "/c", "/a/4"};
    int64_t cap, first = 0;
    (void)state;

    unlink(db_path);
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    fill_conn(&c, 1, 5000);
    c.capture_id = cap;
    assert_int_equal(repro_store_conn_insert(s, &c, &c.id, &err), REPRO_OK);
    for (int i = 0; i < 5; i++) {
        int64_t id;
        fill_x(&x, "GET", uris[i], 200, "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n");
        x.capture_id = cap;
        x.connection_id = c.id;
        x.request_first_us = 1000000 * (int64_t)(i + 1); /* 1 s, 2 s, ... */
        if (i == 3)
            x.request_first_us = -1; /* the response's time counts then */
        x.response_first_us = 1000000 * (int64_t)(i + 1) + 10;
        assert_int_equal(repro_store_exchange_insert(s, &x, &id, &err), REPRO_OK);
        if (i == 0)
            first = id;
    }
    assert_int_equal(first, 1);

    memset(&f, 0, sizeof f);
    f.since_us = 2000000;
    f.until_us = 4000010; /* [2 s, 4.00001 s): 2, 3; 4 by its response time is out */
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.ids[0], 2);
    assert_int_equal(got.ids[1], 3);
    f.until_us = 4000011;
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 3);

    memset(&f, 0, sizeof f);
    f.path_regex = "^/a/[0-9]{1,3}$";
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 2); /* /a/333?x=1 does not end there */
    assert_string_equal(got.uris[1], "/a/4");
    f.path_regex = "/a/";
    f.limit = 2; /* counted after the regex */
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.uris[1], "/a/333?x=1");
    f.path_regex = "a(";
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_E_INVAL);
    assert_non_null(strstr(err.msg, "path regex"));

    memset(&err, 0, sizeof err);
    memset(&f, 0, sizeof f);
    f.ids = ids;
    f.n_ids = 2;
    f.method = "GET"; /* with other filters: the ranges are one OR group */
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 3);
    assert_int_equal(got.ids[0], 2);
    assert_int_equal(got.ids[2], 5);
    f.method = "POST";
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 0);
    f.method = NULL;
    f.n_ids = REPRO_STORE_MAX_ID_RANGES + 1;
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_E_LIMIT);
    repro_store_close(s);
}

static void test_writer(void **state)
{
    struct repro_store *s;
    struct repro_store_writer *w;
    struct repro_error err = {0};
    struct repro_store_conn c[4];
    struct repro_store_exchange x;
    struct repro_exchange_filter f;
    struct repro_store_capture crow = {"live", "lo", NULL, 1, 0, 0};
    struct repro_store_row open = {REPRO_ROW_CONN_OPEN, {NULL}};
    struct repro_store_row close = {REPRO_ROW_CONN_CLOSE, {NULL}};
    struct repro_store_row ex = {REPRO_ROW_EXCHANGE, {.exchange = &x}};
    struct collect got;
    int64_t cap;
    int i, k;
    char body[3000];
    (void)state;

    unlink(db_path);
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_start(s, 8192, &w, &err), REPRO_OK);
    memset(body, 'b', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    for (k = 0; k < 4; k++) {
        fill_conn(&c[k], (uint64_t)k + 1, (uint16_t)(6000 + k));
        c[k].capture_id = cap;
        open.u.conn = &c[k];
        assert_int_equal(repro_store_writer_put(w, &open, &err), REPRO_OK);
    }
    /* Enough rows for several batches. */
    for (i = 0; i < 20000; i++) {
        fill_x(&x, "GET", "/w", 200, "GET /w HTTP/1.1\r\n\r\n", body);
        x.capture_id = cap;
        x.conn_local_id = c[i % 4].local_id;
        x.note = (i % 7) ? NULL : "a note";
        assert_int_equal(repro_store_writer_put(w, &ex, &err), REPRO_OK);
        if (i == 10000)
            assert_int_equal(repro_store_writer_flush(w, &err), REPRO_OK);
    }
    for (k = 0; k < 4; k++) {
        close.u.conn = &c[k];
        assert_int_equal(repro_store_writer_put(w, &close, &err), REPRO_OK);
    }
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    memset(&f, 0, sizeof f);
    f.connection_id = 2; /* ids are assigned in order by the writer */
    f.limit = 16;
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 1, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 16);
    assert_string_equal(got.client[0], "127.0.0.1:6001");
    assert_int_equal(got.req_len[0], 19);
    repro_store_close(s);
    {
        sqlite3 *db;
        sqlite3_stmt *q;
        assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), sum(length(response)),"
                                                " (SELECT count(*) FROM connections WHERE closed_us IS NULL AND end_reason IS NULL),"
                                                " (SELECT count(*) FROM exchanges WHERE note='a note')"
                                                " FROM exchanges", -1, &q, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), 20000);
        assert_int_equal(sqlite3_column_int64(q, 1), (sqlite3_int64)20000 * 2999);
        assert_int_equal(sqlite3_column_int(q, 2), 4); /* update kept them open (-1) */
        assert_int_equal(sqlite3_column_int(q, 3), 2858);
        sqlite3_finalize(q);
        sqlite3_close(db);
    }
}

/* Durability (docs/store.md): every commit, single statements included,
 * waits for a sync that repro_store_sync() does once the last one is half
 * a second old; a bulk import never waits for one. Whether the fdatasync
 * happens is checked with strace in e2e test_live_agent.py (synced). */
static void test_commits_wait_for_sync(void **state)
{
    struct repro_store *s;
    struct repro_error err = {0};
    struct repro_store_capture crow = {"live", "lo", NULL, 1, 0, 0};
    struct repro_store_capture_end end = {"complete", NULL, 0, NULL};
    int64_t cap;
    uint64_t next, t0;
    int tries;
    (void)state;

    unlink(db_path);
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    for (tries = 0; tries < 100 && (next = repro_store_sync(s)) != 0; tries++)
        usleep((useconds_t)(next / 1000u)); /* as long as it says, bounded */
    assert_int_equal(next, 0); /* synced: nothing waits */
    /* an autocommit statement right after a sync waits for the next one
     * (unless this took half a second: then it was synced at once) */
    t0 = repro_mono_ns();
    assert_int_equal(repro_store_capture_end(s, cap, &end, &err), REPRO_OK);
    next = repro_store_sync(s);
    if (repro_mono_ns() - t0 < 400000000u)
        assert_true(next > 0 && next <= 500000000u);
    for (tries = 0; tries < 100 && (next = repro_store_sync(s)) != 0; tries++)
        usleep((useconds_t)(next / 1000u));
    assert_int_equal(next, 0);
    /* bulk mode: commits do not wait */
    assert_int_equal(repro_store_bulk_begin(s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    assert_int_equal(repro_store_sync(s), 0);
    assert_int_equal(repro_store_bulk_end(s, &err), REPRO_OK);
    repro_store_close(s);
}

static void test_bad_databases(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    FILE *f;
    sqlite3 *db;
    char path2[600];
    (void)state;

    /* Not a database: a clear error naming the file. */
    unlink(db_path);
    f = fopen(db_path, "wb");
    fputs("this is not an sqlite database, just text that is long enough..................", f);
    fclose(f);
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_E_STORE);
    assert_null(s);
    assert_non_null(strstr(err.msg, db_path));
    assert_non_null(strstr(err.msg, "not a database"));

    /* Written by a newer repro. */
    unlink(db_path);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL);
    sqlite3_close(db);
    repro_error_clear(&err);
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_E_SCHEMA);
    assert_non_null(strstr(err.msg, "newer"));

    /* Read-only open of a missing file does not create it. */
    snprintf(path2, sizeof path2, "%s.missing", db_path);
    repro_error_clear(&err);
    assert_int_equal(repro_store_open(path2, REPRO_STORE_READONLY, &s, &err), REPRO_E_NOTFOUND);
    assert_int_not_equal(access(path2, F_OK), 0);

    /* A directory that does not exist. */
    repro_error_clear(&err);
    assert_int_equal(repro_store_open("/nonexistent/dir/x.db", 0, &s, &err), REPRO_E_STORE);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/x.db"));
}

static void make_old_file(int v)
{
    sqlite3_close(tu_sql_old_file(db_path, v));
}

static void test_readonly_migrates_old_file(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    sqlite3 *db;
    sqlite3_stmt *q;
    (void)state;

    /* A version-1 file (before the crash tables) read by `repro exchanges`. */
    make_old_file(1);
    assert_int_equal(repro_store_open(db_path, REPRO_STORE_READONLY, &s, &err), REPRO_OK);
    repro_store_close(s);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM crashes", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* Removes the database with its WAL and shared-memory files. */
static void unlink_db(void)
{
    char side[600];

    unlink(db_path);
    snprintf(side, sizeof side, "%s-wal", db_path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db_path);
    unlink(side);
}

/* Many processes creating the same new file at once must all succeed: the
 * schema version is read inside the migration's write transaction, so a
 * process that waited on another's migration sees it done and skips it. The
 * children start together behind a pipe that the parent closes. */
static void test_concurrent_create(void **state)
{
    enum { ROUNDS = 8, PROCS = 8 };
    int round, i;
    (void)state;

    for (round = 0; round < ROUNDS; round++) {
        pid_t pids[PROCS];
        int go[2], failed = 0;

        unlink_db();
        assert_int_equal(pipe(go), 0);
        for (i = 0; i < PROCS; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                struct repro_store *s = NULL;
                struct repro_error err = {0};
                char c;
                close(go[1]);
                (void)!read(go[0], &c, 1);
                if (repro_store_open(db_path, 0, &s, &err) != REPRO_OK) {
                    fprintf(stderr, "round %d child %d: %s\n", round, i, err.msg);
                    _exit(1);
                }
                repro_store_close(s);
                _exit(0);
            }
        }
        close(go[0]);
        close(go[1]);
        for (i = 0; i < PROCS; i++) {
            int status = 0;
            assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                failed++;
        }
        assert_int_equal(failed, 0);
    }
}

static pthread_barrier_t open_barrier;

static void *open_thread(void *arg)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    int *rc = arg;

    pthread_barrier_wait(&open_barrier);
    *rc = repro_store_open(db_path, 0, &s, &err);
    if (*rc != REPRO_OK)
        fprintf(stderr, "thread: %s\n", err.msg);
    repro_store_close(s);
    return NULL;
}

/* The same with threads of one process, each with its own handle. */
static void test_concurrent_create_threads(void **state)
{
    enum { ROUNDS = 8, THREADS = 8 };
    int round, i;
    (void)state;

    for (round = 0; round < ROUNDS; round++) {
        pthread_t t[THREADS];
        int rc[THREADS];

        unlink_db();
        assert_int_equal(pthread_barrier_init(&open_barrier, NULL, THREADS), 0);
        for (i = 0; i < THREADS; i++)
            assert_int_equal(pthread_create(&t[i], NULL, open_thread, &rc[i]), 0);
        for (i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(rc[i], REPRO_OK);
        }
        pthread_barrier_destroy(&open_barrier);
    }
}

/* ---- the table of operations ------------------------------------------ */

/* A backend that records which operations were called, in order, and can
 * fail the n-th row. */
struct fake {
    char calls[4096];
    int rows, fail_at;
    int64_t next_id;
};
static struct fake fake;

static void fake_call(const char *what)
{
    size_t n = strlen(fake.calls);
    snprintf(fake.calls + n, sizeof fake.calls - n, "%s%s", n ? " " : "", what);
}

static int fake_row(const char *what, int64_t *id, struct repro_error *err)
{
    fake_call(what);
    if (++fake.rows == fake.fail_at)
        return repro_error_set(err, REPRO_E_STORE, "fake failure at row %d", fake.rows);
    if (id)
        *id = ++fake.next_id;
    return REPRO_OK;
}

static int fake_open(const char *path, int flags, void **impl, struct repro_error *err)
{
    (void)path, (void)flags, (void)err;
    *impl = &fake;
    fake_call("open");
    return REPRO_OK;
}
static void fake_close(void *impl) { assert_ptr_equal(impl, &fake); fake_call("close"); }
static int fake_flush(void *impl, struct repro_error *err) { (void)impl, (void)err; return REPRO_OK; }
static int fake_conn_insert(void *impl, const struct repro_store_conn *row, int64_t *id,
                            struct repro_error *err)
{
    char w[32];
    (void)impl;
    snprintf(w, sizeof w, "conn+%llu", (unsigned long long)row->local_id);
    return fake_row(w, id, err);
}
static int fake_conn_update(void *impl, const struct repro_store_conn *row, struct repro_error *err)
{
    char w[32];
    (void)impl;
    snprintf(w, sizeof w, "conn=%lld", (long long)row->id);
    return fake_row(w, NULL, err);
}
static int fake_exchange(void *impl, const struct repro_store_exchange *rows, size_t n,
                         int64_t *id, struct repro_error *err)
{
    char w[64];
    int rc = REPRO_OK;
    (void)impl;
    for (size_t k = 0; rc == REPRO_OK && k < n; k++) {
        const struct repro_store_exchange *row = &rows[k];
        snprintf(w, sizeof w, "x%llu@%lld:%.*s", (unsigned long long)row->seq,
                 (long long)row->connection_id, (int)row->uri.len, (const char *)row->uri.ptr);
        rc = fake_row(w, k == 0 ? id : NULL, err);
    }
    return rc;
}
static int fake_crash(void *impl, const struct repro_store_crash *row, int64_t *id,
                      struct repro_error *err)
{
    char w[96];
    (void)impl;
    snprintf(w, sizeof w, "crash:%s:%s:%s", row->executable, row->threads[1].frames[0].function,
             row->modules[0].path);
    return fake_row(w, id, err);
}

static const struct repro_store_ops fake_ops = {
    .name = "fake",
    .open = fake_open,
    .close = fake_close,
    .flush = fake_flush,
    .conn_insert = fake_conn_insert,
    .conn_update = fake_conn_update,
    .exchange_insert = fake_exchange,
    .crash_insert = fake_crash,
};

static void test_ops_dispatch(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_conn c;
    struct repro_exchange_filter f;
    int64_t id = 0;
    (void)state;

    memset(&fake, 0, sizeof fake);
    assert_int_equal(repro_store_open_with(&fake_ops, "fake:", 0, &s, &err), REPRO_OK);
    assert_ptr_equal(repro_store_backend(s), &fake_ops);
    fill_conn(&c, 7, 1);
    assert_int_equal(repro_store_conn_insert(s, &c, &id, &err), REPRO_OK);
    assert_int_equal(id, 1);
    /* An operation the backend leaves out fails cleanly, naming it. */
    memset(&f, 0, sizeof f);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, NULL, &err), REPRO_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "fake"));
    /* Optional operations without a backend entry are no-ops. */
    assert_int_equal(repro_store_bulk_begin(s, NULL), REPRO_OK);
    repro_store_close(s);
    assert_string_equal(fake.calls, "open conn+7 close");
}

/* A crash row with two threads and one module, for the writer tests. */
static const struct repro_store_crash_module crash_mods[] = {{"/bin/app", 0x1000, 0x2000, 0, "ab"}};
static const struct repro_store_crash_frame frames0[] = {{0x1010, 0, 0x10, "main", "a.c", 3, 0, 0}};
static const struct repro_store_crash_frame frames1[] = {{0x1020, 0, 0x20, "boom", NULL, 0, 0, 0},
                                                         {0x1030, -1, 0, NULL, NULL, 0, 0, 1}};
static const struct repro_store_crash_thread crash_threads[] = {
    {1, "app", NULL, 0, 0, frames0, 1}, {2, "worker", "rip=0x1020", 1, 0, frames1, 2}};

static void fill_crash(struct repro_store_crash *c, const char *exe)
{
    memset(c, 0, sizeof *c);
    c->time_us = 1700000000000002;
    c->pid = 42;
    c->executable = exe;
    c->signo = 11;
    c->signal = "SIGSEGV";
    c->source = "inproc";
    c->modules = crash_mods;
    c->n_modules = 1;
    c->threads = crash_threads;
    c->n_threads = 2;
}

/* Rows of three domains interleaved come out in the order they went in,
 * every copy intact, connections mapped to the ids the backend gave. */
static void test_writer_domains_in_order(void **state)
{
    struct repro_store *s = NULL;
    struct repro_store_writer *w = NULL;
    struct repro_error err = {0};
    struct repro_store_conn c1, c2;
    struct repro_store_exchange x;
    struct repro_store_crash crash;
    struct repro_store_row r;
    char exe[32];
    (void)state;

    memset(&fake, 0, sizeof fake);
    assert_int_equal(repro_store_open_with(&fake_ops, "fake:", 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    fill_conn(&c1, 11, 1);
    fill_conn(&c2, 12, 2);
    r.kind = REPRO_ROW_CONN_OPEN;
    r.u.conn = &c1;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    fill_x(&x, "GET", "/a", 200, "req", "resp");
    x.conn_local_id = 11;
    r.kind = REPRO_ROW_EXCHANGE;
    r.u.exchange = &x;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    /* The row is copied: what the producer does to its memory afterwards
     * does not reach the store. */
    snprintf(exe, sizeof exe, "/bin/app");
    fill_crash(&crash, exe);
    r.kind = REPRO_ROW_CRASH;
    r.u.crash = &crash;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    snprintf(exe, sizeof exe, "/changed");
    r.kind = REPRO_ROW_CONN_OPEN;
    r.u.conn = &c2;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    fill_x(&x, "GET", "/b", 200, "req", "resp");
    x.seq = 1;
    x.conn_local_id = 12;
    r.kind = REPRO_ROW_EXCHANGE;
    r.u.exchange = &x;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    r.kind = REPRO_ROW_CONN_CLOSE;
    r.u.conn = &c1;
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    repro_store_close(s);
    assert_string_equal(fake.calls, "open conn+11 x0@1:/a crash:/bin/app:boom:/bin/app conn+12 "
                                    "x1@2:/b conn=1 close");
}

/* The writer thread's first error reaches the producer, message and all,
 * and later rows are refused. */
static void test_writer_failure(void **state)
{
    struct repro_store *s = NULL;
    struct repro_store_writer *w = NULL;
    struct repro_error err = {0}, err2 = {0};
    struct repro_store_conn c;
    struct repro_store_exchange x;
    struct repro_store_row r = {REPRO_ROW_CONN_OPEN, {.conn = &c}};
    int i, rc = REPRO_OK;
    (void)state;

    memset(&fake, 0, sizeof fake);
    fake.fail_at = 3;
    assert_int_equal(repro_store_open_with(&fake_ops, "fake:", 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_start(s, 1 << 16, &w, &err), REPRO_OK);
    fill_conn(&c, 1, 1);
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    fill_x(&x, "GET", "/a", 200, "req", "resp");
    x.conn_local_id = 1;
    r.kind = REPRO_ROW_EXCHANGE;
    r.u.exchange = &x;
    for (i = 0; i < 4; i++)
        assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_flush(w, &err), REPRO_E_STORE);
    assert_string_equal(err.msg, "fake failure at row 3");
    /* Rows queued after the failure are refused with the same error. */
    for (i = 0; i < 20000 && rc == REPRO_OK; i++)
        rc = repro_store_writer_put(w, &r, &err2);
    assert_int_equal(rc, REPRO_E_STORE);
    assert_string_equal(err2.msg, "fake failure at row 3");
    repro_error_clear(&err2);
    assert_int_equal(repro_store_writer_finish(w, &err2), REPRO_E_STORE);
    repro_store_close(s);
    /* Nothing was written after the failing row. */
    assert_string_equal(fake.calls, "open conn+1 x0@1:/a x0@1:/a close");
}

/* A row bigger than the writer was told to expect is refused. */
static void test_writer_row_limit(void **state)
{
    struct repro_store *s = NULL;
    struct repro_store_writer *w = NULL;
    struct repro_error err = {0};
    struct repro_store_exchange x;
    struct repro_store_row r = {REPRO_ROW_EXCHANGE, {.exchange = &x}};
    static char big[9000];
    (void)state;

    memset(&fake, 0, sizeof fake);
    memset(big, 'x', sizeof big - 1);
    assert_int_equal(repro_store_open_with(&fake_ops, "fake:", 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_start(s, 4096, &w, &err), REPRO_OK);
    fill_x(&x, "GET", "/a", 200, "req", big);
    assert_int_equal(repro_store_writer_put(w, &r, &err), REPRO_E_LIMIT);
    assert_int_equal(repro_store_writer_finish(w, NULL), REPRO_OK);
    repro_store_close(s);
}

/* ---- schema version 3 --------------------------------------------------- */

static int count_in_flight(void *ctx, int64_t id)
{
    int64_t *ids = ctx;
    ids[ids[0] + 1] = id;
    ids[0]++;
    return 0;
}

/* A file written by the version-2 repro, with a capture and a crash in it,
 * migrates to version 3 on open: the new index and columns are there, the
 * rows are kept and the crash still joins to its exchange. */
static void test_migrate_v2_to_v3(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_exchange_filter f;
    struct collect got;
    int64_t ids[8] = {0};
    sqlite3 *db;
    (void)state;

    make_old_file(2);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO captures(id, started_us, source_kind, source) VALUES (1, 1, 'file', 'x');"
                     "INSERT INTO connections(id, capture_id, client_ip, client_port, server_ip,"
                     " server_port, opened_us, mid_stream) VALUES (1, 1, '10.0.0.1', 5000, '10.0.0.2', 80, 10, 0);"
                     "INSERT INTO exchanges(id, capture_id, connection_id, seq, method, uri,"
                     " request_first_us, request_bytes, response_bytes, flags, complete)"
                     " VALUES (1, 1, 1, 0, 'GET', '/old', 20, 10, 0, 4, 0);"
                     "INSERT INTO crashes(id, time_us, signo, signal, source, partial)"
                     " VALUES (1, 30, 11, 'SIGSEGV', 'ptrace', 0);"
                     "INSERT INTO crash_connections VALUES (1, 5, 4, '10.0.0.2', 80, '10.0.0.1', 5000, 1);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    memset(&f, 0, sizeof f);
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.uris[0], "/old");
    assert_int_equal(repro_store_crash_in_flight(s, 1, count_in_flight, ids, &err), REPRO_OK);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 1);
    repro_store_close(s);

    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(tu_sql_int(db, "PRAGMA user_version"), REPRO_SCHEMA_VERSION);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM sqlite_master WHERE type='index'"
                                   " AND name='connections_by_endpoints'"), 1);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM exchanges WHERE request_body_sha256 IS NULL"
                                   " AND response_body_sha256 IS NULL"), 1);
    sqlite3_close(db);
}

/* `repro exchanges` on a version-2 file brings it to the current version through a
 * short read-write connection, then reads it. */
static void test_readonly_migrates_v2(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    sqlite3 *db;
    (void)state;

    make_old_file(2);
    assert_int_equal(repro_store_open(db_path, REPRO_STORE_READONLY, &s, &err), REPRO_OK);
    repro_store_close(s);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(tu_sql_int(db, "PRAGMA user_version"), REPRO_SCHEMA_VERSION);
    assert_int_equal(tu_sql_int(db, "SELECT count(*) FROM pragma_table_info('exchanges')"
                                   " WHERE name LIKE '%_body_sha256'"), 2);
    sqlite3_close(db);
}

/* The crash <-> exchange join looks captured connections up through the
 * endpoint index, not by scanning them. */
static void test_in_flight_uses_endpoint_index(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    sqlite3 *db;
    sqlite3_stmt *q;
    char sql[2048];
    int uses = 0, scans_connections = 0, scans_exchanges = 0;
    (void)state;

    unlink_db();
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    repro_store_close(s);
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", REPRO__SQLITE_IN_FLIGHT_SQL);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_int64(q, 1, 1);
    while (sqlite3_step(q) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(q, 3);
        if (strstr(detail, "connections_by_endpoints"))
            uses = 1;
        if (strncmp(detail, "SCAN n", 6) == 0)
            scans_connections = 1;
        /* exchanges only through rowid ranges: no index on connection_id */
        if (strncmp(detail, "SCAN e", 6) == 0 || strncmp(detail, "SCAN x", 6) == 0)
            scans_exchanges = 1;
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    assert_true(uses);
    assert_false(scans_connections);
    assert_false(scans_exchanges);
}

/* A fresh database with one capture and one connection in it. */
static struct repro_store *open_with_conn(struct repro_store_conn *c)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    struct repro_store_capture crow = {"file", "x", NULL, 1, 0, 0};
    int64_t cap;

    unlink_db();
    assert_int_equal(repro_store_open(db_path, 0, &s, &err), REPRO_OK);
    assert_int_equal(repro_store_capture_begin(s, &crow, &cap, &err), REPRO_OK);
    fill_conn(c, 1, 1);
    c->capture_id = cap;
    assert_int_equal(repro_store_conn_insert(s, c, &c->id, &err), REPRO_OK);
    return s;
}

/* Body digests go in as 32 bytes and come out as 64 lowercase hex digits,
 * NULL when unknown. */
static int digest_fn(void *ctx, const struct repro_exchange_row *r)
{
    char (*out)[2][65] = ctx;
    snprintf((*out)[0], 65, "%s", r->request_body_sha256 ? r->request_body_sha256 : "(null)");
    snprintf((*out)[1], 65, "%s", r->response_body_sha256 ? r->response_body_sha256 : "(null)");
    return 0;
}

static void test_body_digests(void **state)
{
    struct repro_store *s;
    struct repro_error err = {0};
    struct repro_store_conn c;
    struct repro_store_exchange x;
    struct repro_exchange_filter f;
    char got[2][65];
    int i;
    (void)state;

    s = open_with_conn(&c);
    fill_x(&x, "GET", "/", 200, "a", "b");
    x.capture_id = c.capture_id;
    x.connection_id = c.id;
    for (i = 0; i < 32; i++)
        x.request_digest[i] = (uint8_t)(0xa0 + i);
    x.has_request_digest = 1;
    assert_int_equal(repro_store_exchange_insert(s, &x, NULL, &err), REPRO_OK);
    memset(&f, 0, sizeof f);
    assert_int_equal(repro_store_exchanges(s, &f, 0, digest_fn, &got, &err), REPRO_OK);
    assert_string_equal(got[0], "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
    assert_string_equal(got[1], "(null)");
    repro_store_close(s);
}

/* A path prefix longer than any fixed buffer still matches exactly (it was
 * cut at 1,024 bytes once, matching too much); one past the cap is refused
 * with a clear error. */
static void test_long_path_prefix(void **state)
{
    struct repro_store *s;
    struct repro_error err = {0};
    struct repro_store_conn c;
    struct repro_store_exchange x;
    struct repro_exchange_filter f;
    struct collect got;
    static char uri[3000], prefix[3000], huge[REPRO_STORE_MAX_PATTERN + 2];
    (void)state;

    s = open_with_conn(&c);
    uri[0] = '/';
    memset(uri + 1, '%', 2000); /* escaped: each takes two bytes of pattern */
    memcpy(uri + 2001, "A-tail", 7);
    fill_x(&x, "GET", uri, 200, "a", "b");
    x.capture_id = c.capture_id;
    x.connection_id = c.id;
    assert_int_equal(repro_store_exchange_insert(s, &x, NULL, &err), REPRO_OK);

    memset(&f, 0, sizeof f);
    memcpy(prefix, uri, 2001);
    memcpy(prefix + 2001, "B", 2);
    f.path_prefix = prefix;
    memset(&got, 0, sizeof got);
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 0);
    prefix[2001] = 'A';
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_OK);
    assert_int_equal(got.n, 1);

    memset(huge, 'a', sizeof huge - 1);
    huge[0] = '/';
    f.path_prefix = huge;
    assert_int_equal(repro_store_exchanges(s, &f, 0, collect_fn, &got, &err), REPRO_E_LIMIT);
    assert_non_null(strstr(err.msg, "path prefix is longer than 65536 bytes"));
    repro_store_close(s);
}

static void test_alloc_failures(void **state)
{
    unsigned long n;
    (void)state;
    for (n = 1; n < 50; n++) {
        struct repro_store *s = NULL;
        struct repro_error err = {0};
        unsigned long made;
        int rc;
        unlink(db_path);
        repro_alloc_fail_after(n);
        rc = repro_store_open(db_path, 0, &s, &err);
        made = repro_alloc_fail_after(0);
        if (rc == REPRO_OK)
            repro_store_close(s);
        else
            assert_int_not_equal(err.code, 0);
        if (made < n)
            break;
    }
    assert_true(n < 50);
}

/* Replay runs and results round-trip, findings filter included; a run
 * that does not exist is NOTFOUND. */
struct run_seen {
    int64_t runs, results, last_run_sent;
    char verdicts[64];
    size_t response_len;
};

static int seen_run(void *ctx, const struct repro_replay_run_row *r)
{
    struct run_seen *x = ctx;
    x->runs++;
    x->last_run_sent = r->sent;
    assert_string_equal(r->target, "127.0.0.1:8081");
    assert_string_equal(r->status, "complete");
    assert_null(r->baseline);
    return 0;
}

static int seen_result(void *ctx, const struct repro_replay_result_row *r)
{
    struct run_seen *x = ctx;
    x->results++;
    strncat(x->verdicts, r->verdict, sizeof x->verdicts - strlen(x->verdicts) - 2);
    strcat(x->verdicts, ",");
    x->response_len += r->response.len;
    if (strcmp(r->verdict, "mismatch") == 0)
        assert_string_equal(r->differences_json, "[{\"where\":\"$.a\"}]");
    return 0;
}

static void test_replay_runs(void **state)
{
    struct repro_store *s = NULL;
    struct repro_error err = {0};
    int64_t id = 0;
    struct run_seen seen;
    (void)state;

    assert_int_equal(repro_store_open(":memory:", 0, &s, &err), REPRO_OK);
    struct repro_store_replay_run run = {.started_us = 1, .target = "127.0.0.1:8081", .speed = 0};
    assert_int_equal(repro_store_replay_run_begin(s, &run, &id, &err), REPRO_OK);
    assert_true(id > 0);
    const char *verdicts[] = {"match", "mismatch", "timeout"};
    for (int i = 0; i < 3; i++) {
        struct repro_store_replay_result r = {
            .run_id = id, .exchange_id = 10 + i, .verdict = verdicts[i], .status = 200,
            .latency_us = i == 2 ? -1 : 100, .differences_json = i == 1 ? "[{\"where\":\"$.a\"}]" : NULL,
            .error = i == 2 ? "timeout" : NULL,
            .response = {(const uint8_t *)"HTTP/1.1 200 OK\r\n\r\n", i == 1 ? 19 : 0}};
        assert_int_equal(repro_store_replay_result_insert(s, &r, &err), REPRO_OK);
    }
    struct repro_store_replay_run_end end = {.ended_us = 2, .status = "complete", .sent = 3,
                                             .matched = 1, .mismatched = 1, .timeouts = 1};
    assert_int_equal(repro_store_replay_run_end(s, id, &end, &err), REPRO_OK);

    memset(&seen, 0, sizeof seen);
    assert_int_equal(repro_store_replay_runs(s, 0, seen_run, &seen, &err), REPRO_OK);
    assert_int_equal(seen.runs, 1);
    assert_int_equal(seen.last_run_sent, 3);
    assert_int_equal(repro_store_replay_results(s, id, 0, seen_result, &seen, &err), REPRO_OK);
    assert_string_equal(seen.verdicts, "match,mismatch,timeout,");
    assert_int_equal(seen.response_len, 19);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(repro_store_replay_results(s, id, 1, seen_result, &seen, &err), REPRO_OK);
    assert_string_equal(seen.verdicts, "mismatch,timeout,");
    assert_int_equal(repro_store_replay_runs(s, id + 1, seen_run, &seen, &err), REPRO_E_NOTFOUND);
    assert_int_equal(repro_store_replay_run_end(s, id + 5, &end, &err), REPRO_E_NOTFOUND);
    repro_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_runs),
        cmocka_unit_test_setup(test_create_mode_wal_version, setup),
        cmocka_unit_test_setup(test_roundtrip_and_filters, setup),
        cmocka_unit_test_setup(test_window_regex_ids, setup),
        cmocka_unit_test_setup(test_writer, setup),
        cmocka_unit_test_setup(test_bad_databases, setup),
        cmocka_unit_test_setup(test_readonly_migrates_old_file, setup),
        cmocka_unit_test_setup(test_concurrent_create, setup),
        cmocka_unit_test_setup(test_concurrent_create_threads, setup),
        cmocka_unit_test_setup(test_alloc_failures, setup),
        cmocka_unit_test_setup(test_ops_dispatch, setup),
        cmocka_unit_test_setup(test_writer_domains_in_order, setup),
        cmocka_unit_test_setup(test_writer_failure, setup),
        cmocka_unit_test_setup(test_writer_row_limit, setup),
        cmocka_unit_test_setup(test_migrate_v2_to_v3, setup),
        cmocka_unit_test_setup(test_readonly_migrates_v2, setup),
        cmocka_unit_test_setup(test_in_flight_uses_endpoint_index, setup),
        cmocka_unit_test_setup(test_body_digests, setup),
        cmocka_unit_test_setup(test_long_path_prefix, setup),
        cmocka_unit_test_setup(test_commits_wait_for_sync, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
