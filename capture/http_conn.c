/*
 * HTTP over one reassembled TCP connection: decides which side is the
 * client, runs a request framer and a response framer, and pairs responses
 * with requests in order (RFC 9112 section 9.3: responses come in the order
 * of the requests, including pipelined ones). The order rules themselves
 * (interim 1xx, tunnels, the request method steering response framing) are
 * http/'s (repro_http_response_role(), struct repro_http_interim); what is
 * here is placing responses after packet loss by TCP evidence on top of
 * them. The framer is used only through its accessors.
 *
 * Pairing rules:
 *  - interim 1xx responses (not 101) attach to the oldest waiting request
 *    (or the request still being sent, for Expect: 100-continue) and are
 *    kept in front of the final response's bytes;
 *  - a final response completes the oldest waiting request; if the request
 *    is still being sent (an early response), the response waits for it;
 *  - a response with no request to answer is stored flagged no_request;
 *  - 101 and successful CONNECT turn the rest of the connection into an
 *    opaque tunnel in both directions;
 *  - at the end, requests without a response are stored flagged unanswered.
 *
 * The side whose first bytes look like a status line is the server, the side
 * whose first bytes look like a request line is the client; otherwise the
 * SYN decides, and if the payload never looks like HTTP the connection is
 * counted as non-HTTP and skipped.
 *
 * Memory: a connection's state (struct hconn) is made at its first payload
 * byte, so half-open connections (a SYN flood) cost the reassembler's
 * entry only; it is charged to the table budget with the first entry of
 * its queue of requests waiting for responses. Further entries are charged
 * to the held budget with the messages, and the queue is freed whenever it
 * empties (an idle keep-alive connection holds none). A message the held budget cut is flagged
 * body_capped and counted (capped_budget_messages), as are the messages in
 * progress of a connection closed to free memory (end reason "memory").
 */
#include "capture_int.h"

#include <stdio.h>
#include <string.h>

/* A message taken out of a framer. */
struct held_msg {
    struct repro_buf raw; /* owned; its len is charged to the budget */
    struct repro_http_info info;
    int has_info;
    unsigned flags; /* REPRO_XF_* */
    uint64_t wire_bytes;
    int64_t first_us, last_us;
    const char *why;
    char interim[64]; /* responses: "100" or "100,102" of 1xx before it */
    int head_moved;   /* interim heads were put in front of the parsed head */
    /* The body's digest: first of the whole body on the wire, then (after
     * redact_held()) of the body as stored; has_digest 0 when unknown. */
    uint8_t digest[REPRO_HTTP_DIGEST_LEN];
    int has_digest;
};

/* Stream offsets (bytes from the start of one direction, gaps included)
 * and what a segment acknowledged, in the peer's offsets. */
#define OFF_UNKNOWN INT64_MIN

/* Kinds of entries in the queue of requests waiting for responses. */
enum {
    Q_REQ = 0, /* a request seen in the capture (done: its message is complete) */
    Q_LOST,    /* requests may have been lost in a gap here: how many is unknown */
    Q_EVICTED  /* n requests already stored without response (pipeline cap) */
};

struct pending {
    int kind;
    int done;            /* Q_REQ: req holds the complete message */
    int no_resp;         /* decided: no response will be paired with it */
    uint64_t n;          /* Q_EVICTED: how many requests */
    int64_t start_off;   /* client-stream offset of its first byte (lower bound) */
    int64_t ack_raw;     /* ACK number of its first segment (OFF_UNKNOWN if none): what the client had received */
    struct held_msg req;
    int have_resp;
    struct held_msg resp;
};

/* Where the current message of one direction began. */
struct msg_pos {
    int64_t start_ack;  /* ACK number of the segment with its first byte, OFF_UNKNOWN if none */
    int64_t cur_start;  /* first byte of the message in progress, OFF_UNKNOWN if none */
    int64_t start, end; /* of the message just finished (end: see end_exact) */
    int end_exact;      /* 0: ended by a gap, end is where the captured bytes stopped */
};

struct hconn {
    struct repro_conn_info info;
    const struct repro_tcp_conn *tc; /* borrowed: valid until the close callback returns */
    int client_dir; /* -1 until known */
    int opened;     /* sink conn_open called */
    int not_http;
    int framers_ready;
    struct repro_http_framer fr[2]; /* indexed by direction */
    struct pending *q;              /* waiting requests, oldest first */
    size_t q_len, q_cap;
    size_t n_held;                  /* Q_REQ entries holding bytes */
    struct msg_pos pos[2];
    int resp_lost;  /* the response framer lost its place since the last decided pairing */
    int pipelined;  /* the client was seen sending before the previous response arrived */
    int64_t last_req_ack; /* what the client had received when it sent its latest request */
    int untracked;  /* a loss could not be recorded: every later pairing is a guess */
    struct repro_http_interim interim; /* 1xx responses waiting for the final one */
    int eof[2];
    int budget_cut[2]; /* the held budget refused bytes of the message in progress */
    int evicted_mem;   /* closing to free memory: what is in progress was cut */
};

/* The state of a connection whose state could not be allocated: its bytes
 * are dropped and counted (dropped_alloc_packets). */
static char untracked_mark;
#define UNTRACKED ((void *)&untracked_mark)

/* What a queue of n entries is charged to the held budget: the first
 * entry is part of the connection's state (a connection that does not
 * pipeline never needs more), charged to the table with it, so storing a
 * request never waits for held bytes. */
static size_t queue_cost(size_t n)
{
    return n > 1 ? (n - 1) * sizeof(struct pending) : 0;
}

size_t repro__http_conn_cost(void)
{
    return sizeof(struct hconn) + sizeof(struct pending) + 2 * REPRO__ALLOC_OVERHEAD;
}

size_t repro__http_room_slack(void)
{
    /* the largest step a short queue takes (4 to 8 entries) */
    return queue_cost(8) - queue_cost(4);
}

static unsigned xflags_of(unsigned mflags)
{
    unsigned x = 0;
    if (mflags & REPRO_HTTP_M_GAP)
        x |= REPRO_XF_GAP;
    if (mflags & REPRO_HTTP_M_TRUNCATED)
        x |= REPRO_XF_TRUNCATED;
    if (mflags & REPRO_HTTP_M_MALFORMED)
        x |= REPRO_XF_MALFORMED;
    if (mflags & REPRO_HTTP_M_BODY_CAPPED)
        x |= REPRO_XF_BODY_CAPPED;
    return x;
}

/* A message's buffer once its bytes are stored: kept as a spare when
 * there is room and it is small, else freed. */
static void recycle(struct repro_capture *cap, struct repro_buf *b)
{
    if (b->data != NULL && b->cap <= REPRO__SPARE_CAP && cap->n_spare < REPRO__N_SPARE) {
        b->len = 0;
        cap->spare[cap->n_spare++] = *b;
        repro_buf_init(b, b->max);
        return;
    }
    repro_buf_release(b);
}

static void held_release(struct repro_capture *cap, struct held_msg *m)
{
    repro_budget_give(&cap->budget, m->raw.len);
    recycle(cap, &m->raw);
    memset(m, 0, sizeof *m);
}

static void take_msg(struct repro_http_framer *f, struct held_msg *m)
{
    const struct repro_http_msg *msg = repro_http_framer_msg(f);

    memset(m, 0, sizeof *m);
    m->has_info = msg->info != NULL;
    if (m->has_info)
        m->info = *msg->info;
    m->flags = xflags_of(msg->flags);
    m->wire_bytes = msg->wire_bytes;
    m->first_us = msg->first_us;
    m->last_us = msg->last_us;
    m->why = msg->why;
    m->has_digest = msg->has_body_digest;
    if (m->has_digest)
        memcpy(m->digest, msg->body_digest, sizeof m->digest);
    repro_http_framer_take_raw(f, &m->raw);
}

/* Takes the finished message of direction dir; a message the held budget
 * cut is counted and says so. */
static void take_from(struct repro_capture *cap, struct hconn *h, int dir, struct held_msg *m)
{
    take_msg(&h->fr[dir], m);
    if ((m->flags & REPRO_XF_BODY_CAPPED) && h->budget_cut[dir]) {
        cap->stats.capped_budget_messages++;
        if (m->flags & REPRO_XF_TRUNCATED)
            m->why = "its head was cut: the capture's held bytes ran out (--max-memory)";
        else if (m->why == NULL)
            m->why = "its body was cut: the capture's held bytes ran out (--max-memory)";
    }
    h->budget_cut[dir] = 0;
}

/* "HTTP/1.1" into out[12]: once or twice per exchange, so no printf. */
static void version_text(char *out, int major, int minor)
{
    memcpy(out, "HTTP/", 5);
    out[5] = (char)('0' + (major % 10));
    out[6] = '.';
    out[7] = (char)('0' + (minor % 10));
    out[8] = '\0';
}

static struct repro_slice span(const struct held_msg *m, struct repro_http_span s)
{
    if (!m->has_info)
        return (struct repro_slice){NULL, 0};
    return repro_http_span_slice((struct repro_slice){m->raw.data, m->raw.len}, s);
}

static int open_conn(struct repro_capture *cap, struct hconn *h)
{
    if (h->opened)
        return 0;
    h->opened = 1;
    repro_log(REPRO_LOG_DEBUG, "capture.tcp", "connection %llu opened%s",
              (unsigned long long)h->info.id, h->info.mid_stream ? " mid-stream (no SYN seen)" : "");
    if (cap->sink.conn_open)
        return cap->sink.conn_open(cap->sink.ctx, &h->info);
    return 0;
}

/* Redacts a held message in place (capture/redact.c): fail-closed, so a
 * message that cannot be redacted (out of memory) is not stored at all.
 * note (at least sizeof res.note bytes) receives why a body was decoded or
 * dropped. */
static void redact_held(struct repro_capture *cap, struct held_msg *m, enum repro_http_kind kind,
                        char *note, size_t note_len)
{
    struct repro_redact_result res;
    int rc;

    note[0] = '\0';
    if (m->raw.len == 0) {
        m->has_digest = 0;
        return;
    }
    rc = repro__redact_filtered(&cap->rules, &cap->name_filter, kind,
                                (struct repro_slice){m->raw.data, m->raw.len},
                                m->has_info ? &m->info : NULL, m->has_info && !m->head_moved,
                                m->flags, cap->limits.http.max_store, &res);
    if (res.note[0] != '\0') {
        /* a copy, not printf: this runs for every message */
        size_t k = strnlen(res.note, note_len - 1);
        memcpy(note, res.note, k);
        note[k] = '\0';
    }
    /* Never the digest of bytes redaction changed (docs/capture.md). */
    if (res.digest == REPRO_REDACT_DIGEST_OWN)
        memcpy(m->digest, res.body_digest, sizeof m->digest);
    else if (res.digest == REPRO_REDACT_DIGEST_NONE || rc < 0)
        m->has_digest = 0;
    m->flags |= res.xflags;
    if (res.xflags & REPRO_XF_DECODED)
        cap->stats.bodies_decoded++;
    if (res.xflags & REPRO_XF_BODY_DROPPED)
        cap->stats.bodies_dropped++;
    if (rc == 0)
        return;
    repro_budget_give(&cap->budget, m->raw.len);
    recycle(cap, &m->raw);
    if (rc < 0) {
        m->has_info = 0; /* nothing of the message is kept */
        return;
    }
    cap->budget.used += res.out.len; /* transient: released right after emission */
    m->raw = res.out;
    m->has_info = res.has_info;
    if (res.has_info)
        m->info = res.info;
}

/* Hands one exchange to the sink. req or resp may be NULL. */
static int emit(struct repro_capture *cap, struct hconn *h, struct held_msg *req,
                struct held_msg *resp)
{
    struct repro_exchange x;
    struct repro_capture_stats *st = &cap->stats;
    char rnote[2][sizeof ((struct repro_redact_result *)0)->note], note[512];
    int rc = 0, bit;

    memset(&x, 0, sizeof x);
    x.conn_id = h->info.id;
    x.seq = h->info.n_exchanges++;
    x.req_first_us = x.req_last_us = x.resp_first_us = x.resp_last_us = -1;
    if (req != NULL) {
        redact_held(cap, req, REPRO_HTTP_REQUEST, rnote[0], sizeof rnote[0]);
        x.request = (struct repro_slice){req->raw.data, req->raw.len};
        x.method = span(req, req->info.method);
        x.uri = span(req, req->info.target);
        x.host = span(req, req->info.host);
        x.req_first_us = req->first_us;
        x.req_last_us = req->last_us;
        x.request_bytes = req->wire_bytes;
        x.has_request_digest = req->has_digest;
        if (req->has_digest)
            memcpy(x.request_digest, req->digest, sizeof x.request_digest);
        x.flags |= req->flags;
        x.note = req->why;
        if (req->has_info)
            version_text(x.version, req->info.version_major, req->info.version_minor);
    } else {
        x.flags |= REPRO_XF_NO_REQUEST;
    }
    if (resp != NULL) {
        redact_held(cap, resp, REPRO_HTTP_RESPONSE, rnote[1], sizeof rnote[1]);
        x.response = (struct repro_slice){resp->raw.data, resp->raw.len};
        x.status = resp->has_info ? resp->info.status : 0;
        x.reason = span(resp, resp->info.reason);
        x.resp_first_us = resp->first_us;
        x.resp_last_us = resp->last_us;
        x.response_bytes = resp->wire_bytes;
        x.has_response_digest = resp->has_digest;
        if (resp->has_digest)
            memcpy(x.response_digest, resp->digest, sizeof x.response_digest);
        x.flags |= resp->flags;
        if (x.note == NULL)
            x.note = resp->why;
        if (req == NULL && resp->has_info)
            version_text(x.version, resp->info.version_major, resp->info.version_minor);
        if (resp->interim[0] != '\0') {
            snprintf(x.interim, sizeof x.interim, "%s", resp->interim);
            x.flags |= REPRO_XF_INTERIM;
        }
    } else {
        x.flags |= REPRO_XF_UNANSWERED;
    }
    if (h->evicted_mem) {
        /* Cut for want of memory, not malformed: counted with the caps,
         * and the note says why it ended (rather than how). */
        static const char evicted[] = "the connection was closed early to free memory for "
                                      "newer traffic (--max-memory)";
        if (x.flags & REPRO_XF_TRUNCATED) {
            x.flags |= REPRO_XF_BODY_CAPPED;
            st->capped_budget_messages++;
            x.note = evicted;
        } else if (x.note == NULL) {
            x.note = evicted;
        }
    }
    /* What redaction says (a body decoded or not stored) follows the
     * framing note. */
    if ((req && rnote[0][0]) || (resp && rnote[1][0])) {
        snprintf(note, sizeof note, "%s%s%s%s%s%s%s", x.note ? x.note : "",
                 x.note ? "; " : "", req && rnote[0][0] ? "request " : "",
                 req ? rnote[0] : "", req && rnote[0][0] && resp && rnote[1][0] ? "; " : "",
                 resp && rnote[1][0] ? "response " : "", resp ? rnote[1] : "");
        x.note = note;
    }
    if (req && resp && x.status == 101 && repro__is_h2c_upgrade(x.request))
        st->h2c_upgrades++;
    st->exchanges++;
    if (x.flags & REPRO_XF_INCOMPLETE) {
        st->incomplete++;
        for (bit = 0; bit < REPRO_XF__BITS; bit++)
            if ((x.flags & REPRO_XF_INCOMPLETE) & (1u << bit))
                st->incomplete_by[bit]++;
    }
    if (x.flags & REPRO_XF_REDACTED)
        st->redacted++;
    if (x.flags & REPRO_XF_MALFORMED) {
        char a[64], b[64];
        st->errors++;
        repro_endpoint_format(a, sizeof a, h->info.family, h->info.client_ip, h->info.client_port);
        repro_endpoint_format(b, sizeof b, h->info.family, h->info.server_ip, h->info.server_port);
        if (repro__capture_may_warn(cap))
            repro_log(REPRO_LOG_WARN, "capture.http",
                  "%s: malformed HTTP on %s -> %s (exchange %llu of the connection): %s",
                  cap->source, a, b, (unsigned long long)x.seq, x.note ? x.note : "bad framing");
    }
    rc = open_conn(cap, h);
    if (rc == 0 && cap->sink.exchange)
        rc = cap->sink.exchange(cap->sink.ctx, &h->info, &x);
    if (req)
        held_release(cap, req);
    if (resp)
        held_release(cap, resp);
    return rc;
}

/* ---- the queue of requests waiting for responses -------------------- */

static void pop_front(struct hconn *h)
{
    memmove(h->q, h->q + 1, (h->q_len - 1) * sizeof *h->q);
    h->q_len--;
}

static void free_queue(struct repro_capture *cap, struct hconn *h)
{
    repro_budget_give(&cap->budget, queue_cost(h->q_cap));
    repro_free(h->q);
    h->q = NULL;
    h->q_cap = 0;
}

/* Appends an entry; NULL when the queue cannot grow (memory, or the held
 * budget past its first entry). */
static struct pending *push(struct repro_capture *cap, struct hconn *h, int kind)
{
    struct pending *p;

    if (h->q_len == h->q_cap) {
        size_t ncap = h->q_cap ? h->q_cap * 2 : 1;
        size_t more = queue_cost(ncap) - queue_cost(h->q_cap);
        struct pending *nq;
        if (!repro_budget_take(&cap->budget, more))
            return NULL;
        nq = repro_realloc(h->q, ncap * sizeof *nq);
        if (nq == NULL) {
            repro_budget_give(&cap->budget, more);
            return NULL;
        }
        h->q = nq;
        h->q_cap = ncap;
    }
    p = &h->q[h->q_len++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->n = 1;
    p->start_off = p->ack_raw = OFF_UNKNOWN;
    return p;
}

/* Emits (or drops) the entries at the front whose fate is settled. */
static int flush_front(struct repro_capture *cap, struct hconn *h)
{
    while (h->q_len > 0) {
        /* emitted in place (emit() and the sink never touch the queue),
         * then popped: no copy of the entry */
        struct pending *p = &h->q[0];
        int rc;
        if (p->kind != Q_REQ) {
            if (!p->no_resp)
                return 0;
            pop_front(h);
            continue;
        }
        if (!p->done || !(p->have_resp || p->no_resp))
            return 0;
        h->n_held--;
        rc = emit(cap, h, &p->req, p->have_resp ? &p->resp : NULL);
        pop_front(h);
        if (rc)
            return rc;
    }
    /* Idle keep-alive connections hold no queue. */
    free_queue(cap, h);
    return 0;
}

/* The first entry still waiting for a response (q_len if none). */
static size_t first_waiting(const struct hconn *h)
{
    size_t i = 0;
    while (i < h->q_len && (h->q[i].have_resp || h->q[i].no_resp))
        i++;
    return i;
}

static void set_method_hint(struct hconn *h)
{
    struct repro_http_framer *rf = &h->fr[!h->client_dir];
    size_t i = first_waiting(h);

    if (i < h->q_len && h->q[i].kind == Q_REQ && h->q[i].done) {
        struct repro_slice m = span(&h->q[i].req, h->q[i].req.info.method);
        repro_http_framer_set_request_method(rf, (const char *)m.ptr, m.len);
        return;
    }
    /* No finished request waiting: the one being sent, if any. */
    if (i == h->q_len || (h->q[i].kind == Q_REQ && !h->q[i].done)) {
        struct repro_slice m = repro_http_framer_current_method(&h->fr[h->client_dir]);
        if (m.len > 0) {
            repro_http_framer_set_request_method(rf, (const char *)m.ptr, m.len);
            return;
        }
    }
    repro_http_framer_set_request_method(rf, NULL, 0);
}

/* A 1xx interim response: its status joins the list and its bytes are
 * kept to go in front of the final response. */
static void add_interim(struct repro_capture *cap, struct hconn *h, struct held_msg *m)
{
    repro_http_interim_add(&h->interim, m->info.status,
                           (struct repro_slice){m->raw.data, m->raw.len});
    held_release(cap, m);
}

static void drop_interim(struct hconn *h)
{
    repro_http_interim_reset(&h->interim);
}

/* Moves the pending interim responses in front of the final response m. */
static void attach_interim(struct hconn *h, struct held_msg *m)
{
    if (repro_http_interim_attach(&h->interim, &m->raw, &m->info, &m->wire_bytes, m->interim,
                                  sizeof m->interim) > 0)
        m->head_moved = 1;
}

/*
 * What a segment sent by from_dir with ACK number raw had received of the
 * other direction, as an offset in that direction's stream (serial
 * arithmetic: wraparound is transparent; negative: before the first byte
 * the capture saw). OFF_UNKNOWN when there was no ACK or the other
 * direction's numbering is not known yet. The result does not depend on
 * when it is asked: next_seq and the delivered count move together.
 */
static int64_t acked(const struct hconn *h, int from_dir, int64_t raw)
{
    const struct repro_tcp_half *peer = &h->tc->half[!from_dir];

    if (raw == OFF_UNKNOWN || !peer->seq_known)
        return OFF_UNKNOWN;
    return (int64_t)(peer->bytes + peer->gap_bytes) + (int32_t)((uint32_t)raw - peer->next_seq);
}

/*
 * The client started a request whose first segment had ACK number ack. If an earlier request is still unanswered although every
 * server byte the client had was seen in sync, the client did not wait for
 * the response: the connection pipelines, and the rule that a request
 * follows the previous response no longer holds on it.
 */
static void check_pipelining(struct hconn *h, struct repro_tcp_conn *c, int64_t ack)
{
    const struct repro_tcp_half *s = &c->half[!h->client_dir];
    int64_t prev = h->last_req_ack;
    size_t i;

    if (ack != OFF_UNKNOWN)
        h->last_req_ack = ack;
    /* Two requests sent with no server byte received in between: the
     * second did not wait for the first one's response. Loss elsewhere
     * does not blur this. */
    if (!h->pipelined && ack != OFF_UNKNOWN && prev != OFF_UNKNOWN &&
        (int32_t)((uint32_t)ack - (uint32_t)prev) <= 0) {
        h->pipelined = 1;
        repro_log(REPRO_LOG_DEBUG, "capture.http", "connection %llu pipelines requests",
                  (unsigned long long)h->info.id);
    }
    ack = acked(h, h->client_dir, ack);
    if (h->pipelined || h->resp_lost || ack == OFF_UNKNOWN ||
        ack > (int64_t)(s->bytes + s->gap_bytes))
        return;
    for (i = 0; i < h->q_len; i++) {
        if (h->q[i].kind == Q_REQ && !h->q[i].have_resp && !h->q[i].no_resp) {
            h->pipelined = 1;
            repro_log(REPRO_LOG_DEBUG, "capture.http", "connection %llu pipelines requests",
                      (unsigned long long)h->info.id);
            return;
        }
    }
}

/* Stores the oldest waiting request without its response so that at most
 * max_pipeline requests hold bytes; its response, when it comes, is
 * stored alone. A run of such requests is one entry, so FIFO pairing
 * survives any number of them. */
static int evict_oldest(struct repro_capture *cap, struct hconn *h)
{
    size_t i;
    struct held_msg req;

    for (i = 0; i < h->q_len; i++)
        if (h->q[i].kind == Q_REQ && h->q[i].done && !h->q[i].have_resp && !h->q[i].no_resp)
            break;
    if (i == h->q_len)
        return 0;
    cap->stats.dropped_pipeline++;
    req = h->q[i].req;
    memset(&h->q[i].req, 0, sizeof h->q[i].req);
    h->n_held--;
    if (i > 0 && h->q[i - 1].kind == Q_EVICTED && !h->q[i - 1].no_resp) {
        h->q[i - 1].n++;
        h->q[i - 1].ack_raw = OFF_UNKNOWN; /* a run: only its start is known */
        memmove(h->q + i, h->q + i + 1, (h->q_len - i - 1) * sizeof *h->q);
        h->q_len--;
    } else {
        h->q[i].kind = Q_EVICTED;
        h->q[i].n = 1;
    }
    if (req.why == NULL)
        req.why = "stored before its response: more requests waited than --max-pipeline allows";
    return emit(cap, h, &req, NULL);
}

/* Marks that requests may have been lost in a client-stream gap at off.
 * The queue holds at most max_pipeline requests with bytes, and runs of
 * evicted requests lie between such marks, so bounding the marks bounds
 * the queue. */
static void note_lost_requests(struct repro_capture *cap, struct hconn *h, int64_t off)
{
    struct pending *p = NULL;

    if (h->q_len > 0 && h->q[h->q_len - 1].kind == Q_LOST && !h->q[h->q_len - 1].no_resp)
        return;
    if (h->q_len < 2 * cap->limits.max_pipeline + 8)
        p = push(cap, h, Q_LOST);
    if (p != NULL) {
        p->start_off = off;
        return;
    }
    /* Without the mark, a response to a lost request could look decided:
     * from here on no pairing on this connection is taken as certain. */
    h->untracked = 1;
    h->resp_lost = 1;
}

static int on_request(struct repro_capture *cap, struct hconn *h)
{
    struct pending *p = NULL;
    int rc;

    if (h->q_len > 0 && h->q[h->q_len - 1].kind == Q_REQ && !h->q[h->q_len - 1].done) {
        p = &h->q[h->q_len - 1]; /* answered early, while it was being sent */
    } else {
        if (h->n_held >= cap->limits.max_pipeline) {
            rc = evict_oldest(cap, h);
            if (rc)
                return rc;
        }
        p = push(cap, h, Q_REQ);
        if (p == NULL) {
            struct held_msg m;
            take_from(cap, h, h->client_dir, &m);
            cap->stats.dropped_pipeline++;
            held_release(cap, &m);
            note_lost_requests(cap, h, h->pos[h->client_dir].start);
            return 0;
        }
        p->start_off = h->pos[h->client_dir].start;
        p->ack_raw = h->pos[h->client_dir].start_ack;
    }
    take_from(cap, h, h->client_dir, &p->req);
    p->done = 1;
    h->n_held++;
    return flush_front(cap, h);
}

/* A final response and where it lies. */
struct resp_pos {
    int64_t start, end; /* server-stream offsets; end may be a lower bound */
    int end_exact;      /* end is the response's last byte */
    int64_t ack;        /* client-stream bytes the server had when it sent it */
};

/* Makes the request being sent an entry, so a response (an early one, or
 * one placed by evidence) can wait for it to end. NULL on allocation
 * failure. */
static struct pending *request_in_progress(struct repro_capture *cap, struct hconn *h)
{
    const struct msg_pos *ps = &h->pos[h->client_dir];
    struct pending *p = push(cap, h, Q_REQ);

    if (p != NULL) {
        p->start_off = ps->cur_start;
        p->ack_raw = ps->start_ack;
    }
    return p;
}

/* Settles entries [from, to) as answered by responses the capture lost. */
static void settle_lost(struct hconn *h, size_t from, size_t to)
{
    for (; from < to; from++) {
        struct pending *p = &h->q[from];
        p->no_resp = 1;
        if (p->kind == Q_REQ) {
            p->req.flags |= REPRO_XF_GAP;
            if (p->req.why == NULL)
                p->req.why = "its response was lost in a capture gap";
        }
    }
}

/* Stores r alone: it answers a request whose bytes are not held. */
static int emit_alone(struct repro_capture *cap, struct hconn *h, struct held_msg *m,
                      unsigned flags, const char *why)
{
    m->flags |= flags;
    if (m->why == NULL)
        m->why = why;
    return emit(cap, h, NULL, m);
}

/* Pairs response m with entry i (a guess when uncertain). */
static int attach(struct repro_capture *cap, struct hconn *h, size_t i, struct held_msg *m,
                  int uncertain)
{
    struct pending *p = &h->q[i];

    if (uncertain) {
        m->flags |= REPRO_XF_PAIRING_UNCERTAIN;
        m->why = "pairing uncertain: responses were lost before it and the TCP evidence "
                 "allows more than one request";
    }
    switch (p->kind) {
    case Q_LOST:
        return emit_alone(cap, h, m, REPRO_XF_GAP,
                          "answers a request that was lost in a capture gap");
    case Q_EVICTED: {
        int rc = emit_alone(cap, h, m, 0,
                            "answers a request stored earlier without its response "
                            "(--max-pipeline)");
        if (--p->n == 0)
            p->no_resp = 1;
        return rc;
    }
    default:
        p->resp = *m;
        p->have_resp = 1;
        return 0;
    }
}

/*
 * Whether r can answer entry p (known request, lost or evicted requests),
 * by what TCP tells:
 *  - the server cannot answer a request before it received its first byte
 *    (an early response, 100 Continue or a 413, may come before the rest);
 *  - a response the client had begun to receive before it sent a request
 *    does not answer that request;
 *  - with order_rule (a connection that does not pipeline), a request is
 *    sent after the response to the previous one ended: r, which ends at
 *    r->end, cannot answer a request followed by one sent at next_ack < end.
 */
static int may_answer(int64_t start_off, int64_t ack_off, int64_t next_ack, int order_rule,
                      const struct resp_pos *r)
{
    if (r->ack != OFF_UNKNOWN && start_off != OFF_UNKNOWN && start_off >= r->ack)
        return 0;
    if (ack_off != OFF_UNKNOWN && r->start < ack_off)
        return 0;
    if (order_rule && next_ack != OFF_UNKNOWN && r->end > next_ack)
        return 0;
    return 1;
}

/*
 * For the order rule: a bound on what the client had received when it
 * sent the request after entry i. A client's ACKs never decrease, so the
 * first later request whose ACK is known bounds it, even when lost or
 * evicted requests lie in between (theirs were no larger).
 */
static int64_t next_ack_of(const struct hconn *h, size_t i, int virt)
{
    size_t j;

    for (j = i + 1; j < h->q_len; j++)
        if (h->q[j].kind != Q_LOST && acked(h, h->client_dir, h->q[j].ack_raw) != OFF_UNKNOWN)
            return acked(h, h->client_dir, h->q[j].ack_raw);
    return virt ? acked(h, h->client_dir, h->pos[h->client_dir].start_ack) : OFF_UNKNOWN;
}

/* Client bytes delivered or declared lost so far. */
static int64_t client_seen(const struct hconn *h)
{
    const struct repro_tcp_half *c = &h->tc->half[h->client_dir];
    return (int64_t)(c->bytes + c->gap_bytes);
}

/*
 * Places a final response. In step (nothing lost since the last pairing
 * the evidence decided) it answers the oldest waiting request, as RFC 9112
 * orders them, unless TCP shows the server had not received that request
 * yet. After a loss every waiting request is a candidate unless TCP rules
 * it out (may_answer); one candidate left decides, several make the
 * pairing a guess flagged pairing_uncertain, none leave the response
 * without request.
 */
static int place_response(struct repro_capture *cap, struct hconn *h, struct held_msg *m,
                          const struct resp_pos *r)
{
    const struct msg_pos *cp = &h->pos[h->client_dir];
    size_t lo = first_waiting(h), i, first = 0;
    uint64_t n_cand = 0;
    int in_step = !h->resp_lost && (lo == h->q_len || h->q[lo].kind != Q_LOST);
    int order_rule = !in_step && !h->pipelined;
    /* a request being sent that has no entry yet */
    int virt = !(h->q_len > 0 && h->q[h->q_len - 1].kind == Q_REQ && !h->q[h->q_len - 1].done) &&
               repro_http_framer_busy(&h->fr[h->client_dir]) && cp->cur_start != OFF_UNKNOWN;

    for (i = lo; i < h->q_len && !(in_step && i > lo); i++) {
        const struct pending *p = &h->q[i];
        if (!may_answer(p->start_off, acked(h, h->client_dir, p->ack_raw), next_ack_of(h, i, virt),
                        order_rule, r))
            continue;
        if (n_cand == 0)
            first = i;
        n_cand += p->kind == Q_REQ ? 1 : p->kind == Q_EVICTED ? p->n : 2;
    }
    if (virt && (!in_step || lo == h->q_len) &&
        may_answer(cp->cur_start, acked(h, h->client_dir, cp->start_ack), OFF_UNKNOWN, 0, r)) {
        if (n_cand == 0)
            first = h->q_len;
        n_cand++;
    }
    /* The server had client bytes the capture has not delivered (lost, or
     * still out of order): requests it may have answered with r. */
    if (!in_step && r->ack != OFF_UNKNOWN && r->ack > client_seen(h)) {
        if (n_cand == 0) {
            settle_lost(h, lo, h->q_len);
            return emit_alone(cap, h, m, REPRO_XF_GAP,
                              "answers a request the capture has not seen");
        }
        n_cand += 2;
    }
    if (n_cand == 0) {
        if (lo == h->q_len && !virt && r->ack != OFF_UNKNOWN && r->ack > client_seen(h))
            return emit_alone(cap, h, m, REPRO_XF_GAP, "answers a request the capture has not seen");
        if (lo == h->q_len && !virt)
            return emit_alone(cap, h, m, 0, NULL); /* nothing was asked */
        return emit_alone(cap, h, m, 0,
                          in_step ? "sent before the server had the waiting request"
                                  : "after a capture gap, no captured request can be answered "
                                    "by it");
    }
    settle_lost(h, lo, first);
    if (h->untracked && !in_step)
        n_cand = n_cand > 1 ? n_cand : 2;
    if (n_cand == 1) {
        /* The next request was sent before this response had arrived: the
         * client pipelines. */
        int64_t next = OFF_UNKNOWN;
        if (first + 1 < h->q_len && h->q[first + 1].kind == Q_REQ)
            next = acked(h, h->client_dir, h->q[first + 1].ack_raw);
        else if (first + 1 == h->q_len && virt)
            next = acked(h, h->client_dir, cp->start_ack);
        if (r->end_exact && next != OFF_UNKNOWN && next < r->end)
            h->pipelined = 1;
        h->resp_lost = 0;
    } else {
        repro_log(REPRO_LOG_DEBUG, "capture.http",
                  "connection %llu: a response after a gap may answer %llu requests",
                  (unsigned long long)h->info.id, (unsigned long long)n_cand);
    }
    if (first == h->q_len && request_in_progress(cap, h) == NULL)
        return emit_alone(cap, h, m, REPRO_XF_PAIRING_UNCERTAIN, "out of memory");
    return attach(cap, h, first, m, n_cand > 1);
}

static int on_response(struct repro_capture *cap, struct hconn *h)
{
    struct held_msg m;
    struct resp_pos r;
    enum repro_http_role role;
    int rc;

    take_from(cap, h, !h->client_dir, &m);
    role = repro_http_response_role(m.has_info ? &m.info : NULL);
    if (role == REPRO_HTTP_ROLE_INTERIM) {
        add_interim(cap, h, &m);
        return 0;
    }
    attach_interim(h, &m);
    if (role == REPRO_HTTP_ROLE_TUNNEL) {
        m.flags |= REPRO_XF_TUNNEL;
        repro_http_framer_tunnel(&h->fr[h->client_dir]);
    }
    r.start = h->pos[!h->client_dir].start;
    r.end = h->pos[!h->client_dir].end;
    r.end_exact = h->pos[!h->client_dir].end_exact;
    r.ack = acked(h, !h->client_dir, h->pos[!h->client_dir].start_ack);
    rc = place_response(cap, h, &m, &r);
    return rc ? rc : flush_front(cap, h);
}

static int on_message(struct repro_capture *cap, struct hconn *h, int dir)
{
    int rc = dir == h->client_dir ? on_request(cap, h) : on_response(cap, h);
    set_method_hint(h);
    return rc;
}

/* Decides which side is the client from the first payload bytes. */
static void orient(struct repro_capture *cap, struct repro_tcp_conn *c, struct hconn *h, int dir,
                   const uint8_t *p, size_t len)
{
    struct repro_http_limits hl = cap->limits.http;
    /* Bytes lost before the first ones seen count as picking the stream
     * up in the middle: the first message starts later. */
    int mid = c->mid_stream || c->half[0].gap_bytes > 0 || c->half[1].gap_bytes > 0, d;
    int proto = repro__sniff_proto(p, len);

    if (proto != REPRO_PROTO_OTHER) {
        /* HTTP/2 with prior knowledge or TLS: recognised and counted, not
         * framed as (malformed) HTTP/1 */
        h->not_http = 1;
        h->client_dir = c->syn_dir >= 0 ? c->syn_dir : dir;
        if (proto == REPRO_PROTO_TLS)
            cap->stats.tls_connections++;
        else
            cap->stats.http2_connections++;
    } else if (repro_http_looks_like_start(REPRO_HTTP_RESPONSE, p, len) == 1)
        h->client_dir = !dir;
    else if (repro_http_looks_like_start(REPRO_HTTP_REQUEST, p, len) != 0)
        h->client_dir = dir;
    else if (!mid) {
        h->not_http = 1; /* a fresh connection that does not start with HTTP */
        h->client_dir = c->syn_dir >= 0 ? c->syn_dir : 0;
    } else {
        /* Picked up mid-message: the lower port is most likely the server. */
        h->client_dir = c->port[0] < c->port[1] ? 1 : 0;
    }
    h->info.family = c->family;
    memcpy(h->info.client_ip, c->addr[h->client_dir], 16);
    memcpy(h->info.server_ip, c->addr[!h->client_dir], 16);
    h->info.client_port = c->port[h->client_dir];
    h->info.server_port = c->port[!h->client_dir];
    h->info.mid_stream = c->mid_stream;
    h->info.is_http = !h->not_http;
    hl.budget = &cap->budget;
    hl.watched_names = cap->name_filter.secret_bits; /* redaction's shortcut */
    for (d = 0; d < 2; d++)
        repro_http_framer_init(&h->fr[d], d == h->client_dir ? REPRO_HTTP_REQUEST : REPRO_HTTP_RESPONSE,
                               &hl, mid);
    h->framers_ready = 1;
    if (mid) {
        /* Messages before the first bytes seen are unknown: a response may
         * answer a request the capture never had, so pairing starts from
         * the evidence, not from order. */
        note_lost_requests(cap, h, 0);
        h->resp_lost = 1;
    }
}

static int cb_open(void *ctx, struct repro_tcp_conn *c)
{
    struct repro_capture *cap = ctx;
    (void)c;
    cap->stats.connections++;
    return 0;
}

/* The state of c, made at its first payload byte (charged to the table);
 * NULL when it could not be allocated (the connection's bytes are then
 * dropped, and counted, for the rest of its life). */
static struct hconn *conn_state(struct repro_capture *cap, struct repro_tcp_conn *c)
{
    struct hconn *h = c->user;
    int d;

    if (h == UNTRACKED) {
        cap->alloc_dropped++;
        return NULL;
    }
    if (h != NULL)
        return h;
    h = repro_calloc(1, sizeof *h);
    if (h == NULL) {
        c->user = UNTRACKED;
        cap->alloc_dropped++;
        return NULL;
    }
    cap->table.used += repro__http_conn_cost();
    h->client_dir = -1;
    h->tc = c;
    h->last_req_ack = OFF_UNKNOWN;
    h->info.id = c->id;
    h->info.opened_us = c->first_us;
    h->info.closed_us = -1;
    h->info.end_reason = -1;
    h->info.store_id = -1;
    for (d = 0; d < 2; d++) {
        h->pos[d].start_ack = h->pos[d].cur_start = OFF_UNKNOWN;
        h->pos[d].start = h->pos[d].end = 0;
    }
    /* gaps declared before the first payload byte */
    h->info.gap_bytes = c->half[0].gap_bytes + c->half[1].gap_bytes;
    repro_http_interim_init(&h->interim, cap->limits.http.max_head, &cap->budget);
    c->user = h;
    return h;
}

/* Whether c's state holds bytes charged to the held budget. */
static int cb_holds(void *ctx, const struct repro_tcp_conn *c)
{
    const struct hconn *h = c->user;
    (void)ctx;

    if (h == NULL || h == UNTRACKED)
        return 0;
    return h->q_len > 0 || h->interim.raw.len > 0 ||
           (h->framers_ready && !h->not_http &&
            (repro_http_framer_busy(&h->fr[0]) || repro_http_framer_busy(&h->fr[1])));
}

/* Offset of the next byte of direction dir (gaps included). */
static int64_t stream_off(const struct repro_tcp_conn *c, int dir)
{
    return (int64_t)(c->half[dir].bytes + c->half[dir].gap_bytes);
}

/* The ACK number of the segment being delivered on dir (OFF_UNKNOWN when
 * it had none). It is turned into an offset only when used (acked()), so
 * an ACK sent before the peer's numbering was known still counts. */
static int64_t seg_ack(const struct repro_tcp_conn *c, int dir)
{
    return c->half[dir].seg_ack_known ? (int64_t)c->half[dir].seg_ack : OFF_UNKNOWN;
}

/* A message of dir began at start, in the segment that begins at seg_off
 * (OFF_UNKNOWN: not in a segment, at a gap or the end) and acknowledged
 * ack. Only the segment with its first byte tells what the sender had
 * received when it began. */
static void note_start(struct hconn *h, struct repro_tcp_conn *c, int dir, int64_t start,
                       int64_t seg_off, int64_t ack)
{
    if (seg_off == OFF_UNKNOWN || start < seg_off)
        return;
    h->pos[dir].start_ack = ack;
    if (dir == h->client_dir)
        check_pipelining(h, c, ack);
}

/* The framer of dir reported a message whose wire bytes end at end. A
 * message ended by a gap really ends somewhere in the gap: only where the
 * captured bytes stopped (seen_end) is known, and end_exact says so. */
static void note_finished(struct hconn *h, struct repro_tcp_conn *c, int dir, int64_t end,
                          int64_t seen_end, int64_t seg_off, int64_t ack)
{
    struct msg_pos *ps = &h->pos[dir];
    int64_t start = end - (int64_t)repro_http_framer_msg(&h->fr[dir])->wire_bytes;

    note_start(h, c, dir, start, seg_off, ack);
    ps->start = start;
    ps->end = seen_end;
    ps->end_exact = seen_end == end;
    ps->cur_start = OFF_UNKNOWN;
}

static int cb_data(void *ctx, struct repro_tcp_conn *c, int dir, const uint8_t *p, size_t len,
                   int64_t ts)
{
    struct repro_capture *cap = ctx;
    struct hconn *h = conn_state(cap, c);
    struct repro_http_framer *f;
    int64_t seg_off, ack;
    size_t done = 0;
    int rc;

    if (h == NULL)
        return 0;
    if (!h->framers_ready) {
        orient(cap, c, h, dir, p, len);
        rc = open_conn(cap, h);
        if (rc)
            return rc;
    }
    if (dir == h->client_dir)
        h->info.bytes_c2s += len;
    else
        h->info.bytes_s2c += len;
    if (h->not_http)
        return 0;
    f = &h->fr[dir];
    seg_off = stream_off(c, dir) - (int64_t)len;
    ack = seg_ack(c, dir);
    if (cap->n_spare > 0 && repro_http_framer_lend(f, &cap->spare[cap->n_spare - 1]))
        cap->n_spare--;
    while (done < len) {
        size_t used = 0;
        uint64_t refused = cap->budget.refused;
        enum repro_http_outcome o = repro_http_framer_feed(f, p + done, len - done, ts, &used);
        if (cap->budget.refused != refused)
            h->budget_cut[dir] = 1;
        done += used;
        if (o == REPRO_HTTP_NEED_MORE)
            break;
        note_finished(h, c, dir, seg_off + (int64_t)done, seg_off + (int64_t)done, seg_off, ack);
        rc = on_message(cap, h, dir);
        if (rc)
            return rc;
    }
    /* a framer between messages keeps no buffer (an idle connection holds
     * none): back to the spares, or freed */
    {
        struct repro_buf b;
        if (repro_http_framer_reclaim(f, &b))
            recycle(cap, &b);
    }
    if (repro_http_framer_busy(f)) {
        int64_t start = seg_off + (int64_t)len - (int64_t)repro_http_framer_pending_wire(f);
        if (h->pos[dir].cur_start != start)
            note_start(h, c, dir, start, seg_off, ack);
        h->pos[dir].cur_start = start;
    } else {
        h->pos[dir].cur_start = OFF_UNKNOWN;
    }
    if (dir == h->client_dir)
        set_method_hint(h);
    return 0;
}

static int cb_gap(void *ctx, struct repro_tcp_conn *c, int dir, uint64_t len, int64_t ts)
{
    struct repro_capture *cap = ctx;
    struct hconn *h = c->user;
    int64_t gap_start = stream_off(c, dir) - (int64_t)len;
    int rc;

    /* Before the first payload byte: conn_state() counts it then. */
    if (h == NULL || h == UNTRACKED)
        return 0;
    h->info.gap_bytes += len;
    if (!h->framers_ready || h->not_http)
        return 0;
    if (repro_http_framer_gap(&h->fr[dir], len, ts) == REPRO_HTTP_DONE) {
        note_finished(h, c, dir, stream_off(c, dir), gap_start, OFF_UNKNOWN, OFF_UNKNOWN);
        rc = on_message(cap, h, dir);
        if (rc)
            return rc;
    }
    if (repro_http_framer_busy(&h->fr[dir]))
        return 0; /* inside a body whose length keeps the framer in step */
    /* The framer lost its place: whole messages may be in the gap. */
    h->pos[dir].cur_start = OFF_UNKNOWN;
    repro_log(REPRO_LOG_DEBUG, "capture.http", "connection %llu: %llu bytes lost %s",
              (unsigned long long)h->info.id, (unsigned long long)len,
              dir == h->client_dir ? "from the client" : "from the server");
    if (dir == h->client_dir) {
        note_lost_requests(cap, h, gap_start);
    } else {
        h->resp_lost = 1;
        drop_interim(h);
    }
    return 0;
}

static int end_direction(struct repro_capture *cap, struct hconn *h, struct repro_tcp_conn *c,
                         int dir, int64_t ts)
{
    if (h->eof[dir] || !h->framers_ready || h->not_http)
        return 0;
    h->eof[dir] = 1;
    if (repro_http_framer_eof(&h->fr[dir], ts) == REPRO_HTTP_DONE) {
        note_finished(h, c, dir, stream_off(c, dir), stream_off(c, dir), OFF_UNKNOWN,
                      OFF_UNKNOWN);
        return on_message(cap, h, dir);
    }
    return 0;
}

static int cb_fin(void *ctx, struct repro_tcp_conn *c, int dir, int64_t ts)
{
    struct hconn *h = c->user;
    return h && h != UNTRACKED ? end_direction(ctx, h, c, dir, ts) : 0;
}

static int cb_close(void *ctx, struct repro_tcp_conn *c, int reason, int64_t ts)
{
    struct repro_capture *cap = ctx;
    struct hconn *h = c->user;
    struct repro_http_framer_stats fs[2];
    int rc = 0, d;

    if (h == UNTRACKED)
        c->user = NULL;
    if (h == NULL)
        cap->stats.non_http_connections++; /* no payload at all */
    if (h == NULL || h == UNTRACKED)
        return 0;
    h->evicted_mem = reason == REPRO_END_MEMORY;
    if (h->framers_ready) {
        /* The response side first: a close-delimited response completes. */
        rc = end_direction(cap, h, c, !h->client_dir, ts);
        if (rc == 0)
            rc = end_direction(cap, h, c, h->client_dir, ts);
    }
    while (rc == 0 && h->q_len > 0) {
        struct pending p = h->q[0];
        pop_front(h);
        if (p.kind != Q_REQ)
            continue;
        if (p.done) {
            h->n_held--;
            rc = emit(cap, h, &p.req, p.have_resp ? &p.resp : NULL);
        } else if (p.have_resp) {
            rc = emit(cap, h, NULL, &p.resp);
        }
    }
    if (!h->framers_ready)
        cap->stats.non_http_connections++; /* state made, framing never began */
    if (h->framers_ready) {
        for (d = 0; d < 2; d++) {
            repro_http_framer_stats(&h->fr[d], &fs[d]);
            cap->stats.skipped_stream_bytes += fs[d].skipped_bytes;
            cap->stats.tunnel_bytes += fs[d].tunnel_bytes;
            cap->stats.dropped_body_bytes += fs[d].capped_bytes;
        }
        if (h->not_http || (fs[0].n_messages == 0 && fs[1].n_messages == 0)) {
            h->info.is_http = 0;
            cap->stats.non_http_connections++;
        } else {
            cap->stats.http_connections++;
        }
    }
    h->info.closed_us = ts;
    h->info.end_reason = reason;
    repro_log(REPRO_LOG_DEBUG, "capture.tcp", "connection %llu closed (%s): %llu exchanges, %llu bytes lost",
              (unsigned long long)h->info.id, repro_conn_end_name(reason),
              (unsigned long long)h->info.n_exchanges, (unsigned long long)h->info.gap_bytes);
    if (rc == 0 && h->opened && cap->sink.conn_close)
        rc = cap->sink.conn_close(cap->sink.ctx, &h->info);
    while (h->q_len > 0) {
        held_release(cap, &h->q[0].req);
        if (h->q[0].have_resp)
            held_release(cap, &h->q[0].resp);
        pop_front(h);
    }
    free_queue(cap, h);
    repro_http_interim_release(&h->interim);
    if (h->framers_ready) {
        repro_http_framer_release(&h->fr[0]);
        repro_http_framer_release(&h->fr[1]);
    }
    repro_free(h);
    repro_budget_give(&cap->table, repro__http_conn_cost());
    c->user = NULL;
    return rc;
}

const struct repro_reasm_cb repro__http_conn_cb = {.ctx = NULL,
                                                   .open = cb_open,
                                                   .data = cb_data,
                                                   .gap = cb_gap,
                                                   .fin = cb_fin,
                                                   .close = cb_close,
                                                   .holds = cb_holds};
