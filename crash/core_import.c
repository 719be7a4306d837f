/*
 * Core-file import (`repro ingest --core CORE --exe BINARY`): turns an ELF
 * core dump into the same crash record that the ptrace supervisor and the
 * in-process agent produce (include/repro/crash.h).
 *
 * Two readers look at the core. Our own note walk (gelf_getnote over every
 * PT_NOTE, fields read through bounds-checked, endian-explicit accessors)
 * gives what libdwfl does not expose: the signal, si_code and fault address
 * (NT_SIGINFO, else pr_cursig of NT_PRSTATUS), the crashing thread (the
 * thread whose NT_SIGINFO holds the signal, else the first NT_PRSTATUS:
 * the kernel and gdb's gcore both write the signalled thread first), each thread's registers, pid and command line
 * (NT_PRPSINFO), the entry point (NT_AUXV AT_ENTRY) and the path of the
 * executable (the NT_FILE mapping that holds the entry point). libdwfl
 * (dwfl_core_file_report, dwfl_core_file_attach) gives the module table
 * with build-ids and load biases, and unwinds every thread with CFI
 * (dwfl_thread_getframes): frame 0 is the activation pc, the others are
 * return addresses, stored as such.
 *
 * Specs: the System V gABI (ELF core files, note sections) and the Linux
 * core dump notes (struct elf_prstatus, elf_prpsinfo, siginfo_t, NT_FILE
 * as in fs/binfmt_elf.c). Registers are rendered for x86-64 and AArch64
 * cores; the other fields are read for any 32- or 64-bit Linux core.
 *
 * Input model: the core is hostile. A core shorter than its program headers
 * say is imported as far as it goes and marked partial, the reason saying
 * where it was cut (before, inside or after its notes) and what the record
 * lacks for it (signal, pid, threads and registers, command line, module
 * table); one cut so early that nothing of the crash remains is refused. A
 * file that is not an ELF core is refused; unwinding stops at
 * REPRO_CRASH_MAX_FRAMES per thread (the record says so) and at
 * REPRO_CRASH_MAX_THREADS threads.
 * libdwfl opens the files the core names (NT_FILE, the r_debug link map);
 * a core whose NT_FILE names a FIFO or socket is refused, since opening one
 * could block. Names read from the core's memory (the link map) are not
 * checked: a core crafted that way can still make libdwfl open a FIFO.
 *
 * Workload: one core at a time, from the CLI; a core of a few hundred MB
 * with hundreds of threads. Not thread-safe with respect to libelf's global
 * elf_version state, like the rest of the symbolizer.
 */
#include "repro/crash.h"
#include "regs.h"

#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_COMP "capture.core"

/* Linux core note types (elf.h has them, spelled out for old headers). */
#ifndef NT_SIGINFO
#define NT_SIGINFO 0x53494749
#endif
#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif
#define AT_ENTRY_TYPE 9 /* auxv a_type of the program entry point */

/* NT_FILE entries we are willing to look at (the kernel caps a core's
 * mappings at 65530 by default). */
#define MAX_FILE_ENTRIES (1u << 20)

/* A note's descriptor with the core's byte order and word size. */
struct desc {
    const uint8_t *p;
    size_t len;
    int big_endian;
    int is64;
};

/* What the note walk found. Pointers are borrowed from the note data,
 * which lives as long as the Elf handle. */
struct notes {
    int have_prpsinfo;
    int pid;
    char fname[17];
    char psargs[81];
    int have_siginfo;           /* the siginfo of the crash was found */
    int signo, si_code;
    uint64_t fault_address;
    int have_prstatus;          /* the first NT_PRSTATUS was read */
    int first_tid, first_cursig, first_si_code;
    long cur_thread;            /* record index of the last NT_PRSTATUS, or -1 */
    long crashed_thread;        /* record index of the signalled thread, or -1 */
    int have_entry;
    uint64_t entry;
    struct desc file;           /* NT_FILE, len 0 when absent */
    size_t n_prstatus;
    int bad_tid;                /* some NT_PRSTATUS holds a thread id <= 0 */
    size_t n_segs;              /* PT_NOTE segments */
    size_t n_segs_lost;         /* of those, starting at or past the end of the file */
    size_t n_segs_cut;          /* of those, ending past the end of the file */
};

/* Everything one import holds; released by import_release. */
struct import {
    const char *core_path, *exe_path;
    int core_fd, exe_fd;
    Elf *core_elf, *exe_elf;
    Dwfl *dwfl;
    struct repro_crash *c;
    int is64, big_endian;
    uint16_t machine;
    struct notes n;
    uint64_t file_size; /* bytes the core has */
    uint64_t need;      /* bytes its program headers say it has */
    size_t thread_hint; /* index of the thread libdwfl should report next */
    struct repro_error *err;
};

/* ---- bounds-checked, endian-explicit field access ---------------------- */

/* Reads an unsigned field of width 1, 2, 4 or 8 bytes at off. Returns 0
 * when the field lies outside the descriptor. */
static int rd_uint(const struct desc *d, size_t off, size_t width, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (off > d->len || width > d->len - off)
        return 0;
    for (i = 0; i < width; i++) {
        size_t k = d->big_endian ? i : width - 1 - i;
        v = (v << 8) | d->p[off + k];
    }
    *out = v;
    return 1;
}

/* A machine word: 8 bytes in a 64-bit core, 4 in a 32-bit one. */
static int rd_word(const struct desc *d, size_t off, uint64_t *out)
{
    return rd_uint(d, off, d->is64 ? 8 : 4, out);
}

static int rd_int32(const struct desc *d, size_t off, int *out)
{
    uint64_t v;
    if (!rd_uint(d, off, 4, &v))
        return 0;
    *out = (int)(int32_t)(uint32_t)v;
    return 1;
}

/* Copies a fixed-size, possibly unterminated char array into out. */
static void rd_chars(const struct desc *d, size_t off, size_t width, char *out, size_t out_len)
{
    size_t i, n = 0;

    out[0] = '\0';
    if (off > d->len || width > d->len - off || out_len == 0)
        return;
    for (i = 0; i < width && n + 1 < out_len && d->p[off + i] != '\0'; i++)
        out[n++] = (char)d->p[off + i];
    out[n] = '\0';
}

/* ---- the notes ---------------------------------------------------------- */

/* Renders the general registers of an NT_PRSTATUS pr_reg block with the
 * producers' one formatter (crash/regs.c). Returns 0 for machines it does
 * not know and when not one register could be read. */
static int format_registers(uint16_t machine, const struct desc *d, size_t reg_off, char *out,
                            size_t out_len)
{
    int arch = machine == EM_X86_64   ? REPRO__REGS_X86_64
               : machine == EM_AARCH64 ? REPRO__REGS_AARCH64
                                       : REPRO__REGS_NONE;
    uint64_t w[REPRO__MAX_REGS];
    struct repro__regs r;
    size_t n = 0;

    out[0] = '\0';
    if (arch == REPRO__REGS_NONE || !d->is64)
        return 0;
    /* A note cut short keeps the registers before the cut. */
    while (n < REPRO__MAX_REGS && rd_uint(d, reg_off + 8 * n, 8, &w[n]))
        n++;
    if (repro__regs_from_prstatus(&r, arch, w, n) == 0)
        return 0;
    repro__regs_format(&r, out, out_len); /* out_len is REPRO__REGS_TEXT_MAX: it fits */
    return 1;
}

/*
 * NT_PRSTATUS (struct elf_prstatus): pr_info (si_signo, si_code, si_errno),
 * pr_cursig at 12, then pr_sigpend and pr_sighold (words), pr_pid (the
 * thread id), and after four more ints and four timevals, pr_reg.
 */
static int note_prstatus(struct import *im, const struct desc *d)
{
    size_t pid_off = d->is64 ? 32 : 24, reg_off = d->is64 ? 112 : 72;
    uint64_t cursig = 0;
    int tid, si_code = 0;
    struct repro_crash_thread *t;
    char regs[REPRO__REGS_TEXT_MAX];

    if (!rd_int32(d, pid_off, &tid) || !rd_uint(d, 12, 2, &cursig)) {
        repro_crash_mark_partial(im->c, "core '%s': NT_PRSTATUS note %zu is %zu bytes, too short",
                                 im->core_path, im->n.n_prstatus, d->len);
        return REPRO_OK;
    }
    rd_int32(d, 4, &si_code);
    if (tid <= 0)
        repro_crash_mark_partial(im->c, "core '%s': NT_PRSTATUS note %zu has thread id %d",
                                 im->core_path, im->n.n_prstatus, tid);
    if (!im->n.have_prstatus) {
        im->n.have_prstatus = 1;
        im->n.first_tid = tid;
        im->n.first_cursig = (int)cursig;
        im->n.first_si_code = si_code;
    }
    t = repro_crash_add_thread(im->c, tid, NULL, 0);
    im->n.n_prstatus++;
    im->n.cur_thread = t ? (long)im->c->n_threads - 1 : -1;
    if (t == NULL) {
        if (im->c->n_threads >= REPRO_CRASH_MAX_THREADS) {
            repro_crash_mark_partial(im->c, "core '%s' has more than %d threads; kept the first %d",
                                     im->core_path, REPRO_CRASH_MAX_THREADS,
                                     REPRO_CRASH_MAX_THREADS);
            return REPRO_OK;
        }
        return repro_error_set(im->err, REPRO_E_NOMEM, "cannot import core '%s': out of memory",
                               im->core_path);
    }
    if (format_registers(im->machine, d, reg_off, regs, sizeof regs) &&
        repro_crash_set_str(&t->registers, regs) != REPRO_OK)
        return repro_error_set(im->err, REPRO_E_NOMEM, "cannot import core '%s': out of memory",
                               im->core_path);
    return REPRO_OK;
}

/*
 * NT_PRPSINFO (struct elf_prpsinfo). 64-bit: pr_pid at 24, pr_fname[16] at
 * 40, pr_psargs[80] at 56 (136 bytes). 32-bit (16-bit uid/gid): pr_pid at
 * 12, pr_fname at 28, pr_psargs at 44 (124 bytes).
 */
static void note_prpsinfo(struct import *im, const struct desc *d)
{
    size_t pid_off, fname_off, args_off, n;

    if (im->n.have_prpsinfo)
        return;
    if (d->is64 && d->len >= 136) {
        pid_off = 24, fname_off = 40, args_off = 56;
    } else if (!d->is64 && d->len >= 124) {
        pid_off = 12, fname_off = 28, args_off = 44;
    } else {
        repro_log(REPRO_LOG_WARN, LOG_COMP, "core '%s': NT_PRPSINFO of %zu bytes ignored",
                  im->core_path, d->len);
        return;
    }
    im->n.have_prpsinfo = 1;
    rd_int32(d, pid_off, &im->n.pid);
    rd_chars(d, fname_off, 16, im->n.fname, sizeof im->n.fname);
    rd_chars(d, args_off, 80, im->n.psargs, sizeof im->n.psargs);
    /* The kernel turns the NULs between arguments into spaces, the last
     * one included. */
    n = strlen(im->n.psargs);
    while (n > 0 && im->n.psargs[n - 1] == ' ')
        im->n.psargs[--n] = '\0';
}

/*
 * NT_SIGINFO (siginfo_t): si_signo, si_errno, si_code, then the union,
 * whose si_addr is at 16 (64-bit, after padding) or 12 (32-bit). The
 * kernel writes one, in the signalled thread's notes; gdb's gcore writes
 * one per thread, where the threads gdb stopped show SIGSTOP (or 0). The
 * first siginfo of another signal is the crash, and the NT_PRSTATUS before
 * it is the crashing thread.
 */
static void note_siginfo(struct import *im, const struct desc *d)
{
    uint64_t addr = 0;
    int signo, code;

    if (im->n.have_siginfo || !rd_int32(d, 0, &signo) || !rd_int32(d, 8, &code))
        return;
    if (signo == 0 || signo == SIGSTOP)
        return;
    rd_word(d, d->is64 ? 16 : 12, &addr);
    im->n.have_siginfo = 1;
    im->n.signo = signo;
    im->n.si_code = code;
    im->n.fault_address = addr;
    im->n.crashed_thread = im->n.cur_thread;
}

/* NT_AUXV: (a_type, a_val) word pairs; we want AT_ENTRY. */
static void note_auxv(struct import *im, const struct desc *d)
{
    size_t w = d->is64 ? 8 : 4, off;
    uint64_t type, val;

    for (off = 0; rd_word(d, off, &type) && rd_word(d, off + w, &val); off += 2 * w) {
        if (type == AT_ENTRY_TYPE) {
            im->n.have_entry = 1;
            im->n.entry = val;
            return;
        }
        if (type == 0)
            return;
    }
}

/*
 * Walks NT_FILE: count and page size (words), count (start, end, page
 * offset) triples, then count NUL-terminated names. Calls fn for each
 * entry until it returns non-zero; returns that value (0 when done or
 * when the note is malformed).
 */
static int file_note_each(const struct desc *d,
                          int (*fn)(void *ctx, uint64_t start, uint64_t end, const char *name),
                          void *ctx)
{
    size_t w = d->is64 ? 8 : 4, names_off, i, pos;
    uint64_t count, start, end;

    if (d->len < 2 * w || !rd_word(d, 0, &count) || count > MAX_FILE_ENTRIES ||
        count > (d->len - 2 * w) / (3 * w))
        return 0;
    names_off = 2 * w + (size_t)count * 3 * w;
    pos = names_off;
    for (i = 0; i < (size_t)count; i++) {
        const char *name = (const char *)d->p + pos;
        const void *nul;
        int rc;

        if (pos >= d->len || (nul = memchr(d->p + pos, 0, d->len - pos)) == NULL)
            return 0;
        if (!rd_word(d, 2 * w + i * 3 * w, &start) || !rd_word(d, 2 * w + i * 3 * w + w, &end))
            return 0;
        if ((rc = fn(ctx, start, end, name)) != 0)
            return rc;
        pos = (size_t)((const uint8_t *)nul - d->p) + 1;
    }
    return 0;
}

struct find_addr {
    uint64_t addr;
    const char *name;
};

static int find_addr_cb(void *ctx, uint64_t start, uint64_t end, const char *name)
{
    struct find_addr *f = ctx;
    if (f->addr >= start && f->addr < end) {
        f->name = name;
        return 1;
    }
    return 0;
}

/* Refuses names that libdwfl must not open: a FIFO blocks open(2). */
static int unsafe_file_cb(void *ctx, uint64_t start, uint64_t end, const char *name)
{
    const char **bad = ctx;
    struct stat st;
    (void)start;
    (void)end;
    if (stat(name, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
        *bad = name;
        return 1;
    }
    return 0;
}

/* 1 for owner "CORE", 2 for "LINUX", 0 for anything else. Like libebl,
 * the owner may lack its terminating NUL (old kernels wrote it so). */
static int note_owner(const GElf_Nhdr *nh, const char *name)
{
    if ((nh->n_namesz == 4 || nh->n_namesz == 5) && memcmp(name, "CORE", 4) == 0 &&
        (nh->n_namesz == 4 || name[4] == '\0'))
        return 1;
    if ((nh->n_namesz == 5 || nh->n_namesz == 6) && memcmp(name, "LINUX", 5) == 0 &&
        (nh->n_namesz == 5 || name[5] == '\0'))
        return 2;
    return 0;
}

static int read_one_note(struct import *im, const GElf_Nhdr *nh, const char *name,
                         const struct desc *d)
{
    int owner = note_owner(nh, name), tid;

    /* libdwfl takes every NT_PRSTATUS of either owner for a thread and
     * ends its thread walk (leaking, in 0.188) at a thread id <= 0: look
     * at the same notes it will. */
    if (owner != 0 && nh->n_type == NT_PRSTATUS && rd_int32(d, d->is64 ? 32 : 24, &tid) &&
        tid <= 0)
        im->n.bad_tid = 1;
    /* Linux writes its notes with owner "CORE" (and "LINUX" for extended
     * register sets we do not need). */
    if (owner != 1)
        return REPRO_OK;
    switch (nh->n_type) {
    case NT_PRSTATUS:
        return note_prstatus(im, d);
    case NT_PRPSINFO:
        note_prpsinfo(im, d);
        break;
    case NT_SIGINFO:
        note_siginfo(im, d);
        break;
    case NT_AUXV:
        note_auxv(im, d);
        break;
    case NT_FILE:
        if (im->n.file.len == 0)
            im->n.file = *d;
        break;
    default:
        break;
    }
    return REPRO_OK;
}

/* Reads every PT_NOTE segment, clamped to the bytes the file really has. */
static int read_notes(struct import *im, size_t n_phdrs, uint64_t file_size)
{
    size_t i;

    for (i = 0; i < n_phdrs; i++) {
        GElf_Phdr ph;
        Elf_Data *data;
        uint64_t size;
        size_t off = 0, next, name_off, desc_off;
        GElf_Nhdr nh;
        int rc;

        if (gelf_getphdr(im->core_elf, (int)i, &ph) == NULL || ph.p_type != PT_NOTE)
            continue;
        im->n.n_segs++;
        if (ph.p_offset >= file_size) {
            im->n.n_segs_lost++;
            continue;
        }
        size = ph.p_filesz;
        if (size > file_size - ph.p_offset) {
            size = file_size - ph.p_offset;
            im->n.n_segs_cut++;
        }
        data = elf_getdata_rawchunk(im->core_elf, (int64_t)ph.p_offset, (size_t)size,
                                    ph.p_align == 8 ? ELF_T_NHDR8 : ELF_T_NHDR);
        if (data == NULL) {
            repro_crash_mark_partial(im->c, "core '%s': cannot read note segment %zu: %s",
                                     im->core_path, i, elf_errmsg(-1));
            continue;
        }
        while (off < data->d_size &&
               (next = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
            struct desc d;
            d.p = (const uint8_t *)data->d_buf + desc_off;
            d.len = nh.n_descsz;
            d.big_endian = im->big_endian;
            d.is64 = im->is64;
            rc = read_one_note(im, &nh, (const char *)data->d_buf + name_off, &d);
            if (rc != REPRO_OK)
                return rc;
            off = next;
        }
        if (off < data->d_size && size == ph.p_filesz)
            repro_crash_mark_partial(im->c,
                                     "core '%s': malformed note at byte %llu of note segment %zu",
                                     im->core_path, (unsigned long long)off, i);
    }
    return REPRO_OK;
}

/* ---- the ELF files ----------------------------------------------------- */

static void hex_encode(const unsigned char *bits, size_t len, char *out, size_t out_len)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    if (out_len == 0)
        return;
    for (i = 0; i < len && 2 * i + 2 < out_len; i++) {
        out[2 * i] = digits[bits[i] >> 4];
        out[2 * i + 1] = digits[bits[i] & 15];
    }
    out[2 * i] = '\0';
}

/* Opens the core, checks that it is an ELF core, spots truncation (what
 * it cost is said once everything readable was read: describe_cut). */
static int open_core(struct import *im, size_t *n_phdrs, uint64_t *file_size)
{
    struct stat st;
    GElf_Ehdr eh;
    uint64_t need = 0, want;
    size_t i;

    im->core_fd = open(im->core_path, O_RDONLY | O_CLOEXEC);
    if (im->core_fd < 0)
        return repro_error_sys(im->err, errno == ENOENT ? REPRO_E_NOTFOUND : REPRO_E_IO,
                               "cannot open core '%s': %s", im->core_path, strerror(errno));
    if (fstat(im->core_fd, &st) != 0 || !S_ISREG(st.st_mode))
        return repro_error_set(im->err, REPRO_E_INVAL, "cannot import core '%s': not a regular file",
                               im->core_path);
    *file_size = (uint64_t)st.st_size;
    im->c->time_us = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
    im->core_elf = elf_begin(im->core_fd, ELF_C_READ_MMAP, NULL);
    if (im->core_elf == NULL || elf_kind(im->core_elf) != ELF_K_ELF ||
        gelf_getehdr(im->core_elf, &eh) == NULL) {
        /* a file that is simply not ELF leaves libelf without an error:
         * no "(no error)" after the reason */
        int e = elf_errno();
        return repro_error_set(im->err, REPRO_E_MALFORMED,
                               "cannot import core '%s': not an ELF file%s%s%s", im->core_path,
                               e ? " (" : "", e ? elf_errmsg(e) : "", e ? ")" : "");
    }
    if (eh.e_type != ET_CORE)
        return repro_error_set(im->err, REPRO_E_MALFORMED,
                               "cannot import core '%s': ELF type %u is not a core file",
                               im->core_path, (unsigned)eh.e_type);
    im->is64 = eh.e_ident[EI_CLASS] == ELFCLASS64;
    im->big_endian = eh.e_ident[EI_DATA] == ELFDATA2MSB;
    im->machine = eh.e_machine;
    if (elf_getphdrnum(im->core_elf, n_phdrs) != 0)
        return repro_error_set(im->err, REPRO_E_MALFORMED,
                               "cannot import core '%s': unreadable program headers (%s)",
                               im->core_path, elf_errmsg(-1));
    /* Without its program headers a core has nothing to salvage. libelf
     * may count only the headers that fit in the file, so check the count
     * the ELF header gives too (unless it is PN_XNUM, "see section 0"). */
    want = eh.e_phnum == PN_XNUM ? *n_phdrs : eh.e_phnum;
    if (want < *n_phdrs)
        want = *n_phdrs;
    if ((*n_phdrs == 0 && eh.e_phnum != 0) || eh.e_phoff > *file_size ||
        want * eh.e_phentsize > *file_size - eh.e_phoff)
        return repro_error_set(im->err, REPRO_E_MALFORMED,
                               "cannot import core '%s': truncated inside its program headers "
                               "(%llu bytes)",
                               im->core_path, (unsigned long long)*file_size);
    if (*n_phdrs == 0)
        return repro_error_set(im->err, REPRO_E_MALFORMED,
                               "cannot import core '%s': no program headers", im->core_path);
    for (i = 0; i < *n_phdrs; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(im->core_elf, (int)i, &ph) == NULL)
            return repro_error_set(im->err, REPRO_E_MALFORMED,
                                   "cannot import core '%s': program header %zu unreadable (%s)",
                                   im->core_path, i, elf_errmsg(-1));
        if (ph.p_filesz > UINT64_MAX - ph.p_offset) {
            repro_crash_mark_partial(im->c, "core '%s': program header %zu points past 2^64",
                                     im->core_path, i);
            continue;
        }
        if (ph.p_offset + ph.p_filesz > need)
            need = ph.p_offset + ph.p_filesz;
    }
    im->file_size = *file_size;
    im->need = need;
    return REPRO_OK;
}

/* Reads the binary's GNU build-id into hex (empty when it has none). */
static int exe_build_id(struct import *im, char *hex, size_t hex_len)
{
    const void *bits = NULL;
    ssize_t len;

    hex[0] = '\0';
    im->exe_fd = open(im->exe_path, O_RDONLY | O_CLOEXEC);
    if (im->exe_fd < 0)
        return repro_error_sys(im->err, errno == ENOENT ? REPRO_E_NOTFOUND : REPRO_E_IO,
                               "cannot open binary '%s': %s", im->exe_path, strerror(errno));
    im->exe_elf = elf_begin(im->exe_fd, ELF_C_READ_MMAP, NULL);
    if (im->exe_elf == NULL || elf_kind(im->exe_elf) != ELF_K_ELF)
        return repro_error_set(im->err, REPRO_E_INVAL, "binary '%s' is not an ELF file",
                               im->exe_path);
    len = dwelf_elf_gnu_build_id(im->exe_elf, &bits);
    if (len > 0)
        hex_encode(bits, (size_t)len, hex, hex_len);
    return REPRO_OK;
}

static int find_main_cb(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
                        void *arg)
{
    Dwfl_Module **found = arg;
    (void)userdata;
    (void)start;
    if (strcmp(name, "[exe]") == 0 || strcmp(name, "[pie]") == 0) {
        *found = mod;
        return DWARF_CB_ABORT;
    }
    return DWARF_CB_OK;
}

/* The core's executable: the module holding the entry point (NT_AUXV);
 * without the auxv (notes lost), the module libdwfl found as the main
 * program through the link map, which it names "[exe]" or "[pie]". */
static Dwfl_Module *main_module(struct import *im)
{
    Dwfl_Module *mod = NULL;

    if (im->n.have_entry)
        return dwfl_addrmodule(im->dwfl, im->n.entry);
    dwfl_getmodules(im->dwfl, find_main_cb, &mod, 0);
    return mod;
}

/* Refuses a binary whose build-id is not the one the core recorded. */
static int check_exe(struct import *im)
{
    char want[129], have[129];
    const unsigned char *bits;
    GElf_Addr vaddr;
    Dwfl_Module *mod;
    int len, rc;

    if ((rc = exe_build_id(im, have, sizeof have)) != REPRO_OK)
        return rc;
    mod = main_module(im);
    len = mod ? dwfl_module_build_id(mod, &bits, &vaddr) : -1;
    if (len <= 0) {
        repro_log(REPRO_LOG_WARN, LOG_COMP,
                  "cannot check that binary '%s' matches core '%s': the core records no "
                  "build-id for its executable",
                  im->exe_path, im->core_path);
        return REPRO_OK;
    }
    hex_encode(bits, (size_t)len, want, sizeof want);
    if (strcmp(want, have) != 0)
        return repro_error_set(im->err, REPRO_E_INVAL,
                               "binary '%s' does not match core '%s': build-id %s vs %s",
                               im->exe_path, im->core_path, have[0] ? have : "(none)", want);
    return REPRO_OK;
}

/* ---- modules ----------------------------------------------------------- */

static int module_cb(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
                     void *arg)
{
    struct import *im = arg;
    const unsigned char *bits;
    GElf_Addr vaddr, bias = 0;
    Dwarf_Addr low = 0, high = 0;
    char hex[129] = "";
    int len, rc;
    const char *mainfile = NULL, *path = name;
    struct find_addr f;
    (void)userdata;
    (void)start;

    dwfl_module_info(mod, NULL, &low, &high, NULL, NULL, &mainfile, NULL);
    /* Finding the ELF file gives the exact bias; without it (the file is
     * not on this machine) the lowest mapped address is the bias of any
     * ET_DYN whose first PT_LOAD is at 0, which is how linkers lay out
     * shared objects and PIE executables. */
    if (dwfl_module_getelf(mod, &bias) == NULL)
        bias = low;
    len = dwfl_module_build_id(mod, &bits, &vaddr);
    if (len > 0)
        hex_encode(bits, (size_t)len, hex, sizeof hex);
    /* The path the crashed process mapped (NT_FILE) names the module on the
     * production host; the file libdwfl found here is the next best. */
    f.addr = low;
    f.name = NULL;
    if (im->n.file.len > 0 && file_note_each(&im->n.file, find_addr_cb, &f) && f.name)
        path = f.name;
    else if (mainfile != NULL)
        path = mainfile;
    rc = repro_crash_add_module(im->c, path, low, high, bias, hex);
    if (rc == REPRO_E_LIMIT) {
        repro_crash_mark_partial(im->c, "core '%s' maps more than %d modules", im->core_path,
                                 REPRO_CRASH_MAX_MODULES);
        return DWARF_CB_ABORT;
    }
    if (rc != REPRO_OK) {
        repro_error_set(im->err, rc, "cannot import core '%s': out of memory", im->core_path);
        return DWARF_CB_ABORT;
    }
    return DWARF_CB_OK;
}

/* ---- threads and frames ------------------------------------------------ */

struct unwind {
    struct import *im;
    struct repro_crash_thread *t;
    int failed; /* our own failure (not libdwfl's), in im->err */
};

static int frame_cb(Dwfl_Frame *state, void *arg)
{
    struct unwind *u = arg;
    Dwarf_Addr pc;
    bool activation;
    int rc;

    if (!dwfl_frame_pc(state, &pc, &activation))
        return -1; /* dwfl_thread_getframes reports it as an error */
    rc = repro_crash_add_frame(u->t, pc);
    if (rc == REPRO_E_LIMIT) {
        u->t->partial = 1;
        repro_crash_mark_partial(u->im->c, "thread %d: stack deeper than %d frames, kept the "
                                           "innermost %d",
                                 u->t->tid, REPRO_CRASH_MAX_FRAMES, REPRO_CRASH_MAX_FRAMES);
        return DWARF_CB_ABORT;
    }
    if (rc != REPRO_OK) {
        u->failed = 1;
        repro_error_set(u->im->err, rc, "cannot import core '%s': out of memory",
                        u->im->core_path);
        return DWARF_CB_ABORT;
    }
    return DWARF_CB_OK;
}

/* The record's thread for tid (libdwfl reports them in note order). */
static struct repro_crash_thread *thread_for(struct import *im, int tid)
{
    struct repro_crash *c = im->c;
    size_t i;

    if (im->thread_hint < c->n_threads && c->threads[im->thread_hint].tid == tid)
        return &c->threads[im->thread_hint++];
    for (i = 0; i < c->n_threads; i++)
        if (c->threads[i].tid == tid && c->threads[i].n_frames == 0) {
            im->thread_hint = i + 1;
            return &c->threads[i];
        }
    return NULL;
}

static int thread_cb(Dwfl_Thread *thread, void *arg)
{
    struct import *im = arg;
    struct unwind u;
    int tid = (int)dwfl_thread_tid(thread), rc;

    /* After a failure of ours the remaining threads are skipped rather than
     * aborting the walk: libdwfl 0.188 leaks its per-walk state when a
     * dwfl_getthreads callback aborts. */
    if (im->err->code)
        return DWARF_CB_OK;
    u.im = im;
    u.failed = 0;
    u.t = thread_for(im, tid);
    if (u.t == NULL)
        return DWARF_CB_OK; /* past the thread cap, or a duplicate tid */
    rc = dwfl_thread_getframes(thread, frame_cb, &u);
    if (u.failed)
        return DWARF_CB_OK;
    if (rc == -1 && !u.t->partial) {
        u.t->partial = 1;
        repro_crash_mark_partial(im->c, "thread %d: unwinding stopped after %zu frames: %s", tid,
                                 u.t->n_frames, dwfl_errmsg(-1));
        repro_log(REPRO_LOG_DEBUG, LOG_COMP, "core '%s': thread %d: unwinding stopped: %s",
                  im->core_path, tid, dwfl_errmsg(-1));
    }
    return DWARF_CB_OK;
}

/* ---- the record -------------------------------------------------------- */

static int fill_process(struct import *im)
{
    struct repro_crash *c = im->c;
    const char *exe = NULL;
    Dwfl_Module *mod;

    snprintf(c->source, sizeof c->source, "core");
    c->pid = im->n.have_prpsinfo ? im->n.pid : (im->n.have_prstatus ? im->n.first_tid : 0);
    c->tid = -1;
    /* Without a siginfo naming it, the first thread is the signalled one:
     * the kernel and gdb both write it first. */
    if (im->n.crashed_thread < 0 && c->n_threads > 0)
        im->n.crashed_thread = 0;
    if (im->n.crashed_thread >= 0 && (size_t)im->n.crashed_thread < c->n_threads) {
        c->threads[im->n.crashed_thread].crashed = 1;
        c->tid = c->threads[im->n.crashed_thread].tid;
    }
    if (im->n.have_siginfo) {
        c->signo = im->n.signo;
        c->si_code = im->n.si_code;
        c->fault_address = im->n.fault_address;
    } else if (im->n.have_prstatus) {
        c->signo = im->n.first_cursig;
        c->si_code = im->n.first_si_code;
    }
    if (im->n.have_entry && im->n.file.len > 0) {
        struct find_addr f = {im->n.entry, NULL};
        file_note_each(&im->n.file, find_addr_cb, &f);
        exe = f.name;
    }
    if (exe == NULL)
        exe = im->exe_path;
    if (exe == NULL && (mod = main_module(im)) != NULL)
        exe = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    if (repro_crash_set_str(&c->executable, exe) != REPRO_OK ||
        (im->n.have_prpsinfo && repro_crash_set_str(&c->cmdline, im->n.psargs) != REPRO_OK))
        return repro_error_set(im->err, REPRO_E_NOMEM, "cannot import core '%s': out of memory",
                               im->core_path);
    /* A core keeps no thread names; the process name is the main thread's. */
    if (im->n.have_prpsinfo) {
        size_t i;
        for (i = 0; i < c->n_threads; i++)
            if (c->threads[i].tid == c->pid)
                snprintf(c->threads[i].name, sizeof c->threads[i].name, "%s", im->n.fname);
    }
    return REPRO_OK;
}

static int report_and_unwind(struct import *im)
{
    static char *debuginfo_path;
    static const Dwfl_Callbacks callbacks = {
        .find_elf = dwfl_build_id_find_elf,
        .find_debuginfo = dwfl_standard_find_debuginfo,
        .debuginfo_path = &debuginfo_path,
    };
    const char *bad = NULL;
    size_t i;
    int rc;

    if (im->n.file.len > 0 && file_note_each(&im->n.file, unsafe_file_cb, &bad) && bad)
        return repro_error_set(im->err, REPRO_E_MALFORMED,
                               "cannot import core '%s': it maps '%s', which is not a regular file",
                               im->core_path, bad);
    im->dwfl = dwfl_begin(&callbacks);
    if (im->dwfl == NULL)
        return repro_error_set(im->err, REPRO_E_NOMEM, "cannot import core '%s': dwfl_begin: %s",
                               im->core_path, dwfl_errmsg(-1));
    dwfl_report_begin(im->dwfl);
    rc = dwfl_core_file_report(im->dwfl, im->core_elf, im->exe_path);
    if (rc < 0)
        repro_crash_mark_partial(im->c, "core '%s': no module table: %s", im->core_path,
                                 dwfl_errmsg(-1));
    if (dwfl_report_end(im->dwfl, NULL, NULL) != 0)
        return repro_error_set(im->err, REPRO_E_MALFORMED,
                               "cannot import core '%s': dwfl_report_end: %s", im->core_path,
                               dwfl_errmsg(-1));
    if (im->exe_path != NULL && (rc = check_exe(im)) != REPRO_OK)
        return rc;
    /* dwfl_getmodules returns a resume offset when a callback aborts: our
     * own failures are in im->err. */
    dwfl_getmodules(im->dwfl, module_cb, im, 0);
    if (im->err->code)
        return im->err->code;
    if (im->n.n_prstatus == 0) {
        /* In a core cut inside or before its notes, describe_cut says so. */
        if (im->n.n_segs_lost == 0 && im->n.n_segs_cut == 0)
            repro_crash_mark_partial(im->c, "core '%s' holds no thread (no NT_PRSTATUS note)",
                                     im->core_path);
        return REPRO_OK;
    }
    /* libdwfl stops its thread walk with an error at a thread id <= 0 and
     * (0.188) leaks the walk's state: such a core is not unwound. */
    rc = im->n.bad_tid ? -1 : dwfl_core_file_attach(im->dwfl, im->core_elf);
    if (im->n.bad_tid) {
        repro_crash_mark_partial(im->c, "core '%s': not unwound (bad thread id)", im->core_path);
    } else if (rc < 0) {
        const char *why = dwfl_errmsg(-1);
        repro_crash_mark_partial(im->c, "core '%s': cannot unwind: %s", im->core_path,
                                 why ? why : "libdwfl gave no reason");
    } else {
        im->thread_hint = 0;
        rc = dwfl_getthreads(im->dwfl, thread_cb, im);
        if (im->err->code)
            return im->err->code;
        if (rc == -1)
            repro_crash_mark_partial(im->c, "core '%s': cannot list threads: %s", im->core_path,
                                     dwfl_errmsg(-1));
    }
    /* A thread that got no frame at all was not unwound. */
    for (i = 0; i < im->c->n_threads; i++)
        if (im->c->threads[i].n_frames == 0)
            im->c->threads[i].partial = 1;
    return REPRO_OK;
}

/* Appends item to the comma-separated list in buf. */
static void list_add(char *buf, size_t len, const char *item)
{
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, "%s%s", used ? ", " : "", item);
}

/*
 * A truncated core: says where it was cut and what the record lacks
 * because of it, as the record's partial reason (ahead of any reason
 * found on the way, which are consequences of the cut). A core cut so
 * early that nothing of the crash remains (no thread, module, signal or
 * process note) is refused with REPRO_E_MALFORMED instead of being stored
 * as an empty crash.
 */
static int describe_cut(struct import *im)
{
    struct repro_crash *c = im->c;
    const struct notes *n = &im->n;
    char missing[160] = "", earlier[sizeof c->partial_reason], where[64];

    if (im->need <= im->file_size)
        return REPRO_OK;
    if (n->n_segs == 0)
        snprintf(where, sizeof where, "a core without notes");
    else if (n->n_segs_lost == n->n_segs)
        snprintf(where, sizeof where, "cut before its notes");
    else if (n->n_segs_lost > 0 || n->n_segs_cut > 0)
        snprintf(where, sizeof where, "cut inside its notes");
    else
        snprintf(where, sizeof where, "cut after its notes (memory lost)");
    if (!n->have_siginfo && !n->have_prstatus)
        list_add(missing, sizeof missing, "signal");
    else if (!n->have_siginfo)
        list_add(missing, sizeof missing, "fault address");
    if (!n->have_prpsinfo && !n->have_prstatus)
        list_add(missing, sizeof missing, "pid");
    if (c->n_threads == 0)
        list_add(missing, sizeof missing, "threads and registers");
    else if (n->n_segs_lost > 0 || n->n_segs_cut > 0)
        list_add(missing, sizeof missing, "any thread after the last one kept");
    if (!n->have_prpsinfo)
        list_add(missing, sizeof missing, "command line");
    if (c->n_modules == 0)
        list_add(missing, sizeof missing, "module table");
    if (c->n_threads == 0 && c->n_modules == 0 && !n->have_siginfo && !n->have_prpsinfo)
        return repro_error_set(im->err, REPRO_E_MALFORMED,
                               "cannot import core '%s': truncated at %llu of %llu bytes, %s: "
                               "nothing of the crash remains (no %s)",
                               im->core_path, (unsigned long long)im->file_size,
                               (unsigned long long)im->need, where, missing);
    snprintf(earlier, sizeof earlier, "%s", c->partial ? c->partial_reason : "");
    c->partial = 0;
    repro_crash_mark_partial(c, "core '%s' is truncated: %llu of %llu bytes, %s%s%s%s%s",
                             im->core_path, (unsigned long long)im->file_size,
                             (unsigned long long)im->need, where,
                             missing[0] ? "; missing: " : "", missing, earlier[0] ? "; " : "",
                             earlier);
    return REPRO_OK;
}

static void import_release(struct import *im)
{
    dwfl_end(im->dwfl);
    if (im->exe_elf)
        elf_end(im->exe_elf);
    if (im->exe_fd >= 0)
        close(im->exe_fd);
    if (im->core_elf)
        elf_end(im->core_elf);
    if (im->core_fd >= 0)
        close(im->core_fd);
    repro_crash_free(im->c);
}

int repro_core_import(const char *core_path, const char *exe_path, struct repro_crash **out,
                      struct repro_error *err)
{
    struct repro_error local = {0};
    struct import im;
    size_t n_phdrs = 0;
    uint64_t file_size = 0;
    int rc;

    if (out == NULL || core_path == NULL)
        return repro_error_set(err, REPRO_E_INVAL, "repro_core_import: no core path or output");
    *out = NULL;
    memset(&im, 0, sizeof im);
    im.core_path = core_path;
    im.exe_path = exe_path;
    im.core_fd = im.exe_fd = -1;
    im.n.cur_thread = im.n.crashed_thread = -1;
    /* Errors collect in local (so a caller's frozen err cannot fake a
     * failure) and are copied out at the end. */
    im.err = &local;
    elf_version(EV_CURRENT);
    im.c = repro_crash_new();
    if (im.c == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot import core '%s': out of memory",
                               core_path);
    rc = open_core(&im, &n_phdrs, &file_size);
    if (rc == REPRO_OK)
        rc = read_notes(&im, n_phdrs, file_size);
    if (rc == REPRO_OK)
        rc = report_and_unwind(&im);
    if (rc == REPRO_OK)
        rc = fill_process(&im);
    if (rc == REPRO_OK)
        rc = describe_cut(&im);
    if (rc == REPRO_OK) {
        repro_crash_resolve_modules(im.c);
        rc = repro_crash_validate(im.c, im.err);
    }
    if (rc == REPRO_OK) {
        *out = im.c;
        im.c = NULL;
    }
    import_release(&im);
    if (rc != REPRO_OK && err != NULL && err->code == 0)
        *err = local;
    return rc;
}
