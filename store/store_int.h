/*
 * Internals shared by the store's files (never installed).
 */
#ifndef REPRO_STORE_INT_H
#define REPRO_STORE_INT_H

#include "repro/store.h"

#include <sqlite3.h>

enum { ST_BEGIN, ST_COMMIT, ST_CONN_INS, ST_CONN_UPD, ST_EX_INS, ST__COUNT };

struct repro_store {
    sqlite3 *db;
    char path[512];
    sqlite3_stmt *st[ST__COUNT];
    int in_tx;
    unsigned batch, pending;
};

/* Records "WHAT in database 'PATH': sqlite's message" into err. */
int repro__store_db_error(struct repro_store *s, struct repro_error *err, const char *what);
/* Runs SQL without results. */
int repro__store_exec(struct repro_store *s, const char *sql, struct repro_error *err,
                      const char *what);
/* Steps a statement to completion, then resets it and clears its bindings. */
int repro__store_step(struct repro_store *s, sqlite3_stmt *st, struct repro_error *err,
                      const char *what);
/* Opens a batch if none is open; commits it when full. */
int repro__store_batch_row(struct repro_store *s, struct repro_error *err);

#endif
