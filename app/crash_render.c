/*
 * app/crash_render: a stored crash as `repro crashes` shows it. Text
 * follows the sanitizer convention developers know (`#N 0xPC in function
 * file:line`), the crashing thread first; frames not symbolized yet show
 * (module+0xoffset). JSON Lines carry the fields of the design's contract;
 * markdown is for CI job summaries. Each crash comes with its group (same
 * signature) and the requests that were in flight.
 */
#include "app/crash_render.h"

#include "app/crash_rows.h"
#include "repro/crash.h"

#include <stdio.h>
#include <string.h>

struct render {
    struct repro_store *store;
    int format;
    struct repro_buf out;
    struct repro_error *err;
};

static void fmt_time(char *buf, size_t n, int64_t us)
{
    repro_time_text(buf, n, us);
    snprintf(buf + strlen(buf), n - strlen(buf), " UTC");
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

/* label: "#5", or "#3-#250" for a collapsed run of count identical frames. */
static int frame_text(struct repro_buf *b, const struct repro_crash *c,
                      const struct repro_crash_frame *f, const char *label, size_t count)
{
    const struct repro_crash_module *m = f->module >= 0 ? &c->modules[f->module] : NULL;
    int rc = repro_buf_printf(b, "    %s 0x%016llx", label, (unsigned long long)f->pc);
    if (f->function)
        REPRO_TRY(rc, repro_buf_printf(b, " in %s", f->function));
    if (f->file)
        REPRO_TRY(rc, repro_buf_printf(b, " %s:%d", f->file, f->line));
    if (f->inlined)
        REPRO_TRY(rc, repro_buf_printf(b, " (inlined)"));
    if (m && (!f->function || !f->file))
        REPRO_TRY(rc, repro_buf_printf(b, " (%s+0x%llx)", base_name(m->path), (unsigned long long)f->offset));
    else if (!m && !f->function)
        REPRO_TRY(rc, repro_buf_printf(b, " (no module)"));
    if (count > 1)
        REPRO_TRY(rc, repro_buf_printf(b, " (\xc3\x97%zu)", count));
    REPRO_TRY(rc, repro_buf_append(b, "\n", 1));
    return rc;
}

static int same_frame(const struct repro_crash_frame *a, const struct repro_crash_frame *b)
{
    return a->pc == b->pc && a->inlined == b->inlined && a->module == b->module &&
           a->line == b->line && ((!a->function && !b->function) ||
                                  (a->function && b->function && !strcmp(a->function, b->function)));
}

/* A thread's frames; runs of 3 or more identical frames (a recursion that
 * overflowed the stack) are one line, "#3-#250 ... (x248)". JSON keeps
 * every frame. */
static int frames_text(struct repro_buf *b, const struct repro_crash *c,
                       const struct repro_crash_thread *th)
{
    int rc = REPRO_OK;
    char label[48];
    for (size_t i = 0; i < th->n_frames && rc == REPRO_OK;) {
        size_t j = i + 1;
        while (j < th->n_frames && same_frame(&th->frames[i], &th->frames[j]))
            j++;
        if (j - i >= 3) {
            snprintf(label, sizeof label, "#%zu-#%zu", i, j - 1);
            rc = frame_text(b, c, &th->frames[i], label, j - i);
            i = j;
        } else {
            snprintf(label, sizeof label, "#%zu", i);
            rc = frame_text(b, c, &th->frames[i], label, 1);
            i++;
        }
    }
    return rc;
}

static int conn_text(struct repro_buf *b, const struct repro_crash_conn *k)
{
    char l[REPRO_IP_TEXT_MAX], r[REPRO_IP_TEXT_MAX];
    repro_ip_format(l, sizeof l, k->family, k->local_ip);
    repro_ip_format(r, sizeof r, k->family, k->remote_ip);
    return repro_buf_printf(b, "    fd %d: %s:%u <-> %s:%u (%s)\n", k->fd, l, k->local_port, r,
                            k->remote_port,
                            k->state == 1 ? "established" : k->state == 10 ? "listen" : "other");
}

static int text_crash(struct render *x, int64_t id, const struct repro_crash *c)
{
    struct repro_buf *b = &x->out;
    char t[48], sb[16];
    int64_t count, first, last;
    size_t k, i;
    int md = x->format == REPRO_APP_CRASH_MARKDOWN, rc;

    fmt_time(t, sizeof t, c->time_us);
    rc = repro_buf_printf(b, md ? "### crash %lld: %s in `%s`\n\n```\n" : "crash %lld: %s in %s\n",
                          (long long)id, repro_signal_name(c->signo, sb, sizeof sb),
                          c->executable ? c->executable : "?");
    REPRO_TRY(rc, repro_buf_printf(b, "  time %s, pid %d, tid %d, fault address 0x%llx, si_code %d, via %s%s%s\n",
                           t, c->pid, c->tid, (unsigned long long)c->fault_address, c->si_code,
                           c->source, c->service ? ", service " : "", c->service ? c->service : ""));
    if (c->cmdline)
        REPRO_TRY(rc, repro_buf_printf(b, "  command: %s\n", c->cmdline));
    if (c->partial)
        REPRO_TRY(rc, repro_buf_printf(b, "  PARTIAL: %s\n", c->partial_reason));
    if (c->signature) {
        if (repro_store_crash_group(x->store, c->signature, &count, &first, &last, x->err))
            return REPRO_E_STORE;
        fmt_time(t, sizeof t, first);
        REPRO_TRY(rc, repro_buf_printf(b, "  signature: %s (%lld crash%s, first %s", c->signature,
                               (long long)count, count == 1 ? "" : "es", t));
        fmt_time(t, sizeof t, last);
        REPRO_TRY(rc, repro_buf_printf(b, ", last %s)\n", t));
    } else {
        REPRO_TRY(rc, repro_buf_printf(b, "  signature: not symbolized yet (repro symbolize %lld)\n",
                               (long long)id));
    }
    for (k = 0; k < c->n_threads; k++) {
        const struct repro_crash_thread *th = &c->threads[thread_at(c, k)];
        REPRO_TRY(rc, repro_buf_printf(b, "\nthread %d \"%s\"%s%s:\n", th->tid, th->name,
                               th->crashed ? " (crashed)" : "", th->partial ? " (partial)" : ""));
        REPRO_TRY(rc, frames_text(b, c, th));
    }
    if (c->n_conns) {
        REPRO_TRY(rc, repro_buf_printf(b, "\nopen TCP connections:\n"));
        for (i = 0; i < c->n_conns; i++)
            REPRO_TRY(rc, conn_text(b, &c->conns[i]));
    }
    (void)md; /* show_one closes the block after the requests in flight */
    return rc ? REPRO_E_NOMEM : REPRO_OK;
}

static int json_crash(struct render *x, int64_t id, const struct repro_crash *c)
{
    struct repro_buf *b = &x->out;
    char sb[16];
    size_t k, i;
    int rc = repro_buf_printf(b, "{\"id\":%lld,\"time\":", (long long)id);

    REPRO_TRY(rc, repro_json_time_us(b, c->time_us));
    REPRO_TRY(rc, repro_buf_printf(b, ",\"pid\":%d,\"tid\":%d,\"executable\":", c->pid, c->tid));
    REPRO_TRY(rc, repro_json_cstr(b, c->executable));
    REPRO_TRY(rc, repro_buf_printf(b, ",\"cmdline\":"));
    REPRO_TRY(rc, repro_json_cstr(b, c->cmdline));
    REPRO_TRY(rc, repro_buf_printf(b, ",\"service\":"));
    REPRO_TRY(rc, repro_json_cstr(b, c->service));
    REPRO_TRY(rc, repro_buf_printf(b, ",\"signal\":"));
    REPRO_TRY(rc, repro_json_cstr(b, repro_signal_name(c->signo, sb, sizeof sb)));
    REPRO_TRY(rc, repro_buf_printf(b, ",\"signo\":%d,\"si_code\":%d,\"fault_address\":\"0x%llx\",\"source\":",
                           c->signo, c->si_code, (unsigned long long)c->fault_address));
    REPRO_TRY(rc, repro_json_cstr(b, c->source));
    REPRO_TRY(rc, repro_buf_printf(b, ",\"partial\":%s,\"partial_reason\":", c->partial ? "true" : "false"));
    REPRO_TRY(rc, repro_json_cstr(b, c->partial ? c->partial_reason : NULL));
    REPRO_TRY(rc, repro_buf_printf(b, ",\"signature\":"));
    REPRO_TRY(rc, repro_json_cstr(b, c->signature));
    REPRO_TRY(rc, repro_buf_printf(b, ",\"threads\":["));
    for (k = 0; k < c->n_threads; k++) {
        const struct repro_crash_thread *th = &c->threads[thread_at(c, k)];
        REPRO_TRY(rc, repro_buf_printf(b, "%s{\"tid\":%d,\"name\":", k ? "," : "", th->tid));
        REPRO_TRY(rc, repro_json_cstr(b, th->name));
        REPRO_TRY(rc, repro_buf_printf(b, ",\"crashed\":%s,\"frames\":[", th->crashed ? "true" : "false"));
        for (i = 0; i < th->n_frames; i++) {
            const struct repro_crash_frame *f = &th->frames[i];
            const struct repro_crash_module *m = f->module >= 0 ? &c->modules[f->module] : NULL;
            REPRO_TRY(rc, repro_buf_printf(b, "%s{\"pc\":\"0x%llx\",\"module\":", i ? "," : "",
                                   (unsigned long long)f->pc));
            REPRO_TRY(rc, repro_json_cstr(b, m ? m->path : NULL));
            REPRO_TRY(rc, repro_buf_printf(b, ",\"build_id\":"));
            REPRO_TRY(rc, repro_json_cstr(b, m && m->build_id[0] ? m->build_id : NULL));
            if (m)
                REPRO_TRY(rc, repro_buf_printf(b, ",\"offset\":\"0x%llx\"", (unsigned long long)f->offset));
            else
                REPRO_TRY(rc, repro_buf_printf(b, ",\"offset\":null"));
            REPRO_TRY(rc, repro_buf_printf(b, ",\"function\":"));
            REPRO_TRY(rc, repro_json_cstr(b, f->function));
            REPRO_TRY(rc, repro_buf_printf(b, ",\"file\":"));
            REPRO_TRY(rc, repro_json_cstr(b, f->file));
            if (f->line > 0)
                REPRO_TRY(rc, repro_buf_printf(b, ",\"line\":%d", f->line));
            else
                REPRO_TRY(rc, repro_buf_printf(b, ",\"line\":null"));
            REPRO_TRY(rc, repro_buf_printf(b, ",\"inlined\":%s}", f->inlined ? "true" : "false"));
        }
        REPRO_TRY(rc, repro_buf_printf(b, "]}"));
    }
    REPRO_TRY(rc, repro_buf_printf(b, "],\"connections\":["));
    for (i = 0; i < c->n_conns; i++) {
        const struct repro_crash_conn *cn = &c->conns[i];
        char l[64], r[64];
        repro_endpoint_format(l, sizeof l, cn->family, cn->local_ip, cn->local_port);
        repro_endpoint_format(r, sizeof r, cn->family, cn->remote_ip, cn->remote_port);
        REPRO_TRY(rc, repro_buf_printf(b, "%s{\"fd\":%d,\"local\":\"%s\",\"remote\":\"%s\",\"state\":%d}",
                               i ? "," : "", cn->fd, l, r, cn->state));
    }
    REPRO_TRY(rc, repro_buf_printf(b, "]}\n"));
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
static int append_in_flight(struct render *x, int64_t id, int json)
{
    struct in_flight f = {x->store, &x->out, json, 0};
    return repro_store_crash_in_flight(x->store, id, in_flight_id, &f, x->err);
}

int repro_app_crash_render(struct repro_store *s, int64_t id, enum repro_app_crash_format format,
                           struct repro_buf *b, struct repro_error *err)
{
    struct render x;
    struct repro_crash *c = NULL;
    int rc = repro_app_load_crash(s, id, &c, err);

    if (rc)
        return rc;
    x.store = s;
    x.format = format;
    x.out = *b;
    x.err = err;
    rc = format == REPRO_APP_CRASH_JSON ? json_crash(&x, id, c) : text_crash(&x, id, c);
    repro_crash_free(c);
    if (rc == REPRO_OK && format == REPRO_APP_CRASH_JSON) {
        /* replace the closing "}\n" with the in-flight list */
        x.out.len -= 2;
        rc = repro_buf_printf(&x.out, ",\"in_flight\":[");
        rc = rc ? rc : append_in_flight(&x, id, 1);
        rc = rc ? rc : repro_buf_printf(&x.out, "]}\n");
    } else if (rc == REPRO_OK) {
        rc = append_in_flight(&x, id, 0);
        if (rc == REPRO_OK)
            rc = repro_buf_printf(&x.out, format == REPRO_APP_CRASH_MARKDOWN ? "```\n\n" : "\n");
    }
    *b = x.out;
    return rc;
}

/* s with every '|' as "\\|" (a markdown table cell). */
static void md_cell(char *out, size_t len, const char *s)
{
    size_t n = 0;
    for (; *s && n + 3 < len; s++) {
        if (*s == '|')
            out[n++] = '\\';
        out[n++] = *s;
    }
    out[n] = '\0';
}

int repro_app_crash_summary_row(struct repro_store *s, int64_t id, int header, struct repro_buf *b,
                                struct repro_error *err)
{
    char sig_cell[600], top_cell[600];
    struct repro_crash *c = NULL;
    char t[48], sb[16], top[300] = "?";
    int64_t count = 0, first, last;
    int rc = repro_app_load_crash(s, id, &c, err);

    if (rc)
        return rc;
    if (header)
        rc = repro_buf_printf(b, "| crash | time | signal | signature | crashes | top frame |\n"
                                 "|---|---|---|---|---|---|\n");
    if (c->signature &&
        repro_store_crash_group(s, c->signature, &count, &first, &last, err) != REPRO_OK)
        rc = REPRO_E_STORE;
    for (size_t k = 0; k < c->n_threads && rc == REPRO_OK; k++) {
        const struct repro_crash_thread *th = &c->threads[k];
        if (!th->crashed || th->n_frames == 0)
            continue;
        const struct repro_crash_frame *f = &th->frames[0];
        if (f->function && f->file)
            snprintf(top, sizeof top, "%s %s:%d", f->function, base_name(f->file), f->line);
        else if (f->function)
            snprintf(top, sizeof top, "%s", f->function);
        else
            snprintf(top, sizeof top, "0x%llx", (unsigned long long)f->pc);
    }
    fmt_time(t, sizeof t, c->time_us);
    md_cell(sig_cell, sizeof sig_cell, c->signature ? c->signature : "not symbolized");
    md_cell(top_cell, sizeof top_cell, top);
    REPRO_TRY(rc, repro_buf_printf(b, "| %lld | %s | %s | `%s` | %lld | `%s` |\n", (long long)id, t,
                                   repro_signal_name(c->signo, sb, sizeof sb), sig_cell,
                                   (long long)count, top_cell));
    repro_crash_free(c);
    return rc;
}
