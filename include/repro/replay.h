/*
 * repro replay: recorded requests against a staging build. This header
 * grows with the replayer (docs/architecture.md); today it holds the
 * schedule: what a run sends, on which connection, when, and after what.
 */
#ifndef REPRO_REPLAY_H
#define REPRO_REPLAY_H

#include "repro/core.h"

#include <stdatomic.h>
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
    int64_t client_key;     /* the recorded client (e.g. a hash of its address): values
                               are carried over between requests of one client only */
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
/* The most a staging body's gzip/deflate coding is undone to: past it the
 * body is compared cut (and counted in the summary), never held whole. */
#define REPRO_REPLAY_DECODE_CAP (64u << 20)

struct repro_compare_msg {
    int status;                        /* 0: no response */
    const struct repro_http_head *head; /* NULL: headers not compared */
    struct repro_slice body;           /* the body as stored (transfer coding removed) */
    int body_cut;                      /* 1: body holds only a prefix of the real body */
    const uint8_t *digest;             /* SHA-256 of the whole body, or NULL */
    int decoded; /* 1: body had its content coding undone; Content-Encoding is then not
                    compared (capture stores decoded bodies without it) */
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

/* ---- the sender (replay/engine.c) --------------------------------------- */

struct sockaddr;

/* Why a replayed request got no response. Values are stored; never change. */
enum repro_replay_errkind {
    REPRO_REPLAY_OK = 0,
    REPRO_REPLAY_REFUSED,   /* connect refused */
    REPRO_REPLAY_CONNECT,   /* connect failed otherwise (unreachable, timed out) */
    REPRO_REPLAY_RESET,     /* the target reset the connection */
    REPRO_REPLAY_CLOSED,    /* the target closed the connection before answering */
    REPRO_REPLAY_TIMEOUT,   /* no complete response within the timeout */
    REPRO_REPLAY_MALFORMED, /* the response could not be framed */
    REPRO_REPLAY_WRITE,     /* the request could not be written */
    REPRO_REPLAY_ERR__COUNT
};
/* "ok", "refused", ... (static, never NULL). */
const char *repro_replay_errkind_name(enum repro_replay_errkind k);

/*
 * Live counts of a run for a progress line. The run's threads add to them
 * with relaxed atomics; any thread may read them at any time (a reading is
 * a moment stale, never torn). Zero-initialise; borrowed for the run.
 */
#define REPRO_REPLAY_HIST_BUCKETS 512
struct repro_replay_progress {
    _Atomic uint64_t sent; /* requests written (or failed writing) */
    /* compared so far, before noise is known (the final verdicts may move
     * a mismatch to match); errors include timeouts */
    _Atomic uint64_t matched, mismatched, errors, unanswered;
    /* schedule errors (actual - intended send time) in log-linear buckets
     * (12.5% wide), at a set speed only */
    _Atomic uint64_t sched_hist[REPRO_REPLAY_HIST_BUCKETS];
};
/* The q-quantile (0..1) of the schedule errors so far in ns, the upper
 * edge of its bucket; 0 before any. Thread-safe. */
int64_t repro_replay_progress_sched_ns(const struct repro_replay_progress *p, double q);

struct repro_replay_opts {
    const struct sockaddr *target; /* borrowed for the run */
    unsigned target_len;
    double speed;         /* 1: recorded pace, 2: twice as fast; 0: max (as fast as answered) */
    double rate;          /* cap in requests per second, 0: none */
    unsigned connections; /* cap on open connections, 0: none */
    unsigned loops;       /* the whole plan this many times (0 counts as 1) */
    int timeout_ms;       /* per request, from its send (0: 10000) */
    size_t max_response;  /* response bytes kept per request (0: 1 MiB); the rest counted */
    /* Optional, called just before input request `req` is written, on the
     * sender thread or (speed max, see no_inline_send) the reader's, never
     * on both at once: may replace *bytes (the recorded ones) with bytes
     * owned by ctx that stay valid until the next call. Keep it cheap: it
     * runs between the deadline and the write. Non-zero fails the request
     * (kind WRITE) without sending it. */
    int (*prepare)(void *ctx, size_t req, struct repro_slice *bytes);
    void *prepare_ctx;
    struct repro_replay_progress *progress; /* live counts, or NULL */
    int sched_fifo; /* 1: the sender tries SCHED_FIFO (lowest priority); without the
                       permission it runs as before (stats.sender_fifo says which) */
    int no_inline_send; /* 1: at speed max too, only the sender thread sends (by default
                           the reader sends what an answer lets go: stats.sent_inline) */
};

/* One request's outcome, handed to the callback on the engine's reader
 * thread. Times are CLOCK_MONOTONIC nanoseconds from the run's start. */
struct repro_replay_result {
    size_t step;         /* index into plan->steps */
    unsigned loop;       /* 0-based iteration */
    int64_t intended_ns; /* when the schedule wanted it sent */
    int64_t sent_ns;     /* when write() of its last byte returned; -1 if not sent */
    int64_t done_ns;     /* response complete or error seen */
    enum repro_replay_errkind error;
    int sys_errno;
    int status;          /* final status (after any 1xx), 0 without response */
    struct repro_slice response; /* raw response bytes as kept; borrowed for the call */
    uint64_t response_bytes;     /* on the wire */
    int response_capped;         /* bytes beyond max_response were not kept */
    int reopened;        /* sent on a connection opened again after the target closed one */
};

/* Returning non-zero stops the run (it returns that code). */
typedef int (*repro_replay_result_fn)(void *ctx, const struct repro_replay_result *r);

struct repro_replay_stats {
    uint64_t sent, answered;
    uint64_t errors[REPRO_REPLAY_ERR__COUNT];
    uint64_t connections_opened; /* connects that succeeded */
    uint64_t reopened;           /* of those, after the target had closed one early */
    uint64_t pipelined;          /* requests written while an earlier one was unanswered */
    uint64_t sent_inline;        /* of sent, written by the reader as an answer let them go */
    /* schedule error: actual - intended send time, ns (not meaningful at speed max) */
    int64_t sched_p50_ns, sched_p99_ns, sched_p999_ns, sched_max_ns;
    int64_t first_send_ns, last_done_ns; /* from the run's start */
    uint64_t start_mono_ns;              /* the run's start (repro_mono_ns) */
    int sender_fifo;                     /* 1: the sender ran under SCHED_FIFO */
    uint64_t sender_rt_dropped; /* times it fell 10 ms behind and ran as a normal thread */
};

/*
 * Sends the plan's requests to o->target and reads every response. reqs[i]
 * are the bytes of input request i (plan->steps[k].req indexes them),
 * borrowed for the run. A sender thread writes each step when its
 * intended time has come (start + at_us / speed, on an absolute clock with
 * a spin before the deadline), the frontier allows it (causal order), and
 * the rate and connection caps allow it; a reader thread frames responses
 * (HEAD, 1xx, chunked, close-delimited) and calls fn once per step per
 * loop, in completion order. A connection the target closes is reopened
 * for its remaining requests; requests in flight on it fail as closed.
 * Returns REPRO_OK when every request got a result (errors by kind are
 * results, counted in *st), a callback's non-zero return, or REPRO_E_IO /
 * REPRO_E_NOMEM when the run itself could not go on.
 */
int repro_replay_run(const struct repro_replay_plan *plan, const struct repro_slice *reqs,
                     const struct repro_replay_opts *o, repro_replay_result_fn fn, void *ctx,
                     struct repro_replay_stats *st, struct repro_error *err);

/* ---- dynamic values (replay/correlate.c) ---------------------------------- */

/*
 * Staging hands out other session cookies, CSRF tokens and ids than
 * production did. The correlator carries them over: a value a recorded
 * response introduced (a Set-Cookie, a Location, a JSON member) that later
 * requests of the same client reuse is replaced, in those requests, by the
 * value the staging response gave in the same place. Redacted values are
 * matched by name: a request field "csrf_token" holding the redaction mark
 * gets the "csrf_token" the staging response gave; a redacted Cookie
 * header gets the cookies staging set for that client (a cookie jar).
 * Thread-safe: observe() on the reader thread, apply() on the sender's.
 */
struct repro_correlator;

/* One substitution made in a request. */
struct repro_corr_subst {
    char kind[16];     /* "cookie", "location", "json", "header", "param" */
    char name[64];     /* cookie, member or field name */
    char old_val[64];  /* excerpts */
    char new_val[64];
};

/*
 * Learns, from the recorded exchanges, the values responses introduced and
 * later requests of the same client reuse. reqs[i] is request i's planner
 * input (client_key, times), requests[i] and responses[i] its recorded raw
 * bytes (a response may be empty). All borrowed for the call. *out is
 * transferred: repro_correlator_free().
 */
int repro_correlator_new(const struct repro_replay_plan *plan, const struct repro_replay_req *reqs,
                         const struct repro_slice *requests, const struct repro_slice *responses,
                         struct repro_correlator **out, struct repro_error *err);
void repro_correlator_free(struct repro_correlator *c);
/* How many recorded values later requests reuse (what can be carried over). */
size_t repro_correlator_n_tokens(const struct repro_correlator *c);
/* Records what the staging response of input request i gave (raw bytes,
 * borrowed for the call). */
void repro_correlator_observe(struct repro_correlator *c, size_t i, struct repro_slice response);
/*
 * Writes request i (its recorded bytes in) into out with the carried-over
 * values substituted (Content-Length fixed when the body changed) and
 * appends what it substituted to subs (up to max_subs; *n_subs counts them
 * all). When *n_subs is 0 nothing changed and out is left as it was: send
 * in (no copy is made). Errors: REPRO_E_NOMEM, REPRO_E_LIMIT (out's cap).
 */
int repro_correlator_apply(struct repro_correlator *c, size_t i, struct repro_slice in,
                           struct repro_buf *out, struct repro_corr_subst *subs, size_t max_subs,
                           size_t *n_subs);

/* ---- noise from a baseline (replay/noise.c) --------------------------------- */

/*
 * With a baseline (a second instance of the known-good build), each request
 * has two comparisons against the recorded response: the target's and the
 * baseline's. A field that differs between two known-good answers is
 * noise. Diffy's rule over a run: a field is a regression only when the
 * target differs on it clearly more often than the baseline does (more
 * than abs_threshold of the requests more often, and more than
 * rel_threshold relatively); and, per request, a target difference on a
 * field where the baseline also differed for that same request is noise.
 */
struct repro_noise;

struct repro_noise_field {
    const char *key;                /* repro_diff.key; owned by the repro_noise */
    uint64_t n_target, n_baseline;  /* requests where each side differed on it */
    int noisy;                      /* after repro_noise_classify() */
};

/* *out is transferred: repro_noise_free(). REPRO_E_NOMEM. */
int repro_noise_new(struct repro_noise **out);
void repro_noise_free(struct repro_noise *n);
/* Counts one request's differences (baseline NULL: none for it). */
int repro_noise_add(struct repro_noise *n, const struct repro_diffs *target,
                    const struct repro_diffs *baseline);
/* Decides which fields are noise (defaults when <= 0: 0.03 and 0.2). */
void repro_noise_classify(struct repro_noise *n, double abs_threshold, double rel_threshold);
/* 1 when target difference d of a request is noise (see above). */
int repro_noise_is_noise(const struct repro_noise *n, const struct repro_diff *d,
                         const struct repro_diffs *baseline);
/* The fields seen, noisy or not; borrowed until repro_noise_free(). */
size_t repro_noise_fields(const struct repro_noise *n, const struct repro_noise_field **out);
/* The rule that would ignore field f ("--ignore-json-path '$.ts'",
 * "--ignore-header 'x-trace'") in buf, or NULL when ignoring it would be
 * too broad (the status, a whole body, a whole array) and *why says so. */
const char *repro_noise_suggest(const struct repro_noise_field *f, char *buf, size_t len,
                                const char **why);

/* ---- a replay run (replay/run.c) --------------------------------------------- */

struct repro_replay_rewrite;

/* One recorded exchange to replay; everything borrowed for the run. */
struct repro_replay_input {
    int64_t exchange_id;
    int64_t conn_id, client_key;
    uint64_t seq;
    int64_t sent_us, answered_us;  /* answered_us -1: production never answered */
    int64_t conn_opened_us, conn_closed_us;
    struct repro_slice request;    /* recorded raw bytes (after redaction) */
    struct repro_slice response;   /* recorded raw bytes, empty when none */
    int response_body_cut;         /* the stored body is a prefix of the real one */
    const uint8_t *response_digest; /* SHA-256 of the whole recorded body, or NULL */
};

enum repro_verdict {
    REPRO_VERDICT_MATCH = 0,
    REPRO_VERDICT_MISMATCH,
    REPRO_VERDICT_ERROR,
    REPRO_VERDICT_TIMEOUT,
    REPRO_VERDICT_CRASH,
    REPRO_VERDICT_UNANSWERED, /* production never answered: nothing to compare */
    REPRO_VERDICT__COUNT
};
/* "match", "mismatch", ... (static). */
const char *repro_verdict_name(enum repro_verdict v);

/* One request's outcome; everything borrowed for the callback. */
struct repro_replay_outcome {
    size_t input;                       /* index into the inputs */
    unsigned loop;
    enum repro_verdict verdict;
    const struct repro_replay_result *result; /* the target's (response bytes kept for
                                                 anything but a match, or always with
                                                 keep_all_responses) */
    const struct repro_diffs *diffs;    /* differences that count (noise removed) */
    size_t n_noise;                     /* differences discarded as noise */
    const struct repro_corr_subst *subs; /* values carried over from staging */
    size_t n_subs;
    int still_redacted;                 /* the request sent still held a redaction mark */
};
typedef int (*repro_replay_outcome_fn)(void *ctx, const struct repro_replay_outcome *o);

struct repro_replay_run_opts {
    struct repro_replay_opts engine;        /* target, speed, caps, timeout (prepare is set
                                               by the run) */
    const struct sockaddr *baseline;        /* a known-good instance, or NULL */
    unsigned baseline_len;
    const struct repro_compare_rules *rules; /* or NULL: defaults */
    int no_correlate;                       /* 1: send the recorded values */
    int keep_all_responses;                 /* 1: keep matches' response bytes too */
    const struct repro_replay_rewrite *rewrite; /* applied after correlation, or NULL
                                                   (repro_replay_rewrite_new is below) */
    size_t decode_cap; /* a decoded body's cap, 0: REPRO_REPLAY_DECODE_CAP */
    /* Optional, called on the engine's reader thread when a request to the
     * target times out (input i), before its connection's next request:
     * a caller that supervises the target records its stacks here (the
     * target is alive but silent: a hang). Blocking it holds the reader. */
    void (*on_timeout)(void *ctx, size_t input);
    void *timeout_ctx;
    /* Where responses are compared: REPRO_COMPARE_AUTO (0: on a thread of
     * its own with 4 or more online CPUs, else on the engine's reader
     * thread), REPRO_COMPARE_THREAD, REPRO_COMPARE_INLINE. On two cores a
     * third busy thread took CPU from the target and the reader: the whole
     * command fell from 0.80x to 0.58x wrk (bench/replay_bench.sh). */
    int compare_where;
};
enum { REPRO_COMPARE_AUTO = 0, REPRO_COMPARE_THREAD = 1, REPRO_COMPARE_INLINE = 2 };

struct repro_replay_summary {
    uint64_t verdicts[REPRO_VERDICT__COUNT];
    uint64_t substitutions, still_redacted, noise_discarded, body_unchecked;
    /* staging bodies whose gzip/deflate coding could not be undone (compared
     * as sent), and those cut at the decoding cap (compared cut) */
    uint64_t decode_failed, decode_capped;
    uint64_t compare_queue_full; /* times the reader waited for the comparer */
    struct repro_replay_stats target, baseline;
    struct repro_noise *noise; /* with a baseline: the fields seen (transferred:
                                  repro_noise_free), else NULL */
};

/*
 * Replays inputs[0..n) against opts->engine.target (and first against the
 * baseline when there is one), compares every response with the recorded
 * one, and calls fn once per request and loop, in completion order, after
 * the run (noise is only known then). Returns REPRO_OK, a non-zero return
 * of fn, or an error from planning or the engine.
 */
int repro_replay_execute(const struct repro_replay_input *inputs, size_t n,
                         const struct repro_replay_run_opts *opts, repro_replay_outcome_fn fn,
                         void *ctx, struct repro_replay_summary *sum, struct repro_error *err);

/* ---- reports (replay/report.c) ---------------------------------------------- */

/* What a report says about the run itself; strings borrowed until close. */
struct repro_replay_report_meta {
    int64_t run_id;      /* -1 when not stored */
    const char *target;  /* "HOST:PORT" */
    const char *baseline; /* or NULL */
    double speed;        /* 0: max */
};

struct repro_replay_report;

/*
 * Opens the report files (either path may be NULL): json_path gets the
 * design's report (docs/formats.md "Replay report"), junit_path JUnit XML
 * with one test case per request, failures carrying the differences. Both
 * are written at close. *out is transferred: repro_replay_report_close().
 */
int repro_replay_report_open(const char *json_path, const char *junit_path,
                             const struct repro_replay_report_meta *meta,
                             struct repro_replay_report **out, struct repro_error *err);
/* Adds one outcome; in is its input. REPRO_E_NOMEM. */
int repro_replay_report_add(struct repro_replay_report *r, const struct repro_replay_outcome *o,
                            const struct repro_replay_input *in);
/* A result's differences and substitutions as JSON arrays (the report's
 * and the database's form). REPRO_E_NOMEM / REPRO_E_LIMIT. */
int repro_replay_diffs_json(struct repro_buf *b, const struct repro_diffs *d);
int repro_replay_subs_json(struct repro_buf *b, const struct repro_corr_subst *subs, size_t n);
/* Writes the files and frees r (accepts NULL). REPRO_E_IO naming the file. */
int repro_replay_report_close(struct repro_replay_report *r, const struct repro_replay_summary *sum,
                              struct repro_error *err);

/* ---- rewriting requests (replay/rewrite.c) ----------------------------------- */

/*
 * What to change in every request before it is sent (after dynamic values
 * were carried over). Strings borrowed for repro_replay_rewrite_new().
 */
struct repro_replay_rewrite_opts {
    const char *host;                 /* --host: the Host header */
    const char *const *set_headers;   /* --set-header "Name: value" */
    size_t n_set_headers;
    const char *const *remove_headers; /* --remove-header Name */
    size_t n_remove_headers;
    const char *const *rewrite_paths; /* --rewrite-path FROM=TO: a path prefix */
    size_t n_rewrite_paths;
    const char *const *set_queries;   /* --set-query NAME=VALUE */
    size_t n_set_queries;
    const char *const *set_cookies;   /* --set-cookie NAME=VALUE */
    size_t n_set_cookies;
    const char *const *set_json_fields; /* --set-json-field PATH=VALUE (VALUE as JSON when it
                                           parses, else a string) */
    size_t n_set_json_fields;
};

struct repro_replay_rewrite;

/* Checks and compiles the options. *out transferred: _free(). NULL *out
 * (and REPRO_OK) when there is nothing to rewrite. REPRO_E_INVAL naming
 * the option that is wrong. */
int repro_replay_rewrite_new(const struct repro_replay_rewrite_opts *o,
                             struct repro_replay_rewrite **out, struct repro_error *err);
void repro_replay_rewrite_free(struct repro_replay_rewrite *rw);
/*
 * Writes request in, rewritten, into out (reset first). A JSON body that
 * a field is set in is written compact with its Content-Length (a chunked
 * one loses its chunking); a body that does not parse is left alone.
 * Errors: REPRO_E_MALFORMED (no complete head: sent as recorded by the
 * caller), REPRO_E_NOMEM, REPRO_E_LIMIT.
 */
int repro_replay_rewrite_apply(const struct repro_replay_rewrite *rw, struct repro_slice in,
                               struct repro_buf *out, struct repro_error *err);

#endif
