/*
 * app/capture_live: the live agent's loop (reader thread -> this loop ->
 * store writer thread), its timers, its status line and the snapshot of
 * its counters that --metrics serves. docs/capture.md, "Live capture".
 */
#ifndef REPRO_APP_CAPTURE_LIVE_H
#define REPRO_APP_CAPTURE_LIVE_H

#include "app/live_priority.h"
#include "repro/capture.h"
#include "repro/store.h"

struct repro_metrics_server;

#include <pthread.h>
#include <stdio.h>

/* Every figure of a running capture, as one consistent snapshot. */
struct repro_app_live_stats {
    struct repro_reader_stats reader;
    struct repro_capture_stats capture;
    struct repro_store_writer_stats store; /* what the writer committed, its queue */
    uint64_t rss_bytes; /* resident memory of the process */
    uint64_t open_streams;  /* connections the session tracks now */
    uint64_t session_bytes; /* what the session holds under --max-memory */
    uint64_t uptime_ns;
    struct repro_app_prio_stats prio; /* idle-first CPU (app/live_priority.h) */
};

/* Embedded by the caller: set the options after repro_app_live_init(). */
struct repro_app_live {
    /* options */
    double duration_s;  /* 0: until stopped */
    long long count;    /* packets, 0: no limit */
    FILE *log;          /* status lines (a terminal: once a second; else on SIGUSR1) */
    int quiet;          /* no status line on a terminal */
    int priority_normal; /* --priority normal: no idle-first CPU */
    double defer_max_s;  /* idle-first: put parsing off while the host is saturated,
                            at most this long (0: never) */
    uint64_t spool_max_bytes;  /* the reader's spool for deferred packets (0: none) */
    int spooling;              /* the reader has it (repro_reader_spool) */
    /* results */
    int stopped_by_signal;
    struct repro_app_prio_stats prio; /* idle-first CPU over the run */
    uint64_t n_fed; /* packets handed to the session */
    /* private */
    struct repro_reader *reader;
    struct repro_capture *cap;
    int dlt;
    uint64_t t0_ns;
    char source_name[300];
    pthread_mutex_t mu;
    struct repro_app_live_stats snap; /* under mu */
    struct repro_app_live_stats last_report;
    int status_shown;
    struct repro_metrics_server *metrics;
    struct repro_store_writer *writer;
    struct repro_app_prio *prio_run; /* while repro_app_live_run() runs */
    size_t max_queue_bytes;
};

/* Whether SIGINT or SIGTERM came since repro_app_live_init() (for work
 * done before repro_app_live_run(), such as a recovery). */
int repro_app_live_stop_requested(void);
/* The writer SIGINT and SIGTERM interrupt while it waits for a lock
 * another process holds (repro_store_writer_interrupt), from now on, for
 * work before repro_app_live_run() (which sets it too); NULL: none. */
void repro_app_live_set_writer(struct repro_store_writer *writer);

/* Feeds the packets of b to cap (link type dlt) until *fed reaches max
 * (0: no limit), counting in *fed. Returns 0 or the session's sink error. */
int repro_app_feed_batch(struct repro_capture *cap, int dlt, const struct repro_packet_batch *b,
                         uint64_t max, uint64_t *fed, struct repro_error *err);

/* Starts the reader thread on the live source src for session cap (both
 * borrowed until repro_app_live_finish()). max_queue_bytes bounds the
 * packets waiting between the reader and the loop. Installs the handlers
 * for SIGINT, SIGTERM (stop) and SIGUSR1 (a status line) already, so a
 * signal sent as soon as the caller says it listens is not lost or fatal. */
int repro_app_live_init(struct repro_app_live *lv, struct repro_source *src,
                        struct repro_capture *cap, size_t max_queue_bytes,
                        struct repro_error *err);
/* Runs until SIGINT/SIGTERM, --duration or --count (then reads what the
 * kernel still holds) or a read error. Unless priority_normal, the calling
 * thread and the writer's run idle-first meanwhile (app/live_priority.h;
 * a process that may not raise them again gets a warning on log and
 * normal priority). The handlers for SIGINT, SIGTERM and SIGUSR1 that
 * repro_app_live_init() installed serve it; it restores the defaults
 * (SIGUSR1 ignored) at its end, as does repro_app_live_finish(). Rows go
 * to the session's sink; writer is flushed once a second. Returns 0 or the
 * sink's or writer's error (err set). Not thread-safe (signal handlers). */
int repro_app_live_run(struct repro_app_live *lv, struct repro_store_writer *writer,
                       struct repro_error *err);
/* Thread-safe copy of the latest snapshot (updated at least once a
 * second). */
void repro_app_live_snapshot(struct repro_app_live *lv, struct repro_app_live_stats *out);
/* Serves the snapshot in Prometheus text format on hostport ("127.0.0.1:9100",
 * port 0 for a free one: repro_metrics_server_port(lv->metrics)) until
 * repro_app_live_finish(). Errors name the address. */
int repro_app_live_serve_metrics(struct repro_app_live *lv, const char *hostport,
                                 struct repro_error *err);
/* Stops the metrics server, ends the reader; *final gets its last counters. Returns REPRO_OK or the
 * read error that ended it (err set). */
int repro_app_live_finish(struct repro_app_live *lv, struct repro_reader_stats *final,
                          struct repro_error *err);

#endif
