/*
 * app/metrics: the Prometheus exporter of `repro capture --metrics
 * HOST:PORT` — a writer of the text exposition format 0.0.4 into a
 * struct repro_buf, and a one-thread HTTP server that answers
 * `GET /metrics` with whatever a render callback writes (docs/metrics.md).
 */
#ifndef REPRO_APP_METRICS_H
#define REPRO_APP_METRICS_H

#include "repro/core.h"
#include "repro/http.h"

#include <stdint.h>

/* ---- the text format writer -------------------------------------------- */

enum repro_metrics_type { REPRO_METRICS_COUNTER = 0, REPRO_METRICS_GAUGE = 1 };

/* One label of a sample; both strings borrowed for the call. name matches
 * [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__" (reserved); value is
 * any UTF-8 text (escaped here). */
struct repro_metrics_label {
    const char *name;
    const char *value;
};

/*
 * Appends the "# HELP" and "# TYPE" lines of one metric family to b. Write
 * each family once, and its samples (repro_metrics_counter/_gauge with the
 * same name) right after it: the format allows no other order. name matches
 * [a-zA-Z_:][a-zA-Z0-9_:]* (docs/metrics.md has the naming rules); help is
 * escaped (backslash, newline). Returns REPRO_OK; REPRO_E_INVAL for a bad
 * name, a NULL help or type out of range (b unchanged); REPRO_E_LIMIT or
 * REPRO_E_NOMEM when b cannot grow (b may hold a partial line: discard the
 * output). Thread-safe on distinct buffers.
 */
int repro_metrics_family(struct repro_buf *b, const char *name, enum repro_metrics_type type,
                         const char *help);

/*
 * Appends one sample line `name{l1="v1",...} value` to b: a counter (an
 * unsigned integer that only grows) or a gauge (any double; NaN and the
 * infinities are written as the format spells them). labels (n_labels of
 * them, borrowed; NULL when n_labels is 0) are written in the order given,
 * their values escaped (backslash, double quote, newline). A family's
 * label sets must differ from each other; the writer does not check that.
 * Returns as repro_metrics_family(), REPRO_E_INVAL also for a bad label
 * name, a NULL label value or two labels of the same name.
 */
int repro_metrics_counter(struct repro_buf *b, const char *name,
                          const struct repro_metrics_label *labels, size_t n_labels,
                          uint64_t value);
int repro_metrics_gauge(struct repro_buf *b, const char *name,
                        const struct repro_metrics_label *labels, size_t n_labels, double value);

/* ---- the HTTP request reader (one request per connection) --------------- */

/* What the server answers a request with. */
enum repro_metrics_route {
    REPRO_METRICS_R_METRICS = 0, /* GET or HEAD /metrics: 200 and the text */
    REPRO_METRICS_R_INDEX,       /* GET or HEAD /: 200 and a one-line pointer */
    REPRO_METRICS_R_NOT_FOUND,   /* 404: any other path */
    REPRO_METRICS_R_BAD_METHOD,  /* 405: a method other than GET or HEAD */
    REPRO_METRICS_R_MALFORMED,   /* 400: not an HTTP/1.x request */
    REPRO_METRICS_R_TOO_LARGE    /* 431: the head is over max_head */
};

/*
 * The request of one connection, read with the HTTP framer
 * (include/repro/http.h): feed the bytes as they arrive. Invariant: once
 * done is 1, route and head_only are final and further input is ignored.
 * Never allocates beyond its framer's capped buffer.
 */
struct repro_metrics_request {
    struct repro_http_framer framer;
    int done;
    enum repro_metrics_route route;
    int head_only; /* HEAD: the answer has no body */
};

/* max_head: bytes of request head accepted (0: 8 KiB). */
void repro_metrics_request_init(struct repro_metrics_request *rq, size_t max_head);
void repro_metrics_request_release(struct repro_metrics_request *rq);
/*
 * Feeds p[0..len) (borrowed for the call). Returns REPRO_HTTP_DONE when
 * rq->route is decided (a request with an unwanted method or path is
 * decided as soon as its head is in, without waiting for its body),
 * REPRO_HTTP_NEED_MORE when more bytes are needed. Malformed input is
 * reported as DONE with route MALFORMED or TOO_LARGE. Never fails.
 */
enum repro_http_outcome repro_metrics_request_feed(struct repro_metrics_request *rq,
                                                   const uint8_t *p, size_t len);
/* The status line's code and reason of a route ("200", "OK"). */
int repro_metrics_route_status(enum repro_metrics_route route, const char **reason);

/* ---- the server --------------------------------------------------------- */

/*
 * Writes the current metrics into out (empty, capped at the server's
 * max_body) with the writer above. Called on the server's own thread, once
 * per scrape, while the rest of the program runs: it must be thread-safe
 * with respect to the figures it reads (atomics, or a snapshot under a
 * lock) and should not block. Returns REPRO_OK, or any negative code to
 * answer the scrape with 500.
 */
typedef int (*repro_metrics_render_fn)(void *ctx, struct repro_buf *out);

struct repro_metrics_server;

/* Knobs of the server; repro_metrics_server_start() uses the defaults. */
struct repro_metrics_limits {
    int timeout_ms;     /* a connection's whole life (read + answer); default 5000 */
    size_t max_conns;   /* open connections at once, more wait in the backlog; default 16 */
    size_t max_head;    /* request head bytes; default 8 KiB */
    size_t max_body;    /* rendered text per scrape, more is a 500; default 16 MiB */
};

/*
 * Listens on hostport and serves scrapes on a new thread until stopped.
 * hostport: "HOST:PORT" with a numeric or named host, "[V6]:PORT", or
 * ":PORT" for every address (IPv6 and IPv4); PORT 0 picks a free port
 * (read it back with repro_metrics_server_port). render and ctx are
 * borrowed until repro_metrics_server_stop() returns. The thread blocks
 * every signal, so signals go to the program's other threads. Every
 * connection answers one request (Connection: close); many are served at
 * once, so a silent or slow client delays no one, and each is closed after
 * limits->timeout_ms. *out gets the server (transferred: stop it with
 * repro_metrics_server_stop). lim may be NULL (defaults).
 * Returns REPRO_OK; REPRO_E_INVAL for a bad address ("cannot serve metrics
 * on '127.0.0.1:99999': bad port"), REPRO_E_IO when it cannot be resolved,
 * bound (with strerror: address in use, permission denied) or listened on,
 * or the thread cannot start; REPRO_E_NOMEM. *out is NULL on failure.
 * Call from one thread; any number of servers may run.
 */
int repro_metrics_server_start(const char *hostport, repro_metrics_render_fn render, void *ctx,
                               struct repro_metrics_server **out, struct repro_error *err);
int repro_metrics_server_start_with(const char *hostport, const struct repro_metrics_limits *lim,
                                    repro_metrics_render_fn render, void *ctx,
                                    struct repro_metrics_server **out, struct repro_error *err);
/* The port it listens on (the one chosen for PORT 0). */
int repro_metrics_server_port(const struct repro_metrics_server *s);
/* Counters of the server since start (read from any thread). */
struct repro_metrics_server_stats {
    uint64_t scrapes;   /* 200 answers to /metrics */
    uint64_t errors;    /* 4xx and 5xx answers */
    uint64_t timeouts;  /* connections closed at timeout_ms */
};
void repro_metrics_server_stats(const struct repro_metrics_server *s,
                                struct repro_metrics_server_stats *out);
/* Wakes the thread, which closes every connection and the socket, joins it
 * and frees s: returns at once (no scrape is waited for beyond a render in
 * progress). Accepts NULL. */
void repro_metrics_server_stop(struct repro_metrics_server *s);

#endif
