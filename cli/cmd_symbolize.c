/*
 * repro symbolize [--debug-dir DIR]... [ID...]
 *
 * Symbolizes stored crashes again (all, or the given ids) — typically in CI
 * on a machine that has the debug files — and stores the result. Also the
 * helper `repro run` and `repro ingest` call right after storing a crash,
 * when the debug information is at hand.
 */
#include "cli.h"
#include "repro/crash.h"
#include "repro/store.h"
#include "repro/symbolize.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEBUG_DIRS 32

struct sym_ctx {
    struct repro_store *store;
    struct repro_sym_session *session;
    const char *const *dirs;
    size_t n_dirs;
    struct repro_error *err;
    int quiet;
    unsigned incomplete;
};

static int symbolize_one(void *vctx, int64_t id)
{
    struct sym_ctx *x = vctx;
    struct repro_crash *c = NULL;
    struct repro_crash_sym_report rep;
    int rc = repro_store_crash_load(x->store, id, &c, x->err);

    if (rc)
        return rc;
    rc = repro_crash_symbolize(x->session, c, x->dirs, x->n_dirs, &rep, x->err);
    if (rc == REPRO_OK)
        rc = repro_store_crash_update_symbols(x->store, id, c, x->err);
    if (rc == REPRO_OK && !x->quiet)
        fprintf(stderr, "repro: crash %lld: %zu of %zu frames symbolized, signature %s%s%s\n",
                (long long)id, rep.n_symbolized, rep.n_frames, c->signature,
                rep.missing[0] ? "; missing: " : "", rep.missing);
    if (rep.n_symbolized < rep.n_frames)
        x->incomplete++;
    repro_crash_free(c);
    return rc;
}

int cli_symbolize_crashes(struct repro_store *store, const int64_t *ids, size_t n_ids,
                          const char *const *dirs, size_t n_dirs, int quiet,
                          struct repro_error *err)
{
    struct repro_sym_options opt;
    struct sym_ctx x;
    size_t i;
    int rc;

    memset(&opt, 0, sizeof opt);
    opt.debug_dirs = dirs;
    opt.n_debug_dirs = n_dirs;
    memset(&x, 0, sizeof x);
    x.store = store;
    x.dirs = dirs;
    x.n_dirs = n_dirs;
    x.err = err;
    x.quiet = quiet;
    rc = repro_sym_session_new(&x.session, &opt, err);
    if (rc)
        return rc;
    if (ids == NULL)
        rc = repro_store_crash_ids(store, symbolize_one, &x, err);
    for (i = 0; ids != NULL && i < n_ids && rc == REPRO_OK; i++)
        rc = symbolize_one(&x, ids[i]);
    repro_sym_session_free(x.session);
    return rc;
}

int cmd_symbolize(struct cli_global *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"debug-dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *dirs[MAX_DEBUG_DIRS];
    int64_t ids[256];
    size_t n_dirs = 0, n_ids = 0;
    struct repro_store *store = NULL;
    struct repro_error err = {0};
    int opt, i, rc;
    long long v;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case 'd':
            if (n_dirs == MAX_DEBUG_DIRS)
                return cli_usage_error("symbolize", "at most %d --debug-dir", MAX_DEBUG_DIRS);
            dirs[n_dirs++] = optarg;
            break;
        case 'h':
            printf("usage: repro symbolize [--db PATH] [--debug-dir DIR]... [ID...]\n"
                   "Symbolizes stored crashes (all, or the given ids) and stores function,\n"
                   "file:line and inlined frames, and the crash signature. Debug files are\n"
                   "looked up in the binaries, next to them (.gnu_debuglink), in build-id\n"
                   "trees under each --debug-dir and /usr/lib/debug, and through debuginfod\n"
                   "when DEBUGINFOD_URLS is set. A file whose build-id differs is refused.\n");
            return EXIT_CLEAN;
        default:
            return EXIT_USAGE;
        }
    }
    for (i = optind; i < argc; i++) {
        if ((v = cli_parse_int(argv[i])) <= 0)
            return cli_usage_error("symbolize", "crash ID must be a positive number, not '%s'",
                                   argv[i]);
        if (n_ids == sizeof ids / sizeof *ids)
            return cli_usage_error("symbolize", "at most %zu ids at a time", n_ids);
        ids[n_ids++] = v;
    }
    if (repro_store_open(g->db, 0, &store, &err) != REPRO_OK)
        return cli_fail(&err);
    rc = cli_symbolize_crashes(store, n_ids ? ids : NULL, n_ids, dirs, n_dirs, 0, &err);
    repro_store_close(store);
    if (rc) {
        if (err.code == 0)
            repro_error_set(&err, rc, "cannot symbolize: %s", repro_strerror(rc));
        return cli_fail(&err);
    }
    return EXIT_CLEAN;
}
