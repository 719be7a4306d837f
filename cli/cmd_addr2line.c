/*
 * repro addr2line -e FILE [-a] [-f] [-i] [-C] [-p] [-s] [ADDR...]
 *
 * A drop-in for GNU binutils addr2line: same options, same output byte for
 * byte (tests/e2e/test_addr2line.py holds it to that), addresses in hex with
 * or without 0x (parsed like bfd_scan_vma: strtoull base 16), read from
 * stdin one per line when none are given. Like binutils, a line longer
 * than 99 characters is read as several addresses.
 *
 * Coprocess use: output is flushed whenever repro is about to wait for
 * input, so a script that writes one address and reads the answer never
 * blocks; in bulk the answers go out in large writes.
 *
 * The index of the units is built on the other cores (up to three threads)
 * from the moment the file is open, while the first addresses are looked
 * up; the output does not depend on it.
 *
 * Exit codes (as binutils): 0 done; 1 FILE is missing or unreadable, not
 * ELF, or truncated ("file format not recognized"). Usage errors exit 64
 * (repro's convention; binutils uses 1); a --debug-dir that does not
 * exist, a write error or running out of memory exits 2. Messages are
 * repro's ("repro: addr2line: 'x': No such file"), cli/cli_util.c's.
 *
 * repro additions: --debug-dir DIR (repeatable), --stats (index counters
 * and timings on stderr; also REPRO_SYM_STATS=1).
 */
#include "cli.h"
#include "repro/symbolize.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_FLUSH_AT (64 * 1024)
#define IN_BUF (64 * 1024)

struct a2l {
    struct repro_sym_module *mod;
    struct repro_sym_result res;
    struct repro_buf out;
    unsigned fmt;
    unsigned lookup_flags;
    int write_failed;
    /* the addresses read since the last batch (looked up together) */
    uint64_t *addrs;
    size_t n_addrs, cap_addrs;
    int emit_rc; /* exit code of a failure inside emit() */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: repro addr2line [-a] [-C] [-e FILE] [-f] [-i] [-p] [-s] [ADDR...]\n"
            "Convert addresses into file:line pairs, exactly as binutils addr2line does.\n"
            "Addresses are read from stdin, one per line, when none are given.\n"
            "  -a, --addresses       show addresses\n"
            "  -e, --exe=FILE        the ELF file (default: a.out)\n"
            "  -f, --functions       show function names\n"
            "  -i, --inlines         unwind inlined functions\n"
            "  -C, --demangle        demangle function names\n"
            "  -p, --pretty-print    one line per address\n"
            "  -s, --basenames       strip directory names\n"
            "  --debug-dir=DIR       look for debug files in DIR too (repeatable)\n"
            "  --stats               print index counters and timings to stderr\n"
            "Exit codes: 0 done, 1 FILE missing, unreadable, not ELF or truncated, 2 error,\n"
            "64 usage.\n");
}

static int flush_out(struct a2l *a)
{
    size_t off = 0;
    while (off < a->out.len) {
        ssize_t n = write(STDOUT_FILENO, a->out.data + off, a->out.len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            a->write_failed = 1;
            repro_buf_reset(&a->out);
            return -1;
        }
        off += (size_t)n;
    }
    repro_buf_reset(&a->out);
    return 0;
}

/* text as strtoull(text, NULL, 16) reads it: a fast path for the usual
 * "[0x]HEX\n" of at most 16 digits, strtoull for anything else. */
static uint64_t scan_vma(const char *text)
{
    const char *p = text;
    uint64_t v = 0;
    int n = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
        p += 2;
    for (;; p++, n++) {
        unsigned c = (unsigned char)*p, d;
        if (c - '0' < 10)
            d = c - '0';
        else if ((c | 0x20) - 'a' < 6)
            d = (c | 0x20) - 'a' + 10;
        else
            break;
        v = v << 4 | d;
    }
    if (n >= 1 && n <= 16 && (*p == '\n' || *p == '\0'))
        return v;
    return (uint64_t)strtoull(text, NULL, 16);
}

/* Queues one address in bfd_scan_vma's syntax for the next batch. */
static int one(struct a2l *a, const char *text)
{
    if (a->n_addrs == a->cap_addrs) {
        size_t cap = a->cap_addrs ? 2 * a->cap_addrs : 1024;
        uint64_t *p = realloc(a->addrs, cap * sizeof *p);
        if (p == NULL) {
            cli_error("out of memory");
            return EXIT_FATAL;
        }
        a->addrs = p;
        a->cap_addrs = cap;
    }
    a->addrs[a->n_addrs++] = scan_vma(text);
    return EXIT_CLEAN;
}

/* Prints one answer (called in input order). */
static int emit(void *ctx, const struct repro_sym_result *r)
{
    struct a2l *a = ctx;
    int rc = repro_sym_format_addr2line(&a->out, r, a->fmt);
    if (rc != REPRO_OK) {
        struct repro_error err = {0};
        repro_error_set(&err, rc, "cannot format the answer for 0x%llx",
                        (unsigned long long)r->addr);
        a->emit_rc = cli_fail(&err);
        return rc;
    }
    if (a->out.len >= OUT_FLUSH_AT && flush_out(a) != 0) {
        a->emit_rc = EXIT_FATAL;
        return REPRO_E_IO;
    }
    return REPRO_OK;
}

/* Looks up the queued addresses (on every core: see
 * repro_sym_module_lookup_each) and prints the answers in order. */
static int run_batch(struct a2l *a)
{
    struct repro_error err = {0};
    int rc;
    if (a->n_addrs == 0)
        return EXIT_CLEAN;
    rc = repro_sym_module_lookup_each(a->mod, a->addrs, a->n_addrs, a->lookup_flags, &a->res,
                                      emit, a, &err);
    a->n_addrs = 0;
    if (rc != REPRO_OK)
        return a->emit_rc != 0 ? a->emit_rc : cli_fail(&err);
    return EXIT_CLEAN;
}

/* Reads stdin as fgets(buf, 100, stdin) would; the lines at hand form a
 * batch, answered and flushed before each read that may block (so a
 * program feeding one address at a time gets each answer at once). */
static int from_stdin(struct a2l *a)
{
    static char buf[IN_BUF];
    size_t have = 0, pos = 0;
    int eof = 0, rc;

    for (;;) {
        char line[100];
        size_t avail = have - pos, take;
        const char *nl = memchr(buf + pos, '\n', avail < 99 ? avail : 99);
        if (nl != NULL) {
            take = (size_t)(nl - (buf + pos)) + 1;
        } else if (avail >= 99) {
            take = 99;
        } else if (eof) {
            if (avail == 0)
                break;
            take = avail;
        } else {
            ssize_t n;
            memmove(buf, buf + pos, avail);
            have = avail;
            pos = 0;
            rc = run_batch(a);
            if (rc != EXIT_CLEAN)
                return rc;
            if (flush_out(a) != 0)
                return EXIT_FATAL;
            n = read(STDIN_FILENO, buf + have, sizeof buf - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                eof = 1;
            else
                have += (size_t)n;
            continue;
        }
        memcpy(line, buf + pos, take);
        line[take] = '\0';
        pos += take;
        rc = one(a, line);
        if (rc != EXIT_CLEAN)
            return rc;
    }
    rc = run_batch(a);
    if (rc != EXIT_CLEAN)
        return rc;
    return flush_out(a) == 0 ? EXIT_CLEAN : EXIT_FATAL;
}

static void print_stats(const struct repro_sym_module *m, uint64_t total_ns)
{
    struct repro_sym_stats st;
    repro_sym_module_stats(m, &st);
    fprintf(stderr,
            "repro: addr2line: index of '%s' (debug: %s): open %.2f ms (%zu units, %zu symbols); "
            "%zu units built in %.2f ms (%zu failed): %zu functions, %zu segments, %zu rows, "
            "%.1f MiB; index complete %.2f ms after start; total %.2f ms\n",
            repro_sym_module_debug_path(m) ? repro_sym_module_debug_path(m) : "-",
            repro_sym_module_has_dwarf(m) ? "dwarf" : "none", st.open_ns / 1e6, st.n_units,
            st.n_symbols, st.n_units_built, st.units_ns / 1e6, st.n_units_failed, st.n_functions,
            st.n_segments, st.n_rows, st.bytes / 1048576.0, st.index_ns / 1e6, total_ns / 1e6);
}

enum { OPT_DEBUG_DIR = 2000, OPT_STATS, OPT_RECURSE, OPT_TARGET };

int cmd_addr2line(struct cli_global *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"addresses", no_argument, NULL, 'a'},
        {"basenames", no_argument, NULL, 's'},
        {"demangle", optional_argument, NULL, 'C'},
        {"exe", required_argument, NULL, 'e'},
        {"functions", no_argument, NULL, 'f'},
        {"inlines", no_argument, NULL, 'i'},
        {"pretty-print", no_argument, NULL, 'p'},
        {"recurse-limit", no_argument, NULL, 'R'},
        {"no-recurse-limit", no_argument, NULL, 'r'},
        {"target", required_argument, NULL, 'b'},
        {"section", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'H'},
        {"version", no_argument, NULL, 'V'},
        {"debug-dir", required_argument, NULL, OPT_DEBUG_DIR},
        {"stats", no_argument, NULL, OPT_STATS},
        CLI_COMMON_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct repro_sym_options so = {0};
    struct repro_sym_session *s = NULL;
    struct a2l a;
    struct repro_error err = {0};
    const char *exe = "a.out";
    const char **dirs = NULL;
    const char *env = getenv("REPRO_SYM_STATS");
    size_t n_dirs = 0;
    int opt, rc, stats = env != NULL && *env != '\0' && strcmp(env, "0") != 0, i;
    uint64_t t0 = repro_mono_ns();

    memset(&a, 0, sizeof a);
    dirs = calloc((size_t)argc + 1, sizeof *dirs);
    if (dirs == NULL)
        return EXIT_FATAL;
    optind = 1;
    while ((opt = cli_getopt(argc, argv, "ab:Ce:rRsfHhij:pVv", opts)) != -1) {
        switch (opt) {
        case 'a': a.fmt |= REPRO_A2L_ADDRESSES; break;
        case 's': a.fmt |= REPRO_A2L_BASENAMES; break;
        case 'C': a.fmt |= REPRO_A2L_DEMANGLE; break;
        case 'e': exe = optarg; break;
        case 'f': a.fmt |= REPRO_A2L_FUNCTIONS; break;
        case 'i': a.fmt |= REPRO_A2L_INLINES; break;
        case 'p': a.fmt |= REPRO_A2L_PRETTY; break;
        case 'r': case 'R': case 'b': break; /* accepted for compatibility */
        case 'j':
            free(dirs);
            return cli_usage_error("addr2line", "-j/--section is not supported");
        case 'H': case 'h':
            usage(stdout);
            free(dirs);
            return EXIT_CLEAN;
        case 'V': case 'v':
            printf("repro addr2line 0.1.0 (output compatible with GNU addr2line 2.40)\n");
            free(dirs);
            return EXIT_CLEAN;
        case OPT_DEBUG_DIR: dirs[n_dirs++] = optarg; break;
        case OPT_STATS: stats = 1; break;
        default:
            if (cli_common_option(g, opt, optarg))
                break;
            free(dirs);
            return EXIT_USAGE;
        }
    }
    if (cli_check_dirs("--debug-dir", dirs, n_dirs)) {
        free(dirs);
        return EXIT_FATAL;
    }
    a.lookup_flags = REPRO_SYM_BINUTILS;
    if ((a.fmt & REPRO_A2L_DEMANGLE) && (a.fmt & REPRO_A2L_FUNCTIONS))
        a.lookup_flags |= REPRO_SYM_DEMANGLE;
    so.debug_dirs = dirs;
    so.n_debug_dirs = n_dirs;
    rc = repro_sym_session_new(&s, &so, &err);
    if (rc != REPRO_OK) {
        free(dirs);
        return cli_fail(&err);
    }
    rc = repro_sym_session_open(s, exe, &a.mod, &err);
    if (rc != REPRO_OK) {
        /* binutils: "addr2line: 'x': No such file", exit 1 */
        if (rc == REPRO_E_NOTFOUND)
            cli_error("'%s': No such file", exe);
        else
            cli_fail(&err);
        repro_sym_session_free(s);
        free(dirs);
        return EXIT_FINDINGS;
    }
    /* the workers: they resolve the batches of addresses with this thread
     * and build the units' index in between (a lookup waits for or builds
     * what it needs) */
    (void)repro_sym_module_build_background(a.mod, &err);
    repro_error_clear(&err);
    repro_buf_init(&a.out, 256u * 1024 * 1024);
    repro_sym_result_init(&a.res);
    rc = EXIT_CLEAN;
    if (optind >= argc) {
        rc = from_stdin(&a);
    } else {
        for (i = optind; i < argc && rc == EXIT_CLEAN; i++)
            rc = one(&a, argv[i]);
        if (rc == EXIT_CLEAN)
            rc = run_batch(&a);
        if (rc == EXIT_CLEAN && flush_out(&a) != 0)
            rc = EXIT_FATAL;
    }
    if (a.write_failed && rc == EXIT_CLEAN)
        rc = EXIT_FATAL;
    if (stats)
        print_stats(a.mod, repro_mono_ns() - t0);
    repro_buf_release(&a.out);
    repro_sym_session_free(s);
    free(a.addrs);
    free(dirs);
    return rc;
}
