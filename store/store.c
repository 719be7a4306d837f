/*
 * The store's public entry points: each checks what it can and dispatches
 * through the handle's table of operations (struct repro_store_ops) to the
 * backend. Nothing here speaks SQL; the SQLite backend lives in
 * store/sqlite_*.c. An operation a backend leaves NULL fails with
 * REPRO_E_UNSUPPORTED, naming the backend.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

struct repro_store {
    const struct repro_store_ops *ops;
    void *impl;
};

static int unsupported(const struct repro_store *s, const char *what, struct repro_error *err)
{
    return repro_error_set(err, REPRO_E_UNSUPPORTED, "cannot %s: the %s store does not support it",
                           what, s->ops->name);
}

#define DISPATCH(s, op, what, ...)                                          \
    ((s)->ops->op ? (s)->ops->op((s)->impl, __VA_ARGS__) : unsupported((s), (what), err))

int repro_store_open_with(const struct repro_store_ops *ops, const char *path, int flags,
                          struct repro_store **out, struct repro_error *err)
{
    struct repro_store *s;
    int rc;

    *out = NULL;
    s = repro_calloc(1, sizeof *s);
    if (s == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot open database '%s': out of memory",
                               path);
    s->ops = ops;
    rc = ops->open(path, flags, &s->impl, err);
    if (rc != REPRO_OK) {
        repro_free(s);
        return rc;
    }
    *out = s;
    return REPRO_OK;
}

int repro_store_open(const char *path, int flags, struct repro_store **out,
                     struct repro_error *err)
{
    return repro_store_open_with(&repro_store_sqlite_ops, path, flags, out, err);
}

const struct repro_store_ops *repro_store_backend(const struct repro_store *s)
{
    return s->ops;
}

void repro_store_close(struct repro_store *s)
{
    if (s == NULL)
        return;
    if (s->ops->close)
        s->ops->close(s->impl);
    repro_free(s);
}

void repro_store_set_batch(struct repro_store *s, unsigned rows)
{
    if (s->ops->set_batch)
        s->ops->set_batch(s->impl, rows);
}

int repro_store_flush(struct repro_store *s, struct repro_error *err)
{
    return s->ops->flush ? s->ops->flush(s->impl, err) : REPRO_OK;
}

uint64_t repro_store_sync(struct repro_store *s)
{
    uint64_t next_ns = 0;

    if (s->ops->sync)
        s->ops->sync(s->impl, &next_ns);
    return next_ns;
}

int repro_store_bulk_begin(struct repro_store *s, struct repro_error *err)
{
    return s->ops->bulk_begin ? s->ops->bulk_begin(s->impl, err) : REPRO_OK;
}

int repro_store_bulk_end(struct repro_store *s, struct repro_error *err)
{
    return s->ops->bulk_end ? s->ops->bulk_end(s->impl, err) : REPRO_OK;
}

int repro_store_begin(struct repro_store *s, struct repro_error *err)
{
    return s->ops->begin ? s->ops->begin(s->impl, err) : REPRO_OK;
}

void repro_store_rollback(struct repro_store *s)
{
    if (s->ops->rollback)
        s->ops->rollback(s->impl);
}

void repro_store_set_busy_timeout(struct repro_store *s, unsigned ms)
{
    if (s->ops->set_busy_timeout)
        s->ops->set_busy_timeout(s->impl, ms);
}

int repro_store_prune(struct repro_store *s, const struct repro_store_prune *req,
                      struct repro_store_prune_result *out, struct repro_error *err)
{
    memset(out, 0, sizeof *out);
    return DISPATCH(s, prune, "delete old rows", req, out, err);
}

int repro_store_capture_begin(struct repro_store *s, const struct repro_store_capture *row,
                              int64_t *capture_id, struct repro_error *err)
{
    return DISPATCH(s, capture_begin, "record a capture", row, capture_id, err);
}

int repro_store_capture_end(struct repro_store *s, int64_t capture_id,
                            const struct repro_store_capture_end *row, struct repro_error *err)
{
    return DISPATCH(s, capture_end, "finish a capture", capture_id, row, err);
}

int repro_store_conn_insert(struct repro_store *s, const struct repro_store_conn *row,
                            int64_t *id, struct repro_error *err)
{
    return DISPATCH(s, conn_insert, "store a connection", row, id, err);
}

int repro_store_conn_update(struct repro_store *s, const struct repro_store_conn *row,
                            struct repro_error *err)
{
    return DISPATCH(s, conn_update, "update a connection", row, err);
}

int repro_store_exchange_insert(struct repro_store *s, const struct repro_store_exchange *row,
                                int64_t *id, struct repro_error *err)
{
    return DISPATCH(s, exchange_insert, "store an exchange", row, 1, id, err);
}

int repro_store_exchange_insert_many(struct repro_store *s,
                                     const struct repro_store_exchange *rows, size_t n,
                                     int64_t *first_id, struct repro_error *err)
{
    return DISPATCH(s, exchange_insert, "store exchanges", rows, n, first_id, err);
}

int repro_store_exchanges(struct repro_store *s, const struct repro_exchange_filter *f,
                          int with_bodies, repro_exchange_fn fn, void *ctx,
                          struct repro_error *err)
{
    return DISPATCH(s, exchanges, "query exchanges", f, with_bodies, fn, ctx, err);
}

/* Checks the row invariant every backend relies on. */
static int crash_row_valid(const struct repro_store_crash *row, struct repro_error *err)
{
    size_t i, k;

    for (i = 0; i < row->n_threads; i++)
        for (k = 0; k < row->threads[i].n_frames; k++) {
            int m = row->threads[i].frames[k].module;
            if (m < -1 || (m >= 0 && (size_t)m >= row->n_modules))
                return repro_error_set(err, REPRO_E_MALFORMED,
                                       "cannot store a crash: thread %zu frame %zu names module "
                                       "%d of %zu",
                                       i, k, m, row->n_modules);
        }
    return REPRO_OK;
}

int repro_store_crash_add(struct repro_store *s, const struct repro_store_crash *row, int64_t *id,
                          struct repro_error *err)
{
    int rc = crash_row_valid(row, err);
    return rc ? rc : DISPATCH(s, crash_insert, "store a crash", row, id, err);
}

int repro_store_crash_get(struct repro_store *s, int64_t id, struct repro_store_crash **out,
                          struct repro_error *err)
{
    *out = NULL;
    return DISPATCH(s, crash_get, "load a crash", id, out, err);
}

int repro_store_crash_ids(struct repro_store *s, int (*fn)(void *ctx, int64_t id), void *ctx,
                          struct repro_error *err)
{
    return DISPATCH(s, crash_ids, "list crashes", fn, ctx, err);
}

int repro_store_crash_in_flight(struct repro_store *s, int64_t crash_id,
                                int (*fn)(void *ctx, int64_t exchange_id), void *ctx,
                                struct repro_error *err)
{
    return DISPATCH(s, crash_in_flight, "find the requests in flight", crash_id, fn, ctx, err);
}

int repro_store_crash_group(struct repro_store *s, const char *signature, int64_t *count,
                            int64_t *first_us, int64_t *last_us, struct repro_error *err)
{
    *count = 0;
    *first_us = *last_us = -1;
    if (signature == NULL)
        return REPRO_OK;
    return DISPATCH(s, crash_group, "group crashes", signature, count, first_us, last_us, err);
}

int repro_store_crash_set_symbols(struct repro_store *s, int64_t id,
                                  const struct repro_store_crash *row, struct repro_error *err)
{
    int rc = crash_row_valid(row, err);
    return rc ? rc : DISPATCH(s, crash_set_symbols, "update a crash", id, row, err);
}

void repro_store_crash_free(struct repro_store_crash *row)
{
    size_t i, k;

    if (row == NULL)
        return;
    /* Every string and array of a loaded row is an allocation of its own
     * (struct repro_store_ops: crash_get). */
    repro_free((void *)row->executable);
    repro_free((void *)row->cmdline);
    repro_free((void *)row->service);
    repro_free((void *)row->hostname);
    repro_free((void *)row->signal);
    repro_free((void *)row->source);
    repro_free((void *)row->partial_reason);
    repro_free((void *)row->signature);
    repro_free((void *)row->record_key);
    for (i = 0; i < row->n_modules; i++) {
        repro_free((void *)row->modules[i].path);
        repro_free((void *)row->modules[i].build_id);
    }
    repro_free((void *)row->modules);
    for (i = 0; i < row->n_threads; i++) {
        const struct repro_store_crash_thread *t = &row->threads[i];
        for (k = 0; k < t->n_frames; k++) {
            repro_free((void *)t->frames[k].function);
            repro_free((void *)t->frames[k].file);
        }
        repro_free((void *)t->frames);
        repro_free((void *)t->name);
        repro_free((void *)t->registers);
    }
    repro_free((void *)row->threads);
    repro_free((void *)row->conns);
    repro_free(row);
}

int repro_store_replay_run_begin(struct repro_store *s, const struct repro_store_replay_run *row,
                                 int64_t *id, struct repro_error *err)
{
    return DISPATCH(s, replay_run_begin, "start a replay run", row, id, err);
}

int repro_store_replay_run_end(struct repro_store *s, int64_t id,
                               const struct repro_store_replay_run_end *row,
                               struct repro_error *err)
{
    return DISPATCH(s, replay_run_end, "end a replay run", id, row, err);
}

int repro_store_replay_result_insert(struct repro_store *s,
                                     const struct repro_store_replay_result *row,
                                     struct repro_error *err)
{
    return DISPATCH(s, replay_result_insert, "store a replay result", row, err);
}

int repro_store_replay_runs(struct repro_store *s, int64_t id, repro_replay_run_fn fn, void *ctx,
                            struct repro_error *err)
{
    return DISPATCH(s, replay_runs, "list replay runs", id, fn, ctx, err);
}

int repro_store_replay_results(struct repro_store *s, int64_t run_id, int findings_only,
                               repro_replay_result_row_fn fn, void *ctx, struct repro_error *err)
{
    return DISPATCH(s, replay_results, "list replay results", run_id, findings_only, fn, ctx, err);
}

int repro_store_captures(struct repro_store *s, repro_capture_fn fn, void *ctx,
                         struct repro_error *err)
{
    return DISPATCH(s, captures, "list captures", fn, ctx, err);
}

int repro_store_capture_find(struct repro_store *s, const struct repro_store_capture *row,
                             int64_t *id, struct repro_error *err)
{
    return DISPATCH(s, capture_find, "look a capture up", row, id, err);
}
