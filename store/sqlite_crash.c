/*
 * Crashes in the SQLite backend (schema versions 2 and 3, docs/schema.md).
 * A crash is written in one transaction with its modules, threads, frames
 * and open connections, so a reader never sees half a crash. Addresses are
 * unsigned 64-bit values stored in SQLite's signed INTEGER (same bits).
 * Every sqlite3_step result is checked: a failed read is an error, never
 * an empty answer.
 */
#include "store_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static int prep(struct sqlite_store *s, const char *sql, sqlite3_stmt **st, struct repro_error *err)
{
    return repro__store_prepare(s, sql, st, err, "cannot prepare a crash statement");
}

#define col_text repro__store_col_text
#define bind_text repro__store_bind_text

/* Inserts every frame of every thread of c. */
static int insert_frames(struct sqlite_store *s, const struct repro_store_crash *c, int64_t id,
                         struct repro_error *err)
{
    sqlite3_stmt *frm = NULL;
    size_t i, k;
    int rc = prep(s, "INSERT INTO crash_frames(crash_id, thread_idx, idx, pc, module_idx, offset,"
                     " function, file, line, column, inlined) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                  &frm, err);

    for (i = 0; i < c->n_threads && rc == REPRO_OK; i++) {
        const struct repro_store_crash_thread *t = &c->threads[i];
        for (k = 0; k < t->n_frames && rc == REPRO_OK; k++) {
            const struct repro_store_crash_frame *f = &t->frames[k];
            sqlite3_bind_int64(frm, 1, id);
            sqlite3_bind_int64(frm, 2, (sqlite3_int64)i);
            sqlite3_bind_int64(frm, 3, (sqlite3_int64)k);
            sqlite3_bind_int64(frm, 4, (sqlite3_int64)f->pc);
            if (f->module >= 0) {
                sqlite3_bind_int(frm, 5, f->module);
                sqlite3_bind_int64(frm, 6, (sqlite3_int64)f->offset);
            }
            bind_text(frm, 7, f->function);
            bind_text(frm, 8, f->file);
            if (f->line > 0)
                sqlite3_bind_int(frm, 9, f->line);
            if (f->column > 0)
                sqlite3_bind_int(frm, 10, f->column);
            sqlite3_bind_int(frm, 11, f->inlined);
            rc = repro__store_step(s, frm, err, "cannot store a crash frame");
        }
    }
    sqlite3_finalize(frm);
    return rc;
}

static int insert_modules(struct sqlite_store *s, sqlite3_stmt *mod,
                          const struct repro_store_crash *c, int64_t id, struct repro_error *err)
{
    size_t i;
    int rc = REPRO_OK;

    for (i = 0; i < c->n_modules && rc == REPRO_OK; i++) {
        const struct repro_store_crash_module *m = &c->modules[i];
        sqlite3_bind_int64(mod, 1, id);
        sqlite3_bind_int64(mod, 2, (sqlite3_int64)i);
        bind_text(mod, 3, m->path);
        sqlite3_bind_int64(mod, 4, (sqlite3_int64)m->start);
        sqlite3_bind_int64(mod, 5, (sqlite3_int64)m->end);
        sqlite3_bind_int64(mod, 6, (sqlite3_int64)m->load_bias);
        bind_text(mod, 7, m->build_id && m->build_id[0] ? m->build_id : NULL);
        rc = repro__store_step(s, mod, err, "cannot store a crash module");
    }
    return rc;
}

static int insert_threads(struct sqlite_store *s, sqlite3_stmt *thr,
                          const struct repro_store_crash *c, int64_t id, struct repro_error *err)
{
    size_t i;
    int rc = REPRO_OK;

    for (i = 0; i < c->n_threads && rc == REPRO_OK; i++) {
        const struct repro_store_crash_thread *t = &c->threads[i];
        sqlite3_bind_int64(thr, 1, id);
        sqlite3_bind_int64(thr, 2, (sqlite3_int64)i);
        sqlite3_bind_int(thr, 3, t->tid);
        bind_text(thr, 4, t->name);
        sqlite3_bind_int(thr, 5, t->crashed);
        bind_text(thr, 6, t->registers);
        sqlite3_bind_int(thr, 7, t->partial);
        rc = repro__store_step(s, thr, err, "cannot store a crash thread");
    }
    return rc;
}

static int insert_conns(struct sqlite_store *s, sqlite3_stmt *con,
                        const struct repro_store_crash *c, int64_t id, struct repro_error *err)
{
    size_t i;
    int rc = REPRO_OK;

    for (i = 0; i < c->n_conns && rc == REPRO_OK; i++) {
        const struct repro_store_crash_conn *k = &c->conns[i];
        sqlite3_bind_int64(con, 1, id);
        sqlite3_bind_int(con, 2, k->fd);
        sqlite3_bind_int(con, 3, k->family);
        repro__store_bind_ip(con, 4, k->family, k->local_ip);
        sqlite3_bind_int(con, 5, k->local_port);
        repro__store_bind_ip(con, 6, k->family, k->remote_ip);
        sqlite3_bind_int(con, 7, k->remote_port);
        sqlite3_bind_int(con, 8, k->state);
        rc = repro__store_step(s, con, err, "cannot store a crash connection");
    }
    return rc;
}

static int insert_parts(struct sqlite_store *s, const struct repro_store_crash *c, int64_t id,
                        struct repro_error *err)
{
    sqlite3_stmt *mod = NULL, *thr = NULL, *con = NULL;
    int rc;

    if ((rc = prep(s, "INSERT INTO crash_modules VALUES (?,?,?,?,?,?,?)", &mod, err)) ||
        (rc = prep(s, "INSERT INTO crash_threads VALUES (?,?,?,?,?,?,?)", &thr, err)) ||
        (rc = prep(s, "INSERT INTO crash_connections VALUES (?,?,?,?,?,?,?,?)", &con, err)))
        goto out;
    if ((rc = insert_modules(s, mod, c, id, err)) == REPRO_OK &&
        (rc = insert_threads(s, thr, c, id, err)) == REPRO_OK &&
        (rc = insert_frames(s, c, id, err)) == REPRO_OK)
        rc = insert_conns(s, con, c, id, err);
out:
    sqlite3_finalize(mod);
    sqlite3_finalize(thr);
    sqlite3_finalize(con);
    return rc;
}

/* Looks record_key up: 1 with *id set when stored before, 0 when not, or
 * a negative error. */
static int find_record_key(struct sqlite_store *s, const char *key, int64_t *id,
                           struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT id FROM crashes WHERE record_key = ?", &st, err), step;

    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = repro__store_db_error(s, err, "cannot look a crash record key up");
    }
    sqlite3_finalize(st);
    return rc;
}

static int insert_crash_row(struct sqlite_store *s, const struct repro_store_crash *c,
                            struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s,
                  "INSERT INTO crashes(time_us, pid, tid, executable, cmdline, service, hostname,"
                  " signo, signal, si_code, fault_address, source, partial, partial_reason,"
                  " signature, record_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                  &st, err);

    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, c->time_us);
    sqlite3_bind_int(st, 2, c->pid);
    sqlite3_bind_int(st, 3, c->tid);
    bind_text(st, 4, c->executable);
    bind_text(st, 5, c->cmdline);
    bind_text(st, 6, c->service);
    bind_text(st, 7, c->hostname);
    sqlite3_bind_int(st, 8, c->signo);
    bind_text(st, 9, c->signal ? c->signal : "unknown");
    sqlite3_bind_int(st, 10, c->si_code);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)c->fault_address);
    bind_text(st, 12, c->source && c->source[0] ? c->source : "unknown");
    sqlite3_bind_int(st, 13, c->partial);
    bind_text(st, 14, c->partial ? c->partial_reason : NULL);
    bind_text(st, 15, c->signature);
    bind_text(st, 16, c->record_key);
    rc = repro__store_step(s, st, err, "cannot store a crash");
    sqlite3_finalize(st);
    return rc;
}

int repro__sqlite_crash_insert(void *impl, const struct repro_store_crash *c, int64_t *id,
                               struct repro_error *err)
{
    struct sqlite_store *s = impl;
    int64_t cid = 0;
    int rc;

    if ((rc = repro__store_flush(s, err)) != 0 ||
        (rc = repro__store_exec(s, "BEGIN IMMEDIATE", err, "cannot store a crash")) != 0)
        return rc;
    /* Stored before (an ingest that died between commit and unlink)? */
    rc = c->record_key ? find_record_key(s, c->record_key, &cid, err) : 0;
    if (rc == 0) {
        rc = insert_crash_row(s, c, err);
        if (rc == REPRO_OK) {
            cid = sqlite3_last_insert_rowid(s->db);
            rc = insert_parts(s, c, cid, err);
        }
    } else if (rc == 1) {
        rc = REPRO_OK;
    }
    if (rc == REPRO_OK)
        rc = repro__store_exec(s, "COMMIT", err, "cannot commit a crash");
    if (rc != REPRO_OK) {
        repro__store_exec(s, "ROLLBACK", NULL, "rollback");
        return rc;
    }
    if (id)
        *id = cid;
    return REPRO_OK;
}

/* ---- loading: every string and array an allocation of its own ---------- */

/* A copy of column col's text (NULL for NULL) into *out; REPRO_E_NOMEM. */
static int dup_col(sqlite3_stmt *st, int col, const char **out)
{
    const char *v = col_text(st, col);
    *out = NULL;
    if (v == NULL)
        return REPRO_OK;
    *out = repro_strdup(v);
    return *out ? REPRO_OK : REPRO_E_NOMEM;
}

/* Grows *arr (of elem bytes each) to hold n + 1 elements, zeroing the new
 * one. */
static int grow(void *arr, size_t n, size_t elem)
{
    void **p = arr;
    void *next = repro_realloc(*p, (n + 1) * elem);
    if (next == NULL)
        return REPRO_E_NOMEM;
    memset((char *)next + n * elem, 0, elem);
    *p = next;
    return REPRO_OK;
}

/* Steps st once more: REPRO_OK at SQLITE_ROW (*more = 1) or SQLITE_DONE
 * (*more = 0), else a store error naming what. */
static int next_row(struct sqlite_store *s, sqlite3_stmt *st, int *more, struct repro_error *err,
                    const char *what)
{
    int step = sqlite3_step(st);
    *more = step == SQLITE_ROW;
    if (step == SQLITE_ROW || step == SQLITE_DONE)
        return REPRO_OK;
    return repro__store_db_error(s, err, what);
}

/* One row of a crash's part into c; REPRO_OK, REPRO_E_NOMEM, or
 * REPRO_E_MALFORMED (err set) for a row that does not fit c. */
typedef int (*part_fn)(sqlite3_stmt *st, struct repro_store_crash *c, int64_t id,
                       struct repro_error *err);

/* Runs sql (its ?1 bound to crash id) and hands every row to fn. */
static int load_part(struct sqlite_store *s, const char *sql, int64_t id,
                     struct repro_store_crash *c, part_fn fn, const char *what,
                     struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc, more = 0;

    if ((rc = prep(s, sql, &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, id);
    while ((rc = next_row(s, st, &more, err, what)) == REPRO_OK && more)
        if ((rc = fn(st, c, id, err)) != REPRO_OK)
            break;
    sqlite3_finalize(st);
    return rc;
}

static int module_part(sqlite3_stmt *st, struct repro_store_crash *c, int64_t id,
                       struct repro_error *err)
{
    struct repro_store_crash_module *mods = (struct repro_store_crash_module *)c->modules, *m;
    int rc = grow(&mods, c->n_modules, sizeof *mods);

    (void)id, (void)err;
    if (rc)
        return rc;
    c->modules = mods;
    m = &mods[c->n_modules++];
    m->start = (uint64_t)sqlite3_column_int64(st, 1);
    m->end = (uint64_t)sqlite3_column_int64(st, 2);
    m->load_bias = (uint64_t)sqlite3_column_int64(st, 3);
    if ((rc = dup_col(st, 0, &m->path)) == REPRO_OK)
        rc = dup_col(st, 4, &m->build_id);
    return rc;
}

static int thread_part(sqlite3_stmt *st, struct repro_store_crash *c, int64_t id,
                       struct repro_error *err)
{
    struct repro_store_crash_thread *ths = (struct repro_store_crash_thread *)c->threads, *t;
    int rc = grow(&ths, c->n_threads, sizeof *ths);

    (void)id, (void)err;
    if (rc)
        return rc;
    c->threads = ths;
    t = &ths[c->n_threads++];
    t->tid = sqlite3_column_int(st, 0);
    t->crashed = sqlite3_column_int(st, 2);
    t->partial = sqlite3_column_int(st, 4);
    if ((rc = dup_col(st, 1, &t->name)) == REPRO_OK)
        rc = dup_col(st, 3, &t->registers);
    return rc;
}

static int frame_part(sqlite3_stmt *st, struct repro_store_crash *c, int64_t id,
                      struct repro_error *err)
{
    int ti = sqlite3_column_int(st, 0), mi = sqlite3_column_int(st, 2), rc;
    struct repro_store_crash_thread *t;
    struct repro_store_crash_frame *frames, *f;

    if (ti < 0 || (size_t)ti >= c->n_threads)
        return repro_error_set(err, REPRO_E_MALFORMED, "crash %lld: frame of unknown thread %d",
                               (long long)id, ti);
    if (sqlite3_column_type(st, 2) != SQLITE_NULL && (mi < 0 || (size_t)mi >= c->n_modules))
        return repro_error_set(err, REPRO_E_MALFORMED, "crash %lld: frame of unknown module %d",
                               (long long)id, mi);
    t = (struct repro_store_crash_thread *)&c->threads[ti];
    frames = (struct repro_store_crash_frame *)t->frames;
    if ((rc = grow(&frames, t->n_frames, sizeof *frames)) != REPRO_OK)
        return rc;
    t->frames = frames;
    f = &frames[t->n_frames++];
    f->pc = (uint64_t)sqlite3_column_int64(st, 1);
    f->module = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : mi;
    f->offset = (uint64_t)sqlite3_column_int64(st, 3);
    f->line = sqlite3_column_int(st, 6);
    f->column = sqlite3_column_int(st, 7);
    f->inlined = sqlite3_column_int(st, 8);
    if ((rc = dup_col(st, 4, &f->function)) == REPRO_OK)
        rc = dup_col(st, 5, &f->file);
    return rc;
}

/* Parses stored address text (inet_pton); unparsable text leaves zeros. */
static void ip_from_text(int family, const char *text, uint8_t out[16])
{
    memset(out, 0, 16);
    if (text)
        inet_pton(family == 6 ? AF_INET6 : AF_INET, text, out);
}

static int conn_part(sqlite3_stmt *st, struct repro_store_crash *c, int64_t id,
                     struct repro_error *err)
{
    struct repro_store_crash_conn *conns = (struct repro_store_crash_conn *)c->conns, *k;
    int rc = grow(&conns, c->n_conns, sizeof *conns);

    (void)id, (void)err;
    if (rc)
        return rc;
    c->conns = conns;
    k = &conns[c->n_conns++];
    k->fd = sqlite3_column_int(st, 0);
    k->family = sqlite3_column_int(st, 1);
    ip_from_text(k->family, col_text(st, 2), k->local_ip);
    k->local_port = (uint16_t)sqlite3_column_int(st, 3);
    ip_from_text(k->family, col_text(st, 4), k->remote_ip);
    k->remote_port = (uint16_t)sqlite3_column_int(st, 5);
    k->state = sqlite3_column_int(st, 6);
    return REPRO_OK;
}

/* Modules, threads, frames (of threads already loaded), connections. */
static int load_parts(struct sqlite_store *s, int64_t id, struct repro_store_crash *c,
                      struct repro_error *err)
{
    int rc;

    if ((rc = load_part(s,
                        "SELECT path, start, end, load_bias, build_id FROM crash_modules"
                        " WHERE crash_id = ? ORDER BY idx",
                        id, c, module_part, "cannot load crash modules", err)) ||
        (rc = load_part(s,
                        "SELECT tid, name, crashed, registers, partial FROM crash_threads"
                        " WHERE crash_id = ? ORDER BY idx",
                        id, c, thread_part, "cannot load crash threads", err)) ||
        (rc = load_part(s,
                        "SELECT thread_idx, pc, module_idx, offset, function, file, line,"
                        " column, inlined FROM crash_frames WHERE crash_id = ?"
                        " ORDER BY thread_idx, idx",
                        id, c, frame_part, "cannot load crash frames", err)))
        return rc;
    return load_part(s,
                     "SELECT fd, family, local_ip, local_port, remote_ip, remote_port, state"
                     " FROM crash_connections WHERE crash_id = ? ORDER BY rowid",
                     id, c, conn_part, "cannot load crash connections", err);
}

static int load_head(sqlite3_stmt *st, struct repro_store_crash *c)
{
    int rc;

    c->time_us = sqlite3_column_int64(st, 0);
    c->pid = sqlite3_column_int(st, 1);
    c->tid = sqlite3_column_int(st, 2);
    c->signo = sqlite3_column_int(st, 7);
    c->si_code = sqlite3_column_int(st, 8);
    c->fault_address = (uint64_t)sqlite3_column_int64(st, 9);
    c->partial = sqlite3_column_int(st, 11);
    if ((rc = dup_col(st, 3, &c->executable)) || (rc = dup_col(st, 4, &c->cmdline)) ||
        (rc = dup_col(st, 5, &c->service)) || (rc = dup_col(st, 6, &c->hostname)) ||
        (rc = dup_col(st, 10, &c->source)) || (rc = dup_col(st, 12, &c->partial_reason)) ||
        (rc = dup_col(st, 13, &c->signature)) || (rc = dup_col(st, 14, &c->signal)) ||
        (rc = dup_col(st, 15, &c->record_key)))
        return rc;
    return REPRO_OK;
}

int repro__sqlite_crash_get(void *impl, int64_t id, struct repro_store_crash **out,
                            struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    struct repro_store_crash *c = NULL;
    int rc, more = 0;

    *out = NULL;
    if ((rc = prep(s, "SELECT time_us, pid, tid, executable, cmdline, service, hostname, signo,"
                      " si_code, fault_address, source, partial, partial_reason, signature,"
                      " signal, record_key FROM crashes WHERE id = ?", &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = next_row(s, st, &more, err, "cannot load a crash");
    if (rc == REPRO_OK && !more)
        rc = repro_error_set(err, REPRO_E_NOTFOUND, "no crash %lld in database '%s'",
                             (long long)id, s->path);
    if (rc == REPRO_OK && (c = repro_calloc(1, sizeof *c)) == NULL)
        rc = REPRO_E_NOMEM;
    if (rc == REPRO_OK)
        rc = load_head(st, c);
    sqlite3_finalize(st);
    if (rc == REPRO_OK)
        rc = load_parts(s, id, c, err);
    if (rc != REPRO_OK) {
        repro_error_set(err, rc, "cannot load crash %lld: %s", (long long)id, repro_strerror(rc));
        repro_store_crash_free(c);
        return rc;
    }
    *out = c;
    return REPRO_OK;
}

int repro__sqlite_crash_ids(void *impl, int (*fn)(void *ctx, int64_t id), void *ctx,
                            struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT id FROM crashes ORDER BY id", &st, err), more = 0;

    while (rc == REPRO_OK &&
           (rc = next_row(s, st, &more, err, "cannot list crashes")) == REPRO_OK && more)
        rc = fn(ctx, sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return rc;
}

int repro__sqlite_crash_in_flight(void *impl, int64_t crash_id,
                                  int (*fn)(void *ctx, int64_t exchange_id), void *ctx,
                                  struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int more = 0;
    int rc = prep(s, REPRO__SQLITE_IN_FLIGHT_SQL, &st, err);

    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, crash_id);
    while ((rc = next_row(s, st, &more, err, "cannot find the requests in flight")) == REPRO_OK &&
           more)
        if ((rc = fn(ctx, sqlite3_column_int64(st, 0))) != 0)
            break;
    sqlite3_finalize(st);
    return rc;
}

int repro__sqlite_crash_group(void *impl, const char *signature, int64_t *count,
                              int64_t *first_us, int64_t *last_us, struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *st = NULL;
    int rc;

    if ((rc = prep(s, "SELECT count(*), min(time_us), max(time_us) FROM crashes WHERE signature = ?",
                   &st, err)))
        return rc;
    sqlite3_bind_text(st, 1, signature, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 0);
        if (*count > 0) {
            *first_us = sqlite3_column_int64(st, 1);
            *last_us = sqlite3_column_int64(st, 2);
        }
    } else {
        rc = repro__store_db_error(s, err, "cannot group crashes");
    }
    sqlite3_finalize(st);
    return rc;
}

int repro__sqlite_crash_set_symbols(void *impl, int64_t id, const struct repro_store_crash *c,
                                    struct repro_error *err)
{
    struct sqlite_store *s = impl;
    sqlite3_stmt *del = NULL, *sig = NULL;
    int rc;

    if ((rc = repro__store_flush(s, err)) != 0 ||
        (rc = repro__store_exec(s, "BEGIN IMMEDIATE", err, "cannot update a crash")) != 0)
        return rc;
    /* Symbolization may expand inlined frames: the frames are rewritten. */
    rc = prep(s, "DELETE FROM crash_frames WHERE crash_id = ?", &del, err);
    if (rc == REPRO_OK) {
        sqlite3_bind_int64(del, 1, id);
        rc = repro__store_step(s, del, err, "cannot update crash frames");
    }
    if (rc == REPRO_OK)
        rc = insert_frames(s, c, id, err);
    if (rc == REPRO_OK)
        rc = prep(s, "UPDATE crashes SET signature=?, symbolized_us=? WHERE id=?", &sig, err);
    if (rc == REPRO_OK) {
        bind_text(sig, 1, c->signature);
        sqlite3_bind_int64(sig, 2, repro_wall_us());
        sqlite3_bind_int64(sig, 3, id);
        rc = repro__store_step(s, sig, err, "cannot update a crash");
    }
    sqlite3_finalize(del);
    sqlite3_finalize(sig);
    if (rc == REPRO_OK)
        rc = repro__store_exec(s, "COMMIT", err, "cannot commit a crash update");
    if (rc != REPRO_OK)
        repro__store_exec(s, "ROLLBACK", NULL, "rollback");
    return rc;
}
