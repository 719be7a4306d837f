/*
 * app/spool_recover: the live agent's spool across crashes (docs/capture.md,
 * "Deferral"). Each agent spools to "<db>.spool.<pid>" next to the
 * database; a spool left behind (kill -9, a power cut, a run that failed
 * with batches unread) is parsed by the next `repro capture -i` on the same
 * database, before its live packets, into that capture.
 */
#ifndef REPRO_APP_SPOOL_RECOVER_H
#define REPRO_APP_SPOOL_RECOVER_H

#include "repro/capture.h"
#include "repro/store.h"

#include <stdio.h>

/* What the recovery found, over every spool left behind. */
struct repro_app_recovery {
    uint64_t spools;                    /* recovered and removed */
    uint64_t packets, bytes;            /* fed to the session (bytes: caplen) */
    uint64_t read_batches;              /* parsed before the agent ended */
    uint64_t skipped_batches;           /* wrong checksum or records */
    uint64_t skipped_bytes;             /* theirs and an unreadable tail */
    uint64_t left;                      /* spools left in place (in use, other link type) */
    struct repro_app_recovered_spool {
        int64_t capture_id;             /* whose spool it was */
        int64_t created_us;             /* when that agent made it */
        uint64_t packets;               /* recovered from it */
    } recovered[16];                    /* the first 16 spools recovered */
    size_t n_recovered;
};

/* The spool's file name (no directory) of this process for database db. */
void repro_app_spool_name(const char *db, char *out, size_t out_len);

/* Feeds every unread batch of every spool that agents on db left behind
 * to cap (link type dlt), in the order written, then removes each. A spool
 * another agent holds (flock) is left alone; one of another link type is
 * left in place with a warning on log; one that cannot be read is named
 * on log and left. Progress and what was skipped go to log (may be NULL).
 * Returns 0, or the session's sink error (err set; the spool being read
 * is kept). */
int repro_app_recover_spools(const char *db, struct repro_capture *cap, int dlt, FILE *log,
                             struct repro_app_recovery *out, struct repro_error *err);

/* Ends the captures rows of the agents whose spools were recovered (out
 * of repro_app_recover_spools) that still say "running" (killed, so they
 * never ended): status "failed", and an error saying how they ended and
 * into which capture (into_id) their spool went. A row that is not a live
 * capture started before its spool, or is no longer running, is left
 * alone. Problems go to log. */
void repro_app_end_recovered(struct repro_store *store, const struct repro_app_recovery *rec,
                             int64_t into_id, FILE *log);

#endif
