/*
 * A replay run: plan, correlate, send (replay/engine.c), compare every
 * response with the recorded one, and, with a baseline, tell regressions
 * from noise; then hand each request's verdict to the caller.
 *
 * Order of work: with a baseline, the whole plan first goes to the
 * baseline (its differences from production, per request, are what noise
 * is), then to the target.
 *
 * Threads: the engine's reader thread only learns from each response
 * (correlation's observe, which must happen before the frontier lets a
 * request that waits for this answer go) and copies it into a bounded
 * queue (QUEUE_SLOTS responses, QUEUE_BYTES bytes; a full queue holds the
 * reader back, which holds the frontier back: it never drops a response).
 * A comparer thread of this module takes them in order, in batches, and
 * compares each with the recorded one; the differences (small) are kept, and the
 * response bytes only for what did not match (or everything with
 * keep_all_responses). Verdicts are final only after the run (Diffy's rule
 * needs every request's counts), so outcomes are delivered at the end, in
 * completion order.
 *
 * Verdicts: unanswered (production never answered: nothing to compare),
 * timeout, error (any other engine error), mismatch (differences left
 * after noise), match. crash is set by callers that supervise the target
 * (--exec).
 *
 * Left out: where inputs come from and where outcomes go (app/), the
 * supervisor.
 */
#include "repro/replay.h"

#include "repro/http.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SUBS_PER_REQUEST 8
#define QUEUE_SLOTS 256
#define QUEUE_BYTES (64u << 20)
#define QUEUE_SLOT_KEEP (1u << 20) /* a slot's buffer past this is let go after use */
#define COMPARE_BATCH 32
#define COMPARE_IDLE_MS 20

/* A response on its way from the reader to the comparer. */
struct slot {
    struct repro_replay_result res; /* res.response points into bytes */
    struct repro_buf bytes;
};

/* Reader -> comparer. Everything under m. */
struct queue {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    struct slot s[QUEUE_SLOTS];
    size_t head, n, bytes;
    int closing; /* the phase's engine run returned: drain and stop */
    int comparer_waiting, reader_waiting; /* who sleeps, so that only they are woken */
    int failed;  /* the comparer's first error: the reader stops the run */
    uint64_t full_waits;
};

struct rec {
    struct repro_replay_result r; /* r.response points into resp */
    uint8_t *resp;
    struct repro_diffs diffs;
};

struct run {
    const struct repro_replay_input *in;
    size_t n;
    const struct repro_replay_run_opts *o;
    struct repro_comparer *cmp;
    struct repro_correlator *corr, *corr_base; /* the target's and the baseline's sessions */
    const struct repro_replay_plan *plan;
    const struct repro_slice *qs; /* the recorded requests, by input */
    int baseline_phase;
    struct repro_error *err;

    /* sender thread (prepare) */
    struct repro_buf out, out2;
    struct repro_corr_subst **subs; /* per input: what was substituted (NULL: nothing) */
    size_t *n_subs;
    uint8_t *redacted; /* per input: the request sent held a mark */
    uint8_t *marked;   /* per input: the recorded request holds a mark */

    struct queue q;
    struct repro_replay_progress *progress; /* the target phase's live counts, or NULL */

    /* comparer thread */
    struct repro_http_head *he, *ha;
    struct repro_buf be, ba, de, da; /* dechunked and decoded bodies */
    struct rec *recs;
    size_t n_recs, cap_recs;
    struct repro_diffs *base; /* per input: baseline vs production (loop 0) */
    uint64_t body_unchecked, decode_capped, decode_failed;
};

static const char *const verdict_names[REPRO_VERDICT__COUNT] = {
    "match", "mismatch", "error", "timeout", "crash", "unanswered",
};

const char *repro_verdict_name(enum repro_verdict v)
{
    return (unsigned)v < REPRO_VERDICT__COUNT ? verdict_names[v] : "unknown";
}

/* ---- sending -------------------------------------------------------------- */

static int holds_mark(struct repro_slice s)
{
    return s.len && (memmem(s.ptr, s.len, REPRO_REDACT_MARK, sizeof REPRO_REDACT_MARK - 1) ||
                     memmem(s.ptr, s.len, REPRO_REDACT_MARK_URL,
                            sizeof REPRO_REDACT_MARK_URL - 1));
}

/* Correlation, then the user's rewrites; bytes then point into out or
 * out2 until the next call. */
static int prepare(void *ctx, size_t i, struct repro_slice *bytes)
{
    struct run *r = ctx;
    struct repro_correlator *corr = r->baseline_phase ? r->corr_base : r->corr;
    if (corr) {
        struct repro_corr_subst subs[SUBS_PER_REQUEST];
        size_t n = 0;
        if (repro_correlator_apply(corr, i, *bytes, &r->out, subs, SUBS_PER_REQUEST, &n) != REPRO_OK)
            return -1;
        if (n)
            *bytes = (struct repro_slice){r->out.data, r->out.len};
        if (!r->baseline_phase) { /* what the baseline was sent is not reported */
            size_t kept = n < SUBS_PER_REQUEST ? n : SUBS_PER_REQUEST;
            repro_free(r->subs[i]);
            r->subs[i] = NULL;
            r->n_subs[i] = 0;
            if (kept && (r->subs[i] = repro_malloc(kept * sizeof *subs)) != NULL) {
                memcpy(r->subs[i], subs, kept * sizeof *subs);
                r->n_subs[i] = n;
            }
        }
    }
    /* a head that does not parse goes as recorded: rewriting it would be a guess */
    if (r->o->rewrite && repro_replay_rewrite_apply(r->o->rewrite, *bytes, &r->out2, NULL) == REPRO_OK)
        *bytes = (struct repro_slice){r->out2.data, r->out2.len};
    /* the recorded bytes were looked at once, before the run; only bytes
     * that changed are searched here, between the deadline and the write */
    r->redacted[i] = bytes->ptr == r->in[i].request.ptr ? r->marked[i] : (uint8_t)holds_mark(*bytes);
    return 0;
}

/* ---- comparing ------------------------------------------------------------ */

/* Parses a raw response into a comparison side: the body dechunked into
 * tmp, then its gzip/deflate coding undone into dec (at most its cap,
 * decode_cap), as capture stores recorded bodies. Returns
 * REPRO_HTTP_INFLATE_CAPPED or _CORRUPT (the body is then the cut prefix,
 * or the undecoded bytes), else 0. */
static int side(struct repro_slice raw, struct repro_http_head *h, struct repro_buf *tmp,
                struct repro_buf *dec, struct repro_compare_msg *m)
{
    memset(m, 0, sizeof *m);
    if (raw.len == 0 || repro_http_parse_head(h, REPRO_HTTP_RESPONSE, raw.ptr, raw.len, raw.len,
                                              NULL, NULL) != REPRO_HTTP_DONE) {
        m->body = raw;
        return 0;
    }
    m->status = h->status;
    m->head = h;
    m->body = repro_http_message_body(raw, h, tmp);
    const struct repro_http_header *ce = repro_http_find_header(h, "content-encoding");
    enum repro_http_coding c = ce ? repro_http_coding_of(ce->value) : REPRO_HTTP_CODING_NONE;
    if (c != REPRO_HTTP_CODING_GZIP && c != REPRO_HTTP_CODING_DEFLATE)
        return 0;
    int rc = repro_http_inflate(m->body.ptr, m->body.len, c, dec->max, dec);
    if (rc == REPRO_HTTP_INFLATE_END || rc == REPRO_HTTP_INFLATE_PARTIAL ||
        rc == REPRO_HTTP_INFLATE_CAPPED) {
        m->body = (struct repro_slice){dec->data, dec->len};
        m->decoded = 1;
    }
    if (rc == REPRO_HTTP_INFLATE_CAPPED)
        return rc;
    return rc == REPRO_HTTP_INFLATE_CORRUPT || rc < 0 ? REPRO_HTTP_INFLATE_CORRUPT : 0;
}

static int compare_one(struct run *r, size_t i, struct repro_slice actual, struct repro_diffs *d)
{
    struct repro_compare_msg e, a;
    uint8_t digest[REPRO_HTTP_DIGEST_LEN];
    struct repro_error err = {0};

    side(r->in[i].response, r->he, &r->be, &r->de, &e);
    int dr = side(actual, r->ha, &r->ba, &r->da, &a);
    if (dr == REPRO_HTTP_INFLATE_CAPPED && !r->baseline_phase)
        r->decode_capped++;
    else if (dr == REPRO_HTTP_INFLATE_CORRUPT && !r->baseline_phase)
        r->decode_failed++;
    e.body_cut = r->in[i].response_body_cut;
    e.digest = r->in[i].response_digest;
    /* the same digest capture stores: of the whole body as stored
     * (dechunked, decoded) */
    if (e.body_cut && e.digest &&
        repro_http_body_digest(REPRO_HTTP_BODY_LENGTH, a.body.ptr, a.body.len, digest) ==
            REPRO_HTTP_DONE)
        a.digest = digest;
    int rc = repro_compare(r->cmp, &e, &a, d, &err);
    if (d->body_unchecked)
        r->body_unchecked++;
    return rc;
}

/* On the comparer thread: one response compared and kept. Returns 0 or
 * REPRO_E_NOMEM. */
static int compare_result(struct run *r, const struct repro_replay_result *res)
{
    size_t i = r->plan->steps[res->step].req;
    int answered = r->in[i].answered_us >= 0 && r->in[i].response.len > 0;
    struct repro_diffs d = {0};

    if (res->error == REPRO_REPLAY_OK && answered && compare_one(r, i, res->response, &d) != REPRO_OK)
        return REPRO_E_NOMEM;
    if (r->baseline_phase) {
        if (res->loop == 0) {
            repro_diffs_release(&r->base[i]);
            r->base[i] = d;
        } else {
            repro_diffs_release(&d);
        }
        return 0;
    }
    if (r->progress) { /* provisional: noise is only known at the end */
        _Atomic uint64_t *c = !answered || res->error != REPRO_REPLAY_OK ? &r->progress->errors
                              : d.n                                     ? &r->progress->mismatched
                                                                        : &r->progress->matched;
        if (!answered && res->error == REPRO_REPLAY_OK)
            c = &r->progress->unanswered;
        atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    }
    if (r->n_recs == r->cap_recs) {
        size_t cap = r->cap_recs ? 2 * r->cap_recs : 1024;
        struct rec *v = repro_realloc(r->recs, cap * sizeof *v);
        if (!v) {
            repro_diffs_release(&d);
            return REPRO_E_NOMEM;
        }
        r->recs = v;
        r->cap_recs = cap;
    }
    struct rec *x = &r->recs[r->n_recs++];
    memset(x, 0, sizeof *x);
    x->r = *res;
    x->diffs = d;
    x->r.response = (struct repro_slice){0};
    if (res->response.len && (r->o->keep_all_responses || d.n || res->error != REPRO_REPLAY_OK ||
                              !answered)) {
        x->resp = repro_malloc(res->response.len);
        if (x->resp) {
            memcpy(x->resp, res->response.ptr, res->response.len);
            x->r.response = (struct repro_slice){x->resp, res->response.len};
        }
    }
    return 0;
}

/* The comparer thread: takes responses in order, in batches, until the
 * queue closes. It is woken when COMPARE_BATCH responses wait (a wakeup
 * per response cost a context switch each) and looks every
 * COMPARE_IDLE_MS anyway, so a slow run's counts still move. After an
 * error it still drains, so that the reader is never left waiting. */
static void *comparer_main(void *arg)
{
    struct run *r = arg;
    struct queue *q = &r->q;

    pthread_mutex_lock(&q->m);
    for (;;) {
        while (q->n < COMPARE_BATCH && !q->closing) {
            q->comparer_waiting = 1;
            struct timespec until = repro_deadline_ms(CLOCK_MONOTONIC, COMPARE_IDLE_MS);
            int timed_out = pthread_cond_timedwait(&q->not_empty, &q->m, &until) == ETIMEDOUT;
            q->comparer_waiting = 0;
            if (timed_out && q->n > 0)
                break;
        }
        if (q->n == 0 && q->closing)
            break;
        /* slots [head, head + k) are the comparer's until given back */
        size_t k = q->n, head = q->head, len = 0;
        int rc = q->failed;
        pthread_mutex_unlock(&q->m);
        for (size_t j = 0; j < k; j++) {
            struct slot *sl = &q->s[(head + j) % QUEUE_SLOTS];
            if (rc == 0)
                rc = compare_result(r, &sl->res);
            len += sl->bytes.len;
            if (sl->bytes.cap > QUEUE_SLOT_KEEP)
                repro_buf_release(&sl->bytes);
        }
        pthread_mutex_lock(&q->m);
        if (rc && !q->failed)
            q->failed = rc;
        q->head = (head + k) % QUEUE_SLOTS;
        q->n -= k;
        q->bytes -= len;
        if (q->reader_waiting)
            pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->m);
    return NULL;
}

/* What the engine's reader thread does with every response before the
 * frontier moves, wherever it is compared: correlation learns from it (a
 * request waiting for this answer must carry what it set), and a timeout
 * is reported now, while the target still hangs. */
static void learn(struct run *r, const struct repro_replay_result *res)
{
    size_t i = r->plan->steps[res->step].req;
    struct repro_correlator *corr = r->baseline_phase ? r->corr_base : r->corr;

    if (corr && res->response.len)
        repro_correlator_observe(corr, i, res->response);
    if (res->error == REPRO_REPLAY_TIMEOUT && !r->baseline_phase && r->o->on_timeout)
        r->o->on_timeout(r->o->timeout_ctx, i);
}

/* On the engine's reader thread: learn from the response, then hand a
 * copy to the comparer. */
static int on_result(void *ctx, const struct repro_replay_result *res)
{
    struct run *r = ctx;
    struct queue *q = &r->q;

    learn(r, res);
    pthread_mutex_lock(&q->m);
    while (!q->failed &&
           (q->n == QUEUE_SLOTS || (q->n && q->bytes + res->response.len > QUEUE_BYTES))) {
        q->full_waits++;
        q->reader_waiting = 1;
        if (q->comparer_waiting)
            pthread_cond_signal(&q->not_empty); /* a byte-full queue of fewer than a batch */
        pthread_cond_wait(&q->not_full, &q->m);
        q->reader_waiting = 0;
    }
    int rc = q->failed;
    if (rc == 0) {
        /* the slot is free (counted out of n), so it is the reader's */
        struct slot *sl = &q->s[(q->head + q->n) % QUEUE_SLOTS];
        pthread_mutex_unlock(&q->m);
        repro_buf_reset(&sl->bytes);
        rc = repro_buf_append(&sl->bytes, res->response.ptr, res->response.len);
        sl->res = *res;
        sl->res.response = (struct repro_slice){sl->bytes.data, sl->bytes.len};
        pthread_mutex_lock(&q->m);
        if (rc == REPRO_OK) {
            q->n++;
            q->bytes += res->response.len;
            if (q->comparer_waiting && q->n >= COMPARE_BATCH)
                pthread_cond_signal(&q->not_empty);
        } else if (!q->failed) {
            q->failed = rc = REPRO_E_NOMEM;
        }
    }
    pthread_mutex_unlock(&q->m);
    return rc;
}

/* On the engine's reader thread, before the frontier moves: learn from the
 * response and compare it there (REPRO_COMPARE_INLINE). */
static int on_result_inline(void *ctx, const struct repro_replay_result *res)
{
    struct run *r = ctx;
    int rc;

    learn(r, res);
    rc = compare_result(r, res);
    if (rc && !r->q.failed)
        r->q.failed = rc;
    return rc;
}

static int compare_on_thread(const struct repro_replay_run_opts *o)
{
    if (o->compare_where == REPRO_COMPARE_THREAD)
        return 1;
    if (o->compare_where == REPRO_COMPARE_INLINE)
        return 0;
    cpu_set_t set; /* the CPUs this process may run on, not the machine's */
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set) >= 4;
    return sysconf(_SC_NPROCESSORS_ONLN) >= 4;
}

/* One engine run, every response compared when it returns: on a comparer
 * thread beside it, or inline. */
static int run_phase(struct run *r, const struct repro_replay_opts *eo,
                     struct repro_replay_stats *st, const char *what)
{
    pthread_t t;
    struct queue *q = &r->q;

    q->closing = 0;
    q->failed = 0;
    if (!compare_on_thread(r->o)) {
        int rc = repro_replay_run(r->plan, r->qs, eo, on_result_inline, r, st, r->err);
        if (rc == REPRO_OK && q->failed)
            rc = repro_error_set(r->err, q->failed, "cannot compare the %s's responses", what);
        return rc;
    }
    if (pthread_create(&t, NULL, comparer_main, r) != 0)
        return repro_error_set(r->err, REPRO_E_NOMEM, "cannot start the comparer thread");
    int rc = repro_replay_run(r->plan, r->qs, eo, on_result, r, st, r->err);
    pthread_mutex_lock(&q->m);
    q->closing = 1;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->m);
    pthread_join(t, NULL);
    if (rc == REPRO_OK && q->failed)
        rc = repro_error_set(r->err, q->failed, "cannot compare the %s's responses", what);
    return rc;
}

/* ---- the run ------------------------------------------------------------ */

static enum repro_verdict verdict_of(const struct run *r, const struct rec *x, size_t i,
                                     size_t left)
{
    if (r->in[i].answered_us < 0 || r->in[i].response.len == 0)
        return REPRO_VERDICT_UNANSWERED;
    if (x->r.error == REPRO_REPLAY_TIMEOUT)
        return REPRO_VERDICT_TIMEOUT;
    if (x->r.error != REPRO_REPLAY_OK)
        return REPRO_VERDICT_ERROR;
    return left ? REPRO_VERDICT_MISMATCH : REPRO_VERDICT_MATCH;
}

int repro_replay_execute(const struct repro_replay_input *in, size_t n,
                         const struct repro_replay_run_opts *o, repro_replay_outcome_fn fn,
                         void *ctx, struct repro_replay_summary *sum, struct repro_error *err)
{
    struct run r = {.in = in, .n = n, .o = o, .err = err,
                    .q = {.m = PTHREAD_MUTEX_INITIALIZER, .not_full = PTHREAD_COND_INITIALIZER}};
    pthread_condattr_t ca; /* the comparer's timed waits are on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r.q.not_empty, &ca);
    pthread_condattr_destroy(&ca);
    struct repro_replay_req *reqs = NULL;
    struct repro_slice *qs = NULL, *as = NULL;
    struct repro_replay_plan *plan = NULL;
    struct repro_replay_opts eo;
    int rc;

    memset(sum, 0, sizeof *sum);
    repro_buf_init(&r.out, 64u << 20);
    repro_buf_init(&r.out2, 64u << 20);
    repro_buf_init(&r.be, 64u << 20);
    repro_buf_init(&r.ba, 64u << 20);
    for (size_t k = 0; k < QUEUE_SLOTS; k++)
        repro_buf_init(&r.q.s[k].bytes, SIZE_MAX);
    repro_buf_init(&r.de, o->decode_cap ? o->decode_cap : REPRO_REPLAY_DECODE_CAP);
    repro_buf_init(&r.da, o->decode_cap ? o->decode_cap : REPRO_REPLAY_DECODE_CAP);
    reqs = repro_calloc(n ? n : 1, sizeof *reqs);
    qs = repro_calloc(n ? n : 1, sizeof *qs);
    as = repro_calloc(n ? n : 1, sizeof *as);
    r.n_subs = repro_calloc(n ? n : 1, sizeof *r.n_subs);
    r.subs = repro_calloc(n ? n : 1, sizeof *r.subs);
    r.redacted = repro_calloc(n ? n : 1, 1);
    r.marked = repro_calloc(n ? n : 1, 1);
    r.base = repro_calloc(n ? n : 1, sizeof *r.base);
    r.he = repro_malloc(sizeof *r.he);
    r.ha = repro_malloc(sizeof *r.ha);
    if (!reqs || !qs || !as || !r.n_subs || !r.subs || !r.redacted || !r.marked || !r.base ||
        !r.he || !r.ha) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot replay %zu requests: out of memory", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        reqs[i] = (struct repro_replay_req){.exchange_id = in[i].exchange_id,
                                            .conn_id = in[i].conn_id, .seq = in[i].seq,
                                            .sent_us = in[i].sent_us,
                                            .answered_us = in[i].answered_us,
                                            .conn_opened_us = in[i].conn_opened_us,
                                            .conn_closed_us = in[i].conn_closed_us,
                                            .client_key = in[i].client_key};
        qs[i] = in[i].request;
        as[i] = in[i].response;
        r.marked[i] = (uint8_t)holds_mark(in[i].request);
    }
    if ((rc = repro_replay_plan_build(reqs, n, &plan, err)) != REPRO_OK)
        goto out;
    r.plan = plan;
    r.qs = qs;
    if ((rc = repro_comparer_new(o->rules, &r.cmp, err)) != REPRO_OK)
        goto out;
    if (!o->no_correlate &&
        ((rc = repro_correlator_new(plan, reqs, qs, as, &r.corr, err)) != REPRO_OK ||
         (o->baseline && (rc = repro_correlator_new(plan, reqs, qs, as, &r.corr_base, err)) != REPRO_OK)))
        goto out;

    eo = o->engine;
    eo.prepare = prepare;
    eo.prepare_ctx = &r;
    if (o->baseline) {
        struct repro_replay_opts bo = eo;
        bo.target = o->baseline;
        bo.target_len = o->baseline_len;
        bo.loops = 1;
        bo.progress = NULL; /* the progress line is the target's */
        r.baseline_phase = 1;
        rc = run_phase(&r, &bo, &sum->baseline, "baseline");
        r.baseline_phase = 0;
        if (rc != REPRO_OK)
            goto out;
    }
    r.progress = eo.progress;
    rc = run_phase(&r, &eo, &sum->target, "target");
    if (rc != REPRO_OK)
        goto out;

    if (o->baseline) {
        if ((rc = repro_noise_new(&sum->noise)) != REPRO_OK)
            goto out;
        for (size_t k = 0; k < r.n_recs && rc == REPRO_OK; k++) {
            size_t i = plan->steps[r.recs[k].r.step].req;
            if (r.recs[k].r.loop == 0)
                rc = repro_noise_add(sum->noise, &r.recs[k].diffs, &r.base[i]);
        }
        if (rc != REPRO_OK) {
            rc = repro_error_set(err, rc, "cannot count noise: out of memory");
            goto out;
        }
        repro_noise_classify(sum->noise, 0, 0);
    }
    sum->body_unchecked = r.body_unchecked;
    sum->decode_capped = r.decode_capped;
    sum->decode_failed = r.decode_failed;
    sum->compare_queue_full = r.q.full_waits;
    for (size_t k = 0; k < r.n_recs; k++) {
        struct rec *x = &r.recs[k];
        size_t i = plan->steps[x->r.step].req, kept = 0, noise = 0;
        /* drop noise from the differences, in place */
        for (size_t d = 0; d < x->diffs.n; d++) {
            if (sum->noise && repro_noise_is_noise(sum->noise, &x->diffs.v[d], &r.base[i])) {
                noise++;
                repro_free(x->diffs.v[d].where);
                repro_free(x->diffs.v[d].key);
                repro_free(x->diffs.v[d].expected);
                repro_free(x->diffs.v[d].actual);
                continue;
            }
            x->diffs.v[kept++] = x->diffs.v[d];
        }
        x->diffs.n = kept;
        struct repro_replay_outcome oc = {
            .input = i, .loop = x->r.loop, .verdict = verdict_of(&r, x, i, kept),
            .result = &x->r, .diffs = &x->diffs, .n_noise = noise,
            .subs = r.subs[i],
            .n_subs = r.n_subs[i] < SUBS_PER_REQUEST ? r.n_subs[i] : SUBS_PER_REQUEST,
            .still_redacted = r.redacted[i]};
        sum->verdicts[oc.verdict]++;
        sum->substitutions += r.n_subs[i];
        sum->still_redacted += r.redacted[i];
        sum->noise_discarded += noise;
        if (fn && (rc = fn(ctx, &oc)) != 0)
            goto out;
    }
    rc = REPRO_OK;
out:
    for (size_t k = 0; k < r.n_recs; k++) {
        repro_free(r.recs[k].resp);
        repro_diffs_release(&r.recs[k].diffs);
    }
    for (size_t i = 0; r.base && i < n; i++)
        repro_diffs_release(&r.base[i]);
    repro_free(r.recs);
    repro_free(r.base);
    repro_free(r.he);
    repro_free(r.ha);
    repro_free(r.redacted);
    repro_free(r.marked);
    for (size_t i = 0; r.subs && i < n; i++)
        repro_free(r.subs[i]);
    repro_free(r.subs);
    repro_free(r.n_subs);
    repro_buf_release(&r.out);
    repro_buf_release(&r.out2);
    repro_buf_release(&r.be);
    repro_buf_release(&r.ba);
    for (size_t k = 0; k < QUEUE_SLOTS; k++)
        repro_buf_release(&r.q.s[k].bytes);
    repro_buf_release(&r.de);
    repro_buf_release(&r.da);
    pthread_cond_destroy(&r.q.not_empty);
    repro_correlator_free(r.corr);
    repro_correlator_free(r.corr_base);
    repro_comparer_free(r.cmp);
    repro_replay_plan_free(plan);
    repro_free(as);
    repro_free(qs);
    repro_free(reqs);
    return rc;
}
