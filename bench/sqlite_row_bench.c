/*
 * sqlite_row_bench DB [ROWS] [RUNS]: what one SQLite row per exchange costs
 * on this machine, whatever repro does around it: the floor under the live
 * agent's store path (issue 11; bench/README.md, live_bench.sh, session 7).
 *
 * Inserts ROWS rows (default 200,000) shaped like a wrk exchange (a 44-byte
 * request, a 380-byte response; 16 connections interleaved) into a new
 * file DB with repro's settings (64 KiB pages, WAL, synchronous=NORMAL,
 * checkpoints every 256 pages, batches of 8,192 rows per transaction), for
 * four row shapes, RUNS times each (default 3), and prints for each shape
 * the median CPU time of the process per row (user + system: the WAL
 * writes and checkpoint copies count):
 *
 *   shape=blob      cols=1  us_per_row=...   one BLOB column
 *   shape=narrow    cols=9  us_per_row=...   ids, status, two times, two BLOBs
 *   shape=exchanges cols=23 us_per_row=...   repro's exchanges row (schema 6)
 *   shape=indexed   cols=23 us_per_row=...   the same with the index on
 *                                            (connection_id, seq) schema 5 had
 *
 * Exit 0, or 1 with a message. Not in ctest (a benchmark, not a test).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 8192
#define CONNS 16

struct shape {
    const char *name;
    int cols;
    const char *ddl, *insert;
};

#define EXCHANGES_DDL                                                                      \
    "CREATE TABLE x(id INTEGER PRIMARY KEY, capture_id INTEGER NOT NULL,"                  \
    " connection_id INTEGER NOT NULL, seq INTEGER NOT NULL, method TEXT, uri TEXT,"        \
    " host TEXT, http_version TEXT, status INTEGER, reason TEXT, interim TEXT,"            \
    " request_first_us INTEGER, request_last_us INTEGER, response_first_us INTEGER,"       \
    " response_last_us INTEGER, request_bytes INTEGER NOT NULL,"                           \
    " response_bytes INTEGER NOT NULL, flags INTEGER NOT NULL, complete INTEGER NOT NULL," \
    " note TEXT, request BLOB, response BLOB, request_body_sha256 BLOB,"                   \
    " response_body_sha256 BLOB);"
#define EXCHANGES_INSERT                                                                   \
    "INSERT INTO x(capture_id, connection_id, seq, method, uri, host, http_version,"       \
    " status, reason, interim, request_first_us, request_last_us, response_first_us,"      \
    " response_last_us, request_bytes, response_bytes, flags, complete, note, request,"    \
    " response, request_body_sha256, response_body_sha256)"                                \
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"

static const struct shape shapes[] = {
    {"blob", 1, "CREATE TABLE x(id INTEGER PRIMARY KEY, b BLOB);", "INSERT INTO x(b) VALUES (?)"},
    {"narrow", 9,
     "CREATE TABLE x(id INTEGER PRIMARY KEY, capture_id INTEGER NOT NULL,"
     " connection_id INTEGER NOT NULL, seq INTEGER NOT NULL, status INTEGER,"
     " request_first_us INTEGER, response_last_us INTEGER, request BLOB, response BLOB);",
     "INSERT INTO x(capture_id, connection_id, seq, status, request_first_us,"
     " response_last_us, request, response) VALUES (?,?,?,?,?,?,?,?)"},
    {"exchanges", 23, EXCHANGES_DDL, EXCHANGES_INSERT},
    {"indexed", 23, EXCHANGES_DDL "CREATE INDEX xi ON x(connection_id, seq);", EXCHANGES_INSERT},
};

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void remove_db(const char *path)
{
    char p[4096];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static int fail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "sqlite_row_bench: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return -1;
}

/* Binds row i of a shape's statement. */
static void bind_row(sqlite3_stmt *st, const struct shape *sh, long i, const char *req, int req_len,
                     const char *resp, int resp_len, const char *digest)
{
    static long seq[CONNS];
    sqlite3_int64 t = 1796559589741880LL + i * 10;
    int conn = (int)(i % CONNS);

    if (sh->cols == 1) {
        sqlite3_bind_blob(st, 1, resp, resp_len, SQLITE_STATIC);
        return;
    }
    sqlite3_bind_int64(st, 1, 1);
    sqlite3_bind_int64(st, 2, conn + 1);
    sqlite3_bind_int64(st, 3, seq[conn]++);
    if (sh->cols == 9) {
        sqlite3_bind_int(st, 4, 200);
        sqlite3_bind_int64(st, 5, t);
        sqlite3_bind_int64(st, 6, t + 5);
        sqlite3_bind_blob(st, 7, req, req_len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 8, resp, resp_len, SQLITE_STATIC);
        return;
    }
    sqlite3_bind_text(st, 4, "GET", 3, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, req + 4, 12, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, "127.0.0.1:8080", 14, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, "HTTP/1.1", 8, SQLITE_STATIC);
    sqlite3_bind_int(st, 8, 200);
    sqlite3_bind_text(st, 9, "OK", 2, SQLITE_STATIC);
    for (int k = 11; k <= 14; k++)
        sqlite3_bind_int64(st, k, t + k);
    sqlite3_bind_int64(st, 15, req_len);
    sqlite3_bind_int64(st, 16, resp_len);
    sqlite3_bind_int(st, 17, 0);
    sqlite3_bind_int(st, 18, 1);
    sqlite3_bind_blob(st, 20, req, req_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 21, resp, resp_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 22, digest, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 23, digest, 32, SQLITE_STATIC);
}

/* One run of a shape: seconds of CPU per row, or a negative value. */
static double run(const char *path, const struct shape *sh, long rows)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char req[64], resp[380], digest[32];
    double t0;

    memset(resp, 'r', sizeof resp);
    memset(digest, 'd', sizeof digest);
    remove_db(path);
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return fail(db, "cannot open");
    if (sqlite3_exec(db,
                     "PRAGMA page_size=65536; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     " PRAGMA cache_size=-8192; PRAGMA wal_autocheckpoint=256;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(db, sh->ddl, NULL, NULL, NULL) != SQLITE_OK)
        return fail(db, "cannot create the table");
    if (sqlite3_prepare_v2(db, sh->insert, -1, &st, NULL) != SQLITE_OK)
        return fail(db, "cannot prepare");
    t0 = cpu_s();
    for (long i = 0; i < rows; i++) {
        int n = snprintf(req, sizeof req, "GET /u/0/%07ld HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
                         i % 10000000);
        if (i % BATCH == 0 && sqlite3_exec(db, i ? "COMMIT; BEGIN" : "BEGIN", NULL, NULL, NULL))
            break;
        bind_row(st, sh, i, req, n, resp, (int)sizeof resp, digest);
        if (sqlite3_step(st) != SQLITE_DONE)
            break;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return fail(db, "cannot insert");
    }
    t0 = (cpu_s() - t0) / (double)rows;
    sqlite3_finalize(st);
    sqlite3_close(db);
    remove_db(path);
    return t0;
}

int main(int argc, char **argv)
{
    long rows = argc > 2 ? atol(argv[2]) : 200000;
    int runs = argc > 3 ? atoi(argv[3]) : 3;

    if (argc < 2 || argc > 4 || rows <= 0 || runs <= 0 || runs > 99) {
        fprintf(stderr, "usage: sqlite_row_bench DB [ROWS] [RUNS]\n");
        return 1;
    }
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        double t[99];
        for (int r = 0; r < runs; r++)
            if ((t[r] = run(argv[1], &shapes[k], rows)) < 0)
                return 1;
        qsort(t, (size_t)runs, sizeof *t, cmp_double);
        printf("shape=%-9s cols=%-2d us_per_row=%.2f\n", shapes[k].name, shapes[k].cols,
               t[runs / 2] * 1e6);
    }
    return 0;
}
