/*
 * app/replay_render: `repro replays` — stored replay runs as text or JSON
 * Lines, and one run's findings with their differences.
 */
#ifndef REPRO_APP_REPLAY_RENDER_H
#define REPRO_APP_REPLAY_RENDER_H

#include "repro/store.h"

#include <stdio.h>

/* Writes the runs (run_id 0: all) to out, one line each; json: JSON Lines.
 * REPRO_E_NOTFOUND for a run that does not exist. */
int repro_app_replay_runs(struct repro_store *s, int64_t run_id, int json, FILE *out,
                          struct repro_error *err);
/* Writes what did not match in run_id: a line per result (exchange,
 * verdict, status, error) and a line per difference under it. */
int repro_app_replay_diff(struct repro_store *s, int64_t run_id, FILE *out,
                          struct repro_error *err);

#endif
