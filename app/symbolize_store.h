/*
 * app/symbolize_store: symbolize stored crashes and store the result —
 * `repro symbolize`, and what `repro run` and `repro ingest` do right
 * after storing a crash when the debug information is at hand.
 */
#ifndef REPRO_APP_SYMBOLIZE_STORE_H
#define REPRO_APP_SYMBOLIZE_STORE_H

#include "repro/store.h"

#include <stdio.h>

/*
 * Loads crashes ids[0..n_ids) (every stored crash when ids is NULL),
 * symbolizes them (debug files also looked up under dirs[0..n_dirs),
 * borrowed for the call) and stores frames and signature, unless the new
 * result is worse than the stored one (fewer frames with file:line or a
 * function) and force is 0: then the stored symbols stay. A line per crash
 * goes to log ("repro: crash N: X of Y frames symbolized (Z with
 * file:line), signature S; missing: ..." or "kept the earlier symbols")
 * unless log is NULL. Returns REPRO_OK or the first
 * error (REPRO_E_NOTFOUND for an unknown id, store errors, REPRO_E_NOMEM);
 * crashes before it stay symbolized.
 */
int repro_app_symbolize_crashes(struct repro_store *store, const int64_t *ids, size_t n_ids,
                                const char *const *dirs, size_t n_dirs, int force, FILE *log,
                                struct repro_error *err);

#endif
