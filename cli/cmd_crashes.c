/*
 * repro crashes [--format text|json|markdown] [ID...]
 *
 * Text follows the sanitizer convention developers know
 * (`#N 0xPC in function file:line`), the crashing thread first; frames not
 * symbolized yet show (module+0xoffset). JSON Lines carry the fields of the
 * design's contract; markdown is for CI job summaries.
 */
#include "cli.h"
#include "repro/crash.h"
#include "repro/store.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum { FMT_TEXT, FMT_JSON, FMT_MD };

struct crashes_ctx {
    struct repro_store *store;
    int format;
    struct repro_buf out;
    struct repro_error *err;
    int n;
};

static void fmt_time(char *buf, size_t n, int64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + strlen(buf), n - strlen(buf), ".%06lld UTC", (long long)(us % 1000000));
}

static const char *base_name(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : (path ? path : "?");
}

/* The threads in display order: the crashing one first. */
static size_t thread_at(const struct repro_crash *c, size_t k)
{
    size_t i, crashed = c->n_threads;
    for (i = 0; i < c->n_threads; i++)
        if (c->threads[i].crashed)
            crashed = i;
    if (crashed == c->n_threads)
        return k;
    if (k == 0)
        return crashed;
    return k <= crashed ? k - 1 : k;
}

static int frame_text(struct repro_buf *b, const struct repro_crash *c,
                      const struct repro_crash_frame *f, int n, int md)
{
    const struct repro_crash_module *m = f->module >= 0 ? &c->modules[f->module] : NULL;
    int rc = repro_buf_printf(b, "%s#%d 0x%016llx", md ? "    " : "    ", n, (unsigned long long)f->pc);
    if (f->function)
        rc |= repro_buf_printf(b, " in %s", f->function);
    if (f->file)
        rc |= repro_buf_printf(b, " %s:%d", f->file, f->line);
    if (f->inlined)
        rc |= repro_buf_printf(b, " (inlined)");
    if (m && (!f->function || !f->file))
        rc |= repro_buf_printf(b, " (%s+0x%llx)", base_name(m->path), (unsigned long long)f->offset);
    else if (!m && !f->function)
        rc |= repro_buf_printf(b, " (no module)");
    return rc | repro_buf_append(b, "\n", 1);
}

static int conn_text(struct repro_buf *b, const struct repro_crash_conn *k)
{
    char l[64], r[64];
    int af = k->family == 6 ? AF_INET6 : AF_INET;
    inet_ntop(af, k->local_ip, l, sizeof l);
    inet_ntop(af, k->remote_ip, r, sizeof r);
    return repro_buf_printf(b, "    fd %d: %s:%u <-> %s:%u (%s)\n", k->fd, l, k->local_port, r,
                            k->remote_port,
                            k->state == 1 ? "established" : k->state == 10 ? "listen" : "other");
}

static int text_crash(struct crashes_ctx *x, int64_t id, const struct repro_crash *c)
{
    struct repro_buf *b = &x->out;
    char t[48], sb[16];
    int64_t count, first, last;
    size_t k, i;
    int md = x->format == FMT_MD, rc;

    fmt_time(t, sizeof t, c->time_us);
    rc = repro_buf_printf(b, md ? "### crash %lld: %s in `%s`\n\n```\n" : "crash %lld: %s in %s\n",
                          (long long)id, repro_signal_name(c->signo, sb, sizeof sb),
                          c->executable ? c->executable : "?");
    rc |= repro_buf_printf(b, "  time %s, pid %d, tid %d, fault address 0x%llx, si_code %d, via %s%s%s\n",
                           t, c->pid, c->tid, (unsigned long long)c->fault_address, c->si_code,
                           c->source, c->service ? ", service " : "", c->service ? c->service : "");
    if (c->cmdline)
        rc |= repro_buf_printf(b, "  command: %s\n", c->cmdline);
    if (c->partial)
        rc |= repro_buf_printf(b, "  PARTIAL: %s\n", c->partial_reason);
    if (c->signature) {
        if (repro_store_crash_group(x->store, c->signature, &count, &first, &last, x->err))
            return REPRO_E_STORE;
        fmt_time(t, sizeof t, first);
        rc |= repro_buf_printf(b, "  signature: %s (%lld crash%s, first %s", c->signature,
                               (long long)count, count == 1 ? "" : "es", t);
        fmt_time(t, sizeof t, last);
        rc |= repro_buf_printf(b, ", last %s)\n", t);
    } else {
        rc |= repro_buf_printf(b, "  signature: not symbolized yet (repro symbolize %lld)\n",
                               (long long)id);
    }
    for (k = 0; k < c->n_threads; k++) {
        const struct repro_crash_thread *th = &c->threads[thread_at(c, k)];
        rc |= repro_buf_printf(b, "\nthread %d \"%s\"%s%s:\n", th->tid, th->name,
                               th->crashed ? " (crashed)" : "", th->partial ? " (partial)" : "");
        for (i = 0; i < th->n_frames; i++)
            rc |= frame_text(b, c, &th->frames[i], (int)i, md);
    }
    if (c->n_conns) {
        rc |= repro_buf_printf(b, "\nopen TCP connections:\n");
        for (i = 0; i < c->n_conns; i++)
            rc |= conn_text(b, &c->conns[i]);
    }
    (void)md; /* show_one closes the block after the requests in flight */
    return rc ? REPRO_E_NOMEM : REPRO_OK;
}

static int json_crash(struct crashes_ctx *x, int64_t id, const struct repro_crash *c)
{
    struct repro_buf *b = &x->out;
    char sb[16];
    size_t k, i;
    int rc = repro_buf_printf(b, "{\"id\":%lld,\"time\":", (long long)id);

    rc |= repro_json_time_us(b, c->time_us);
    rc |= repro_buf_printf(b, ",\"pid\":%d,\"tid\":%d,\"executable\":", c->pid, c->tid);
    rc |= repro_json_cstr(b, c->executable);
    rc |= repro_buf_printf(b, ",\"cmdline\":");
    rc |= repro_json_cstr(b, c->cmdline);
    rc |= repro_buf_printf(b, ",\"service\":");
    rc |= repro_json_cstr(b, c->service);
    rc |= repro_buf_printf(b, ",\"signal\":");
    rc |= repro_json_cstr(b, repro_signal_name(c->signo, sb, sizeof sb));
    rc |= repro_buf_printf(b, ",\"signo\":%d,\"si_code\":%d,\"fault_address\":\"0x%llx\",\"source\":",
                           c->signo, c->si_code, (unsigned long long)c->fault_address);
    rc |= repro_json_cstr(b, c->source);
    rc |= repro_buf_printf(b, ",\"partial\":%s,\"partial_reason\":", c->partial ? "true" : "false");
    rc |= repro_json_cstr(b, c->partial ? c->partial_reason : NULL);
    rc |= repro_buf_printf(b, ",\"signature\":");
    rc |= repro_json_cstr(b, c->signature);
    rc |= repro_buf_printf(b, ",\"threads\":[");
    for (k = 0; k < c->n_threads; k++) {
        const struct repro_crash_thread *th = &c->threads[thread_at(c, k)];
        rc |= repro_buf_printf(b, "%s{\"tid\":%d,\"name\":", k ? "," : "", th->tid);
        rc |= repro_json_cstr(b, th->name);
        rc |= repro_buf_printf(b, ",\"crashed\":%s,\"frames\":[", th->crashed ? "true" : "false");
        for (i = 0; i < th->n_frames; i++) {
            const struct repro_crash_frame *f = &th->frames[i];
            const struct repro_crash_module *m = f->module >= 0 ? &c->modules[f->module] : NULL;
            rc |= repro_buf_printf(b, "%s{\"pc\":\"0x%llx\",\"module\":", i ? "," : "",
                                   (unsigned long long)f->pc);
            rc |= repro_json_cstr(b, m ? m->path : NULL);
            rc |= repro_buf_printf(b, ",\"build_id\":");
            rc |= repro_json_cstr(b, m && m->build_id[0] ? m->build_id : NULL);
            if (m)
                rc |= repro_buf_printf(b, ",\"offset\":\"0x%llx\"", (unsigned long long)f->offset);
            else
                rc |= repro_buf_printf(b, ",\"offset\":null");
            rc |= repro_buf_printf(b, ",\"function\":");
            rc |= repro_json_cstr(b, f->function);
            rc |= repro_buf_printf(b, ",\"file\":");
            rc |= repro_json_cstr(b, f->file);
            if (f->line > 0)
                rc |= repro_buf_printf(b, ",\"line\":%d", f->line);
            else
                rc |= repro_buf_printf(b, ",\"line\":null");
            rc |= repro_buf_printf(b, ",\"inlined\":%s}", f->inlined ? "true" : "false");
        }
        rc |= repro_buf_printf(b, "]}");
    }
    rc |= repro_buf_printf(b, "],\"connections\":[");
    for (i = 0; i < c->n_conns; i++) {
        char l[64], r[64];
        int af = c->conns[i].family == 6 ? AF_INET6 : AF_INET;
        inet_ntop(af, c->conns[i].local_ip, l, sizeof l);
        inet_ntop(af, c->conns[i].remote_ip, r, sizeof r);
        rc |= repro_buf_printf(b, "%s{\"fd\":%d,\"local\":\"%s%s%s:%u\",\"remote\":\"%s%s%s:%u\",\"state\":%d}",
                               i ? "," : "", c->conns[i].fd, af == AF_INET6 ? "[" : "", l,
                               af == AF_INET6 ? "]" : "", c->conns[i].local_port,
                               af == AF_INET6 ? "[" : "", r, af == AF_INET6 ? "]" : "",
                               c->conns[i].remote_port, c->conns[i].state);
    }
    rc |= repro_buf_printf(b, "]}\n");
    return rc ? REPRO_E_NOMEM : REPRO_OK;
}

struct in_flight {
    struct repro_store *store;
    struct repro_buf *b;
    int json, n;
};

static int in_flight_row(void *vctx, const struct repro_exchange_row *r)
{
    struct in_flight *f = vctx;
    int rc;
    if (f->json)
        return repro_buf_printf(f->b, "%s%lld", f->n++ ? "," : "", (long long)r->id);
    rc = repro_buf_printf(f->b, "%s    exchange %lld: %s %s from %s%s\n",
                          f->n++ ? "" : "\nrequests in flight (the incident):\n", (long long)r->id,
                          r->method ? r->method : "-", r->uri ? r->uri : "-", r->client,
                          r->status ? "" : ", unanswered");
    return rc;
}

static int in_flight_id(void *vctx, int64_t xid)
{
    struct in_flight *f = vctx;
    struct repro_exchange_filter flt;
    memset(&flt, 0, sizeof flt);
    flt.id = xid;
    return repro_store_exchanges(f->store, &flt, 0, in_flight_row, f, NULL);
}

/* Appends the exchanges in flight at the crash (text lines or a JSON
 * array's members). */
static int append_in_flight(struct crashes_ctx *x, int64_t id, int json)
{
    struct in_flight f = {x->store, &x->out, json, 0};
    return repro_store_crash_in_flight(x->store, id, in_flight_id, &f, x->err);
}

static int show_one(void *vctx, int64_t id)
{
    struct crashes_ctx *x = vctx;
    struct repro_crash *c = NULL;
    int rc = repro_store_crash_load(x->store, id, &c, x->err);

    if (rc)
        return rc;
    repro_buf_reset(&x->out);
    rc = x->format == FMT_JSON ? json_crash(x, id, c) : text_crash(x, id, c);
    repro_crash_free(c);
    if (rc)
        return rc;
    if (x->format == FMT_JSON) {
        /* replace the closing "}\n" with the in-flight list */
        x->out.len -= 2;
        rc = repro_buf_printf(&x->out, ",\"in_flight\":[");
        rc = rc ? rc : append_in_flight(x, id, 1);
        rc = rc ? rc : repro_buf_printf(&x->out, "]}\n");
    } else {
        rc = append_in_flight(x, id, 0);
        if (rc == REPRO_OK)
            rc = repro_buf_printf(&x->out, x->format == FMT_MD ? "```\n\n" : "\n");
    }
    if (rc)
        return rc;
    x->n++;
    return cli_write_out(x->out.data, x->out.len) ? REPRO_E_IO : 0;
}

int cmd_crashes(struct cli_global *g, int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"format", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct crashes_ctx x;
    struct repro_error err = {0};
    int opt, rc = 0, i;

    memset(&x, 0, sizeof x);
    x.err = &err;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_common_option(g, opt, optarg))
            continue;
        switch (opt) {
        case 'F':
            if (strcmp(optarg, "json") == 0)
                x.format = FMT_JSON;
            else if (strcmp(optarg, "markdown") == 0)
                x.format = FMT_MD;
            else if (strcmp(optarg, "text") != 0)
                return cli_usage_error("crashes", "--format is text, json or markdown, not '%s'",
                                       optarg);
            break;
        case 'h':
            printf("usage: repro crashes [--db PATH] [--format text|json|markdown] [ID...]\n"
                   "Shows recorded crashes (all, or the given ids): every thread's stack, the\n"
                   "crashing thread first, symbolized where possible, with the crash group\n"
                   "(same signature: count, first and last seen) and the open connections.\n");
            return EXIT_CLEAN;
        default:
            return EXIT_USAGE;
        }
    }
    for (i = optind; i < argc; i++)
        if (cli_parse_int(argv[i]) <= 0)
            return cli_usage_error("crashes", "crash ID must be a positive number, not '%s'",
                                   argv[i]);
    if (repro_store_open(g->db, REPRO_STORE_READONLY, &x.store, &err) != REPRO_OK)
        return cli_fail(&err);
    repro_buf_init(&x.out, 64 * 1024 * 1024);
    if (x.format == FMT_MD)
        rc = cli_write_out("## repro crash report\n\n", 23) ? REPRO_E_IO : 0;
    if (optind == argc)
        rc = rc ? rc : repro_store_crash_ids(x.store, show_one, &x, &err);
    for (i = optind; i < argc && rc == 0; i++)
        rc = show_one(&x, cli_parse_int(argv[i]));
    if (rc == 0 && x.format == FMT_MD && x.n == 0)
        rc = cli_write_out("No crashes recorded.\n", 21) ? REPRO_E_IO : 0;
    repro_buf_release(&x.out);
    repro_store_close(x.store);
    fflush(stdout);
    if (rc) {
        if (err.code == 0)
            repro_error_set(&err, rc, "cannot show crashes: %s", repro_strerror(rc));
        return cli_fail(&err);
    }
    return EXIT_CLEAN;
}
