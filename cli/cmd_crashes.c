/*
 * repro crashes [--format text|json|markdown] [ID...]
 *
 * Output choice only: app/crash_render.c renders each crash.
 */
#include "cli.h"
#include "app/crash_render.h"
#include "repro/store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

enum {
    FMT_TEXT = REPRO_APP_CRASH_TEXT,
    FMT_JSON = REPRO_APP_CRASH_JSON,
    FMT_MD = REPRO_APP_CRASH_MARKDOWN
};

struct crashes_ctx {
    struct repro_store *store;
    int format;
    struct repro_buf out;
    struct repro_error *err;
    int n;
};

static int show_one(void *vctx, int64_t id)
{
    struct crashes_ctx *x = vctx;
    int rc;

    repro_buf_reset(&x->out);
    rc = repro_app_crash_render(x->store, id, x->format, &x->out, x->err);
    if (rc)
        return rc;
    x->n++;
    return cli_write_out(x->out.data, x->out.len) ? REPRO_E_IO : 0;
}

struct summary {
    struct repro_store *store;
    struct repro_buf *out;
    struct repro_error *err;
    size_t n;
};

static int summary_row(void *vctx, int64_t id)
{
    struct summary *sm = vctx;
    repro_buf_reset(sm->out);
    int rc = repro_app_crash_summary_row(sm->store, id, sm->n++ == 0, sm->out, sm->err);
    return rc ? rc : cli_write_out(sm->out->data, sm->out->len) ? REPRO_E_IO : 0;
}

int cmd_crashes(struct cli_global *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"format", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct crashes_ctx x;
    struct repro_error err = {0};
    int opt, rc = 0, i;

    memset(&x, 0, sizeof x);
    x.err = &err;
    optind = 1;
    while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case 'F':
            if (strcmp(optarg, "json") == 0)
                x.format = FMT_JSON;
            else if (strcmp(optarg, "markdown") == 0)
                x.format = FMT_MD;
            else if (strcmp(optarg, "text") != 0)
                return cli_usage_error("crashes", "--format: must be text, json or markdown, not '%s'",
                                       optarg);
            break;
        case 'h':
            printf("usage: repro crashes [--db PATH] [--format text|json|markdown] [ID...]\n"
                   "Shows recorded crashes (all, or the given ids): every thread's stack, the\n"
                   "crashing thread first, symbolized where possible, with the crash group\n"
                   "(same signature: count, first and last seen) and the open connections.\n");
            return EXIT_CLEAN;
        default:
            return EXIT_USAGE;
        }
    }
    for (i = optind; i < argc; i++)
        if (cli_parse_int(argv[i]) <= 0)
            return cli_usage_error("crashes", "crash ID must be a positive number, not '%s'",
                                   argv[i]);
    if (repro_store_open(g->db, REPRO_STORE_READONLY, &x.store, &err) != REPRO_OK)
        return cli_fail(&err);
    repro_buf_init(&x.out, 64 * 1024 * 1024);
    if (x.format == FMT_MD)
        rc = cli_write_out("## repro crash report\n\n", 23) ? REPRO_E_IO : 0;
    if (rc == 0 && x.format == FMT_MD) {
        /* a summary table above the stacks, for CI job summaries */
        struct summary sm = {x.store, &x.out, &err, 0};
        if (optind == argc)
            rc = repro_store_crash_ids(x.store, summary_row, &sm, &err);
        for (i = optind; i < argc && rc == 0; i++)
            rc = summary_row(&sm, cli_parse_int(argv[i]));
        if (rc == 0 && sm.n)
            rc = cli_write_out("\n", 1) ? REPRO_E_IO : 0;
    }
    if (optind == argc)
        rc = rc ? rc : repro_store_crash_ids(x.store, show_one, &x, &err);
    for (i = optind; i < argc && rc == 0; i++)
        rc = show_one(&x, cli_parse_int(argv[i]));
    if (rc == 0 && x.format == FMT_MD && x.n == 0)
        rc = cli_write_out("No crashes recorded.\n", 21) ? REPRO_E_IO : 0;
    else if (rc == 0 && x.n == 0)
        fprintf(stderr, "repro: no crashes recorded in '%s'\n", g->db);
    repro_buf_release(&x.out);
    repro_store_close(x.store);
    fflush(stdout);
    if (rc) {
        if (err.code == 0)
            repro_error_set(&err, rc, "cannot show crashes: %s", repro_strerror(rc));
        return cli_fail(&err);
    }
    return EXIT_CLEAN;
}
