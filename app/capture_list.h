/*
 * app/capture_list: `repro captures` — the stored captures, so that
 * `--capture N` can be used: source, time range, counts, what was cut.
 */
#ifndef REPRO_APP_CAPTURE_LIST_H
#define REPRO_APP_CAPTURE_LIST_H

#include "repro/store.h"

#include <stdio.h>

/* One line per capture (json: JSON Lines with every counter); *n gets how
 * many there were. */
int repro_app_captures(struct repro_store *s, int json, FILE *out, size_t *n,
                       struct repro_error *err);

#endif
