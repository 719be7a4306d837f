/*
 * Unit tests for core-file import (crash/core_import.c).
 *
 * Synthetic cores built here (an ELF header, one PT_NOTE, the Linux notes)
 * pin down the note reading: signal, si_code, fault address, crashing
 * thread (kernel style: one NT_SIGINFO; gdb style: one per thread, SIGSTOP
 * for the stopped ones), pid, command line, registers, both byte orders,
 * every truncation and random damage, a FIFO named by NT_FILE. Real cores
 * of the crash fixtures (fixtures/crash/), written by gdb's
 * generate-core-file at test time and by the kernel when core_pattern is a
 * plain file name, check the unwinding, the module table, a mismatching
 * binary, truncation, allocation failures and a store round trip. Without
 * gdb or the fixtures those tests are skipped.
 *
 * Driver mode (used by tests/e2e/test_core.py while `repro ingest --core`
 * does not exist):
 *   test_core_import --import CORE EXE DB   imports CORE into DB; prints
 *       "crash ID"; exit 0 (complete), 1 (stored, partial), 2 (error)
 *   test_core_import --write-seeds DIR      writes the synthetic cores used
 *       as fuzz seeds (tests/corpus/core_import/)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "repro/crash.h"
#include "repro/store.h"
#include "app/crash_rows.h"
#include "test_util.h"

#ifndef NT_SIGINFO
#define NT_SIGINFO 0x53494749
#endif
#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

/* ---- synthetic cores ---------------------------------------------------- */

#define SYN_MAX 16384

struct syn {
    uint8_t b[SYN_MAX];
    size_t len;
    int be;   /* big-endian */
};

static void put(struct syn *s, size_t off, uint64_t v, size_t width)
{
    size_t i;
    assert_true(off + width <= SYN_MAX);
    for (i = 0; i < width; i++) {
        size_t k = s->be ? width - 1 - i : i;
        s->b[off + k] = (uint8_t)(v >> (8 * i));
    }
    if (off + width > s->len)
        s->len = off + width;
}

static void put_bytes(struct syn *s, size_t off, const void *p, size_t n)
{
    assert_true(off + n <= SYN_MAX);
    memcpy(s->b + off, p, n);
    if (off + n > s->len)
        s->len = off + n;
}

/* Appends one note (owner "CORE") with desc of desc_len bytes. */
static void note(struct syn *s, uint32_t type, const uint8_t *desc, size_t desc_len)
{
    size_t off = s->len;
    put(s, off, 5, 4);
    put(s, off + 4, desc_len, 4);
    put(s, off + 8, type, 4);
    put_bytes(s, off + 12, "CORE\0\0\0", 8);
    put_bytes(s, off + 20, desc, desc_len);
    s->len = off + 20 + ((desc_len + 3) & ~(size_t)3);
}

/* A descriptor under construction, in the core's byte order. */
struct dbuf {
    uint8_t b[1024];
    int be;
};

static void dput(struct dbuf *d, size_t off, uint64_t v, size_t width)
{
    size_t i;
    for (i = 0; i < width; i++)
        d->b[off + (d->be ? width - 1 - i : i)] = (uint8_t)(v >> (8 * i));
}

/* x86-64 layouts (see crash/core_import.c). */
static void add_prstatus(struct syn *s, int tid, int cursig, uint64_t rip, uint64_t rsp)
{
    struct dbuf d;
    memset(&d, 0, sizeof d);
    d.be = s->be;
    dput(&d, 12, (uint64_t)cursig, 2);
    dput(&d, 32, (uint64_t)tid, 4);
    dput(&d, 112 + 16 * 8, rip, 8);
    dput(&d, 112 + 19 * 8, rsp, 8);
    note(s, NT_PRSTATUS, d.b, 336);
}

static void add_siginfo(struct syn *s, int signo, int code, uint64_t addr)
{
    struct dbuf d;
    memset(&d, 0, sizeof d);
    d.be = s->be;
    dput(&d, 0, (uint64_t)signo, 4);
    dput(&d, 8, (uint64_t)code, 4);
    dput(&d, 16, addr, 8);
    note(s, NT_SIGINFO, d.b, 128);
}

static void add_prpsinfo(struct syn *s, int pid, const char *fname, const char *psargs)
{
    struct dbuf d;
    memset(&d, 0, sizeof d);
    d.be = s->be;
    dput(&d, 24, (uint64_t)pid, 4);
    memcpy(d.b + 40, fname, strlen(fname) < 16 ? strlen(fname) : 16);
    memcpy(d.b + 56, psargs, strlen(psargs) < 80 ? strlen(psargs) : 80);
    note(s, NT_PRPSINFO, d.b, 136);
}

static void add_auxv_entry(struct syn *s, uint64_t entry)
{
    struct dbuf d;
    memset(&d, 0, sizeof d);
    d.be = s->be;
    dput(&d, 0, 6, 8); /* AT_PAGESZ */
    dput(&d, 8, 4096, 8);
    dput(&d, 16, 9, 8); /* AT_ENTRY */
    dput(&d, 24, entry, 8);
    note(s, NT_AUXV, d.b, 48); /* ends with AT_NULL */
}

/* NT_FILE with one mapping [start, end) of name. */
static void add_file(struct syn *s, uint64_t start, uint64_t end, const char *name)
{
    struct dbuf d;
    size_t n = strlen(name) + 1;
    memset(&d, 0, sizeof d);
    d.be = s->be;
    dput(&d, 0, 1, 8);
    dput(&d, 8, 4096, 8);
    dput(&d, 16, start, 8);
    dput(&d, 24, end, 8);
    dput(&d, 32, 0, 8);
    memcpy(d.b + 40, name, n);
    note(s, NT_FILE, d.b, 40 + n);
}

/* Starts an ELF64 core: header and one PT_NOTE (sized by syn_finish). */
static void syn_begin(struct syn *s, int be, uint16_t machine)
{
    memset(s, 0, sizeof *s);
    s->be = be;
    memcpy(s->b, ELFMAG, SELFMAG);
    s->b[EI_CLASS] = ELFCLASS64;
    s->b[EI_DATA] = be ? ELFDATA2MSB : ELFDATA2LSB;
    s->b[EI_VERSION] = EV_CURRENT;
    put(s, 16, ET_CORE, 2);
    put(s, 18, machine, 2);
    put(s, 20, EV_CURRENT, 4);
    put(s, 32, 64, 8);  /* e_phoff */
    put(s, 52, 64, 2);  /* e_ehsize */
    put(s, 54, 56, 2);  /* e_phentsize */
    put(s, 56, 1, 2);   /* e_phnum */
    put(s, 64, PT_NOTE, 4);
    put(s, 64 + 8, 120, 8); /* p_offset */
    put(s, 64 + 48, 4, 8);  /* p_align */
    s->len = 120;
}

static void syn_finish(struct syn *s)
{
    put(s, 64 + 32, s->len - 120, 8); /* p_filesz */
}

/* Kernel style: the signalled thread first with the process notes and the
 * one NT_SIGINFO after it, then the other threads. */
static void syn_kernel(struct syn *s, int be, uint16_t machine)
{
    syn_begin(s, be, machine);
    add_prstatus(s, 4243, SIGSEGV, 0x401136, 0x7ffc0000f000);
    add_prpsinfo(s, 4242, "server", "/srv/server --port 9000 ");
    add_siginfo(s, SIGSEGV, 1 /* SEGV_MAPERR */, 0x18);
    add_auxv_entry(s, 0x401020);
    add_file(s, 0x400000, 0x402000, "/srv/server");
    add_prstatus(s, 4242, SIGSEGV, 0x7f0000001000, 0x7ffc00010000);
    add_prstatus(s, 4244, SIGSEGV, 0x7f0000002000, 0x7ffc00020000);
    syn_finish(s);
}

/* gdb style: a selected thread first that is not the signalled one, then
 * the signalled one; one NT_SIGINFO per thread, SIGSTOP for the rest. */
static void syn_gdb(struct syn *s)
{
    syn_begin(s, 0, EM_X86_64);
    add_prpsinfo(s, 500, "worker", "/usr/bin/worker");
    add_prstatus(s, 500, SIGBUS, 0x1000, 0x2000);
    add_siginfo(s, SIGSTOP, -6, 0);
    add_prstatus(s, 507, SIGBUS, 0x3000, 0x4000);
    add_siginfo(s, SIGBUS, 2 /* BUS_ADRERR */, 0xdead000);
    add_prstatus(s, 508, SIGBUS, 0x5000, 0x6000);
    add_siginfo(s, SIGSTOP, -6, 0);
    syn_finish(s);
}

static const char *tmp;

static const char *write_file(const char *name, const void *p, size_t len)
{
    static char path[4][512];
    static int k;
    FILE *f;
    char *out = path[k++ % 4];

    snprintf(out, sizeof path[0], "%s/%s", tmp, name);
    f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return out;
}

static int setup(void **state)
{
    (void)state;
    tmp = test_tmpdir();
    return 0;
}

/* The cores are large (gdb writes every thread's whole stack): remove
 * them, unless KEEP_TMP=1. */
static int teardown(void **state)
{
    DIR *d;
    struct dirent *e;
    char path[1024];
    const char *keep = getenv("KEEP_TMP");
    (void)state;

    if (keep != NULL && strcmp(keep, "1") == 0) {
        fprintf(stderr, "kept temporary directory %s\n", tmp);
        return 0;
    }
    d = opendir(tmp);
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmp, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmp);
    return 0;
}

static struct repro_crash_thread *thread_of(struct repro_crash *c, int tid)
{
    size_t i;
    for (i = 0; i < c->n_threads; i++)
        if (c->threads[i].tid == tid)
            return &c->threads[i];
    return NULL;
}

static void test_synthetic_kernel(void **state)
{
    static struct syn s;
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    struct stat st;
    const char *path;
    (void)state;

    syn_kernel(&s, 0, EM_X86_64);
    path = write_file("kernel.core", s.b, s.len);
    assert_int_equal(repro_core_import(path, NULL, &c, &err), REPRO_OK);
    assert_non_null(c);
    assert_string_equal(c->source, "core");
    assert_int_equal(c->pid, 4242);
    assert_int_equal(c->tid, 4243);
    assert_int_equal(c->signo, SIGSEGV);
    assert_int_equal(c->si_code, 1);
    assert_int_equal(c->fault_address, 0x18);
    assert_string_equal(c->executable, "/srv/server");
    assert_string_equal(c->cmdline, "/srv/server --port 9000"); /* trailing space cut */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(c->time_us, (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000);
    assert_int_equal(c->n_threads, 3);
    assert_int_equal(c->threads[0].tid, 4243);
    assert_int_equal(c->threads[0].crashed, 1);
    assert_int_equal(c->threads[1].crashed + c->threads[2].crashed, 0);
    assert_string_equal(thread_of(c, 4242)->name, "server"); /* main thread: pr_fname */
    assert_string_equal(thread_of(c, 4243)->name, "");
    assert_non_null(c->threads[0].registers);
    assert_true(strncmp(c->threads[0].registers, "rip=0x401136 rsp=0x7ffc0000f000 ", 32) == 0);
    /* No memory in the core: nothing can be unwound, and the record says so. */
    assert_int_equal(c->partial, 1);
    assert_int_equal(c->threads[0].partial, 1);
    assert_int_equal(repro_crash_validate(c, &err), REPRO_OK);
    repro_crash_free(c);
}

static void test_synthetic_gdb_threads(void **state)
{
    static struct syn s;
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    (void)state;

    syn_gdb(&s);
    assert_int_equal(repro_core_import(write_file("gdb.core", s.b, s.len), NULL, &c, &err),
                     REPRO_OK);
    assert_int_equal(c->n_threads, 3);
    assert_int_equal(c->tid, 507);
    assert_int_equal(thread_of(c, 507)->crashed, 1);
    assert_int_equal(thread_of(c, 500)->crashed, 0);
    assert_int_equal(c->signo, SIGBUS);
    assert_int_equal(c->si_code, 2);
    assert_int_equal(c->fault_address, 0xdead000);
    assert_string_equal(c->cmdline, "/usr/bin/worker");
    repro_crash_free(c);
}

/* Without NT_SIGINFO the first thread and its pr_cursig are the crash. */
static void test_synthetic_no_siginfo(void **state)
{
    static struct syn s;
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    (void)state;

    syn_begin(&s, 0, EM_X86_64);
    add_prstatus(&s, 77, SIGABRT, 0x1000, 0x2000);
    add_prstatus(&s, 78, SIGABRT, 0x1000, 0x2000);
    syn_finish(&s);
    assert_int_equal(repro_core_import(write_file("nosig.core", s.b, s.len), NULL, &c, &err),
                     REPRO_OK);
    assert_int_equal(c->signo, SIGABRT);
    assert_int_equal(c->tid, 77);
    assert_int_equal(c->pid, 77);
    assert_int_equal(c->threads[0].crashed, 1);
    assert_null(c->cmdline);
    repro_crash_free(c);
}

/* Big-endian fields are read as such (ppc64: no register rendering). */
static void test_synthetic_big_endian(void **state)
{
    static struct syn s;
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    (void)state;

    syn_kernel(&s, 1, EM_PPC64);
    assert_int_equal(repro_core_import(write_file("be.core", s.b, s.len), NULL, &c, &err),
                     REPRO_OK);
    assert_int_equal(c->pid, 4242);
    assert_int_equal(c->tid, 4243);
    assert_int_equal(c->signo, SIGSEGV);
    assert_int_equal(c->fault_address, 0x18);
    assert_string_equal(c->executable, "/srv/server");
    assert_null(c->threads[0].registers);
    repro_crash_free(c);
}

/* A thread id <= 0 would end libdwfl's thread walk (and leak its state):
 * the record keeps every thread with its registers, not unwound, and says
 * why. */
static void test_synthetic_bad_tid(void **state)
{
    static struct syn s;
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    size_t i;
    (void)state;

    syn_begin(&s, 0, EM_X86_64);
    add_prstatus(&s, 31, SIGSEGV, 0x1000, 0x2000);
    add_siginfo(&s, SIGSEGV, 1, 0);
    add_prstatus(&s, -5, SIGSEGV, 0x3000, 0x4000);
    add_prstatus(&s, 33, SIGSEGV, 0x5000, 0x6000);
    syn_finish(&s);
    assert_int_equal(repro_core_import(write_file("tid.core", s.b, s.len), NULL, &c, &err),
                     REPRO_OK);
    assert_int_equal(c->n_threads, 3);
    assert_int_equal(c->partial, 1);
    assert_non_null(strstr(c->partial_reason, "has thread id -5"));
    for (i = 0; i < c->n_threads; i++) {
        assert_int_equal(c->threads[i].partial, 1);
        assert_int_equal(c->threads[i].n_frames, 0);
        assert_non_null(c->threads[i].registers);
    }
    repro_crash_free(c);
}

static void test_bad_files(void **state)
{
    static struct syn s;
    struct repro_crash *c = (struct repro_crash *)&s; /* must be reset to NULL */
    struct repro_error err = {0};
    char path[600];
    (void)state;

    snprintf(path, sizeof path, "%s/absent.core", tmp);
    assert_int_equal(repro_core_import(path, NULL, &c, &err), REPRO_E_NOTFOUND);
    assert_null(c);
    assert_non_null(strstr(err.msg, "absent.core"));

    repro_error_clear(&err);
    assert_int_equal(repro_core_import(write_file("junk.core", "GET / HTTP/1.1\r\n", 16), NULL,
                                       &c, &err),
                     REPRO_E_MALFORMED);
    assert_non_null(strstr(err.msg, "not an ELF file"));

    repro_error_clear(&err);
    assert_int_equal(repro_core_import("/proc/self/exe", NULL, &c, &err), REPRO_E_MALFORMED);
    assert_non_null(strstr(err.msg, "not a core file"));

    repro_error_clear(&err);
    assert_int_equal(repro_core_import(tmp, NULL, &c, &err), REPRO_E_INVAL);

    /* Program headers cut: nothing to salvage. */
    repro_error_clear(&err);
    syn_kernel(&s, 0, EM_X86_64);
    assert_int_equal(repro_core_import(write_file("ph.core", s.b, 100), NULL, &c, &err),
                     REPRO_E_MALFORMED);
    assert_non_null(strstr(err.msg, "truncated inside its program headers"));

    /* A binary that is not there. */
    repro_error_clear(&err);
    assert_int_equal(repro_core_import(write_file("k.core", s.b, s.len), path, &c, &err),
                     REPRO_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "cannot open binary"));

    /* A caller's err that already holds an error is left alone. */
    assert_int_equal(repro_core_import(write_file("k.core", s.b, s.len), NULL, &c, &err),
                     REPRO_OK);
    assert_non_null(strstr(err.msg, "cannot open binary"));
    repro_crash_free(c);
}

/* A core naming a FIFO would make libdwfl block in open(2): refused. */
static void test_fifo_in_nt_file(void **state)
{
    static struct syn s;
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    char fifo[600];
    (void)state;

    snprintf(fifo, sizeof fifo, "%s/pipe", tmp);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    syn_begin(&s, 0, EM_X86_64);
    add_prstatus(&s, 9, SIGSEGV, 0x1000, 0x2000);
    add_file(&s, 0x400000, 0x401000, fifo);
    syn_finish(&s);
    assert_int_equal(repro_core_import(write_file("fifo.core", s.b, s.len), NULL, &c, &err),
                     REPRO_E_MALFORMED);
    assert_null(c);
    assert_non_null(strstr(err.msg, "not a regular file"));
    unlink(fifo);
}

/* Any outcome but a crash: an error, or a record that keeps its
 * invariants. */
static void import_any(const char *path)
{
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    int rc = repro_core_import(path, NULL, &c, &err);

    if (rc != REPRO_OK) {
        assert_null(c);
        assert_true(err.code == rc && err.msg[0] != '\0');
        return;
    }
    assert_non_null(c);
    assert_int_equal(repro_crash_validate(c, &err), REPRO_OK);
    assert_true(c->n_threads <= REPRO_CRASH_MAX_THREADS);
    repro_crash_free(c);
}

static void test_every_truncation(void **state)
{
    static struct syn s;
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    size_t n;
    (void)state;

    syn_kernel(&s, 0, EM_X86_64);
    for (n = 0; n < s.len; n++)
        import_any(write_file("cut.core", s.b, n));
    /* Cut inside the notes: the threads before the cut are there, and the
     * record is partial with the reason. */
    assert_int_equal(repro_core_import(write_file("cut.core", s.b, 120 + 400), NULL, &c, &err),
                     REPRO_OK);
    assert_int_equal(c->partial, 1);
    assert_non_null(strstr(c->partial_reason, "truncated"));
    assert_int_equal(c->n_threads, 1);
    assert_int_equal(c->tid, 4243);
    repro_crash_free(c);
}

/* Every cut past the program headers either gives a partial record whose
 * reason says where the core was cut and names each field it lacks, or,
 * when nothing of the crash remains, a clean refusal: never an empty
 * "SIG0, pid 0" record that does not say why (it used to be one). */
static void test_truncation_says_what_is_missing(void **state)
{
    static struct syn s;
    char head[64];
    size_t n;
    (void)state;

    syn_kernel(&s, 0, EM_X86_64);
    for (n = 120; n < s.len; n++) {
        struct repro_crash *c = NULL;
        struct repro_error err = {0};
        int rc = repro_core_import(write_file("cut.core", s.b, n), NULL, &c, &err);
        if (rc != REPRO_OK) {
            assert_int_equal(rc, REPRO_E_MALFORMED);
            if (strstr(err.msg, "nothing of the crash remains (no signal, pid, threads and "
                                "registers, command line, module table)") == NULL)
                fail_msg("cut at %zu: %s", n, err.msg);
            continue;
        }
        snprintf(head, sizeof head, "is truncated: %zu of %zu bytes, cut ", n, s.len);
        if (!c->partial || strstr(c->partial_reason, head) == NULL)
            fail_msg("cut at %zu: partial %d: %s", n, c->partial, c->partial_reason);
        if ((c->signo == 0) != (strstr(c->partial_reason, "signal") != NULL) ||
            (c->pid == 0) != (strstr(c->partial_reason, "pid") != NULL) ||
            (c->cmdline == NULL) != (strstr(c->partial_reason, "command line") != NULL) ||
            (c->n_threads == 0) != (strstr(c->partial_reason, "threads and registers") != NULL))
            fail_msg("cut at %zu: signo %d pid %d cmdline %s threads %zu: %s", n, c->signo,
                     c->pid, c->cmdline ? c->cmdline : "-", c->n_threads, c->partial_reason);
        repro_crash_free(c);
    }
    /* before the notes: nothing remains */
    {
        struct repro_crash *c = NULL;
        struct repro_error err = {0};
        assert_int_equal(repro_core_import(write_file("cut.core", s.b, 120), NULL, &c, &err),
                         REPRO_E_MALFORMED);
        assert_null(c);
        assert_non_null(strstr(err.msg, "cut before its notes"));
        assert_non_null(strstr(err.msg, "cut.core"));
    }
}

static void test_random_damage(void **state)
{
    static struct syn s, d;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int round, k;
    (void)state;

    syn_kernel(&s, 0, EM_X86_64);
    for (round = 0; round < 1500; round++) {
        d = s;
        for (k = 0; k < 1 + round % 8; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            d.b[x % d.len] = (uint8_t)(x >> 32);
        }
        import_any(write_file("damaged.core", d.b, d.len));
    }
}

/* ---- real cores --------------------------------------------------------- */

#ifdef REPRO_CRASH_FIXTURE_DIR
static const char *fixture(const char *name)
{
    static char path[4][600];
    static int k;
    char *out = path[k++ % 4];
    snprintf(out, sizeof path[0], "%s/%s", REPRO_CRASH_FIXTURE_DIR, name);
    return out;
}

static int have_gdb(void)
{
    static int known = -1;
    if (known < 0)
        known = system("gdb --version >/dev/null 2>&1") == 0 &&
                access(fixture("null_deref"), X_OK) == 0;
    return known;
}

/* Runs prog under gdb to its crash and writes the core there. */
static const char *gdb_core(const char *prog)
{
    static char core[600];
    char cmd[2048];

    snprintf(core, sizeof core, "%s/%s.gdb.core", tmp, prog);
    if (access(core, R_OK) == 0)
        return core;
    snprintf(cmd, sizeof cmd,
             "timeout 120 gdb -nx -batch -ex run -ex 'generate-core-file %s' --args %s "
             ">%s/%s.gdb.log 2>&1",
             core, fixture(prog), tmp, prog);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(access(core, R_OK), 0);
    return core;
}

static int frame_in_module(const struct repro_crash *c, const struct repro_crash_frame *f,
                           const char *suffix)
{
    size_t n, m;
    if (f->module < 0)
        return 0;
    n = strlen(c->modules[f->module].path);
    m = strlen(suffix);
    return n >= m && strcmp(c->modules[f->module].path + n - m, suffix) == 0;
}

/* A record expected to be whole: say why when it is not. */
static void assert_whole(const struct repro_crash *c)
{
    if (c->partial)
        fail_msg("record is partial: %s", c->partial_reason);
}

static void test_real_null_deref(void **state)
{
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    const char *core;
    struct repro_crash_thread *t;
    int mod;
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    core = gdb_core("null_deref");
    assert_int_equal(repro_core_import(core, fixture("null_deref"), &c, &err), REPRO_OK);
    assert_int_equal(c->signo, SIGSEGV);
    assert_int_equal(c->si_code, 1);
    assert_int_equal(c->fault_address, 0x8);
    assert_whole(c);
    assert_int_equal(c->n_threads, 1);
    t = &c->threads[0];
    assert_int_equal(t->crashed, 1);
    assert_int_equal(t->tid, c->pid);
    assert_int_equal(c->tid, c->pid);
    /* store_result, route_handler, lookup_route, parse_request, main, then
     * libc's start code and _start. */
    assert_true(t->n_frames >= 7);
    assert_true(frame_in_module(c, &t->frames[0], "/null_deref"));
    assert_true(frame_in_module(c, &t->frames[4], "/null_deref"));
    assert_true(frame_in_module(c, &t->frames[5], "/libc.so.6"));
    mod = t->frames[0].module;
    assert_int_equal(t->frames[0].offset, t->frames[0].pc - c->modules[mod].load_bias);
    assert_true(strlen(c->modules[mod].build_id) == 40);
    assert_non_null(strstr(c->executable, "null_deref"));
    assert_non_null(strstr(c->cmdline, "null_deref"));
    assert_non_null(t->registers);
    assert_int_equal(strncmp(t->registers, "rip=0x", 6), 0);
    repro_crash_free(c);
}

static void test_real_thread_crash(void **state)
{
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    size_t i, crashed = 0;
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    assert_int_equal(repro_core_import(gdb_core("thread_crash"), fixture("thread_crash"), &c,
                                       &err),
                     REPRO_OK);
    assert_int_equal(c->n_threads, 16);
    for (i = 0; i < c->n_threads; i++) {
        crashed += c->threads[i].crashed;
        assert_true(c->threads[i].n_frames >= 3);
        assert_int_equal(c->threads[i].partial, 0);
    }
    assert_int_equal(crashed, 1);
    assert_true(c->tid != c->pid);
    assert_int_equal(thread_of(c, c->tid)->crashed, 1);
    assert_whole(c);
    repro_crash_free(c);
}

static void test_real_stack_overflow(void **state)
{
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    assert_int_equal(repro_core_import(gdb_core("stack_overflow"), fixture("stack_overflow"), &c,
                                       &err),
                     REPRO_OK);
    assert_int_equal(c->signo, SIGSEGV);
    assert_int_equal(c->threads[0].n_frames, REPRO_CRASH_MAX_FRAMES);
    assert_int_equal(c->threads[0].partial, 1);
    assert_int_equal(c->partial, 1);
    assert_non_null(strstr(c->partial_reason, "deeper than 256 frames"));
    /* frames 1.. are all the same return address into recurse() */
    assert_int_equal(c->threads[0].frames[1].pc, c->threads[0].frames[200].pc);
    repro_crash_free(c);
}

static void test_real_signals(void **state)
{
    static const struct {
        const char *prog;
        int signo;
    } cases[] = {{"abort_assert", SIGABRT}, {"div_zero", SIGFPE}};
    size_t i;
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct repro_crash *c = NULL;
        struct repro_error err = {0};
        assert_int_equal(repro_core_import(gdb_core(cases[i].prog), fixture(cases[i].prog), &c,
                                           &err),
                         REPRO_OK);
        assert_int_equal(c->signo, cases[i].signo);
        assert_whole(c);
        assert_true(c->threads[0].n_frames >= 4);
        repro_crash_free(c);
    }
}

static void test_real_mismatch(void **state)
{
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    assert_int_equal(repro_core_import(gdb_core("null_deref"), fixture("div_zero"), &c, &err),
                     REPRO_E_INVAL);
    assert_null(c);
    assert_non_null(strstr(err.msg, "does not match core"));
    assert_non_null(strstr(err.msg, "build-id"));
    assert_non_null(strstr(err.msg, "div_zero"));
}

static void copy_prefix(const char *from, const char *to, long len)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    long done = 0;

    assert_non_null(in);
    assert_non_null(out);
    while (done < len) {
        size_t want = (size_t)(len - done < (long)sizeof buf ? len - done : (long)sizeof buf);
        size_t got = fread(buf, 1, want, in);
        if (got == 0)
            break;
        assert_int_equal(fwrite(buf, 1, got, out), got);
        done += (long)got;
    }
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* gdb writes the notes at the end: a cut gdb core keeps the memory (the
 * module table) and loses the threads. */
static void test_real_truncated_gdb(void **state)
{
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    const char *core;
    char cut[600];
    struct stat st;
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    core = gdb_core("null_deref");
    assert_int_equal(stat(core, &st), 0);
    snprintf(cut, sizeof cut, "%s/null_deref.cut.core", tmp);
    copy_prefix(core, cut, (long)st.st_size / 2);
    assert_int_equal(repro_core_import(cut, fixture("null_deref"), &c, &err), REPRO_OK);
    assert_int_equal(c->partial, 1);
    assert_non_null(strstr(c->partial_reason, "is truncated"));
    assert_true(c->n_modules >= 1);
    repro_crash_free(c);
}

/* Where the first PT_NOTE of a 64-bit little-endian core starts and ends. */
static void note_extent(const char *core, long *start, long *end)
{
    FILE *f = fopen(core, "rb");
    Elf64_Ehdr eh;
    Elf64_Phdr ph;
    int i;

    assert_non_null(f);
    assert_int_equal(fread(&eh, sizeof eh, 1, f), 1);
    *start = *end = -1;
    for (i = 0; i < eh.e_phnum && *start < 0; i++) {
        assert_int_equal(fseek(f, (long)(eh.e_phoff + (uint64_t)i * eh.e_phentsize), SEEK_SET), 0);
        assert_int_equal(fread(&ph, sizeof ph, 1, f), 1);
        if (ph.p_type == PT_NOTE) {
            *start = (long)ph.p_offset;
            *end = (long)(ph.p_offset + ph.p_filesz);
        }
    }
    fclose(f);
    assert_true(*start > 0);
}

/* Imports core cut to len bytes; returns the record (or NULL with *rc). */
static struct repro_crash *import_cut(const char *core, const char *exe, long len, int *rc,
                                      struct repro_error *err)
{
    static char cut[700];
    struct repro_crash *c = NULL;

    snprintf(cut, sizeof cut, "%s/cut.core", tmp);
    copy_prefix(core, cut, len);
    repro_error_clear(err);
    *rc = repro_core_import(cut, exe, &c, err);
    return c;
}

/* A gdb core (notes at the end) cut at several offsets before its notes
 * keeps the module table (the memory is there) and says the signal, pid,
 * threads and command line are missing; cut inside them, it says so. */
static void test_real_gdb_cut_before_notes(void **state)
{
    struct repro_crash *c;
    struct repro_error err = {0};
    const char *core;
    long start, end, cuts[4];
    int rc, k;
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    core = gdb_core("null_deref");
    note_extent(core, &start, &end);
    cuts[0] = start / 3;
    cuts[1] = start / 2;
    cuts[2] = start - 1;
    cuts[3] = start;
    for (k = 0; k < 4; k++) {
        c = import_cut(core, fixture("null_deref"), cuts[k], &rc, &err);
        if (rc != REPRO_OK)
            fail_msg("cut at %ld: %s", cuts[k], err.msg);
        assert_int_equal(c->partial, 1);
        if (strstr(c->partial_reason, "cut before its notes; missing: signal, pid, threads and "
                                      "registers, command line") == NULL)
            fail_msg("cut at %ld: %s", cuts[k], c->partial_reason);
        assert_int_equal(c->n_threads, 0);
        assert_int_equal(c->signo, 0);
        assert_true(c->n_modules >= 1);
        repro_crash_free(c);
    }
    c = import_cut(core, fixture("null_deref"), start + (end - start) / 2, &rc, &err);
    assert_int_equal(rc, REPRO_OK);
    if (strstr(c->partial_reason, "cut inside its notes") == NULL)
        fail_msg("%s", c->partial_reason);
    repro_crash_free(c);
}

/* The kernel's own core, when core_pattern is a plain file name (written in
 * the crashing process's directory): nothing on the machine is changed. */
static const char *kernel_core(const char *prog)
{
    static char core[700];
    char pattern[256] = "";
    FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");
    int uses_pid = 0, status;
    pid_t pid;
    size_t n;

    if (f == NULL || fgets(pattern, sizeof pattern, f) == NULL) {
        if (f)
            fclose(f);
        return NULL;
    }
    fclose(f);
    n = strcspn(pattern, "\n");
    pattern[n] = '\0';
    if (n == 0 || strpbrk(pattern, "|/%") != NULL)
        return NULL;
    f = fopen("/proc/sys/kernel/core_uses_pid", "r");
    if (f) {
        if (fscanf(f, "%d", &uses_pid) != 1)
            uses_pid = 0;
        fclose(f);
    }
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl;
        char *argv[2];
        argv[0] = (char *)fixture(prog);
        argv[1] = NULL;
        if (chdir(tmp) != 0 || getrlimit(RLIMIT_CORE, &rl) != 0)
            _exit(99);
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_CORE, &rl) != 0)
            _exit(99);
        execv(argv[0], argv);
        _exit(98);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || !WCOREDUMP(status))
        return NULL;
    if (uses_pid)
        snprintf(core, sizeof core, "%s/%s.%d", tmp, pattern, (int)pid);
    else
        snprintf(core, sizeof core, "%s/%s", tmp, pattern);
    return access(core, R_OK) == 0 ? core : NULL;
}

static void test_real_kernel_core(void **state)
{
    struct repro_crash *c = NULL;
    struct repro_error err = {0};
    const char *core;
    char cut[700];
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    core = kernel_core("thread_crash");
    if (core == NULL)
        tu_skip("no kernel core: core_pattern is not a plain file name");
    assert_int_equal(repro_core_import(core, fixture("thread_crash"), &c, &err), REPRO_OK);
    assert_int_equal(c->n_threads, 16);
    assert_int_equal(c->signo, SIGSEGV);
    assert_whole(c);
    assert_true(thread_of(c, c->tid)->n_frames >= 4);
    assert_true(c->tid != c->pid);
    repro_crash_free(c);
    c = NULL;

    /* The kernel writes the notes first: a cut core keeps every thread and
     * its registers, and says it is partial. */
    snprintf(cut, sizeof cut, "%s/kernel.cut.core", tmp);
    copy_prefix(core, cut, 200000);
    assert_int_equal(repro_core_import(cut, fixture("thread_crash"), &c, &err), REPRO_OK);
    assert_int_equal(c->partial, 1);
    assert_non_null(strstr(c->partial_reason, "is truncated: 200000 of"));
    assert_int_equal(c->n_threads, 16);
    assert_int_equal(thread_of(c, c->tid)->crashed, 1);
    assert_non_null(thread_of(c, c->tid)->registers);
    repro_crash_free(c);
    c = NULL;

    /* The kernel writes the notes right after the program headers and the
     * memory after them: cut before the notes, nothing of the crash
     * remains and the core is refused; cut inside them, the threads before
     * the cut are kept; cut after them, every thread is. */
    {
        long start, end;
        int rc;
        note_extent(core, &start, &end);
        c = import_cut(core, fixture("thread_crash"), start, &rc, &err);
        assert_int_equal(rc, REPRO_E_MALFORMED);
        assert_null(c);
        assert_non_null(strstr(err.msg, "cut before its notes: nothing of the crash remains"));
        c = import_cut(core, fixture("thread_crash"), start + 2000, &rc, &err);
        assert_int_equal(rc, REPRO_OK);
        if (strstr(c->partial_reason, "cut inside its notes; missing: ") == NULL ||
            strstr(c->partial_reason, "any thread after the last one kept") == NULL)
            fail_msg("%s", c->partial_reason);
        assert_true(c->n_threads >= 1 && c->n_threads < 16);
        assert_int_equal(c->signo, SIGSEGV);
        repro_crash_free(c);
        c = import_cut(core, fixture("thread_crash"), end + 1, &rc, &err);
        assert_int_equal(rc, REPRO_OK);
        if (strstr(c->partial_reason, "cut after its notes") == NULL)
            fail_msg("%s", c->partial_reason);
        assert_int_equal(c->n_threads, 16);
        repro_crash_free(c);
    }
    unlink(core);
}

/* Every allocation of an import fails in turn: a clean REPRO_E_NOMEM each
 * time (ASan reports any leak), then success. */
static void test_real_alloc_failures(void **state)
{
    const char *core;
    unsigned long n;
    int ok = 0;
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    core = gdb_core("shlib_crash");
    for (n = 1; n < 5000 && !ok; n++) {
        struct repro_crash *c = NULL;
        struct repro_error err = {0};
        int rc;
        repro_alloc_fail_after(n);
        rc = repro_core_import(core, fixture("shlib_crash"), &c, &err);
        repro_alloc_fail_after(0);
        if (rc == REPRO_OK) {
            assert_whole(c);
            ok = 1;
        } else {
            assert_int_equal(rc, REPRO_E_NOMEM);
            assert_null(c);
            assert_non_null(strstr(err.msg, "out of memory"));
        }
        repro_crash_free(c);
    }
    assert_true(ok);
}

static void test_real_store_roundtrip(void **state)
{
    struct repro_crash *c = NULL, *back = NULL;
    struct repro_error err = {0};
    struct repro_store *st = NULL;
    int64_t id = 0;
    size_t i, k;
    (void)state;

    if (!have_gdb())
        tu_skip("needs gdb and the built crash fixtures");
    assert_int_equal(repro_core_import(gdb_core("thread_crash"), fixture("thread_crash"), &c,
                                       &err),
                     REPRO_OK);
    assert_int_equal(repro_store_open(":memory:", 0, &st, &err), REPRO_OK);
    assert_int_equal(repro_app_store_crash(st, c, &id, &err), REPRO_OK);
    assert_int_equal(repro_app_load_crash(st, id, &back, &err), REPRO_OK);
    assert_string_equal(back->source, "core");
    assert_int_equal(back->tid, c->tid);
    assert_int_equal(back->n_threads, c->n_threads);
    assert_int_equal(back->n_modules, c->n_modules);
    for (i = 0; i < c->n_threads; i++) {
        assert_int_equal(back->threads[i].n_frames, c->threads[i].n_frames);
        for (k = 0; k < c->threads[i].n_frames; k++) {
            assert_int_equal(back->threads[i].frames[k].pc, c->threads[i].frames[k].pc);
            assert_int_equal(back->threads[i].frames[k].module, c->threads[i].frames[k].module);
        }
    }
    repro_crash_free(back);
    repro_crash_free(c);
    repro_store_close(st);
}
#endif

/* ---- driver modes -------------------------------------------------------- */

static int driver_import(const char *core, const char *exe, const char *db)
{
    struct repro_crash *c = NULL;
    struct repro_store *st = NULL;
    struct repro_error err = {0};
    int64_t id = 0;
    int rc;

    rc = repro_core_import(core, exe, &c, &err);
    if (rc == REPRO_OK)
        rc = repro_store_open(db, 0, &st, &err);
    if (rc == REPRO_OK)
        rc = repro_app_store_crash(st, c, &id, &err);
    repro_store_close(st);
    if (rc != REPRO_OK) {
        fprintf(stderr, "test_core_import: %s\n", err.msg);
        repro_crash_free(c);
        return 2;
    }
    printf("crash %lld\n", (long long)id);
    if (c->partial)
        fprintf(stderr, "test_core_import: partial record: %s\n", c->partial_reason);
    rc = c->partial ? 1 : 0;
    repro_crash_free(c);
    return rc;
}

static int driver_seeds(const char *dir)
{
    static struct syn s;
    char path[1024];
    FILE *f;
    int i;

    for (i = 0; i < 4; i++) {
        if (i == 0)
            syn_kernel(&s, 0, EM_X86_64);
        else if (i == 1)
            syn_gdb(&s);
        else if (i == 2)
            syn_kernel(&s, 1, EM_PPC64);
        else {
            syn_kernel(&s, 0, EM_X86_64);
            s.len = 120 + 700; /* cut inside the notes */
        }
        snprintf(path, sizeof path, "%s/synthetic-%d.core", dir, i);
        f = fopen(path, "wb");
        if (f == NULL || fwrite(s.b, 1, s.len, f) != s.len || fclose(f) != 0) {
            fprintf(stderr, "cannot write '%s'\n", path);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic_kernel),
        cmocka_unit_test(test_synthetic_gdb_threads),
        cmocka_unit_test(test_synthetic_no_siginfo),
        cmocka_unit_test(test_synthetic_big_endian),
        cmocka_unit_test(test_synthetic_bad_tid),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_fifo_in_nt_file),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_truncation_says_what_is_missing),
        cmocka_unit_test(test_random_damage),
#ifdef REPRO_CRASH_FIXTURE_DIR
        cmocka_unit_test(test_real_null_deref),
        cmocka_unit_test(test_real_thread_crash),
        cmocka_unit_test(test_real_stack_overflow),
        cmocka_unit_test(test_real_signals),
        cmocka_unit_test(test_real_mismatch),
        cmocka_unit_test(test_real_truncated_gdb),
        cmocka_unit_test(test_real_gdb_cut_before_notes),
        cmocka_unit_test(test_real_kernel_core),
        cmocka_unit_test(test_real_alloc_failures),
        cmocka_unit_test(test_real_store_roundtrip),
#endif
    };

    if (argc == 5 && strcmp(argv[1], "--import") == 0)
        return driver_import(argv[2], argv[3], argv[4]);
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
        return driver_seeds(argv[2]);
    if (argc > 1) {
        fprintf(stderr, "usage: test_core_import [--import CORE EXE DB | --write-seeds DIR]\n");
        return 64;
    }
    if (getenv("TEST_FILTER") != NULL) /* e.g. TEST_FILTER='test_real_*' */
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return tu_exit(cmocka_run_group_tests(tests, setup, teardown));
}
