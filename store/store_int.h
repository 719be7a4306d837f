/*
 * Internals shared by the SQLite backend's files (never installed).
 */
#ifndef REPRO_STORE_INT_H
#define REPRO_STORE_INT_H

#include "repro/store.h"

#include <sqlite3.h>

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_CONN_INS,
    ST_CONN_UPD,
    ST_CONN_RANGE,
    ST_EX_INS,
    ST_REPLAY_RES_INS,
    ST__COUNT
};

struct conn_ranges; /* sqlite_ranges.c */

/* The SQLite backend's handle (the impl of struct repro_store). */
struct sqlite_store {
    sqlite3 *db;
    char path[512];
    sqlite3_stmt *st[ST__COUNT];
    int in_tx;
    int bulk;           /* a bulk import (synchronous=OFF): no syncs */
    int unsynced;       /* a commit not yet synced to disk waits */
    uint64_t synced_ns; /* when the WAL was last synced (monotonic), 0: never */
    unsigned batch, pending;
    unsigned busy_timeout_ms;
    struct conn_ranges *ranges; /* open connections' exchange id ranges */
    const struct repro_store_exchange *rows; /* repro_exchange_rows while inserting */
    size_t n_rows;
};

/* The SQL that migrates schema version from_version to from_version + 1,
 * NULL past the last (for tests that build files of older versions). */
const char *repro__sqlite_migration(int from_version);

/* Records "WHAT in database 'PATH': sqlite's message" into err. */
int repro__store_db_error(struct sqlite_store *s, struct repro_error *err, const char *what);
/* Runs SQL without results. */
int repro__store_exec(struct sqlite_store *s, const char *sql, struct repro_error *err,
                      const char *what);
/* Steps a statement to completion, then resets it and clears its bindings
 * (also when the step failed). */
int repro__store_step(struct sqlite_store *s, sqlite3_stmt *st, struct repro_error *err,
                      const char *what);
/* Prepares sql into *st (owned by the caller, who finalizes it). */
int repro__store_prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **st,
                         struct repro_error *err, const char *what);
/* The single-row writers' batches (repro_store_set_batch): open opens a
 * transaction if none is open, before a row; done, after it, with the
 * row's result rc, counts n rows stored and commits the batch once it is
 * full, so a batch's last row is in it. Returns rc, or the commit's. */
int repro__store_batch_open(struct sqlite_store *s, struct repro_error *err);
int repro__store_batch_done(struct sqlite_store *s, int rc, size_t n, struct repro_error *err);
/* Each connection's exchange id range (sqlite_ranges.c). note: exchange
 * xid of connection conn was inserted. closing: the range to write with
 * the connection's closing UPDATE (0: none); closed: that UPDATE is done
 * (it wrote the range). flush: writes the ranges that
 * grew, in the open transaction, before COMMIT. committed / rolled_back:
 * after COMMIT succeeded / after ROLLBACK. */
int repro__ranges_note(struct sqlite_store *s, int64_t conn, int64_t xid, struct repro_error *err);
void repro__ranges_closing(const struct sqlite_store *s, int64_t conn, int64_t *first,
                           int64_t *last);
void repro__ranges_closed(struct sqlite_store *s, int64_t conn);
int repro__ranges_flush(struct sqlite_store *s, struct repro_error *err);
void repro__ranges_committed(struct sqlite_store *s);
void repro__ranges_rolled_back(struct sqlite_store *s);
void repro__ranges_free(struct sqlite_store *s);
/* Many exchanges per INSERT (sqlite_rows.c): register: the eponymous
 * table repro_exchange_rows on s->db (before ST_EX_INS is prepared);
 * insert: stores rows[0..n) in the open transaction, notes their ranges,
 * *first_id (optional) gets the first id. */
int repro__rows_register(struct sqlite_store *s);
int repro__rows_insert(struct sqlite_store *s, const struct repro_store_exchange *rows, size_t n,
                       int64_t *first_id, struct repro_error *err);
/* Replay runs and results (sqlite_replay.c): struct repro_store_ops. */
int repro__sqlite_replay_run_begin(void *impl, const struct repro_store_replay_run *row, int64_t *id,
                                   struct repro_error *err);
int repro__sqlite_replay_run_end(void *impl, int64_t id, const struct repro_store_replay_run_end *row,
                                 struct repro_error *err);
int repro__sqlite_replay_result_insert(void *impl, const struct repro_store_replay_result *row,
                                       struct repro_error *err);
int repro__sqlite_replay_runs(void *impl, int64_t id, repro_replay_run_fn fn, void *ctx,
                              struct repro_error *err);
int repro__sqlite_replay_results(void *impl, int64_t run_id, int findings_only,
                                 repro_replay_result_row_fn fn, void *ctx, struct repro_error *err);
/* Commits the open batch, if any. */
int repro__store_flush(void *impl, struct repro_error *err);
/* Commits the open batch, then BEGIN IMMEDIATE (the batch stays open). */
int repro__store_begin(void *impl, struct repro_error *err);
/* Rolls back the open transaction, if any. */
void repro__store_rollback(void *impl);
/* Retention (sqlite_prune.c): struct repro_store_ops's prune. */
int repro__sqlite_prune(void *impl, const struct repro_store_prune *req,
                        struct repro_store_prune_result *out, struct repro_error *err);
/* Column col as text, NULL for SQL NULL. Borrowed until the statement
 * steps, resets or is finalized. */
const char *repro__store_col_text(sqlite3_stmt *st, int col);
/* Binds v as text (copied), or leaves NULL when v is NULL. */
void repro__store_bind_text(sqlite3_stmt *st, int col, const char *v);
/* Binds an IP address (family 4 or 6) as text, the way the schema keeps
 * it (docs/schema.md). */
void repro__store_bind_ip(sqlite3_stmt *st, int col, int family, const uint8_t *ip);

/* The SELECT of repro_store_exchanges for filter f into sql (parameters
 * from ?1 in the filter's field order; a test checks its plan). The first
 * failed append wins. */
int repro__sqlite_exchanges_sql(struct repro_buf *sql, const struct repro_exchange_filter *f,
                                int with_bodies);

/* The join of repro_store_crash_in_flight (a test checks its plan uses
 * the connections_by_endpoints index and no scan of exchanges). ?1 is the
 * crash id. A connection's exchanges are found through its exchange id
 * range (schema version 6): on one connection ids follow the wire order,
 * so the requests in flight at time T are among the last ones that began
 * by T, which are read backwards from the end of the range. The capture
 * holds at most 64 requests waiting per connection (max_pipeline), so the
 * last 128 are enough, however long the connection lived; except that past
 * 64 it stores the oldest waiting request without its response, which may
 * still be waiting: of more than 128 unanswered, the oldest are missed. */
#define REPRO__SQLITE_IN_FLIGHT_SQL                                         \
    "SELECT DISTINCT e.id FROM crashes c"                                   \
    " JOIN crash_connections k ON k.crash_id = c.id"                        \
    " JOIN connections n ON n.client_ip = replace(k.remote_ip, '::ffff:', '')" \
    "  AND n.client_port = k.remote_port"                                   \
    "  AND n.server_ip = replace(k.local_ip, '::ffff:', '')"                \
    "  AND n.server_port = k.local_port"                                    \
    " JOIN exchanges e ON e.id IN (SELECT x.id FROM exchanges x"            \
    "  WHERE x.id BETWEEN n.first_exchange_id AND n.last_exchange_id"       \
    "  AND x.connection_id = n.id AND x.request_first_us <= c.time_us"      \
    "  ORDER BY x.id DESC LIMIT 128)"                                       \
    " WHERE c.id = ?1 AND n.opened_us <= c.time_us"                         \
    "  AND (e.response_first_us IS NULL OR e.response_first_us >= c.time_us)" \
    " ORDER BY e.id"

/* The crash operations (sqlite_crash.c). */
int repro__sqlite_crash_insert(void *impl, const struct repro_store_crash *row, int64_t *id,
                               struct repro_error *err);
int repro__sqlite_crash_get(void *impl, int64_t id, struct repro_store_crash **out,
                            struct repro_error *err);
int repro__sqlite_crash_ids(void *impl, int (*fn)(void *ctx, int64_t id), void *ctx,
                            struct repro_error *err);
int repro__sqlite_crash_in_flight(void *impl, int64_t crash_id,
                                  int (*fn)(void *ctx, int64_t exchange_id), void *ctx,
                                  struct repro_error *err);
int repro__sqlite_crash_group(void *impl, const char *signature, int64_t *count,
                              int64_t *first_us, int64_t *last_us, struct repro_error *err);
int repro__sqlite_crash_set_symbols(void *impl, int64_t id, const struct repro_store_crash *row,
                                    struct repro_error *err);

#endif
