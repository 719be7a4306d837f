/*
 * app/live_priority: idle-first CPU for the live agent (issue 11, "spend
 * few": every microsecond the agent takes on a busy host is taken from the
 * service it watches).
 *
 * The parser (the live loop's thread) and the store writer run as
 * SCHED_IDLE: the kernel gives them a CPU only when nothing else wants it,
 * and takes it back the moment the service wakes up. On this project's
 * 2-core benchmark that alone kept nginx at 0.94-0.97 of its rate under
 * tcpdump, but the agent then got only about half the CPU it needs at full
 * load: packets piled up in the queue. So a watcher thread, at normal
 * priority, raises both threads while they fall behind and lowers them
 * again once they have caught up, in two steps:
 *
 *   nice 10:  a quarter of the packet queue is full, or a batch has waited
 *             250 ms for the parser, or rows 250 ms for their commit (a
 *             host whose CPUs are never idle must not delay commits past
 *             the promised second, nor fill the queue slowly until it
 *             drops), or the reader has waited 20 ms for the lock it
 *             shares with the parser (a parser starved while holding it
 *             would stall the reader: priority inversion);
 *   nice 0:   half the queue, or 500 ms of waiting;
 *   idle:     the queue is back to 1/64 full, nothing waits, and the
 *             threads have been raised for at least 100 ms.
 *
 * Why nice 10 first: at nice 0 the raised threads take full time slices
 * next to nginx and wrk and delay their wakeups; at nice 10 the service
 * still preempts them at once, yet they get a tenth of a CPU next to a
 * busy task. In the same benchmark rounds that kept the service at 1.09x
 * its rate with a nice-0 raise (bench/README.md, session 8).
 *
 * Why a watcher thread, not the idle threads themselves: a starved thread
 * cannot notice that it is starved. The reader thread could watch too, but
 * it blocks in poll() for up to 100 ms; the watcher wakes every 20 ms,
 * costs a few microseconds each time, and keeps the policy in one place.
 *
 * Levels are relative to the nice value the agent started with (an
 * administrator's `nice -n 5` or systemd Nice= holds: "normal" is that,
 * "behind" ten more). Going back from SCHED_IDLE to SCHED_OTHER at that
 * nice needs CAP_SYS_NICE or an RLIMIT_NICE of at least 20 - nice
 * (sched_setscheduler(2)): root has it;
 * repro_app_prio_keep_raisable() keeps it for --user. Without it the agent
 * stays at normal priority (idle threads that can never be raised could
 * fall behind for good).
 */
#include "app/live_priority.h"

#include <errno.h>
#include <stdio.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define WATCH_MS 20

/* Time spent in one state (the threads raised; parsing deferred): the
 * watcher begins and ends stretches, any thread reads the total with the
 * current stretch included (stretch_ns). */
struct stretch {
    atomic_int on;
    atomic_uint_fast64_t since, count, total_ns;
    atomic_uint_fast64_t reported_ns; /* the most ever reported: a counter never goes back */
};

/* on last, so a reader that sees it sees since */
static void stretch_begin(struct stretch *s, uint64_t now)
{
    atomic_store(&s->since, now);
    atomic_fetch_add(&s->count, 1);
    atomic_store(&s->on, 1);
}

/* on first, then the time: stretch_ns reads them the other way round, so
 * an ending stretch is counted once or, for a moment, not at all */
static void stretch_end(struct stretch *s, uint64_t now)
{
    atomic_store(&s->on, 0);
    atomic_fetch_add(&s->total_ns, now - atomic_load(&s->since));
}

static uint64_t stretch_ns(struct stretch *s)
{
    uint64_t v = atomic_load(&s->total_ns), since, seen;

    if (atomic_load(&s->on) && (since = atomic_load(&s->since)) != 0) {
        uint64_t now = repro_mono_ns();
        v += now > since ? now - since : 0;
    }
    seen = atomic_load(&s->reported_ns);
    while (seen < v && !atomic_compare_exchange_weak(&s->reported_ns, &seen, v))
        ;
    return seen > v ? seen : v;
}

struct repro_app_prio {
    struct repro_reader *reader;
    struct repro_store_writer *writer;
    struct repro_app_prio_limits lim;
    int tids[2]; /* the parser's and the writer's */
    int base_nice; /* the nice value they had: "normal" is this, "behind" 10 more */
    atomic_uint_fast64_t heartbeat_ns; /* the parser's loop, repro_app_prio_heartbeat() */
    pthread_t watcher;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;                        /* under mu */
    enum repro_app_prio_level level; /* watcher thread only (and stop, after the join) */
    atomic_int level_pub;
    struct stretch raised;         /* off SCHED_IDLE; count: raises */
    atomic_uint_fast64_t raises_far; /* raises to nice 0 */
    atomic_uint_fast64_t failures;    /* switches the kernel refused */
    struct stretch deferral;       /* on: the loop takes nothing (the flag it reads) */
    /* the watcher's CPU samples (watcher only) */
    struct repro_app_cpu_sample samples[3]; /* the last three, 100 ms apart */
    unsigned n_samples, ticks;
    long ticks_per_s; /* /proc/stat's unit (sysconf(_SC_CLK_TCK)) */
    int catching_up; /* watcher only: repro_app_prio_input.catching_up */
    uint64_t drops_seen; /* watcher only: queue drops and spool errors at the last look */
    atomic_int no_deferral; /* repro_app_prio_no_deferral() */
};

void repro_app_prio_limits_default(struct repro_app_prio_limits *l, uint64_t max_queue_bytes)
{
    l->behind_bytes = max_queue_bytes / 4;
    l->far_behind_bytes = max_queue_bytes / 2;
    l->low_bytes = max_queue_bytes / 64;
    l->behind_wait_ns = 250000000u;
    l->reader_blocked_ns = 20000000u;
    l->far_behind_wait_ns = 500000000u;
    l->min_raised_ns = 100000000u;
    l->defer_max_ns = 0;
    /* without a spool: half the queue (its batches' data never reaches
     * the budget: each also holds its packet records) */
    l->defer_room_bytes = max_queue_bytes / 2;
    l->defer_spool = 0;
    l->saturated_permille = 100;
    l->unsaturated_permille = 250;
}

int repro_app_prio_defer(const struct repro_app_prio_limits *l,
                         const struct repro_app_prio_input *in)
{
    uint64_t backlog = l->defer_spool ? in->spooled_bytes : in->queued_bytes;
    unsigned limit = in->deferring ? l->unsaturated_permille : l->saturated_permille;

    return l->defer_max_ns > 0 && !in->catching_up && !in->losing &&
           in->reader_wait_ns < l->defer_max_ns && backlog < l->defer_room_bytes &&
           in->spare_permille < limit;
}

enum repro_app_prio_level repro_app_prio_decide(const struct repro_app_prio_limits *l,
                                                const struct repro_app_prio_input *in)
{
    uint64_t wait = in->reader_wait_ns > in->writer_wait_ns ? in->reader_wait_ns
                                                            : in->writer_wait_ns;
    if (in->loop_stall_ns > wait)
        wait = in->loop_stall_ns;
    int far_behind = in->queued_bytes >= l->far_behind_bytes || wait >= l->far_behind_wait_ns;
    int behind = in->queued_bytes >= l->behind_bytes || wait >= l->behind_wait_ns ||
                 in->reader_blocked_ns >= l->reader_blocked_ns;
    int caught_up = in->queued_bytes <= l->low_bytes && in->reader_wait_ns == 0 &&
                    in->reader_blocked_ns == 0 && in->writer_wait_ns < l->behind_wait_ns / 2 &&
                    in->loop_stall_ns < l->behind_wait_ns / 2;

    if (in->deferring) {
        /* nothing to parse: the loop takes no batch, so the queue and its
         * waits say nothing; only a loop starved for its own turns
         * (signals, --duration, the status line) is raised, one step */
        if (in->level == REPRO_PRIO_IDLE)
            return in->loop_stall_ns >= l->behind_wait_ns ? REPRO_PRIO_LOW : REPRO_PRIO_IDLE;
        return in->level; /* no lowering until it ends: a starved loop would flap */
    }
    if (far_behind)
        return REPRO_PRIO_NORMAL;
    if (in->level == REPRO_PRIO_IDLE)
        return behind ? REPRO_PRIO_LOW : REPRO_PRIO_IDLE;
    if (caught_up && in->raised_for_ns >= l->min_raised_ns)
        return REPRO_PRIO_IDLE;
    return in->level; /* raised ones stay where they are until caught up */
}

/* Both threads to level; the first error (an errno value) or 0. */
static int set_both(struct repro_app_prio *p, enum repro_app_prio_level level)
{
    int nice = p->base_nice;
    int e = 0;

    if (level == REPRO_PRIO_LOW)
        nice = nice + REPRO_APP_PRIO_LOW_NICE > 19 ? 19 : nice + REPRO_APP_PRIO_LOW_NICE;
    for (int i = 0; i < 2; i++) {
        int r = repro_thread_set_sched(p->tids[i], level == REPRO_PRIO_IDLE ? SCHED_IDLE : SCHED_OTHER,
                                       nice);
        if (e == 0)
            e = r;
    }
    return e;
}

static void move_to(struct repro_app_prio *p, enum repro_app_prio_level level, uint64_t now)
{
    if (level == p->level)
        return;
    /* a failed switch (the permission probed at start was taken away?)
     * changes nothing recorded: the next look tries again */
    if (set_both(p, level) != 0) {
        atomic_fetch_add(&p->failures, 1);
        return;
    }
    if (p->level == REPRO_PRIO_IDLE)
        stretch_begin(&p->raised, now);
    if (level == REPRO_PRIO_NORMAL)
        atomic_fetch_add(&p->raises_far, 1);
    atomic_store(&p->level_pub, (int)level);
    if (level == REPRO_PRIO_IDLE)
        stretch_end(&p->raised, now);
    p->level = level;
}

/* Reads the host's CPU time (/proc/stat) and the agent's: REPRO_OK, or
 * REPRO_E_IO (the policy then sees no saturation). */
static int sample_cpu(struct repro_app_cpu_sample *out)
{
    unsigned long long v[8] = {0};
    struct timespec ts;
    FILE *f = fopen("/proc/stat", "r");
    int n;

    if (f == NULL)
        return REPRO_E_IO;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 5 || clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return REPRO_E_IO;
    out->total = 0;
    for (int i = 0; i < 8; i++)
        out->total += v[i];
    out->idle = v[3] + v[4]; /* idle and iowait */
    out->own_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return REPRO_OK;
}

/* The share of all CPUs (1/1000) left unused between two samples, the
 * agent's own time counted as unused; 1000 when it cannot tell. */
unsigned repro_app_prio_spare(const struct repro_app_cpu_sample *a, const struct repro_app_cpu_sample *b,
                              long ticks_per_s)
{
    uint64_t total, spare;

    if (b->total <= a->total || ticks_per_s <= 0 || ticks_per_s > 1000000000)
        return 1000;
    total = b->total - a->total;
    spare = (b->idle - a->idle) + (b->own_ns - a->own_ns) / (1000000000u / (uint64_t)ticks_per_s);
    return spare >= total ? 1000 : (unsigned)(spare * 1000 / total);
}

/* Every fifth look (100 ms): a new CPU sample; the spare share over the
 * last 200 ms, or 1000 until there are two. */
static unsigned look_at_cpu(struct repro_app_prio *p)
{
    if (p->ticks++ % 5 == 0) {
        struct repro_app_cpu_sample c;
        if (sample_cpu(&c) == REPRO_OK) {
            p->samples[0] = p->samples[1];
            p->samples[1] = p->samples[2];
            p->samples[2] = c;
            if (p->n_samples < 3)
                p->n_samples++;
        }
    }
    return p->n_samples < 3 ? 1000
                            : repro_app_prio_spare(&p->samples[0], &p->samples[2], p->ticks_per_s);
}

/* Publishes a change of deferral. */
static void set_deferring(struct repro_app_prio *p, int on, uint64_t now)
{
    if (on == atomic_load(&p->deferral.on))
        return;
    if (on)
        stretch_begin(&p->deferral, now);
    else
        stretch_end(&p->deferral, now);
}

static void *watch(void *arg)
{
    struct repro_app_prio *p = arg;

    pthread_setname_np(pthread_self(), "repro-cpu"); /* top -H, perf */
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct timespec until = repro_deadline_ms(CLOCK_MONOTONIC, WATCH_MS);
        struct repro_reader_stats rs;
        struct repro_app_prio_input in;
        uint64_t now;

        pthread_cond_timedwait(&p->cv, &p->mu, &until);
        if (p->stop)
            break;
        pthread_mutex_unlock(&p->mu);
        now = repro_mono_ns();
        repro_reader_stats(p->reader, &rs);
        in.queued_bytes = rs.queued_bytes;
        in.reader_wait_ns = repro_reader_wait_ns(p->reader, now);
        in.writer_wait_ns = repro_store_writer_wait_ns(p->writer, now);
        in.reader_blocked_ns = repro_reader_blocked_ns(p->reader, now);
        {
            uint64_t beat = atomic_load(&p->heartbeat_ns);
            in.loop_stall_ns = beat && now > beat ? now - beat : 0;
        }
        in.level = p->level;
        in.raised_for_ns = p->level != REPRO_PRIO_IDLE ? now - atomic_load(&p->raised.since) : 0;
        in.spooled_bytes = rs.spooled_bytes;
        in.spare_permille = look_at_cpu(p);
        in.deferring = atomic_load(&p->deferral.on);
        if (p->catching_up && in.spooled_bytes == 0 && in.queued_bytes <= p->lim.low_bytes)
            p->catching_up = 0;
        in.catching_up = p->catching_up;
        in.losing = rs.queue_drops + rs.spool_errors != p->drops_seen;
        p->drops_seen = rs.queue_drops + rs.spool_errors;
        {
            int was = in.deferring;
            in.deferring = !atomic_load(&p->no_deferral) && repro_app_prio_defer(&p->lim, &in);
            /* ended while the host is still saturated: at a limit */
            if (was && !in.deferring && in.spare_permille < p->lim.unsaturated_permille)
                p->catching_up = 1;
        }
        set_deferring(p, in.deferring, now);
        move_to(p, repro_app_prio_decide(&p->lim, &in), now);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Whether CAP_SYS_NICE is in the calling thread's effective set. */
static int has_cap_sys_nice(void)
{
    char line[128];
    unsigned long long eff = 0;
    FILE *f = fopen("/proc/thread-self/status", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    fclose(f);
    return (int)(eff >> 23 & 1); /* CAP_SYS_NICE */
}

/* Whether threads of this process may go back from SCHED_IDLE to
 * SCHED_OTHER at nice base_nice: the kernel's can_nice() (CAP_SYS_NICE, or
 * RLIMIT_NICE >= 20 - nice). Changes nothing. */
int repro_app_prio_can_raise(int base_nice)
{
    struct rlimit rl;

    if (has_cap_sys_nice())
        return 1;
    return getrlimit(RLIMIT_NICE, &rl) == 0 &&
           (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)(20 - base_nice));
}

int repro_app_prio_start(struct repro_reader *reader, struct repro_store_writer *writer,
                         const struct repro_app_prio_limits *l, struct repro_app_prio **out,
                         struct repro_error *err)
{
    struct repro_app_prio *p;
    struct sched_param sp = {0};
    pthread_condattr_t ca;
    pthread_attr_t ta;
    int e;

    int base;

    *out = NULL;
    errno = 0;
    base = getpriority(PRIO_PROCESS, (id_t)repro_gettid());
    if (errno != 0)
        base = 0;
    if (!repro_app_prio_can_raise(base))
        return repro_error_set(err, REPRO_E_UNSUPPORTED,
                               "idle-first CPU needs CAP_SYS_NICE or RLIMIT_NICE >= %d to raise "
                               "its threads again; running them at normal priority",
                               20 - base);
    p = repro_calloc(1, sizeof *p);
    if (p == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot start idle-first CPU: out of memory");
    p->reader = reader;
    p->writer = writer;
    p->lim = *l;
    p->tids[0] = repro_gettid();
    p->tids[1] = repro_store_writer_tid(writer);
    p->base_nice = base;
    p->ticks_per_s = sysconf(_SC_CLK_TCK);
    atomic_store(&p->heartbeat_ns, repro_mono_ns());
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if ((e = set_both(p, REPRO_PRIO_IDLE)) != 0) {
        set_both(p, REPRO_PRIO_NORMAL);
        repro_error_set(err, REPRO_E_UNSUPPORTED, "cannot run the capture threads as SCHED_IDLE: %s",
                        strerror(e));
        goto fail;
    }
    /* the watcher must not inherit the parser's new SCHED_IDLE */
    pthread_attr_init(&ta);
    pthread_attr_setinheritsched(&ta, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&ta, SCHED_OTHER);
    pthread_attr_setschedparam(&ta, &sp);
    e = pthread_create(&p->watcher, &ta, watch, p);
    pthread_attr_destroy(&ta);
    if (e != 0) {
        set_both(p, REPRO_PRIO_NORMAL);
        repro_error_set(err, REPRO_E_IO, "cannot start the CPU policy's thread: %s", strerror(e));
        goto fail;
    }
    *out = p;
    return REPRO_OK;
fail:
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    repro_free(p);
    return err && err->code ? err->code : REPRO_E_IO;
}

int repro_app_prio_deferring(struct repro_app_prio *p)
{
    return p ? atomic_load_explicit(&p->deferral.on, memory_order_relaxed) &&
                   !atomic_load_explicit(&p->no_deferral, memory_order_relaxed)
             : 0;
}

void repro_app_prio_no_deferral(struct repro_app_prio *p)
{
    if (p)
        atomic_store(&p->no_deferral, 1); /* the watcher ends the stretch at its next look */
}

void repro_app_prio_heartbeat(struct repro_app_prio *p, uint64_t now_ns)
{
    if (p)
        atomic_store_explicit(&p->heartbeat_ns, now_ns, memory_order_relaxed);
}

void repro_app_prio_stats(struct repro_app_prio *p, struct repro_app_prio_stats *out)
{
    memset(out, 0, sizeof *out);
    if (p == NULL)
        return;
    out->active = 1;
    out->level = (enum repro_app_prio_level)atomic_load(&p->level_pub);
    out->raises = atomic_load(&p->raised.count);
    out->raises_far_behind = atomic_load(&p->raises_far);
    out->raised_ns = stretch_ns(&p->raised);
    out->failures = atomic_load(&p->failures);
    out->deferring = atomic_load(&p->deferral.on);
    out->deferrals = atomic_load(&p->deferral.count);
    out->deferred_ns = stretch_ns(&p->deferral);
}

void repro_app_prio_stop(struct repro_app_prio *p, struct repro_app_prio_stats *final)
{
    if (p == NULL) {
        if (final)
            memset(final, 0, sizeof *final);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->watcher, NULL);
    if (p->level != REPRO_PRIO_IDLE) {
        atomic_store(&p->level_pub, REPRO_PRIO_IDLE);
        stretch_end(&p->raised, repro_mono_ns());
    }
    set_deferring(p, 0, repro_mono_ns());
    p->level = REPRO_PRIO_IDLE;
    set_both(p, REPRO_PRIO_NORMAL);
    if (final)
        repro_app_prio_stats(p, final);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    repro_free(p);
}

void repro_app_prio_keep_raisable(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NICE, &rl) == 0 && rl.rlim_cur < 20) {
        rl.rlim_cur = 20;
        if (rl.rlim_max < 20)
            rl.rlim_max = 20;
        setrlimit(RLIMIT_NICE, &rl); /* best effort: needs CAP_SYS_RESOURCE to raise the maximum */
    }
}
