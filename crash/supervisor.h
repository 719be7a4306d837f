/*
 * Private to crash/: the pure pieces of the ptrace supervisor
 * (crash/supervisor.c) and of the /proc connection reader
 * (crash/proc_conns.c), exposed so that tests/unit/test_supervisor.c can
 * check them without a traced process.
 */
#ifndef REPRO_CAPTURE_SUPERVISOR_H
#define REPRO_CAPTURE_SUPERVISOR_H

#include "repro/crash.h"
#include "regs.h"

#include <stddef.h>
#include <stdint.h>

/* One row of /proc/PID/net/tcp or tcp6, addresses in network byte order. */
struct repro__tcp_row {
    int family; /* 4 or 6; 4 also for an IPv4-mapped row of tcp6 */
    uint8_t local_ip[16], remote_ip[16];
    uint16_t local_port, remote_port;
    int state;      /* 1 = ESTABLISHED ... 10 = LISTEN, 11 = CLOSING */
    uint64_t inode; /* the socket inode that /proc/PID/fd links name */
};

/*
 * Parses one data line of /proc/net/tcp (family 4) or /proc/net/tcp6
 * (family 6) from line[0..len) (no NUL needed, a trailing newline is
 * allowed). The addresses are hex words in the byte order of the host that
 * wrote them, as the kernel prints them. A tcp6 row whose local address is
 * IPv4-mapped (::ffff:a.b.c.d) and whose remote address is mapped or
 * unspecified is returned as family 4 with the IPv4 addresses, so that it
 * joins captured IPv4 traffic. Returns REPRO_OK, or REPRO_E_MALFORMED (the
 * header line, a short or garbled line) with *row unspecified. Pure and
 * thread-safe.
 */
int repro__proc_tcp_parse(const char *line, size_t len, int family, struct repro__tcp_row *row);

/*
 * Parses the inode of a /proc/PID/fd link target "socket:[12345]" (len
 * bytes, no NUL needed). Returns REPRO_OK with *inode set, or
 * REPRO_E_NOTFOUND when the target is not a socket or is garbled.
 */
int repro__socket_inode(const char *target, size_t len, uint64_t *inode);

/* How repro__proc_conns_read finds each socket's 4-tuple and state. */
enum {
    REPRO__CONNS_AUTO = 0,   /* direct for few sockets, else the tables */
    REPRO__CONNS_TABLES = 1, /* /proc/PID/net/tcp and tcp6 */
    REPRO__CONNS_DIRECT = 2  /* pidfd_getfd + getsockname/getpeername/TCP_INFO */
};

/*
 * repro_crash_add_proc_connections with the way chosen (tests compare the
 * two). Sockets come from /proc/PID/fd either way; connections are
 * appended to c in inode order, one per descriptor. Returns REPRO_OK;
 * REPRO_E_IO (cannot list the descriptors or open a table), REPRO_E_MALFORMED
 * (a table line could not be parsed: the others are kept),
 * REPRO_E_LIMIT (more than REPRO_CRASH_MAX_CONNS), REPRO_E_NOMEM,
 * REPRO_E_UNSUPPORTED (DIRECT, and the kernel or our privileges refuse
 * pidfd_getfd), each with err set.
 */
int repro__proc_conns_read(struct repro_crash *c, int pid, int how, struct repro_error *err);

/* The fields of /proc/PID/task/TID/status the supervisor needs. */
struct repro__task_status {
    int tgid;        /* -1 when absent */
    uint64_t sigcgt; /* bit n-1 set: signal n has a handler */
    uint64_t sigign; /* bit n-1 set: signal n is ignored */
    uint64_t sigblk;
};

/*
 * Parses status text p[0..len). Returns REPRO_OK, or REPRO_E_MALFORMED
 * when the Tgid or SigCgt line is missing or garbled, or a SigIgn or SigBlk
 * line is garbled (missing ones read as 0). Pure.
 */
int repro__task_status_parse(const char *p, size_t len, struct repro__task_status *st);

/*
 * Fills r (host architecture) from the kernel's register block (struct
 * user_regs_struct of this architecture, as PTRACE_GETREGSET NT_PRSTATUS
 * returns it: raw, raw_len bytes). REPRO_E_MALFORMED when raw_len is too
 * short, REPRO_E_UNSUPPORTED on an architecture crash/regs.c does not
 * know. Format r with repro__regs_format (crash/regs.h).
 */
int repro__regs_from_user(const void *raw, size_t raw_len, struct repro__regs *r);

/* 1 for the signals that the supervisor records as crashes when their
 * disposition is the default one: SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
 * SIGTRAP, SIGSYS. */
int repro__is_crash_signal(int signo);

#endif
