/*
 * app/replay_run: `repro replay` as a library call — stored exchanges
 * (filtered like `repro exchanges`) replayed against a target with
 * replay/run.c, a summary, the JSON and JUnit reports.
 */
#ifndef REPRO_APP_REPLAY_RUN_H
#define REPRO_APP_REPLAY_RUN_H

#include "repro/replay.h"
#include "repro/store.h"

#include <stdio.h>

/* Every pointer borrowed for the call. */
struct repro_app_replay_opts {
    const char *db;
    struct repro_exchange_filter filter;
    const char *methods;       /* "GET,HEAD": only these methods, or NULL */
    const char *target;        /* "HOST:PORT"; NULL with exec: 127.0.0.1 and the free port */
    const char *exec;          /* staging command run under the crash supervisor (sh -c),
                                  "{port}" replaced by a free port, or NULL */
    int exec_wait_ms;          /* how long staging may take to accept (0: 10000) */
    const char *baseline;      /* "HOST:PORT" or NULL */
    double speed;              /* 0: max */
    double rate;               /* requests/s cap, 0: none */
    unsigned connections, loops;
    int timeout_ms;
    int allow_production_target;
    int no_correlate;
    int dry_run;               /* print the schedule, send nothing */
    int realtime;              /* the sender under SCHED_FIFO when permitted (summary says) */
    struct repro_compare_rules rules;
    struct repro_replay_rewrite_opts rewrite;
    const char *report_json, *junit; /* or NULL */
    FILE *out;                 /* the dry-run schedule and the summary */
    FILE *progress;            /* a live line here once a second (a terminal), or NULL */
    const char *selection;     /* the command line, stored with the run (or NULL) */
};

struct repro_app_replay_result {
    int64_t run_id;           /* the stored run, 0 for a dry run */
    uint64_t selected;        /* exchanges chosen */
    uint64_t skipped;         /* chosen but without a request to send */
    unsigned staging_crashes; /* crashes of the --exec process, stored */
    unsigned staging_hangs;   /* its stacks recorded when a request timed out (signal
                                 "hang"), stored */
    struct repro_replay_summary sum; /* verdict counts; noise already freed */
};

/*
 * The live progress line (no newline) into out: sent/total, rate since
 * started_ns (repro_mono_ns), verdicts so far, the schedule error p99 when
 * paced (sched), an ETA. Thread-safe.
 */
void repro_app_replay_progress_line(char *out, size_t out_len, const struct repro_replay_progress *p,
                                    uint64_t total, uint64_t elapsed_ns, int sched);

/*
 * Runs the replay and stores it (replay_runs, replay_results) in o->db.
 * Returns REPRO_OK when it ran (findings are in res);
 * REPRO_E_INVAL for a target that cannot be resolved or that is the server
 * of the recorded traffic (without allow_production_target);
 * REPRO_E_NOTFOUND when the filters select nothing; other errors from the
 * store, the engine or the reports.
 */
int repro_app_replay(const struct repro_app_replay_opts *o, struct repro_app_replay_result *res,
                     struct repro_error *err);

#endif
