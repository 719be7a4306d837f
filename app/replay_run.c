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

#include "app/crash_rows.h"
#include "app/symbolize_store.h"
#include "repro/capture.h"
#include "repro/crash.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <wordexp.h>
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

/* The client's address, without the port, as a key. */
static int64_t client_key(const char *client)
{
    const char *end = strrchr(client, ':');
    return (int64_t)(repro_hash_bytes(client, end ? (size_t)(end - client) : strlen(client)) >> 1);
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
    /* the form the store keeps servers in, so they compare as text */
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        repro_endpoint_format(text, text_len, 6, a->sin6_addr.s6_addr, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        repro_endpoint_format(text, text_len, 4, (const uint8_t *)&a->sin_addr, ntohs(a->sin_port));
    }
    return REPRO_OK;
}

/* ---- staging under the supervisor (--exec) ------------------------------ */

#define MAX_STAGING_CRASHES 64
#define MAX_STAGING_HANGS 4         /* stack records of a silent staging per run */
#define HANG_RECORD_TIMEOUT_MS 5000

struct staging {
    struct repro_supervisor *sup;
    struct repro_store *store; /* the tracer thread's own handle */
    pthread_mutex_t m;
    uint64_t crash_ns[MAX_STAGING_CRASHES]; /* repro_mono_ns when seen */
    int64_t crash_id[MAX_STAGING_CRASHES];
    size_t n;
    int64_t hang_id[MAX_STAGING_HANGS]; /* records taken when a request timed out */
    size_t n_hangs, hangs_asked;        /* hangs_asked: the reader thread's */
    int port;
};

/* On the tracer thread, before the signal is delivered: the record is
 * committed while the process is held. */
static void on_staging_crash(void *ctx, const struct repro_crash *c,
                             const struct repro_supervisor_crash_info *info)
{
    struct staging *st = ctx;
    int64_t id = -1;
    struct repro_error e = {0};
    if (st->store && repro_app_store_crash(st->store, c, &id, &e) != REPRO_OK)
        id = -1;
    pthread_mutex_lock(&st->m);
    if (c->signo == 0) { /* a hang record (on_staging_timeout), not a crash */
        if (st->n_hangs < MAX_STAGING_HANGS)
            st->hang_id[st->n_hangs++] = id;
    } else if (st->n < MAX_STAGING_CRASHES) {
        st->crash_ns[st->n] = info->seen_ns;
        st->crash_id[st->n] = id;
        st->n++;
    }
    pthread_mutex_unlock(&st->m);
}

/* On the engine's reader thread: a request timed out while staging runs.
 * Its stacks are recorded now, while it still hangs (a few per run: every
 * request in flight times out together when staging hangs). */
static void on_staging_timeout(void *ctx, size_t input)
{
    struct staging *st = ctx;
    struct repro_supervisor_result res;
    struct repro_error e = {0};
    (void)input;
    if (st->hangs_asked >= MAX_STAGING_HANGS ||
        repro_supervisor_wait(st->sup, 0, &res, NULL) != REPRO_SUPERVISOR_RUNNING)
        return;
    st->hangs_asked++;
    if (repro_supervisor_record_now(st->sup, HANG_RECORD_TIMEOUT_MS, &e) != REPRO_OK)
        repro_log(REPRO_LOG_WARN, "replay", "cannot record the stacks of staging: %s", e.msg);
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int accepts(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts o->exec with {port} replaced and waits until it accepts. */
static int staging_start(const struct repro_app_replay_opts *o, const char *db, struct staging *st,
                         struct repro_error *err)
{
    char cmd[4096];
    size_t n = 0;
    int rc;

    if ((st->port = free_port()) < 0)
        return repro_error_set(err, REPRO_E_IO, "cannot find a free port for --exec: %s",
                               strerror(errno));
    for (const char *p = o->exec; *p && n + 8 < sizeof cmd; p++) {
        if (strncmp(p, "{port}", 6) == 0) {
            n += (size_t)snprintf(cmd + n, sizeof cmd - n, "%d", st->port);
            p += 5;
        } else {
            cmd[n++] = *p;
        }
    }
    cmd[n] = 0;
    /* crashes are stored from the tracer thread: a handle of its own */
    if ((rc = repro_store_open(db, 0, &st->store, err)) != REPRO_OK)
        return rc;
    /* A plain command line is split like the shell would (wordexp, no
     * command substitution) and run directly, so that the supervisor traces
     * and stops the server itself; one with shell syntax (&&, |, ;) runs
     * under sh -c with its children traced. */
    wordexp_t we;
    char *sh_argv[] = {"/bin/sh", "-c", cmd, NULL};
    int split = wordexp(cmd, &we, WRDE_NOCMD) == 0;
    struct repro_supervisor_opts so = {.argv = split && we.we_wordc ? we.we_wordv : sh_argv,
                                       .service = "staging", .follow_forks = !split,
                                       .on_crash = on_staging_crash, .ctx = st};
    rc = repro_supervisor_start(&so, &st->sup, err);
    if (split)
        wordfree(&we);
    if (rc != REPRO_OK)
        return rc;
    int wait_ms = o->exec_wait_ms > 0 ? o->exec_wait_ms : 10000;
    uint64_t deadline = repro_mono_ns() + (uint64_t)wait_ms * 1000000u;
    while (!accepts(st->port)) {
        struct pollfd pf = {.fd = repro_supervisor_fd(st->sup), .events = POLLIN};
        if (poll(&pf, 1, 20) > 0) {
            struct repro_supervisor_result res;
            repro_supervisor_wait(st->sup, 0, &res, NULL);
            return repro_error_set(err, REPRO_E_IO,
                                   "staging '%s' ended (exit code %d) before accepting connections "
                                   "on port %d",
                                   cmd, res.exit_code, st->port);
        }
        if (repro_mono_ns() > deadline)
            return repro_error_set(err, REPRO_E_IO,
                                   "staging '%s' did not accept connections on port %d within %d ms",
                                   cmd, st->port, wait_ms);
    }
    return REPRO_OK;
}

static void staging_stop(struct staging *st)
{
    if (st->sup) {
        repro_supervisor_stop(st->sup, SIGTERM, 2000, NULL);
        repro_supervisor_free(st->sup);
        st->sup = NULL;
    }
    repro_store_close(st->store);
    st->store = NULL;
}

/* 1 when the staging process crashed while this request was in flight:
 * from when it was due to go out (the server may read it and die before
 * write() returns to the sender) to when its connection failed. */
static int crashed_in_flight(struct staging *st, const struct repro_replay_result *r,
                             uint64_t start_mono_ns)
{
    int hit = 0;
    if (!st || r->error == REPRO_REPLAY_OK || r->sent_ns < 0)
        return 0;
    pthread_mutex_lock(&st->m);
    for (size_t i = 0; i < st->n && !hit; i++) {
        int64_t at = (int64_t)(st->crash_ns[i] - start_mono_ns);
        hit = at >= r->intended_ns && at <= r->done_ns;
    }
    pthread_mutex_unlock(&st->m);
    return hit;
}

/* ---- the live progress line --------------------------------------------- */

void repro_app_replay_progress_line(char *out, size_t out_len, const struct repro_replay_progress *p,
                                    uint64_t total, uint64_t elapsed_ns, int sched)
{
    uint64_t sent = atomic_load_explicit(&p->sent, memory_order_relaxed);
    double secs = (double)elapsed_ns / 1e9, rate = secs > 0 ? (double)sent / secs : 0;
    char eta[32] = "", p99[48] = "";
    if (rate > 0 && sent < total)
        snprintf(eta, sizeof eta, ", ETA %.0f s", (double)(total - sent) / rate);
    if (sched)
        snprintf(p99, sizeof p99, ", schedule p99 %.1f us",
                 (double)repro_replay_progress_sched_ns(p, 0.99) / 1e3);
    snprintf(out, out_len,
             "replay: %llu/%llu sent, %.0f req/s, %llu match, %llu mismatch, %llu error%s%s",
             (unsigned long long)sent, (unsigned long long)total, rate,
             (unsigned long long)atomic_load_explicit(&p->matched, memory_order_relaxed),
             (unsigned long long)atomic_load_explicit(&p->mismatched, memory_order_relaxed),
             (unsigned long long)atomic_load_explicit(&p->errors, memory_order_relaxed), p99, eta);
}

struct progress_ui {
    pthread_mutex_t m;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    int stop;
    pthread_t t;
    struct repro_replay_progress p;
    uint64_t total, t0;
    int sched;
    FILE *f;
};

static void progress_draw(struct progress_ui *u)
{
    char line[256];
    repro_app_replay_progress_line(line, sizeof line, &u->p, u->total, repro_mono_ns() - u->t0,
                                   u->sched);
    fprintf(u->f, "\r%s\033[K", line);
    fflush(u->f);
}

/* Redraws once a second until stopped. */
static void *progress_main(void *arg)
{
    struct progress_ui *u = arg;
    struct timespec ts = repro_deadline_ms(CLOCK_MONOTONIC, 0);
    pthread_mutex_lock(&u->m);
    while (!u->stop) {
        ts.tv_sec++; /* once a second on the same clock: no drift */
        while (!u->stop && pthread_cond_timedwait(&u->cv, &u->m, &ts) != ETIMEDOUT)
            ;
        if (u->stop)
            break;
        progress_draw(u);
    }
    pthread_mutex_unlock(&u->m);
    return NULL;
}

/* Starts the line on f (NULL: none); 0 when it did not start. */
static int progress_start(struct progress_ui *u, FILE *f, uint64_t total, int sched)
{
    pthread_condattr_t ca;
    memset(u, 0, sizeof *u);
    if (!f)
        return 0;
    u->f = f;
    u->total = total;
    u->sched = sched;
    u->t0 = repro_mono_ns();
    pthread_mutex_init(&u->m, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&u->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&u->t, NULL, progress_main, u) != 0) {
        pthread_cond_destroy(&u->cv);
        pthread_mutex_destroy(&u->m);
        u->f = NULL;
        return 0;
    }
    return 1;
}

/* The last state drawn, then the line cleared for the summary. */
static void progress_stop(struct progress_ui *u)
{
    if (!u->f)
        return;
    pthread_mutex_lock(&u->m);
    u->stop = 1;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->m);
    pthread_join(u->t, NULL);
    progress_draw(u);
    fprintf(u->f, "\r\033[K");
    fflush(u->f);
    pthread_cond_destroy(&u->cv);
    pthread_mutex_destroy(&u->m);
    u->f = NULL;
}

struct outcome_ctx {
    const struct repro_app_replay_opts *o;
    const struct repro_replay_input *in;
    struct repro_replay_report *rep;
    struct repro_store *store;
    int64_t run_id;
    struct repro_buf diffs, subs;
    struct repro_error *err;
    struct staging *staging;          /* --exec, or NULL */
    struct repro_replay_summary *sum; /* verdict counts, corrected for crashes */
};

/* One result into the report and the database. */
static int on_outcome(void *ctx, const struct repro_replay_outcome *in_oc)
{
    struct outcome_ctx *x = ctx;
    struct repro_replay_outcome copy = *in_oc;
    const struct repro_replay_outcome *oc = &copy;
    const struct repro_replay_result *r = oc->result;
    /* the staging process died with this request in flight: that is the
     * finding, whatever the connection then said */
    if (crashed_in_flight(x->staging, r, x->sum->target.start_mono_ns)) {
        x->sum->verdicts[copy.verdict]--;
        x->sum->verdicts[REPRO_VERDICT_CRASH]++;
        copy.verdict = REPRO_VERDICT_CRASH;
    }
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
    struct progress_ui ui;
    int rc;

    memset(res, 0, sizeof *res);
    struct staging staging = {.m = PTHREAD_MUTEX_INITIALIZER};
    char exec_target[64];
    const char *target = o->target;
    if (o->exec && !o->dry_run) {
        if ((rc = staging_start(o, o->db, &staging, err)) != REPRO_OK) {
            staging_stop(&staging);
            return rc;
        }
        snprintf(exec_target, sizeof exec_target, "127.0.0.1:%d", staging.port);
        if (!target)
            target = exec_target;
    }
    if (!target) {
        staging_stop(&staging);
        return repro_error_set(err, REPRO_E_INVAL, "cannot replay: no --target (or --exec)");
    }
    if ((rc = resolve("target", target, &tss, &tlen, ttext, sizeof ttext, err)) != REPRO_OK) {
        staging_stop(&staging);
        return rc;
    }
    if (o->baseline &&
        (rc = resolve("baseline", o->baseline, &bss, &blen, btext, sizeof btext, err)) != REPRO_OK) {
        staging_stop(&staging);
        return rc;
    }
    if ((rc = repro_replay_rewrite_new(&o->rewrite, &rw, err)) != REPRO_OK) {
        staging_stop(&staging);
        return rc;
    }
    /* read-write: the run and its results are stored (not for a dry run) */
    if ((rc = repro_store_open(o->db, o->dry_run ? REPRO_STORE_READONLY : 0, &store, err)) !=
        REPRO_OK) {
        repro_replay_rewrite_free(rw);
        staging_stop(&staging);
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
                   .timeout_ms = o->timeout_ms, .sched_fifo = o->realtime},
        .baseline = o->baseline ? (const struct sockaddr *)&bss : NULL,
        .baseline_len = blen,
        .rules = &o->rules,
        .no_correlate = o->no_correlate,
        .rewrite = rw,
        .on_timeout = staging.sup ? on_staging_timeout : NULL,
        .timeout_ctx = &staging};
    struct repro_store_replay_run run = {.started_us = repro_wall_us(), .target = ttext,
                                         .baseline = o->baseline ? btext : NULL,
                                         .speed = o->speed, .selection = o->selection};
    struct outcome_ctx oc = {.o = o, .in = sel.in, .store = store, .err = err,
                             .staging = staging.sup ? &staging : NULL, .sum = &res->sum};
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
    if (progress_start(&ui, o->progress, (uint64_t)sel.n * (o->loops ? o->loops : 1),
                       o->speed > 0))
        ro.engine.progress = &ui.p;
    rc = repro_replay_execute(sel.in, sel.n, &ro, on_outcome, &oc, &res->sum, err);
    progress_stop(&ui);
    repro_buf_release(&oc.diffs);
    repro_buf_release(&oc.subs);
    if (staging.sup) {
        /* staging goes before the crashes are symbolized: never while held */
        staging_stop(&staging);
        res->staging_crashes = (unsigned)staging.n;
        int64_t ids[MAX_STAGING_CRASHES + MAX_STAGING_HANGS];
        size_t n_ids = 0, n_crash_ids;
        for (size_t i = 0; i < staging.n; i++)
            if (staging.crash_id[i] > 0)
                ids[n_ids++] = staging.crash_id[i];
        n_crash_ids = n_ids;
        for (size_t i = 0; i < staging.n_hangs; i++)
            if (staging.hang_id[i] > 0)
                ids[n_ids++] = staging.hang_id[i];
        res->staging_hangs = (unsigned)staging.n_hangs;
        struct repro_error serr = {0};
        if (n_ids && repro_app_symbolize_crashes(store, ids, n_ids, NULL, 0, 0, NULL, &serr) != REPRO_OK &&
            o->out)
            fprintf(o->out, "staging crashes stored, not symbolized: %s\n", serr.msg);
        if (o->out)
            for (size_t i = 0; i < n_ids; i++)
                fprintf(o->out,
                        i < n_crash_ids ? "staging crashed: crash %lld ('repro crashes %lld')\n"
                                        : "staging hung (a request timed out): its stacks are "
                                          "crash %lld ('repro crashes %lld')\n",
                        (long long)ids[i], (long long)ids[i]);
    }
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
                "%llu mismatch, %llu error, %llu timeout, %llu crash, %llu unanswered\n",
                (unsigned long long)total, (unsigned long long)t->sent, ttext, secs,
                secs > 0 ? (double)t->sent / secs : 0.0,
                (unsigned long long)s->verdicts[REPRO_VERDICT_MATCH],
                (unsigned long long)s->verdicts[REPRO_VERDICT_MISMATCH],
                (unsigned long long)s->verdicts[REPRO_VERDICT_ERROR],
                (unsigned long long)s->verdicts[REPRO_VERDICT_TIMEOUT],
                (unsigned long long)s->verdicts[REPRO_VERDICT_CRASH],
                (unsigned long long)s->verdicts[REPRO_VERDICT_UNANSWERED]);
        if (o->speed > 0) {
            char rt[160] = "";
            if (o->realtime && !t->sender_fifo)
                snprintf(rt, sizeof rt, " (sender not real-time: SCHED_FIFO not permitted)");
            else if (o->realtime && t->sender_rt_dropped == 0)
                snprintf(rt, sizeof rt, " (sender under SCHED_FIFO)");
            else if (o->realtime)
                snprintf(rt, sizeof rt,
                         " (sender under SCHED_FIFO; %llu times more than 10 ms behind, it ran as a "
                         "normal thread until on time)",
                         (unsigned long long)t->sender_rt_dropped);
            fprintf(o->out, "schedule error: p50 %.1f us, p99 %.1f us, max %.1f us%s\n",
                    (double)t->sched_p50_ns / 1e3, (double)t->sched_p99_ns / 1e3,
                    (double)t->sched_max_ns / 1e3, rt);
        }
        if (t->reopened || s->substitutions || s->still_redacted)
            fprintf(o->out,
                    "%llu connections reopened after the target closed them, %llu values carried "
                    "over from staging, %llu requests still carried a redaction mark\n",
                    (unsigned long long)t->reopened, (unsigned long long)s->substitutions,
                    (unsigned long long)s->still_redacted);
        if (s->decode_failed || s->decode_capped)
            fprintf(o->out,
                    "%llu staging bodies said gzip/deflate but did not decode (compared as "
                    "sent), %llu decoded past %u MiB (compared cut there)\n",
                    (unsigned long long)s->decode_failed, (unsigned long long)s->decode_capped,
                    REPRO_REPLAY_DECODE_CAP >> 20);
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
    staging_stop(&staging);
    repro_store_close(store);
    repro_replay_rewrite_free(rw);
    repro_noise_free(res->sum.noise);
    res->sum.noise = NULL;
    selection_release(&sel);
    return rc;
}
