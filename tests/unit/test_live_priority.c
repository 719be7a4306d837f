/*
 * app/live_priority: the idle-first CPU policy of the live agent.
 * - the decision, case by case (a pure function);
 * - the real thing as root: a reader on lo and a store writer; the calling
 *   thread and the writer's go SCHED_IDLE, the watcher stays normal; a
 *   batch left untaken raises both to nice 10, then (with the default
 *   limits) to nice 0; taking it lowers them again; stop leaves them at
 *   normal priority, nice 0;
 * - the permission probe in a child that dropped root, with and without
 *   repro_app_prio_keep_raisable() before;
 * - deferral: when the host counts as saturated (decision cases), and the
 *   spare share of the CPUs computed from two samples.
 * Scheduling policies are read back from /proc/self/task/TID/stat (field
 * 41), not from the module's own state.
 */
#include "app/live_priority.h"
#include "test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define MS 1000000u

/* ---- the decision --------------------------------------------------------- */

static void test_decide(void **state)
{
    struct repro_app_prio_limits l;
    enum { I = REPRO_PRIO_IDLE, L = REPRO_PRIO_LOW, N = REPRO_PRIO_NORMAL };
    static const struct {
        uint64_t queued, reader_wait_ms, writer_wait_ms, raised_for_ms;
        int level, want;
        const char *why;
        uint64_t blocked_ms; /* the reader waiting for the parser's lock */
        uint64_t stall_ms;   /* since the parser's loop last turned */
    } cases[] = {
        {0, 0, 0, 0, I, I, "idle, nothing waits", 0, 0},
        {(16u << 20) - 1, 0, 0, 0, I, I, "just under a quarter of the queue", 0, 0},
        {16u << 20, 0, 0, 0, I, L, "a quarter of the queue", 0, 0},
        {(32u << 20) - 1, 0, 0, 0, I, L, "just under half", 0, 0},
        {32u << 20, 0, 0, 0, I, N, "half the queue, straight from idle", 0, 0},
        {4096, 249, 0, 0, I, I, "a batch waited 249 ms", 0, 0},
        {4096, 250, 0, 0, I, L, "a batch waited 250 ms (a starved parser)", 0, 0},
        {4096, 499, 0, 0, L, L, "a batch waited 499 ms at nice 10", 0, 0},
        {4096, 500, 0, 0, L, N, "a batch waited 500 ms", 0, 0},
        {0, 0, 250, 0, I, L, "rows waited 250 ms for a commit", 0, 0},
        {0, 0, 500, 0, L, N, "rows waited 500 ms", 0, 0},
        {16u << 20, 0, 0, 5000, L, L, "at nice 10 and still behind", 0, 0},
        {16u << 20, 0, 0, 5000, N, N, "at nice 0, behind: stays (no step down)", 0, 0},
        {0, 0, 0, 99, L, L, "caught up, but raised for only 99 ms", 0, 0},
        {0, 0, 0, 100, L, I, "caught up after 100 ms", 0, 0},
        {0, 0, 0, 100, N, I, "caught up at nice 0: straight back to idle", 0, 0},
        {1u << 20, 0, 0, 100, L, I, "1/64 of the queue is caught up", 0, 0},
        {(1u << 20) + 1, 0, 0, 100, L, L, "just over 1/64", 0, 0},
        {0, 1, 0, 100, L, L, "a batch is waiting", 0, 0},
        {0, 0, 124, 100, L, I, "a commit in progress for 124 ms", 0, 0},
        {0, 0, 125, 100, L, L, "a commit waiting 125 ms", 0, 0},
        {0, 0, 0, 0, I, I, "the reader blocked 19 ms on the parser's lock", 19, 0},
        {0, 0, 0, 0, I, L, "the reader blocked 20 ms (a starved parser holds the lock)", 20, 0},
        {0, 0, 0, 100, L, L, "caught up, but the reader is blocked", 1, 0},
        {0, 0, 0, 0, I, I, "the loop turned 249 ms ago", 0, 249},
        {0, 0, 0, 0, I, L, "the loop has not turned for 250 ms (starved)", 0, 250},
        {0, 0, 0, 0, L, N, "nor for 500 ms", 0, 500},
        {0, 0, 0, 100, L, L, "caught up, the loop last turned 125 ms ago", 0, 125},
        {0, 0, 0, 100, L, I, "caught up, the loop turned 124 ms ago", 0, 124},
    };
    (void)state;

    repro_app_prio_limits_default(&l, 64u << 20);
    assert_int_equal(l.behind_bytes, 16u << 20);
    assert_int_equal(l.far_behind_bytes, 32u << 20);
    assert_int_equal(l.low_bytes, 1u << 20);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct repro_app_prio_input in = {
            .queued_bytes = cases[i].queued,
            .reader_wait_ns = cases[i].reader_wait_ms * MS,
            .writer_wait_ns = cases[i].writer_wait_ms * MS,
            .reader_blocked_ns = cases[i].blocked_ms * MS,
            .loop_stall_ns = cases[i].stall_ms * MS,
            .raised_for_ns = cases[i].raised_for_ms * MS,
            .level = (enum repro_app_prio_level)cases[i].level,
        };
        int got = (int)repro_app_prio_decide(&l, &in);
        TU_CHECK(got == cases[i].want, "%s: got %d, want %d", cases[i].why, got, cases[i].want);
    }
    assert_int_equal(tu_failures, 0);
}

/* Deferral: only while the host is saturated, within its age and room. */
static void test_defer(void **state)
{
    struct repro_app_prio_limits l;
    static const struct {
        unsigned spare; /* permille */
        int deferring, spool, want;
        uint64_t wait_ms, backlog;
        const char *why;
        int catching_up;
        int losing; /* drops or spool errors since the last look */
    } cases[] = {
        {99, 0, 1, 1, 0, 0, "99/1000 spare: saturated", 0, 0},
        {100, 0, 1, 0, 0, 0, "100/1000 spare is not saturated", 0, 0},
        {249, 1, 1, 1, 0, 0, "a deferral goes on under 250/1000", 0, 0},
        {250, 1, 1, 0, 0, 0, "and ends at 250", 0, 0},
        {150, 0, 1, 0, 0, 0, "150 does not start one", 0, 0},
        {0, 1, 1, 1, 9999, 0, "oldest batch 9.999 s old", 0, 0},
        {0, 1, 1, 0, 10000, 0, "10 s: the age limit ends it", 0, 0},
        {0, 0, 1, 0, 10000, 0, "nor starts one", 0, 0},
        {0, 1, 1, 1, 0, (768u << 20) - 1, "spool just under 3/4 of 1 GiB", 0, 0},
        {0, 1, 1, 0, 0, 768u << 20, "spool at 3/4: ends", 0, 0},
        {0, 1, 0, 1, 0, (32u << 20) - 1, "no spool: queue just under half", 0, 0},
        {0, 1, 0, 0, 0, 32u << 20, "no spool: half the queue ends it", 0, 0},
        {1000, 0, 1, 0, 0, 0, "an idle host", 0, 0},
        {0, 0, 1, 0, 0, 0, "catching up after a limit: no new deferral", 1, 0},
        {0, 1, 1, 0, 0, 0, "nor going on with one", 1, 0},
        {0, 1, 1, 0, 0, 0, "packets dropped since the last look: it ends", 0, 1},
        {0, 0, 1, 0, 0, 0, "nor starts", 0, 1},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        repro_app_prio_limits_default(&l, 64u << 20);
        l.defer_max_ns = 10000 * (uint64_t)MS;
        if (cases[i].spool) {
            l.defer_spool = 1;
            l.defer_room_bytes = (1024u << 20) / 4 * 3;
        }
        struct repro_app_prio_input in = {
            .spare_permille = cases[i].spare,
            .deferring = cases[i].deferring,
            .reader_wait_ns = cases[i].wait_ms * MS,
            .spooled_bytes = cases[i].spool ? cases[i].backlog : 0,
            .queued_bytes = cases[i].spool ? 64u << 20 : cases[i].backlog,
            .catching_up = cases[i].catching_up,
            .losing = cases[i].losing,
        };
        int got = repro_app_prio_defer(&l, &in);
        TU_CHECK(got == cases[i].want, "%s: got %d, want %d", cases[i].why, got, cases[i].want);
    }
    /* --defer-max 0: never */
    repro_app_prio_limits_default(&l, 64u << 20);
    struct repro_app_prio_input sat = {.spare_permille = 0};
    TU_CHECK(repro_app_prio_defer(&l, &sat) == 0, "defer_max 0 never defers");
    /* while deferring, the threads stay idle whatever the queue says */
    struct repro_app_prio_input full = {.queued_bytes = 64u << 20,
                                        .reader_wait_ns = 900 * MS,
                                        .level = REPRO_PRIO_IDLE,
                                        .deferring = 1};
    TU_CHECK(repro_app_prio_decide(&l, &full) == REPRO_PRIO_IDLE, "deferring keeps them idle");
    full.loop_stall_ns = 249 * MS;
    TU_CHECK(repro_app_prio_decide(&l, &full) == REPRO_PRIO_IDLE,
             "deferring, loop turned 249 ms ago");
    full.loop_stall_ns = 250 * MS;
    TU_CHECK(repro_app_prio_decide(&l, &full) == REPRO_PRIO_LOW,
             "deferring, a loop starved 250 ms (signals, --duration) is raised one step");
    full.loop_stall_ns = 900 * MS;
    full.level = REPRO_PRIO_LOW;
    full.raised_for_ns = 500 * MS;
    TU_CHECK(repro_app_prio_decide(&l, &full) == REPRO_PRIO_LOW, "no further while deferring");
    full.loop_stall_ns = 0;
    full.raised_for_ns = 5000 * MS;
    TU_CHECK(repro_app_prio_decide(&l, &full) == REPRO_PRIO_LOW,
             "turning again: stays raised until the deferral ends (no flapping)");
    full.deferring = 0;
    full.level = REPRO_PRIO_IDLE;
    full.loop_stall_ns = 0;
    TU_CHECK(repro_app_prio_decide(&l, &full) == REPRO_PRIO_NORMAL, "after it: far behind");
    assert_int_equal(tu_failures, 0);
}

/* The spare share of the CPUs from two samples: idle plus the agent's own
 * time, over all of it. */
static void test_spare(void **state)
{
    /* 100 ticks per second, 2 CPUs, 200 ms: 40 ticks in all */
    struct repro_app_cpu_sample a = {1000, 500, 0};
    struct repro_app_cpu_sample b = {1040, 502, 0};
    (void)state;

    assert_int_equal(repro_app_prio_spare(&a, &b, 100), 50); /* 2 of 40 idle */
    b.own_ns = 20000000;                                     /* the agent ran 20 ms = 2 ticks */
    assert_int_equal(repro_app_prio_spare(&a, &b, 100), 100);
    b.own_ns = 2000000000; /* more than the window (ticks are coarse) */
    assert_int_equal(repro_app_prio_spare(&a, &b, 100), 1000);
    b = a; /* no time passed */
    assert_int_equal(repro_app_prio_spare(&a, &b, 100), 1000);
    b.total = 1040;
    b.idle = 540;
    assert_int_equal(repro_app_prio_spare(&a, &b, 100), 1000); /* all idle */
    assert_int_equal(repro_app_prio_spare(&a, &b, 0), 1000);   /* unknown tick rate */
}

/* ---- threads' policies, from /proc ----------------------------------------- */

/* Field n (1-based, n > 2) of /proc/self/task/TID/stat. */
static long long stat_field(pid_t tid, int n)
{
    char path[64], buf[2048], *p;
    FILE *f;
    int field = 2;
    long long v = -1;
    size_t len;

    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    f = fopen(path, "r");
    assert_non_null(f);
    len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = 0;
    p = strrchr(buf, ')'); /* comm may hold spaces */
    assert_non_null(p);
    for (p++; *p && field < n; p++)
        if (*p == ' ')
            field++;
    assert_int_equal(sscanf(p, "%lld", &v), 1);
    return v;
}

static int policy_of(pid_t tid)
{
    return (int)stat_field(tid, 41);
}

static int nice_of(pid_t tid)
{
    return (int)stat_field(tid, 19);
}

static pid_t tid_named(const char *comm)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    pid_t found = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[300], name[64] = "";
        FILE *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(name, sizeof name, f))
            name[strcspn(name, "\n")] = 0;
        fclose(f);
        if (strcmp(name, comm) == 0)
            found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

/* The thread named comm, waiting up to 3 s for it to name itself (a
 * thread does so when it starts running). */
static pid_t tid_named_wait(const char *comm)
{
    pid_t tid = 0;
    for (int i = 0; i < 300 && (tid = tid_named(comm)) == 0; i++)
        usleep(10000); /* polling /proc, bounded */
    return tid;
}

/* The policy whose parser this test thread plays: its loop beats while
 * the test waits (NULL: no beat, a stalled loop). */
static struct repro_app_prio *beating;

/* Waits up to 3 s for tid to have policy want (and, unless want_nice is
 * -100, that nice value), beating for the parser meanwhile. */
static int wait_sched(pid_t tid, int want, int want_nice)
{
    for (int i = 0; i < 300; i++) {
        repro_app_prio_heartbeat(beating, repro_mono_ns());
        if (policy_of(tid) == want && (want_nice == -100 || nice_of(tid) == want_nice))
            return 1;
        usleep(10000); /* polling /proc, bounded */
    }
    return 0;
}

struct lo {
    int tx;
    struct sockaddr_in to;
};

/* Sends one datagram and leaves its batch untaken until both threads run
 * SCHED_OTHER at nice; then takes it, and waits for both to be idle again. */
static void take_one_late(struct lo *f, struct repro_reader *r, char c, pid_t me, pid_t writer,
                          int nice)
{
    struct repro_packet_batch *b = NULL;
    int got = 0;

    assert_int_equal(sendto(f->tx, &c, 1, 0, (struct sockaddr *)&f->to, sizeof f->to), 1);
    assert_true(wait_sched(me, SCHED_OTHER, nice));
    assert_true(wait_sched(writer, SCHED_OTHER, nice));
    for (int i = 0; i < 50 && got <= 0; i++)
        got = repro_reader_next(r, 100, &b);
    assert_int_equal(got, 1);
    assert_int_equal(b->n, 1);
    repro_reader_release(r, b);
    assert_true(wait_sched(me, SCHED_IDLE, -100));
    assert_true(wait_sched(writer, SCHED_IDLE, -100));
}

static void test_raise_and_lower_for_real(void **state)
{
    struct repro_source_opts o;
    struct repro_error err = {0};
    struct repro_source *src;
    struct repro_reader *r = NULL;
    struct repro_store *store = NULL;
    struct repro_store_writer *w = NULL;
    struct repro_app_prio *p = NULL;
    struct repro_app_prio_limits l;
    struct repro_app_prio_stats st;
    struct repro_packet_batch *b = NULL;
    struct lo f = {0};
    socklen_t len = sizeof f.to;
    char filter[64], db[600];
    pid_t me = (pid_t)syscall(SYS_gettid), writer_tid;
    int rx, got = 0;
    (void)state;

    if (geteuid() != 0)
        tu_skip("needs root (live capture on lo)");
    rx = socket(AF_INET, SOCK_DGRAM, 0);
    f.tx = socket(AF_INET, SOCK_DGRAM, 0);
    f.to.sin_family = AF_INET;
    f.to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(rx, (struct sockaddr *)&f.to, sizeof f.to), 0);
    assert_int_equal(getsockname(rx, (struct sockaddr *)&f.to, &len), 0);
    snprintf(filter, sizeof filter, "udp port %u", ntohs(f.to.sin_port));
    memset(&o, 0, sizeof o);
    o.iface = "lo";
    o.filter = filter;
    src = repro_source_open(&o, &err);
    assert_non_null(src);
    assert_int_equal(repro_reader_start(src, 0, &r, &err), REPRO_OK);
    snprintf(db, sizeof db, "%s/prio.db", test_tmpdir());
    assert_int_equal(repro_store_open(db, 0, &store, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_start(store, 65536, &w, &err), REPRO_OK);
    writer_tid = tid_named_wait("repro-writer");
    assert_true(writer_tid > 0);
    assert_int_equal(policy_of(me), SCHED_OTHER);

    /* phase 1, nice 10 only (the nice-0 step pushed out of reach): a
     * batch nobody takes raises both after 250 ms; taken, idle again */
    repro_app_prio_limits_default(&l, 64u << 20);
    l.far_behind_bytes = UINT64_MAX;
    l.far_behind_wait_ns = UINT64_MAX;
    assert_int_equal(repro_app_prio_start(r, w, &l, &p, &err), REPRO_OK);
    beating = p;
    assert_int_equal(policy_of(me), SCHED_IDLE);
    assert_int_equal(policy_of(writer_tid), SCHED_IDLE);
    assert_int_equal(policy_of(tid_named_wait("repro-cpu")), SCHED_OTHER);
    assert_int_equal(policy_of(tid_named_wait("repro-reader")), SCHED_OTHER);
    repro_app_prio_stats(p, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.raises, 0);
    assert_int_equal(st.level, REPRO_PRIO_IDLE);
    take_one_late(&f, r, 'x', me, writer_tid, REPRO_APP_PRIO_LOW_NICE);
    repro_app_prio_stats(p, &st);
    assert_int_equal(st.raises, 1);
    assert_int_equal(st.raises_far_behind, 0);
    assert_true(st.raised_ns >= 100 * MS); /* at least min_raised_ns */
    beating = NULL;
    repro_app_prio_stop(p, &st);
    assert_int_equal(policy_of(me), SCHED_OTHER);
    assert_int_equal(nice_of(me), 0);
    assert_int_equal(policy_of(writer_tid), SCHED_OTHER);
    assert_int_equal(nice_of(writer_tid), 0);
    for (int i = 0; i < 300 && tid_named("repro-cpu") != 0; i++)
        usleep(10000); /* the joined thread leaves /proc a moment later */
    assert_int_equal(tid_named("repro-cpu"), 0);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.level, REPRO_PRIO_IDLE);
    assert_int_equal(st.raises, 1);

    /* phase 2, the default limits: after 500 ms both go on to nice 0 */
    repro_app_prio_limits_default(&l, 64u << 20);
    assert_int_equal(repro_app_prio_start(r, w, &l, &p, &err), REPRO_OK);
    beating = p;
    take_one_late(&f, r, 'y', me, writer_tid, 0);
    repro_app_prio_stats(p, &st);
    assert_int_equal(st.raises, 1);
    assert_int_equal(st.raises_far_behind, 1);
    assert_true(st.raised_ns >= 100 * MS); /* at least min_raised_ns */

    /* phase 3: the parser's loop stops turning (a starved loop gates the
     * writer's rows, --duration, the status line): raised, from idle,
     * without a packet; turning again, idle again */
    beating = NULL;
    assert_true(wait_sched(me, SCHED_OTHER, -100));
    beating = p;
    assert_true(wait_sched(me, SCHED_IDLE, -100));
    repro_app_prio_stats(p, &st);
    assert_int_equal(st.raises, 2);
    assert_int_equal(st.failures, 0);
    beating = NULL;
    repro_app_prio_stop(p, NULL);
    assert_int_equal(policy_of(me), SCHED_OTHER);
    assert_int_equal(nice_of(me), 0);

    /* phase 4: started under nice 5, "behind" is nice 15 and the end is
     * nice 5 again, not 0 (an administrator's nice holds) */
    assert_int_equal(setpriority(PRIO_PROCESS, (id_t)me, 5), 0);
    assert_int_equal(setpriority(PRIO_PROCESS, (id_t)writer_tid, 5), 0);
    repro_app_prio_limits_default(&l, 64u << 20);
    l.far_behind_bytes = UINT64_MAX;
    l.far_behind_wait_ns = UINT64_MAX;
    assert_int_equal(repro_app_prio_start(r, w, &l, &p, &err), REPRO_OK);
    beating = p;
    take_one_late(&f, r, 'z', me, writer_tid, 5 + REPRO_APP_PRIO_LOW_NICE);
    beating = NULL;
    repro_app_prio_stop(p, NULL);
    assert_int_equal(policy_of(me), SCHED_OTHER);
    assert_int_equal(nice_of(me), 5);
    assert_int_equal(nice_of(writer_tid), 5);
    assert_int_equal(setpriority(PRIO_PROCESS, (id_t)me, 0), 0);

    repro_reader_stop(r);
    while ((got = repro_reader_next(r, 200, &b)) >= 0)
        if (got > 0)
            repro_reader_release(r, b);
    assert_int_equal(repro_reader_finish(r, NULL, &err), REPRO_OK);
    assert_int_equal(repro_store_writer_finish(w, &err), REPRO_OK);
    repro_store_close(store);
    repro_source_close(src);
    close(rx);
    close(f.tx);
    repro_app_prio_stop(NULL, NULL);
}

/* Whether this process has capability number bit in its effective set. */
static int has_cap(unsigned bit)
{
    char line[256];
    unsigned long long eff = 0;
    FILE *f = fopen("/proc/self/status", "r");

    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1)
            break;
    fclose(f);
    return (int)(eff >> bit & 1);
}

/* In a child: RLIMIT_NICE 0, then (keep) keep_raisable, then root dropped
 * to nobody; exits with can_raise()'s answer, 2 when keep_raisable could
 * not raise the limit (root without CAP_SYS_RESOURCE, as in some
 * containers), 3 on a setup failure. */
static int child_can_raise(int keep)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {0, 0};
        if (setrlimit(RLIMIT_NICE, &rl) != 0)
            _exit(3);
        if (keep) {
            repro_app_prio_keep_raisable();
            if (getrlimit(RLIMIT_NICE, &rl) != 0 || rl.rlim_cur < 20)
                _exit(2);
        }
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        _exit(repro_app_prio_can_raise(0));
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_permission_probe(void **state)
{
    struct repro_app_prio *p = (struct repro_app_prio *)&p;
    struct repro_app_prio_limits l;
    struct repro_error err = {0};
    (void)state;

    if (geteuid() != 0)
        tu_skip("needs root (to drop it)");
    assert_int_equal(repro_app_prio_can_raise(0), 1); /* root: CAP_SYS_NICE */
    assert_int_equal(child_can_raise(0), 0);          /* nobody, RLIMIT_NICE 0 */
    /* the limit kept across the drop; root without CAP_SYS_RESOURCE (some
     * containers) cannot raise its maximum, and then nobody cannot raise
     * threads: the agent warns and runs them at normal priority */
    assert_int_equal(child_can_raise(1), has_cap(24 /* CAP_SYS_RESOURCE */) ? 1 : 2);

    /* start refuses before touching any thread (reader and writer unused) */
    repro_app_prio_limits_default(&l, 64u << 20);
    pid_t pid = fork();
    int status;
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {0, 0};
        if (setrlimit(RLIMIT_NICE, &rl) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        if (repro_app_prio_start(NULL, NULL, &l, &p, &err) != REPRO_E_UNSUPPORTED || p != NULL)
            _exit(4);
        if (strstr(err.msg, "CAP_SYS_NICE") == NULL)
            _exit(5);
        if (policy_of((pid_t)syscall(SYS_gettid)) != SCHED_OTHER)
            _exit(6);
        _exit(nice_of((pid_t)syscall(SYS_gettid)) == 0 ? 0 : 7); /* the check changes nothing */
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_defer),
        cmocka_unit_test(test_spare),
        cmocka_unit_test(test_raise_and_lower_for_real),
        cmocka_unit_test(test_permission_probe),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
