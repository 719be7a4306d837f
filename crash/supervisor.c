/*
 * The ptrace supervisor behind `repro run`: starts a command under
 * PTRACE_SEIZE, stays out of its way while it is healthy, and when a thread
 * takes a fatal signal records every thread's registers and stack, the
 * module table with build-ids and the open TCP connections, then lets the
 * kernel kill the process with that very signal.
 *
 * Spec: ptrace(2) ("PTRACE_SEIZE", group-stop with PTRACE_LISTEN, event
 * stops), the /proc layout of proc(5).
 *
 * Healthy path: one waitpid per ptrace-stop (signal delivery, thread
 * creation, exec), each answered at once; no syscall tracing, so a traced
 * service pays only for its signals and clones.
 *
 * Threading: each handle has one tracer thread that forks the command,
 * seizes it and is the only thread to wait for it (waitpid with
 * __WNOTHREAD, so several handles in one process never see each other's
 * tracees). No process-wide state: no signal handler, no SIGCHLD, no
 * global variable; the handle's fields say which thread touches them.
 *
 * Crash path: all threads are PTRACE_INTERRUPTed and waited for with a
 * bounded wait (waitpid WNOHANG, sleeping in sigtimedwait for SIGCHLD on
 * the tracer thread only, see wait_task), then unwound with libdwfl.
 * The unwinder was chosen by measurement on a stopped 16-thread process
 * (145 frames, 4 modules, x86_64, warm page cache, 30 runs): libdwfl
 * (dwfl_linux_proc_report + dwfl_linux_proc_attach(assume stopped) +
 * dwfl_getthread_frames, module table with build-ids included) 140 us
 * median; libunwind-ptrace (_UPT_create + unw_init_remote per thread, one
 * address space with caching, stacks only, no module table) 583 us median.
 * libdwfl also gives the module table for free. `bench/crash_bench.sh
 * --unwinders` repeats the comparison (its program, 97 frames: 127 us vs
 * 553 us). Debug files are not looked
 * for (no debuginfod in the crash path): .eh_frame CFI first, libdwfl's
 * frame-pointer fallback after it.
 *
 * Left out: syscall tracing, seccomp, non-x86_64/aarch64 register dumps, a
 * crash of the supervisor itself (tracees are detached by the kernel), a
 * setuid program (the kernel runs it without privileges under ptrace).
 */
#include "supervisor.h"

#include <elf.h>
#include <elfutils/libdwfl.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define COMPONENT "capture.supervisor" /* the tag `repro run --trace=` has always used */
#define DEFAULT_RECORD_TIMEOUT_MS 2000
#define RELEASE_TIMEOUT_MS 1000
#define MAX_CMDLINE (64 * 1024)

/* The pure helpers (status parsing, registers, crash signals) are in
 * crash/supervisor_util.c. */

/* ---- a set of thread ids (open addressing) ---------------------------- */

#define TID_EMPTY 0
#define TID_GONE (-1)

struct tidset {
    int *k;
    size_t cap, used, live; /* used counts live and tombstone slots */
};

static size_t tid_slot(int tid, size_t cap)
{
    return (size_t)((uint32_t)tid * 2654435761u) & (cap - 1);
}

static int tidset_has(const struct tidset *s, int tid)
{
    size_t i, n;
    if (s->cap == 0)
        return 0;
    for (i = tid_slot(tid, s->cap), n = 0; n < s->cap; i = (i + 1) & (s->cap - 1), n++) {
        if (s->k[i] == tid)
            return 1;
        if (s->k[i] == TID_EMPTY)
            return 0;
    }
    return 0;
}

static int tidset_add(struct tidset *s, int tid);

static int tidset_rehash(struct tidset *s, size_t ncap)
{
    struct tidset n = {repro_calloc(ncap, sizeof(int)), ncap, 0, 0};
    size_t i;
    if (n.k == NULL)
        return REPRO_E_NOMEM;
    for (i = 0; i < s->cap; i++)
        if (s->k[i] > 0)
            tidset_add(&n, s->k[i]);
    repro_free(s->k);
    *s = n;
    return REPRO_OK;
}

static int tidset_add(struct tidset *s, int tid)
{
    size_t i;
    if (tid <= 0 || tidset_has(s, tid))
        return REPRO_OK;
    if ((s->used + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap : 64;
        while ((s->live + 1) * 4 > ncap)
            ncap *= 2;
        if (tidset_rehash(s, ncap) != REPRO_OK)
            return REPRO_E_NOMEM;
    }
    for (i = tid_slot(tid, s->cap); s->k[i] > 0; i = (i + 1) & (s->cap - 1))
        ;
    if (s->k[i] == TID_EMPTY)
        s->used++;
    s->k[i] = tid;
    s->live++;
    return REPRO_OK;
}

static void tidset_del(struct tidset *s, int tid)
{
    size_t i, n;
    if (s->cap == 0)
        return;
    for (i = tid_slot(tid, s->cap), n = 0; n < s->cap; i = (i + 1) & (s->cap - 1), n++) {
        if (s->k[i] == tid) {
            s->k[i] = TID_GONE;
            s->live--;
            return;
        }
        if (s->k[i] == TID_EMPTY)
            return;
    }
}

static void tidset_release(struct tidset *s)
{
    repro_free(s->k);
    memset(s, 0, sizeof *s);
}

/* ---- supervisor state ---------------------------------------------------- */

/*
 * The state of one supervised command. Fields marked (tracer) are touched by
 * the tracer thread only; the others are set before the tracer thread runs
 * and never change, or are guarded by mu.
 */
struct sup {
    const struct repro_supervisor_opts *o; /* the handle's copy; argv only during start */
    struct repro_supervisor_result *res;   /* (tracer) until done is set */
    pid_t child;
    int child_done, child_status; /* (tracer) */
    struct tidset traced;         /* (tracer) every task we believe we trace */
    struct tidset let_go;         /* (tracer) separate processes to detach at their first stop */
    struct tidset early;          /* (tracer) without follow_forks: new processes let go at a
                                     first stop that came before their creation event */
    _Atomic int record_asked;     /* repro_supervisor_record_now asked; the tracer takes it */
    struct repro_supervisor *h;   /* the handle, for record_now's answer */
};

struct repro_supervisor {
    struct repro_supervisor_opts o; /* copy: service points at service_copy */
    char *service_copy, *name;      /* owned; name is argv[0], for messages */
    sigset_t child_mask;            /* the starting thread's mask, for the command */
    struct sup s;
    pthread_t thread;
    int done_fd;   /* eventfd, written once when the command has ended */
    int pidfd;     /* names the command until free, -1 without pidfd_open */
    int exec_errr; /* read end of the exec-errno pipe (tracer) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int start_state;                    /* (mu) 0 starting, 1 running, < 0 could not start */
    struct repro_error start_err;       /* (mu) why it could not start */
    int done;                           /* (mu) the command ended, res and run_rc are final */
    int run_rc;                         /* (mu) REPRO_OK or why waiting for the command failed */
    struct repro_error run_err;         /* (mu) */
    struct repro_supervisor_result res; /* (mu once done) */
    uint64_t records_asked, records_done; /* (mu) record_now requests and answers */
};

/* A thread of a crashed process once we tried to stop it. */
struct stopped {
    int tid;
    int state;  /* 1 stopped, 0 exited, -1 did not stop or could not be interrupted */
    int status; /* the wait status of its stop */
};

struct stopped_list {
    struct stopped *v;
    size_t n, cap;
};

static void note_exit(struct sup *s, pid_t pid, int status)
{
    tidset_del(&s->traced, pid);
    tidset_del(&s->let_go, pid);
    if (pid == s->child) {
        s->child_done = 1;
        s->child_status = status;
    }
}

/* Restarts a tracee; ESRCH (killed meanwhile) is expected and ignored. */
static void resume(pid_t pid, int request, int sig)
{
    if (ptrace(request, pid, NULL, (void *)(intptr_t)sig) != 0 && errno != ESRCH)
        repro_log(REPRO_LOG_WARN, COMPONENT, "cannot restart task %d: %s", (int)pid,
                  strerror(errno));
}

static int is_stop_signal(int sig)
{
    return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

/*
 * Waits until task tid reports a stop or its exit, at most until
 * deadline_ns (monotonic). Returns 1 with *status for a stop, 0 when it
 * exited (noted), -1 on timeout or when it is not our tracee.
 *
 * waitpid with __WNOTHREAD (this thread's tracees only) is the truth; in
 * between, the thread sleeps in sigtimedwait for SIGCHLD. The tracer
 * thread blocks every signal; sigtimedwait unblocks SIGCHLD for it alone
 * while it sleeps, and the kernel sends a tracee's stop notice to its
 * tracer thread first, so a stop usually wakes it at once. A notice that
 * lands while it is not asleep may go to another thread of the process (or
 * another supervisor): then the short timeout wakes it, 100 us at first,
 * doubling up to 1 ms. Nothing process-wide is changed (no handler, no
 * other thread's mask).
 */
static int wait_task(struct sup *s, pid_t tid, uint64_t deadline_ns, int *status)
{
    uint64_t pause_ns = 100000;
    sigset_t chld;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    for (;;) {
        uint64_t now;
        struct timespec ts;
        pid_t r = waitpid(tid, status, __WALL | __WNOTHREAD | WNOHANG);
        if (r == tid) {
            if (WIFSTOPPED(*status))
                return 1;
            note_exit(s, tid, *status);
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        now = repro_mono_ns();
        if (now >= deadline_ns)
            return -1;
        if (pause_ns > deadline_ns - now)
            pause_ns = deadline_ns - now;
        ts.tv_sec = (time_t)(pause_ns / 1000000000u);
        ts.tv_nsec = (long)(pause_ns % 1000000000u);
        sigtimedwait(&chld, NULL, &ts);
        if (pause_ns < 1000000u)
            pause_ns *= 2;
    }
}

/* ---- reading /proc ------------------------------------------------------- */

/* Reads at most max-1 bytes of a /proc file into buf (NUL-terminated).
 * Returns the length or -1 with errno. */
static ssize_t read_proc(const char *path, char *buf, size_t max)
{
    size_t used = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (used + 1 < max) {
        ssize_t n = read(fd, buf + used, max - 1 - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    buf[used] = '\0';
    return (ssize_t)used;
}

static int task_status(pid_t tid, struct repro__task_status *st)
{
    char path[64], buf[4096];
    ssize_t n;
    snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
    n = read_proc(path, buf, sizeof buf);
    if (n < 0)
        return REPRO_E_IO;
    return repro__task_status_parse(buf, (size_t)n, st);
}

static void thread_name(int tgid, int tid, char *out, size_t len)
{
    char path[80];
    ssize_t n;
    snprintf(path, sizeof path, "/proc/%d/task/%d/comm", tgid, tid);
    n = read_proc(path, out, len);
    if (n < 0)
        n = 0;
    while (n > 0 && out[n - 1] == '\n')
        n--;
    out[n] = '\0';
}

static int task_is_zombie(int tgid, int tid)
{
    char path[80], buf[512], *p;
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", tgid, tid);
    if (read_proc(path, buf, sizeof buf) <= 0 || (p = strrchr(buf, ')')) == NULL)
        return 0;
    return p[1] == ' ' && p[2] == 'Z';
}

static int describe_process(struct repro_crash *c, int tgid)
{
    char path[64], buf[4096], host[256];
    char *cmd = NULL;
    ssize_t n;
    int rc = REPRO_OK;

    snprintf(path, sizeof path, "/proc/%d/exe", tgid);
    n = readlink(path, buf, sizeof buf - 1);
    if (n > 0) {
        buf[n] = '\0';
        rc = repro_crash_set_str(&c->executable, buf);
    } else {
        repro_crash_mark_partial(c, "cannot read '%s': %s", path, strerror(errno));
    }
    snprintf(path, sizeof path, "/proc/%d/cmdline", tgid);
    cmd = repro_malloc(MAX_CMDLINE);
    if (cmd == NULL)
        return REPRO_E_NOMEM;
    n = read_proc(path, cmd, MAX_CMDLINE);
    if (n > 0) {
        ssize_t i;
        while (n > 0 && cmd[n - 1] == '\0')
            n--;
        for (i = 0; i < n; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[n] = '\0';
        if (rc == REPRO_OK)
            rc = repro_crash_set_str(&c->cmdline, cmd);
    }
    repro_free(cmd);
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        if (rc == REPRO_OK)
            rc = repro_crash_set_str(&c->hostname, host);
    }
    return rc;
}

/* ---- stopping a crashed process ---------------------------------------- */

static int stopped_has(const struct stopped_list *l, int tid)
{
    size_t i;
    for (i = 0; i < l->n; i++)
        if (l->v[i].tid == tid)
            return 1;
    return 0;
}

static int stopped_add(struct stopped_list *l, int tid, int state, int status)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 32;
        struct stopped *p = repro_realloc(l->v, ncap * sizeof *p);
        if (p == NULL)
            return REPRO_E_NOMEM;
        l->v = p;
        l->cap = ncap;
    }
    l->v[l->n].tid = tid;
    l->v[l->n].state = state;
    l->v[l->n].status = status;
    l->n++;
    return REPRO_OK;
}

static int cmp_stopped(const void *a, const void *b)
{
    const struct stopped *x = a, *y = b;
    return x->tid < y->tid ? -1 : x->tid > y->tid;
}

/*
 * Stops every thread of tgid but crasher (already in its signal-delivery-
 * stop), re-listing /proc/TGID/task until no new thread shows up (a thread
 * may have been cloned meanwhile). Every thread ends up in l with its
 * state; the list is sorted by tid.
 */
static int stop_process(struct sup *s, struct repro_crash *c, int tgid, int crasher,
                        uint64_t deadline_ns, struct stopped_list *l)
{
    char path[64];
    int round, rc = REPRO_OK;

    rc = stopped_add(l, crasher, 1, 0);
    snprintf(path, sizeof path, "/proc/%d/task", tgid);
    for (round = 0; rc == REPRO_OK && round < 16; round++) {
        size_t first_new = l->n, i;
        struct dirent *de;
        DIR *d = opendir(path);
        if (d == NULL) {
            repro_crash_mark_partial(c, "cannot list threads '%s': %s", path, strerror(errno));
            break;
        }
        while (rc == REPRO_OK && (de = readdir(d)) != NULL) {
            long tid = strtol(de->d_name, NULL, 10);
            if (tid <= 0 || tid > INT32_MAX || stopped_has(l, (int)tid))
                continue;
            /* A leader that called pthread_exit() stays a zombie as long
             * as the process lives: nothing to stop, nothing missing. */
            if (task_is_zombie(tgid, (int)tid))
                continue;
            if (l->n >= REPRO_CRASH_MAX_THREADS) {
                repro_crash_mark_partial(c, "more than %d threads", REPRO_CRASH_MAX_THREADS);
                break;
            }
            if (ptrace(PTRACE_INTERRUPT, (pid_t)tid, NULL, NULL) == 0)
                rc = stopped_add(l, (int)tid, -1, 0);
            else
                rc = stopped_add(l, (int)tid, errno == ESRCH ? 0 : -1, 0);
        }
        closedir(d);
        if (l->n == first_new)
            break;
        for (i = first_new; i < l->n; i++) {
            struct stopped *t = &l->v[i];
            int w;
            if (t->state == 0)
                continue;
            w = wait_task(s, t->tid, deadline_ns, &t->status);
            t->state = w;
        }
    }
    qsort(l->v, l->n, sizeof *l->v, cmp_stopped);
    return rc;
}

/* ---- unwinding with libdwfl --------------------------------------------- */

static int no_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                        const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
                        char **debuginfo_file_name)
{
    /* The crash path reads CFI from the loaded files only: no separate
     * debug files, no debuginfod. */
    return -1;
}

static const Dwfl_Callbacks dwfl_callbacks = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = no_debuginfo,
};

struct unwind_ctx {
    struct repro_crash_thread *t;
    int full; /* the frame cap was reached */
};

static int frame_cb(Dwfl_Frame *state, void *arg)
{
    struct unwind_ctx *u = arg;
    Dwarf_Addr pc;
    bool activation;
    if (!dwfl_frame_pc(state, &pc, &activation))
        return -1;
    /* Frame 0 is the faulting pc, callers are return addresses (not
     * adjusted), as gdb's bt prints them. */
    if (repro_crash_add_frame(u->t, pc) != REPRO_OK) {
        u->full = 1;
        return DWARF_CB_ABORT;
    }
    return DWARF_CB_OK;
}

static int module_cb(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
                     void *arg)
{
    struct repro_crash *c = arg;
    Dwarf_Addr low = 0, high = 0, bias = 0;
    const unsigned char *bits = NULL;
    GElf_Addr vaddr;
    char hex[129] = "";
    int len, i;

    dwfl_module_info(mod, NULL, &low, &high, NULL, NULL, NULL, NULL);
    /* Loading the ELF gives the load bias and lets libdwfl read the
     * build-id note; a module whose file is gone keeps its mapped start. */
    if (dwfl_module_getelf(mod, &bias) == NULL)
        bias = low;
    len = dwfl_module_build_id(mod, &bits, &vaddr);
    for (i = 0; i < len && i < 64; i++)
        snprintf(hex + 2 * i, 3, "%02x", bits[i]);
    if (repro_crash_add_module(c, name ? name : "", low, high, bias, hex) != REPRO_OK) {
        repro_crash_mark_partial(c, "more than %d modules", REPRO_CRASH_MAX_MODULES);
        return DWARF_CB_ABORT;
    }
    return DWARF_CB_OK;
}

/* Fills modules and the frames of every thread in c that has registers. */
static void unwind(struct repro_crash *c, int tgid)
{
    Dwfl *dwfl = dwfl_begin(&dwfl_callbacks);
    size_t i;
    int e;

    if (dwfl == NULL) {
        repro_crash_mark_partial(c, "cannot start libdwfl: %s", dwfl_errmsg(-1));
        return;
    }
    dwfl_report_begin(dwfl);
    e = dwfl_linux_proc_report(dwfl, tgid);
    dwfl_report_end(dwfl, NULL, NULL);
    if (e != 0) {
        repro_crash_mark_partial(c, "cannot read the modules of process %d: %s", tgid,
                                 e > 0 ? strerror(e) : dwfl_errmsg(-1));
        goto out;
    }
    e = dwfl_linux_proc_attach(dwfl, tgid, true);
    if (e != 0) {
        repro_crash_mark_partial(c, "cannot unwind process %d: %s", tgid,
                                 e > 0 ? strerror(e) : dwfl_errmsg(-1));
    } else {
        for (i = 0; i < c->n_threads; i++) {
            struct unwind_ctx u = {&c->threads[i], 0};
            int r;
            if (u.t->registers == NULL)
                continue; /* not stopped: nothing to unwind from */
            r = dwfl_getthread_frames(dwfl, u.t->tid, frame_cb, &u);
            if (u.full) {
                u.t->partial = 1;
                repro_crash_mark_partial(c, "thread %d: more than %d frames", u.t->tid,
                                         REPRO_CRASH_MAX_FRAMES);
            } else if (r != 0 && u.t->n_frames == 0) {
                u.t->partial = 1;
                repro_crash_mark_partial(c, "cannot unwind thread %d: %s", u.t->tid,
                                         dwfl_errmsg(-1));
            }
            /* An error after at least one frame is how libdwfl says that
             * the outermost frame has no caller: gdb stops there too. */
        }
    }
    dwfl_getmodules(dwfl, module_cb, c, 0);
out:
    dwfl_end(dwfl);
}

/* ---- the crash path ------------------------------------------------------ */

static int get_regs(pid_t tid, char **out)
{
    union {
        struct user_regs_struct u;
        uint64_t pad[64];
    } raw;
    struct iovec iov = {&raw, sizeof raw};
    struct repro__regs r;
    char text[REPRO__REGS_TEXT_MAX];
    int n;

    if (ptrace(PTRACE_GETREGSET, tid, (void *)(uintptr_t)NT_PRSTATUS, &iov) != 0)
        return REPRO_E_IO;
    if (repro__regs_from_user(&raw, iov.iov_len, &r) != REPRO_OK)
        return REPRO_E_UNSUPPORTED;
    n = repro__regs_format(&r, text, sizeof text);
    if (n < 0)
        return n;
    *out = repro_strdup(text);
    return *out ? REPRO_OK : REPRO_E_NOMEM;
}

static void fill_siginfo(struct repro_crash *c, pid_t tid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (ptrace(PTRACE_GETSIGINFO, tid, NULL, &si) != 0) {
        repro_crash_mark_partial(c, "cannot read the siginfo of thread %d: %s", (int)tid,
                                 strerror(errno));
        return;
    }
    c->si_code = si.si_code;
    /* si_addr means something only for faults the kernel raised. */
    if (si.si_code > 0 &&
        (si.si_signo == SIGSEGV || si.si_signo == SIGBUS || si.si_signo == SIGFPE ||
         si.si_signo == SIGILL || si.si_signo == SIGTRAP))
        c->fault_address = (uint64_t)(uintptr_t)si.si_addr;
}

static void add_threads(struct repro_crash *c, int tgid, int crasher, const struct stopped_list *l)
{
    size_t i;
    for (i = 0; i < l->n; i++) {
        const struct stopped *t = &l->v[i];
        struct repro_crash_thread *th;
        char name[32];
        char *regs = NULL;
        int rc;

        if (t->state == 0) {
            repro_crash_mark_partial(c, "thread %d exited while the process was being stopped",
                                     t->tid);
            continue;
        }
        thread_name(tgid, t->tid, name, sizeof name);
        th = repro_crash_add_thread(c, t->tid, name, t->tid == crasher);
        if (th == NULL) {
            repro_crash_mark_partial(c, "cannot keep thread %d: too many threads or no memory",
                                     t->tid);
            return;
        }
        if (t->state < 0) {
            th->partial = 1;
            repro_crash_mark_partial(c, "thread %d did not stop", t->tid);
            continue;
        }
        rc = get_regs(t->tid, &regs);
        if (rc != REPRO_OK) {
            th->partial = 1;
            repro_crash_mark_partial(c, "cannot read the registers of thread %d: %s", t->tid,
                                     rc == REPRO_E_IO ? strerror(errno) : repro_strerror(rc));
            continue;
        }
        th->registers = regs;
    }
}

/* Lets go of a crashed process: the other threads first (with the signal
 * their stop held, if any), then the crashing one with its signal. */
static void release_process(struct sup *s, int crasher, int sig, const struct stopped_list *l)
{
    size_t i;
    for (i = 0; i < l->n; i++) {
        const struct stopped *t = &l->v[i];
        int pass = 0;
        if (t->tid == crasher || t->state != 1)
            continue;
        if (((unsigned)t->status >> 16) == 0 && WSTOPSIG(t->status) != (SIGTRAP | 0x80))
            pass = WSTOPSIG(t->status);
        if (ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(intptr_t)pass) == 0 || errno == ESRCH)
            tidset_del(&s->traced, t->tid);
    }
    /* Detached with the signal from its signal-delivery-stop, the thread
     * takes it as if never traced: the default action kills the process
     * and dumps core where core dumps are enabled. */
    if (ptrace(PTRACE_DETACH, crasher, NULL, (void *)(intptr_t)sig) == 0 || errno == ESRCH)
        tidset_del(&s->traced, crasher);
    else
        resume(crasher, PTRACE_CONT, sig);
}

static void report_crash(struct sup *s, struct repro_crash *c, uint64_t t0, uint64_t t_stop,
                         uint64_t t_unwind)
{
    struct repro_supervisor_crash_info info;

    memset(&info, 0, sizeof info);
    info.seen_ns = t0;
    info.stop_ns = t_stop - t0;
    info.unwind_ns = t_unwind - t_stop;
    s->res->n_crashes++;
    if (s->o->on_crash)
        s->o->on_crash(s->o->ctx, c, &info);
}

/*
 * Handles a crash signal in task tid. Returns 1 when the process was
 * recorded and released (the signal delivered), 0 when the signal is not
 * fatal (the program has a handler): the caller passes it on.
 */
static int record_crash(struct sup *s, pid_t tid, int sig)
{
    uint64_t t0 = repro_mono_ns(), t_stop, t_unwind;
    int64_t wall = repro_wall_us();
    int timeout_ms =
        s->o->record_timeout_ms > 0 ? s->o->record_timeout_ms : DEFAULT_RECORD_TIMEOUT_MS;
    struct repro__task_status ts;
    struct stopped_list l = {NULL, 0, 0};
    struct repro_crash *c = NULL;
    struct repro_error cerr = {0};
    int tgid, live, rc;

    if (task_status(tid, &ts) == REPRO_OK) {
        /* A tracer hears of ignored signals too. A fault the kernel forces
         * on an ignored or blocked signal has been reset to the default
         * action by now, so both bits clear mean: the signal kills. */
        if ((ts.sigcgt | ts.sigign) & (UINT64_C(1) << (sig - 1)))
            return 0;
        tgid = ts.tgid;
    } else {
        tgid = (int)tid; /* vanishing: record what can be had */
    }
    c = repro_crash_new();
    if (c == NULL) {
        repro_log(REPRO_LOG_ERROR, COMPONENT, "cannot record the crash of process %d: %s", tgid,
                  repro_strerror(REPRO_E_NOMEM));
        return 0;
    }
    c->time_us = wall;
    c->pid = tgid;
    c->tid = (int)tid;
    c->signo = sig;
    snprintf(c->source, sizeof c->source, "ptrace");
    rc = repro_crash_set_str(&c->service, s->o->service);
    fill_siginfo(c, tid);

    if (rc == REPRO_OK)
        rc = stop_process(s, c, tgid, (int)tid, t0 + (uint64_t)timeout_ms * 1000000u, &l);
    t_stop = repro_mono_ns();
    /* Process-wide /proc files (exe, maps, fd) are empty for a zombie
     * leader: read them through the crashing thread then. */
    live = task_is_zombie(tgid, tgid) ? (int)tid : tgid;
    if (rc == REPRO_OK)
        rc = describe_process(c, live);
    if (rc == REPRO_OK) {
        add_threads(c, tgid, (int)tid, &l);
        unwind(c, live);
        if (repro_crash_add_proc_connections(c, live, &cerr) != REPRO_OK)
            repro_crash_mark_partial(c, "connections: %s", cerr.msg);
        repro_crash_resolve_modules(c);
    } else {
        repro_crash_mark_partial(c, "cannot record: %s", repro_strerror(rc));
    }
    t_unwind = repro_mono_ns();
    report_crash(s, c, t0, t_stop, t_unwind);
    release_process(s, (int)tid, sig, &l);
    repro_crash_free(c);
    repro_free(l.v);
    return 1;
}

/* ---- a record without a crash (repro_supervisor_record_now) ------------- */

/* Lets the threads of a recorded, still-healthy process run on: each with
 * the signal its stop held, if any, but tid (stopped by record_now's
 * SIGSTOP) without it. They stay traced. */
static void resume_process(int tid, const struct stopped_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct stopped *t = &l->v[i];
        int pass = 0;
        if (t->state != 1)
            continue;
        if (t->tid != tid && ((unsigned)t->status >> 16) == 0 &&
            WSTOPSIG(t->status) != (SIGTRAP | 0x80))
            pass = WSTOPSIG(t->status);
        resume(t->tid, PTRACE_CONT, pass);
    }
}

/* Task tid stopped for record_now's SIGSTOP: every thread's stack is
 * recorded as the crash path does, but with signal 0 (a hang, not a
 * fault), handed to on_crash while the process is held, and the process
 * then runs on, still traced. Not counted in n_crashes. */
static void record_hang(struct sup *s, pid_t tid)
{
    uint64_t t0 = repro_mono_ns(), t_stop;
    int timeout_ms =
        s->o->record_timeout_ms > 0 ? s->o->record_timeout_ms : DEFAULT_RECORD_TIMEOUT_MS;
    struct repro__task_status ts;
    struct stopped_list l = {NULL, 0, 0};
    struct repro_error cerr = {0};
    struct repro_crash *c = repro_crash_new();
    int tgid = task_status(tid, &ts) == REPRO_OK ? ts.tgid : (int)tid, rc;

    if (c == NULL) {
        resume(tid, PTRACE_CONT, 0);
        return;
    }
    c->time_us = repro_wall_us();
    c->pid = tgid;
    c->tid = (int)tid;
    c->signo = 0;
    snprintf(c->source, sizeof c->source, "ptrace");
    rc = repro_crash_set_str(&c->service, s->o->service);
    if (rc == REPRO_OK)
        rc = stop_process(s, c, tgid, (int)tid, t0 + (uint64_t)timeout_ms * 1000000u, &l);
    t_stop = repro_mono_ns();
    if (rc == REPRO_OK)
        rc = describe_process(c, tgid);
    if (rc == REPRO_OK) {
        add_threads(c, tgid, 0, &l); /* no thread crashed */
        unwind(c, tgid);
        if (repro_crash_add_proc_connections(c, tgid, &cerr) != REPRO_OK)
            repro_crash_mark_partial(c, "connections: %s", cerr.msg);
        repro_crash_resolve_modules(c);
    } else {
        repro_crash_mark_partial(c, "cannot record: %s", repro_strerror(rc));
    }
    if (s->o->on_crash) {
        struct repro_supervisor_crash_info info = {.seen_ns = t0, .stop_ns = t_stop - t0,
                                                   .unwind_ns = repro_mono_ns() - t_stop};
        s->o->on_crash(s->o->ctx, c, &info);
    }
    if (l.n == 0)
        resume(tid, PTRACE_CONT, 0);
    resume_process((int)tid, &l);
    repro_crash_free(c);
    repro_free(l.v);
}

/* Answers every record_now asked so far. */
static void records_answered(struct sup *s)
{
    struct repro_supervisor *h = s->h;
    pthread_mutex_lock(&h->mu);
    h->records_done = h->records_asked;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* ---- the event loop ------------------------------------------------------ */

/* Is new_tid a thread of parent_tid's process? (/proc/P/task/T exists only
 * for tasks of P's thread group.) */
static int same_process(pid_t parent_tid, pid_t new_tid)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof path, "/proc/%d/task/%d", (int)parent_tid, (int)new_tid);
    return stat(path, &st) == 0;
}

/* Detaches a task that is not followed; sig (0 or the signal of a
 * signal-delivery-stop) is delivered as it goes. A task detached in a
 * group-stop stays stopped (the kernel puts it back), so it behaves as if
 * it had never been traced. */
static void let_go_now(struct sup *s, pid_t pid, int sig)
{
    if (ptrace(PTRACE_DETACH, pid, NULL, (void *)(intptr_t)sig) != 0 && errno != ESRCH)
        repro_log(REPRO_LOG_WARN, COMPONENT, "cannot detach task %d: %s", (int)pid,
                  strerror(errno));
    tidset_del(&s->let_go, pid);
    tidset_del(&s->traced, pid);
}

/*
 * A task was created (event CLONE, FORK or VFORK of parent). Threads of a
 * followed process are traced. Without --follow-forks, the kernel still
 * attaches every new process (TRACEFORK|TRACEVFORK, so that it can be
 * counted: a crash in it is not recorded, and `repro run` says so), and it
 * is detached at its first stop; a thread created by a task being let go
 * is let go with it.
 */
static void on_new_task(struct sup *s, pid_t parent, int event, pid_t child)
{
    int seen = tidset_has(&s->traced, child), thread;

    if (!s->o->follow_forks && tidset_has(&s->early, child)) {
        tidset_del(&s->early, child); /* its first stop came first: let go and counted */
        return;
    }
    if (tidset_add(&s->traced, child) != REPRO_OK)
        repro_log(REPRO_LOG_WARN, COMPONENT, "cannot track task %d: out of memory", (int)child);
    if (s->o->follow_forks)
        return;
    thread = event == PTRACE_EVENT_CLONE && same_process(parent, child);
    if (thread && !tidset_has(&s->let_go, parent))
        return;
    if (!thread)
        s->res->n_unfollowed++;
    if (tidset_add(&s->let_go, child) == REPRO_OK && seen)
        ptrace(PTRACE_INTERRUPT, child, NULL, NULL); /* its first stop went by */
}

/* Without --follow-forks: is pid, a task not seen before, a new process
 * (its first stop came before its parent's creation event)? Every task
 * followed then is a thread of the command's own process. */
static int unseen_process(const struct sup *s, pid_t pid, int status)
{
    return !s->o->follow_forks && (unsigned)status >> 16 == PTRACE_EVENT_STOP &&
           !same_process(s->child, pid);
}

static void on_stop(struct sup *s, pid_t pid, int status)
{
    int sig = WSTOPSIG(status), event = (int)((unsigned)status >> 16);
    unsigned long msg = 0;

    if (tidset_has(&s->let_go, pid)) {
        /* a process not followed, stopped before it could be let go */
        if ((event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK ||
             event == PTRACE_EVENT_VFORK) &&
            ptrace(PTRACE_GETEVENTMSG, pid, NULL, &msg) == 0 && msg > 0 && msg <= INT32_MAX)
            on_new_task(s, pid, event, (pid_t)msg);
        let_go_now(s, pid, event == 0 ? sig : 0);
        return;
    }
    switch (event) {
    case 0: /* signal-delivery-stop */
        if (repro__is_crash_signal(sig) && record_crash(s, pid, sig))
            return;
        if (sig == SIGSTOP && atomic_exchange(&s->record_asked, 0)) {
            record_hang(s, pid); /* record_now's SIGSTOP, taken away again */
            records_answered(s);
            return;
        }
        resume(pid, PTRACE_CONT, sig);
        return;
    case PTRACE_EVENT_STOP:
        if (is_stop_signal(sig)) {
            /* group-stop: stay stopped, but let SIGCONT and our
             * PTRACE_INTERRUPT through, as without a tracer. */
            resume(pid, PTRACE_LISTEN, 0);
            return;
        }
        resume(pid, PTRACE_CONT, 0);
        return;
    case PTRACE_EVENT_CLONE:
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
        if (ptrace(PTRACE_GETEVENTMSG, pid, NULL, &msg) == 0 && msg > 0 && msg <= INT32_MAX)
            on_new_task(s, pid, event, (pid_t)msg);
        resume(pid, PTRACE_CONT, 0);
        return;
    case PTRACE_EVENT_EXEC:
        /* A non-leader thread that execs takes the leader's tid; its own
         * tid is gone without an exit report. */
        if (ptrace(PTRACE_GETEVENTMSG, pid, NULL, &msg) == 0 && (pid_t)msg != pid)
            tidset_del(&s->traced, (pid_t)msg);
        resume(pid, PTRACE_CONT, 0);
        return;
    default: resume(pid, PTRACE_CONT, 0); return;
    }
}

/* Detaches every remaining tracee (other processes of --follow-forks) and
 * leaves it running as it was, pending signals and group-stops included. */
static void release_all(struct sup *s)
{
    int *tids = NULL;
    size_t n = 0, i;
    uint64_t deadline = repro_mono_ns() + (uint64_t)RELEASE_TIMEOUT_MS * 1000000u;

    if (s->traced.live == 0)
        return;
    tids = repro_calloc(s->traced.live, sizeof *tids);
    if (tids == NULL)
        return; /* the kernel detaches them when we exit */
    for (i = 0; i < s->traced.cap && n < s->traced.live; i++)
        if (s->traced.k[i] > 0)
            tids[n++] = s->traced.k[i];
    for (i = 0; i < n; i++)
        if (ptrace(PTRACE_INTERRUPT, tids[i], NULL, NULL) != 0)
            tids[i] = 0;
    for (i = 0; i < n; i++) {
        int st = 0, sig, pass = 0;
        if (tids[i] == 0 || !tidset_has(&s->traced, tids[i]))
            continue;
        if (wait_task(s, tids[i], deadline, &st) != 1)
            continue;
        sig = WSTOPSIG(st);
        if ((unsigned)st >> 16 == 0) {
            if (repro__is_crash_signal(sig) && record_crash(s, tids[i], sig))
                continue;
            pass = sig;
        }
        ptrace(PTRACE_DETACH, tids[i], NULL, (void *)(intptr_t)pass);
        tidset_del(&s->traced, tids[i]);
    }
    repro_free(tids);
}

/* ---- starting the command (on the tracer thread) ------------------------- */

static void child_exec(int go_r, int err_w, char *const *argv, const sigset_t *mask)
{
    char b;
    ssize_t n;
    int e;

    signal(SIGPIPE, SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    /* Wait until the parent has seized us: one byte means go. */
    do
        n = read(go_r, &b, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(127);
    execvp(argv[0], argv);
    e = errno;
    if (write(err_w, &e, sizeof e) != (ssize_t)sizeof e)
        e = ENOENT;
    _exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
}

/*
 * Forks the command from the tracer thread (ptrace ties a tracee to the
 * thread that seized it, and __WNOTHREAD waits see that thread's children
 * only), seizes it and lets it exec. Returns REPRO_OK with h->s.child set
 * and h->exec_errr open, or an error in err with nothing left behind.
 */
static int spawn(struct repro_supervisor *h, struct repro_error *err)
{
    const struct repro_supervisor_opts *o = &h->o;
    int go[2] = {-1, -1}, ep[2] = {-1, -1};
    int rc = REPRO_OK;
    long options;
    pid_t child;

    if (pipe2(go, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
        rc =
            repro_error_sys(err, REPRO_E_IO, "cannot run '%s': pipe: %s", h->name, strerror(errno));
        goto out;
    }
    fcntl(ep[0], F_SETFL, O_NONBLOCK);
    child = fork();
    if (child < 0) {
        rc =
            repro_error_sys(err, REPRO_E_IO, "cannot run '%s': fork: %s", h->name, strerror(errno));
        goto out;
    }
    if (child == 0) {
        close(go[1]);
        close(ep[0]);
        child_exec(go[0], ep[1], o->argv, &h->child_mask);
    }
    /* Forks are traced without follow_forks too: each new process is
     * counted and let go at its first stop (on_new_task). */
    options = PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK;
    if (ptrace(PTRACE_SEIZE, child, NULL, (void *)options) != 0) {
        rc = repro_error_sys(err, REPRO_E_UNSUPPORTED, "cannot trace '%s': PTRACE_SEIZE: %s",
                             h->name, strerror(errno));
        close(go[1]); /* EOF: the child exits without running the command */
        go[1] = -1;
        while (waitpid(child, NULL, __WNOTHREAD) < 0 && errno == EINTR)
            ;
        goto out;
    }
    h->s.child = child;
    tidset_add(&h->s.traced, child);
#ifdef SYS_pidfd_open
    /* Before the command can run, hence before it can be reaped: the
     * descriptor names this process and no later one with its pid. */
    h->pidfd = (int)syscall(SYS_pidfd_open, child, 0);
#endif
    if (write(go[1], "g", 1) != 1) {
        /* The child reads EOF and exits 127; the loop reaps it. */
        repro_log(REPRO_LOG_WARN, COMPONENT, "cannot start '%s': %s", h->name, strerror(errno));
    }
    h->exec_errr = ep[0];
    ep[0] = -1;
out:
    for (int i = 0; i < 2; i++) {
        if (go[i] >= 0)
            close(go[i]);
        if (ep[i] >= 0)
            close(ep[i]);
    }
    return rc;
}

static void fill_result(struct sup *s, int exec_errno)
{
    int st = s->child_status;
    struct repro_supervisor_result *r = s->res;
    r->exec_errno = exec_errno;
    if (WIFEXITED(st)) {
        r->exited = 1;
        r->exit_code = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
        r->term_signal = WTERMSIG(st);
        r->core_dumped = WCOREDUMP(st) ? 1 : 0;
        r->exit_code = 128 + r->term_signal;
    }
}

/* Serves ptrace-stops until the command has exited. REPRO_OK, or
 * REPRO_E_IO in err when waitpid fails. */
static int trace_loop(struct repro_supervisor *h, struct repro_error *err)
{
    struct sup *s = &h->s;
    while (!s->child_done) {
        int st;
        pid_t pid = waitpid(-1, &st, __WALL | __WNOTHREAD);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            return repro_error_sys(err, REPRO_E_IO, "cannot wait for '%s': %s", h->name,
                                   strerror(errno));
        }
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            note_exit(s, pid, st);
            continue;
        }
        if (!WIFSTOPPED(st))
            continue;
        if (!tidset_has(&s->traced, pid) && unseen_process(s, pid, st)) {
            /* counted now; its parent's event finds it in early */
            if (tidset_add(&s->early, pid) == REPRO_OK)
                s->res->n_unfollowed++;
            let_go_now(s, pid, 0);
            continue;
        }
        if (tidset_add(&s->traced, pid) != REPRO_OK)
            repro_log(REPRO_LOG_WARN, COMPONENT, "cannot track task %d: out of memory", (int)pid);
        on_stop(s, pid, st);
    }
    return REPRO_OK;
}

static void *tracer_main(void *arg)
{
    struct repro_supervisor *h = arg;
    struct repro_error err = {0};
    struct repro_supervisor_result res;
    int rc, e, exec_errno = 0;
    uint64_t one = 1;

    memset(&res, 0, sizeof res);
    h->s.res = &res;
    rc = spawn(h, &err);
    pthread_mutex_lock(&h->mu);
    h->start_state = rc == REPRO_OK ? 1 : rc;
    if (rc != REPRO_OK)
        h->start_err = err;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (rc != REPRO_OK)
        return NULL; /* start() joins us and reports */

    rc = trace_loop(h, &err);
    if (h->s.child_done) {
        release_all(&h->s);
        if (read(h->exec_errr, &e, sizeof e) == (ssize_t)sizeof e)
            exec_errno = e;
        fill_result(&h->s, exec_errno);
    }
    tidset_release(&h->s.traced);
    tidset_release(&h->s.let_go);
    tidset_release(&h->s.early);
    pthread_mutex_lock(&h->mu);
    h->res = res;
    h->run_rc = rc;
    h->run_err = err;
    h->done = 1;
    pthread_cond_broadcast(&h->cv); /* a record_now still waiting */
    pthread_mutex_unlock(&h->mu);
    h->s.res = NULL;
    /* The descriptor stays readable from now on: nobody reads it. */
    if (write(h->done_fd, &one, sizeof one) != (ssize_t)sizeof one)
        repro_log(REPRO_LOG_WARN, COMPONENT, "cannot signal the end of '%s': %s", h->name,
                  strerror(errno));
    return NULL;
}

/* ---- the handle ---------------------------------------------------------- */

static void handle_free(struct repro_supervisor *h)
{
    if (h->done_fd >= 0)
        close(h->done_fd);
    if (h->pidfd >= 0)
        close(h->pidfd);
    if (h->exec_errr >= 0)
        close(h->exec_errr);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    repro_free(h->service_copy);
    repro_free(h->name);
    repro_free(h);
}

int repro_supervisor_start(const struct repro_supervisor_opts *o, struct repro_supervisor **out,
                           struct repro_error *err)
{
    struct repro_supervisor *h;
    sigset_t all, old;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (o == NULL || out == NULL || o->argv == NULL || o->argv[0] == NULL)
        return repro_error_set(err, REPRO_E_INVAL, "cannot run a command: no command given");
    h = repro_calloc(1, sizeof *h);
    if (h == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot run '%s': out of memory", o->argv[0]);
    h->done_fd = h->pidfd = h->exec_errr = -1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->o = *o;
    h->name = repro_strdup(o->argv[0]);
    if (o->service != NULL)
        h->service_copy = repro_strdup(o->service);
    if (h->name == NULL || (o->service != NULL && h->service_copy == NULL)) {
        handle_free(h);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot run '%s': out of memory", o->argv[0]);
    }
    h->o.service = h->service_copy;
    h->s.o = &h->o;
    h->s.h = h;
    h->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->done_fd < 0) {
        rc = repro_error_sys(err, REPRO_E_IO, "cannot run '%s': eventfd: %s", h->name,
                             strerror(errno));
        handle_free(h);
        return rc;
    }
    /* The tracer thread takes no asynchronous signal: they go to the
     * caller's threads. The command gets the caller's own mask back. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    h->child_mask = old;
    rc = pthread_create(&h->thread, NULL, tracer_main, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        rc = repro_error_sys(err, REPRO_E_IO, "cannot run '%s': cannot start a thread: %s", h->name,
                             strerror(rc));
        handle_free(h);
        return rc;
    }
    pthread_mutex_lock(&h->mu);
    while (h->start_state == 0)
        pthread_cond_wait(&h->cv, &h->mu);
    rc = h->start_state < 0 ? h->start_state : REPRO_OK;
    pthread_mutex_unlock(&h->mu);
    h->o.argv = NULL; /* borrowed for the call only */
    if (rc != REPRO_OK) {
        pthread_join(h->thread, NULL);
        if (err != NULL && err->code == 0)
            *err = h->start_err;
        handle_free(h);
        return rc;
    }
    *out = h;
    return REPRO_OK;
}

int repro_supervisor_pid(const struct repro_supervisor *h)
{
    return h->s.child;
}

int repro_supervisor_pidfd(const struct repro_supervisor *h)
{
    return h->pidfd;
}

int repro_supervisor_fd(const struct repro_supervisor *h)
{
    return h->done_fd;
}

/* Polls the done descriptor for at most timeout_ms (< 0: no bound).
 * Returns 1 once the command has ended, 0 on timeout. */
static int wait_done(struct repro_supervisor *h, int timeout_ms)
{
    uint64_t deadline = timeout_ms > 0 ? repro_mono_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        struct pollfd p = {h->done_fd, POLLIN, 0};
        int ms = timeout_ms;
        if (timeout_ms > 0) {
            uint64_t now = repro_mono_ns();
            ms = now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
        }
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 1;
        if (n == 0 && ms >= 0)
            return 0;
        /* EINTR (a signal handler of the caller's) or n == 0 with no bound */
    }
}

int repro_supervisor_wait(struct repro_supervisor *h, int timeout_ms,
                          struct repro_supervisor_result *res, struct repro_error *err)
{
    int rc;
    if (h == NULL)
        return repro_error_set(err, REPRO_E_INVAL, "cannot wait: no supervisor");
    if (!wait_done(h, timeout_ms))
        return REPRO_SUPERVISOR_RUNNING;
    pthread_mutex_lock(&h->mu);
    rc = h->run_rc;
    if (rc != REPRO_OK && err != NULL && err->code == 0)
        *err = h->run_err;
    if (res != NULL)
        *res = h->res;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* Sends sig to the command through its pidfd (immune to pid reuse) or,
 * without one, by pid (the tracer has not reaped it unless it is done). */
static void send_signal(struct repro_supervisor *h, int sig)
{
#ifdef SYS_pidfd_send_signal
    if (h->pidfd >= 0 && syscall(SYS_pidfd_send_signal, h->pidfd, sig, NULL, 0) == 0)
        return;
    if (h->pidfd >= 0)
        return; /* ESRCH: it has exited */
#endif
    pthread_mutex_lock(&h->mu);
    if (!h->done)
        kill(h->s.child, sig);
    pthread_mutex_unlock(&h->mu);
}

int repro_supervisor_stop(struct repro_supervisor *h, int sig, int grace_ms,
                          struct repro_error *err)
{
    if (h == NULL || sig <= 0 || sig >= NSIG)
        return repro_error_set(err, REPRO_E_INVAL, "cannot stop: %s",
                               h == NULL ? "no supervisor" : "bad signal number");
    if (wait_done(h, 0))
        return REPRO_OK;
    if (sig != SIGKILL && grace_ms != 0) {
        send_signal(h, sig);
        /* A stopped command acts on the signal only once continued. */
        if (sig != SIGCONT)
            send_signal(h, SIGCONT);
        if (wait_done(h, grace_ms < 0 ? -1 : grace_ms))
            return REPRO_OK;
    }
    send_signal(h, SIGKILL);
    wait_done(h, -1);
    return REPRO_OK;
}

int repro_supervisor_record_now(struct repro_supervisor *h, int timeout_ms,
                                struct repro_error *err)
{
    struct timespec ts;
    int rc = REPRO_OK;

    if (h == NULL)
        return repro_error_set(err, REPRO_E_INVAL, "cannot record: no supervisor");
    ts = repro_deadline_ms(CLOCK_REALTIME, timeout_ms); /* h->cv's clock */
    pthread_mutex_lock(&h->mu);
    uint64_t want = ++h->records_asked;
    int done = h->done;
    pthread_mutex_unlock(&h->mu);
    if (done)
        return repro_error_set(err, REPRO_E_INVAL, "cannot record '%s': it has ended", h->name);
    atomic_store(&h->s.record_asked, 1);
    /* SIGSTOP cannot be caught or ignored, so a thread reaches its
     * signal-delivery-stop whatever the program does; the tracer records
     * there and drops the signal, so the process never stops as a group. */
    send_signal(h, SIGSTOP);
    pthread_mutex_lock(&h->mu);
    while (h->records_done < want && !h->done && rc == REPRO_OK)
        if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) == ETIMEDOUT)
            rc = repro_error_set(err, REPRO_E_IO, "cannot record '%s': no stop within %d ms",
                                 h->name, timeout_ms);
    if (rc == REPRO_OK && h->records_done < want)
        rc = repro_error_set(err, REPRO_E_INVAL, "cannot record '%s': it has ended", h->name);
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void repro_supervisor_free(struct repro_supervisor *h)
{
    if (h == NULL)
        return;
    repro_supervisor_stop(h, SIGKILL, 0, NULL);
    pthread_join(h->thread, NULL);
    handle_free(h);
}

int repro_supervisor_run(const struct repro_supervisor_opts *o, struct repro_supervisor_result *res,
                         struct repro_error *err)
{
    struct repro_supervisor *h = NULL;
    int rc;

    if (res == NULL)
        return repro_error_set(err, REPRO_E_INVAL, "cannot run a command: no result given");
    memset(res, 0, sizeof *res);
    rc = repro_supervisor_start(o, &h, err);
    if (rc != REPRO_OK)
        return rc;
    rc = repro_supervisor_wait(h, -1, res, err);
    repro_supervisor_free(h);
    return rc;
}
