/*
 * Unit tests for the replay schedule (replay/schedule.c): handmade traces,
 * then random recorded traces replayed by a simulated sender that follows
 * the plan while the target answers in a random order (per connection in
 * order, as HTTP/1.1 does). Oracle, naive O(n^2): every request was sent
 * only after every response that had completed before it in the recording
 * had completed in the simulation; no run deadlocks; every connection
 * sends its requests in seq order. REPLAY_SEEDS=N runs more seeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repro/replay.h"

static struct repro_replay_plan *plan_of(const struct repro_replay_req *r, size_t n)
{
    struct repro_replay_plan *p = NULL;
    struct repro_error err = {0};
    assert_int_equal(repro_replay_plan_build(r, n, &p, &err), REPRO_OK);
    assert_non_null(p);
    return p;
}

/* The step planned for input request i. */
static const struct repro_replay_step *step_of(const struct repro_replay_plan *p, size_t i)
{
    for (size_t k = 0; k < p->n_steps; k++)
        if (p->steps[k].req == i)
            return &p->steps[k];
    fail_msg("request %zu not planned", i);
    return NULL;
}

static void test_login_then_use(void **state)
{
    (void)state;
    /* conn 7: POST /login at 1000, answered 1010, then GET /a at 1050 on
     * the same connection; conn 9 opened at 990: GET /me at 1005 (before
     * the login answer) and GET /me at 1020 (after it). */
    const struct repro_replay_req r[] = {
        {.exchange_id = 1, .conn_id = 7, .seq = 0, .sent_us = 1000, .answered_us = 1010,
         .conn_opened_us = 995, .conn_closed_us = 2000},
        {.exchange_id = 2, .conn_id = 9, .seq = 0, .sent_us = 1005, .answered_us = 1030,
         .conn_opened_us = 990, .conn_closed_us = -1},
        {.exchange_id = 3, .conn_id = 9, .seq = 1, .sent_us = 1020, .answered_us = 1040,
         .conn_opened_us = 990, .conn_closed_us = -1},
        {.exchange_id = 4, .conn_id = 7, .seq = 1, .sent_us = 1050, .answered_us = 1060,
         .conn_opened_us = 995, .conn_closed_us = 2000},
    };
    struct repro_replay_plan *p = plan_of(r, 4);

    assert_int_equal(p->n_steps, 4);
    assert_int_equal(p->n_answers, 4);
    assert_int_equal(p->start_us, 1000);
    assert_int_equal(p->duration_us, 60);
    /* send order follows recorded time */
    assert_int_equal(p->steps[0].req, 0);
    assert_int_equal(p->steps[1].req, 1);
    assert_int_equal(p->steps[2].req, 2);
    assert_int_equal(p->steps[3].req, 3);
    assert_int_equal(step_of(p, 1)->at_us, 5);
    assert_int_equal(step_of(p, 0)->after_answers, 0);
    assert_int_equal(step_of(p, 1)->after_answers, 0); /* login not answered yet */
    assert_int_equal(step_of(p, 2)->after_answers, 1); /* after the login answer */
    assert_int_equal(step_of(p, 3)->after_answers, 3); /* login, /me, /me */
    assert_int_equal(step_of(p, 0)->answer_rank, 0);
    assert_int_equal(step_of(p, 1)->answer_rank, 1);
    /* /me #1 was still unanswered when /me #2 went out on conn 9 */
    assert_true(step_of(p, 2)->pipelined);
    assert_false(step_of(p, 3)->pipelined);
    /* connections in order of opening: 9 (990, clamped to 0), then 7 */
    assert_int_equal(p->n_conns, 2);
    assert_int_equal(p->conns[0].conn_id, 9);
    assert_int_equal(p->conns[0].open_at_us, 0);
    assert_int_equal(p->conns[0].close_at_us, -1);
    assert_int_equal(p->conns[1].conn_id, 7);
    assert_int_equal(p->conns[1].close_at_us, 1000);
    assert_int_equal(p->conns[1].n_steps, 2);
    assert_int_equal(p->steps[p->conns[1].steps[1]].req, 3);
    assert_int_equal(step_of(p, 3)->conn, 1);
    repro_replay_plan_free(p);
}

static void test_unanswered_and_backwards_time(void **state)
{
    (void)state;
    /* The answer of request 0 was lost; request 2 claims to be sent before
     * request 1 of its own connection, and answered before it was sent. */
    const struct repro_replay_req r[] = {
        {.conn_id = 1, .seq = 0, .sent_us = 100, .answered_us = -1, .conn_opened_us = -1,
         .conn_closed_us = -1},
        {.conn_id = 2, .seq = 0, .sent_us = 200, .answered_us = 250, .conn_opened_us = -1,
         .conn_closed_us = -1},
        {.conn_id = 2, .seq = 1, .sent_us = 150, .answered_us = 120, .conn_opened_us = -1,
         .conn_closed_us = -1},
        {.conn_id = 1, .seq = 1, .sent_us = 300, .answered_us = 310, .conn_opened_us = -1,
         .conn_closed_us = 305},
    };
    struct repro_replay_plan *p = plan_of(r, 4);

    assert_int_equal(p->n_answers, 3);
    assert_int_equal(step_of(p, 0)->answer_rank, SIZE_MAX);
    assert_true(step_of(p, 3)->pipelined); /* its predecessor never answered */
    /* request 2 is clamped to its predecessor's send time and answer */
    assert_int_equal(step_of(p, 2)->at_us, step_of(p, 1)->at_us);
    assert_true(step_of(p, 2)->after_answers <= step_of(p, 2)->answer_rank);
    assert_int_equal(step_of(p, 3)->after_answers, 2);
    /* closed before its last answer: close after the last response */
    assert_int_equal(p->conns[0].close_at_us, -1);
    repro_replay_plan_free(p);

    struct repro_error err = {0};
    assert_int_equal(repro_replay_plan_build(r, 0, &p, &err), REPRO_E_INVAL);
    assert_null(p);
    assert_non_null(strstr(err.msg, "no requests"));
}

static void test_frontier(void **state)
{
    (void)state;
    struct repro_replay_frontier f;
    assert_int_equal(repro_replay_frontier_init(&f, 4), REPRO_OK);
    assert_int_equal(repro_replay_frontier_mark(&f, 2), 0);
    assert_int_equal(repro_replay_frontier_mark(&f, 0), 1);
    assert_int_equal(repro_replay_frontier_mark(&f, 1), 3);
    assert_int_equal(repro_replay_frontier_mark(&f, 1), 3);
    assert_int_equal(repro_replay_frontier_mark(&f, 99), 3);
    assert_int_equal(repro_replay_frontier_mark(&f, 3), 4);
    repro_replay_frontier_release(&f);
    repro_replay_frontier_release(NULL);
    assert_int_equal(repro_replay_frontier_init(&f, 0), REPRO_OK);
    assert_int_equal(repro_replay_frontier_mark(&f, 0), 0);
    repro_replay_frontier_release(&f);
}

/* ---- random traces against a simulated sender --------------------------- */

static uint64_t rng;
static uint32_t rnd(uint32_t n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33) % n;
}

/* A recorded trace: connections of keep-alive requests, some pipelined,
 * coarse clock (ties on purpose), some answers lost. insane: arbitrary
 * times. */
static size_t make_trace(struct repro_replay_req *r, size_t cap, int insane)
{
    size_t n = 0, n_conns = 1 + rnd(8);
    for (size_t c = 0; c < n_conns && n < cap; c++) {
        int64_t t = rnd(50) * 10;
        size_t k = 1 + rnd(12);
        int64_t prev_ans = -1;
        for (size_t s = 0; s < k && n < cap; s++) {
            struct repro_replay_req *q = &r[n++];
            int pipeline = rnd(4) == 0;
            if (!pipeline && prev_ans >= 0 && t <= prev_ans)
                t = prev_ans + rnd(3) * 10;
            q->conn_id = (int64_t)(c * 3 + 11);
            q->seq = s;
            q->sent_us = insane ? (int64_t)rnd(500) : t;
            q->answered_us = rnd(10) == 0 ? -1 : insane ? (int64_t)rnd(500) : t + rnd(20) * 10;
            q->conn_opened_us = -1;
            q->conn_closed_us = -1;
            if (q->answered_us >= 0)
                prev_ans = q->answered_us > prev_ans ? q->answered_us : prev_ans;
            t += rnd(4) * 10;
        }
    }
    return n;
}

enum { MAXN = 120 };

static void simulate(const struct repro_replay_req *r, size_t n, int insane)
{
    struct repro_replay_plan *p = plan_of(r, n);
    struct repro_replay_frontier f;
    size_t next[MAXN] = {0};     /* per conn: next step to send */
    size_t answered[MAXN] = {0}; /* per conn: steps answered (in order) */
    long sent_at[MAXN], done_at[MAXN];
    long clock = 0;

    assert_int_equal(repro_replay_frontier_init(&f, p->n_answers), REPRO_OK);
    for (size_t i = 0; i < n; i++)
        sent_at[i] = done_at[i] = -1;

    for (;;) {
        /* candidates: sends whose constraints hold, answers in flight */
        size_t cand[2 * MAXN][2], n_cand = 0;
        for (size_t c = 0; c < p->n_conns; c++) {
            const struct repro_replay_conn *cn = &p->conns[c];
            if (next[c] < cn->n_steps) {
                const struct repro_replay_step *s = &p->steps[cn->steps[next[c]]];
                if (s->after_answers <= f.frontier) {
                    cand[n_cand][0] = 0;
                    cand[n_cand++][1] = c;
                }
            }
            if (answered[c] < next[c]) {
                cand[n_cand][0] = 1;
                cand[n_cand++][1] = c;
            }
        }
        if (n_cand == 0)
            break;
        size_t pick = rnd((uint32_t)n_cand), c = cand[pick][1];
        const struct repro_replay_conn *cn = &p->conns[c];
        if (cand[pick][0] == 0) {
            sent_at[p->steps[cn->steps[next[c]]].req] = clock++;
            next[c]++;
        } else {
            const struct repro_replay_step *s = &p->steps[cn->steps[answered[c]]];
            done_at[s->req] = clock++;
            /* an answer lost in the recording: the replay still gets one
             * (or an error), and only recorded answers have ranks */
            if (s->answer_rank != SIZE_MAX)
                repro_replay_frontier_mark(&f, s->answer_rank);
            answered[c]++;
        }
    }

    /* no deadlock: everything sent and answered */
    for (size_t i = 0; i < n; i++) {
        if (sent_at[i] < 0 || done_at[i] < 0)
            fail_msg("seed %llu: request %zu never %s", (unsigned long long)rng, i,
                     sent_at[i] < 0 ? "sent" : "answered");
    }
    /* per connection in seq order */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (r[i].conn_id == r[j].conn_id && r[i].seq < r[j].seq && sent_at[i] > sent_at[j])
                fail_msg("request %zu (seq %llu) sent after %zu (seq %llu) on one connection", i,
                         (unsigned long long)r[i].seq, j, (unsigned long long)r[j].seq);
    /* causal order (sane traces: recorded times are the truth) */
    if (!insane)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                if (j != i && r[j].answered_us >= 0 && r[j].answered_us < r[i].sent_us &&
                    done_at[j] > sent_at[i])
                    fail_msg("request %zu sent before the answer of %zu, which the recording "
                             "had before it (%lld < %lld)",
                             i, j, (long long)r[j].answered_us, (long long)r[i].sent_us);
    repro_replay_frontier_release(&f);
    repro_replay_plan_free(p);
}

static void test_random_traces(void **state)
{
    (void)state;
    const char *env = getenv("REPLAY_SEEDS");
    unsigned seeds = env ? (unsigned)strtoul(env, NULL, 10) : 400;
    struct repro_replay_req r[MAXN];
    for (unsigned seed = 1; seed <= seeds; seed++) {
        rng = seed;
        for (int insane = 0; insane < 2; insane++) {
            size_t n = make_trace(r, MAXN, insane);
            for (int run = 0; run < 4; run++)
                simulate(r, n, insane);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_then_use),
        cmocka_unit_test(test_unanswered_and_backwards_time),
        cmocka_unit_test(test_frontier),
        cmocka_unit_test(test_random_traces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
