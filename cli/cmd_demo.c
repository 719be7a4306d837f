/*
 * repro demo: the story on bundled data. For now (until live capture,
 * crash capture and replay land) it records the bundled golden capture of
 * curl against nginx into a fresh database and lists the exchanges.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef REPRO_FIXTURES_DIR
#define REPRO_FIXTURES_DIR "fixtures"
#endif

int cmd_demo(struct cli_global *g, int argc, char **argv)
{
    const char *dir = getenv("REPRO_FIXTURES");
    char pcap[1024];
    char *cap_argv[] = {"capture", "-r", pcap, NULL};
    char *list_argv[] = {"exchanges", NULL};
    int rc;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: repro demo [--db PATH]\n"
               "Records the bundled capture fixtures/capture/nginx_curl.pcap into the\n"
               "database and lists its exchanges.\n");
        return EXIT_CLEAN;
    }
    if (argc > 1)
        return cli_usage_error("demo", "unexpected argument '%s'", argv[1]);
    snprintf(pcap, sizeof pcap, "%s/capture/nginx_curl.pcap", dir ? dir : REPRO_FIXTURES_DIR);
    if (access(pcap, R_OK) != 0) {
        fprintf(stderr, "repro: cannot find the demo capture '%s' (set REPRO_FIXTURES)\n", pcap);
        return EXIT_FATAL;
    }
    printf("== repro capture -r %s --db %s\n", pcap, g->db);
    fflush(stdout);
    rc = cmd_capture(g, 3, cap_argv);
    if (rc == EXIT_FATAL || rc == EXIT_USAGE)
        return rc;
    printf("\n== repro exchanges --db %s\n", g->db);
    fflush(stdout);
    rc = cmd_exchanges(g, 1, list_argv);
    if (rc == EXIT_CLEAN)
        printf("\nNext: 'repro show ID --curl' prints a request as a curl command.\n");
    return rc;
}
