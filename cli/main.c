/*
 * repro: the staging/replay debugging harness. This file dispatches to the
 * subcommands; see README.md for each command with an example.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(struct cli_global *g, int argc, char **argv);
    const char *summary;
} commands[] = {
    {"capture", cmd_capture, "record HTTP exchanges from a pcap file or an interface"},
    {"captures", cmd_captures, "list stored captures (ids for --capture N)"},
    {"exchanges", cmd_exchanges, "list recorded exchanges"},
    {"show", cmd_show, "show one exchange (raw, as curl, as JSON)"},
    {"run", cmd_run, "run a command under the crash-recording supervisor"},
    {"ingest", cmd_ingest, "store crash records (librepro_crash.so) or a core file"},
    {"crashes", cmd_crashes, "show recorded crashes, symbolized and grouped"},
    {"symbolize", cmd_symbolize, "symbolize stored crashes (again), e.g. with debug files"},
    {"replay", cmd_replay, "send recorded requests to a staging target and compare the answers"},
    {"replays", cmd_replays, "stored replay runs, and what did not match in one"},
    {"addr2line", cmd_addr2line, "addresses to function, file:line (binutils-compatible)"},
    {"demo", cmd_demo, "run the whole story on bundled data"},
};

static void usage(FILE *f)
{
    size_t i;
    fprintf(f, "usage: repro [--db PATH] [--trace=COMPONENTS] [--verbose] COMMAND [ARGS...]\n"
               "or:    repro help [COMMAND] | --help | --version\n\ncommands:\n");
    for (i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nEvery command takes --db PATH (default: $REPRO_DB, else ./repro.db),\n"
               "--trace=COMPONENTS and --verbose. 'repro help COMMAND' (or 'repro COMMAND\n"
               "--help') for details; --version prints the version.\n"
               "Exit codes: 0 success, 1 findings or input problems, 2 error, 64 usage.\n"
               "Errors go to stderr as one line: 'repro: COMMAND: what failed: why'.\n");
}

int main(int argc, char **argv)
{
    struct cli_global g = {NULL, "repro"};
    const char *env_trace = getenv("REPRO_TRACE");
    int i = 1;
    size_t k;

    signal(SIGPIPE, SIG_IGN);
    /* A slow or hung debuginfod server must not stall symbolization for the
     * client's default 90 s: 5 s unless the user chose otherwise. */
    setenv("DEBUGINFOD_TIMEOUT", "5", 0);
    if (env_trace && *env_trace)
        repro_log_set_trace(env_trace);
    g.db = getenv("REPRO_DB");
    if (g.db == NULL || *g.db == '\0')
        g.db = "repro.db";
    /* Options before the command name. */
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            g.db = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--db=", 5) == 0) {
            g.db = argv[i] + 5;
            i++;
        } else if (strcmp(argv[i], "--verbose") == 0) {
            cli_common_option(&g, CLI_OPT_VERBOSE, NULL);
            i++;
        } else if (strncmp(argv[i], "--trace=", 8) == 0) {
            cli_common_option(&g, CLI_OPT_TRACE, argv[i] + 8);
            i++;
        } else if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc) {
            cli_common_option(&g, CLI_OPT_TRACE, argv[i + 1]);
            i += 2;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return EXIT_CLEAN;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("repro 0.1.0\n");
            return EXIT_CLEAN;
        } else if (strcmp(argv[i], "--db") == 0 || strcmp(argv[i], "--trace") == 0) {
            fprintf(stderr, "repro: option '%s' needs a value; see 'repro --help'\n", argv[i]);
            return EXIT_USAGE;
        } else {
            fprintf(stderr, "repro: unknown option '%s'; see 'repro --help'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* repro help [COMMAND]: the top usage, or the command's --help */
    if (strcmp(argv[i], "help") == 0) {
        static char help_opt[] = "--help";
        char *sub[3] = {NULL, help_opt, NULL};
        if (i + 1 >= argc) {
            usage(stdout);
            return EXIT_CLEAN;
        }
        if (i + 2 < argc) {
            fprintf(stderr, "repro: help: one command at a time; see 'repro --help'\n");
            return EXIT_USAGE;
        }
        sub[0] = argv[i + 1];
        for (k = 0; k < sizeof commands / sizeof *commands; k++)
            if (strcmp(sub[0], commands[k].name) == 0) {
                cli_set_command(commands[k].name);
                return commands[k].fn(&g, 2, sub);
            }
        fprintf(stderr, "repro: help: unknown command '%s'; see 'repro --help'\n", sub[0]);
        return EXIT_USAGE;
    }
    for (k = 0; k < sizeof commands / sizeof *commands; k++)
        if (strcmp(argv[i], commands[k].name) == 0) {
            cli_set_command(commands[k].name);
            return commands[k].fn(&g, argc - i, argv + i);
        }
    fprintf(stderr, "repro: unknown command '%s'; see 'repro --help'\n", argv[i]);
    return EXIT_USAGE;
}
