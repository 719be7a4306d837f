/*
 * repro capture (-i IFACE | -r FILE) [-f BPF] [--duration S] [--count N]
 *               [--redact-header NAME]... [--redact-query PARAM]...
 *               [--redact-json-field NAME]... [--no-default-redaction]
 *               [--keep-default NAME]...
 */
#include "cli.h"
#include "app/capture_run.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(void)
{
    printf("usage: repro capture (-i IFACE | -r FILE) [-f BPF] [--db PATH]\n"
           "                     [--duration S] [-c|--count N] [-s|--snaplen N]\n"
           "                     [--redact-header NAME]... [--redact-query PARAM]...\n"
           "                     [--redact-json-field NAME]... [--no-default-redaction]\n"
           "                     [--keep-default NAME]...\n"
           "                     [--max-body BYTES] [--idle-timeout S] [--quiet] [--force]\n"
           "                     [--buffer-mb N | -B KIB] [--metrics HOST:PORT]\n"
           "                     [--user NAME | -Z NAME] [--max-memory BYTES]\n"
           "                     [--max-db-mb N] [--retain DURATION]\n"
           "                     [--priority idle-first|normal] [--defer-max DURATION]\n"
           "                     [--spool-max BYTES]\n"
           "                     [BPF...]\n"
           "       repro capture -D     (the interfaces -i can open)\n"
           "Records HTTP/1.x exchanges from a pcap/pcapng file (-r, '-' for stdin) or a\n"
           "live interface (-i, needs root) into the database. The BPF filter (tcpdump\n"
           "syntax) is -f EXPR or, as with tcpdump, the words after the options\n"
           "('repro capture -i lo tcp port 80'). -c N stops after N packets. --buffer-mb N\n"
           "sizes the kernel's packet buffer for -i (default 32; tcpdump's -B in KiB works\n"
           "too). On a terminal a live capture shows a status line once a second; SIGUSR1\n"
           "prints one otherwise. SIGINT or SIGTERM stops it after storing what was read.\n"
           "--metrics 127.0.0.1:9100 serves its counters for Prometheus (docs/metrics.md).\n"
           "--priority idle-first (the default) runs parsing and storing on CPU time the\n"
           "host leaves idle, at normal priority only while they fall behind;\n"
           "--priority normal always at normal priority (docs/capture.md, \"CPU\").\n"
           "While the host's CPUs are saturated, idle-first puts parsing off for up to\n"
           "--defer-max (default 10s; 0: never) and spools the packets to an unnamed file\n"
           "next to the database, up to --spool-max (default 1G; 0: no spool).\n"
           "--user NAME (tcpdump's -Z) drops root once the interface is open. A live\n"
           "capture refuses a database in a directory others can write\n"
           "(docs/deployment.md). For long runs, --max-db-mb N and --retain 7d (s, m, h, d)\n"
           "delete the oldest exchanges first, a few hundred at a time (docs/store.md).\n"
           "Secrets are redacted by default (docs/capture.md): the headers\n"
           "Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key, X-Auth-Token,\n"
           "X-Csrf-Token, and fields such as password, token, api_key, session in JSON and\n"
           "form bodies and query strings; --keep-default NAME keeps one of those names,\n"
           "--no-default-redaction all of them. A summary goes to stderr. A file stored\n"
           "before (same name, size and time) is not stored again without --force.\n"
           "--max-memory (default 256M; suffixes k, M, G) bounds the agent's memory: a quarter\n"
           "for the packet queue, 16M for the store writer, the rest for connections and\n"
           "held bytes (docs/capture.md, \"Memory\").\n"
           "Exit: 0 clean, 1 input had problems (malformed, truncated, gaps), 2 error.\n");
}

#define MAX_RULES 64

struct capture_args {
    struct repro_source_opts src;
    double duration_s;
    long long count;
    int quiet, force, priority_normal, priority_set, defer_set;
    double defer_max_s; /* --defer-max */
    uint64_t spool_max_bytes; /* --spool-max */
    const char *metrics, *user;
    uint64_t max_db_bytes;
    int64_t retain_us;
    uint64_t max_memory; /* --max-memory, 0 for the default */
    struct repro_redact_rules rules;
    const char *headers[MAX_RULES], *params[MAX_RULES], *fields[MAX_RULES], *keep[MAX_RULES];
    struct repro_capture_limits limits;
    char filter[4096]; /* a trailing BPF expression, tcpdump style */
};

static int add_rule(const char **list, size_t *n, const char *v)
{
    if (*n >= MAX_RULES)
        return -1;
    list[(*n)++] = v;
    return 0;
}

static int parse_args(struct cli_global *g, int argc, char **argv, struct capture_args *a)
{
    enum { O_DURATION = 1, O_COUNT, O_RH, O_RQ, O_RJ, O_NODEF, O_SNAP, O_MAXBODY, O_IDLE, O_QUIET, O_KEEP, O_FORCE, O_BUFFER, O_METRICS, O_USER, O_MAXDB, O_RETAIN, O_MAXMEM, O_PRIORITY, O_DEFER, O_SPOOL };
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"interface", required_argument, NULL, 'i'},
        {"read", required_argument, NULL, 'r'},
        {"filter", required_argument, NULL, 'f'},
        {"duration", required_argument, NULL, O_DURATION},
        {"count", required_argument, NULL, O_COUNT},
        {"redact-header", required_argument, NULL, O_RH},
        {"redact-query", required_argument, NULL, O_RQ},
        {"redact-json-field", required_argument, NULL, O_RJ},
        {"no-default-redaction", no_argument, NULL, O_NODEF},
        {"keep-default", required_argument, NULL, O_KEEP},
        {"snaplen", required_argument, NULL, O_SNAP},
        {"max-body", required_argument, NULL, O_MAXBODY},
        {"idle-timeout", required_argument, NULL, O_IDLE},
        {"quiet", no_argument, NULL, O_QUIET},
        {"list-interfaces", no_argument, NULL, 'D'},
        {"force", no_argument, NULL, O_FORCE},
        {"buffer-mb", required_argument, NULL, O_BUFFER},
        {"metrics", required_argument, NULL, O_METRICS},
        {"user", required_argument, NULL, O_USER},
        {"max-db-mb", required_argument, NULL, O_MAXDB},
        {"retain", required_argument, NULL, O_RETAIN},
        {"max-memory", required_argument, NULL, O_MAXMEM},
        {"priority", required_argument, NULL, O_PRIORITY},
        {"defer-max", required_argument, NULL, O_DEFER},
        {"spool-max", required_argument, NULL, O_SPOOL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt, bad = 0;
    long long v;
    char *end;

    optind = 1;
    while ((opt = cli_getopt(argc, argv, "i:r:f:c:s:B:Z:Dh", longopts)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case 'i': a->src.iface = optarg; break;
        case 'r': a->src.file = optarg; break;
        case 'f': a->src.filter = optarg; break;
        case 'c':
        case O_COUNT:
            if ((a->count = cli_parse_int(optarg)) < 0)
                return cli_usage_error("capture", "--count: needs a number, not '%s'", optarg);
            break;
        case O_DURATION:
            a->duration_s = strtod(optarg, &end);
            if (*end != '\0' || a->duration_s <= 0)
                return cli_usage_error("capture", "--duration: needs seconds > 0, not '%s'", optarg);
            break;
        case O_RH: bad |= add_rule(a->headers, &a->rules.n_headers, optarg); break;
        case O_RQ: bad |= add_rule(a->params, &a->rules.n_query_params, optarg); break;
        case O_RJ: bad |= add_rule(a->fields, &a->rules.n_json_fields, optarg); break;
        case O_NODEF: a->rules.no_defaults = 1; break;
        case O_KEEP: bad |= add_rule(a->keep, &a->rules.n_keep, optarg); break;
        case 'D': {
            struct repro_error err = {0};
            if (repro_source_list_interfaces(stdout, &err) != REPRO_OK) {
                cli_fail(&err);
                return EXIT_FATAL;
            }
            return -1;
        }
        case 's':
        case O_SNAP:
            if ((v = cli_parse_int(optarg)) <= 0)
                return cli_usage_error("capture", "--snaplen: needs a positive number, not '%s'", optarg);
            a->src.snaplen = (int)v;
            break;
        case O_MAXBODY:
            if ((v = cli_parse_int(optarg)) < 0)
                return cli_usage_error("capture", "--max-body: needs a number of bytes, not '%s'", optarg);
            a->limits.http.max_store = (size_t)v;
            break;
        case O_IDLE:
            if ((v = cli_parse_int(optarg)) <= 0)
                return cli_usage_error("capture", "--idle-timeout: needs seconds > 0, not '%s'", optarg);
            a->limits.idle_timeout_us = v * 1000000;
            break;
        case 'B': /* tcpdump's -B is KiB */
        case O_BUFFER:
            if ((v = cli_parse_int(optarg)) <= 0 || v > (opt == 'B' ? 2096128 : 2047))
                return cli_usage_error("capture",
                                       "%s: needs a size in %s (at most 2047 MiB: libpcap "
                                       "takes an int of bytes), not '%s'",
                                       opt == 'B' ? "-B" : "--buffer-mb",
                                       opt == 'B' ? "KiB" : "MiB", optarg);
            a->src.buffer_kib = (int)(opt == 'B' ? v : v * 1024);
            break;
        case O_METRICS: a->metrics = optarg; break;
        case O_MAXDB:
            if ((v = cli_parse_int(optarg)) <= 0 || v > (INT64_C(1) << 40))
                return cli_usage_error("capture", "--max-db-mb: needs a positive number of MiB, "
                                                  "not '%s'", optarg);
            a->max_db_bytes = (uint64_t)v << 20;
            break;
        case O_RETAIN: {
            struct repro_error derr = {0};
            if (repro_duration_parse(optarg, &a->retain_us, &derr) != REPRO_OK ||
                a->retain_us <= 0)
                return cli_usage_error("capture", "--retain: needs a duration such as 90s, 30m, "
                                                  "12h or 7d, not '%s'", optarg);
            break;
        }
        case 'Z': /* tcpdump's spelling */
        case O_USER: a->user = optarg; break;
        case O_MAXMEM: {
            struct repro_error perr = {0};
            if (repro_size_parse(optarg, &a->max_memory, &perr) != REPRO_OK)
                return cli_usage_error("capture", "--max-memory: %s", perr.msg);
            if (a->max_memory < REPRO_APP_CAPTURE_MIN_MEMORY || a->max_memory > SIZE_MAX)
                return cli_usage_error("capture", "--max-memory must be at least 32M, not '%s'",
                                       optarg);
            break;
        }
        case O_PRIORITY:
            if (strcmp(optarg, "idle-first") == 0)
                a->priority_normal = 0;
            else if (strcmp(optarg, "normal") == 0)
                a->priority_normal = 1;
            else
                return cli_usage_error("capture", "--priority: idle-first or normal, not '%s'",
                                       optarg);
            a->priority_set = 1;
            break;
        case O_DEFER: {
            struct repro_error derr = {0};
            int64_t us;
            if (repro_duration_parse(optarg, &us, &derr) != REPRO_OK || us < 0)
                return cli_usage_error("capture", "--defer-max: needs a duration such as 10s or "
                                                  "2m, or 0, not '%s'", optarg);
            a->defer_max_s = (double)us / 1e6;
            a->defer_set = 1;
            break;
        }
        case O_SPOOL: {
            struct repro_error perr = {0};
            if (repro_size_parse(optarg, &a->spool_max_bytes, &perr) != REPRO_OK)
                return cli_usage_error("capture", "--spool-max: %s", perr.msg);
            /* a few of the reader's 1 MiB batches at least */
            if (a->spool_max_bytes != 0 && a->spool_max_bytes < ((uint64_t)16 << 20))
                return cli_usage_error("capture", "--spool-max must be 0 or at least 16M, not '%s'",
                                       optarg);
            a->defer_set = 1;
            break;
        }
        case O_QUIET: a->quiet = 1; break;
        case O_FORCE: a->force = 1; break;
        case 'h': help(); return -1;
        default: return EXIT_USAGE;
        }
    }
    if (bad)
        return cli_usage_error("capture", "at most %d redaction rules of each kind", MAX_RULES);
    if (optind < argc) {
        /* tcpdump's habit: the filter as the trailing words */
        size_t n = 0;
        if (a->src.filter)
            return cli_usage_error("capture", "a filter both with -f and after the options ('%s')",
                                   argv[optind]);
        for (int k = optind; k < argc; k++) {
            int w = snprintf(a->filter + n, sizeof a->filter - n, "%s%s", n ? " " : "", argv[k]);
            if (w < 0 || (size_t)w >= sizeof a->filter - n)
                return cli_usage_error("capture", "the filter expression is too long");
            n += (size_t)w;
        }
        a->src.filter = a->filter;
    }
    if ((a->src.file == NULL) == (a->src.iface == NULL))
        return cli_usage_error("capture", "give exactly one of -i IFACE and -r FILE");
    if (a->src.file && (a->metrics || a->user || a->priority_set || a->defer_set))
        return cli_usage_error("capture", "%s is for a live capture (-i), not -r",
                               a->metrics ? "--metrics" : a->user ? "--user"
                               : a->priority_set ? "--priority" : "--defer-max/--spool-max");
    a->rules.headers = a->headers;
    a->rules.query_params = a->params;
    a->rules.json_fields = a->fields;
    a->rules.keep = a->keep;
    return 0;
}

int cmd_capture(struct cli_global *g, int argc, char **argv)
{
    struct capture_args a;
    struct repro_app_capture_opts o;
    struct repro_app_capture_result res;
    struct repro_error err = {0};
    int rc, exit_code;

    memset(&a, 0, sizeof a);
    repro_capture_limits_default(&a.limits);
    a.defer_max_s = REPRO_APP_DEFER_MAX_S;
    a.spool_max_bytes = REPRO_APP_SPOOL_MAX_BYTES;
    rc = parse_args(g, argc, argv, &a);
    if (rc)
        return rc < 0 ? EXIT_CLEAN : rc;

    memset(&o, 0, sizeof o);
    o.src = a.src;
    o.db = g->db;
    o.duration_s = a.duration_s;
    o.count = a.count;
    o.rules = &a.rules;
    o.limits = &a.limits;
    o.log = stderr;
    o.force = a.force;
    o.quiet = a.quiet;
    o.metrics = a.metrics;
    o.user = a.user;
    o.priority_normal = a.priority_normal;
    o.defer_max_s = a.defer_max_s;
    o.spool_max_bytes = a.spool_max_bytes;
    o.max_db_bytes = a.max_db_bytes;
    o.retain_us = a.retain_us;
    o.max_memory = (size_t)a.max_memory;
    rc = repro_app_capture_run(&o, &res, &err);
    if (rc == 0 && res.already) {
        cli_error("'%s' is already stored as capture %lld (same name, size and time); "
                  "nothing stored (--force stores it again)",
                  a.src.file, (long long)res.already);
        repro_app_capture_result_release(&res);
        return EXIT_FINDINGS;
    }
    exit_code = rc ? EXIT_FATAL : res.problems ? EXIT_FINDINGS : EXIT_CLEAN;
    if (!a.quiet && res.cap) {
        fprintf(stderr, "repro: %s: ", res.source_name);
        repro_capture_print_summary(res.cap, stderr);
        if (res.kernel_drops)
            fprintf(stderr, "kernel dropped %llu packets (its buffer was full: raise --buffer-mb)\n",
                    (unsigned long long)res.kernel_drops);
        if (res.reader.iface_drops)
            fprintf(stderr,
                    "the interface dropped %llu frames before capture (its rx_dropped: "
                    "unknown protocols or VLANs, ring full on the card)\n",
                    (unsigned long long)res.reader.iface_drops);
        if (res.reader.queue_drops)
            fprintf(stderr,
                    "dropped %llu packets (%llu bytes) because parsing fell behind by the whole "
                    "queue\n",
                    (unsigned long long)res.reader.queue_drops,
                    (unsigned long long)res.reader.queue_drop_bytes);
        if (res.prio.active)
            fprintf(stderr,
                    "cpu: idle-first; raised %llu times (%llu of them to nice 0), %.1f s in all\n",
                    (unsigned long long)res.prio.raises,
                    (unsigned long long)res.prio.raises_far_behind,
                    (double)res.prio.raised_ns / 1e9);
        if (res.prio.deferrals)
            fprintf(stderr,
                    "deferred: parsing put off %llu times while the host was saturated, %.1f s in "
                    "all; spooled %llu batches, %.1f MiB at most\n",
                    (unsigned long long)res.prio.deferrals, (double)res.prio.deferred_ns / 1e9,
                    (unsigned long long)res.reader.spooled_batches,
                    repro_mib(res.reader.spool_peak_bytes));
        if (res.reader.spool_errors)
            fprintf(stderr,
                    "spool: %llu writes or reads failed (their packets are in the queue drops)\n",
                    (unsigned long long)res.reader.spool_errors);
        if (res.recovery.spools)
            fprintf(stderr,
                    "recovered: %llu packets (%.1f MiB) from %llu spool(s) left by agents that "
                    "did not finish; %.1f MiB of them damaged, skipped\n",
                    (unsigned long long)res.recovery.packets,
                    repro_mib(res.recovery.bytes),
                    (unsigned long long)res.recovery.spools,
                    repro_mib(res.recovery.skipped_bytes));
        fprintf(stderr, "stored in '%s' as capture %lld\n", g->db, (long long)res.capture_id);
    }
    if (rc)
        cli_fail(&err);
    repro_app_capture_result_release(&res);
    return exit_code;
}
