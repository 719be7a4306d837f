/*
 * repro ingest [--db PATH] DIR
 * repro ingest --core CORE --exe BINARY [--db PATH]
 *
 * The first form moves the crash records that librepro_crash.so wrote into
 * DIR into the database, the second imports a core file; app/ingest.c does
 * the work (and says how).
 *
 * Exit: 0 every record read whole and stored (a record may still be a
 * partial crash, for example a stack cut at 256 frames); 1 some records
 * damaged or of an unknown version (the rest stored); 2 fatal (database,
 * I/O); 64 usage. --core: 1 when the core gave a partial crash.
 */
#include "cli.h"
#include "app/ingest.h"

#include <getopt.h>
#include <stdio.h>

static void help(void)
{
    printf("usage: repro ingest [--db PATH] DIR\n"
           "       repro ingest --core CORE --exe BINARY [--db PATH]\n"
           "Moves the crash records that librepro_crash.so wrote into DIR (its\n"
           "REPRO_CRASH_DIR) into the database, oldest name first; a record is removed\n"
           "once it is stored. Damaged records are reported, stored as partial crashes\n"
           "when part of them is readable, and moved to DIR/damaged/.\n"
           "--core imports a core file of BINARY instead.\n"
           "Exit: 0 clean, 1 some records damaged (or a partial core), 2 error, 64 usage.\n");
}

static int ingest_dir(struct cli_global *g, const char *dir)
{
    struct repro_error err = {0};
    struct repro_app_ingest_result res;
    int rc = repro_app_ingest_dir(g->db, dir, stdout, stderr, &res, &err);

    if (rc)
        cli_fail(&err);
    if (res.n_records > 0)
        fprintf(stderr,
                "repro: ingest '%s': %u stored (%u partial), %u damaged, %u of an unknown "
                "version\n",
                dir, res.stored, res.partial, res.damaged, res.unsupported);
    if (rc)
        return EXIT_FATAL;
    return res.damaged || res.unsupported ? EXIT_FINDINGS : EXIT_CLEAN;
}

static int ingest_core(struct cli_global *g, const char *core, const char *exe)
{
    struct repro_error err = {0};
    int partial = 0;

    if (repro_app_ingest_core(g->db, core, exe, stdout, stderr, &partial, &err) != REPRO_OK)
        return cli_fail(&err);
    return partial ? EXIT_FINDINGS : EXIT_CLEAN;
}

int cmd_ingest(struct cli_global *g, int argc, char **argv)
{
    enum { O_CORE = 1, O_EXE };
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS,
                                             {"core", required_argument, NULL, O_CORE},
                                             {"exe", required_argument, NULL, O_EXE},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *core = NULL, *exe = NULL;
    int opt;

    optind = 1;
    while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case O_CORE: core = optarg; break;
        case O_EXE: exe = optarg; break;
        case 'h': help(); return EXIT_CLEAN;
        default: return EXIT_USAGE;
        }
    }
    if (core || exe) {
        if (core == NULL || exe == NULL)
            return cli_usage_error("ingest", "--core and --exe go together");
        if (optind < argc)
            return cli_usage_error("ingest", "--core takes no directory ('%s')", argv[optind]);
        return ingest_core(g, core, exe);
    }
    if (optind + 1 != argc)
        return cli_usage_error("ingest", "%s",
                               optind == argc ? "give the crash directory"
                                              : "give exactly one crash directory");
    return ingest_dir(g, argv[optind]);
}
