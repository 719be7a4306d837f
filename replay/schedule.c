/*
 * The replay schedule: from recorded requests to what a run sends, on
 * which connection, at what intended time, and after which answers.
 *
 * Three orders are kept (issue 10, docs/replay.md):
 *   - session fidelity: each recorded connection is one replay connection
 *     carrying its requests in seq order, pipelined only where they were;
 *   - time: each request's intended send time is its recorded offset from
 *     the first selected request (the sender divides by the speed and
 *     drives an absolute clock, so lateness never accumulates);
 *   - causality across connections: a request waits for every response
 *     that had completed before it was sent in the recording. Those
 *     responses are always a prefix of the responses sorted by completion
 *     time, so one number per step (after_answers) and one counter in the
 *     sender (the frontier) express the whole rule, at any speed.
 *
 * The rule cannot deadlock: a request only waits for answers whose
 * request was sent strictly before it, so the earliest unsent step in
 * send order always has everything it waits for in flight. Recorded times
 * that run backwards are clamped to keep that true (a later request on a
 * connection is never earlier than the one before it; an answer is never
 * earlier than its request).
 *
 * Left out here: sockets, clocks and rate caps (the sender's job).
 */
#include "repro/replay.h"

#include <stdlib.h>
#include <string.h>

struct item {
    const struct repro_replay_req *r;
    size_t in;           /* index in the input */
    int64_t sent, ans;   /* clamped times; ans -1 without answer */
    size_t conn;         /* dense connection number, in order of first appearance by conn_id */
    size_t send_pos;     /* position in send order */
};

static int by_conn_seq(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->r->conn_id != y->r->conn_id)
        return x->r->conn_id < y->r->conn_id ? -1 : 1;
    if (x->r->seq != y->r->seq)
        return x->r->seq < y->r->seq ? -1 : 1;
    return x->in < y->in ? -1 : x->in > y->in;
}

static int by_send(const void *a, const void *b)
{
    const struct item *x = *(const struct item *const *)a, *y = *(const struct item *const *)b;
    if (x->sent != y->sent)
        return x->sent < y->sent ? -1 : 1;
    if (x->r->conn_id != y->r->conn_id)
        return x->r->conn_id < y->r->conn_id ? -1 : 1;
    if (x->r->seq != y->r->seq)
        return x->r->seq < y->r->seq ? -1 : 1;
    return x->in < y->in ? -1 : x->in > y->in;
}

static int by_answer(const void *a, const void *b)
{
    const struct item *x = *(const struct item *const *)a, *y = *(const struct item *const *)b;
    if (x->ans != y->ans)
        return x->ans < y->ans ? -1 : 1;
    return x->send_pos < y->send_pos ? -1 : x->send_pos > y->send_pos;
}

static int conn_by_open(const void *a, const void *b)
{
    const struct repro_replay_conn *x = a, *y = b;
    if (x->open_at_us != y->open_at_us)
        return x->open_at_us < y->open_at_us ? -1 : 1;
    return x->steps[0] < y->steps[0] ? -1 : x->steps[0] > y->steps[0];
}

/* Number of answers (sorted by time) completed strictly before t. */
static size_t answers_before(struct item *const *by_ans, size_t n, int64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (by_ans[mid]->ans < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void repro_replay_plan_free(struct repro_replay_plan *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_conns; i++)
        repro_free(p->conns[i].steps);
    repro_free(p->conns);
    repro_free(p->steps);
    repro_free(p);
}

int repro_replay_plan_build(const struct repro_replay_req *reqs, size_t n,
                            struct repro_replay_plan **out, struct repro_error *err)
{
    struct item *items = NULL;
    struct item **order = NULL, **by_ans = NULL;
    struct repro_replay_plan *p = NULL;
    size_t n_ans = 0, n_conns = 0;
    int rc = REPRO_E_NOMEM;

    *out = NULL;
    if (n == 0)
        return repro_error_set(err, REPRO_E_INVAL, "cannot plan a replay: no requests selected");
    items = repro_calloc(n, sizeof *items);
    order = repro_calloc(n, sizeof *order);
    by_ans = repro_calloc(n, sizeof *by_ans);
    p = repro_calloc(1, sizeof *p);
    if (!items || !order || !by_ans || !p)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        items[i].r = &reqs[i];
        items[i].in = i;
    }

    /* Clamp times along each connection, number the connections. */
    qsort(items, n, sizeof *items, by_conn_seq);
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        int first = i == 0 || items[i - 1].r->conn_id != it->r->conn_id;
        if (first)
            n_conns++;
        it->conn = n_conns - 1;
        it->sent = it->r->sent_us;
        if (!first && it->sent < items[i - 1].sent)
            it->sent = items[i - 1].sent;
        it->ans = it->r->answered_us < 0 ? -1
                  : it->r->answered_us < it->sent ? it->sent : it->r->answered_us;
    }

    for (size_t i = 0; i < n; i++)
        order[i] = &items[i];
    qsort(order, n, sizeof *order, by_send);
    for (size_t i = 0; i < n; i++) {
        order[i]->send_pos = i;
        if (order[i]->ans >= 0)
            by_ans[n_ans++] = order[i];
    }
    qsort(by_ans, n_ans, sizeof *by_ans, by_answer);

    p->steps = repro_calloc(n, sizeof *p->steps);
    p->conns = repro_calloc(n_conns, sizeof *p->conns);
    if (!p->steps || !p->conns)
        goto fail;
    p->n_steps = n;
    p->n_conns = n_conns;
    p->n_answers = n_ans;
    p->start_us = order[0]->sent;

    for (size_t i = 0; i < n; i++) {
        struct repro_replay_step *s = &p->steps[i];
        s->req = order[i]->in;
        s->at_us = order[i]->sent - p->start_us;
        s->after_answers = answers_before(by_ans, n_ans, order[i]->sent);
        s->answer_rank = SIZE_MAX;
        int64_t end = order[i]->ans >= 0 ? order[i]->ans : order[i]->sent;
        if (end - p->start_us > p->duration_us)
            p->duration_us = end - p->start_us;
    }
    for (size_t k = 0; k < n_ans; k++)
        p->steps[by_ans[k]->send_pos].answer_rank = k;

    /* Connections: their steps in seq order (items is in conn/seq order). */
    for (size_t i = 0, c = 0; i < n; c++) {
        size_t j = i;
        while (j < n && items[j].conn == c)
            j++;
        struct repro_replay_conn *rc_ = &p->conns[c];
        rc_->conn_id = items[i].r->conn_id;
        rc_->n_steps = j - i;
        rc_->steps = repro_malloc((j - i) * sizeof *rc_->steps);
        if (!rc_->steps)
            goto fail;
        int64_t last_end = 0;
        for (size_t k = i; k < j; k++) {
            size_t pos = items[k].send_pos;
            rc_->steps[k - i] = pos;
            if (k > i) {
                const struct item *prev = &items[k - 1];
                p->steps[pos].pipelined = prev->ans < 0 || prev->ans >= items[k].sent;
            }
            int64_t end = (items[k].ans >= 0 ? items[k].ans : items[k].sent) - p->start_us;
            if (end > last_end)
                last_end = end;
        }
        int64_t first_at = p->steps[rc_->steps[0]].at_us;
        int64_t opened = items[i].r->conn_opened_us;
        /* May be negative (opened before the first selected request) until
         * the connections are sorted: the replay opens those at once, in
         * the order they opened. */
        rc_->open_at_us = opened < 0 ? first_at : opened - p->start_us;
        if (rc_->open_at_us > first_at)
            rc_->open_at_us = first_at;
        int64_t closed = items[i].r->conn_closed_us;
        rc_->close_at_us = closed < 0 || closed - p->start_us < last_end ? -1 : closed - p->start_us;
        i = j;
    }
    /* Each step's connection index follows the order of opening. */
    qsort(p->conns, n_conns, sizeof *p->conns, conn_by_open);
    for (size_t c = 0; c < n_conns; c++) {
        if (p->conns[c].open_at_us < 0)
            p->conns[c].open_at_us = 0;
    }
    for (size_t c = 0; c < n_conns; c++)
        for (size_t k = 0; k < p->conns[c].n_steps; k++)
            p->steps[p->conns[c].steps[k]].conn = c;

    repro_free(by_ans);
    repro_free(order);
    repro_free(items);
    *out = p;
    return REPRO_OK;
fail:
    repro_free(by_ans);
    repro_free(order);
    repro_free(items);
    repro_replay_plan_free(p);
    return repro_error_set(err, rc, "cannot plan a replay of %zu requests: out of memory", n);
}

int repro_replay_frontier_init(struct repro_replay_frontier *f, size_t n_answers)
{
    memset(f, 0, sizeof *f);
    f->done = repro_calloc(n_answers ? n_answers : 1, 1);
    if (!f->done)
        return REPRO_E_NOMEM;
    f->n = n_answers;
    return REPRO_OK;
}

void repro_replay_frontier_release(struct repro_replay_frontier *f)
{
    if (!f)
        return;
    repro_free(f->done);
    memset(f, 0, sizeof *f);
}

size_t repro_replay_frontier_mark(struct repro_replay_frontier *f, size_t rank)
{
    if (rank < f->n)
        f->done[rank] = 1;
    while (f->frontier < f->n && f->done[f->frontier])
        f->frontier++;
    return f->frontier;
}
