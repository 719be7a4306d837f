/*
 * repro replay: recorded requests against a staging build. This header
 * grows with the replayer (docs/architecture.md); today it holds the
 * schedule: what a run sends, on which connection, when, and after what.
 */
#ifndef REPRO_REPLAY_H
#define REPRO_REPLAY_H

#include "repro/core.h"

#include <stddef.h>
#include <stdint.h>

/* ---- the schedule (replay/schedule.c) ----------------------------------- */

/*
 * One recorded request, the planner's input. Times are the recording's
 * wall clock in microseconds.
 */
struct repro_replay_req {
    int64_t exchange_id;
    int64_t conn_id;        /* recorded connection: equal ids share one replay connection */
    uint64_t seq;           /* position on its connection */
    int64_t sent_us;        /* the request's first byte was sent */
    int64_t answered_us;    /* the response's last byte arrived; -1: no response recorded */
    int64_t conn_opened_us; /* -1 when unknown */
    int64_t conn_closed_us; /* -1 when unknown or still open at the capture's end */
};

/* One planned send. */
struct repro_replay_step {
    size_t req;          /* index into the planner's input */
    size_t conn;         /* index into plan->conns */
    int64_t at_us;       /* intended send time: offset from the run's start at speed 1 */
    /*
     * Causal order: the step may be sent only once the first
     * after_answers answers in the recorded completion order have
     * completed in the replay (every response that had completed before
     * this request was sent in the recording). A replayed response that
     * fails (reset, timeout) counts as completed.
     */
    size_t after_answers;
    size_t answer_rank;  /* this request's place in the completion order; SIZE_MAX: no answer */
    int pipelined;       /* sent while the previous request of its connection was unanswered */
};

/* One replay connection: the steps of one recorded connection, in order. */
struct repro_replay_conn {
    int64_t conn_id;
    size_t *steps;       /* indexes into plan->steps, in recorded order */
    size_t n_steps;
    int64_t open_at_us;  /* offset at which the recorded connection opened (<= its first step) */
    int64_t close_at_us; /* offset at which it closed; -1: after its last response */
};

struct repro_replay_plan {
    struct repro_replay_step *steps; /* in send order: at_us, then connection, then seq */
    size_t n_steps;
    struct repro_replay_conn *conns; /* in order of opening */
    size_t n_conns;
    size_t n_answers;                /* steps with a recorded answer */
    int64_t start_us;                /* recording time of offset 0 */
    int64_t duration_us;             /* offset of the last step's answer (or send) */
};

/*
 * Builds the schedule of n requests (borrowed for the call). Requests of
 * one connection keep their seq order; a recorded time that runs backwards
 * (clock steps, corrupt input) is clamped so that no request waits for an
 * answer recorded after it was sent, which keeps the causal order free of
 * cycles. *out is transferred: free with repro_replay_plan_free().
 * Errors: REPRO_E_NOMEM; REPRO_E_INVAL when n is 0.
 */
int repro_replay_plan_build(const struct repro_replay_req *reqs, size_t n,
                            struct repro_replay_plan **out, struct repro_error *err);
/* Accepts NULL. */
void repro_replay_plan_free(struct repro_replay_plan *p);

/*
 * Which answers have completed: the replay marks each answer_rank as it
 * completes; frontier is how many answers, from the first in recorded
 * completion order, have all completed. A step with after_answers <=
 * frontier may be sent. Embedded by the caller: init/release.
 */
struct repro_replay_frontier {
    uint8_t *done;
    size_t n, frontier;
};
int repro_replay_frontier_init(struct repro_replay_frontier *f, size_t n_answers);
void repro_replay_frontier_release(struct repro_replay_frontier *f);
/* Marks answer rank as completed (idempotent; ranks >= n are ignored) and
 * returns the new frontier. */
size_t repro_replay_frontier_mark(struct repro_replay_frontier *f, size_t rank);

#endif
