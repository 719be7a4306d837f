/*
 * The repro command line: argument parsing, exit codes, output formats.
 * Nothing else lives in cli/: the work is done by the library.
 */
#ifndef REPRO_CLI_H
#define REPRO_CLI_H

#include "repro/core.h"

/* Exit codes (docs/exit-codes.md). */
enum {
    EXIT_CLEAN = 0,    /* success */
    EXIT_FINDINGS = 1, /* finished, with findings or input problems */
    EXIT_FATAL = 2,    /* error */
    EXIT_USAGE = 64    /* bad command line */
};

struct cli_global {
    const char *db; /* --db, else $REPRO_DB, else ./repro.db */
    const char *prog;
};

int cmd_capture(struct cli_global *g, int argc, char **argv);
int cmd_exchanges(struct cli_global *g, int argc, char **argv);
int cmd_show(struct cli_global *g, int argc, char **argv);
int cmd_demo(struct cli_global *g, int argc, char **argv);
int cmd_crashes(struct cli_global *g, int argc, char **argv);
int cmd_symbolize(struct cli_global *g, int argc, char **argv);

int cmd_ingest(struct cli_global *g, int argc, char **argv);
int cmd_run(struct cli_global *g, int argc, char **argv);
int cmd_addr2line(struct cli_global *g, int argc, char **argv);
int cmd_replay(struct cli_global *g, int argc, char **argv);
int cmd_replays(struct cli_global *g, int argc, char **argv);
int cmd_captures(struct cli_global *g, int argc, char **argv);

/*
 * Messages (docs/exit-codes.md): every error is one line on stderr that
 * starts with "repro: COMMAND: " (just "repro: " before a command is
 * known), then says what failed, the subject in quotes, then the cause.
 * main() names the command once with cli_set_command; nothing else prints
 * the prefix by hand.
 */
void cli_set_command(const char *name); /* borrowed: lives as long as argv */
/* Prints "repro: COMMAND: " and fmt to stderr; returns EXIT_FATAL. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints err's message (or its code's text) as cli_error; returns EXIT_FATAL. */
int cli_fail(const struct repro_error *err);
/* Prints a usage error, "repro: CMD: <msg>; see 'repro CMD --help'", and
 * returns EXIT_USAGE. A bad option value names the option first:
 * cli_usage_error("exchanges", "--status: needs a positive number, not '%s'", v). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* getopt_long with repro's messages: an unknown or ambiguous option, or a
 * missing value, is reported with cli_usage_error (argv[0] is the command
 * name) and returned as '?', so a command's `default: return EXIT_USAGE`
 * needs nothing more. shortopts as getopt_long's (a leading '+' works). */
struct option;
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);
/* --format text|json: sets *json; EXIT_USAGE (reported) for anything else. */
int cli_format_json(const char *cmd, const char *arg, int *json);
/* Checks that each of dirs (the values of option opt, e.g. "--debug-dir")
 * is a directory; reports the first that is not and returns EXIT_FATAL,
 * else 0. */
int cli_check_dirs(const char *opt, const char *const *dirs, size_t n);
/* Parses a non-negative integer option value; -1 on error. */
long long cli_parse_int(const char *s);
/* Writes b to stdout; returns 0 or -1 (EPIPE etc.). */
int cli_write_out(const void *p, size_t n);

/* The exchange filters of `repro exchanges`, shared by `repro replay`:
 * CLI_FILTER_LONGOPTS in the option table, cli_filter_option() in the
 * loop (1: handled, 0: not a filter, EXIT_USAGE: a bad value, reported). */
struct repro_exchange_filter;
#define CLI_OPT_METHOD 1100
#define CLI_OPT_PATH 1101
#define CLI_OPT_STATUS 1102
#define CLI_OPT_HOST 1103
#define CLI_OPT_CONN 1104
#define CLI_OPT_CAPTURE 1105
#define CLI_OPT_LIMIT 1106
#define CLI_OPT_ID 1107
#define CLI_OPT_SINCE 1108
#define CLI_OPT_UNTIL 1109
#define CLI_OPT_PATH_REGEX 1110
#define CLI_OPT_IDS 1111
#define CLI_FILTER_LONGOPTS                                                 \
    {"method", required_argument, NULL, CLI_OPT_METHOD},                    \
        {"path-prefix", required_argument, NULL, CLI_OPT_PATH},             \
        {"status", required_argument, NULL, CLI_OPT_STATUS},                \
        {"host", required_argument, NULL, CLI_OPT_HOST},                    \
        {"connection", required_argument, NULL, CLI_OPT_CONN},              \
        {"capture", required_argument, NULL, CLI_OPT_CAPTURE},              \
        {"limit", required_argument, NULL, CLI_OPT_LIMIT},                  \
        {"id", required_argument, NULL, CLI_OPT_ID},                        \
        {"since", required_argument, NULL, CLI_OPT_SINCE},                  \
        {"until", required_argument, NULL, CLI_OPT_UNTIL},                  \
        {"path-regex", required_argument, NULL, CLI_OPT_PATH_REGEX},        \
        {"ids", required_argument, NULL, CLI_OPT_IDS}
int cli_filter_option(const char *cmd, struct repro_exchange_filter *f, int opt, const char *arg);

/* Long options shared by every command. Returns 1 if opt was handled. */
int cli_common_option(struct cli_global *g, int opt, const char *arg);
#define CLI_OPT_DB 1000
#define CLI_OPT_TRACE 1001
#define CLI_OPT_VERBOSE 1002
#define CLI_COMMON_LONGOPTS                                                 \
    {"db", required_argument, NULL, CLI_OPT_DB},                            \
        {"trace", required_argument, NULL, CLI_OPT_TRACE},                  \
        {"verbose", no_argument, NULL, CLI_OPT_VERBOSE}

#endif
