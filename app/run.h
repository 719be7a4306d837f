/*
 * The glue behind `repro run` (app/run.c): a command under the ptrace
 * supervisor, every crash committed to the store from the supervisor's
 * callback (before the crashed process dies), SIGTERM and friends sent to
 * repro forwarded to the command. cli/cmd_run.c parses, prints and maps the
 * exit code; this file neither prints nor exits.
 */
#ifndef REPRO_APP_RUN_H
#define REPRO_APP_RUN_H

#include "repro/crash.h"

#include <stdint.h>

struct repro_store;

/* What repro_app_run tells about one crash it tried to store. */
struct repro_app_run_crash_info {
    int64_t crash_id;                    /* id in the store, -1 when not stored */
    const struct repro_error *store_err; /* code != 0 when storing failed */
    uint64_t stop_ns;     /* monotonic: from seeing the signal to all threads stopped */
    uint64_t unwind_ns;   /* registers, module table, stacks, connections */
    uint64_t store_ns;    /* the store transaction */
    uint64_t total_ns;    /* from seeing the signal to the committed record */
    int64_t committed_us; /* wall clock once the record committed */
};

/* Called once per crash after the store call, on the supervisor's tracer
 * thread, before the signal is delivered. c and info are borrowed for the
 * call only. */
typedef void (*repro_app_run_crash_fn)(void *ctx, const struct repro_crash *c,
                                       const struct repro_app_run_crash_info *info);

struct repro_app_run_opts {
    char *const *argv;   /* borrowed for the call: CMD and ARGS, NULL-terminated */
    const char *service; /* borrowed for the call, or NULL */
    int follow_forks;
    struct repro_store *store;       /* borrowed for the call: where crashes go; NULL: not
                                        stored (crash_id -1, store_err "no database") */
    int forward_signals;             /* 1: forward SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1
                                        and SIGUSR2 sent to this process to the command */
    repro_app_run_crash_fn on_crash; /* or NULL */
    void *ctx;
};

struct repro_app_run_result {
    struct repro_supervisor_result sup; /* how the command ended */
    unsigned n_stored, n_store_errors;
};

/*
 * Runs o->argv under the supervisor until it ends. Each crash is stored
 * with repro_app_store_crash from the supervisor's callback, the
 * timings are logged at info level ("crash of process N recorded in X ms
 * (stop S, unwind U, store T), committed at W us") and o->on_crash is
 * called.
 *
 * With forward_signals, for the duration of the call the six signals
 * above that another process sends to this one alone (si_code <= 0, not
 * sent by the command) are forwarded to the command (through its pidfd);
 * signals from the terminal reach the command's process group directly.
 * The handlers are installed before the command starts (so it starts with
 * those six at their default action) and the previous ones are restored on
 * return; one that arrives after the command started but before its pid
 * is known here is kept and sent as soon as it is. This is process-wide state: at most one forwarding call at a
 * time per process. SIGCHLD is blocked in the calling thread while it
 * waits (restored on return).
 *
 * Returns REPRO_OK with *res filled once the command has ended (whatever
 * its status), or what repro_supervisor_start/_wait return, with err set.
 */
int repro_app_run(const struct repro_app_run_opts *o, struct repro_app_run_result *res,
                  struct repro_error *err);

#endif
