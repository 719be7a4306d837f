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

/* ---- response comparison (replay/compare.c) ----------------------------- */

struct repro_http_head;

/*
 * Noise rules. Strings are borrowed for repro_comparer_new() only (they are
 * compiled). By default these headers are not compared: Date, Server,
 * Set-Cookie, Expires, Last-Modified, ETag, Age, Via, X-Request-Id,
 * X-Correlation-Id, Traceparent, X-Amzn-Trace-Id, and the framing headers
 * Content-Length, Transfer-Encoding, Connection, Keep-Alive (the bodies are
 * compared instead).
 */
struct repro_compare_rules {
    int no_default_ignores;            /* 1: compare the headers above too */
    const char *const *ignore_headers; /* more header names (any case) */
    size_t n_ignore_headers;
    const char *const *ignore_json_paths; /* "$.a.b[*].c", "$.items[0]", "$.*.id" */
    size_t n_ignore_json_paths;
    const char *const *masks; /* POSIX extended regexes: matches are replaced by
                                 "<masked>" on both sides, in header values, JSON
                                 strings and non-JSON bodies, before comparing */
    size_t n_masks;
};

struct repro_comparer;

/* Compiles the rules. *out is transferred: free with repro_comparer_free().
 * Errors: REPRO_E_INVAL naming the rule (a JSON path that does not parse, a
 * regex that does not compile), REPRO_E_NOMEM. */
int repro_comparer_new(const struct repro_compare_rules *rules, struct repro_comparer **out,
                       struct repro_error *err);
void repro_comparer_free(struct repro_comparer *c);

/* One side of a comparison; everything borrowed for the call. */
struct repro_compare_msg {
    int status;                        /* 0: no response */
    const struct repro_http_head *head; /* NULL: headers not compared */
    struct repro_slice body;           /* the body as stored (transfer coding removed) */
    int body_cut;                      /* 1: body holds only a prefix of the real body */
    const uint8_t *digest;             /* SHA-256 of the whole body, or NULL */
};

enum repro_diff_kind {
    REPRO_DIFF_STATUS = 0,
    REPRO_DIFF_HEADER,          /* header values differ */
    REPRO_DIFF_HEADER_MISSING,  /* recorded header absent from the actual response */
    REPRO_DIFF_HEADER_EXTRA,    /* header only in the actual response */
    REPRO_DIFF_BODY,            /* bytes differ (first differing offset in where) */
    REPRO_DIFF_BODY_DIGEST,     /* a body too big to store: digests differ */
    REPRO_DIFF_JSON_VALUE,      /* same JSON path, other value */
    REPRO_DIFF_JSON_TYPE,       /* same JSON path, other type */
    REPRO_DIFF_JSON_MISSING,    /* recorded member or element absent */
    REPRO_DIFF_JSON_EXTRA,      /* member or element only in the actual body */
    REPRO_DIFF__COUNT
};
/* "status", "header", ... (static; never NULL). */
const char *repro_diff_kind_name(enum repro_diff_kind k);

/* One difference. Strings are owned by the repro_diffs that holds it. */
struct repro_diff {
    enum repro_diff_kind kind;
    char *where;    /* "status", "header Content-Type", "$.user.name", "body at byte 17" */
    char *key;      /* where with array indexes as [*] and header names lower case: for
                       counting the same field over many requests */
    char *expected; /* recorded value, an excerpt (printable, at most ~120 bytes) */
    char *actual;   /* actual value, an excerpt */
};

struct repro_diffs {
    struct repro_diff *v;
    size_t n, cap;
    int body_unchecked; /* the body could not be compared (cut, no digest to compare) */
};
/* Frees the diffs' strings and array; d can be reused (accepts NULL). */
void repro_diffs_release(struct repro_diffs *d);

/*
 * Compares an actual response with the recorded one and appends every
 * difference to out (empty: they match). The recorded side's redaction
 * mark (REPRO_REDACT_MARK) matches any text in its place. Bodies are
 * compared as JSON when both parse as JSON (jansson), else byte for byte;
 * a recorded body that was cut is compared by digest when both digests
 * are known. Errors: REPRO_E_NOMEM only.
 */
int repro_compare(const struct repro_comparer *c, const struct repro_compare_msg *recorded,
                  const struct repro_compare_msg *actual, struct repro_diffs *out,
                  struct repro_error *err);

#endif
