/*
 * repro crash records: what a crash leaves behind so it can be symbolized
 * later, on another machine, and joined to the requests in flight.
 *
 * Three producers fill the same record: the ptrace supervisor (`repro
 * run`), the in-process agent (librepro_crash.so, through crash record files
 * and `repro ingest DIR`) and core-file import (`repro ingest --core`).
 * Every frame is kept as an absolute pc plus (module, build-id, offset), the
 * offset being the ELF virtual address `pc - load_bias` that `addr2line -e
 * MODULE` takes; function/file/line are filled in by symbolize/.
 *
 * Ownership, for the whole header: a record (struct repro_crash) owns
 * everything it points to. Fields marked "owned" are heap strings or
 * arrays that belong to the record, valid until it is freed
 * (repro_crash_free) or the field is set again (repro_crash_set_str);
 * replace them only through the setters. The arrays (modules, threads,
 * conns, a thread's frames) grow by realloc: a pointer to an element is
 * valid until the next add to that same array. No function keeps a
 * pointer to a caller's string: every string parameter is borrowed for the
 * call and copied. Records are not thread-safe: one thread at a time.
 */
#ifndef REPRO_CRASH_H
#define REPRO_CRASH_H

#include "repro/core.h"

#include <stdint.h>

#define REPRO_CRASH_MAX_THREADS 1024
#define REPRO_CRASH_MAX_FRAMES 256   /* per thread */
#define REPRO_CRASH_MAX_MODULES 1024
#define REPRO_CRASH_MAX_CONNS 4096

struct repro_crash_module {
    char *path;              /* owned */
    uint64_t start, end;     /* mapped range of the whole module */
    uint64_t load_bias;      /* runtime address - ELF virtual address */
    char build_id[129];      /* lower-case hex, "" if unknown */
};

struct repro_crash_frame {
    uint64_t pc;       /* absolute; the return address for callers */
    int module;        /* index into modules, -1 when no module maps pc */
    uint64_t offset;   /* pc - module's load_bias (valid when module >= 0) */
    /* Filled by symbolization (NULL/0 when unknown). */
    char *function, *file; /* owned */
    int line, column;
    int inlined;       /* 1 for an inlined frame expanded from the one before */
};

struct repro_crash_thread {
    int tid;
    char name[32];
    int crashed;                      /* the thread that took the signal */
    char *registers;                  /* owned text, "rip=0x... rsp=0x ...", or NULL */
    struct repro_crash_frame *frames; /* owned */
    size_t n_frames, cap_frames;
    int partial;                      /* unwinding stopped early (reason in the crash) */
};

struct repro_crash_conn {
    int fd;
    int family; /* 4 or 6 */
    uint8_t local_ip[16], remote_ip[16];
    uint16_t local_port, remote_port;
    int state;  /* TCP state number from /proc/net/tcp (1 = ESTABLISHED, 10 = LISTEN) */
};

/*
 * A crash. Invariants (checked by repro_crash_validate): every frame's
 * module is -1 or < n_modules; at most one thread has crashed = 1; counts
 * never exceed the REPRO_CRASH_MAX_* caps.
 */
struct repro_crash {
    int64_t time_us;       /* wall clock of the fault */
    int pid, tid;          /* process and crashing thread */
    char *executable;      /* owned */
    char *cmdline;         /* owned, arguments separated by spaces */
    char *service;         /* owned, --service NAME or NULL */
    char *hostname;        /* owned or NULL */
    int signo, si_code;
    uint64_t fault_address;
    char source[16];       /* "ptrace", "inproc" or "core" */
    int partial;           /* something could not be had */
    char partial_reason[512];
    struct repro_crash_module *modules;
    size_t n_modules, cap_modules;
    struct repro_crash_thread *threads;
    size_t n_threads, cap_threads;
    struct repro_crash_conn *conns;
    size_t n_conns, cap_conns;
    char *signature;       /* owned, set by symbolization or NULL */
    char *record_key;      /* owned or NULL: a key that makes storing idempotent
                              (a second insert with the same key stores nothing) */
};

/* Allocates an empty record (transferred: free with repro_crash_free), or
 * NULL when out of memory. */
struct repro_crash *repro_crash_new(void);
/* Frees c and everything it owns; NULL is fine. */
void repro_crash_free(struct repro_crash *c);
/* Sets *field (an owned string field of a record) to a copy of value
 * (borrowed for the call; NULL clears it), freeing the old string. On
 * REPRO_E_NOMEM *field is unchanged. */
int repro_crash_set_str(char **field, const char *value);
/* Appends a module; path and build_id_hex are copied (NULL: ""). Moves the
 * modules array. REPRO_E_NOMEM, REPRO_E_LIMIT past REPRO_CRASH_MAX_MODULES. */
int repro_crash_add_module(struct repro_crash *c, const char *path, uint64_t start, uint64_t end,
                           uint64_t load_bias, const char *build_id_hex);
/* Appends a thread (name copied, NULL: ""). Returns the new thread
 * (borrowed: owned by c, valid until the next add_thread on c or
 * repro_crash_free) or NULL on allocation failure or past
 * REPRO_CRASH_MAX_THREADS. */
struct repro_crash_thread *repro_crash_add_thread(struct repro_crash *c, int tid, const char *name,
                                                  int crashed);
/* Appends a frame to t (borrowed). Moves t's frames array. REPRO_E_NOMEM,
 * REPRO_E_LIMIT past REPRO_CRASH_MAX_FRAMES. */
int repro_crash_add_frame(struct repro_crash_thread *t, uint64_t pc);
/* Appends a copy of *conn (borrowed for the call). REPRO_E_NOMEM,
 * REPRO_E_LIMIT past REPRO_CRASH_MAX_CONNS. */
int repro_crash_add_conn(struct repro_crash *c, const struct repro_crash_conn *conn);
/* Marks the record partial with a reason (the first reason wins). */
void repro_crash_mark_partial(struct repro_crash *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Maps every frame's pc to its module and offset (call after adding
 * modules and frames). */
void repro_crash_resolve_modules(struct repro_crash *c);
/* Checks the invariants; REPRO_E_MALFORMED with err naming the problem. */
int repro_crash_validate(const struct repro_crash *c, struct repro_error *err);

/* "SIGSEGV" for 11, "SIG37" for unknown numbers, "hang" for 0 (a record
 * taken without a signal, repro_supervisor_record_now). Returns a static string
 * for known signals, else buf (len bytes, caller-owned) holding the name:
 * valid as long as buf. Thread-safe. */
const char *repro_signal_name(int signo, char *buf, size_t len);

/* ---- producers (each implemented in its own crash/ file) ------------- */

/*
 * Parses one crash record file written by librepro_crash.so (format:
 * docs/crash-record.md) into *out (transferred: free with
 * repro_crash_free; it copies what it keeps of p, which is borrowed for
 * the call). A damaged or truncated record yields REPRO_E_MALFORMED with
 * err naming the line/byte; when enough was readable *out is still set,
 * marked partial, and must be freed too; otherwise *out is NULL.
 * (crash_file.c)
 */
int repro_crash_file_parse(const uint8_t *p, size_t len, struct repro_crash **out,
                           struct repro_error *err);

/*
 * Reads a core file with libdwfl (threads, registers, unwound stacks,
 * module table with build-ids) into *out (transferred: free with
 * repro_crash_free; NULL on error). core_path and exe_path are borrowed
 * for the call. exe is the binary
 * that produced it, or NULL to rely on the paths and build-ids the core
 * names. Errors: REPRO_E_NOTFOUND / REPRO_E_IO when a file cannot be
 * opened; REPRO_E_INVAL when exe's build-id does not match the core's main
 * module or a path is not a regular file; REPRO_E_MALFORMED for a file that
 * is not an ELF core, a core truncated inside its headers or so early that
 * nothing of the crash remains (no thread, module, signal or process
 * note), or one that maps a FIFO; REPRO_E_NOMEM. A core truncated further
 * on gives a partial record (REPRO_OK, c->partial set) whose reason says
 * where it was cut and what is missing ("core 'X' is truncated: N of M
 * bytes, cut before its notes; missing: signal, pid, threads and
 * registers, command line"); a missing signal or pid is 0. (core_import.c)
 */
int repro_core_import(const char *core_path, const char *exe_path, struct repro_crash **out,
                      struct repro_error *err);

/*
 * Adds the TCP connections that process pid has open (sockets in
 * /proc/PID/fd matched against /proc/PID/net/tcp and tcp6) to c
 * (borrowed; the conns array moves). Errors as repro__proc_conns_read
 * (crash/supervisor.h): REPRO_E_INVAL for pid <= 0, REPRO_E_IO,
 * REPRO_E_MALFORMED, REPRO_E_LIMIT, REPRO_E_NOMEM. (proc_conns.c)
 */
int repro_crash_add_proc_connections(struct repro_crash *c, int pid, struct repro_error *err);

/* ---- supervisor (crash/supervisor.c): a command under ptrace ------------ */

/*
 * The supervisor is a handle, as libuv's uv_spawn gives one: start a
 * command, poll a descriptor or wait for its end, stop it, free the
 * handle. Each handle has its own tracer thread, which forks the command,
 * seizes it and serves its ptrace-stops; crashes reach the caller only
 * through on_crash, on that thread. Several handles may live in one
 * process at once: each thread waits with __WNOTHREAD for its own tracees
 * only, and no process-wide state (signal handlers, dispositions, other
 * threads' masks) is touched; while stopping a crashed process the tracer
 * thread sleeps in sigtimedwait for SIGCHLD and may take one meant for a
 * handler of the program's (docs/run.md, threading model). Two rules for
 * the program that links this: nothing else in it may wait for "any
 * child" without __WNOTHREAD (waitpid(-1, ...) or wait() would reap a
 * supervised command), and SIGCHLD must not be set to SIG_IGN (the kernel
 * would then reap it). `repro run`'s forwarding of
 * SIGTERM and friends to the command lives in app/run.c, not here.
 */
struct repro_supervisor;

/* What the supervisor tells about one recorded crash (see on_crash). */
struct repro_supervisor_crash_info {
    uint64_t seen_ns;   /* monotonic (repro_mono_ns): when the signal was seen */
    uint64_t stop_ns;   /* from seeing the signal to all threads stopped */
    uint64_t unwind_ns; /* registers, module table, stacks, connections */
};

/*
 * Called once per recorded crash, on the handle's tracer thread, while
 * every thread of the crashed process is held stopped: the signal is
 * delivered once it returns, so a caller that stores c here has committed
 * it before the process dies. c and info are borrowed for the call only
 * (copy what must outlive it). It must not call repro_supervisor_wait,
 * _stop or _free on its own handle (they wait for the tracer thread);
 * _pid, _pidfd and _fd are fine. The time it takes is time the crashed
 * process is held, bounded by nothing but the callback itself.
 */
typedef void (*repro_supervisor_crash_fn)(void *ctx, const struct repro_crash *c,
                                          const struct repro_supervisor_crash_info *info);

struct repro_supervisor_opts {
    char *const *argv;                  /* borrowed for the start call: CMD and ARGS,
                                           NULL-terminated; argv[0] is looked up in PATH
                                           like execvp(3) */
    const char *service;                /* borrowed for the start call (copied), or NULL:
                                           stored as every crash's service */
    int follow_forks;                   /* 1: trace children and exec'd programs too */
    int record_timeout_ms;              /* bound on stopping the threads of a crashed process
                                           (0: 2000); a thread that does not stop in time makes
                                           the record partial, never a hang */
    repro_supervisor_crash_fn on_crash; /* or NULL: crashes are recorded and counted only */
    void *ctx;                          /* passed to on_crash */
};

/* How the command ended. */
struct repro_supervisor_result {
    int exit_code;      /* as a shell reports it: the exit code, 128+signal when
                           killed by one, 127/126 when CMD could not be executed */
    int exited;         /* 1 when it exited, 0 when a signal killed it */
    int term_signal;    /* the killing signal, or 0 */
    int core_dumped;    /* the kernel reported a core dump */
    int exec_errno;     /* errno of a failed exec of CMD, else 0 */
    unsigned n_crashes; /* crashes recorded (each passed to on_crash) */
    unsigned n_unfollowed; /* without follow_forks: child processes (and theirs)
                              that were let go untraced, so a crash in one is
                              not recorded; 0 with follow_forks */
};

/*
 * Starts argv under ptrace and returns at once with *h (transferred: free
 * with repro_supervisor_free, which also ends a command still running).
 * The command is forked by a new tracer thread and seized with
 * PTRACE_SEIZE (TRACECLONE, TRACEFORK, TRACEVFORK, TRACEEXEC) before it
 * may exec. Without follow_forks a new process is detached at its first
 * stop, before it runs any code of its own, and counted in n_unfollowed;
 * it then runs untraced, its signals, group-stops and children its own. It starts with the calling thread's
 * signal mask and the process's dispositions, except SIGPIPE, which is
 * reset to its default.
 *
 * While it runs, every non-fatal signal is passed through and group-stops
 * are kept with PTRACE_LISTEN. When a thread of any traced process takes
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP or SIGSYS while that
 * signal has its default disposition (a program's own handler runs
 * untouched; a handler that re-raises with the default action is recorded
 * then), all threads of that process are stopped, a crash record (source
 * "ptrace") is made and passed to on_crash, and the threads are detached
 * with the signal so that the kernel kills the process as it would have
 * (core dumps included). Anything that fails while recording gives a
 * partial record. When the command exits, remaining tracees (with
 * follow_forks) are detached and left running, then the handle's
 * descriptor becomes readable.
 *
 * Returns REPRO_OK once the command is seized and let go (an exec failure
 * shows later, in the result's exec_errno and exit code 127/126);
 * REPRO_E_INVAL (no opts, h or argv), REPRO_E_NOMEM, REPRO_E_IO (cannot
 * create a pipe, eventfd, thread or process) or REPRO_E_UNSUPPORTED (the
 * kernel refuses PTRACE_SEIZE), each with err set and *h NULL.
 * Thread-safe: any thread may start handles, several at once.
 */
int repro_supervisor_start(const struct repro_supervisor_opts *o, struct repro_supervisor **h,
                           struct repro_error *err);

/* The command's pid. It names the command until the handle's descriptor is
 * readable (then it has been reaped and the number may be reused). */
int repro_supervisor_pid(const struct repro_supervisor *h);

/* A pidfd (pidfd_open(2)) naming the command, immune to pid reuse, for
 * pidfd_send_signal(2) (async-signal-safe to use). Callee-owned: valid
 * until repro_supervisor_free; -1 when the kernel has no pidfd_open. */
int repro_supervisor_pidfd(const struct repro_supervisor *h);

/* A descriptor that becomes readable (POLLIN) once the command has ended
 * and its result is final, and stays readable: poll it, never read or
 * close it. Callee-owned: valid until repro_supervisor_free. */
int repro_supervisor_fd(const struct repro_supervisor *h);

/* repro_supervisor_wait's outcome when timeout_ms passed first. */
#define REPRO_SUPERVISOR_RUNNING 1

/*
 * Waits at most timeout_ms (0: just look; < 0: until the end) for the
 * command to end. Returns REPRO_OK with *res (may be NULL) filled once it
 * has ended — whatever its status; REPRO_SUPERVISOR_RUNNING when the time
 * ran out first; REPRO_E_IO with err set when the tracer could not wait
 * for it (the command is then untraced; *res is zero); REPRO_E_INVAL for a
 * NULL h. May be called again (the same result). A signal handler of the
 * caller's does not end the wait early. Thread-safe.
 */
int repro_supervisor_wait(struct repro_supervisor *h, int timeout_ms,
                          struct repro_supervisor_result *res, struct repro_error *err);

/*
 * Records every thread's stack of the command now, without killing it (a
 * hang is a bug too): the command gets SIGSTOP, the tracer takes it at its
 * delivery, stops every thread, unwinds them as for a crash and calls
 * on_crash with a record whose signo is 0 (stored as signal "hang"), while
 * the process is held; then drops the SIGSTOP and lets every thread run on,
 * still traced. Not counted in n_crashes. Only the command's own process
 * (not its children under follow_forks). A SIGSTOP the program gets from
 * elsewhere while a request is pending is taken as the request. Blocks
 * until the record was handed to on_crash, at most timeout_ms. Returns
 * REPRO_OK; REPRO_E_IO when no stop came in time (the request stays
 * pending); REPRO_E_INVAL for a NULL h or a command that has ended.
 * Thread-safe; not from on_crash.
 */
int repro_supervisor_record_now(struct repro_supervisor *h, int timeout_ms,
                                struct repro_error *err);

/*
 * Ends the command: sends sig (and SIGCONT, so that a stopped command acts
 * on it) to it, waits up to grace_ms for it to end, then sends SIGKILL and
 * waits for the end. sig == SIGKILL or grace_ms == 0 kills at once;
 * grace_ms < 0 waits without bound and never kills. Only the command's own
 * process is signalled (not its children under follow_forks). Blocks until
 * the command has ended; its result is then repro_supervisor_wait's.
 * Returns REPRO_OK (also when it had already ended) or REPRO_E_INVAL (NULL
 * h, sig not in 1..NSIG-1). Thread-safe; not from on_crash.
 */
int repro_supervisor_stop(struct repro_supervisor *h, int sig, int grace_ms,
                          struct repro_error *err);

/* Frees h (NULL is fine): a command still running is killed (SIGKILL) and
 * waited for, the tracer thread is joined, the descriptors are closed.
 * Not from on_crash; no other call on h may be running or follow. */
void repro_supervisor_free(struct repro_supervisor *h);

/*
 * Convenience: start, wait without bound, free. Returns what
 * repro_supervisor_start or repro_supervisor_wait returns, with *res
 * filled on REPRO_OK; REPRO_E_INVAL also for a NULL res. No signal
 * forwarding (that is app/run.c's).
 */
int repro_supervisor_run(const struct repro_supervisor_opts *o, struct repro_supervisor_result *res,
                         struct repro_error *err);

/* ---- symbolization of crashes (symbolize/crash_symbolize.c) ------------ */

struct repro_sym_session;

/* What symbolizing a crash could and could not do. */
struct repro_crash_sym_report {
    size_t n_frames;     /* physical frames looked at */
    size_t n_symbolized; /* of those, with a function or a file */
    size_t n_missing;    /* modules on a stack whose file (with the recorded build-id)
                            was not found; modules no frame points into are not opened */
    size_t n_no_dwarf;   /* modules on a stack found without debug information */
    char missing[2048];  /* "path (build-id X): why; ..." */
};

/*
 * Symbolizes every frame of c through session s: function (demangled),
 * file, line and column, the inlined frames expanded in front of the
 * physical frame that holds them (inlined = 1, same pc), then sets
 * c->signature. Modules are used only when their build-id equals the
 * recorded one: by recorded path first, then in the build-id trees of
 * debug_dirs and /usr/lib/debug. Frames of missing modules keep module and
 * offset; *rep says what was missing. Calling it again on a symbolized
 * crash rebuilds the inlined frames. Returns REPRO_OK or REPRO_E_NOMEM.
 */
int repro_crash_symbolize(struct repro_sym_session *s, struct repro_crash *c,
                          const char *const *debug_dirs, size_t n_debug_dirs,
                          struct repro_crash_sym_report *rep, struct repro_error *err);

/*
 * Sets c->signature: the signal plus the first three in-app frames of the
 * crashing thread, runtime frames (raise, abort, assert, libc and allocator
 * internals, thread start, the crash agent) skipped; unsymbolized frames
 * count as module+offset. Returns REPRO_OK or REPRO_E_NOMEM.
 */
int repro_crash_compute_signature(struct repro_crash *c);

#endif
