/*
 * app/symbolize_store: stored crash -> struct repro_crash (app/crash_rows)
 * -> symbolize/ -> frames and signature back into the store. One libdwfl
 * session serves every crash of a call, so modules shared between crashes
 * are read once.
 */
#include "app/symbolize_store.h"

#include "app/crash_rows.h"
#include "repro/crash.h"
#include "repro/symbolize.h"

#include <string.h>

struct sym_ctx {
    struct repro_store *store;
    struct repro_sym_session *session;
    const char *const *dirs;
    size_t n_dirs;
    struct repro_error *err;
    FILE *log;
    int force;
};

/* How well a crash is symbolized: per physical frame 2 for file:line, 1
 * for a function name alone (a symbol table), 0 for module+offset. */
static size_t quality(const struct repro_crash *c, size_t *with_lines)
{
    size_t q = 0;
    *with_lines = 0;
    for (size_t i = 0; i < c->n_threads; i++)
        for (size_t k = 0; k < c->threads[i].n_frames; k++) {
            const struct repro_crash_frame *f = &c->threads[i].frames[k];
            if (f->inlined)
                continue;
            if (f->file && f->line > 0) {
                q += 2;
                (*with_lines)++;
            } else if (f->function) {
                q += 1;
            }
        }
    return q;
}

static int symbolize_one(void *vctx, int64_t id)
{
    struct sym_ctx *x = vctx;
    struct repro_crash *c = NULL;
    struct repro_crash_sym_report rep;
    int rc = repro_app_load_crash(x->store, id, &c, x->err);

    if (rc)
        return rc;
    size_t old_lines, new_lines, old_q = quality(c, &old_lines);
    rc = repro_crash_symbolize(x->session, c, x->dirs, x->n_dirs, &rep, x->err);
    size_t new_q = rc == REPRO_OK ? quality(c, &new_lines) : 0;
    /* a result is only replaced by a better or equal one: symbolizing
     * again without the debug files must not lose file:line */
    int keep = rc == REPRO_OK && new_q < old_q && !x->force;
    if (rc == REPRO_OK && !keep)
        rc = repro_app_update_crash_symbols(x->store, id, c, x->err);
    if (rc == REPRO_OK && x->log && keep)
        fprintf(x->log,
                "repro: crash %lld: kept the earlier symbols (%zu frames with file:line, now %zu "
                "of %zu)%s%s; --force replaces them\n",
                (long long)id, old_lines, new_lines, rep.n_frames,
                rep.missing[0] ? "; missing: " : "", rep.missing);
    else if (rc == REPRO_OK && x->log)
        fprintf(x->log,
                "repro: crash %lld: %zu of %zu frames symbolized (%zu with file:line), signature "
                "%s%s%s\n",
                (long long)id, rep.n_symbolized, rep.n_frames, new_lines, c->signature,
                rep.missing[0] ? "; missing: " : "", rep.missing);
    repro_crash_free(c);
    return rc;
}

int repro_app_symbolize_crashes(struct repro_store *store, const int64_t *ids, size_t n_ids,
                                const char *const *dirs, size_t n_dirs, int force, FILE *log,
                                struct repro_error *err)
{
    struct repro_sym_options opt;
    struct sym_ctx x;
    size_t i;
    int rc;

    memset(&opt, 0, sizeof opt);
    opt.debug_dirs = dirs;
    opt.n_debug_dirs = n_dirs;
    memset(&x, 0, sizeof x);
    x.store = store;
    x.dirs = dirs;
    x.n_dirs = n_dirs;
    x.err = err;
    x.log = log;
    x.force = force;
    rc = repro_sym_session_new(&x.session, &opt, err);
    if (rc)
        return rc;
    if (ids == NULL)
        rc = repro_store_crash_ids(store, symbolize_one, &x, err);
    for (i = 0; ids != NULL && i < n_ids && rc == REPRO_OK; i++)
        rc = symbolize_one(&x, ids[i]);
    repro_sym_session_free(x.session);
    return rc;
}
