/*
 * repro captures [--format text|json]
 */
#include "cli.h"
#include "app/capture_list.h"
#include "repro/store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

int cmd_captures(struct cli_global *g, int argc, char **argv)
{
    enum { O_FORMAT = 1 };
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"format", required_argument, NULL, O_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct repro_store *store = NULL;
    struct repro_error err = {0};
    int opt, json = 0, rc;
    size_t n = 0;

    optind = 1;
    while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case O_FORMAT:
            if (cli_format_json("captures", optarg, &json))
                return EXIT_USAGE;
            break;
        case 'h':
            printf("usage: repro captures [--db PATH] [--format text|json]\n"
                   "Lists the stored captures: id (for --capture N), time range, source and\n"
                   "filter, status, packets, exchanges, and what was cut at a cap.\n");
            return EXIT_CLEAN;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("captures", "unexpected argument '%s'", argv[optind]);
    if (repro_store_open(g->db, REPRO_STORE_READONLY, &store, &err) != REPRO_OK)
        return cli_fail(&err);
    rc = repro_app_captures(store, json, stdout, &n, &err);
    repro_store_close(store);
    if (fflush(stdout) != 0 && rc == 0)
        rc = REPRO_E_IO;
    if (rc) {
        if (err.code == 0)
            repro_error_set(&err, rc, "cannot list captures: %s", repro_strerror(rc));
        return cli_fail(&err);
    }
    if (n == 0)
        fprintf(stderr, "repro: no captures in '%s'\n", g->db);
    return EXIT_CLEAN;
}
