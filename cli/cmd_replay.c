/*
 * repro replay (--target HOST:PORT | --exec CMD) [--speed X|max] [--rate R]
 *              [--connections N] [--loop N] [--timeout MS] [filters]
 *              (filters: those of repro exchanges, --select-host for its --host)
 *              [--methods LIST] [--baseline HOST:PORT] [--no-correlate]
 *              [--ignore-header H]... [--ignore-json-path P]... [--mask RE]...
 *              [--report FILE.json] [--junit FILE.xml] [--fail-on LIST]
 *              [--allow-production-target] [--dry-run] [--quiet] [--realtime]
 *              [--host H] [--set-header 'N: V']... [--remove-header N]...
 *              [--rewrite-path FROM=TO]... [--set-query N=V]... [--set-cookie N=V]...
 *              [--set-json-field PATH=VALUE]...
 */
#include "cli.h"
#include "app/replay_run.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RULES 64

static void help(void)
{
    printf(
        "usage: repro replay (--target HOST:PORT | --exec CMD) [options] [filters]\n"
        "Sends recorded requests to a staging target on their recorded schedule, in causal\n"
        "order, over the recorded connections, and compares every response with the\n"
        "recorded one (docs/replay.md).\n"
        "  --exec CMD             run the staging build under the crash supervisor for the\n"
        "                         run ('{port}' in CMD: a free port, the target when\n"
        "                         --target is left out); a crash is the verdict 'crash'\n"
        "  --speed X|max          pace: 1 as recorded (default), 2 twice as fast, max\n"
        "  --rate R               at most R requests per second\n"
        "  --connections N        at most N connections open at once\n"
        "  --realtime             the sender under SCHED_FIFO when permitted (the summary\n"
        "                         says whether it was); it can starve a target on this host\n"
        "  --loop N               replay the selection N times\n"
        "  --timeout MS           per request (default 10000)\n"
        "  --methods LIST         only these methods, e.g. GET,HEAD\n"
        "  --baseline HOST:PORT   a known-good instance: what differs there is noise\n"
        "  --no-correlate         send recorded cookies, tokens and ids as they are\n"
        "  --ignore-header NAME   do not compare this header (repeatable)\n"
        "  --ignore-json-path P   do not compare this JSON path, e.g. '$.items[*].ts'\n"
        "  --mask REGEX           replace matches by <masked> on both sides first\n"
        "  --report FILE.json     the run's report (docs/formats.md)\n"
        "  --junit FILE.xml       one JUnit test case per request\n"
        "  --fail-on LIST         findings that make the exit code 1 (default\n"
        "                         mismatch,error,timeout,crash)\n"
        "  --allow-production-target  allow a target that served the recorded traffic\n"
        "  --dry-run              print what would be sent, when, and stop\n"
        "  --quiet                no live progress line (shown only when stderr is a\n"
        "                         terminal: sent/total, rate, verdicts, schedule p99)\n"
        "rewriting (after carried-over values; each repeatable but --host):\n"
        "  --host H               the Host header\n"
        "  --set-header 'N: V'    set a header (added when absent)\n"
        "  --remove-header N      remove a header\n"
        "  --rewrite-path FROM=TO replace a path prefix\n"
        "  --set-query N=V        set a query parameter (pass V encoded)\n"
        "  --set-cookie N=V       set a cookie (a redacted Cookie header becomes just these)\n"
        "  --set-json-field P=V   set a field of a JSON body, e.g. '$.password=\"s3cret\"'\n"
        "filters (as for 'repro exchanges', but --select-host H for its --host H):\n"
        "  --method M --path-prefix P --path-regex RE --status N --select-host H\n"
        "  --connection ID --capture ID --id ID --ids LIST --since T --until T --limit N\n"
        "Exit: 0 everything matched, 1 findings, 2 error, 64 usage.\n");
}

/* "mismatch,error" -> a bit per verdict; -1 on an unknown name. */
static int parse_fail_on(const char *s)
{
    int mask = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        int found = 0;
        for (int v = 0; v < REPRO_VERDICT__COUNT; v++)
            if (strlen(repro_verdict_name(v)) == len &&
                strncmp(s, repro_verdict_name(v), len) == 0) {
                mask |= 1 << v;
                found = 1;
            }
        if (!found)
            return -1;
        s += len + (s[len] == ',');
    }
    return mask;
}

int cmd_replay(struct cli_global *g, int argc, char **argv)
{
    enum {
        O_TARGET = 1, O_SPEED, O_RATE, O_CONNS, O_LOOP, O_TIMEOUT, O_METHODS, O_BASELINE,
        O_NOCORR, O_IGN_H, O_IGN_J, O_MASK, O_REPORT, O_JUNIT, O_FAIL_ON, O_ALLOW, O_DRY,
        O_HOSTHDR, O_SET_H, O_RM_H, O_PATH_RW, O_SET_Q, O_SET_C, O_SET_J, O_EXEC, O_QUIET, O_RT
    };
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        CLI_FILTER_LONGOPTS,
        {"target", required_argument, NULL, O_TARGET},
        {"speed", required_argument, NULL, O_SPEED},
        {"rate", required_argument, NULL, O_RATE},
        {"connections", required_argument, NULL, O_CONNS},
        {"loop", required_argument, NULL, O_LOOP},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"methods", required_argument, NULL, O_METHODS},
        {"baseline", required_argument, NULL, O_BASELINE},
        {"no-correlate", no_argument, NULL, O_NOCORR},
        {"ignore-header", required_argument, NULL, O_IGN_H},
        {"ignore-json-path", required_argument, NULL, O_IGN_J},
        {"mask", required_argument, NULL, O_MASK},
        {"report", required_argument, NULL, O_REPORT},
        {"junit", required_argument, NULL, O_JUNIT},
        {"fail-on", required_argument, NULL, O_FAIL_ON},
        {"allow-production-target", no_argument, NULL, O_ALLOW},
        {"dry-run", no_argument, NULL, O_DRY},
        {"quiet", no_argument, NULL, O_QUIET},
        {"realtime", no_argument, NULL, O_RT},
        {"select-host", required_argument, NULL, O_HOSTHDR},
        {"exec", required_argument, NULL, O_EXEC},
        {"set-header", required_argument, NULL, O_SET_H},
        {"remove-header", required_argument, NULL, O_RM_H},
        {"rewrite-path", required_argument, NULL, O_PATH_RW},
        {"set-query", required_argument, NULL, O_SET_Q},
        {"set-cookie", required_argument, NULL, O_SET_C},
        {"set-json-field", required_argument, NULL, O_SET_J},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *ign_h[MAX_RULES], *ign_j[MAX_RULES], *masks[MAX_RULES];
    const char *set_h[MAX_RULES], *rm_h[MAX_RULES], *paths[MAX_RULES], *set_q[MAX_RULES],
        *set_c[MAX_RULES], *set_j[MAX_RULES];
    struct repro_app_replay_opts o;
    struct repro_app_replay_result res;
    struct repro_error err = {0};
    int opt, rc, fail_on = -1, quiet = 0;
    long long v;
    char *end;

    memset(&o, 0, sizeof o);
    o.speed = 1.0;
    o.rules.ignore_headers = ign_h;
    o.rules.ignore_json_paths = ign_j;
    o.rules.masks = masks;
    o.rewrite.set_headers = set_h;
    o.rewrite.remove_headers = rm_h;
    o.rewrite.rewrite_paths = paths;
    o.rewrite.set_queries = set_q;
    o.rewrite.set_cookies = set_c;
    o.rewrite.set_json_fields = set_j;
    optind = 1;
    while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        /* --host rewrites Host here (the rewriting options); the
         * host filter of `repro exchanges` is --select-host */
        if (opt == CLI_OPT_HOST) {
            o.rewrite.host = optarg;
            continue;
        }
        if ((rc = cli_filter_option("replay", &o.filter, opt, optarg)) != 0) {
            if (rc == EXIT_USAGE)
                return rc;
            continue;
        }
        switch (opt) {
        case O_TARGET: o.target = optarg; break;
        case O_EXEC: o.exec = optarg; break;
        case O_BASELINE: o.baseline = optarg; break;
        case O_METHODS: o.methods = optarg; break;
        case O_NOCORR: o.no_correlate = 1; break;
        case O_ALLOW: o.allow_production_target = 1; break;
        case O_DRY: o.dry_run = 1; break;
        case O_QUIET: quiet = 1; break;
        case O_RT: o.realtime = 1; break;
        case O_REPORT: o.report_json = optarg; break;
        case O_JUNIT: o.junit = optarg; break;
        case O_SPEED:
            if (strcmp(optarg, "max") == 0) {
                o.speed = 0;
                break;
            }
            o.speed = strtod(optarg, &end);
            if (*end || !(o.speed > 0) || o.speed > 1e6)
                return cli_usage_error("replay", "--speed: must be a factor > 0 or 'max', not '%s'", optarg);
            break;
        case O_RATE:
            o.rate = strtod(optarg, &end);
            if (*end || !(o.rate > 0))
                return cli_usage_error("replay", "--rate: needs requests per second > 0, not '%s'", optarg);
            break;
        case O_CONNS:
        case O_LOOP:
        case O_TIMEOUT:
            if ((v = cli_parse_int(optarg)) <= 0 || v > 100000000)
                return cli_usage_error("replay", "--%s: needs a positive number, not '%s'",
                                       opt == O_CONNS ? "connections" : opt == O_LOOP ? "loop" : "timeout",
                                       optarg);
            if (opt == O_CONNS) o.connections = (unsigned)v;
            else if (opt == O_LOOP) o.loops = (unsigned)v;
            else o.timeout_ms = (int)v;
            break;
        case O_HOSTHDR: o.filter.host = optarg; break;
        case O_IGN_H:
        case O_IGN_J:
        case O_MASK:
        case O_SET_H:
        case O_RM_H:
        case O_PATH_RW:
        case O_SET_Q:
        case O_SET_C:
        case O_SET_J: {
            size_t *n = opt == O_IGN_H    ? &o.rules.n_ignore_headers
                        : opt == O_IGN_J  ? &o.rules.n_ignore_json_paths
                        : opt == O_MASK   ? &o.rules.n_masks
                        : opt == O_SET_H  ? &o.rewrite.n_set_headers
                        : opt == O_RM_H   ? &o.rewrite.n_remove_headers
                        : opt == O_PATH_RW ? &o.rewrite.n_rewrite_paths
                        : opt == O_SET_Q  ? &o.rewrite.n_set_queries
                        : opt == O_SET_C  ? &o.rewrite.n_set_cookies
                                          : &o.rewrite.n_set_json_fields;
            const char **a = opt == O_IGN_H    ? ign_h
                             : opt == O_IGN_J  ? ign_j
                             : opt == O_MASK   ? masks
                             : opt == O_SET_H  ? set_h
                             : opt == O_RM_H   ? rm_h
                             : opt == O_PATH_RW ? paths
                             : opt == O_SET_Q  ? set_q
                             : opt == O_SET_C  ? set_c
                                               : set_j;
            if (*n == MAX_RULES)
                return cli_usage_error("replay", "at most %d rules of each kind", MAX_RULES);
            a[(*n)++] = optarg;
            break;
        }
        case O_FAIL_ON:
            if ((fail_on = parse_fail_on(optarg)) < 0)
                return cli_usage_error("replay",
                                       "--fail-on: takes mismatch,error,timeout,crash,unanswered, "
                                       "not '%s'",
                                       optarg);
            break;
        case 'h': help(); return EXIT_CLEAN;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("replay", "unexpected argument '%s'", argv[optind]);
    if (!o.target && !o.exec)
        return cli_usage_error("replay", "--target HOST:PORT (or --exec CMD) is required");
    if (!o.target && o.dry_run)
        return cli_usage_error("replay", "--dry-run needs --target (it starts nothing)");
    if (fail_on < 0)
        fail_on = 1 << REPRO_VERDICT_MISMATCH | 1 << REPRO_VERDICT_ERROR |
                  1 << REPRO_VERDICT_TIMEOUT | 1 << REPRO_VERDICT_CRASH;
    o.db = g->db;
    o.out = o.dry_run ? stdout : stderr;
    /* the live line only for a person watching */
    o.progress = !quiet && !o.dry_run && isatty(STDERR_FILENO) ? stderr : NULL;
    /* the command line, stored with the run */
    char selection[2048] = "";
    for (int k = 1; k < argc; k++) {
        size_t used = strlen(selection);
        snprintf(selection + used, sizeof selection - used, "%s%s", used ? " " : "", argv[k]);
    }
    o.selection = selection;
    if (repro_app_replay(&o, &res, &err) != REPRO_OK)
        return cli_fail(&err);
    if (o.dry_run)
        return EXIT_CLEAN;
    for (int k = 0; k < REPRO_VERDICT__COUNT; k++)
        if ((fail_on & (1 << k)) && res.sum.verdicts[k])
            return EXIT_FINDINGS;
    return EXIT_CLEAN;
}
