/*
 * repro capture (-i IFACE | -r FILE) [-f BPF] [--duration S] [--count N]
 *               [--redact-header NAME]... [--redact-query PARAM]...
 *               [--redact-json-field NAME]... [--no-default-redaction]
 *               [--keep-default NAME]...
 */
#include "cli.h"
#include "app/capture_rows.h"
#include "repro/capture.h"
#include "repro/store.h"

#include <getopt.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;
static struct repro_source *active_source;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    repro_source_break(active_source);
}

static void help(void)
{
    printf("usage: repro capture (-i IFACE | -r FILE) [-f BPF] [--db PATH]\n"
           "                     [--duration S] [--count N] [--snaplen N]\n"
           "                     [--redact-header NAME]... [--redact-query PARAM]...\n"
           "                     [--redact-json-field NAME]... [--no-default-redaction]\n"
           "                     [--keep-default NAME]...\n"
           "                     [--max-body BYTES] [--idle-timeout S] [--quiet]\n"
           "Records HTTP/1.x exchanges from a pcap/pcapng file (-r, '-' for stdin) or a\n"
           "live interface (-i, needs root) into the database. -f takes a BPF filter in\n"
           "tcpdump syntax. Secrets are redacted by default (docs/capture.md): the headers\n"
           "Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key, X-Auth-Token,\n"
           "X-Csrf-Token, and fields such as password, token, api_key, session in JSON and\n"
           "form bodies and query strings; --keep-default NAME keeps one of those names,\n"
           "--no-default-redaction all of them. A summary goes to stderr.\n"
           "Exit: 0 clean, 1 input had problems (malformed, truncated, gaps), 2 error.\n");
}

#define MAX_RULES 64

struct capture_args {
    struct repro_source_opts src;
    double duration_s;
    long long count;
    int quiet;
    struct repro_redact_rules rules;
    const char *headers[MAX_RULES], *params[MAX_RULES], *fields[MAX_RULES], *keep[MAX_RULES];
    struct repro_capture_limits limits;
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
    enum { O_DURATION = 1, O_COUNT, O_RH, O_RQ, O_RJ, O_NODEF, O_SNAP, O_MAXBODY, O_IDLE, O_QUIET, O_KEEP };
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt, bad = 0;
    long long v;
    char *end;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "i:r:f:c:h", longopts, NULL)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case 'i': a->src.iface = optarg; break;
        case 'r': a->src.file = optarg; break;
        case 'f': a->src.filter = optarg; break;
        case 'c':
        case O_COUNT:
            if ((a->count = cli_parse_int(optarg)) < 0)
                return cli_usage_error("capture", "--count needs a number, not '%s'", optarg);
            break;
        case O_DURATION:
            a->duration_s = strtod(optarg, &end);
            if (*end != '\0' || a->duration_s <= 0)
                return cli_usage_error("capture", "--duration needs seconds, not '%s'", optarg);
            break;
        case O_RH: bad |= add_rule(a->headers, &a->rules.n_headers, optarg); break;
        case O_RQ: bad |= add_rule(a->params, &a->rules.n_query_params, optarg); break;
        case O_RJ: bad |= add_rule(a->fields, &a->rules.n_json_fields, optarg); break;
        case O_NODEF: a->rules.no_defaults = 1; break;
        case O_KEEP: bad |= add_rule(a->keep, &a->rules.n_keep, optarg); break;
        case O_SNAP:
            if ((v = cli_parse_int(optarg)) <= 0)
                return cli_usage_error("capture", "--snaplen needs a number, not '%s'", optarg);
            a->src.snaplen = (int)v;
            break;
        case O_MAXBODY:
            if ((v = cli_parse_int(optarg)) < 0)
                return cli_usage_error("capture", "--max-body needs bytes, not '%s'", optarg);
            a->limits.http.max_store = (size_t)v;
            break;
        case O_IDLE:
            if ((v = cli_parse_int(optarg)) <= 0)
                return cli_usage_error("capture", "--idle-timeout needs seconds, not '%s'", optarg);
            a->limits.idle_timeout_us = v * 1000000;
            break;
        case O_QUIET: a->quiet = 1; break;
        case 'h': help(); return -1;
        default: return EXIT_USAGE;
        }
    }
    if (bad)
        return cli_usage_error("capture", "at most %d redaction rules of each kind", MAX_RULES);
    if (optind < argc)
        return cli_usage_error("capture", "unexpected argument '%s'", argv[optind]);
    if ((a->src.file == NULL) == (a->src.iface == NULL))
        return cli_usage_error("capture", "give exactly one of -i IFACE and -r FILE");
    a->rules.headers = a->headers;
    a->rules.query_params = a->params;
    a->rules.json_fields = a->fields;
    a->rules.keep = a->keep;
    return 0;
}

/* Runs the read loop; returns 1 if the input had a read error. */
static int read_loop(struct repro_source *src, struct repro_capture *cap,
                     struct repro_store_writer *writer,
                     const struct capture_args *a, struct repro_error *err, int *sink_rc)
{
    int dlt = repro_source_dlt(src);
    uint64_t n = 0, t0 = repro_mono_ns(), last_flush = t0;
    uint64_t limit_ns = a->duration_s > 0 ? (uint64_t)(a->duration_s * 1e9) : 0;
    struct repro_error rerr = {0};
    int draining = 0, break_seen = 0;

    for (;;) {
        const uint8_t *data;
        size_t caplen;
        int64_t ts;
        enum repro_source_next r;

        /* Asked to stop (signal or --duration): first take in what the
         * kernel has already captured, so the last exchanges are not lost. */
        if (!draining && (stop_requested || (limit_ns && repro_mono_ns() - t0 >= limit_ns))) {
            if (!a->src.iface || repro_source_drain(src, &rerr) != REPRO_OK)
                return 0;
            draining = 1;
        }
        r = repro_source_next(src, &data, &caplen, &ts, &rerr);
        if (r == REPRO_SOURCE_END && a->src.iface && stop_requested && !break_seen) {
            /* The signal handler's pcap_breakloop ended a blocking read:
             * that is the cue to drain, not the end of the data. */
            break_seen = 1;
            if (!draining && repro_source_drain(src, &rerr) != REPRO_OK)
                return 0;
            draining = 1;
            continue;
        }
        if (r == REPRO_SOURCE_END || (r == REPRO_SOURCE_TIMEOUT && draining))
            return 0;
        if (r == REPRO_SOURCE_ERROR) {
            fprintf(stderr, "repro: %s; what was read before is stored\n", rerr.msg);
            return 1;
        }
        if (r == REPRO_SOURCE_PACKET) {
            *sink_rc = repro_capture_packet(cap, dlt, data, caplen, ts, ++n, err);
            if (*sink_rc)
                return 0;
            if (a->count > 0 && (long long)n >= a->count)
                return 0;
        }
        /* Live captures commit at least once a second so readers see data. */
        if (a->src.iface && repro_mono_ns() - last_flush > 1000000000u) {
            last_flush = repro_mono_ns();
            if ((*sink_rc = repro_store_writer_flush(writer, err)) != 0)
                return 0;
        }
    }
}

int cmd_capture(struct cli_global *g, int argc, char **argv)
{
    struct capture_args a;
    struct repro_error err = {0};
    struct repro_source *src = NULL;
    struct repro_store *store = NULL;
    struct repro_capture *cap = NULL;
    struct repro_app_store_sink ss = {0};
    struct repro_capture_sink sink = repro_app_store_sink(&ss);
    struct repro_store_capture crow;
    const struct repro_capture_stats *st;
    int rc, read_error = 0, sink_rc = 0, exit_code = EXIT_FATAL;
    uint64_t drops = 0;

    memset(&a, 0, sizeof a);
    repro_capture_limits_default(&a.limits);
    rc = parse_args(g, argc, argv, &a);
    if (rc)
        return rc < 0 ? EXIT_CLEAN : rc;

    src = repro_source_open(&a.src, &err);
    if (src == NULL)
        return cli_fail(&err);
    if (repro_store_open(g->db, 0, &store, &err) != REPRO_OK)
        goto out;
    crow.source_kind = a.src.file ? "file" : "live";
    crow.source = a.src.file ? a.src.file : a.src.iface;
    crow.filter = a.src.filter;
    crow.link_type = repro_source_dlt(src);
    if (repro_store_capture_begin(store, &crow, &ss.capture_id, &err) != REPRO_OK)
        goto out;
    /* A file can be imported again: do not wait for the disk on each
     * commit. A live capture keeps full WAL durability. */
    if (a.src.file && repro_store_bulk_begin(store, &err) != REPRO_OK)
        goto out;
    ss.store = store;
    if (repro_store_writer_start(store,
                                 4 * (a.limits.http.max_store + a.limits.http.max_head) + 65536,
                                 &ss.writer, &err) != REPRO_OK)
        goto out;
    ss.err = &err;
    cap = repro_capture_new(&sink, &a.rules, &a.limits);
    if (cap == NULL) {
        repro_error_set(&err, REPRO_E_NOMEM, "cannot start the capture: out of memory");
        goto out;
    }
    repro_capture_set_source(cap, repro_source_name(src));
    if (a.src.iface) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        active_source = src;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        fprintf(stderr, "repro: listening on %s, link-type %s%s%s%s\n", a.src.iface,
                pcap_datalink_val_to_name(repro_source_dlt(src)) ? pcap_datalink_val_to_name(repro_source_dlt(src)) : "?",
                a.src.filter ? ", filter '" : "", a.src.filter ? a.src.filter : "",
                a.src.filter ? "'" : "");
        fflush(stderr);
    }
    read_error = read_loop(src, cap, ss.writer, &a, &err, &sink_rc);
    if (sink_rc == 0)
        sink_rc = repro_capture_finish(cap, &err);
    if (repro_store_writer_finish(ss.writer, &err) != REPRO_OK && sink_rc == 0)
        sink_rc = REPRO_E_STORE;
    ss.writer = NULL;
    if (a.src.iface) {
        drops = repro_source_kernel_drops(src);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        active_source = NULL;
    }
    st = repro_capture_stats(cap);
    if (sink_rc == 0 && a.src.file && repro_store_bulk_end(store, &err) != REPRO_OK)
        sink_rc = REPRO_E_STORE;
    if (sink_rc == 0) {
        int problems = read_error || st->errors > 0 || st->gaps > 0 || drops > 0;
        if (repro_app_capture_end(store, ss.capture_id, st, problems ? "partial" : "complete",
                                    &err) != REPRO_OK)
            goto out;
        exit_code = problems ? EXIT_FINDINGS : EXIT_CLEAN;
    }
    if (!a.quiet) {
        fprintf(stderr, "repro: %s: ", repro_source_name(src));
        repro_capture_print_summary(cap, stderr);
        if (drops)
            fprintf(stderr, "kernel dropped %llu packets\n", (unsigned long long)drops);
        fprintf(stderr, "stored in '%s' as capture %lld\n", g->db, (long long)ss.capture_id);
    }
out:
    if (err.code) {
        cli_fail(&err);
        exit_code = EXIT_FATAL;
        if (store && ss.capture_id && cap)
            repro_app_capture_end(store, ss.capture_id, repro_capture_stats(cap), "failed",
                                  NULL);
    }
    repro_store_writer_finish(ss.writer, NULL);
    repro_capture_free(cap);
    repro_store_close(store);
    repro_source_close(src);
    return exit_code;
}
