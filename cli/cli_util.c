/*
 * Helpers shared by the commands: errors to stderr (one format for all,
 * "repro: COMMAND: ..."), getopt's messages in that format, exit codes,
 * common options (--db, --trace, --verbose).
 */
#include "cli.h"
#include "repro/store.h"

#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *command; /* the command being run, for the prefix; NULL before */

/* The library's log lines in the same form: "repro: CMD: warning:
 * COMPONENT: ...". One fprintf per line: stdio locks the stream, so lines
 * from the writer or symbolizer threads never interleave. */
static void log_sink(enum repro_log_level level, const char *component, const char *line,
                     void *ctx)
{
    static const char *const names[] = {"error", "warning", "info", "debug", "trace"};
    (void)ctx;
    fprintf(stderr, "repro: %s: %s: %s: %s\n", command, names[level <= REPRO_LOG_TRACE ? level : 4],
            component, line);
}

void cli_set_command(const char *name)
{
    command = name;
    repro_log_set_sink(log_sink, NULL);
}

static void vmsg(const char *fmt, va_list ap)
{
    if (command)
        fprintf(stderr, "repro: %s: ", command);
    else
        fputs("repro: ", stderr);
    vfprintf(stderr, fmt, ap);
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FATAL;
}

int cli_fail(const struct repro_error *err)
{
    return cli_error("%s", err->msg[0] ? err->msg : repro_strerror(err->code));
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "repro: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see 'repro %s --help'\n", cmd);
    return EXIT_USAGE;
}

/* The long option that text ("--name" or "--name=value") names exactly,
 * else NULL; *n_prefix counts the options it abbreviates. */
static const struct option *long_named(const struct option *lo, const char *text,
                                       size_t *n_prefix)
{
    size_t len = strcspn(text + 2, "=");
    const struct option *exact = NULL;
    *n_prefix = 0;
    for (; lo && lo->name; lo++) {
        if (strncmp(lo->name, text + 2, len) != 0)
            continue;
        (*n_prefix)++;
        if (lo->name[len] == '\0')
            exact = lo;
    }
    return exact;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
    static char opts[128];
    const char *cmd = argv[0], *arg;
    size_t lead = strspn(shortopts, "+-"), n_prefix;
    const struct option *named;
    int opt;

    /* a ':' after any '+'/'-': a missing value comes back as ':' */
    snprintf(opts, sizeof opts, "%.*s:%s", (int)lead, shortopts, shortopts + lead);
    opterr = 0;
    opt = getopt_long(argc, argv, opts, longopts, NULL);
    if (opt != '?' && opt != ':')
        return opt;
    /* A long option is always a whole argument, the one just passed; a
     * short one may sit inside a cluster ("-qx"), so name it by optopt. */
    arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    named = strncmp(arg, "--", 2) == 0 ? long_named(longopts, arg, &n_prefix) : NULL;
    if (opt == ':') {
        if (named && named->val == optopt)
            cli_usage_error(cmd, "option '--%s' needs a value", named->name);
        else
            cli_usage_error(cmd, "option '-%c' needs a value", optopt);
    } else if (optopt == 0 && strncmp(arg, "--", 2) == 0) {
        int len = (int)strcspn(arg, "=");
        if (n_prefix > 1)
            cli_usage_error(cmd, "option '%.*s' is ambiguous", len, arg);
        else
            cli_usage_error(cmd, "unknown option '%.*s'", len, arg);
    } else if (named && named->val == optopt && named->has_arg == no_argument) {
        cli_usage_error(cmd, "option '--%s' takes no value", named->name);
    } else {
        cli_usage_error(cmd, "unknown option '-%c'", optopt);
    }
    return '?';
}

int cli_check_dirs(const char *opt, const char *const *dirs, size_t n)
{
    struct stat st;
    for (size_t i = 0; i < n; i++) {
        if (stat(dirs[i], &st) != 0)
            return cli_error("%s '%s': %s", opt, dirs[i], strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return cli_error("%s '%s': not a directory", opt, dirs[i]);
    }
    return 0;
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
            cli_error("--trace: unknown component '%s' (known: all,%s)", bad,
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

/* The ranges of --ids: one command runs per process, so one list. */
static struct repro_id_range filter_ids[REPRO_STORE_MAX_ID_RANGES];

/* --path-regex compiles here, so that its error names the option. */
static int check_regex(const char *cmd, const char *arg)
{
    regex_t re;
    char why[128];
    int rc = regcomp(&re, arg, REG_EXTENDED | REG_NOSUB);
    if (rc == 0) {
        regfree(&re);
        return 0;
    }
    regerror(rc, &re, why, sizeof why);
    return cli_usage_error(cmd, "--path-regex: cannot compile '%s': %s", arg, why);
}

int cli_filter_option(const char *cmd, struct repro_exchange_filter *f, int opt, const char *arg)
{
    long long v;
    switch (opt) {
    case CLI_OPT_METHOD: f->method = arg; return 1;
    case CLI_OPT_PATH: f->path_prefix = arg; return 1;
    case CLI_OPT_HOST: f->host = arg; return 1;
    case CLI_OPT_PATH_REGEX:
        f->path_regex = arg;
        return check_regex(cmd, arg) ? EXIT_USAGE : 1;
    case CLI_OPT_SINCE:
    case CLI_OPT_UNTIL:
        if (repro_time_parse(arg, opt == CLI_OPT_SINCE ? &f->since_us : &f->until_us) != REPRO_OK)
            return cli_usage_error(cmd,
                                   "--%s takes a UTC time 'YYYY-MM-DD HH:MM:SS[.frac]' or "
                                   "'@SECONDS', not '%s'",
                                   opt == CLI_OPT_SINCE ? "since" : "until", arg);
        return 1;
    case CLI_OPT_IDS: {
        int rc = repro_id_ranges_parse(arg, filter_ids, REPRO_STORE_MAX_ID_RANGES, &f->n_ids);
        if (rc == REPRO_E_LIMIT)
            return cli_usage_error(cmd, "--ids: at most %d ranges", REPRO_STORE_MAX_ID_RANGES);
        if (rc != REPRO_OK)
            return cli_usage_error(cmd, "--ids takes ids and ranges like 3,5-9, not '%s'", arg);
        f->ids = filter_ids;
        return 1;
    }
    case CLI_OPT_STATUS:
    case CLI_OPT_CONN:
    case CLI_OPT_CAPTURE:
    case CLI_OPT_LIMIT:
    case CLI_OPT_ID:
        if ((v = cli_parse_int(arg)) <= 0)
            return cli_usage_error(cmd, "--%s: needs a positive number, not '%s'",
                                   opt == CLI_OPT_STATUS    ? "status"
                                   : opt == CLI_OPT_CONN    ? "connection"
                                   : opt == CLI_OPT_CAPTURE ? "capture"
                                   : opt == CLI_OPT_ID      ? "id"
                                                            : "limit",
                                   arg);
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
        return cli_usage_error(cmd, "--format: must be text or json, not '%s'", arg);
    return 0;
}
