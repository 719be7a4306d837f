/*
 * `repro run` without the command line: the ptrace supervisor
 * (crash/supervisor.c) produces crash records, this file commits each to
 * the store from the supervisor's callback, while the crashed process is
 * still held, and measures how long that took. It also owns the one piece
 * of process-wide state `repro run` needs: forwarding the signals that
 * stop a service (kill REPRO_PID, docker stop) to the command.
 *
 * Left out: printing and exit codes (cli/cmd_run.c), symbolization (done
 * by the CLI once the command has ended, never while a process is held).
 */
#include "app/run.h"

#include "app/crash_rows.h"

#include "repro/store.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define COMPONENT "capture.supervisor" /* the tag `repro run --verbose` has always printed */

struct run_state {
    const struct repro_app_run_opts *o;
    struct repro_app_run_result *res;
};

static void on_crash(void *ctx, const struct repro_crash *c,
                     const struct repro_supervisor_crash_info *si)
{
    struct run_state *st = ctx;
    struct repro_app_run_crash_info info;
    struct repro_error serr = {0};
    uint64_t t_unwind = si->seen_ns + si->stop_ns + si->unwind_ns, t_store;

    memset(&info, 0, sizeof info);
    info.crash_id = -1;
    if (st->o->store != NULL &&
        repro_app_store_crash(st->o->store, c, &info.crash_id, &serr) != REPRO_OK) {
        info.crash_id = -1;
        st->res->n_store_errors++;
    } else if (st->o->store != NULL) {
        st->res->n_stored++;
    }
    t_store = repro_mono_ns();
    info.committed_us = repro_wall_us();
    info.store_err = &serr;
    info.stop_ns = si->stop_ns;
    info.unwind_ns = si->unwind_ns;
    info.store_ns = t_store - t_unwind;
    info.total_ns = t_store - si->seen_ns;
    repro_log(REPRO_LOG_INFO, COMPONENT,
              "crash of process %d recorded in %.3f ms (stop %.3f, unwind %.3f, store %.3f), "
              "committed at %lld us",
              c->pid, info.total_ns / 1e6, info.stop_ns / 1e6, info.unwind_ns / 1e6,
              info.store_ns / 1e6, (long long)info.committed_us);
    if (st->o->on_crash)
        st->o->on_crash(st->o->ctx, c, &info);
}

/* ---- signal forwarding ----------------------------------------------------
 * Process-wide by nature (a disposition belongs to the process), so it is
 * here, in the one caller that wants it, set for the duration of one call. */

/* Lock-free atomics: safe to use in a signal handler. fwd_pid is 0 until
 * the command's pid is known; a signal that arrives before that is kept in
 * fwd_pending (bit i: forwarded[i]) and sent once it is (forward_to). */
static _Atomic int fwd_pid;
static _Atomic int fwd_pidfd = -1;
static _Atomic unsigned fwd_pending;
static _Atomic int fwd_pending_from[6]; /* the sender of each kept signal */
static const int forwarded[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2};
#define N_FORWARDED (sizeof forwarded / sizeof *forwarded)
_Static_assert(N_FORWARDED == sizeof fwd_pending_from / sizeof *fwd_pending_from,
               "one sender per forwarded signal");

static void send_to_command(int pid, int sig)
{
    int pidfd = atomic_load(&fwd_pidfd);
#ifdef SYS_pidfd_send_signal
    /* Through the pidfd when there is one: it fails once the command is
     * gone instead of reaching a process that reused its pid. */
    if (pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
        return;
    }
#endif
    (void)pidfd;
    kill((pid_t)pid, sig);
}

/* Sends the signals kept while the pid was unknown. Async-signal-safe. */
static void send_pending(void)
{
    unsigned bits = atomic_exchange(&fwd_pending, 0u);
    int pid = atomic_load(&fwd_pid);
    size_t i;
    for (i = 0; i < N_FORWARDED && pid > 0; i++)
        if ((bits & (1u << i)) && atomic_load(&fwd_pending_from[i]) != pid)
            send_to_command(pid, forwarded[i]);
}

static void forward_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno, pid = atomic_load(&fwd_pid);
    size_t i;
    /* Only what another process sent to us alone: the terminal's signals
     * (SI_KERNEL) reach the command's process group directly, and what the
     * command sends us is not bounced back. */
    if (si == NULL || si->si_code > 0 || (pid > 0 && si->si_pid == pid)) {
        errno = saved;
        return;
    }
    if (pid > 0) {
        send_to_command(pid, sig);
    } else {
        /* The command may already run: keep the signal for forward_to,
         * and send it here if the pid became known meanwhile. */
        for (i = 0; i < N_FORWARDED; i++) {
            if (forwarded[i] == sig) {
                atomic_store(&fwd_pending_from[i], (int)si->si_pid);
                atomic_fetch_or(&fwd_pending, 1u << i);
            }
        }
        if (atomic_load(&fwd_pid) > 0)
            send_pending();
    }
    errno = saved;
}

static void forward_install(struct sigaction old[N_FORWARDED])
{
    struct sigaction sa;
    size_t i;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = forward_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    atomic_store(&fwd_pid, 0);
    atomic_store(&fwd_pidfd, -1);
    atomic_store(&fwd_pending, 0u);
    for (i = 0; i < N_FORWARDED; i++)
        sigaction(forwarded[i], &sa, &old[i]);
}

/* From now on signals go to the command; those that came first go now. */
static void forward_to(const struct repro_supervisor *h)
{
    /* The pidfd first: the handler prefers it. */
    atomic_store(&fwd_pidfd, repro_supervisor_pidfd(h));
    atomic_store(&fwd_pid, repro_supervisor_pid(h));
    send_pending();
}

static void forward_restore(const struct sigaction old[N_FORWARDED])
{
    size_t i;
    atomic_store(&fwd_pid, 0);
    atomic_store(&fwd_pidfd, -1);
    for (i = 0; i < N_FORWARDED; i++)
        sigaction(forwarded[i], &old[i], NULL);
    atomic_store(&fwd_pending, 0u);
}

int repro_app_run(const struct repro_app_run_opts *o, struct repro_app_run_result *res,
                  struct repro_error *err)
{
    struct repro_supervisor_opts so;
    struct repro_supervisor *h = NULL;
    struct sigaction old[N_FORWARDED];
    struct run_state st;
    int rc;

    if (o == NULL || res == NULL)
        return repro_error_set(err, REPRO_E_INVAL, "cannot run a command: no command given");
    memset(res, 0, sizeof *res);
    memset(&so, 0, sizeof so);
    st.o = o;
    st.res = res;
    so.argv = o->argv;
    so.service = o->service;
    so.follow_forks = o->follow_forks;
    so.on_crash = on_crash;
    so.ctx = &st;
    if (o->forward_signals)
        forward_install(old);
    rc = repro_supervisor_start(&so, &h, err);
    if (rc == REPRO_OK && o->forward_signals)
        forward_to(h);
    if (rc == REPRO_OK) {
        /* Each ptrace-stop of the command raises SIGCHLD for this process;
         * the tracer thread blocks it, so it would wake this thread (to be
         * ignored) once per stop. Blocked here too, after the start so that
         * the command does not inherit it. */
        sigset_t chld, old_mask;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        pthread_sigmask(SIG_BLOCK, &chld, &old_mask);
        rc = repro_supervisor_wait(h, -1, &res->sup, err);
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    }
    if (o->forward_signals)
        forward_restore(old);
    repro_supervisor_free(h);
    return rc;
}
