/*
 * app/capture_run: `repro capture` as a library call — a packet source
 * into a capture session into the store's background writer, until the
 * input ends, --count packets, --duration or SIGINT/SIGTERM (live).
 */
#ifndef REPRO_APP_CAPTURE_RUN_H
#define REPRO_APP_CAPTURE_RUN_H

#include "app/live_priority.h"
#include "app/spool_recover.h"
#include "repro/capture.h"
#include "repro/store.h"

#include <stdio.h>

#define REPRO_APP_CAPTURE_MIN_MEMORY ((uint64_t)32 << 20)
/* Deferral's defaults (--defer-max, --spool-max; docs/capture.md): at full
 * load on loopback the spool grows by about 40 MB/s. */
#define REPRO_APP_DEFER_MAX_S 10.0
#define REPRO_APP_SPOOL_MAX_BYTES ((uint64_t)1 << 30)
#define REPRO_APP_CAPTURE_WRITER_MEMORY ((size_t)16 << 20)

/* What to capture. Every pointer is borrowed for the call. */
struct repro_app_capture_opts {
    struct repro_source_opts src;              /* file or iface */
    const char *db;                            /* database path */
    double duration_s;                         /* 0: until the input ends */
    long long count;                           /* packets, 0: no limit */
    const struct repro_redact_rules *rules;
    const struct repro_capture_limits *limits;
    FILE *log; /* "listening on ..." and read errors, or NULL */
    int force; /* store a file again that an earlier capture stored */
    int quiet; /* live: no status line on a terminal */
    int priority_normal; /* live: no idle-first CPU (--priority normal) */
    double defer_max_s;  /* live, idle-first: parsing put off while the host is saturated,
                            at most this long (--defer-max; 0: never) */
    uint64_t spool_max_bytes;  /* live: the spool for deferred packets (--spool-max; 0: none) */
    /* The whole budget (0: 256 MiB, at least REPRO_APP_CAPTURE_MIN_MEMORY):
     * a quarter for the live packet queue, 16 MiB for the store writer,
     * the rest for the session (repro_capture_limits_from_memory() splits
     * it). Without it, limits are used as they are and the queue is 64 MiB. */
    size_t max_memory;
    const char *metrics; /* live: serve Prometheus metrics on HOST:PORT, or NULL */
    const char *user;    /* live: switch to this user once the interface is open, or NULL */
    uint64_t max_db_bytes; /* delete the oldest exchanges past this used size, 0: no limit */
    int64_t retain_us;     /* delete exchanges older than this, 0: keep them */
};

/* What happened. cap is owned by the result (release it). */
struct repro_app_capture_result {
    struct repro_capture *cap; /* set once packets were read: the summary's source */
    char source_name[600];     /* "file 'x.pcap'", "interface 'lo'" */
    int64_t capture_id;        /* 0 when nothing was recorded */
    uint64_t kernel_drops;     /* live only: dropped by the kernel (its buffer was full) */
    struct repro_reader_stats reader; /* live only: the reader's counters (queue drops) */
    struct repro_app_prio_stats prio; /* live only: idle-first CPU over the run */
    struct repro_app_recovery recovery; /* live only: spools left behind, parsed first */
    int problems;              /* input errors, gaps or drops: the capture is "partial" */
    int64_t already;           /* the file was stored before as this capture: nothing done */
};

/*
 * Runs a capture into the database o->db (created if needed). A live
 * capture handles SIGINT and SIGTERM for its duration (they end it after
 * draining what the kernel holds) and restores the default handlers.
 * Returns REPRO_OK (res->problems says whether the input had problems) or
 * the first error (source, store, allocation) with err set; the capture
 * record is then marked "failed". Release res with
 * repro_app_capture_result_release() either way. Not thread-safe
 * (signal handlers).
 */
int repro_app_capture_run(const struct repro_app_capture_opts *o,
                          struct repro_app_capture_result *res, struct repro_error *err);
void repro_app_capture_result_release(struct repro_app_capture_result *res);

#endif
