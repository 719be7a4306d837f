/*
 * SQLite helpers the store's unit tests share: a second connection to the
 * file under test, one integer out of a query, a file of an older schema
 * version, and an open connection row to store. Needs <cmocka.h> (included before this header).
 */
#ifndef REPRO_TU_SQLITE_H
#define REPRO_TU_SQLITE_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"

/* A connection of the test's own to the existing file path, waiting up to
 * 5 s for the store's locks. */
static inline sqlite3 *tu_sql_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the one row sql returns (0 for NULL). */
static inline int64_t tu_sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    int64_t v;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* Makes path a new database of schema version v the way that version of
 * repro wrote it (the released migrations up to v, never edited), in WAL
 * mode; returns a connection to it for rows of that version. */
static inline sqlite3 *tu_sql_old_file(const char *path, int v)
{
    char sql[64];
    sqlite3 *db;

    unlink(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
    for (int i = 0; i < v; i++)
        assert_int_equal(sqlite3_exec(db, repro__sqlite_migration(i), NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    return db;
}

/* An open HTTP connection 127.0.0.1:cport -> 10.0.0.9:8080, opened at
 * opened_us; the caller sets capture_id or local_id. */
static inline void tu_fill_conn(struct repro_store_conn *c, uint16_t cport, int64_t opened_us)
{
    memset(c, 0, sizeof *c);
    c->family = 4;
    c->client_ip[0] = 127;
    c->client_ip[3] = 1;
    c->server_ip[0] = 10;
    c->server_ip[3] = 9;
    c->client_port = cport;
    c->server_port = 8080;
    c->opened_us = opened_us;
    c->closed_us = -1;
    c->is_http = 1;
}

#endif
