/*
 * Crash records in the store (schema version 2, docs/schema.md). A crash is
 * written in one transaction with its modules, threads, frames and open
 * connections, so a reader never sees half a crash. Addresses are unsigned
 * 64-bit values stored in SQLite's signed INTEGER (same bits).
 */
#include "store_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static int prep(struct repro_store *s, const char *sql, sqlite3_stmt **st, struct repro_error *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return repro__store_db_error(s, err, "cannot prepare a crash statement");
    return REPRO_OK;
}

static void bind_text(sqlite3_stmt *st, int col, const char *v)
{
    if (v)
        sqlite3_bind_text(st, col, v, -1, SQLITE_TRANSIENT);
}

static void ip_text(char *out, size_t n, int family, const uint8_t *ip)
{
    inet_ntop(family == 6 ? AF_INET6 : AF_INET, ip, out, (socklen_t)n);
}

/* Inserts every frame of every thread of c. */
static int insert_frames(struct repro_store *s, const struct repro_crash *c, int64_t id,
                         struct repro_error *err)
{
    sqlite3_stmt *frm = NULL;
    size_t i, k;
    int rc = prep(s, "INSERT INTO crash_frames(crash_id, thread_idx, idx, pc, module_idx, offset,"
                     " function, file, line, column, inlined) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                  &frm, err);

    for (i = 0; i < c->n_threads && rc == REPRO_OK; i++) {
        const struct repro_crash_thread *t = &c->threads[i];
        for (k = 0; k < t->n_frames && rc == REPRO_OK; k++) {
            const struct repro_crash_frame *f = &t->frames[k];
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

static int insert_parts(struct repro_store *s, const struct repro_crash *c, int64_t id,
                        struct repro_error *err)
{
    sqlite3_stmt *mod = NULL, *thr = NULL, *con = NULL;
    size_t i;
    int rc;

    if ((rc = prep(s, "INSERT INTO crash_modules VALUES (?,?,?,?,?,?,?)", &mod, err)) ||
        (rc = prep(s, "INSERT INTO crash_threads VALUES (?,?,?,?,?,?,?)", &thr, err)) ||
        (rc = prep(s, "INSERT INTO crash_connections VALUES (?,?,?,?,?,?,?,?)", &con, err)))
        goto out;
    for (i = 0; i < c->n_modules && rc == REPRO_OK; i++) {
        const struct repro_crash_module *m = &c->modules[i];
        sqlite3_bind_int64(mod, 1, id);
        sqlite3_bind_int64(mod, 2, (sqlite3_int64)i);
        bind_text(mod, 3, m->path);
        sqlite3_bind_int64(mod, 4, (sqlite3_int64)m->start);
        sqlite3_bind_int64(mod, 5, (sqlite3_int64)m->end);
        sqlite3_bind_int64(mod, 6, (sqlite3_int64)m->load_bias);
        bind_text(mod, 7, m->build_id[0] ? m->build_id : NULL);
        rc = repro__store_step(s, mod, err, "cannot store a crash module");
    }
    for (i = 0; i < c->n_threads && rc == REPRO_OK; i++) {
        const struct repro_crash_thread *t = &c->threads[i];
        sqlite3_bind_int64(thr, 1, id);
        sqlite3_bind_int64(thr, 2, (sqlite3_int64)i);
        sqlite3_bind_int(thr, 3, t->tid);
        bind_text(thr, 4, t->name);
        sqlite3_bind_int(thr, 5, t->crashed);
        bind_text(thr, 6, t->registers);
        sqlite3_bind_int(thr, 7, t->partial);
        rc = repro__store_step(s, thr, err, "cannot store a crash thread");
    }
    if (rc == REPRO_OK)
        rc = insert_frames(s, c, id, err);
    for (i = 0; i < c->n_conns && rc == REPRO_OK; i++) {
        const struct repro_crash_conn *k2 = &c->conns[i];
        char a[64], b[64];
        ip_text(a, sizeof a, k2->family, k2->local_ip);
        ip_text(b, sizeof b, k2->family, k2->remote_ip);
        sqlite3_bind_int64(con, 1, id);
        sqlite3_bind_int(con, 2, k2->fd);
        sqlite3_bind_int(con, 3, k2->family);
        bind_text(con, 4, a);
        sqlite3_bind_int(con, 5, k2->local_port);
        bind_text(con, 6, b);
        sqlite3_bind_int(con, 7, k2->remote_port);
        sqlite3_bind_int(con, 8, k2->state);
        rc = repro__store_step(s, con, err, "cannot store a crash connection");
    }
out:
    sqlite3_finalize(mod);
    sqlite3_finalize(thr);
    sqlite3_finalize(con);
    return rc;
}

int repro_store_crash_insert(struct repro_store *s, const struct repro_crash *c, int64_t *id,
                             struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    char sigbuf[16];
    int64_t cid;
    int rc = repro_crash_validate(c, err);

    if (rc)
        return rc;
    if ((rc = repro_store_flush(s, err)) != 0 ||
        (rc = repro__store_exec(s, "BEGIN IMMEDIATE", err, "cannot store a crash")) != 0)
        return rc;
    if (c->record_key != NULL) {
        /* Stored before (an ingest that died between commit and unlink)? */
        rc = prep(s, "SELECT id FROM crashes WHERE record_key = ?", &st, err);
        if (rc == REPRO_OK) {
            sqlite3_bind_text(st, 1, c->record_key, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW) {
                cid = sqlite3_column_int64(st, 0);
                sqlite3_finalize(st);
                repro__store_exec(s, "COMMIT", NULL, "commit");
                if (id)
                    *id = cid;
                return REPRO_OK;
            }
            sqlite3_finalize(st);
            st = NULL;
        }
    }
    rc = prep(s,
              "INSERT INTO crashes(time_us, pid, tid, executable, cmdline, service, hostname,"
              " signo, signal, si_code, fault_address, source, partial, partial_reason, signature,"
              " record_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
              &st, err);
    if (rc == REPRO_OK) {
        sqlite3_bind_int64(st, 1, c->time_us);
        sqlite3_bind_int(st, 2, c->pid);
        sqlite3_bind_int(st, 3, c->tid);
        bind_text(st, 4, c->executable);
        bind_text(st, 5, c->cmdline);
        bind_text(st, 6, c->service);
        bind_text(st, 7, c->hostname);
        sqlite3_bind_int(st, 8, c->signo);
        bind_text(st, 9, repro_signal_name(c->signo, sigbuf, sizeof sigbuf));
        sqlite3_bind_int(st, 10, c->si_code);
        sqlite3_bind_int64(st, 11, (sqlite3_int64)c->fault_address);
        bind_text(st, 12, c->source[0] ? c->source : "unknown");
        sqlite3_bind_int(st, 13, c->partial);
        bind_text(st, 14, c->partial ? c->partial_reason : NULL);
        bind_text(st, 15, c->signature);
        bind_text(st, 16, c->record_key);
        rc = repro__store_step(s, st, err, "cannot store a crash");
    }
    sqlite3_finalize(st);
    if (rc == REPRO_OK) {
        cid = sqlite3_last_insert_rowid(s->db);
        rc = insert_parts(s, c, cid, err);
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

static const char *col_text(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NULL
                                                       : (const char *)sqlite3_column_text(st, col);
}

static int load_parts(struct repro_store *s, int64_t id, struct repro_crash *c,
                      struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc, step;

    if ((rc = prep(s, "SELECT path, start, end, load_bias, build_id FROM crash_modules"
                      " WHERE crash_id = ? ORDER BY idx", &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, id);
    while (rc == REPRO_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = repro_crash_add_module(c, col_text(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
                                    (uint64_t)sqlite3_column_int64(st, 2),
                                    (uint64_t)sqlite3_column_int64(st, 3), col_text(st, 4));
    sqlite3_finalize(st);
    if (rc)
        return rc;
    if ((rc = prep(s, "SELECT tid, name, crashed, registers, partial FROM crash_threads"
                      " WHERE crash_id = ? ORDER BY idx", &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, id);
    while (rc == REPRO_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct repro_crash_thread *t = repro_crash_add_thread(
            c, sqlite3_column_int(st, 0), col_text(st, 1), sqlite3_column_int(st, 2));
        if (t == NULL)
            rc = REPRO_E_NOMEM;
        else {
            t->partial = sqlite3_column_int(st, 4);
            rc = repro_crash_set_str(&t->registers, col_text(st, 3));
        }
    }
    sqlite3_finalize(st);
    if (rc)
        return rc;
    if ((rc = prep(s, "SELECT thread_idx, pc, module_idx, offset, function, file, line, column,"
                      " inlined FROM crash_frames WHERE crash_id = ? ORDER BY thread_idx, idx",
                   &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, id);
    while (rc == REPRO_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int ti = sqlite3_column_int(st, 0);
        struct repro_crash_thread *t;
        struct repro_crash_frame *f;
        if (ti < 0 || (size_t)ti >= c->n_threads) {
            rc = repro_error_set(err, REPRO_E_MALFORMED, "crash %lld: frame of unknown thread %d",
                                 (long long)id, ti);
            break;
        }
        t = &c->threads[ti];
        rc = repro_crash_add_frame(t, (uint64_t)sqlite3_column_int64(st, 1));
        if (rc)
            break;
        f = &t->frames[t->n_frames - 1];
        f->module = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 2);
        f->offset = (uint64_t)sqlite3_column_int64(st, 3);
        rc = repro_crash_set_str(&f->function, col_text(st, 4));
        if (rc == REPRO_OK)
            rc = repro_crash_set_str(&f->file, col_text(st, 5));
        f->line = sqlite3_column_int(st, 6);
        f->column = sqlite3_column_int(st, 7);
        f->inlined = sqlite3_column_int(st, 8);
    }
    sqlite3_finalize(st);
    if (rc)
        return rc;
    if ((rc = prep(s, "SELECT fd, family, local_ip, local_port, remote_ip, remote_port, state"
                      " FROM crash_connections WHERE crash_id = ? ORDER BY rowid", &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, id);
    while (rc == REPRO_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct repro_crash_conn k;
        memset(&k, 0, sizeof k);
        k.fd = sqlite3_column_int(st, 0);
        k.family = sqlite3_column_int(st, 1);
        inet_pton(k.family == 6 ? AF_INET6 : AF_INET, col_text(st, 2) ? col_text(st, 2) : "",
                  k.local_ip);
        k.local_port = (uint16_t)sqlite3_column_int(st, 3);
        inet_pton(k.family == 6 ? AF_INET6 : AF_INET, col_text(st, 4) ? col_text(st, 4) : "",
                  k.remote_ip);
        k.remote_port = (uint16_t)sqlite3_column_int(st, 5);
        k.state = sqlite3_column_int(st, 6);
        rc = repro_crash_add_conn(c, &k);
    }
    sqlite3_finalize(st);
    if (rc == REPRO_E_NOMEM || rc == REPRO_E_LIMIT)
        repro_error_set(err, rc, "cannot load crash %lld: %s", (long long)id, repro_strerror(rc));
    return rc;
}

int repro_store_crash_load(struct repro_store *s, int64_t id, struct repro_crash **out,
                           struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    struct repro_crash *c;
    int rc;

    *out = NULL;
    if ((rc = prep(s, "SELECT time_us, pid, tid, executable, cmdline, service, hostname, signo,"
                      " si_code, fault_address, source, partial, partial_reason, signature"
                      " FROM crashes WHERE id = ?", &st, err)))
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return repro_error_set(err, REPRO_E_NOTFOUND, "no crash %lld in database '%s'",
                               (long long)id, s->path);
    }
    c = repro_crash_new();
    if (c == NULL) {
        sqlite3_finalize(st);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot load crash %lld: out of memory",
                               (long long)id);
    }
    c->time_us = sqlite3_column_int64(st, 0);
    c->pid = sqlite3_column_int(st, 1);
    c->tid = sqlite3_column_int(st, 2);
    rc = repro_crash_set_str(&c->executable, col_text(st, 3));
    rc |= repro_crash_set_str(&c->cmdline, col_text(st, 4));
    rc |= repro_crash_set_str(&c->service, col_text(st, 5));
    rc |= repro_crash_set_str(&c->hostname, col_text(st, 6));
    c->signo = sqlite3_column_int(st, 7);
    c->si_code = sqlite3_column_int(st, 8);
    c->fault_address = (uint64_t)sqlite3_column_int64(st, 9);
    snprintf(c->source, sizeof c->source, "%s", col_text(st, 10) ? col_text(st, 10) : "");
    c->partial = sqlite3_column_int(st, 11);
    snprintf(c->partial_reason, sizeof c->partial_reason, "%s",
             col_text(st, 12) ? col_text(st, 12) : "");
    rc |= repro_crash_set_str(&c->signature, col_text(st, 13));
    sqlite3_finalize(st);
    if (rc == REPRO_OK)
        rc = load_parts(s, id, c, err);
    if (rc != REPRO_OK) {
        repro_error_set(err, rc, "cannot load crash %lld: %s", (long long)id, repro_strerror(rc));
        repro_crash_free(c);
        return rc;
    }
    *out = c;
    return REPRO_OK;
}

int repro_store_crash_ids(struct repro_store *s, int (*fn)(void *ctx, int64_t id), void *ctx,
                          struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT id FROM crashes ORDER BY id", &st, err), step;

    while (rc == REPRO_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = fn(ctx, sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return rc;
}

int repro_store_crash_in_flight(struct repro_store *s, int64_t crash_id,
                                int (*fn)(void *ctx, int64_t exchange_id), void *ctx,
                                struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s,
                  "SELECT DISTINCT e.id FROM crashes c"
                  " JOIN crash_connections k ON k.crash_id = c.id"
                  " JOIN connections n ON n.client_ip = replace(k.remote_ip, '::ffff:', '')"
                  "  AND n.client_port = k.remote_port"
                  "  AND n.server_ip = replace(k.local_ip, '::ffff:', '')"
                  "  AND n.server_port = k.local_port"
                  " JOIN exchanges e ON e.connection_id = n.id"
                  " WHERE c.id = ?1 AND n.opened_us <= c.time_us"
                  "  AND e.request_first_us <= c.time_us"
                  "  AND (e.response_first_us IS NULL OR e.response_first_us >= c.time_us)"
                  " ORDER BY e.id",
                  &st, err);
    int step;

    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, crash_id);
    while (rc == REPRO_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = fn(ctx, sqlite3_column_int64(st, 0));
    sqlite3_finalize(st);
    return rc;
}

int repro_store_crash_group(struct repro_store *s, const char *signature, int64_t *count,
                            int64_t *first_us, int64_t *last_us, struct repro_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    *count = 0;
    *first_us = *last_us = -1;
    if (signature == NULL)
        return REPRO_OK;
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

int repro_store_crash_update_symbols(struct repro_store *s, int64_t id, const struct repro_crash *c,
                                     struct repro_error *err)
{
    sqlite3_stmt *del = NULL, *sig = NULL;
    int rc;

    if ((rc = repro_store_flush(s, err)) != 0 ||
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
