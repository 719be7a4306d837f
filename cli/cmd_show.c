/*
 * repro show ID [--raw | --curl | --json]
 *
 * --curl prints a runnable curl command that sends the recorded request
 * (redacted values stay redacted) to the host it was sent to; chunked
 * request bodies are de-chunked and sent with --data-binary. When the
 * stored request body is shorter than the one on the wire (cut at the
 * capture's --max-body cap, or lost to a gap or the end of the capture),
 * the command still sends what was stored, but a shell comment above it
 * and a warning on stderr say where the body was cut, and the exit code
 * is 1.
 */
#include "cli.h"
#include "app/exchange_render.h"
#include "app/exchange_show.h"
#include "repro/store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

enum { MODE_TEXT, MODE_RAW, MODE_CURL, MODE_JSON };

struct show_ctx {
    int mode;
    int found;
    int body_cut; /* --curl: the request body sent is not the whole body */
    struct repro_buf out;
};

static int show_row(void *vctx, const struct repro_exchange_row *r)
{
    struct show_ctx *ctx = vctx;
    int rc;

    ctx->found = 1;
    switch (ctx->mode) {
    case MODE_RAW:
        rc = repro_buf_append(&ctx->out, r->request.ptr, r->request.len);
        REPRO_TRY(rc, repro_buf_append(&ctx->out, r->response.ptr, r->response.len));
        break;
    case MODE_CURL:
        rc = repro_app_exchange_curl(&ctx->out, r, stderr, &ctx->body_cut);
        break;
    case MODE_JSON:
        rc = repro_app_exchange_json(&ctx->out, r, 1);
        REPRO_TRY(rc, repro_buf_append(&ctx->out, "\n", 1));
        break;
    default:
        rc = repro_app_exchange_text_view(&ctx->out, r);
    }
    if (rc)
        return rc;
    return cli_write_out(ctx->out.data, ctx->out.len) ? REPRO_E_IO : 0;
}

int cmd_show(struct cli_global *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"raw", no_argument, NULL, 'r'},
        {"curl", no_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct show_ctx ctx;
    struct repro_exchange_filter f;
    struct repro_store *store = NULL;
    struct repro_error err = {0};
    long long id;
    int opt, rc;

    memset(&ctx, 0, sizeof ctx);
    memset(&f, 0, sizeof f);
    optind = 1;
    while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case 'r': ctx.mode = MODE_RAW; break;
        case 'c': ctx.mode = MODE_CURL; break;
        case 'j': ctx.mode = MODE_JSON; break;
        case 'h':
            printf("usage: repro show [--db PATH] ID [--raw | --curl | --json]\n"
                   "Shows one exchange: a readable view (default), the raw request and\n"
                   "response bytes (--raw), a runnable curl command for the request (--curl),\n"
                   "or one JSON object with the raw bytes as strings (--json).\n"
                   "--curl exits 1, with a warning, when the stored request body was cut.\n");
            return EXIT_CLEAN;
        default: return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("show", "give exactly one exchange ID");
    if ((id = cli_parse_int(argv[optind])) <= 0)
        return cli_usage_error("show", "exchange ID must be a positive number, not '%s'", argv[optind]);
    f.id = id;
    if (repro_store_open(g->db, REPRO_STORE_READONLY, &store, &err) != REPRO_OK)
        return cli_fail(&err);
    repro_buf_init(&ctx.out, (size_t)1 << 30);
    rc = repro_store_exchanges(store, &f, 1, show_row, &ctx, &err);
    repro_buf_release(&ctx.out);
    repro_store_close(store);
    fflush(stdout);
    if (rc == REPRO_E_MALFORMED || (rc == 0 && ctx.body_cut))
        return EXIT_FINDINGS;
    if (rc) {
        if (err.code == 0)
            repro_error_set(&err, rc, "cannot show exchange %lld: %s", id, repro_strerror(rc));
        return cli_fail(&err);
    }
    if (!ctx.found) {
        return cli_error("no exchange %lld in database '%s'", id, g->db);
    }
    return EXIT_CLEAN;
}
