/*
 * repro symbolize [--debug-dir DIR]... [ID...]
 *
 * Symbolizes stored crashes again (all, or the given ids) — typically in CI
 * on a machine that has the debug files — and stores the result
 * (app/symbolize_store.c does the work).
 */
#include "cli.h"
#include "app/symbolize_store.h"
#include "repro/store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEBUG_DIRS 32

int cmd_symbolize(struct cli_global *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"debug-dir", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *dirs[MAX_DEBUG_DIRS];
    int64_t ids[256];
    size_t n_dirs = 0, n_ids = 0;
    struct repro_store *store = NULL;
    struct repro_error err = {0};
    int opt, i, rc, force = 0;
    long long v;

    optind = 1;
    while ((opt = cli_getopt(argc, argv, "d:fh", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case 'd':
            if (n_dirs == MAX_DEBUG_DIRS)
                return cli_usage_error("symbolize", "at most %d --debug-dir", MAX_DEBUG_DIRS);
            dirs[n_dirs++] = optarg;
            break;
        case 'f': force = 1; break;
        case 'h':
            printf("usage: repro symbolize [--db PATH] [--debug-dir DIR]... [--force] [ID...]\n"
                   "Symbolizes stored crashes (all, or the given ids) and stores function,\n"
                   "file:line and inlined frames, and the crash signature. Debug files are\n"
                   "looked up in the binaries, next to them (.gnu_debuglink), in build-id\n"
                   "trees under each --debug-dir and /usr/lib/debug, and through debuginfod\n"
                   "when DEBUGINFOD_URLS is set. A file whose build-id differs is refused.\n"
                   "A stored result is replaced only by a better or equal one (as many frames\n"
                   "with file:line or a function); --force replaces it anyway.\n"
                   "Exit: 0 done (also when debug information was missing), 2 error (the\n"
                   "database, a --debug-dir that does not exist), 64 usage.\n");
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
    if (cli_check_dirs("--debug-dir", dirs, n_dirs))
        return EXIT_FATAL;
    if (repro_store_open(g->db, 0, &store, &err) != REPRO_OK)
        return cli_fail(&err);
    rc = repro_app_symbolize_crashes(store, n_ids ? ids : NULL, n_ids, dirs, n_dirs, force, stderr,
                                     &err);
    repro_store_close(store);
    if (rc) {
        if (err.code == 0)
            repro_error_set(&err, rc, "cannot symbolize: %s", repro_strerror(rc));
        return cli_fail(&err);
    }
    return EXIT_CLEAN;
}
