/*
 * app/crash_render: stored crashes rendered for `repro crashes` (text,
 * JSON Lines, markdown), with their group and the requests in flight.
 */
#ifndef REPRO_APP_CRASH_RENDER_H
#define REPRO_APP_CRASH_RENDER_H

#include "repro/store.h"

enum repro_app_crash_format {
    REPRO_APP_CRASH_TEXT = 0,
    REPRO_APP_CRASH_JSON,    /* one JSON object and a newline */
    REPRO_APP_CRASH_MARKDOWN /* a section with a code block, for CI summaries */
};

/* Loads crash id from s and appends it to b in format. REPRO_E_NOTFOUND,
 * store errors (err set), REPRO_E_NOMEM/REPRO_E_LIMIT (b's cap). */
int repro_app_crash_render(struct repro_store *s, int64_t id, enum repro_app_crash_format format,
                           struct repro_buf *b, struct repro_error *err);

/* Appends crash id as a row of the markdown summary table (crash, time,
 * signal, signature, crashes with that signature, top frame), and with
 * header != 0 the table's header first. */
int repro_app_crash_summary_row(struct repro_store *s, int64_t id, int header, struct repro_buf *b,
                                struct repro_error *err);

#endif
