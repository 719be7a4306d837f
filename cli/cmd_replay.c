/*
 * repro replay --target HOST:PORT [--speed X|max] [--rate R]
 *              [--connections N] [--loop N] [--timeout MS] [filters]
 *              [--methods LIST] [--baseline HOST:PORT] [--no-correlate]
 *              [--ignore-header H]... [--ignore-json-path P]... [--mask RE]...
 *              [--report FILE.json] [--junit FILE.xml] [--fail-on LIST]
 *              [--allow-production-target] [--dry-run]
 */
#include "cli.h"
#include "app/replay_run.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RULES 64

static void help(void)
{
    printf(
        "usage: repro replay --target HOST:PORT [options] [filters]\n"
        "Sends recorded requests to a staging target on their recorded schedule, in causal\n"
        "order, over the recorded connections, and compares every response with the\n"
        "recorded one (docs/replay.md).\n"
        "  --speed X|max          pace: 1 as recorded (default), 2 twice as fast, max\n"
        "  --rate R               at most R requests per second\n"
        "  --connections N        at most N connections open at once\n"
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
        "filters (as for 'repro exchanges'): --method M --path-prefix P --status N --host H\n"
        "  --connection ID --capture ID --id ID --limit N\n"
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
        O_NOCORR, O_IGN_H, O_IGN_J, O_MASK, O_REPORT, O_JUNIT, O_FAIL_ON, O_ALLOW, O_DRY
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *ign_h[MAX_RULES], *ign_j[MAX_RULES], *masks[MAX_RULES];
    struct repro_app_replay_opts o;
    struct repro_app_replay_result res;
    struct repro_error err = {0};
    int opt, rc, fail_on = -1;
    long long v;
    char *end;

    memset(&o, 0, sizeof o);
    o.speed = 1.0;
    o.rules.ignore_headers = ign_h;
    o.rules.ignore_json_paths = ign_j;
    o.rules.masks = masks;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        if ((rc = cli_filter_option("replay", &o.filter, opt, optarg)) != 0) {
            if (rc == EXIT_USAGE)
                return rc;
            continue;
        }
        switch (opt) {
        case O_TARGET: o.target = optarg; break;
        case O_BASELINE: o.baseline = optarg; break;
        case O_METHODS: o.methods = optarg; break;
        case O_NOCORR: o.no_correlate = 1; break;
        case O_ALLOW: o.allow_production_target = 1; break;
        case O_DRY: o.dry_run = 1; break;
        case O_REPORT: o.report_json = optarg; break;
        case O_JUNIT: o.junit = optarg; break;
        case O_SPEED:
            if (strcmp(optarg, "max") == 0) {
                o.speed = 0;
                break;
            }
            o.speed = strtod(optarg, &end);
            if (*end || !(o.speed > 0) || o.speed > 1e6)
                return cli_usage_error("replay", "--speed is a factor > 0 or 'max', not '%s'", optarg);
            break;
        case O_RATE:
            o.rate = strtod(optarg, &end);
            if (*end || !(o.rate > 0))
                return cli_usage_error("replay", "--rate is requests per second > 0, not '%s'", optarg);
            break;
        case O_CONNS:
        case O_LOOP:
        case O_TIMEOUT:
            if ((v = cli_parse_int(optarg)) <= 0 || v > 100000000)
                return cli_usage_error("replay", "option needs a positive number, not '%s'", optarg);
            if (opt == O_CONNS) o.connections = (unsigned)v;
            else if (opt == O_LOOP) o.loops = (unsigned)v;
            else o.timeout_ms = (int)v;
            break;
        case O_IGN_H:
        case O_IGN_J:
        case O_MASK: {
            size_t *n = opt == O_IGN_H ? &o.rules.n_ignore_headers
                        : opt == O_IGN_J ? &o.rules.n_ignore_json_paths
                                         : &o.rules.n_masks;
            const char **a = opt == O_IGN_H ? ign_h : opt == O_IGN_J ? ign_j : masks;
            if (*n == MAX_RULES)
                return cli_usage_error("replay", "at most %d rules of each kind", MAX_RULES);
            a[(*n)++] = optarg;
            break;
        }
        case O_FAIL_ON:
            if ((fail_on = parse_fail_on(optarg)) < 0)
                return cli_usage_error("replay",
                                       "--fail-on takes mismatch,error,timeout,crash,unanswered, "
                                       "not '%s'",
                                       optarg);
            break;
        case 'h': help(); return EXIT_CLEAN;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("replay", "unexpected argument '%s'", argv[optind]);
    if (!o.target)
        return cli_usage_error("replay", "--target HOST:PORT is required");
    if (fail_on < 0)
        fail_on = 1 << REPRO_VERDICT_MISMATCH | 1 << REPRO_VERDICT_ERROR |
                  1 << REPRO_VERDICT_TIMEOUT | 1 << REPRO_VERDICT_CRASH;
    o.db = g->db;
    o.out = o.dry_run ? stdout : stderr;
    if (repro_app_replay(&o, &res, &err) != REPRO_OK)
        return cli_fail(&err);
    if (o.dry_run)
        return EXIT_CLEAN;
    for (int k = 0; k < REPRO_VERDICT__COUNT; k++)
        if ((fail_on & (1 << k)) && res.sum.verdicts[k])
            return EXIT_FINDINGS;
    return EXIT_CLEAN;
}
