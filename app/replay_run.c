/*
 * app/replay_run: `repro replay`. Reads the selected exchanges with their
 * bytes (copied: the store's rows are borrowed), refuses a target that is
 * a server of the recorded traffic, then replays them with
 * replay/run.c and reports: a summary on o->out, the JSON report and the
 * JUnit file.
 *
 * The recorded client (its address without the port) is the correlation
 * key: values are carried over between requests of one client only.
 */
#include "app/replay_run.h"

#include "repro/capture.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct selection {
    const struct repro_app_replay_opts *o;
    struct repro_replay_input *in;
    char (*server)[64]; /* recorded server endpoint of each input */
    uint8_t (*digest)[32];
    size_t n, cap;
    uint64_t skipped;
    int nomem;
};

static int method_allowed(const char *methods, const char *m)
{
    if (!methods)
        return 1;
    size_t ml = m ? strlen(m) : 0;
    for (const char *p = methods; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == ml && ml && strncasecmp(p, m, len) == 0)
            return 1;
        p += len + (comma ? 1 : 0);
    }
    return 0;
}

static uint8_t *copy(struct repro_slice s)
{
    uint8_t *p = repro_malloc(s.len ? s.len : 1);
    if (p && s.len)
        memcpy(p, s.ptr, s.len);
    return p;
}

/* FNV-1a of the client's address, without the port. */
static int64_t client_key(const char *client)
{
    const char *end = strrchr(client, ':');
    uint64_t h = 1469598103934665603ull;
    for (const char *p = client; *p && p != end; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (int64_t)(h >> 1);
}

static int take(void *ctx, const struct repro_exchange_row *r)
{
    struct selection *s = ctx;
    if (!method_allowed(s->o->methods, r->method))
        return 0;
    if (r->request.len == 0 || (r->flags & REPRO_XF_NO_REQUEST)) {
        s->skipped++;
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        void *a = repro_realloc(s->in, cap * sizeof *s->in);
        if (a)
            s->in = a;
        void *b = a ? repro_realloc(s->server, cap * sizeof *s->server) : NULL;
        if (b)
            s->server = b;
        void *c = b ? repro_realloc(s->digest, cap * sizeof *s->digest) : NULL;
        if (!c)
            return s->nomem = REPRO_E_NOMEM;
        s->digest = c;
        s->cap = cap;
    }
    struct repro_replay_input *in = &s->in[s->n];
    memset(in, 0, sizeof *in);
    in->exchange_id = r->id;
    in->conn_id = r->connection_id;
    in->client_key = client_key(r->client);
    in->seq = (uint64_t)r->seq;
    in->sent_us = r->request_first_us >= 0 ? r->request_first_us : r->response_first_us;
    in->answered_us = r->status > 0 && r->response.len ? r->response_last_us : -1;
    in->conn_opened_us = in->conn_closed_us = -1;
    in->request = (struct repro_slice){copy(r->request), r->request.len};
    in->response = (struct repro_slice){r->response.len ? copy(r->response) : NULL,
                                        r->response.len};
    if (!in->request.ptr || (r->response.len && !in->response.ptr)) {
        repro_free((void *)in->request.ptr);
        repro_free((void *)in->response.ptr);
        return s->nomem = REPRO_E_NOMEM;
    }
    /* A response body that was cut, or has holes, is compared by its
     * digest when capture could give one, else not at all. */
    in->response_body_cut = (r->flags & (REPRO_XF_BODY_CAPPED | REPRO_XF_GAP | REPRO_XF_TRUNCATED |
                                         REPRO_XF_BODY_DROPPED)) != 0;
    const char *hex = r->response_body_sha256;
    if (hex && strlen(hex) == 64) {
        for (int i = 0; i < 32; i++)
            s->digest[s->n][i] = (uint8_t)(repro_hex_digit(hex[2 * i]) << 4 |
                                           repro_hex_digit(hex[2 * i + 1]));
        in->response_digest = s->digest[s->n];
    }
    snprintf(s->server[s->n], sizeof s->server[s->n], "%s", r->server);
    s->n++;
    return 0;
}

static void selection_release(struct selection *s)
{
    for (size_t i = 0; i < s->n; i++) {
        repro_free((void *)s->in[i].request.ptr);
        repro_free((void *)s->in[i].response.ptr);
    }
    repro_free(s->in);
    repro_free(s->server);
    repro_free(s->digest);
}

/* Resolves "HOST:PORT" ("[v6]:PORT") into *ss. */
static int resolve(const char *what, const char *hp, struct sockaddr_storage *ss, socklen_t *len,
                   char *text, size_t text_len, struct repro_error *err)
{
    char host[256];
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || !colon[1] || (size_t)(colon - hp) >= sizeof host)
        return repro_error_set(err, REPRO_E_INVAL, "cannot use %s '%s': expected HOST:PORT", what,
                               hp);
    size_t hl = (size_t)(colon - hp);
    const char *h = hp;
    if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']')
        h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0 || !ai)
        return repro_error_set(err, REPRO_E_INVAL, "cannot resolve %s '%s': %s", what, hp,
                               gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(text, text_len, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(text, text_len, "%s:%u", ip, ntohs(a->sin_port));
    }
    return REPRO_OK;
}

struct outcome_ctx {
    const struct repro_app_replay_opts *o;
    const struct repro_replay_input *in;
    struct repro_replay_report *rep;
    struct repro_store *store;
    int64_t run_id;
    struct repro_buf diffs, subs;
    struct repro_error *err;
};

/* One result into the report and the database. */
static int on_outcome(void *ctx, const struct repro_replay_outcome *oc)
{
    struct outcome_ctx *x = ctx;
    const struct repro_replay_result *r = oc->result;
    int rc = x->rep ? repro_replay_report_add(x->rep, oc, &x->in[oc->input]) : REPRO_OK;

    repro_buf_reset(&x->diffs);
    repro_buf_reset(&x->subs);
    REPRO_TRY(rc, repro_replay_diffs_json(&x->diffs, oc->diffs));
    REPRO_TRY(rc, repro_buf_append(&x->diffs, "", 1));
    REPRO_TRY(rc, repro_replay_subs_json(&x->subs, oc->subs, oc->n_subs));
    REPRO_TRY(rc, repro_buf_append(&x->subs, "", 1));
    if (rc != REPRO_OK)
        return repro_error_set(x->err, rc, "cannot record a replay result: out of memory");
    struct repro_store_replay_result row = {
        .run_id = x->run_id, .exchange_id = x->in[oc->input].exchange_id, .loop = oc->loop,
        .verdict = repro_verdict_name(oc->verdict),
        .error = r->error != REPRO_REPLAY_OK ? repro_replay_errkind_name(r->error) : NULL,
        .status = r->status,
        .latency_us = r->sent_ns >= 0 ? (double)(r->done_ns - r->sent_ns) / 1e3 : -1,
        .latency_intended_us = (double)(r->done_ns - r->intended_ns) / 1e3,
        .schedule_error_us = r->sent_ns >= 0 ? (double)(r->sent_ns - r->intended_ns) / 1e3 : 0,
        .differences_json = oc->diffs->n ? (const char *)x->diffs.data : NULL,
        .substitutions_json = oc->n_subs ? (const char *)x->subs.data : NULL,
        .noise = (int)oc->n_noise, .still_redacted = oc->still_redacted, .reopened = r->reopened,
        .response = r->response};
    return repro_store_replay_result_insert(x->store, &row, x->err);
}

static void print_dry_run(FILE *f, const struct repro_replay_input *in, size_t n, double speed,
                          struct repro_error *err)
{
    struct repro_replay_req *r = repro_calloc(n, sizeof *r);
    struct repro_replay_plan *p = NULL;
    if (!r)
        return;
    for (size_t i = 0; i < n; i++)
        r[i] = (struct repro_replay_req){.exchange_id = in[i].exchange_id, .conn_id = in[i].conn_id,
                                         .seq = in[i].seq, .sent_us = in[i].sent_us,
                                         .answered_us = in[i].answered_us, .conn_opened_us = -1,
                                         .conn_closed_us = -1, .client_key = in[i].client_key};
    if (repro_replay_plan_build(r, n, &p, err) == REPRO_OK) {
        fprintf(f, "%12s  %5s  %8s  %7s  %s\n", "at_ms", "conn", "exchange", "after", "request");
        for (size_t k = 0; k < p->n_steps; k++) {
            const struct repro_replay_step *s = &p->steps[k];
            const struct repro_replay_input *x = &in[s->req];
            const uint8_t *eol = memchr(x->request.ptr, '\r', x->request.len);
            int ll = (int)(eol ? (size_t)(eol - x->request.ptr) : x->request.len);
            double at = speed > 0 ? (double)s->at_us / 1000.0 / speed : 0.0;
            /* after: how many earlier answers it waits for (causal order) */
            fprintf(f, "%12.3f  %5zu  %8lld  %7zu  %.*s%s\n", at, s->conn + 1,
                    (long long)x->exchange_id, s->after_answers, ll > 200 ? 200 : ll,
                    (const char *)x->request.ptr, s->pipelined ? "  (pipelined)" : "");
        }
    }
    repro_replay_plan_free(p);
    repro_free(r);
}

int repro_app_replay(const struct repro_app_replay_opts *o, struct repro_app_replay_result *res,
                     struct repro_error *err)
{
    struct selection sel = {.o = o};
    struct repro_store *store = NULL;
    struct sockaddr_storage tss, bss;
    socklen_t tlen = 0, blen = 0;
    char ttext[80], btext[80];
    struct repro_replay_report *rep = NULL;
    struct repro_replay_rewrite *rw = NULL;
    int rc;

    memset(res, 0, sizeof *res);
    if ((rc = resolve("target", o->target, &tss, &tlen, ttext, sizeof ttext, err)) != REPRO_OK)
        return rc;
    if (o->baseline &&
        (rc = resolve("baseline", o->baseline, &bss, &blen, btext, sizeof btext, err)) != REPRO_OK)
        return rc;
    if ((rc = repro_replay_rewrite_new(&o->rewrite, &rw, err)) != REPRO_OK)
        return rc;
    /* read-write: the run and its results are stored (not for a dry run) */
    if ((rc = repro_store_open(o->db, o->dry_run ? REPRO_STORE_READONLY : 0, &store, err)) !=
        REPRO_OK) {
        repro_replay_rewrite_free(rw);
        return rc;
    }
    rc = repro_store_exchanges(store, &o->filter, 1, take, &sel, err);
    if (rc == REPRO_OK && sel.nomem)
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot read the exchanges: out of memory");
    if (rc != REPRO_OK)
        goto out;
    res->selected = sel.n + sel.skipped;
    res->skipped = sel.skipped;
    if (sel.n == 0) {
        rc = repro_error_set(err, REPRO_E_NOTFOUND,
                             "nothing to replay in '%s': the filters select no exchange with a "
                             "request%s",
                             o->db, sel.skipped ? " (only responses without their request)" : "");
        goto out;
    }
    /* Never the production server by accident: a target that is a server
     * of the recorded traffic needs an explicit override. */
    for (size_t i = 0; i < sel.n && !o->allow_production_target; i++)
        if (strcmp(sel.server[i], ttext) == 0) {
            rc = repro_error_set(err, REPRO_E_INVAL,
                                 "refusing to replay to '%s': it is the server of the recorded "
                                 "traffic (exchange %lld); pass --allow-production-target if "
                                 "that is really what you want",
                                 ttext, (long long)sel.in[i].exchange_id);
            goto out;
        }
    if (o->dry_run) {
        print_dry_run(o->out, sel.in, sel.n, o->speed, err);
        goto out;
    }

    struct repro_replay_run_opts ro = {
        .engine = {.target = (const struct sockaddr *)&tss, .target_len = tlen, .speed = o->speed,
                   .rate = o->rate, .connections = o->connections, .loops = o->loops,
                   .timeout_ms = o->timeout_ms},
        .baseline = o->baseline ? (const struct sockaddr *)&bss : NULL,
        .baseline_len = blen,
        .rules = &o->rules,
        .no_correlate = o->no_correlate,
        .rewrite = rw};
    struct repro_store_replay_run run = {.started_us = repro_wall_us(), .target = ttext,
                                         .baseline = o->baseline ? btext : NULL,
                                         .speed = o->speed, .selection = o->selection};
    struct outcome_ctx oc = {.o = o, .in = sel.in, .store = store, .err = err};
    if ((rc = repro_store_replay_run_begin(store, &run, &oc.run_id, err)) != REPRO_OK)
        goto out;
    res->run_id = oc.run_id;
    struct repro_replay_report_meta meta = {.run_id = oc.run_id, .target = ttext,
                                            .baseline = o->baseline ? btext : NULL,
                                            .speed = o->speed};
    if ((o->report_json || o->junit) &&
        (rc = repro_replay_report_open(o->report_json, o->junit, &meta, &rep, err)) != REPRO_OK)
        goto out;
    oc.rep = rep;
    repro_buf_init(&oc.diffs, 16u << 20);
    repro_buf_init(&oc.subs, 1u << 20);
    rc = repro_replay_execute(sel.in, sel.n, &ro, on_outcome, &oc, &res->sum, err);
    repro_buf_release(&oc.diffs);
    repro_buf_release(&oc.subs);
    if (rc == REPRO_OK)
        rc = repro_replay_report_close(rep, &res->sum, err);
    else
        repro_replay_report_close(rep, NULL, NULL);
    rep = NULL;
    {
        const struct repro_replay_summary *s = &res->sum;
        const struct repro_replay_stats *t = &s->target;
        double secs = t->first_send_ns >= 0 ? (double)(t->last_done_ns - t->first_send_ns) / 1e9 : 0;
        struct repro_store_replay_run_end end = {
            .ended_us = repro_wall_us(), .status = rc == REPRO_OK ? "complete" : "failed",
            .sent = t->sent, .matched = s->verdicts[REPRO_VERDICT_MATCH],
            .mismatched = s->verdicts[REPRO_VERDICT_MISMATCH],
            .errors = s->verdicts[REPRO_VERDICT_ERROR], .timeouts = s->verdicts[REPRO_VERDICT_TIMEOUT],
            .crashes = s->verdicts[REPRO_VERDICT_CRASH],
            .unanswered = s->verdicts[REPRO_VERDICT_UNANSWERED], .duration_s = secs,
            .requests_per_s = secs > 0 ? (double)t->sent / secs : 0,
            .sched_p50_us = (double)t->sched_p50_ns / 1e3, .sched_p99_us = (double)t->sched_p99_ns / 1e3,
            .sched_max_us = (double)t->sched_max_ns / 1e3};
        struct repro_error eerr = {0};
        int erc = repro_store_replay_run_end(store, oc.run_id, &end, &eerr);
        if (rc == REPRO_OK && erc != REPRO_OK) {
            *err = eerr;
            rc = erc;
        }
    }
    if (rc == REPRO_OK && o->out) {
        const struct repro_replay_summary *s = &res->sum;
        const struct repro_replay_stats *t = &s->target;
        double secs = t->first_send_ns >= 0 ? (double)(t->last_done_ns - t->first_send_ns) / 1e9 : 0;
        uint64_t total = 0;
        for (int v = 0; v < REPRO_VERDICT__COUNT; v++)
            total += s->verdicts[v];
        fprintf(o->out, "replay run %lld: ", (long long)res->run_id);
        fprintf(o->out,
                "replayed %llu requests (%llu sent) to %s in %.3f s (%.0f requests/s): %llu match, "
                "%llu mismatch, %llu error, %llu timeout, %llu unanswered\n",
                (unsigned long long)total, (unsigned long long)t->sent, ttext, secs,
                secs > 0 ? (double)t->sent / secs : 0.0,
                (unsigned long long)s->verdicts[REPRO_VERDICT_MATCH],
                (unsigned long long)s->verdicts[REPRO_VERDICT_MISMATCH],
                (unsigned long long)s->verdicts[REPRO_VERDICT_ERROR],
                (unsigned long long)s->verdicts[REPRO_VERDICT_TIMEOUT],
                (unsigned long long)s->verdicts[REPRO_VERDICT_UNANSWERED]);
        if (o->speed > 0)
            fprintf(o->out, "schedule error: p50 %.1f us, p99 %.1f us, max %.1f us\n",
                    (double)t->sched_p50_ns / 1e3, (double)t->sched_p99_ns / 1e3,
                    (double)t->sched_max_ns / 1e3);
        if (t->reopened || s->substitutions || s->still_redacted)
            fprintf(o->out,
                    "%llu connections reopened after the target closed them, %llu values carried "
                    "over from staging, %llu requests still carried a redaction mark\n",
                    (unsigned long long)t->reopened, (unsigned long long)s->substitutions,
                    (unsigned long long)s->still_redacted);
        if (s->noise) {
            const struct repro_noise_field *f;
            size_t nf = repro_noise_fields(s->noise, &f);
            for (size_t i = 0; i < nf; i++) {
                char rule[512];
                const char *why, *sug;
                if (!f[i].noisy)
                    continue;
                sug = repro_noise_suggest(&f[i], rule, sizeof rule, &why);
                fprintf(o->out, "noise: %s differs on the baseline too (%llu of the requests): %s%s\n",
                        f[i].key, (unsigned long long)f[i].n_baseline, sug ? "ignore it with " : "not ignored: ",
                        sug ? sug : why);
            }
        }
    }
out:
    repro_store_close(store);
    repro_replay_rewrite_free(rw);
    repro_noise_free(res->sum.noise);
    res->sum.noise = NULL;
    selection_release(&sel);
    return rc;
}
