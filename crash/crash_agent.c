/*
 * librepro_crash.so: the in-process crash agent. Loaded with LD_PRELOAD (or
 * linked), it installs handlers for the fatal signals on an alternate
 * signal stack and, when the process crashes, writes one crash record
 * (docs/crash-record.md) into $REPRO_CRASH_DIR with write(2), then lets the
 * process die of the same signal so core dumps still work.
 *
 * The spool directory belongs to the service: it is chosen, created (0700)
 * and checked when the library loads (owned by the effective user, not
 * writable by group or others, not a symbolic link), and checked again at
 * crash time. A directory that fails the checks is refused with a message
 * on stderr and no handler is installed: the agent records nothing rather
 * than hand a record (command line, memory map, registers, peers) to
 * another user. Records are created with O_CREAT|O_EXCL|O_NOFOLLOW under a
 * name holding 64 unpredictable bits (getrandom), so nothing anyone placed
 * in the directory is written through or replaced.
 *
 * Everything that is not async-signal-safe happens when the library loads:
 * reading the environment, /proc/self/exe and cmdline, the hostname, the
 * module table with build-ids (dl_iterate_phdr), libunwind's one-time
 * initialisation. The crash path uses only system calls, static buffers
 * and libunwind's local unwinder with per-thread caching (no locks of its
 * own; it reaches dl_iterate_phdr, whose loader lock is recursive). Objects
 * loaded after start-up are found at crash time by walking _r_debug and
 * reading their headers with process_vm_readv, which fails instead of
 * faulting on a bad address.
 *
 * Stack overflows are reported because every thread runs its handler on
 * its own preallocated alternate stack: the main thread's is set up here,
 * other threads' by the pthread_create wrapper. Threads created by other
 * means (raw clone) overflow without a record.
 *
 * Left out on purpose: threads other than the crashing one (repro run
 * stops and unwinds every thread), symbolization (done later, elsewhere),
 * and anything that would make a healthy process slower: the agent costs
 * one mmap per thread and nothing per call.
 *
 * This file must not use repro_lib: it is preloaded into services and
 * links only libunwind, libdl and pthreads.
 */
#include "repro/crash.h"
#include "regs.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define EXPORT __attribute__((visibility("default")))

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

enum {
    ALTSTACK_BYTES = 64 * 1024,
    OUT_BYTES = 64 * 1024,
    IO_BYTES = 64 * 1024,
    DIR_BYTES = 3072,
    TEXT_BYTES = 4096,        /* executable path, cmdline, hostname each */
    MOD_TEXT_BYTES = 1 << 20, /* preformatted module lines */
    MAX_MODULES = REPRO_CRASH_MAX_MODULES,
    MAX_FRAMES = REPRO_CRASH_MAX_FRAMES,
    MAX_SOCKETS = 4096,
    MAX_FDS_EXAMINED = 65536,
    MAX_LINK_MAPS = 4096,
    WAIT_FOR_RECORDER_MS = 10000,
    NAME_ATTEMPTS = 8, /* fresh names tried when one is taken */
};

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
#define N_FATAL (sizeof fatal_signals / sizeof *fatal_signals)

/* ---- state prepared at load time (read-only in the crash path) -------- */

static struct sigaction prev_actions[N_FATAL];
static char crash_dir[DIR_BYTES];
static size_t crash_dir_len;
static uint64_t name_key[2]; /* getrandom at load time: unpredictable record names */
static char exe_path[TEXT_BYTES];
static char header_text[3 * 4 * TEXT_BYTES + 64]; /* executable/cmdline/hostname lines */
static size_t header_len;
static int have_pvr;   /* process_vm_readv works on ourselves */
static int test_fault; /* REPRO_CRASH_TEST=fault-in-handler */
static uintptr_t main_phdr;

/* One loaded object as seen at load time; its line sits in mod_text. The
 * pair (bias, name pointer) identifies it in the dynamic linker's list. */
struct agent_module {
    uintptr_t bias;
    const char *name;
    uint32_t off, len;
};
static struct agent_module modules[MAX_MODULES];
static size_t n_modules;
static char mod_text[MOD_TEXT_BYTES];
static size_t mod_text_len;
static int modules_dropped;

/* ---- state of the crash path (owned by the recording thread) ---------- */

static atomic_int recorder_tid;  /* 0 until a thread starts recording */
static atomic_int recorder_done; /* set once the record is written */
static atomic_uint record_seq;
static char out_buf[OUT_BYTES];
static char io_buf[IO_BYTES];
static char path_tmp[DIR_BYTES + 96], path_rcr[DIR_BYTES + 96];
static char partial_reason[256];
static size_t partial_len;
static int sockets[MAX_SOCKETS]; /* descriptors */
static size_t n_sockets;

/* ---- output sink: a buffer, flushed to a file when one is attached ---- */

struct sink {
    char *buf;
    size_t len, cap;
    int fd; /* < 0: memory only, overflow sets failed */
    int failed;
    int sys_errno; /* of the failed write */
};

static void sink_flush(struct sink *s)
{
    size_t off = 0;
    if (s->fd < 0)
        return;
    while (off < s->len) {
        ssize_t n = write(s->fd, s->buf + off, s->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s->failed = 1;
            s->sys_errno = n < 0 ? errno : ENOSPC;
            break;
        }
        off += (size_t)n;
    }
    s->len = 0;
}

static void put(struct sink *s, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        size_t k;
        if (s->len == s->cap) {
            if (s->fd < 0) {
                s->failed = 1;
                return;
            }
            sink_flush(s);
        }
        k = s->cap - s->len < n ? s->cap - s->len : n;
        memcpy(s->buf + s->len, c, k);
        s->len += k;
        c += k;
        n -= k;
    }
}

static size_t cstr_len(const char *p)
{
    size_t n = 0;
    while (p[n])
        n++;
    return n;
}

static void put_str(struct sink *s, const char *p)
{
    put(s, p, cstr_len(p));
}

static void put_u64(struct sink *s, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(s, d + i, sizeof d - i);
}

static void put_i64(struct sink *s, int64_t v)
{
    if (v < 0) {
        put(s, "-", 1);
        put_u64(s, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(s, (uint64_t)v);
    }
}

static const char hexdig[] = "0123456789abcdef";

static void put_hex(struct sink *s, uint64_t v)
{
    char d[18];
    size_t i = sizeof d;
    do {
        d[--i] = hexdig[v & 15];
        v >>= 4;
    } while (v);
    d[--i] = 'x';
    d[--i] = '0';
    put(s, d + i, sizeof d - i);
}

static void put_hex_bytes(struct sink *s, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char d[2] = {hexdig[p[i] >> 4], hexdig[p[i] & 15]};
        put(s, d, 2);
    }
}

/* Writes p[0..n) as a text value: backslash and control bytes escaped. */
static void put_text(struct sink *s, const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p[i];
        if (c == '\\') {
            put(s, "\\\\", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[4] = {'\\', 'x', hexdig[c >> 4], hexdig[c & 15]};
            put(s, e, 4);
        } else {
            put(s, &p[i], 1);
        }
    }
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Notes why the record is partial; the first reasons are kept, later ones
 * are appended while they fit. */
static void note_partial(const char *why)
{
    size_t n = cstr_len(why);
    if (partial_len && partial_len + 2 < sizeof partial_reason) {
        partial_reason[partial_len++] = ';';
        partial_reason[partial_len++] = ' ';
    }
    while (n-- && partial_len + 1 < sizeof partial_reason)
        partial_reason[partial_len++] = *why++;
}

/* ---- memory reads that cannot fault ----------------------------------- */

/* Copies n bytes at src into dst. checked: through process_vm_readv, so
 * an unmapped address returns -1 instead of faulting (for the crash path);
 * unchecked: plain memcpy (at load time, of objects known to be mapped). */
static int mem_read(void *dst, uintptr_t src, size_t n, int checked)
{
    struct iovec local = {dst, n}, remote = {(void *)src, n};
    if (!checked) {
        memcpy(dst, (const void *)src, n);
        return 0;
    }
    if (!have_pvr)
        return -1;
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* Reads the NUL-terminated string at src (at most cap-1 bytes, page by page
 * so that a string ending before an unmapped page is still read). Returns
 * its length or -1. */
static ssize_t mem_read_str(char *dst, size_t cap, uintptr_t src, int checked)
{
    size_t got = 0;
    while (got + 1 < cap) {
        size_t chunk = 4096 - ((src + got) & 4095), i;
        if (chunk > cap - 1 - got)
            chunk = cap - 1 - got;
        if (mem_read(dst + got, src + got, chunk, checked) != 0)
            return -1;
        for (i = 0; i < chunk; i++)
            if (dst[got + i] == '\0')
                return (ssize_t)(got + i);
        got += chunk;
    }
    dst[got] = '\0';
    return (ssize_t)got;
}

/* ---- the module table ------------------------------------------------- */

/* Finds the GNU build-id note in the note segment at addr, whose entries
 * are padded to align (4, or 8 in segments aligned so). */
static size_t find_build_id(uintptr_t addr, size_t size, size_t align, uint8_t *id, size_t id_cap,
                            int checked)
{
    uint8_t notes[4096];
    size_t off = 0;
    if (size > sizeof notes)
        size = sizeof notes;
    if (mem_read(notes, addr, size, checked) != 0)
        return 0;
    while (off + sizeof(ElfW(Nhdr)) <= size) {
        ElfW(Nhdr) nh;
        size_t name_sz, desc_sz;
        memcpy(&nh, notes + off, sizeof nh);
        off += sizeof nh;
        name_sz = ((size_t)nh.n_namesz + align - 1) & ~(align - 1);
        desc_sz = ((size_t)nh.n_descsz + align - 1) & ~(align - 1);
        if (name_sz > size - off || desc_sz > size - off - name_sz)
            return 0;
        if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
            memcmp(notes + off, "GNU", 4) == 0 && nh.n_descsz <= id_cap) {
            memcpy(id, notes + off + name_sz, nh.n_descsz);
            return nh.n_descsz;
        }
        off += name_sz + desc_sz;
    }
    return 0;
}

/* Writes the "module" line of the object at bias whose program headers
 * are at phdr_addr. Returns -1 when it maps nothing or cannot be read. */
static int describe_module(struct sink *s, uintptr_t bias, uintptr_t phdr_addr, size_t phnum,
                           const char *name, size_t name_len, int checked)
{
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    uint8_t id[64];
    size_t id_len = 0, i;

    if (phnum > 256)
        return -1;
    for (i = 0; i < phnum; i++) {
        ElfW(Phdr) ph;
        if (mem_read(&ph, phdr_addr + i * sizeof ph, sizeof ph, checked) != 0)
            return -1;
        if (ph.p_type == PT_LOAD) {
            uintptr_t a = bias + (ph.p_vaddr & ~(uintptr_t)4095);
            uintptr_t b = (bias + ph.p_vaddr + ph.p_memsz + 4095) & ~(uintptr_t)4095;
            lo = a < lo ? a : lo;
            hi = b > hi ? b : hi;
        } else if (ph.p_type == PT_NOTE && id_len == 0) {
            id_len = find_build_id(bias + ph.p_vaddr, ph.p_memsz, ph.p_align == 8 ? 8 : 4, id,
                                   sizeof id, checked);
        }
    }
    if (hi <= lo)
        return -1;
    put_str(s, "module ");
    put_hex(s, lo);
    put(s, " ", 1);
    put_hex(s, hi);
    put(s, " ", 1);
    put_hex(s, bias);
    put(s, " ", 1);
    if (id_len)
        put_hex_bytes(s, id, id_len);
    else
        put(s, "-", 1);
    put(s, " ", 1);
    put_text(s, name, name_len);
    put(s, "\n", 1);
    return 0;
}

static int snapshot_one(struct dl_phdr_info *info, size_t size, void *ctx)
{
    struct sink s = {mod_text + mod_text_len, 0, sizeof mod_text - mod_text_len, -1, 0, 0};
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    (void)size;
    (void)ctx;

    if (n_modules == MAX_MODULES) {
        modules_dropped = 1;
        return 0;
    }
    if ((uintptr_t)info->dlpi_phdr == main_phdr && name[0] == '\0')
        name = exe_path;
    if (describe_module(&s, info->dlpi_addr, (uintptr_t)info->dlpi_phdr, info->dlpi_phnum, name,
                        cstr_len(name), 0) != 0)
        return 0;
    if (s.failed) {
        modules_dropped = 1;
        return 0;
    }
    modules[n_modules].bias = info->dlpi_addr;
    modules[n_modules].name = info->dlpi_name;
    modules[n_modules].off = (uint32_t)mod_text_len;
    modules[n_modules].len = (uint32_t)s.len;
    n_modules++;
    mod_text_len += s.len;
    return 0;
}

/* Crash path: an object loaded after start-up, described from memory. */
static void describe_live(struct sink *s, const struct link_map *lm)
{
    static char name[TEXT_BYTES];
    ElfW(Ehdr) eh;
    ssize_t name_len = lm->l_name ? mem_read_str(name, sizeof name, (uintptr_t)lm->l_name, 1) : 0;

    if (name_len < 0)
        name_len = 0;
    if (lm->l_addr == 0 || mem_read(&eh, lm->l_addr, sizeof eh, 1) != 0 ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_phentsize != sizeof(ElfW(Phdr)) ||
        describe_module(s, lm->l_addr, lm->l_addr + eh.e_phoff, eh.e_phnum, name, (size_t)name_len,
                        1) != 0)
        note_partial("an object loaded after start-up could not be described");
}

/* Crash path: the modules loaded now — the load-time lines of those still
 * loaded, plus those loaded since, read from memory. */
static void emit_modules(struct sink *s)
{
    uintptr_t p = (uintptr_t)_r_debug.r_map;
    size_t hint = 0, seen = 0, i;

    if (modules_dropped)
        note_partial("more modules than the agent keeps");
    if (p == 0 || !have_pvr) {
        for (i = 0; i < n_modules; i++)
            put(s, mod_text + modules[i].off, modules[i].len);
        if (p != 0)
            note_partial("module table as of load time (process_vm_readv unavailable)");
        return;
    }
    while (p != 0 && seen++ < MAX_LINK_MAPS) {
        struct link_map lm;
        size_t k, found = n_modules;
        if (mem_read(&lm, p, sizeof lm, 1) != 0) {
            note_partial("the dynamic linker's object list is unreadable");
            return;
        }
        /* Both lists are in load order: look from the last match on. */
        for (k = 0; k < n_modules && found == n_modules; k++) {
            size_t j = (hint + k) % n_modules;
            if (modules[j].bias == lm.l_addr && modules[j].name == lm.l_name)
                found = j;
        }
        if (found < n_modules) {
            put(s, mod_text + modules[found].off, modules[found].len);
            hint = found + 1;
        } else {
            describe_live(s, &lm);
        }
        p = (uintptr_t)lm.l_next;
    }
}

/* ---- connections ------------------------------------------------------ */

struct dirent64_hdr {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
};

static int parse_dec(const char *p, size_t n, uint64_t *v)
{
    size_t i;
    *v = 0;
    if (n == 0 || n > 19)
        return -1;
    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        *v = *v * 10 + (uint64_t)(p[i] - '0');
    }
    return 0;
}

/* Lists the sockets among our descriptors. */
static void collect_sockets(void)
{
    int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    size_t examined = 0;

    n_sockets = 0;
    if (dfd < 0) {
        note_partial("/proc/self/fd is unreadable: no connections");
        return;
    }
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, io_buf, sizeof io_buf);
        long off = 0;
        if (n <= 0)
            break;
        while (off < n) {
            struct dirent64_hdr h;
            const char *name = io_buf + off + offsetof(struct dirent64_hdr, d_type) + 1;
            uint64_t fd;
            struct stat st;

            memcpy(&h, io_buf + off, sizeof h);
            if (h.d_reclen == 0)
                break;
            off += h.d_reclen;
            if (parse_dec(name, cstr_len(name), &fd) != 0 || fd > INT32_MAX || (int)fd == dfd)
                continue;
            if (++examined > MAX_FDS_EXAMINED) {
                note_partial("more than 65536 descriptors: the rest were not examined");
                close(dfd);
                return;
            }
            if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
                continue;
            if (n_sockets == MAX_SOCKETS) {
                note_partial("more than 4096 sockets: the rest are left out");
                close(dfd);
                return;
            }
            sockets[n_sockets++] = (int)fd;
        }
    }
    close(dfd);
}

/* Splits a socket address into network-order address bytes and a port;
 * returns the family (4 or 6) or 0. */
static int split_addr(const struct sockaddr_storage *sa, uint8_t *ip, uint16_t *port)
{
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(ip, &in->sin_addr, 4);
        *port = ntohs(in->sin_port);
        return 4;
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(ip, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
        return 6;
    }
    return 0;
}

/* The TCP sockets among our descriptors, each asked directly (protocol,
 * both addresses, state): O(our sockets), where /proc/net/tcp would walk
 * every socket of the network namespace. */
static void emit_connections(struct sink *s)
{
    size_t k;
    collect_sockets();
    for (k = 0; k < n_sockets; k++) {
        struct sockaddr_storage local, remote;
        socklen_t len = sizeof(int);
        struct tcp_info ti;
        uint8_t lip[16], rip[16];
        uint16_t lport, rport = 0;
        int proto = 0, family;
        size_t ip_len;

        if (getsockopt(sockets[k], SOL_SOCKET, SO_PROTOCOL, &proto, &len) != 0 ||
            proto != IPPROTO_TCP)
            continue;
        len = sizeof local;
        memset(&local, 0, sizeof local);
        if (getsockname(sockets[k], (struct sockaddr *)&local, &len) != 0 ||
            (family = split_addr(&local, lip, &lport)) == 0)
            continue;
        ip_len = family == 6 ? 16 : 4;
        len = sizeof remote;
        memset(&remote, 0, sizeof remote);
        memset(rip, 0, sizeof rip);
        if (getpeername(sockets[k], (struct sockaddr *)&remote, &len) != 0 ||
            split_addr(&remote, rip, &rport) != family) {
            memset(rip, 0, sizeof rip); /* listening or not connected */
            rport = 0;
        }
        len = sizeof ti;
        memset(&ti, 0, sizeof ti);
        if (getsockopt(sockets[k], IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
            ti.tcpi_state = 0;
        put_str(s, "conn ");
        put_u64(s, (uint64_t)sockets[k]);
        put_str(s, family == 6 ? " 6 " : " 4 ");
        put_hex_bytes(s, lip, ip_len);
        put(s, " ", 1);
        put_u64(s, lport);
        put(s, " ", 1);
        put_hex_bytes(s, rip, ip_len);
        put(s, " ", 1);
        put_u64(s, rport);
        put(s, " ", 1);
        put_u64(s, ti.tcpi_state);
        put(s, "\n", 1);
    }
}

/* ---- registers and stack ---------------------------------------------- */

/* The registers of the signal context, through the producers' one
 * formatter (crash/regs.c, async-signal-safe). The context holds fewer
 * registers than a core or PTRACE_GETREGSET (no orig_rax, segments or
 * segment bases on x86-64): those are left out of the text. */
static void emit_registers(struct sink *s, const ucontext_t *uc)
{
    struct repro__regs r;
    char text[REPRO__REGS_TEXT_MAX];
    int n;
#if defined(__x86_64__)
    static const struct {
        unsigned slot;
        int idx;
    } map[] = {{REPRO__X86_RIP, REG_RIP}, {REPRO__X86_RSP, REG_RSP}, {REPRO__X86_RBP, REG_RBP},
               {REPRO__X86_RAX, REG_RAX}, {REPRO__X86_RBX, REG_RBX}, {REPRO__X86_RCX, REG_RCX},
               {REPRO__X86_RDX, REG_RDX}, {REPRO__X86_RSI, REG_RSI}, {REPRO__X86_RDI, REG_RDI},
               {REPRO__X86_R8, REG_R8},   {REPRO__X86_R9, REG_R9},   {REPRO__X86_R10, REG_R10},
               {REPRO__X86_R11, REG_R11}, {REPRO__X86_R12, REG_R12}, {REPRO__X86_R13, REG_R13},
               {REPRO__X86_R14, REG_R14}, {REPRO__X86_R15, REG_R15}, {REPRO__X86_EFLAGS, REG_EFL}};
    size_t i;
    repro__regs_init(&r, REPRO__REGS_X86_64);
    for (i = 0; i < sizeof map / sizeof *map; i++)
        repro__regs_set(&r, map[i].slot, (uint64_t)uc->uc_mcontext.gregs[map[i].idx]);
#elif defined(__aarch64__)
    unsigned i;
    repro__regs_init(&r, REPRO__REGS_AARCH64);
    repro__regs_set(&r, REPRO__A64_PC, uc->uc_mcontext.pc);
    repro__regs_set(&r, REPRO__A64_SP, uc->uc_mcontext.sp);
    for (i = 0; i < 31; i++)
        repro__regs_set(&r, REPRO__A64_X0 + i, uc->uc_mcontext.regs[i]);
    repro__regs_set(&r, REPRO__A64_PSTATE, uc->uc_mcontext.pstate);
#else
    (void)uc;
    repro__regs_init(&r, REPRO__REGS_NONE);
#endif
    n = repro__regs_format(&r, text, sizeof text);
    if (n <= 0)
        return;
    put_str(s, "regs ");
    put(s, text, (size_t)n);
    put(s, "\n", 1);
}

static void emit_frames(struct sink *s, ucontext_t *uc)
{
    unw_cursor_t cursor;
    int n = 0, rc = unw_init_local2(&cursor, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME);

    while (rc >= 0) {
        unw_word_t ip = 0;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        put_str(s, "frame ");
        put_u64(s, (uint64_t)n);
        put(s, " ", 1);
        put_hex(s, (uint64_t)ip);
        put(s, "\n", 1);
        if (++n == MAX_FRAMES) {
            rc = unw_step(&cursor);
            if (rc > 0) {
                put_str(s, "unwind limit\n");
                return;
            }
            break;
        }
        rc = unw_step(&cursor);
        if (rc == 0)
            break;
    }
    if (rc < 0) {
        put_str(s, "unwind error ");
        put_i64(s, rc);
        put(s, "\n", 1);
    } else {
        put_str(s, "unwind end\n");
    }
}

/* ---- the crash path --------------------------------------------------- */

/* "librepro_crash: WHAT 'SUBJECT': WHY" on stderr; without WHY, ": errno N"
 * (errno 0: no cause). Async-signal-safe. */
static void stderr_msg_why(const char *what, const char *subject, const char *why, int err)
{
    char buf[DIR_BYTES + 512];
    struct sink s = {buf, 0, sizeof buf, -1, 0, 0};
    put_str(&s, "librepro_crash: ");
    put_str(&s, what);
    put_str(&s, " '");
    put_str(&s, subject);
    put_str(&s, "'");
    if (why) {
        put_str(&s, ": ");
        put_str(&s, why);
    } else if (err) {
        put_str(&s, ": errno ");
        put_u64(&s, (uint64_t)err);
    }
    put(&s, "\n", 1);
    if (write(STDERR_FILENO, buf, s.len) < 0)
        return;
}

static void stderr_msg(const char *what, const char *subject, int err)
{
    stderr_msg_why(what, subject, NULL, err);
}

/* Why the directory open as fd must not hold crash records, or NULL when
 * it is private to this process's user: a directory, owned by the
 * effective user, writable by nobody else. Async-signal-safe. */
static const char *dir_problem(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return "cannot be examined (fstat failed)";
    if (!S_ISDIR(st.st_mode))
        return "not a directory";
    if (st.st_uid != geteuid())
        return "owned by another user";
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return "writable by group or others";
    return NULL;
}

/* Opens the crash directory itself (never through a symbolic link). */
static int open_dir(const char *path)
{
    return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* After open_dir failed with err: "it is a symbolic link" when it is one
 * (O_DIRECTORY|O_NOFOLLOW says ENOTDIR or ELOOP), else NULL. Async-signal-safe. */
static const char *open_dir_why(const char *path, int err)
{
    struct stat st;
    if ((err == ELOOP || err == ENOTDIR) && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return "it is a symbolic link";
    return NULL;
}

/* splitmix64's finalizer: spreads every input bit over the output. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* 64 bits nobody else can guess: fresh from the kernel when getrandom
 * answers at once (a plain system call, no locks), else derived from the
 * key drawn at load time, the thread and the clock. Async-signal-safe. */
static uint64_t name_token(int pid, int tid, unsigned seq)
{
    uint64_t fresh = 0, t;
    if (syscall(SYS_getrandom, &fresh, sizeof fresh, GRND_NONBLOCK) != (long)sizeof fresh)
        fresh = 0;
    t = mix64(name_key[1] ^ ((uint64_t)(uint32_t)pid << 32 | (uint32_t)tid));
    t = mix64(t ^ mono_ns() ^ ((uint64_t)seq << 48));
    return mix64(name_key[0] ^ t) ^ fresh;
}

/* DIR/crash-PID-TID-TOKEN.EXT; the name alone starts at out + crash_dir_len + 1. */
static void build_path(char *out, size_t cap, int pid, int tid, uint64_t token, const char *ext)
{
    struct sink s = {out, 0, cap - 1, -1, 0, 0};
    char hex[16];
    size_t i;
    for (i = 0; i < 16; i++)
        hex[i] = hexdig[(token >> (60 - 4 * i)) & 15];
    put_str(&s, crash_dir);
    put_str(&s, "/crash-");
    put_u64(&s, (uint64_t)pid);
    put(&s, "-", 1);
    put_u64(&s, (uint64_t)tid);
    put(&s, "-", 1);
    put(&s, hex, sizeof hex);
    put_str(&s, ext);
    out[s.len] = '\0';
}

/* Opens the crash directory again and checks it is still private (it may
 * have been removed, for example by tmpfiles cleaning, and recreated by
 * someone else since the agent loaded). Returns its descriptor or -1. */
static int open_spool_at_crash(void)
{
    const char *why;
    int dfd = open_dir(crash_dir);
    if (dfd < 0 && errno == ENOENT && mkdir(crash_dir, 0700) == 0)
        dfd = open_dir(crash_dir);
    if (dfd < 0) {
        int err = errno;
        stderr_msg_why("cannot open crash directory", crash_dir, open_dir_why(crash_dir, err), err);
        return -1;
    }
    if ((why = dir_problem(dfd)) != NULL) {
        stderr_msg_why("refusing crash directory", crash_dir, why, 0);
        close(dfd);
        return -1;
    }
    return dfd;
}

/* Creates the record's .tmp file under a fresh unpredictable name; never
 * opens anything that is already there. Returns its descriptor or -1. */
static int create_record(int dfd, int pid, int tid, unsigned seq)
{
    int fd = -1, attempt;
    for (attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
        uint64_t token = name_token(pid, tid, seq * NAME_ATTEMPTS + (unsigned)attempt);
        build_path(path_tmp, sizeof path_tmp, pid, tid, token, ".tmp");
        build_path(path_rcr, sizeof path_rcr, pid, tid, token, ".rcr");
        fd = openat(dfd, path_tmp + crash_dir_len + 1,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0)
        stderr_msg("cannot create crash record", path_tmp, errno);
    return fd;
}

/* Gives the finished record its final name, replacing nothing. */
static void publish_record(int dfd)
{
    const char *from = path_tmp + crash_dir_len + 1, *to = path_rcr + crash_dir_len + 1;
    long rc = syscall(SYS_renameat2, dfd, from, dfd, to, RENAME_NOREPLACE);
    if (rc != 0 && (errno == ENOSYS || errno == EINVAL))
        rc = renameat(dfd, from, dfd, to); /* kernel or filesystem without NOREPLACE */
    if (rc != 0)
        stderr_msg("cannot rename crash record", path_tmp, errno);
}

static void write_record(int signo, const siginfo_t *si, ucontext_t *uc, int pid, int tid,
                         uint64_t t0_ns)
{
    unsigned seq = atomic_fetch_add(&record_seq, 1);
    struct timespec now;
    char tname[17] = {0};
    struct sink s = {out_buf, 0, sizeof out_buf, -1, 0, 0};
    int dfd = open_spool_at_crash();

    if (dfd < 0)
        return;
    s.fd = create_record(dfd, pid, tid, seq);
    if (s.fd < 0) {
        close(dfd);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    prctl(PR_GET_NAME, tname, 0, 0, 0);

    put_str(&s, "REPRO-CRASH 1\nsource inproc\npid ");
    put_u64(&s, (uint64_t)pid);
    put_str(&s, "\ntid ");
    put_u64(&s, (uint64_t)tid);
    put_str(&s, "\ntime_us ");
    put_u64(&s, (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u);
    put_str(&s, "\nsigno ");
    put_u64(&s, (uint64_t)signo);
    put_str(&s, "\nsi_code ");
    put_i64(&s, si->si_code);
    put_str(&s, "\nfault_address ");
    put_hex(&s, si->si_code > 0 ? (uint64_t)(uintptr_t)si->si_addr : 0);
    put(&s, "\n", 1);
    put(&s, header_text, header_len);
    emit_modules(&s);
    put_str(&s, "thread ");
    put_u64(&s, (uint64_t)tid);
    put_str(&s, " 1 ");
    put_text(&s, tname, cstr_len(tname));
    put(&s, "\n", 1);
    emit_registers(&s, uc);
    /* What is on disk now survives a fault while unwinding. */
    sink_flush(&s);
    if (test_fault) {
        volatile int *volatile null_ptr = NULL;
        *null_ptr = 1;
    }
    emit_frames(&s, uc);
    emit_connections(&s);
    if (partial_len) {
        put_str(&s, "partial ");
        put_text(&s, partial_reason, partial_len);
        put(&s, "\n", 1);
    }
    sink_flush(&s);
    put_str(&s, "elapsed_ns ");
    put_u64(&s, mono_ns() - t0_ns);
    put_str(&s, "\nend\n");
    sink_flush(&s);
    if (close(s.fd) != 0 || s.failed)
        stderr_msg("cannot write crash record", path_tmp, s.failed ? s.sys_errno : errno);
    else
        publish_record(dfd);
    close(dfd);
}

static void restore_previous(void)
{
    size_t i;
    for (i = 0; i < N_FATAL; i++)
        sigaction(fatal_signals[i], &prev_actions[i], NULL);
}

static void restore_default(void)
{
    struct sigaction sa;
    size_t i;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (i = 0; i < N_FATAL; i++)
        sigaction(fatal_signals[i], &sa, NULL);
}

/*
 * Makes the signal take its (now restored) action once the handler returns.
 * A fault re-executes its instruction and faults again by itself; a signal
 * sent by a process, a breakpoint trap and a seccomp SIGSYS do not, so they
 * are queued again to this thread, with their siginfo, while still blocked.
 */
static void redeliver(int signo, siginfo_t *si, int pid, int tid)
{
    if (si->si_code > 0 && signo != SIGTRAP && signo != SIGSYS && signo != SIGABRT)
        return;
    if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, signo, si) != 0)
        syscall(SYS_tgkill, pid, tid, signo);
}

static void on_fatal(int signo, siginfo_t *si, void *ucv)
{
    uint64_t t0_ns = mono_ns();
    int saved_errno = errno;
    int pid = (int)getpid(), tid = (int)syscall(SYS_gettid), expected = 0, waited_ms = 0;

    if (!atomic_compare_exchange_strong(&recorder_tid, &expected, tid)) {
        if (expected == tid) {
            /* Re-entered from our own handler: no second record. */
            restore_default();
        } else {
            struct timespec ms = {0, 1000000};
            while (!atomic_load(&recorder_done) && waited_ms++ < WAIT_FOR_RECORDER_MS)
                nanosleep(&ms, NULL);
            if (!atomic_load(&recorder_done))
                restore_default();
        }
        redeliver(signo, si, pid, tid);
        errno = saved_errno;
        return;
    }
    write_record(signo, si, ucv, pid, tid, t0_ns);
    restore_previous();
    atomic_store(&recorder_done, 1);
    redeliver(signo, si, pid, tid);
    errno = saved_errno;
}

/* ---- alternate signal stacks ------------------------------------------ */

struct altstack {
    void *map;
    size_t map_len;
};

/* Gives the calling thread its own alternate stack (with a guard page
 * below it) unless it already has one. *as receives the mapping to free
 * at thread exit; map is NULL when nothing was installed. */
static void altstack_install(struct altstack *as)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    stack_t cur, ss;

    as->map = NULL;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return;
    as->map_len = ALTSTACK_BYTES + page;
    as->map = mmap(NULL, as->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (as->map == MAP_FAILED) {
        as->map = NULL;
        return;
    }
    mprotect(as->map, page, PROT_NONE);
    ss.ss_sp = (char *)as->map + page;
    ss.ss_size = ALTSTACK_BYTES;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(as->map, as->map_len);
        as->map = NULL;
    }
}

static void altstack_release(void *p)
{
    struct altstack *as = p;
    stack_t cur, off;

    if (as->map == NULL)
        return;
    if (sigaltstack(NULL, &cur) == 0 &&
        cur.ss_sp == (char *)as->map + (as->map_len - ALTSTACK_BYTES)) {
        memset(&off, 0, sizeof off);
        off.ss_flags = SS_DISABLE;
        if (sigaltstack(&off, NULL) != 0)
            return; /* still in use: leak rather than unmap a live stack */
    }
    munmap(as->map, as->map_len);
    as->map = NULL;
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static _Atomic(pthread_create_fn) real_pthread_create;

struct thread_start {
    void *(*fn)(void *);
    void *arg;
};

static void *thread_trampoline(void *p)
{
    struct thread_start start = *(struct thread_start *)p;
    struct altstack as;
    void *ret;

    free(p);
    altstack_install(&as);
    pthread_cleanup_push(altstack_release, &as);
    ret = start.fn(start.arg);
    pthread_cleanup_pop(1);
    return ret;
}

static pthread_create_fn resolve_pthread_create(void)
{
    pthread_create_fn fn = atomic_load(&real_pthread_create);
    if (fn == NULL) {
        void *sym = dlsym(RTLD_NEXT, "pthread_create");
        memcpy(&fn, &sym, sizeof fn);
        atomic_store(&real_pthread_create, fn);
    }
    return fn;
}

/* Every new thread gets its own alternate signal stack, so that a stack
 * overflow in it is reported. The caller sees pthread_create unchanged. */
EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start_routine)(void *), void *arg)
{
    pthread_create_fn real = resolve_pthread_create();
    struct thread_start *start;
    int rc;

    if (real == NULL)
        return EAGAIN;
    start = malloc(sizeof *start);
    if (start == NULL)
        return real(thread, attr, start_routine, arg);
    start->fn = start_routine;
    start->arg = arg;
    rc = real(thread, attr, thread_trampoline, start);
    if (rc != 0)
        free(start);
    return rc;
}

/* ---- load time -------------------------------------------------------- */

static size_t read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd < 0)
        return 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return got;
}

static void prepare_header(void)
{
    static char cmdline[TEXT_BYTES], host[256];
    struct sink s = {header_text, 0, sizeof header_text, -1, 0, 0};
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    size_t len, i;

    exe_path[n > 0 ? n : 0] = '\0';
    put_str(&s, "executable ");
    put_text(&s, exe_path, cstr_len(exe_path));
    put(&s, "\n", 1);
    len = read_small_file("/proc/self/cmdline", cmdline, sizeof cmdline);
    while (len > 0 && cmdline[len - 1] == '\0')
        len--;
    for (i = 0; i < len; i++)
        if (cmdline[i] == '\0')
            cmdline[i] = ' ';
    put_str(&s, "cmdline ");
    put_text(&s, cmdline, len);
    put(&s, "\n", 1);
    if (gethostname(host, sizeof host - 1) == 0) {
        host[sizeof host - 1] = '\0';
        put_str(&s, "hostname ");
        put_text(&s, host, cstr_len(host));
        put(&s, "\n", 1);
    }
    header_len = s.len;
}

/* Copies the n bytes of p into crash_dir, without trailing slashes;
 * -1 when it does not fit. */
static int set_dir(const char *p, size_t n)
{
    if (n >= sizeof crash_dir)
        return -1;
    memcpy(crash_dir, p, n);
    crash_dir[n] = '\0';
    while (n > 1 && crash_dir[n - 1] == '/')
        crash_dir[--n] = '\0';
    crash_dir_len = n;
    return 0;
}

/* The default spool: $XDG_RUNTIME_DIR/repro-crash when that directory is
 * private to the effective user (tmpfs, removed at the user's last logout),
 * else /var/tmp/repro-crash-EUID (kept across reboots; /var/tmp is sticky,
 * so nobody else can rename or remove it once it is ours). Never a shared
 * directory itself. */
static void default_dir(void)
{
    static const char sub[] = "/repro-crash";
    char buf[DIR_BYTES];
    struct sink s = {buf, 0, sizeof buf - 1, -1, 0, 0};
    const char *xdg = secure_getenv("XDG_RUNTIME_DIR");

    if (xdg != NULL && xdg[0] == '/' && cstr_len(xdg) + sizeof sub < sizeof crash_dir) {
        int fd = open(xdg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int ok = fd >= 0 && dir_problem(fd) == NULL;
        if (fd >= 0)
            close(fd);
        if (ok) {
            put_str(&s, xdg);
            while (s.len > 1 && buf[s.len - 1] == '/')
                s.len--;
            put_str(&s, sub);
            set_dir(buf, s.len);
            return;
        }
    }
    put_str(&s, "/var/tmp/repro-crash-");
    put_u64(&s, (uint64_t)geteuid());
    set_dir(buf, s.len);
}

/* Chooses the spool directory, creates it (0700) when missing and checks
 * that it is private. Returns 0 when records may be written there; else
 * says why not on stderr. */
static int prepare_dir(void)
{
    const char *d = secure_getenv("REPRO_CRASH_DIR"), *why;
    int fd;

    if (d != NULL && *d != '\0') {
        if (set_dir(d, cstr_len(d)) != 0) {
            stderr_msg_why("cannot use crash directory", "$REPRO_CRASH_DIR",
                           "longer than 3071 bytes; no crash will be recorded", 0);
            return -1;
        }
    } else {
        default_dir();
    }
    if (mkdir(crash_dir, 0700) != 0 && errno != EEXIST) {
        stderr_msg_why("cannot create crash directory", crash_dir, strerror(errno), 0);
        return -1;
    }
    fd = open_dir(crash_dir);
    if (fd < 0) {
        int err = errno;
        stderr_msg_why("cannot open crash directory", crash_dir,
                       open_dir_why(crash_dir, err)
                           ? "it is a symbolic link (name the directory itself); no crash will "
                             "be recorded"
                           : strerror(err),
                       0);
        return -1;
    }
    why = dir_problem(fd);
    close(fd);
    if (why != NULL) {
        char msg[128];
        struct sink s = {msg, 0, sizeof msg - 1, -1, 0, 0};
        put_str(&s, why);
        put_str(&s, " (it must be private to the service's user); no crash will be recorded");
        msg[s.len] = '\0';
        stderr_msg_why("refusing crash directory", crash_dir, msg, 0);
        return -1;
    }
    return 0;
}

/* Draws the key that makes record names unpredictable. Without getrandom
 * (a kernel before 3.17, a seccomp filter) the key comes from the clocks
 * and addresses (ASLR); O_EXCL still keeps records from being written
 * through anything placed in the directory. */
static void prepare_name_key(void)
{
    struct timespec ts;
    if (getrandom(name_key, sizeof name_key, GRND_NONBLOCK) == (ssize_t)sizeof name_key)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    name_key[0] = mix64((uint64_t)ts.tv_nsec ^ mono_ns() ^ (uint64_t)(uintptr_t)&ts);
    name_key[1] = mix64(name_key[0] ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)name_key);
}

/* Runs libunwind's one-time initialisation (it takes locks) now, not in
 * the crash path, and switches it to per-thread caching (no locks). */
static void warm_up_unwinder(void)
{
    unw_context_t ctx;
    unw_cursor_t cursor;
    int n = 0;
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    if (unw_getcontext(&ctx) != 0 || unw_init_local(&cursor, &ctx) != 0)
        return;
    while (n++ < 64 && unw_step(&cursor) > 0)
        ;
}

static void probe_process_vm_readv(void)
{
    static const char probe[8] = "probe";
    char copy[8];
    have_pvr = 1;
    have_pvr = mem_read(copy, (uintptr_t)probe, sizeof probe, 1) == 0 &&
               memcmp(copy, probe, sizeof probe) == 0;
}

__attribute__((constructor)) static void agent_init(void)
{
    static struct altstack main_altstack;
    const char *t = getenv("REPRO_CRASH_TEST");
    struct sigaction sa;
    size_t i;

    _Static_assert(MAX_FRAMES == 256, "docs/crash-record.md promises 256 frames");
    test_fault = t != NULL && strcmp(t, "fault-in-handler") == 0;
    /* A spool that is not private gets no record: no handler either. */
    if (prepare_dir() != 0)
        return;
    prepare_name_key();
    prepare_header();
    probe_process_vm_readv();
    main_phdr = (uintptr_t)getauxval(AT_PHDR);
    dl_iterate_phdr(snapshot_one, NULL);
    warm_up_unwinder();
    resolve_pthread_create();
    altstack_install(&main_altstack);

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    /* A fault inside the handler meets a blocked signal: the kernel then
     * applies the default action at once, so it cannot hang. */
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < N_FATAL; i++)
        sigaddset(&sa.sa_mask, fatal_signals[i]);
    for (i = 0; i < N_FATAL; i++)
        sigaction(fatal_signals[i], &sa, &prev_actions[i]);
}
