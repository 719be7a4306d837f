/*
 * app/live_priority: the live agent's CPU policy, "idle-first". Its parsing
 * and store threads run as SCHED_IDLE, on CPU time the service leaves
 * unused, and go back to normal priority only while they fall behind.
 * docs/capture.md, "CPU: idle first".
 */
#ifndef REPRO_APP_LIVE_PRIORITY_H
#define REPRO_APP_LIVE_PRIORITY_H

#include "repro/capture.h"
#include "repro/store.h"

#include <pthread.h>
#include <stdint.h>

/* When the threads go back to normal priority (any one is enough), and
 * when they give it up again (all must hold). */
struct repro_app_prio_limits {
    uint64_t high_bytes;   /* packets waiting for the parser: raise at this many */
    uint64_t low_bytes;    /* lower again at this many or fewer */
    uint64_t max_wait_ns;  /* a batch or a commit has waited this long: raise */
    uint64_t min_raised_ns; /* stay raised at least this long (no flapping) */
};

/* What the policy looks at, read lock-free from the reader and writer. */
struct repro_app_prio_input {
    uint64_t queued_bytes;   /* packets waiting or being parsed */
    uint64_t reader_wait_ns; /* repro_reader_wait_ns() */
    uint64_t writer_wait_ns; /* repro_store_writer_wait_ns() */
    uint64_t raised_for_ns;  /* how long the threads have been raised (when raised) */
    int raised;
};

enum repro_app_prio_action { REPRO_PRIO_KEEP, REPRO_PRIO_RAISE, REPRO_PRIO_LOWER };

/* The limits for a packet queue of max_queue_bytes: raise at a quarter
 * full, lower at 1/64; 250 ms of waiting; at least 100 ms raised. */
void repro_app_prio_limits_default(struct repro_app_prio_limits *l, uint64_t max_queue_bytes);
/* The decision alone (a pure function, unit-tested). */
enum repro_app_prio_action repro_app_prio_decide(const struct repro_app_prio_limits *l,
                                                 const struct repro_app_prio_input *in);

/* Figures of a run, any thread. */
struct repro_app_prio_stats {
    int active;          /* idle-first is on (off: --priority normal, or not permitted) */
    int raised;          /* the threads run at normal priority now */
    uint64_t raises;     /* times they were raised */
    uint64_t raised_ns;  /* time spent raised, the current stretch included */
};

struct repro_app_prio;

/* Starts idle-first for the calling thread (the parser) and the writer's
 * thread: probes that a thread can be raised again (CAP_SYS_NICE, or
 * RLIMIT_NICE >= 20), lowers both and starts the thread that watches
 * reader and writer every 20 ms. Returns REPRO_OK with *out, or
 * REPRO_E_UNSUPPORTED when the process could not raise a thread again (nothing is
 * changed; the message says why), REPRO_E_NOMEM, REPRO_E_IO. */
int repro_app_prio_start(struct repro_reader *reader, struct repro_store_writer *writer,
                         const struct repro_app_prio_limits *l, struct repro_app_prio **out,
                         struct repro_error *err);
void repro_app_prio_stats(struct repro_app_prio *p, struct repro_app_prio_stats *out);
/* Stops watching and puts both threads back to normal priority (the final
 * flush must not wait for idle CPU); accepts NULL. Call from the thread
 * that started it. */
void repro_app_prio_stop(struct repro_app_prio *p, struct repro_app_prio_stats *final);
/* Whether a thread of this process may go back from SCHED_IDLE to normal
 * priority (the calling thread tries one step of nice and back). */
int repro_app_prio_can_raise(void);
/* Before dropping root (--user): lets the process raise its threads again
 * without CAP_SYS_NICE (RLIMIT_NICE 20). Best effort. */
void repro_app_prio_keep_raisable(void);

#endif
