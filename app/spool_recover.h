/*
 * app/spool_recover: the live agent's spool across crashes (docs/capture.md,
 * "Deferral"). Each agent spools to "<db>.spool.<capture id>.<pid>" next
 * to the database; a spool left behind (kill -9, a power cut, a run that failed
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
    uint64_t spools;         /* recovered and removed */
    uint64_t packets, bytes; /* fed to the session (bytes: caplen) */
    uint64_t skipped_bytes;  /* damaged batches and unreadable tails */
};

/* The spool's file name (no directory) of this process's capture
 * capture_id on database db: "<db>.spool.<capture_id>.<pid>". */
void repro_app_spool_name(const char *db, int64_t capture_id, char *out, size_t out_len);

/* Feeds every unread batch of every spool that agents on db left behind
 * to cap (link type dlt; capture into_id), oldest capture first, in packet
 * order; once one is walked, waits for writer to commit what it got,
 * removes it, and ends the killed capture's row (still "running") as
 * "failed", saying so. A spool another agent holds (flock) is left alone;
 * one of another link type, or one that cannot be read, is named on log
 * and left in place; SIGINT or SIGTERM stop the recovery (the rest is
 * left for the next capture). Progress and what was skipped go to log
 * (may be NULL). Returns 0, or the session's or the writer's error (err
 * set; the spool being read is kept). */
int repro_app_recover_spools(const char *db, struct repro_capture *cap, int dlt, int64_t into_id,
                             struct repro_store_writer *writer, FILE *log,
                             struct repro_app_recovery *out, struct repro_error *err);

#endif
