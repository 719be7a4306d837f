/*
 * HTTP over one reassembled TCP connection: decides which side is the
 * client, runs a request framer and a response framer, and pairs responses
 * with requests in order (RFC 9112 section 9.3: responses come in the order
 * of the requests, including pipelined ones).
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
};

struct pending {
    struct held_msg req;
    int have_resp;
    struct held_msg resp;
};

struct hconn {
    struct repro_conn_info info;
    int client_dir; /* -1 until known */
    int opened;     /* sink conn_open called */
    int not_http;
    int framers_ready;
    struct repro_http_framer fr[2]; /* indexed by direction */
    struct pending *q;              /* waiting requests, oldest first */
    size_t q_len, q_cap;
    struct held_msg early;  /* a final response that came before its request finished */
    int have_early;
    struct repro_buf interim_raw; /* 1xx responses before any request completed */
    char interim[64];
    int eof[2];
};

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

static void held_release(struct repro_capture *cap, struct held_msg *m)
{
    repro_budget_give(&cap->budget, m->raw.len);
    repro_buf_release(&m->raw);
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
    repro_http_framer_take_raw(f, &m->raw);
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
    if (m->raw.len == 0)
        return;
    rc = repro__redact(&cap->rules, kind, (struct repro_slice){m->raw.data, m->raw.len},
                       m->has_info ? &m->info : NULL, m->flags, cap->limits.http.max_store, &res);
    snprintf(note, note_len, "%s", res.note);
    m->flags |= res.xflags;
    if (res.xflags & REPRO_XF_DECODED)
        cap->stats.bodies_decoded++;
    if (res.xflags & REPRO_XF_BODY_DROPPED)
        cap->stats.bodies_dropped++;
    if (rc == 0)
        return;
    repro_budget_give(&cap->budget, m->raw.len);
    repro_buf_release(&m->raw);
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
        x.flags |= req->flags;
        x.note = req->why;
        if (req->has_info)
            snprintf(x.version, sizeof x.version, "HTTP/%d.%d", req->info.version_major,
                     req->info.version_minor);
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
        x.flags |= resp->flags;
        if (x.note == NULL)
            x.note = resp->why;
        if (req == NULL && resp->has_info)
            snprintf(x.version, sizeof x.version, "HTTP/%d.%d", resp->info.version_major,
                     resp->info.version_minor);
        if (resp->interim[0] != '\0') {
            snprintf(x.interim, sizeof x.interim, "%s", resp->interim);
            x.flags |= REPRO_XF_INTERIM;
        }
    } else {
        x.flags |= REPRO_XF_UNANSWERED;
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
        for (bit = 0; bit < 9; bit++)
            if ((x.flags & REPRO_XF_INCOMPLETE) & (1u << bit))
                st->incomplete_by[bit]++;
    }
    if (x.flags & REPRO_XF_REDACTED)
        st->redacted++;
    if (x.flags & REPRO_XF_MALFORMED) {
        char a[64], b[64];
        st->errors++;
        repro_format_endpoint(a, sizeof a, h->info.family, h->info.client_ip, h->info.client_port);
        repro_format_endpoint(b, sizeof b, h->info.family, h->info.server_ip, h->info.server_port);
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

static void pop_front(struct hconn *h)
{
    memmove(h->q, h->q + 1, (h->q_len - 1) * sizeof *h->q);
    h->q_len--;
}

/* Pairs the oldest waiting request with its response and emits it. */
static int emit_front(struct repro_capture *cap, struct hconn *h)
{
    struct pending p = h->q[0];

    pop_front(h);
    return emit(cap, h, &p.req, p.have_resp ? &p.resp : NULL);
}

static void set_method_hint(struct hconn *h)
{
    struct repro_http_framer *rf = &h->fr[!h->client_dir];
    size_t i;

    for (i = 0; i < h->q_len; i++) {
        if (!h->q[i].have_resp) {
            struct repro_slice m = span(&h->q[i].req, h->q[i].req.info.method);
            repro_http_framer_set_request_method(rf, (const char *)m.ptr, m.len);
            return;
        }
    }
    /* No finished request waiting: the one being sent, if any. */
    {
        struct repro_http_framer *qf = &h->fr[h->client_dir];
        if (repro_http_framer_busy(qf) && qf->head_raw_len > 0) {
            struct repro_slice m = repro_http_span_slice(
                (struct repro_slice){qf->raw.data, qf->raw.len}, qf->info.method);
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
    size_t n = strlen(h->interim);

    snprintf(h->interim + n, sizeof h->interim - n, "%s%d", n ? "," : "", m->info.status);
    if (repro_budget_take(&cap->budget, m->raw.len) &&
        repro_buf_append(&h->interim_raw, m->raw.data, m->raw.len) != REPRO_OK)
        repro_budget_give(&cap->budget, m->raw.len);
    held_release(cap, m);
}

/* Moves the pending interim responses in front of the final response m. */
static void attach_interim(struct repro_capture *cap, struct hconn *h, struct held_msg *m)
{
    struct repro_buf *pre = &h->interim_raw;

    snprintf(m->interim, sizeof m->interim, "%s", h->interim);
    h->interim[0] = '\0';
    if (pre->len == 0)
        return;
    if (repro_buf_append(pre, m->raw.data, m->raw.len) == REPRO_OK) {
        uint32_t shift = (uint32_t)(pre->len - m->raw.len);
        struct repro_buf tmp = m->raw;
        m->raw = *pre;
        *pre = tmp; /* keeps the old buffer's memory for the next interim */
        m->info.reason.off += shift;
        m->info.target.off += shift;
        m->info.method.off += shift;
        m->info.host.off += shift;
        m->wire_bytes += shift;
    } else {
        repro_budget_give(&cap->budget, pre->len);
    }
    repro_buf_reset(pre);
}

static int on_request(struct repro_capture *cap, struct hconn *h)
{
    struct pending *p;

    if (h->q_len >= cap->limits.max_pipeline) {
        /* Too many requests without responses: the oldest is stored now as
         * unanswered so memory stays bounded. */
        cap->stats.dropped_pipeline++;
        int rc = emit_front(cap, h);
        if (rc)
            return rc;
    }
    if (h->q_len == h->q_cap) {
        size_t ncap = h->q_cap ? h->q_cap * 2 : 4;
        struct pending *nq = repro_realloc(h->q, ncap * sizeof *nq);
        if (nq == NULL) {
            struct held_msg m;
            take_msg(&h->fr[h->client_dir], &m);
            cap->stats.dropped_pipeline++;
            held_release(cap, &m);
            return 0;
        }
        h->q = nq;
        h->q_cap = ncap;
    }
    p = &h->q[h->q_len++];
    memset(p, 0, sizeof *p);
    take_msg(&h->fr[h->client_dir], &p->req);
    if (h->have_early) {
        /* the response that arrived while this request was being sent */
        p->resp = h->early;
        p->have_resp = 1;
        h->have_early = 0;
    }
    while (h->q_len > 0 && h->q[0].have_resp) {
        int rc = emit_front(cap, h);
        if (rc)
            return rc;
    }
    return 0;
}

static int on_response(struct repro_capture *cap, struct hconn *h)
{
    struct held_msg m;
    size_t i;
    int status;

    take_msg(&h->fr[!h->client_dir], &m);
    status = m.has_info ? m.info.status : 0;
    if (status >= 100 && status < 200 && status != 101) {
        add_interim(cap, h, &m);
        return 0;
    }
    attach_interim(cap, h, &m);
    if (m.has_info && m.info.body == REPRO_HTTP_BODY_TUNNEL) {
        m.flags |= REPRO_XF_TUNNEL;
        repro_http_framer_tunnel(&h->fr[h->client_dir]);
    }
    for (i = 0; i < h->q_len && h->q[i].have_resp; i++)
        ;
    if (i == h->q_len) {
        if (repro_http_framer_busy(&h->fr[h->client_dir]) && !h->have_early) {
            h->early = m; /* the request is still being sent */
            h->have_early = 1;
            return 0;
        }
        return emit(cap, h, NULL, &m);
    }
    h->q[i].resp = m;
    h->q[i].have_resp = 1;
    while (h->q_len > 0 && h->q[0].have_resp) {
        int rc = emit_front(cap, h);
        if (rc)
            return rc;
    }
    return 0;
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
    int mid = c->mid_stream, d, proto = repro__sniff_proto(p, len);

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
    for (d = 0; d < 2; d++)
        repro_http_framer_init(&h->fr[d], d == h->client_dir ? REPRO_HTTP_REQUEST : REPRO_HTTP_RESPONSE,
                               &hl, mid);
    h->framers_ready = 1;
}

static int cb_open(void *ctx, struct repro_tcp_conn *c)
{
    struct repro_capture *cap = ctx;
    struct hconn *h = repro_calloc(1, sizeof *h);

    if (h == NULL)
        return 0; /* the connection is tracked without HTTP: counted below */
    h->client_dir = -1;
    h->info.id = c->id;
    h->info.opened_us = c->first_us;
    h->info.closed_us = -1;
    h->info.end_reason = -1;
    h->info.store_id = -1;
    repro_buf_init(&h->interim_raw, cap->limits.http.max_head);
    c->user = h;
    cap->stats.connections++;
    return 0;
}

static int cb_data(void *ctx, struct repro_tcp_conn *c, int dir, const uint8_t *p, size_t len,
                   int64_t ts)
{
    struct repro_capture *cap = ctx;
    struct hconn *h = c->user;
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
    while (len > 0) {
        size_t used = 0;
        enum repro_http_outcome o = repro_http_framer_feed(&h->fr[dir], p, len, ts, &used);
        p += used;
        len -= used;
        if (o == REPRO_HTTP_NEED_MORE)
            break;
        rc = on_message(cap, h, dir);
        if (rc)
            return rc;
    }
    if (dir == h->client_dir)
        set_method_hint(h);
    return 0;
}

static int cb_gap(void *ctx, struct repro_tcp_conn *c, int dir, uint64_t len, int64_t ts)
{
    struct repro_capture *cap = ctx;
    struct hconn *h = c->user;

    if (h == NULL)
        return 0;
    h->info.gap_bytes += len;
    if (!h->framers_ready || h->not_http)
        return 0;
    if (repro_http_framer_gap(&h->fr[dir], len, ts) == REPRO_HTTP_DONE)
        return on_message(cap, h, dir);
    return 0;
}

static int end_direction(struct repro_capture *cap, struct hconn *h, int dir, int64_t ts)
{
    if (h->eof[dir] || !h->framers_ready || h->not_http)
        return 0;
    h->eof[dir] = 1;
    if (repro_http_framer_eof(&h->fr[dir], ts) == REPRO_HTTP_DONE)
        return on_message(cap, h, dir);
    return 0;
}

static int cb_fin(void *ctx, struct repro_tcp_conn *c, int dir, int64_t ts)
{
    struct hconn *h = c->user;
    return h ? end_direction(ctx, h, dir, ts) : 0;
}

static int cb_close(void *ctx, struct repro_tcp_conn *c, int reason, int64_t ts)
{
    struct repro_capture *cap = ctx;
    struct hconn *h = c->user;
    int rc = 0, d;

    if (h == NULL)
        return 0;
    if (h->framers_ready) {
        /* The response side first: a close-delimited response completes. */
        rc = end_direction(cap, h, !h->client_dir, ts);
        if (rc == 0)
            rc = end_direction(cap, h, h->client_dir, ts);
    }
    while (rc == 0 && h->q_len > 0)
        rc = emit_front(cap, h);
    if (rc == 0 && h->have_early) {
        h->have_early = 0;
        rc = emit(cap, h, NULL, &h->early);
    }
    if (!h->framers_ready)
        cap->stats.non_http_connections++; /* no payload at all */
    if (h->framers_ready) {
        for (d = 0; d < 2; d++) {
            cap->stats.skipped_stream_bytes += h->fr[d].skipped_bytes;
            cap->stats.tunnel_bytes += h->fr[d].tunnel_bytes;
            cap->stats.dropped_body_bytes += h->fr[d].capped_bytes;
        }
        if (h->not_http || (h->fr[0].n_messages == 0 && h->fr[1].n_messages == 0)) {
            h->info.is_http = 0;
            cap->stats.non_http_connections++;
        } else {
            cap->stats.http_connections++;
        }
    }
    h->info.closed_us = ts;
    h->info.end_reason = reason;
    if (rc == 0 && h->opened && cap->sink.conn_close)
        rc = cap->sink.conn_close(cap->sink.ctx, &h->info);
    while (h->q_len > 0) {
        held_release(cap, &h->q[0].req);
        if (h->q[0].have_resp)
            held_release(cap, &h->q[0].resp);
        pop_front(h);
    }
    if (h->have_early)
        held_release(cap, &h->early);
    repro_free(h->q);
    repro_budget_give(&cap->budget, h->interim_raw.len);
    repro_buf_release(&h->interim_raw);
    if (h->framers_ready) {
        repro_http_framer_release(&h->fr[0]);
        repro_http_framer_release(&h->fr[1]);
    }
    repro_free(h);
    c->user = NULL;
    return rc;
}

const struct repro_reasm_cb repro__http_conn_cb = {
    .ctx = NULL, .open = cb_open, .data = cb_data, .gap = cb_gap, .fin = cb_fin, .close = cb_close};
