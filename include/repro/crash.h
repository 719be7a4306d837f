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
    char partial_reason[160];
    struct repro_crash_module *modules;
    size_t n_modules, cap_modules;
    struct repro_crash_thread *threads;
    size_t n_threads, cap_threads;
    struct repro_crash_conn *conns;
    size_t n_conns, cap_conns;
    char *signature;       /* owned, set by symbolization or NULL */
};

/* Allocates an empty record (transferred: free with repro_crash_free). */
struct repro_crash *repro_crash_new(void);
void repro_crash_free(struct repro_crash *c);
/* Setters copy their strings. REPRO_E_NOMEM on allocation failure. */
int repro_crash_set_str(char **field, const char *value);
int repro_crash_add_module(struct repro_crash *c, const char *path, uint64_t start, uint64_t end,
                           uint64_t load_bias, const char *build_id_hex);
/* Returns the new thread (borrowed, valid until the next add_thread) or
 * NULL on allocation failure or past REPRO_CRASH_MAX_THREADS. */
struct repro_crash_thread *repro_crash_add_thread(struct repro_crash *c, int tid, const char *name,
                                                  int crashed);
/* REPRO_E_LIMIT past REPRO_CRASH_MAX_FRAMES. */
int repro_crash_add_frame(struct repro_crash_thread *t, uint64_t pc);
int repro_crash_add_conn(struct repro_crash *c, const struct repro_crash_conn *conn);
/* Marks the record partial with a reason (the first reason wins). */
void repro_crash_mark_partial(struct repro_crash *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Maps every frame's pc to its module and offset (call after adding
 * modules and frames). */
void repro_crash_resolve_modules(struct repro_crash *c);
/* Checks the invariants; REPRO_E_MALFORMED with err naming the problem. */
int repro_crash_validate(const struct repro_crash *c, struct repro_error *err);

/* "SIGSEGV" for 11, "SIG37" for unknown numbers. */
const char *repro_signal_name(int signo, char *buf, size_t len);

/* ---- producers (each implemented in its own capture/ file) ------------- */

/*
 * Parses one crash record file written by librepro_crash.so (format:
 * docs/crash-record.md) into *out (transferred). A damaged or truncated
 * record yields REPRO_E_MALFORMED with err naming the line/byte; when
 * enough was readable *out is still set, marked partial. (crash_file.c)
 */
int repro_crash_file_parse(const uint8_t *p, size_t len, struct repro_crash **out,
                           struct repro_error *err);

/*
 * Reads a core file with libdwfl (threads, registers, unwound stacks,
 * module table with build-ids) into *out (transferred). exe is the binary
 * that produced it; a binary whose build-id does not match the core's is
 * refused with REPRO_E_INVAL. A truncated core gives a partial record.
 * (core_import.c)
 */
int repro_core_import(const char *core_path, const char *exe_path, struct repro_crash **out,
                      struct repro_error *err);

/*
 * Adds the TCP connections that process pid has open (sockets in
 * /proc/PID/fd matched against /proc/PID/net/tcp and tcp6) to c.
 * (proc_conns.c)
 */
int repro_crash_add_proc_connections(struct repro_crash *c, int pid, struct repro_error *err);

#endif
