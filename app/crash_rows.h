/*
 * app/crash_rows: crash records (struct repro_crash, repro/crash.h) to the
 * store's crash rows and back. Producers (the supervisor, ingest, core
 * import) store a crash with repro_app_store_crash(); symbolize and show
 * load one with repro_app_load_crash().
 */
#ifndef REPRO_APP_CRASH_ROWS_H
#define REPRO_APP_CRASH_ROWS_H

#include "repro/crash.h"
#include "repro/store.h"

/* A crash as a store row, with the arrays the row points to. The row's
 * strings borrow from the crash it was made from: valid while that crash
 * is unchanged. */
struct repro_app_crash_row {
    struct repro_store_crash row;
    char signal[16];
    struct repro_store_crash_module *modules;
    struct repro_store_crash_thread *threads;
    struct repro_store_crash_frame *frames; /* every thread's, one after another */
    struct repro_store_crash_conn *conns;
};

/* Makes r from c (borrowed, see above). Release r with
 * repro_app_crash_row_release() whatever this returns. REPRO_E_NOMEM. */
int repro_app_crash_row_init(struct repro_app_crash_row *r, const struct repro_crash *c,
                             struct repro_error *err);
void repro_app_crash_row_release(struct repro_app_crash_row *r);

/*
 * Checks c's invariants (repro_crash_validate: REPRO_E_MALFORMED), and
 * stores it whole in one transaction; *id (optional) gets its id. With
 * c->record_key set a crash stored before under that key is not stored
 * again (*id gets its id). Errors of repro_store_crash_add. The same
 * thread-safety as the store handle.
 */
int repro_app_store_crash(struct repro_store *s, const struct repro_crash *c, int64_t *id,
                          struct repro_error *err);
/* Loads crash id as a record: *out transferred (repro_crash_free).
 * REPRO_E_NOTFOUND, REPRO_E_NOMEM, store errors. */
int repro_app_load_crash(struct repro_store *s, int64_t id, struct repro_crash **out,
                         struct repro_error *err);
/* Replaces crash id's frames and signature with c's (after
 * symbolization). */
int repro_app_update_crash_symbols(struct repro_store *s, int64_t id, const struct repro_crash *c,
                                   struct repro_error *err);

#endif
