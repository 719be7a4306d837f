/*
 * app/capture_metrics: a live capture's figures in Prometheus text format
 * (docs/metrics.md, "The metrics").
 */
#ifndef REPRO_APP_CAPTURE_METRICS_H
#define REPRO_APP_CAPTURE_METRICS_H

#include "app/capture_live.h"

/* Appends every family of snapshot s to out (borrowed). Returns REPRO_OK
 * or REPRO_E_NOMEM/REPRO_E_LIMIT from the buffer; thread-safe (reads only
 * s). */
int repro_app_live_render_metrics(const struct repro_app_live_stats *s, struct repro_buf *out);

#endif
