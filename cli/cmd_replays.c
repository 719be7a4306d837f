/*
 * repro replays [RUN] [--diff] [--format text|json]
 */
#include "cli.h"
#include "app/replay_render.h"
#include "repro/store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void help(void)
{
    printf("usage: repro replays [--db PATH] [--format text|json] [RUN [--diff]]\n"
           "Lists stored replay runs (newest last); with RUN only that run; with --diff\n"
           "every request of RUN that did not match, with its differences.\n");
}

int cmd_replays(struct cli_global *g, int argc, char **argv)
{
    enum { O_FORMAT = 1, O_DIFF };
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"format", required_argument, NULL, O_FORMAT},
        {"diff", no_argument, NULL, O_DIFF},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct repro_store *store = NULL;
    struct repro_error err = {0};
    int opt, json = 0, diff = 0, rc;
    long long run = 0;

    optind = 1;
    while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case O_FORMAT:
            if (cli_format_json("replays", optarg, &json))
                return EXIT_USAGE;
            break;
        case O_DIFF: diff = 1; break;
        case 'h': help(); return EXIT_CLEAN;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc && (run = cli_parse_int(argv[optind++])) <= 0)
        return cli_usage_error("replays", "RUN is a run id, not '%s'", argv[optind - 1]);
    if (optind < argc)
        return cli_usage_error("replays", "unexpected argument '%s'", argv[optind]);
    if (diff && run == 0)
        return cli_usage_error("replays", "--diff needs a RUN");
    if (diff && json)
        return cli_usage_error("replays", "--diff prints text; the JSON is in --report");
    if (repro_store_open(g->db, REPRO_STORE_READONLY, &store, &err) != REPRO_OK)
        return cli_fail(&err);
    rc = diff ? repro_app_replay_diff(store, run, stdout, &err)
              : repro_app_replay_runs(store, run, json, stdout, &err);
    repro_store_close(store);
    if (fflush(stdout) != 0 && rc == 0)
        rc = REPRO_E_IO;
    if (rc) {
        if (err.code == 0)
            repro_error_set(&err, rc, "cannot list replay runs: %s", repro_strerror(rc));
        return cli_fail(&err);
    }
    return EXIT_CLEAN;
}
