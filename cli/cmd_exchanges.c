/*
 * repro exchanges [--format text|json] [--method M] [--path-prefix P]
 *                 [--path-regex RE] [--status N] [--host H] [--connection ID]
 *                 [--capture ID] [--id ID] [--ids LIST] [--since T] [--until T]
 *                 [--limit N]
 */
#include "cli.h"
#include "app/exchange_render.h"
#include "repro/store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

struct list_ctx {
    int json;
    struct repro_buf out;
    unsigned long n;
};

static int print_row(void *vctx, const struct repro_exchange_row *r)
{
    struct list_ctx *ctx = vctx;
    int rc;

    repro_buf_reset(&ctx->out);
    if (ctx->json) {
        rc = repro_app_exchange_json(&ctx->out, r, 0);
        REPRO_TRY(rc, repro_buf_append(&ctx->out, "\n", 1));
    } else {
        rc = repro_app_exchange_text(&ctx->out, r);
    }
    if (rc)
        return REPRO_E_NOMEM;
    ctx->n++;
    return cli_write_out(ctx->out.data, ctx->out.len) ? REPRO_E_IO : 0;
}

static void help(void)
{
    printf("usage: repro exchanges [--db PATH] [--format text|json] [--method M]\n"
           "                       [--path-prefix P] [--path-regex RE] [--status N] [--host H]\n"
           "                       [--connection ID] [--capture ID] [--id ID] [--ids LIST]\n"
           "                       [--since T] [--until T] [--limit N]\n"
           "Lists recorded exchanges in id order. --format json prints JSON Lines with\n"
           "the fields documented in docs/formats.md.\n"
           "  --path-regex RE   POSIX extended regex searched in the request target\n"
           "  --ids LIST        these ids and ranges, e.g. 3,5-9\n"
           "  --since T         requests at or after T: UTC 'YYYY-MM-DD HH:MM:SS[.frac]'\n"
           "                    (as listed) or '@SECONDS' since the epoch\n"
           "  --until T         requests before T\n");
}

int cmd_exchanges(struct cli_global *g, int argc, char **argv)
{
    enum { O_FORMAT = 1 };
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        CLI_FILTER_LONGOPTS,
        {"format", required_argument, NULL, O_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct repro_exchange_filter f;
    struct list_ctx ctx;
    struct repro_store *store = NULL;
    struct repro_error err = {0};
    int opt, rc;

    memset(&f, 0, sizeof f);
    memset(&ctx, 0, sizeof ctx);
    optind = 1;
    while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        if ((rc = cli_filter_option("exchanges", &f, opt, optarg)) != 0) {
            if (rc == EXIT_USAGE)
                return rc;
            continue;
        }
        switch (opt) {
        case O_FORMAT:
            if (cli_format_json("exchanges", optarg, &ctx.json))
                return EXIT_USAGE;
            break;
        case 'h': help(); return EXIT_CLEAN;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("exchanges", "unexpected argument '%s'", argv[optind]);
    if (repro_store_open(g->db, REPRO_STORE_READONLY, &store, &err) != REPRO_OK)
        return cli_fail(&err);
    repro_buf_init(&ctx.out, 64 * 1024 * 1024);
    rc = repro_store_exchanges(store, &f, 0, print_row, &ctx, &err);
    repro_buf_release(&ctx.out);
    repro_store_close(store);
    if (fflush(stdout) != 0 && rc == 0)
        rc = REPRO_E_IO;
    if (rc) {
        if (err.code == 0)
            repro_error_set(&err, rc, "cannot list exchanges: %s", repro_strerror(rc));
        return cli_fail(&err);
    }
    if (ctx.n == 0) /* an empty listing says so, on stderr: stdout stays parseable */
        fprintf(stderr, "repro: no exchanges match in '%s'\n", g->db);
    return EXIT_CLEAN;
}
