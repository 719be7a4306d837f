/*
 * app/capture_rows: what capture/ hands its sink, as the store's rows.
 * The capture sink that writes a session into the store (through the
 * background writer, or straight to the handle) lives here, so neither
 * capture/ knows the store nor the store knows capture/.
 */
#ifndef REPRO_APP_CAPTURE_ROWS_H
#define REPRO_APP_CAPTURE_ROWS_H

#include "repro/capture.h"
#include "repro/store.h"

/* Fills *out from c (its end reason as text). The strings of *out are
 * static; nothing is borrowed from c. out->id is c->store_id. */
void repro_app_conn_row(const struct repro_conn_info *c, int64_t capture_id,
                        struct repro_store_conn *out);
/* Fills *out from exchange x of connection c. Every pointer of *out
 * borrows from x (and x's buffers), valid as long as they are. The
 * connection is named by c->store_id when set, else by c->id (for the
 * background writer to map). */
void repro_app_exchange_row(const struct repro_conn_info *c, const struct repro_exchange *x,
                            int64_t capture_id, struct repro_store_exchange *out);

/* Every counter of REPRO_CAPTURE_COUNTERS, then the skipped-packet
 * counters (skipped_not_ip, skipped_not_tcp, skipped_fragments,
 * skipped_link_type). */
#define REPRO_APP_CAPTURE_N_COUNTERS (REPRO__APP_N_LISTED + REPRO_SKIP__COUNT - 1)
#define REPRO__APP_COUNT_ONE(name, doc) +1
#define REPRO__APP_N_LISTED (0 REPRO_CAPTURE_COUNTERS(REPRO__APP_COUNT_ONE))

/* Fills out[REPRO_APP_CAPTURE_N_COUNTERS] with st's counters (names are
 * static) and returns how many. */
size_t repro_app_capture_counters(const struct repro_capture_stats *st,
                                  struct repro_store_counter *out);
/* How a capture ended, for its record. Every pointer borrowed for the
 * call; any may be NULL (n_extra 0). */
struct repro_app_capture_outcome {
    const char *status; /* "complete", "partial", "failed" */
    const char *error;  /* why it failed (captures.error), NULL otherwise */
    /* What the store's writer committed: its exchanges replace st's in the
     * record (the exchanges column and stats_json), and stats_json gets
     * stored_connections, exchanges_not_stored, store_transactions,
     * store_busy_retries, store_blocked_ms, pruned_exchanges and
     * pruned_connections. NULL: st's counts as they are. */
    const struct repro_store_writer_stats *committed;
    /* More named counters (names C identifiers, not capture's), appended
     * to stats_json in this order: the live agent's drops and queues. */
    const struct repro_store_counter *extra;
    size_t n_extra;
};
/* Most extra counters repro_app_capture_end takes. */
#define REPRO_APP_CAPTURE_MAX_EXTRA 64

/* Ends capture capture_id in the store with st's counters and how it
 * ended. REPRO_E_INVAL for more than REPRO_APP_CAPTURE_MAX_EXTRA extra
 * counters (nothing written). */
int repro_app_capture_end(struct repro_store *s, int64_t capture_id,
                          const struct repro_capture_stats *st,
                          const struct repro_app_capture_outcome *how, struct repro_error *err);

/* A capture sink that stores a session: through writer when it is not
 * NULL, else straight into store. Embed it; it borrows store, writer and
 * err (the sink's errors go there) for the session's life. */
struct repro_app_store_sink {
    struct repro_store *store;
    struct repro_store_writer *writer;
    int64_t capture_id;
    int64_t already; /* an earlier capture of the same file (nothing stored) */
    struct repro_error *err;
    /* The writer's last figures, filled when it finishes (have_committed). */
    struct repro_store_writer_stats committed;
    int have_committed;
};
/* Returns the capture sink calling into ss (borrowed). */
struct repro_capture_sink repro_app_store_sink(struct repro_app_store_sink *ss);

#endif
