/*
 * The HTTP/1.x framer: finds message boundaries in one direction of one
 * connection (RFC 9112 section 6), keeping each message's raw bytes up to a
 * cap so capture can store them and replay can compare them.
 *
 * It is built for passive capture: input may start mid-message, have holes
 * (capture gaps, reported with their length) or stop anywhere. A gap inside
 * a Content-Length body or inside one chunk's data keeps the framer in sync;
 * any other gap ends the current message (flagged) and the framer
 * resynchronises at the next line that looks like a message start; a
 * response stream after a gap at any byte that starts a status line
 * ("HTTP/1."), since the lost body need not have ended in a newline. Malformed
 * input is reported as a message flagged MALFORMED, never as a failure.
 *
 * Deliberately left out: interpreting bodies, HTTP/2 (its preface is not a
 * valid request line, so such streams are skipped as non-HTTP).
 */
#include "repro/http.h"

#include <string.h>

enum {
    FR_IDLE = 0, /* between messages */
    FR_HEAD,     /* collecting a head */
    FR_BODY,     /* inside a body */
    FR_RESYNC,   /* skipping to the next plausible message start */
    FR_TUNNEL,   /* opaque bytes until the end */
    FR_PROBE     /* like FR_HEAD for a start found while resynchronising:
                    if its first bytes rule out a message they are skipped */
};

/* repro_http_looks_like_start() decides within this many bytes. */
#define START_DECIDED 32

void repro_http_limits_default(struct repro_http_limits *l)
{
    l->max_head = 64 * 1024;
    l->max_store = 1024 * 1024;
    l->max_trailer = 16 * 1024;
    l->budget = NULL;
    l->watched_names = NULL;
}

/* Whether no name of h is in the watched set w (4 words). */
static int unwatched(const struct repro_http_head *h, const uint64_t *w)
{
    return ((h->name_bits[0] & w[0]) | (h->name_bits[1] & w[1]) | (h->name_bits[2] & w[2]) |
            (h->name_bits[3] & w[3])) == 0;
}

static struct repro_http_span span_of(struct repro_slice s, const uint8_t *base)
{
    if (s.ptr == NULL || s.len == 0)
        return (struct repro_http_span){0, 0};
    return (struct repro_http_span){(uint32_t)(s.ptr - base), (uint32_t)s.len};
}

/* A span of a value that may be present and empty: off 0 means absent. */
static struct repro_http_span value_span_of(struct repro_slice s, const uint8_t *base)
{
    if (s.ptr != NULL && s.len == 0)
        return (struct repro_http_span){(uint32_t)(s.ptr - base), 0};
    return span_of(s, base);
}

void repro_http_info_from_head(struct repro_http_info *info, const struct repro_http_head *h,
                               const uint8_t *base)
{
    info->kind = h->kind;
    info->status = h->status;
    info->version_major = h->version_major;
    info->version_minor = h->version_minor;
    info->content_length = h->content_length;
    info->flags = h->flags;
    info->body = REPRO_HTTP_BODY_NONE;
    info->head_len = h->head_len;
    info->method = span_of(h->method, base);
    info->target = span_of(h->target, base);
    info->reason = span_of(h->reason, base);
    info->host = span_of(h->host, base);
    info->content_type = value_span_of(h->content_type, base);
    info->content_encoding = value_span_of(h->content_encoding, base);
}

void repro_http_framer_init(struct repro_http_framer *f, enum repro_http_kind kind,
                            const struct repro_http_limits *limits, int mid_stream)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    if (limits != NULL)
        f->limits = *limits;
    else
        repro_http_limits_default(&f->limits);
    repro_buf_init(&f->raw, f->limits.max_head > f->limits.max_store ? f->limits.max_head
                                                                     : f->limits.max_store);
    f->state = mid_stream ? FR_RESYNC : FR_IDLE;
    f->at_line_start = 1;
    /* Picked up inside a message, a response stream may go on with the
     * next status line right after a body without a newline. */
    f->resync_any = mid_stream && kind == REPRO_HTTP_RESPONSE;
}

void repro_http_framer_release(struct repro_http_framer *f)
{
    if (f == NULL)
        return;
    repro_budget_give(f->limits.budget, f->raw.len);
    repro_buf_release(&f->raw);
}

void repro_http_framer_set_request_method(struct repro_http_framer *f, const char *method,
                                          size_t len)
{
    if (method == NULL || len >= sizeof f->req_method)
        len = 0;
    if (len > 0)
        memcpy(f->req_method, method, len);
    f->req_method[len] = '\0';
}

void repro_http_framer_tunnel(struct repro_http_framer *f)
{
    f->state = FR_TUNNEL;
}

int repro_http_framer_busy(const struct repro_http_framer *f)
{
    return !f->finished && (f->state == FR_HEAD || f->state == FR_PROBE || f->state == FR_BODY);
}

uint64_t repro_http_framer_pending_wire(const struct repro_http_framer *f)
{
    return repro_http_framer_busy(f) ? f->wire_bytes : 0;
}

const struct repro_http_msg *repro_http_framer_msg(const struct repro_http_framer *f)
{
    return &f->msg;
}

void repro_http_framer_take_raw(struct repro_http_framer *f, struct repro_buf *out)
{
    *out = f->raw;
    repro_buf_init(&f->raw, out->max);
}

int repro_http_framer_lend(struct repro_http_framer *f, struct repro_buf *b)
{
    /* a finished message whose bytes were taken holds nothing either */
    if (!(f->state == FR_IDLE || f->state == FR_RESYNC) || f->raw.data != NULL ||
        b->data == NULL || b->len != 0 || b->cap > f->raw.max)
        return 0;
    f->raw.data = b->data;
    f->raw.cap = b->cap;
    f->raw.len = 0;
    repro_buf_init(b, b->max);
    return 1;
}

int repro_http_framer_reclaim(struct repro_http_framer *f, struct repro_buf *b)
{
    if (f->finished || !(f->state == FR_IDLE || f->state == FR_RESYNC) || f->raw.data == NULL ||
        f->raw.len != 0)
        return 0;
    *b = f->raw;
    repro_buf_init(&f->raw, b->max);
    return 1;
}

/* Drops the previous message once the caller has had its look at it. */
static void clear_finished(struct repro_http_framer *f)
{
    if (!f->finished)
        return;
    f->finished = 0;
    repro_budget_give(f->limits.budget, f->raw.len);
    repro_buf_reset(&f->raw);
    f->flags = 0;
    f->why = NULL;
    f->wire_bytes = 0;
    f->head_raw_len = 0;
    memset(&f->msg, 0, sizeof f->msg);
}

/* Keeps n bytes of the current message, within max_store and the budget. */
static void keep(struct repro_http_framer *f, const uint8_t *p, size_t n)
{
    size_t room = f->raw.len < f->limits.max_store ? f->limits.max_store - f->raw.len : 0;
    size_t k = n < room ? n : room;

    /* The kept bytes are always a prefix of the message: once something
     * was not kept, nothing after it is (no holes in stored bytes). Within
     * that, the budget grants what it can, so results do not depend on how
     * the stream was cut into segments. */
    if (f->flags & REPRO_HTTP_M_BODY_CAPPED)
        k = 0;
    if (k > 0)
        k = repro_budget_take_upto(f->limits.budget, k);
    if (k > 0 && repro_buf_append(&f->raw, p, k) != REPRO_OK) {
        repro_budget_give(f->limits.budget, k);
        k = 0;
    }
    if (k < n) {
        f->flags |= REPRO_HTTP_M_BODY_CAPPED;
        f->capped_bytes += n - k;
    }
}

static enum repro_http_outcome finish(struct repro_http_framer *f, int next_state,
                                      enum repro_http_outcome rc)
{
    f->msg.info = f->head_raw_len > 0 ? &f->info : NULL;
    f->msg.raw = (struct repro_slice){f->raw.data, f->raw.len};
    f->msg.wire_bytes = f->wire_bytes;
    f->msg.first_us = f->first_us;
    f->msg.last_us = f->last_us;
    f->msg.flags = f->flags;
    f->msg.why = f->why;
    /* Every body byte was seen: the digest covers the whole body. */
    f->msg.has_body_digest =
        f->head_raw_len > 0 && !(f->flags & (REPRO_HTTP_M_GAP | REPRO_HTTP_M_TRUNCATED |
                                             REPRO_HTTP_M_MALFORMED));
    if (f->msg.has_body_digest)
        repro_http_digest_final(&f->digest, f->msg.body_digest);
    f->finished = 1;
    f->n_messages++;
    f->state = next_state;
    f->body = REPRO_HTTP_BODY_NONE;
    f->body_remaining = 0;
    memset(&f->chunk, 0, sizeof f->chunk);
    return rc;
}

/* Ends the current message as malformed. at_line_start: the bytes
 * consumed so far end a line, so the next byte may start a message. */
static enum repro_http_outcome malformed_at(struct repro_http_framer *f, const char *why,
                                            int at_line_start)
{
    enum repro_http_outcome rc;
    f->flags |= REPRO_HTTP_M_MALFORMED;
    f->why = why;
    rc = finish(f, FR_RESYNC, REPRO_HTTP_MALFORMED);
    f->at_line_start = at_line_start;
    return rc;
}

/* Elsewhere the feed loop tracks whether the last byte consumed ended a
 * line; keeping that (rather than assuming not) lets the next message be
 * found even when the bad byte was the first of a segment. */
static enum repro_http_outcome malformed(struct repro_http_framer *f, const char *why)
{
    return malformed_at(f, why, f->at_line_start);
}

static void begin_message(struct repro_http_framer *f, int64_t ts_us)
{
    f->state = FR_HEAD;
    f->first_us = f->last_us = ts_us;
    f->head_raw_len = 0;
}

/* The head is complete in raw[0..end): parse it and choose body framing. */
static enum repro_http_outcome head_complete(struct repro_http_framer *f, size_t end)
{
    struct repro_http_head head; /* transient: only the compact info is kept */
    const char *why = "malformed head";
    int body;

    if (repro_http_parse_head(&head, f->kind, f->raw.data, end, f->limits.max_head, NULL,
                              &why) != REPRO_HTTP_DONE) {
        f->head_raw_len = 0;
        return malformed_at(f, why, 1); /* the head ended with its empty line */
    }
    f->head_raw_len = end;
    f->resync_any = 0; /* a whole head parsed: back in step */
    body = repro_http_body_kind(&head, (struct repro_slice){(const uint8_t *)f->req_method,
                                                            strlen(f->req_method)});
    repro_http_info_from_head(&f->info, &head, f->raw.data);
    if (f->limits.watched_names != NULL && unwatched(&head, f->limits.watched_names))
        f->info.flags |= REPRO_HTTP_H_UNWATCHED;
    if (body < 0)
        return malformed_at(f, "request Transfer-Encoding does not end in chunked", 1);
    f->body = body;
    f->info.body = body;
    repro_http_digest_init(&f->digest, body);
    switch (body) {
    case REPRO_HTTP_BODY_NONE:
        return finish(f, FR_IDLE, REPRO_HTTP_DONE);
    case REPRO_HTTP_BODY_TUNNEL:
        return finish(f, FR_TUNNEL, REPRO_HTTP_DONE);
    case REPRO_HTTP_BODY_LENGTH:
        f->body_remaining = (uint64_t)f->info.content_length;
        break;
    default:
        break;
    }
    f->state = FR_BODY;
    return REPRO_HTTP_NEED_MORE;
}

/*
 * The head collected so far cannot start a message. The verdict rests on
 * the first bytes only, and just the prefix that decided it is consumed, so
 * the result does not depend on how the stream was segmented. While
 * resynchronising the prefix is skipped; otherwise it is reported as a
 * malformed message.
 */
static enum repro_http_outcome not_a_start(struct repro_http_framer *f, size_t old, size_t *used)
{
    size_t d = old + 1;

    while (d < f->raw.len && repro_http_looks_like_start(f->kind, f->raw.data, d) != 0)
        d++;
    repro_budget_give(f->limits.budget, f->raw.len - d);
    f->raw.len = d;
    *used = d - old;
    if (f->state == FR_PROBE && f->resync_any) {
        /* Looking for a start at any byte: a later byte of the rejected
         * probe may still begin one, exactly as if the bytes had come in
         * one piece. */
        size_t k = 1;
        while (k < d && repro_http_looks_like_start(f->kind, f->raw.data + k, d - k) == 0)
            k++;
        if (k < d) {
            memmove(f->raw.data, f->raw.data + k, d - k);
            repro_budget_give(f->limits.budget, k);
            f->raw.len = d - k;
            f->skipped_bytes += k;
            f->wire_bytes = f->raw.len;
                    return REPRO_HTTP_NEED_MORE;
        }
    }
    if (f->state == FR_PROBE) {
        repro_budget_give(f->limits.budget, d);
        f->raw.len = 0;
        f->wire_bytes = 0;
        f->skipped_bytes += d;
        f->state = FR_RESYNC;
        return REPRO_HTTP_NEED_MORE;
    }
    f->wire_bytes += *used;
    return malformed(f, f->kind == REPRO_HTTP_REQUEST ? "not a request line"
                                                       : "not a status line");
}

/* How many bytes of p[0..n) complete the head whose earlier bytes are in
 * raw: up to and including the LF of the empty line; 0 when the head does
 * not end within p[0..n). */
static size_t head_end_within(const struct repro_buf *raw, const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        const uint8_t *lf = memchr(p + i, '\n', n - i);
        size_t k;
        int b1, b2;
        if (lf == NULL)
            return 0;
        k = (size_t)(lf - p);
        b1 = k >= 1 ? p[k - 1] : raw->len >= 1 ? raw->data[raw->len - 1] : -1;
        b2 = k >= 2 ? p[k - 2] : raw->len + k >= 2 ? raw->data[raw->len + k - 2] : -1;
        if (b1 == '\n' || (b1 == '\r' && b2 == '\n'))
            return k + 1;
        i = k + 1;
    }
    return 0;
}

/* No memory was left for the head in progress: the message ends cut
 * (BODY_CAPPED, TRUNCATED: what was kept is stored, nothing of it is
 * malformed) and the framer looks for the next message start. */
static enum repro_http_outcome head_cut(struct repro_http_framer *f, size_t len, size_t *used,
                                        const char *why)
{
    enum repro_http_outcome rc;

    *used = len;
    f->wire_bytes += len;
    f->capped_bytes += len;
    f->flags |= REPRO_HTTP_M_BODY_CAPPED | REPRO_HTTP_M_TRUNCATED;
    f->why = why;
    f->head_raw_len = 0;
    rc = finish(f, FR_RESYNC, REPRO_HTTP_DONE);
    f->at_line_start = 0;
    return rc;
}

static enum repro_http_outcome feed_head(struct repro_http_framer *f, const uint8_t *p,
                                         size_t len, size_t *used)
{
    size_t old = f->raw.len, room = f->limits.max_head - old, n = len < room ? len : room;
    size_t end, head_part = head_end_within(&f->raw, p, n);

    /* Charge only what belongs to the head when it ends in this input, so
     * a tight budget gives the same result however the stream was cut. */
    if (head_part > 0)
        n = head_part;
    if (!repro_budget_take(f->limits.budget, n))
        return head_cut(f, len, used, "memory cap reached while reading a head");
    if (repro_buf_append(&f->raw, p, n) != REPRO_OK) {
        repro_budget_give(f->limits.budget, n);
        return head_cut(f, len, used, "out of memory while reading a head");
    }
    if (old < START_DECIDED &&
        repro_http_looks_like_start(f->kind, f->raw.data, f->raw.len) == 0)
        return not_a_start(f, old, used);
    /* head_end_within() found the first empty line of the stream so far
     * (no earlier input ended the head): the head ends there or not yet. */
    end = head_part > 0 ? old + head_part : 0;
    if (end == 0) {
        *used = n;
        f->wire_bytes += n;
        if (f->raw.len >= f->limits.max_head)
            return malformed(f, "message head too long");
        return REPRO_HTTP_NEED_MORE;
    }
    /* Give back what belongs to the body or the next message. */
    repro_budget_give(f->limits.budget, f->raw.len - end);
    f->raw.len = end;
    *used = end - old;
    f->wire_bytes += *used;
    return head_complete(f, end);
}

static void digest_data(void *ctx, const uint8_t *p, size_t n)
{
    repro_http_digest_data(ctx, p, n);
}

static enum repro_http_outcome feed_body(struct repro_http_framer *f, const uint8_t *p,
                                         size_t len, size_t *used)
{
    enum repro_http_outcome rc;
    size_t n;

    switch (f->body) {
    case REPRO_HTTP_BODY_LENGTH:
        n = (uint64_t)len < f->body_remaining ? len : (size_t)f->body_remaining;
        keep(f, p, n);
        repro_http_digest_data(&f->digest, p, n);
        f->body_remaining -= n;
        f->wire_bytes += n;
        *used = n;
        return f->body_remaining == 0 ? finish(f, FR_IDLE, REPRO_HTTP_DONE) : REPRO_HTTP_NEED_MORE;
    case REPRO_HTTP_BODY_CHUNKED:
        rc = repro_http_chunked_scan_data(&f->chunk, p, len, f->limits.max_trailer, &n,
                                          digest_data, &f->digest);
        keep(f, p, n);
        f->wire_bytes += n;
        *used = n;
        if (rc == REPRO_HTTP_DONE)
            return finish(f, FR_IDLE, REPRO_HTTP_DONE);
        if (rc == REPRO_HTTP_MALFORMED)
            return malformed(f, "bad chunked framing");
        return REPRO_HTTP_NEED_MORE;
    default: /* close-delimited */
        keep(f, p, len);
        repro_http_digest_data(&f->digest, p, len);
        f->wire_bytes += len;
        *used = len;
        return REPRO_HTTP_NEED_MORE;
    }
}

/* Skips bytes up to the next line start that looks like a message start.
 * Returns the number of bytes skipped; *found says whether a start was
 * found at p + returned offset. */
static size_t resync_scan(struct repro_http_framer *f, const uint8_t *p, size_t len, int *found)
{
    size_t i = 0;

    *found = 0;
    while (i < len) {
        /* Look no further than a head may reach, as feed_head() does, so
         * the verdict is the same however the bytes are segmented. */
        size_t n = len - i < f->limits.max_head ? len - i : f->limits.max_head;
        if ((f->at_line_start || f->resync_any) && p[i] != '\r' && p[i] != '\n' &&
            repro_http_looks_like_start(f->kind, p + i, n) != 0) {
            *found = 1;
            return i;
        }
        f->at_line_start = p[i] == '\n';
        i++;
    }
    return i;
}

enum repro_http_outcome repro_http_framer_feed(struct repro_http_framer *f, const uint8_t *p,
                                               size_t len, int64_t ts_us, size_t *consumed)
{
    size_t off = 0;

    clear_finished(f);
    while (off < len) {
        size_t used = 0;
        enum repro_http_outcome rc = REPRO_HTTP_NEED_MORE;
        int found;

        switch (f->state) {
        case FR_IDLE:
            if (p[off] == '\r' || p[off] == '\n') {
                f->at_line_start = p[off] == '\n';
                off++; /* empty lines between messages are allowed */
                continue;
            }
            begin_message(f, ts_us); /* feed_head() rejects non-starts */
            continue;
        case FR_HEAD:
        case FR_PROBE:
            rc = feed_head(f, p + off, len - off, &used);
            break;
        case FR_BODY:
            rc = feed_body(f, p + off, len - off, &used);
            break;
        case FR_RESYNC:
            used = resync_scan(f, p + off, len - off, &found);
            f->skipped_bytes += used;
            off += used;
            if (found) {
                begin_message(f, ts_us);
                f->state = FR_PROBE;
            }
            continue;
        default: /* tunnel */
            f->tunnel_bytes += len - off;
            off = len;
            continue;
        }
        off += used;
        if (used > 0) {
            f->last_us = ts_us;
            /* where resynchronisation starts if this message is malformed */
            f->at_line_start = p[off - 1] == '\n';
        }
        if (rc != REPRO_HTTP_NEED_MORE) {
            f->msg.last_us = f->last_us;
            *consumed = off;
            return rc;
        }
    }
    *consumed = len;
    return REPRO_HTTP_NEED_MORE;
}

enum repro_http_outcome repro_http_framer_gap(struct repro_http_framer *f, uint64_t n,
                                              int64_t ts_us)
{
    clear_finished(f);
    if (n == 0)
        return REPRO_HTTP_NEED_MORE;
    switch (f->state) {
    case FR_TUNNEL:
        f->tunnel_bytes += n;
        return REPRO_HTTP_NEED_MORE;
    case FR_IDLE:
    case FR_RESYNC:
        f->state = FR_RESYNC;
        f->at_line_start = 1; /* a gap may end right before a message */
        f->resync_any = f->kind == REPRO_HTTP_RESPONSE;
        f->skipped_bytes += n;
        return REPRO_HTTP_NEED_MORE;
    case FR_BODY:
        f->flags |= REPRO_HTTP_M_GAP;
        f->wire_bytes += n;
        f->last_us = ts_us;
        if (f->body == REPRO_HTTP_BODY_CLOSE)
            return REPRO_HTTP_NEED_MORE;
        if (f->body == REPRO_HTTP_BODY_LENGTH && n < f->body_remaining) {
            f->body_remaining -= n;
            return REPRO_HTTP_NEED_MORE;
        }
        if (f->body == REPRO_HTTP_BODY_LENGTH && n == f->body_remaining)
            return finish(f, FR_IDLE, REPRO_HTTP_DONE);
        if (f->body == REPRO_HTTP_BODY_CHUNKED &&
            repro_http_chunked_skip(&f->chunk, n) == REPRO_HTTP_DONE)
            return REPRO_HTTP_NEED_MORE;
        break;
    default: /* inside a head */
        f->flags |= REPRO_HTTP_M_GAP;
        f->wire_bytes += n;
        break;
    }
    finish(f, FR_RESYNC, REPRO_HTTP_DONE);
    f->at_line_start = 1;
    f->resync_any = f->kind == REPRO_HTTP_RESPONSE;
    return REPRO_HTTP_DONE;
}

enum repro_http_outcome repro_http_framer_eof(struct repro_http_framer *f, int64_t ts_us)
{
    (void)ts_us;
    clear_finished(f);
    if (f->state == FR_BODY && f->body == REPRO_HTTP_BODY_CLOSE)
        return finish(f, FR_IDLE, REPRO_HTTP_DONE);
    if (f->state == FR_HEAD || f->state == FR_PROBE || f->state == FR_BODY) {
        f->flags |= REPRO_HTTP_M_TRUNCATED;
        return finish(f, FR_IDLE, REPRO_HTTP_DONE);
    }
    return REPRO_HTTP_NEED_MORE;
}

struct repro_slice repro_http_framer_current_method(const struct repro_http_framer *f)
{
    if (!repro_http_framer_busy(f) || f->head_raw_len == 0)
        return (struct repro_slice){NULL, 0};
    return repro_http_span_slice((struct repro_slice){f->raw.data, f->raw.len}, f->info.method);
}

void repro_http_framer_stats(const struct repro_http_framer *f, struct repro_http_framer_stats *out)
{
    out->skipped_bytes = f->skipped_bytes;
    out->tunnel_bytes = f->tunnel_bytes;
    out->capped_bytes = f->capped_bytes;
    out->n_messages = f->n_messages;
}
