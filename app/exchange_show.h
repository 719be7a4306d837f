/*
 * app/exchange_show: a stored exchange (read with bodies) as the text view
 * and as a curl command, for `repro show`.
 */
#ifndef REPRO_APP_EXCHANGE_SHOW_H
#define REPRO_APP_EXCHANGE_SHOW_H

#include "repro/store.h"

#include <stdio.h>

/* Appends the text view of r (header lines, then request and response
 * bytes) to b. REPRO_E_NOMEM. */
int repro_app_exchange_text_view(struct repro_buf *b, const struct repro_exchange_row *r);
/*
 * Appends a runnable curl command for r's request to b. When the body it
 * sends is cut short, a shell comment in b and a warning on log (or NULL)
 * say so and *body_cut is set to 1. REPRO_E_MALFORMED (said on log) when
 * r has no complete request head; REPRO_E_NOMEM.
 */
int repro_app_exchange_curl(struct repro_buf *b, const struct repro_exchange_row *r, FILE *log,
                            int *body_cut);

#endif
