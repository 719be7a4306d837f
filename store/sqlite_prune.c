/*
 * Retention for the SQLite backend (struct repro_store_ops's prune): one
 * short transaction that deletes the oldest exchanges, by id, while the
 * database's used size is above a limit or while they are older than a
 * cutoff, and then closed connections left without exchanges. It never
 * touches captures, crashes, replay runs or results, nor an exchange a
 * replay result refers to (the replay_results_by_exchange index, schema
 * version 5, makes that check one lookup).
 *
 * The used size is (page_count - freelist_count) * page_size: the pages
 * rows occupy. Deleting puts pages on the freelist, later inserts take
 * them from it, so a database held under a limit stops growing; nothing
 * here shrinks the file (VACUUM would rewrite it whole and stall writers).
 *
 * Workload: the live capture's writer thread calls this between batches,
 * a few hundred rows per call, so no call holds the write lock for long.
 */
#include "store_int.h"

#include <string.h>

/* The exchanges retention may delete: not referred to by a replay result. */
#define UNREFERENCED "NOT EXISTS (SELECT 1 FROM replay_results r WHERE r.exchange_id = e.id)"

/* The oldest ?1 deletable exchanges, whatever their age (over the size). */
static const char *const by_size_sql =
    "DELETE FROM exchanges WHERE id IN (SELECT e.id FROM exchanges e WHERE " UNREFERENCED
    " ORDER BY e.id LIMIT ?1)";
/* Among the oldest ?1 deletable exchanges, those older than ?2. */
static const char *const by_age_sql =
    "DELETE FROM exchanges WHERE id IN (SELECT e.id FROM exchanges e WHERE " UNREFERENCED
    " ORDER BY e.id LIMIT ?1) AND coalesce(request_first_us, response_first_us, 0) < ?2";
/* The oldest exchange retention may still delete. */
#define OLDEST_DELETABLE(col)                                                  \
    "coalesce((SELECT e." col " FROM exchanges e WHERE " UNREFERENCED         \
    " ORDER BY e.id LIMIT 1), 9223372036854775807)"
/* Closed connections without exchanges, below the connection of the oldest
 * deletable exchange left (connections above it mostly still have
 * exchanges: the bound keeps the scan short). A connection whose last
 * exchange is not below the oldest deletable one left still has it; the
 * others' id ranges (schema version 6) lie where only exchanges replay
 * results refer to are left, so looking for one is short too. */
static const char *const conns_sql =
    "DELETE FROM connections WHERE id IN (SELECT c.id FROM connections c"
    " WHERE c.closed_us IS NOT NULL"
    " AND c.id < " OLDEST_DELETABLE("connection_id")
    " AND (c.last_exchange_id IS NULL OR c.last_exchange_id < " OLDEST_DELETABLE("id") ")"
    " AND NOT EXISTS (SELECT 1 FROM exchanges x"
    "  WHERE x.id BETWEEN c.first_exchange_id AND c.last_exchange_id AND x.connection_id = c.id)"
    " ORDER BY c.id LIMIT ?1)";

static int pragma_int(struct sqlite_store *s, const char *sql, int64_t *v, struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = repro__store_prepare(s, sql, &st, err, "cannot read the database size");

    if (rc == REPRO_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            *v = sqlite3_column_int64(st, 0);
        else
            rc = repro__store_db_error(s, err, "cannot read the database size");
    }
    sqlite3_finalize(st);
    return rc;
}

/* The pages rows occupy, in bytes. */
static int used_bytes(struct sqlite_store *s, uint64_t *out, struct repro_error *err)
{
    int64_t pages = 0, free_pages = 0, page_size = 0;
    int rc;

    if ((rc = pragma_int(s, "PRAGMA page_count", &pages, err)) != 0 ||
        (rc = pragma_int(s, "PRAGMA freelist_count", &free_pages, err)) != 0 ||
        (rc = pragma_int(s, "PRAGMA page_size", &page_size, err)) != 0)
        return rc;
    *out = pages > free_pages ? (uint64_t)(pages - free_pages) * (uint64_t)page_size : 0;
    return REPRO_OK;
}

/* How many of the oldest exchanges to delete to get excess bytes under
 * the limit: the excess over the average row (the used size over the
 * span of deletable exchange ids, which counts every table's pages and so
 * overestimates a row: a few more small steps rather than deleting past
 * the limit), at least 1, at most limit. */
static int rows_for(struct sqlite_store *s, uint64_t used, uint64_t excess, unsigned limit,
                    unsigned *out, struct repro_error *err)
{
    int64_t span = 0;
    uint64_t avg, n;
    int rc =
        pragma_int(s,
                   "SELECT coalesce(max(id) - (SELECT e.id FROM exchanges e WHERE " UNREFERENCED
                   " ORDER BY e.id LIMIT 1) + 1, 0) FROM exchanges",
                   &span, err);

    if (rc)
        return rc;
    avg = span > 0 ? used / (uint64_t)span : used;
    n = avg ? excess / avg + 1 : limit;
    *out = n < limit ? (unsigned)n : limit;
    return REPRO_OK;
}

/* Runs one of the DELETEs above with ?1 = limit, ?2 = before_us; *n gets
 * the rows deleted. */
static int delete_rows(struct sqlite_store *s, const char *sql, unsigned limit, int64_t before_us,
                       uint64_t *n, struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = repro__store_prepare(s, sql, &st, err, "cannot delete old rows");

    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, limit);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_int64(st, 2, before_us);
    rc = repro__store_step(s, st, err, "cannot delete old rows");
    if (rc == REPRO_OK)
        *n = (uint64_t)sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* The deletions, inside the open transaction. */
static int prune_rows(struct sqlite_store *s, const struct repro_store_prune *req,
                      struct repro_store_prune_result *out, struct repro_error *err)
{
    unsigned limit = req->max_rows ? req->max_rows : REPRO_STORE_PRUNE_ROWS, n = limit;
    int over = 0, rc;

    if ((rc = used_bytes(s, &out->used_bytes, err)) != 0)
        return rc;
    over = req->max_db_bytes > 0 && out->used_bytes > req->max_db_bytes;
    if (over && (rc = rows_for(s, out->used_bytes, out->used_bytes - req->max_db_bytes, limit, &n,
                               err)) == REPRO_OK)
        rc = delete_rows(s, by_size_sql, n, 0, &out->exchanges, err);
    else if (req->before_us > 0)
        rc = delete_rows(s, by_age_sql, limit, req->before_us, &out->exchanges, err);
    if (rc == REPRO_OK)
        rc = delete_rows(s, conns_sql, limit, 0, &out->connections, err);
    if (rc == REPRO_OK && (out->exchanges || out->connections))
        rc = used_bytes(s, &out->used_bytes, err);
    if (rc)
        return rc;
    /* More only while rows went: a limit nothing deletable can meet
     * (every exchange referred to by replays) must not spin. */
    out->more = out->connections == limit ||
                (out->exchanges > 0 &&
                 (over ? out->used_bytes > req->max_db_bytes : out->exchanges == limit));
    return REPRO_OK;
}

int repro__sqlite_prune(void *impl, const struct repro_store_prune *req,
                        struct repro_store_prune_result *out, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = repro__store_begin(s, err)) != REPRO_OK)
        return rc;
    rc = prune_rows(s, req, out, err);
    if (rc == REPRO_OK)
        rc = repro__store_flush(s, err);
    if (rc != REPRO_OK) {
        repro__store_rollback(s);
        memset(out, 0, sizeof *out);
    }
    return rc;
}
