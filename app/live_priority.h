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

/* The threads' levels: SCHED_IDLE; SCHED_OTHER at the agent's own nice
 * value + 10 (behind, at most 19); SCHED_OTHER at its own nice value (far
 * behind; nice 0 unless started under nice). */
enum repro_app_prio_level { REPRO_PRIO_IDLE, REPRO_PRIO_LOW, REPRO_PRIO_NORMAL };
#define REPRO_APP_PRIO_LOW_NICE 10

/* When the threads are raised (any one condition is enough), and when they
 * go back to idle (all must hold). */
struct repro_app_prio_limits {
    uint64_t behind_bytes;     /* packets waiting for the parser: idle -> nice 10 */
    uint64_t far_behind_bytes; /* -> nice 0 */
    uint64_t low_bytes;        /* caught up at this many or fewer */
    uint64_t behind_wait_ns;   /* a batch or a commit has waited this long: -> nice 10 */
    uint64_t reader_blocked_ns; /* the reader waited this long for the parser's lock: -> nice 10 */
    uint64_t far_behind_wait_ns; /* -> nice 0 */
    uint64_t min_raised_ns;    /* stay raised at least this long (no flapping) */
    /* Deferral: while the host is saturated the parser takes nothing at all
     * (the reader spools), for at most defer_max_ns (0: never defer) and
     * while the backlog is under defer_room_bytes. */
    uint64_t defer_max_ns;
    uint64_t defer_room_bytes; /* of the spool, or of the queue without one */
    int defer_spool;           /* the backlog is the spool's bytes (1) or the queue's (0) */
    unsigned saturated_permille;   /* defer when less CPU than this is spare */
    unsigned unsaturated_permille; /* end a deferral at this much spare CPU */
};

/* What the policy looks at, read lock-free from the reader and writer. */
struct repro_app_prio_input {
    uint64_t queued_bytes;   /* packets waiting or being parsed */
    uint64_t reader_wait_ns; /* repro_reader_wait_ns() */
    uint64_t writer_wait_ns; /* repro_store_writer_wait_ns() */
    uint64_t reader_blocked_ns; /* repro_reader_blocked_ns() */
    uint64_t loop_stall_ns;  /* since the parser's last heartbeat (its loop turns every 100 ms) */
    uint64_t raised_for_ns;  /* how long the threads have been off idle */
    enum repro_app_prio_level level;
    uint64_t spooled_bytes;  /* the reader's spool, not yet read back */
    unsigned spare_permille; /* CPU the host left unused over the last 200 ms, the
                                agent's own counted as unused; 1000 = all CPUs */
    int deferring;           /* now */
    int catching_up;         /* a deferral ended at a limit and the backlog is not parsed
                                yet: no new deferral until it is */
    int losing;              /* packets were dropped (queue or spool full, a spool
                                error) since the last look: a deferral must end */
};

/* The limits for a packet queue of max_queue_bytes: "behind" at a quarter
 * full, 250 ms of waiting (a batch, rows, the parser's loop) or a reader
 * blocked 20 ms on the parser's lock; "far behind" at half full or 500 ms;
 * idle again at 1/64 with nothing waiting, after at least 100 ms. */
void repro_app_prio_limits_default(struct repro_app_prio_limits *l, uint64_t max_queue_bytes);
/* Whether the parser should put its work off now (a pure function,
 * unit-tested): the host is saturated (less than saturated_permille spare;
 * a deferral goes on until unsaturated_permille), the oldest batch has
 * waited less than defer_max_ns, the backlog is under defer_room_bytes,
 * and no backlog of an earlier deferral that hit a limit is left (so
 * under a long saturation the backlog is parsed whole, then deferral
 * starts again, and no packet waits much longer than defer_max_ns).
 * Why: on a VM even SCHED_IDLE work costs the service, because a CPU that
 * runs it is not idle when the service wakes (bench/idle_cost.sh); what
 * costs nothing is work done after the load. */
int repro_app_prio_defer(const struct repro_app_prio_limits *l,
                         const struct repro_app_prio_input *in);
/* The host's CPU time and the agent's own at one moment. */
struct repro_app_cpu_sample {
    uint64_t total, idle; /* /proc/stat's first line, in clock ticks (idle: idle + iowait) */
    uint64_t own_ns;      /* CLOCK_PROCESS_CPUTIME_ID */
};
/* The share of all CPUs (in 1/1000) left unused from a to b, the agent's
 * own time counted as unused (its work is what a deferral removes); 1000
 * when it cannot tell. */
unsigned repro_app_prio_spare(const struct repro_app_cpu_sample *a,
                              const struct repro_app_cpu_sample *b, long ticks_per_s);
/* The level the threads should have (a pure function, unit-tested). While
 * deferring only a stalled loop counts (raised one step, lowered once it
 * turns again), not the queue. */
enum repro_app_prio_level repro_app_prio_decide(const struct repro_app_prio_limits *l,
                                                const struct repro_app_prio_input *in);

/* Figures of a run, any thread. */
struct repro_app_prio_stats {
    int active;                 /* idle-first is on (off: --priority normal, or not permitted) */
    enum repro_app_prio_level level; /* now */
    uint64_t raises;            /* times the threads left idle */
    uint64_t raises_far_behind; /* times they went to nice 0 */
    uint64_t raised_ns;         /* time spent off idle, the current stretch included */
    uint64_t failures;          /* switches the kernel refused (retried) */
    int deferring;              /* now */
    uint64_t deferrals;         /* times the parser put its work off */
    uint64_t deferred_ns;       /* time spent deferring, the current stretch included */
};

struct repro_app_prio;

/* Starts idle-first for the calling thread (the parser) and the writer's
 * thread: checks that a thread can be raised again (CAP_SYS_NICE, or
 * RLIMIT_NICE >= 20 - the calling thread's nice), lowers both to SCHED_IDLE and starts the thread that
 * watches reader and writer every 20 ms. Returns REPRO_OK with *out, or
 * REPRO_E_UNSUPPORTED when the process could not raise a thread again (nothing is
 * changed; the message says why), REPRO_E_NOMEM, REPRO_E_IO. */
int repro_app_prio_start(struct repro_reader *reader, struct repro_store_writer *writer,
                         const struct repro_app_prio_limits *l, struct repro_app_prio **out,
                         struct repro_error *err);
void repro_app_prio_stats(struct repro_app_prio *p, struct repro_app_prio_stats *out);
/* The parser's loop calls this on every turn with the monotonic time it
 * read anyway: a loop that stops turning (starved) gets raised like a
 * queue that fills. Accepts NULL. */
void repro_app_prio_heartbeat(struct repro_app_prio *p, uint64_t now_ns);
/* Whether the parser's loop should take nothing now (the watcher decides
 * every 100 ms). Accepts NULL (0). Lock-free. */
int repro_app_prio_deferring(struct repro_app_prio *p);
/* Ends any deferral for good (the capture is stopping: what waits is
 * parsed by the usual rules). Accepts NULL. Any thread. */
void repro_app_prio_no_deferral(struct repro_app_prio *p);
/* Stops watching and puts both threads back to SCHED_OTHER at the nice
 * value they started with (the final flush must not wait for idle CPU);
 * accepts NULL. Call from the thread that started it. */
void repro_app_prio_stop(struct repro_app_prio *p, struct repro_app_prio_stats *final);
/* Whether threads of this process may go back from SCHED_IDLE to
 * SCHED_OTHER at nice base_nice (CAP_SYS_NICE, or RLIMIT_NICE >= 20 -
 * base_nice). Changes nothing. */
int repro_app_prio_can_raise(int base_nice);
/* Before dropping root (--user): lets the process raise its threads again
 * without CAP_SYS_NICE (RLIMIT_NICE 20). Best effort. */
void repro_app_prio_keep_raisable(void);

#endif
