/*
 * Helpers shared by the commands: errors to stderr, exit codes, common
 * options (--db, --trace, --verbose).
 */
#include "cli.h"
#include "repro/store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const struct repro_error *err)
{
    fprintf(stderr, "repro: %s\n", err->msg[0] ? err->msg : repro_strerror(err->code));
    return EXIT_FATAL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "repro %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'repro %s --help')\n", cmd);
    return EXIT_USAGE;
}

long long cli_parse_int(const char *s)
{
    char *end;
    long long v;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 0)
        return -1;
    return v;
}

int cli_write_out(const void *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) == n)
        return 0;
    /* A reader that went away (| head) is not an error: stop quietly. */
    if (errno == EPIPE)
        exit(EXIT_CLEAN);
    return -1;
}

int cli_common_option(struct cli_global *g, int opt, const char *arg)
{
    switch (opt) {
    case CLI_OPT_DB:
        g->db = arg;
        return 1;
    case CLI_OPT_TRACE: {
        char bad[64];
        if (!repro_log_trace_valid(arg, bad, sizeof bad)) {
            fprintf(stderr, "repro: --trace: unknown component '%s' (known: all,%s)\n", bad,
                    repro_log_components);
            exit(EXIT_USAGE);
        }
        repro_log_set_trace(arg);
        return 1;
    }
    case CLI_OPT_VERBOSE:
        repro_log_set_level(REPRO_LOG_INFO);
        return 1;
    default:
        return 0;
    }
}

int cli_filter_option(const char *cmd, struct repro_exchange_filter *f, int opt, const char *arg)
{
    long long v;
    switch (opt) {
    case CLI_OPT_METHOD: f->method = arg; return 1;
    case CLI_OPT_PATH: f->path_prefix = arg; return 1;
    case CLI_OPT_HOST: f->host = arg; return 1;
    case CLI_OPT_STATUS:
    case CLI_OPT_CONN:
    case CLI_OPT_CAPTURE:
    case CLI_OPT_LIMIT:
    case CLI_OPT_ID:
        if ((v = cli_parse_int(arg)) <= 0)
            return cli_usage_error(cmd, "option needs a positive number, not '%s'", arg);
        if (opt == CLI_OPT_STATUS) f->status = (int)v;
        else if (opt == CLI_OPT_CONN) f->connection_id = v;
        else if (opt == CLI_OPT_CAPTURE) f->capture_id = v;
        else if (opt == CLI_OPT_ID) f->id = v;
        else f->limit = v;
        return 1;
    default:
        return 0;
    }
}

int cli_format_json(const char *cmd, const char *arg, int *json)
{
    if (strcmp(arg, "json") == 0)
        *json = 1;
    else if (strcmp(arg, "text") == 0)
        *json = 0;
    else
        return cli_usage_error(cmd, "--format is text or json, not '%s'", arg);
    return 0;
}
