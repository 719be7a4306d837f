/*
 * app/ingest: `repro ingest` as library calls — a crash spool directory or
 * a core file into the store, each crash symbolized right after it is
 * stored when the debug information is at hand.
 */
#ifndef REPRO_APP_INGEST_H
#define REPRO_APP_INGEST_H

#include "repro/core.h"

#include <stdio.h>

struct repro_app_ingest_result {
    size_t n_records;     /* records found in the directory */
    unsigned stored;      /* crashes stored */
    unsigned partial;     /* of those, partial */
    unsigned damaged;     /* records moved to DIR/damaged/ */
    unsigned unsupported; /* records of an unknown version, left in place */
};

/*
 * Ingests every record of dir into the database db. out (or NULL) gets a
 * line per stored crash ("stored crash N from FILE (SIGSEGV, pid P)"), log
 * (or NULL) warnings, damaged records and symbolization lines. Damage is
 * counted in *res, not an error. Returns REPRO_OK or the first fatal error
 * (REPRO_E_IO: the directory cannot be opened or locked, a record cannot
 * be removed or moved; store errors; REPRO_E_NOMEM) with err set; *res
 * counts what was done before it.
 */
int repro_app_ingest_dir(const char *db, const char *dir, FILE *out, FILE *log,
                         struct repro_app_ingest_result *res, struct repro_error *err);
/*
 * Imports core file core of binary exe (repro_core_import) and stores it;
 * a core that could be read only in part is stored as a partial crash
 * (*partial = 1, the reason on log). Errors of repro_core_import when
 * nothing could be read, and store errors.
 */
int repro_app_ingest_core(const char *db, const char *core, const char *exe, FILE *out,
                          FILE *log, int *partial, struct repro_error *err);

#endif
