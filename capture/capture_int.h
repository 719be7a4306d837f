/*
 * Internals shared by the capture component's files (never installed).
 */
#ifndef REPRO_CAPTURE_INT_H
#define REPRO_CAPTURE_INT_H

#include "repro/capture.h"
#include "redact.h"
#include "tcp_reasm.h"

#define REPRO__N_SPARE 8
#define REPRO__SPARE_CAP 4096

struct repro_capture {
    struct repro_capture_sink sink;
    struct repro_redact_rules rules;
    struct repro__name_filter name_filter; /* of rules (redact.h) */
    /* Spare message buffers (empty, at most REPRO__SPARE_CAP bytes each):
     * a stored message's buffer is lent to the next message a framer
     * begins, instead of a free and a malloc per message (http_conn.c).
     * At most REPRO__N_SPARE * REPRO__SPARE_CAP bytes, outside the
     * budgets. */
    struct repro_buf spare[REPRO__N_SPARE];
    size_t n_spare;
    struct repro_capture_limits limits;
    struct repro_capture_stats stats;
    struct repro_budget budget; /* every held byte: messages, out-of-order data, queues */
    struct repro_budget table;  /* connection state: the reassembler's and HTTP's */
    uint64_t alloc_dropped;     /* deliveries dropped: no HTTP state could be allocated */
    struct repro_reasm reasm;
    struct repro_error *err;    /* the current call's error sink */
    int64_t last_ts_us;
    int failed;                 /* a sink callback failed: stop */
    char source[160];           /* names the input in warnings */
    unsigned warnings;          /* input warnings logged so far */
};

/* Reassembler callbacks implementing HTTP over each connection
 * (http_conn.c). */
extern const struct repro_reasm_cb repro__http_conn_cb;
/* What the HTTP state of one connection is charged to the table. */
size_t repro__http_conn_cost(void);
/* Held bytes a payload packet may need beyond its own (queue growth). */
size_t repro__http_room_slack(void);


/* Whether another warning about bad input may be logged: the first
 * REPRO_CAPTURE_MAX_WARNINGS are, then one notice, then only the counters
 * in the summary (a hostile capture must not flood the log). */
#define REPRO_CAPTURE_MAX_WARNINGS 50
int repro__capture_may_warn(struct repro_capture *cap);

#endif
