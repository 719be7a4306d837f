/*
 * app/exchange_render: an exchange as read from the store, as JSON (the
 * objects of `repro exchanges --format json` and `repro show --json`;
 * field names are a contract, docs/formats.md) and as the text line of
 * `repro exchanges`.
 */
#ifndef REPRO_APP_EXCHANGE_RENDER_H
#define REPRO_APP_EXCHANGE_RENDER_H

#include "repro/store.h"

/* Appends flags as a JSON array of flag names ("gap", ...) to b. */
int repro_app_xflags_json(struct repro_buf *b, unsigned flags);
/* Appends r as one JSON object (no newline) to b; with_bodies adds the raw
 * request and response as strings. REPRO_E_NOMEM or REPRO_E_LIMIT (b's
 * cap) with b's contents unspecified. */
int repro_app_exchange_json(struct repro_buf *b, const struct repro_exchange_row *r,
                            int with_bodies);

/* Appends r as the one-line text of `repro exchanges` (with its newline)
 * to b: id, request time (UTC), client -> server, method, URI, status,
 * bytes and flag names. */
int repro_app_exchange_text(struct repro_buf *b, const struct repro_exchange_row *r);

#endif
