/*
 * Threads' scheduling by thread id: policy and nice value together (glibc
 * has no pthread_t call for a thread's nice value, and no pthread_t -> tid
 * before 2.42). Used by the live agent's idle-first CPU policy
 * (app/live_priority.c).
 */
#include "repro/core.h"

#include <errno.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

int repro_gettid(void)
{
    return (int)syscall(SYS_gettid);
}

int repro_thread_set_sched(int tid, int policy, int nice)
{
    struct sched_param sp = {0};
    int e = 0;

    /* the kernel checks a SCHED_IDLE -> SCHED_OTHER switch against the
     * nice value just set (can_nice()), so the nice value goes first; the
     * policy is still set when it fails */
    if (policy != SCHED_IDLE && setpriority(PRIO_PROCESS, (id_t)tid, nice) != 0)
        e = errno;
    if (sched_setscheduler(tid, policy, &sp) != 0 && e == 0)
        e = errno;
    return e;
}
