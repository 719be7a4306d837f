/*
 * The replay sender and reader: the plan's requests go to the target on
 * time, in causal order, over the recorded connections; responses are
 * framed with the shared HTTP framer and handed to the caller.
 *
 * Two threads (wrk2 and the timing target call for it):
 *   - the sender does nothing but wait and write: for each step in send
 *     order it waits for the frontier (every answer that came before the
 *     request in the recording), for the connection cap, and for the
 *     intended time on an absolute clock (clock_nanosleep to just before
 *     the deadline, then a spin; timer slack 1 ns; SCHED_FIFO when asked
 *     and permitted), so lateness never accumulates. The actual send time is taken when write() returns.
 *   - the reader (the caller's thread) waits on epoll, frames responses
 *     (HEAD, 1xx, chunked, close-delimited), times requests out, advances
 *     the frontier and calls the result callback.
 *
 * Descriptors: only the sender creates and closes them; only the reader
 * marks a connection dead (EOF, reset, timeout, malformed, all its
 * requests answered), after taking it out of epoll; the sender closes a
 * dead descriptor when it reopens the connection or at the end, and asks
 * the reader to retire an idle one (connection cap) with shutdown(2). So
 * no descriptor is closed while the other thread may use it.
 *
 * Responses on one connection come in request order (HTTP/1.1), so the
 * requests in flight on a connection are the positions [answered, sent)
 * of its step list; nothing else is queued.
 *
 * Left out: rewriting, comparison, storage (the caller's), TLS.
 */
#include "repro/replay.h"

#include "repro/http.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SPIN_NS 60000          /* spin this long before a deadline */
#define READ_CHUNK 65536
#define SENT_PENDING INT64_MIN /* the sender is writing this step */
#define MAX_EVENTS 64
#define INLINE_MAX 16384       /* the largest request the reader sends itself */
#define CATCHUP_NS 10000000LL  /* a real-time sender this far behind runs as a normal thread */

struct conn {
    const struct repro_replay_conn *plan;
    int fd;          /* -1: none (sender-owned) */
    int dead;        /* the reader gave it up; the sender closes fd */
    int retiring;    /* the sender asked the reader to close it (cap) */
    int died_early;  /* the target closed it with requests left */
    int is_reopen;   /* the current descriptor is a reopen after died_early */
    int fr_stale;    /* the framer holds the last descriptor's state (reader resets it) */
    size_t sent;     /* positions of plan->steps written or being written */
    size_t answered; /* positions resolved */
    size_t last_len; /* bytes of the last request written on it */
    struct repro_http_framer fr; /* reader only */
};

struct engine {
    const struct repro_replay_plan *plan;
    const struct repro_slice *reqs;
    const struct repro_replay_opts *o;
    struct repro_http_limits limits;
    repro_replay_result_fn fn;
    void *ctx;
    struct repro_replay_stats *st;

    pthread_mutex_t m; /* guards everything below except what is marked */
    /* Targeted wakeups (a broadcast per response cost the reader a context
     * switch per response): the sender sleeps on cv_send saying what it
     * waits for (sender_need: a frontier, or 0 for any change), the reader
     * on cv_sent for a request still being written. */
    pthread_cond_t cv_send, cv_sent;
    int sender_waiting, reader_waiting;
    size_t sender_need;
    pthread_mutex_t cb_m; /* one callback at a time */
    struct conn *conns;
    struct repro_replay_frontier fr;
    int64_t *intended, *sent; /* per step, this loop */
    uint8_t *err_kind;        /* per step: an error the sender saw */
    int *err_errno;
    uint8_t *reopened;
    int64_t *sched; /* schedule errors of every loop (sender only) */
    size_t n_sched;
    size_t resolved; /* steps with a result, this loop */
    size_t next;     /* the next step to send, this loop (claimed under m) */
    int inline_ok;   /* speed max, no rate cap: the reader may send (see drain) */
    int draining;    /* the reader is sending in drain(); the sender stays asleep */
    unsigned loop;
    size_t n_open;
    int sender_done, stop, stop_rc;
    int ep;
    uint64_t t0;
    uint8_t *rbuf; /* reader only */
};

static const char *const errkind_names[REPRO_REPLAY_ERR__COUNT] = {
    "ok", "refused", "connect", "reset", "closed", "timeout", "malformed", "write",
};

const char *repro_replay_errkind_name(enum repro_replay_errkind k)
{
    return (unsigned)k < REPRO_REPLAY_ERR__COUNT ? errkind_names[k] : "unknown";
}

static int64_t now_ns(const struct engine *e)
{
    return (int64_t)(repro_mono_ns() - e->t0);
}

static void wait_until(const struct engine *e, int64_t deadline)
{
    if (deadline - now_ns(e) > SPIN_NS) {
        uint64_t abs_ns = e->t0 + (uint64_t)(deadline - SPIN_NS);
        struct timespec ts = {(time_t)(abs_ns / 1000000000u), (long)(abs_ns % 1000000000u)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
    }
    while (now_ns(e) < deadline)
        ;
}

/* ---- live progress -------------------------------------------------------- */

/* Log-linear buckets: 0..15 ns one each, then 8 per power of two. */
static size_t hist_bucket(int64_t v)
{
    if (v < 16)
        return v < 0 ? 0 : (size_t)v;
    int msb = 63 - __builtin_clzll((unsigned long long)v);
    return 16 + (size_t)(msb - 4) * 8 + (size_t)((v >> (msb - 3)) & 7);
}

/* The largest value of bucket b. */
static int64_t hist_upper(size_t b)
{
    if (b < 16)
        return (int64_t)b;
    int msb = (int)((b - 16) / 8) + 4;
    uint64_t base = (uint64_t)(8 + (b - 16) % 8) << (msb - 3);
    return (int64_t)(base + ((uint64_t)1 << (msb - 3)) - 1);
}

int64_t repro_replay_progress_sched_ns(const struct repro_replay_progress *p, double q)
{
    uint64_t counts[REPRO_REPLAY_HIST_BUCKETS], total = 0, seen = 0;
    for (size_t b = 0; b < REPRO_REPLAY_HIST_BUCKETS; b++)
        total += counts[b] = atomic_load_explicit(&p->sched_hist[b], memory_order_relaxed);
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total);
    if (want >= total)
        want = total - 1;
    for (size_t b = 0; b < REPRO_REPLAY_HIST_BUCKETS; b++) {
        seen += counts[b];
        if (seen > want)
            return hist_upper(b);
    }
    return hist_upper(REPRO_REPLAY_HIST_BUCKETS - 1);
}

/* ---- wakeups ------------------------------------------------------------ */

/* Wakes the sender if what it waits for may have come. Called with e->m. */
static void wake_sender(struct engine *e)
{
    if (e->sender_waiting &&
        (e->stop || e->sender_need == 0 || e->fr.frontier >= e->sender_need))
        pthread_cond_signal(&e->cv_send);
}

/* The sender sleeps until woken for need (a frontier; 0: any change).
 * Called with e->m. */
static void sender_wait(struct engine *e, size_t need)
{
    e->sender_waiting = 1;
    e->sender_need = need;
    do /* not while the reader sends for it (drain): one writer at a time */
        pthread_cond_wait(&e->cv_send, &e->m);
    while (e->draining);
    e->sender_waiting = 0;
}

/* ---- results ------------------------------------------------------------ */

static int drain(struct engine *e);

/* Reports step k. Called with e->m held; drops it around the callback, and
 * only then counts it resolved and advances the frontier. */
static void resolve(struct engine *e, size_t k, enum repro_replay_errkind kind, int sys_errno,
                    const struct repro_http_msg *msg)
{
    struct repro_replay_result r = {0};
    const struct repro_replay_step *s = &e->plan->steps[k];

    while (e->sent[k] == SENT_PENDING) {
        e->reader_waiting = 1;
        pthread_cond_wait(&e->cv_sent, &e->m);
    }
    r.step = k;
    r.loop = e->loop;
    r.intended_ns = e->intended[k];
    r.sent_ns = e->sent[k];
    r.done_ns = now_ns(e);
    if (e->err_kind[k] != REPRO_REPLAY_OK) {
        kind = (enum repro_replay_errkind)e->err_kind[k];
        sys_errno = e->err_errno[k];
    }
    r.error = kind;
    r.sys_errno = sys_errno;
    r.reopened = e->reopened[k];
    if (msg && kind == REPRO_REPLAY_OK) {
        r.status = msg->info ? msg->info->status : 0;
        r.response = msg->raw;
        r.response_bytes = msg->wire_bytes;
        r.response_capped = (msg->flags & REPRO_HTTP_M_BODY_CAPPED) != 0;
        e->st->answered++;
    } else {
        e->st->errors[kind]++;
    }
    if (r.done_ns > e->st->last_done_ns)
        e->st->last_done_ns = r.done_ns;
    pthread_mutex_unlock(&e->m);

    /* The callback runs before the frontier moves: what it learns from this
     * response (a session cookie) is there before any request that waits
     * for this answer is prepared. */
    pthread_mutex_lock(&e->cb_m);
    int rc = e->fn ? e->fn(e->ctx, &r) : 0;
    pthread_mutex_unlock(&e->cb_m);

    pthread_mutex_lock(&e->m);
    if (s->answer_rank != SIZE_MAX)
        repro_replay_frontier_mark(&e->fr, s->answer_rank);
    e->resolved++;
    if (rc != 0 && !e->stop) {
        e->stop = 1;
        e->stop_rc = rc;
    }
    if (!drain(e))
        wake_sender(e);
}

/* ---- the reader --------------------------------------------------------- */

/* Tells the framer which method the next response answers: the request
 * at position answered of c. Called with e->m held, while the framer is
 * between messages. */
static void prime_framer(struct engine *e, struct conn *c)
{
    if (c->answered >= c->sent)
        return;
    const struct repro_slice *q = &e->reqs[e->plan->steps[c->plan->steps[c->answered]].req];
    if (q->len >= 5 && memcmp(q->ptr, "HEAD ", 5) == 0)
        repro_http_framer_set_request_method(&c->fr, "HEAD", 4);
    else if (q->len >= 8 && memcmp(q->ptr, "CONNECT ", 8) == 0)
        repro_http_framer_set_request_method(&c->fr, "CONNECT", 7);
    else
        repro_http_framer_set_request_method(&c->fr, "GET", 3);
}

/* Gives connection c up: the first request in flight gets first_kind, the
 * others kind. Called with e->m held. */
static void kill_conn(struct engine *e, struct conn *c, enum repro_replay_errkind first_kind,
                      enum repro_replay_errkind kind, int sys_errno)
{
    if (c->dead || c->fd < 0)
        return;
    epoll_ctl(e->ep, EPOLL_CTL_DEL, c->fd, NULL);
    shutdown(c->fd, SHUT_RDWR);
    c->dead = 1;
    c->fr_stale = 1;
    e->n_open--;
    if (!c->retiring && c->sent < c->plan->n_steps)
        c->died_early = 1;
    /* resolve() lets go of the lock, and the sender may reopen c meanwhile:
     * take the requests in flight now */
    size_t from = c->answered, to = c->sent;
    c->answered = to;
    for (size_t i = from; i < to; i++)
        resolve(e, c->plan->steps[i], i == from ? first_kind : kind, sys_errno, NULL);
    wake_sender(e);
}

/* A message ended on c. Called with e->m held. Returns 0 when c is dead. */
static int on_message(struct engine *e, struct conn *c, enum repro_http_outcome out)
{
    const struct repro_http_msg *msg = repro_http_framer_msg(&c->fr);

    if (c->answered == c->sent || out == REPRO_HTTP_MALFORMED ||
        (msg->flags & (REPRO_HTTP_M_MALFORMED | REPRO_HTTP_M_TRUNCATED))) {
        /* nothing was asked, or the framing is lost */
        kill_conn(e, c, out == REPRO_HTTP_MALFORMED || (msg->flags & REPRO_HTTP_M_MALFORMED)
                            ? REPRO_REPLAY_MALFORMED
                            : REPRO_REPLAY_CLOSED,
                  REPRO_REPLAY_CLOSED, 0);
        return 0;
    }
    enum repro_http_role role = repro_http_response_role(msg->info);
    if (role == REPRO_HTTP_ROLE_INTERIM)
        return 1; /* 1xx: the final response follows */
    size_t k = c->plan->steps[c->answered++];
    /* the shared keep-alive rule (the response decides: the request is
     * what was recorded and sent as it was) */
    int closing = role == REPRO_HTTP_ROLE_TUNNEL || !repro_http_keep_alive(NULL, msg->info);
    if (closing || c->answered == c->plan->n_steps) {
        /* the target will close (or the recorded connection is over): let
         * the connection go before the answer lets the sender go on, so
         * the next request goes out on a new connection, not into a
         * closing one */
        int was = c->retiring;
        c->retiring = !closing;
        kill_conn(e, c, REPRO_REPLAY_CLOSED, REPRO_REPLAY_CLOSED, 0);
        c->retiring = was;
        resolve(e, k, REPRO_REPLAY_OK, 0, msg);
        return 0;
    }
    resolve(e, k, REPRO_REPLAY_OK, 0, msg);
    prime_framer(e, c);
    return 1;
}

/* Reads what c has. Called without e->m: the descriptor stays open while
 * the connection is not dead (only this thread marks it dead) and the
 * framer is this thread's. */
static void on_readable(struct engine *e, struct conn *c)
{
    pthread_mutex_lock(&e->m);
    if (c->fr_stale && !c->dead) {
        repro_http_framer_release(&c->fr);
        repro_http_framer_init(&c->fr, REPRO_HTTP_RESPONSE, &e->limits, 0);
        c->fr_stale = 0;
    }
    int fd = c->fd;
    pthread_mutex_unlock(&e->m);
    for (;;) {
        ssize_t n = recv(fd, e->rbuf, READ_CHUNK, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        pthread_mutex_lock(&e->m);
        if (n < 0) {
            int er = errno;
            enum repro_replay_errkind k = er == ECONNRESET ? REPRO_REPLAY_RESET : REPRO_REPLAY_CLOSED;
            kill_conn(e, c, k, k, er);
            pthread_mutex_unlock(&e->m);
            return;
        }
        if (n == 0) {
            if (repro_http_framer_eof(&c->fr, now_ns(e) / 1000) != REPRO_HTTP_DONE ||
                on_message(e, c, REPRO_HTTP_DONE))
                kill_conn(e, c, REPRO_REPLAY_CLOSED, REPRO_REPLAY_CLOSED, 0);
            pthread_mutex_unlock(&e->m);
            return;
        }
        if (!repro_http_framer_busy(&c->fr))
            prime_framer(e, c);
        pthread_mutex_unlock(&e->m);
        size_t off = 0;
        while (off < (size_t)n) {
            size_t used = 0;
            enum repro_http_outcome out = repro_http_framer_feed(
                &c->fr, e->rbuf + off, (size_t)n - off, now_ns(e) / 1000, &used);
            off += used;
            if (out == REPRO_HTTP_NEED_MORE)
                break;
            pthread_mutex_lock(&e->m);
            int alive = on_message(e, c, out);
            pthread_mutex_unlock(&e->m);
            if (!alive)
                return;
        }
    }
}

/* Times out the oldest request of each connection; returns the ms until
 * the next deadline (capped). Called with e->m held. */
static int check_timeouts(struct engine *e)
{
    int64_t now = now_ns(e), next = now + 50 * 1000000LL;
    int64_t limit = (int64_t)(e->o->timeout_ms > 0 ? e->o->timeout_ms : 10000) * 1000000LL;

    for (size_t i = 0; i < e->plan->n_conns; i++) {
        struct conn *c = &e->conns[i];
        if (c->dead || c->fd < 0 || c->answered >= c->sent)
            continue;
        size_t k = c->plan->steps[c->answered];
        if (e->sent[k] == SENT_PENDING)
            continue;
        int64_t due = (e->sent[k] >= 0 ? e->sent[k] : now) + limit;
        if (due <= now)
            kill_conn(e, c, REPRO_REPLAY_TIMEOUT, REPRO_REPLAY_TIMEOUT, 0);
        else if (due < next)
            next = due;
    }
    return (int)((next - now + 999999) / 1000000);
}

static void reader_loop(struct engine *e)
{
    struct epoll_event ev[MAX_EVENTS];

    pthread_mutex_lock(&e->m);
    for (;;) {
        if (e->stop || (e->sender_done && e->n_open == 0))
            break;
        int wait_ms = check_timeouts(e);
        pthread_mutex_unlock(&e->m);
        int n = epoll_wait(e->ep, ev, MAX_EVENTS, wait_ms < 1 ? 1 : wait_ms);
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            pthread_mutex_lock(&e->m);
            int dead = c->dead;
            pthread_mutex_unlock(&e->m);
            if (!dead)
                on_readable(e, c);
        }
        pthread_mutex_lock(&e->m);
    }
    pthread_mutex_unlock(&e->m);
}

/* ---- the sender --------------------------------------------------------- */

static enum repro_replay_errkind open_conn(struct engine *e, int *fd_out, int *err_out)
{
    int fd = socket(e->o->target->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1, timeout_ms = e->o->timeout_ms > 0 ? e->o->timeout_ms : 10000;

    *err_out = 0;
    if (fd < 0) {
        *err_out = errno;
        return REPRO_REPLAY_CONNECT;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, e->o->target, (socklen_t)e->o->target_len) != 0) {
        if (errno != EINPROGRESS) {
            *err_out = errno;
            close(fd);
            return *err_out == ECONNREFUSED ? REPRO_REPLAY_REFUSED : REPRO_REPLAY_CONNECT;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r, soerr = 0;
        socklen_t sl = sizeof soerr;
        while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
            ;
        if (r == 0) {
            close(fd);
            *err_out = ETIMEDOUT;
            return REPRO_REPLAY_CONNECT;
        }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (r < 0 || soerr != 0) {
            *err_out = r < 0 ? errno : soerr;
            close(fd);
            return *err_out == ECONNREFUSED ? REPRO_REPLAY_REFUSED : REPRO_REPLAY_CONNECT;
        }
    }
    *fd_out = fd;
    return REPRO_REPLAY_OK;
}

/* Writes all of p; the socket is non-blocking, so wait for room with a
 * bound. Returns 0 or an errno. */
static int write_all(int fd, const uint8_t *p, size_t len, int timeout_ms)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int r = poll(&pf, 1, timeout_ms);
        if (r == 0)
            return ETIMEDOUT;
        if (r < 0 && errno != EINTR)
            return errno;
    }
    return 0;
}

/* Makes room under the connection cap for c: retires an idle connection
 * and waits. Called with e->m held; returns 0 when stopped. */
static int make_room(struct engine *e, struct conn *c)
{
    unsigned cap = e->o->connections;
    while (cap && e->n_open >= cap && !e->stop) {
        /* one retired already makes the room once the reader lets it go:
         * woken by any answer meanwhile, retire no second one */
        int going = 0;
        for (size_t i = 0; i < e->plan->n_conns; i++)
            going |= e->conns[i].fd >= 0 && !e->conns[i].dead && e->conns[i].retiring;
        for (size_t i = 0; i < e->plan->n_conns && !going; i++) {
            struct conn *x = &e->conns[i];
            if (x != c && x->fd >= 0 && !x->dead && !x->retiring && x->answered == x->sent) {
                x->retiring = 1;
                shutdown(x->fd, SHUT_RDWR); /* the reader sees EOF and lets it go */
                break;
            }
        }
        sender_wait(e, 0);
    }
    return !e->stop;
}

/* Sends step k. Called with e->m held. */
static void send_step(struct engine *e, size_t k, int64_t intended)
{
    const struct repro_replay_step *s = &e->plan->steps[k];
    struct conn *c = &e->conns[s->conn];
    struct repro_slice q = e->reqs[s->req];
    int timeout_ms = e->o->timeout_ms > 0 ? e->o->timeout_ms : 10000;

    e->intended[k] = intended;
    /* retired for the cap (shut down, the reader not yet past its EOF):
     * writing there fails (EPIPE); wait until the reader lets it go, then
     * open it again */
    while (c->fd >= 0 && c->retiring && !c->dead) {
        if (e->stop)
            return;
        sender_wait(e, 0);
    }
    if (c->fd < 0 || c->dead) {
        int fd = -1, er = 0;
        if (!make_room(e, c))
            return;
        if (c->fd >= 0)
            close(c->fd); /* dead: out of epoll, the reader lets go of it */
        c->fd = -1;
        pthread_mutex_unlock(&e->m);
        enum repro_replay_errkind kind = open_conn(e, &fd, &er);
        pthread_mutex_lock(&e->m);
        if (kind != REPRO_REPLAY_OK) {
            /* this request fails; the next one of the connection tries again */
            e->sent[k] = -1;
            e->err_kind[k] = (uint8_t)kind;
            e->err_errno[k] = er;
            c->sent++;
            c->answered++;
            resolve(e, k, kind, er, NULL);
            return;
        }
        c->fd = fd;
        c->last_len = 0; /* a new socket: an empty send buffer */
        c->dead = 0;
        c->retiring = 0;
        c->is_reopen = c->died_early;
        c->died_early = 0;
        e->st->connections_opened++;
        if (c->is_reopen)
            e->st->reopened++;
        repro_log(REPRO_LOG_DEBUG, "replay", "connection %lld %s", (long long)c->plan->conn_id,
                  c->is_reopen ? "reopened after the target closed it" : "opened");
        e->n_open++;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev);
    }
    if (c->answered < c->sent)
        e->st->pipelined++;
    e->sent[k] = SENT_PENDING;
    e->reopened[k] = (uint8_t)c->is_reopen;
    c->sent++;
    int fd = c->fd;
    pthread_mutex_unlock(&e->m);

    int er = 0;
    if (e->o->prepare && e->o->prepare(e->o->prepare_ctx, s->req, &q) != 0)
        er = EINVAL;
    else
        er = write_all(fd, q.ptr, q.len, timeout_ms);
    int64_t t = now_ns(e);

    pthread_mutex_lock(&e->m);
    c->last_len = q.len;
    e->st->sent++;
    if (e->o->progress) {
        atomic_fetch_add_explicit(&e->o->progress->sent, 1, memory_order_relaxed);
        if (er == 0 && e->o->speed > 0)
            atomic_fetch_add_explicit(&e->o->progress->sched_hist[hist_bucket(t - intended)], 1,
                                      memory_order_relaxed);
    }
    if (er != 0) {
        e->err_kind[k] = REPRO_REPLAY_WRITE;
        e->err_errno[k] = er;
        e->sent[k] = -1;
        shutdown(fd, SHUT_RDWR); /* the reader fails what is in flight */
    } else {
        e->sent[k] = t;
        if (e->st->first_send_ns < 0)
            e->st->first_send_ns = t;
        if (e->o->speed > 0)
            e->sched[e->n_sched++] = t - intended;
    }
    if (e->reader_waiting) {
        e->reader_waiting = 0;
        pthread_cond_broadcast(&e->cv_sent);
    }
}

/* At speed max the answer that lets the next steps go also sends them,
 * here on the reader thread, instead of waking the sender for each: a
 * cross-thread wakeup per request was most of the gap to wrk (its one
 * thread per set of connections sends as it reads). Only while the sender
 * sleeps waiting for the frontier (so the two never send at once), and only
 * the simple case: the connection open, idle (nothing in flight, so its
 * send buffer is empty and a small write does not block) and not closing.
 * Anything else — a connection to open or reopen, the cap, a pipelined or
 * large request or one a pipelined request follows, the end of a loop —
 * wakes the sender as before.
 * Called with e->m held. Returns 1 when the sender stays asleep (what it
 * waits for has not come), 0 when it should be woken as usual. */
static int drain(struct engine *e)
{
    if (!e->inline_ok || !e->sender_waiting || e->sender_need == 0 || e->stop)
        return 0;
    while (e->next < e->plan->n_steps && !e->stop) {
        size_t k = e->next;
        const struct repro_replay_step *s = &e->plan->steps[k];
        if (e->fr.frontier < s->after_answers) {
            e->sender_need = s->after_answers; /* still waiting: let it sleep */
            return 1;
        }
        struct conn *c = &e->conns[s->conn];
        /* (after a large request an early answer, e.g. a 413 to an upload,
         * may leave its bytes in the send buffer: a write could block) */
        if (c->fd < 0 || c->dead || c->retiring || c->answered != c->sent ||
            e->reqs[s->req].len > INLINE_MAX || c->last_len > INLINE_MAX)
            return 0;
        /* the next request of c was recorded pipelined behind this one: the
         * sender writes both back to back, as recorded (sent from here, the
         * next would wait for the sender's wakeup, and on a fast target
         * this one is often answered by then: not pipelined any more) */
        if (c->sent + 1 < c->plan->n_steps &&
            e->plan->steps[c->plan->steps[c->sent + 1]].pipelined)
            return 0;
        e->next = k + 1;
        e->st->sent_inline++;
        e->draining = 1;
        send_step(e, k, now_ns(e));
        e->draining = 0;
    }
    return 0; /* the loop's last step went: the sender finishes the loop */
}

/* A real-time sender that has fallen behind (the target or the host is
 * too slow for the schedule) would send its backlog at real-time priority
 * and starve the reader and a target on the same host, which makes it
 * later still: behind by more than CATCHUP_NS it runs as a normal thread,
 * and goes back to SCHED_FIFO once a deadline is ahead of it again. A
 * syscall only on each change. */
static void rt_follow(struct engine *e, int *rt_on, int64_t behind_ns)
{
    struct sched_param sp = {.sched_priority = *rt_on ? 0 : 1};

    if (*rt_on && behind_ns > CATCHUP_NS) {
        if (pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp) == 0) {
            *rt_on = 0;
            e->st->sender_rt_dropped++;
        }
    } else if (!*rt_on && behind_ns < 0) {
        if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
            *rt_on = 1;
    }
}

static void *sender_main(void *arg)
{
    struct engine *e = arg;
    const struct repro_replay_plan *p = e->plan;
    unsigned loops = e->o->loops ? e->o->loops : 1;
    uint64_t n_paced = 0;
    int64_t rate_start = -1;

    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* Real-time scheduling keeps other work from delaying a deadline (the
     * p99.9 tail on a busy machine); the lowest priority, and the kernel's
     * RT throttling, keep the spin from starving the machine. Without
     * permission the sender stays as it was. */
    int fifo = 0, rt_on;
    if (e->o->sched_fifo) {
        struct sched_param sp = {.sched_priority = 1};
        fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
    }
    rt_on = fifo;
    pthread_mutex_lock(&e->m);
    e->st->sender_fifo = fifo;
    for (unsigned l = 0; l < loops && !e->stop; l++) {
        if (l > 0) {
            while (!e->stop && e->resolved < p->n_steps)
                sender_wait(e, 0);
            if (e->stop)
                break;
            for (size_t i = 0; i < p->n_conns; i++) {
                struct conn *c = &e->conns[i];
                if (c->fd >= 0 && !c->dead) { /* cannot happen: every step is resolved */
                    c->retiring = 1;
                    shutdown(c->fd, SHUT_RDWR);
                    while (!c->dead && !e->stop)
                        sender_wait(e, 0);
                }
                if (c->fd >= 0)
                    close(c->fd);
                c->fd = -1;
                c->dead = c->retiring = c->died_early = c->is_reopen = 0;
                c->sent = c->answered = 0;
            }
            memset(e->fr.done, 0, e->fr.n);
            e->fr.frontier = 0;
            memset(e->err_kind, 0, p->n_steps);
            memset(e->reopened, 0, p->n_steps);
            e->resolved = 0;
            e->loop = l;
        }
        int64_t loop_start = now_ns(e);
        if (rate_start < 0)
            rate_start = loop_start;
        e->next = 0;
        while (e->next < p->n_steps && !e->stop) {
            size_t k = e->next;
            const struct repro_replay_step *s = &p->steps[k];
            if (e->fr.frontier < s->after_answers) {
                sender_wait(e, s->after_answers);
                continue; /* the reader may have sent it (drain) */
            }
            e->next = k + 1;
            int64_t intended = e->o->speed > 0
                                   ? loop_start + (int64_t)((double)s->at_us * 1000.0 / e->o->speed)
                                   : now_ns(e);
            int64_t deadline = intended;
            if (e->o->rate > 0) {
                int64_t slot = rate_start + (int64_t)((double)n_paced * 1e9 / e->o->rate);
                if (slot > deadline)
                    deadline = slot;
            }
            n_paced++;
            if (fifo)
                rt_follow(e, &rt_on, now_ns(e) - deadline);
            if (deadline > now_ns(e)) {
                pthread_mutex_unlock(&e->m);
                wait_until(e, deadline);
                pthread_mutex_lock(&e->m);
            }
            if (e->o->speed <= 0)
                intended = deadline;
            send_step(e, k, intended);
        }
    }
    while (!e->stop && e->resolved < p->n_steps)
        sender_wait(e, 0);
    /* let the reader go: nothing more will be sent */
    for (size_t i = 0; i < p->n_conns; i++) {
        struct conn *c = &e->conns[i];
        if (c->fd >= 0 && !c->dead) {
            c->retiring = 1;
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    e->sender_done = 1;
    pthread_mutex_unlock(&e->m);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(const int64_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

int repro_replay_run(const struct repro_replay_plan *plan, const struct repro_slice *reqs,
                     const struct repro_replay_opts *o, repro_replay_result_fn fn, void *ctx,
                     struct repro_replay_stats *st, struct repro_error *err)
{
    struct engine e = {0};
    unsigned loops = o->loops ? o->loops : 1;
    size_t n = plan->n_steps;
    pthread_t sender;
    int rc = REPRO_OK, started = 0;
    pthread_condattr_t ca;

    memset(st, 0, sizeof *st);
    st->first_send_ns = -1;
    if (!o->target || o->target_len == 0)
        return repro_error_set(err, REPRO_E_INVAL, "cannot replay: no target address");
    e.plan = plan;
    e.reqs = reqs;
    e.o = o;
    e.fn = fn;
    e.ctx = ctx;
    e.st = st;
    e.ep = -1;
    repro_http_limits_default(&e.limits);
    e.limits.max_store = o->max_response ? o->max_response : 1u << 20;
    pthread_mutex_init(&e.m, NULL);
    pthread_mutex_init(&e.cb_m, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e.cv_send, &ca);
    pthread_cond_init(&e.cv_sent, &ca);
    pthread_condattr_destroy(&ca);

    e.conns = repro_calloc(plan->n_conns, sizeof *e.conns);
    e.intended = repro_calloc(n, sizeof *e.intended);
    e.sent = repro_calloc(n, sizeof *e.sent);
    e.err_kind = repro_calloc(n, 1);
    e.err_errno = repro_calloc(n, sizeof *e.err_errno);
    e.reopened = repro_calloc(n, 1);
    e.sched = repro_calloc(n * loops, sizeof *e.sched);
    e.rbuf = repro_malloc(READ_CHUNK);
    if (!e.conns || !e.intended || !e.sent || !e.err_kind || !e.err_errno || !e.reopened ||
        !e.sched || !e.rbuf || repro_replay_frontier_init(&e.fr, plan->n_answers) != REPRO_OK) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot replay %zu requests: out of memory", n);
        goto out;
    }
    for (size_t i = 0; i < plan->n_conns; i++) {
        e.conns[i].plan = &plan->conns[i];
        e.conns[i].fd = -1;
        repro_http_framer_init(&e.conns[i].fr, REPRO_HTTP_RESPONSE, &e.limits, 0);
    }
    e.ep = epoll_create1(EPOLL_CLOEXEC);
    if (e.ep < 0) {
        rc = repro_error_set(err, REPRO_E_IO, "cannot replay: epoll_create1: %s", strerror(errno));
        goto out;
    }
    e.inline_ok = o->speed <= 0 && o->rate <= 0 && !o->no_inline_send;
    e.t0 = repro_mono_ns();
    st->start_mono_ns = e.t0;
    if ((errno = pthread_create(&sender, NULL, sender_main, &e)) != 0) {
        rc = repro_error_set(err, REPRO_E_IO, "cannot replay: cannot start the sender: %s",
                             strerror(errno));
        goto out;
    }
    started = 1;
    reader_loop(&e);
    pthread_join(sender, NULL);
    if (e.stop)
        rc = e.stop_rc;

    qsort(e.sched, e.n_sched, sizeof *e.sched, cmp_i64);
    st->sched_p50_ns = pct(e.sched, e.n_sched, 0.50);
    st->sched_p99_ns = pct(e.sched, e.n_sched, 0.99);
    st->sched_p999_ns = pct(e.sched, e.n_sched, 0.999);
    st->sched_max_ns = e.n_sched ? e.sched[e.n_sched - 1] : 0;
out:
    (void)started;
    for (size_t i = 0; e.conns && i < plan->n_conns; i++) {
        if (e.conns[i].fd >= 0)
            close(e.conns[i].fd);
        repro_http_framer_release(&e.conns[i].fr);
    }
    if (e.ep >= 0)
        close(e.ep);
    repro_replay_frontier_release(&e.fr);
    repro_free(e.rbuf);
    repro_free(e.sched);
    repro_free(e.reopened);
    repro_free(e.err_errno);
    repro_free(e.err_kind);
    repro_free(e.sent);
    repro_free(e.intended);
    repro_free(e.conns);
    pthread_cond_destroy(&e.cv_send);
    pthread_cond_destroy(&e.cv_sent);
    pthread_mutex_destroy(&e.cb_m);
    pthread_mutex_destroy(&e.m);
    return rc;
}
