/*
 * Many exchanges in one INSERT: `INSERT INTO exchanges(...) SELECT * FROM
 * repro_exchange_rows`, where repro_exchange_rows is an eponymous virtual
 * table (it exists only on this connection, never in the file) whose rows
 * are the array of struct repro_store_exchange the caller passes.
 *
 * Why: one INSERT per exchange with 23 bound parameters paid SQLite's
 * per-statement work every time (binding and clearing 23 parameters,
 * opening a cursor and seeking to the end of the table, halting and
 * resetting the statement). One statement per run of exchanges pays it
 * once: the writer thread's instructions per exchange fell from 11.2k to
 * 9.1k (callgrind; docs/store.md, "Many rows per statement").
 *
 * The rows get consecutive ids: the statement holds the write lock and
 * SQLite gives each new row the largest id plus one, so the ids of a call
 * are last_insert_rowid() - n + 1 ... last_insert_rowid().
 *
 * Which fields are NULL is decided here only (exchange_column), for one
 * row or many alike.
 */
#include "store_int.h"

#include <string.h>

/* The columns, in the INSERT's order (ST_EX_INS in sqlite_store.c). */
#define ROWS_DECL                                                                  \
    "CREATE TABLE x(capture_id, connection_id, seq, method, uri, host, http_version," \
    " status, reason, interim, request_first_us, request_last_us, response_first_us," \
    " response_last_us, request_bytes, response_bytes, flags, complete, note, request," \
    " response, request_body_sha256, response_body_sha256)"

struct rows_vtab {
    sqlite3_vtab base;
    struct sqlite_store *s; /* its rows and n_rows are the table */
};

struct rows_cursor {
    sqlite3_vtab_cursor base;
    size_t i;
};

static void text_or_null(sqlite3_context *c, struct repro_slice v)
{
    if (v.ptr != NULL && v.len > 0)
        sqlite3_result_text(c, (const char *)v.ptr, (int)v.len, SQLITE_STATIC);
}

static void str_or_null(sqlite3_context *c, const char *v)
{
    if (v && v[0])
        sqlite3_result_text(c, v, -1, SQLITE_STATIC);
}

static void time_or_null(sqlite3_context *c, int64_t us)
{
    if (us >= 0)
        sqlite3_result_int64(c, us);
}

/* Column col of x; a column not set is NULL (SQLite's default result). */
static void exchange_column(sqlite3_context *c, const struct repro_store_exchange *x, int col)
{
    switch (col) {
    case 0: sqlite3_result_int64(c, x->capture_id); break;
    case 1: sqlite3_result_int64(c, x->connection_id); break;
    case 2: sqlite3_result_int64(c, (sqlite3_int64)x->seq); break;
    case 3: text_or_null(c, x->method); break;
    case 4: text_or_null(c, x->uri); break;
    case 5: text_or_null(c, x->host); break;
    case 6: str_or_null(c, x->http_version); break;
    case 7:
        if (x->status > 0)
            sqlite3_result_int(c, x->status);
        break;
    case 8:
        if (x->status > 0)
            sqlite3_result_text(c, x->reason.ptr ? (const char *)x->reason.ptr : "",
                                (int)x->reason.len, SQLITE_STATIC);
        break;
    case 9: str_or_null(c, x->interim); break;
    case 10: time_or_null(c, x->request_first_us); break;
    case 11: time_or_null(c, x->request_last_us); break;
    case 12: time_or_null(c, x->response_first_us); break;
    case 13: time_or_null(c, x->response_last_us); break;
    case 14: sqlite3_result_int64(c, (sqlite3_int64)x->request_bytes); break;
    case 15: sqlite3_result_int64(c, (sqlite3_int64)x->response_bytes); break;
    case 16: sqlite3_result_int(c, (int)x->flags); break;
    case 17: sqlite3_result_int(c, x->complete != 0); break;
    case 18:
        if (x->note)
            sqlite3_result_text(c, x->note, -1, SQLITE_STATIC);
        break;
    case 19:
        if (x->request.len > 0)
            sqlite3_result_blob(c, x->request.ptr, (int)x->request.len, SQLITE_STATIC);
        break;
    case 20:
        if (x->response.len > 0)
            sqlite3_result_blob(c, x->response.ptr, (int)x->response.len, SQLITE_STATIC);
        break;
    /* 32 bytes as a BLOB: half the bytes of hex text on every exchange;
     * readers get hex (lower(hex(...))). */
    case 21:
        if (x->has_request_digest)
            sqlite3_result_blob(c, x->request_digest, 32, SQLITE_STATIC);
        break;
    case 22:
        if (x->has_response_digest)
            sqlite3_result_blob(c, x->response_digest, 32, SQLITE_STATIC);
        break;
    default: break;
    }
}

static int rows_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                        sqlite3_vtab **out, char **errmsg)
{
    struct rows_vtab *t;
    int rc = sqlite3_declare_vtab(db, ROWS_DECL);

    (void)argc, (void)argv, (void)errmsg;
    if (rc != SQLITE_OK)
        return rc;
    t = sqlite3_malloc(sizeof *t);
    if (t == NULL)
        return SQLITE_NOMEM;
    memset(t, 0, sizeof *t);
    t->s = aux;
    *out = &t->base;
    return SQLITE_OK;
}

static int rows_disconnect(sqlite3_vtab *t)
{
    sqlite3_free(t);
    return SQLITE_OK;
}

static int rows_best_index(sqlite3_vtab *t, sqlite3_index_info *info)
{
    (void)t;
    info->estimatedCost = 1.0;
    return SQLITE_OK;
}

static int rows_open(sqlite3_vtab *t, sqlite3_vtab_cursor **out)
{
    struct rows_cursor *c = sqlite3_malloc(sizeof *c);

    (void)t;
    if (c == NULL)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    *out = &c->base;
    return SQLITE_OK;
}

static int rows_close(sqlite3_vtab_cursor *c)
{
    sqlite3_free(c);
    return SQLITE_OK;
}

static struct rows_cursor *cursor(sqlite3_vtab_cursor *c)
{
    return (struct rows_cursor *)(void *)c;
}

static struct sqlite_store *store_of(sqlite3_vtab_cursor *c)
{
    return ((struct rows_vtab *)(void *)c->pVtab)->s;
}

static int rows_filter(sqlite3_vtab_cursor *c, int idx, const char *idx_str, int argc,
                       sqlite3_value **argv)
{
    (void)idx, (void)idx_str, (void)argc, (void)argv;
    cursor(c)->i = 0;
    return SQLITE_OK;
}

static int rows_next(sqlite3_vtab_cursor *c)
{
    cursor(c)->i++;
    return SQLITE_OK;
}

static int rows_eof(sqlite3_vtab_cursor *c)
{
    return cursor(c)->i >= store_of(c)->n_rows;
}

static int rows_column(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int col)
{
    exchange_column(ctx, &store_of(c)->rows[cursor(c)->i], col);
    return SQLITE_OK;
}

static int rows_rowid(sqlite3_vtab_cursor *c, sqlite3_int64 *rowid)
{
    *rowid = (sqlite3_int64)cursor(c)->i;
    return SQLITE_OK;
}

/* Eponymous-only (no xCreate): the table exists on this connection only,
 * read-only (no xUpdate). */
static const sqlite3_module rows_module = {
    .iVersion = 0,
    .xConnect = rows_connect,
    .xBestIndex = rows_best_index,
    .xDisconnect = rows_disconnect,
    .xOpen = rows_open,
    .xClose = rows_close,
    .xFilter = rows_filter,
    .xNext = rows_next,
    .xEof = rows_eof,
    .xColumn = rows_column,
    .xRowid = rows_rowid,
};

int repro__rows_register(struct sqlite_store *s)
{
    return sqlite3_create_module_v2(s->db, "repro_exchange_rows", &rows_module, s, NULL);
}

int repro__rows_insert(struct sqlite_store *s, const struct repro_store_exchange *rows, size_t n,
                       int64_t *first_id, struct repro_error *err)
{
    int64_t last;
    int rc;

    if (n == 0)
        return REPRO_OK;
    s->rows = rows;
    s->n_rows = n;
    rc = repro__store_step(s, s->st[ST_EX_INS], err, n == 1 ? "cannot store an exchange"
                                                            : "cannot store exchanges");
    s->rows = NULL;
    s->n_rows = 0;
    if (rc != REPRO_OK)
        return rc;
    last = sqlite3_last_insert_rowid(s->db);
    if (first_id)
        *first_id = last - (int64_t)n + 1;
    for (size_t k = 0; rc == REPRO_OK && k < n; k++)
        rc = repro__ranges_note(s, rows[k].connection_id, last - (int64_t)(n - 1 - k), err);
    return rc;
}
