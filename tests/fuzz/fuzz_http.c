/*
 * Fuzz target for the HTTP/1.x component (include/repro/http.h).
 *
 * The first input byte chooses the configuration, the rest is one direction
 * of a connection:
 *   bit 0     mid_stream
 *   bits 1-2  segmentation: 0 one segment per run of bytes between events,
 *             1 one byte at a time, 2 random 1..16 bytes, 3 random 1..512
 *   bits 3-4  limits: default, tiny, small, or a max_head of 1..32 with no
 *             body bytes kept
 *   bit 5     report random capture gaps (positions and sizes derived from
 *             the input)
 *   bit 6     change the response framer's request-method hint after every
 *             message (HEAD and CONNECT change framing)
 *   bit 7     move every third message's raw bytes out with take_raw
 * The bytes go through a request framer and a response framer twice: once
 * in the chosen segmentation and once whole. Both runs must report the same
 * messages (capture must not depend on TCP segmentation), and every call
 * must keep the invariants stated in http.h. The same bytes also go through
 * repro_http_parse_head (its notes checked by reference), the lenient line
 * scanner against its quick path, the chunked scanner (whole against one byte at a
 * time) and repro_http_dechunk. Each segment is copied to its own heap
 * block so ASan catches reads past its end. Violations abort().
 */
#include "repro/http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names the broken invariant, then aborts (fuzz targets may). */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http.c:%d: check failed: %s\n", __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x2545f4914f6cdd1dull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

#define MAX_EVENTS 4

struct plan {
    unsigned cfg;
    uint64_t seed;
    struct repro_http_limits lim;
    size_t n_gaps;
    size_t gap_at[MAX_EVENTS]; /* ascending offsets into the payload */
    uint64_t gap_len[MAX_EVENTS];
};

struct run {
    const struct plan *pl;
    struct repro_http_framer f;
    int segmented;
    uint64_t rand;
    uint64_t summary;     /* hash of every message and the counters */
    uint64_t fed, gapped; /* bytes consumed and reported lost */
    uint64_t crlf;        /* CR and LF bytes consumed (IDLE may drop them) */
    uint64_t msg_wire;    /* sum of finished messages' wire_bytes */
    uint64_t n_msgs;
};

static const char *const methods[] = {"", "GET", "HEAD", "CONNECT", "POST"};

/* The invariants of a framer between calls (http.h). */
static void check_framer(const struct run *r)
{
    const struct repro_http_framer *f = &r->f;
    uint64_t accounted;

    CHECK(f->raw.len <= max_sz(f->limits.max_store, f->limits.max_head));
    if (repro_http_framer_busy(f) && f->head_raw_len > 0 && f->body == REPRO_HTTP_BODY_LENGTH)
        CHECK(f->body_remaining > 0);
    CHECK(f->n_messages == r->n_msgs);
    /* Every byte is in a message, skipped, tunnelled, or a CR/LF dropped
     * between messages. */
    accounted =
        r->msg_wire + f->skipped_bytes + f->tunnel_bytes + (f->finished ? 0 : f->wire_bytes);
    CHECK(accounted <= r->fed + r->gapped);
    CHECK(r->fed + r->gapped - accounted <= r->crlf);
}

static void on_message(struct run *r, char how)
{
    struct repro_http_framer *f = &r->f;
    const struct repro_http_msg *m = repro_http_framer_msg(f);
    const struct repro_http_limits *l = &f->limits;
    uint64_t h = r->summary;

    r->n_msgs++;
    r->msg_wire += m->wire_bytes;
    CHECK(m->raw.len <= max_sz(l->max_store, l->max_head));
    CHECK(m->wire_bytes >= m->raw.len);
    CHECK(m->first_us <= m->last_us);
    CHECK(((m->flags & REPRO_HTTP_M_MALFORMED) != 0) == (how == 'M'));
    CHECK((m->why != NULL) == (how == 'M'));
    if (!(m->flags & (REPRO_HTTP_M_GAP | REPRO_HTTP_M_BODY_CAPPED)))
        CHECK(m->wire_bytes == m->raw.len);
    if (m->info != NULL) {
        const struct repro_http_info *info = m->info;
        struct repro_http_head head;
        CHECK(info->head_len > 0 && info->head_len <= m->raw.len);
        CHECK(m->raw.len <= max_sz(l->max_store, info->head_len));
        CHECK(info->body >= REPRO_HTTP_BODY_NONE && info->body <= REPRO_HTTP_BODY_TUNNEL);
        if (info->kind == REPRO_HTTP_REQUEST)
            CHECK(repro_http_span_slice(m->raw, info->method).len > 0 &&
                  repro_http_span_slice(m->raw, info->target).len > 0);
        else
            CHECK(info->status >= 100 && info->status <= 999);
        CHECK(repro_http_parse_head(&head, info->kind, m->raw.ptr, info->head_len, l->max_head,
                                    NULL, NULL) == REPRO_HTTP_DONE &&
              head.head_len == info->head_len);
        h = mix(h, (uint64_t)info->status);
        h = mix(h, (uint64_t)info->body);
        h = mix(h, info->head_len);
        h = mix(h, info->flags);
    }
    h = mix(h, (uint64_t)how);
    h = mix(h, m->flags);
    h = mix(h, m->wire_bytes);
    h = mix(h, m->raw.len);
    h = hash_bytes(h, m->raw.ptr, m->raw.len);
    r->summary = h;

    if ((r->pl->cfg & 0x80) && r->n_msgs % 3 == 1) {
        struct repro_buf taken;
        size_t n = m->raw.len;
        uint64_t before = hash_bytes(0, m->raw.ptr, n);
        repro_http_framer_take_raw(f, &taken);
        CHECK(taken.len == n && f->raw.len == 0);
        CHECK(repro_http_framer_feed(f, (const uint8_t *)"", 0, 0, &n) == REPRO_HTTP_NEED_MORE);
        CHECK(hash_bytes(0, taken.data, taken.len) == before);
        repro_budget_give(f->limits.budget, taken.len);
        repro_buf_release(&taken);
    }
    if ((r->pl->cfg & 0x40) && f->kind == REPRO_HTTP_RESPONSE) {
        const char *meth = methods[mix(r->pl->seed, r->n_msgs) % 5];
        repro_http_framer_set_request_method(f, meth, strlen(meth));
    }
}

static void feed_segment(struct run *r, const uint8_t *src, size_t len, int64_t ts)
{
    uint8_t *p = malloc(len ? len : 1);
    size_t off = 0, i;
    int zero = 0;

    CHECK(p != NULL);
    memcpy(p, src, len);
    while (off < len) {
        size_t used = (size_t)-1;
        enum repro_http_outcome rc = repro_http_framer_feed(&r->f, p + off, len - off, ts, &used);
        CHECK(used <= len - off);
        CHECK(rc == REPRO_HTTP_NEED_MORE || rc == REPRO_HTTP_DONE || rc == REPRO_HTTP_MALFORMED);
        if (rc == REPRO_HTTP_NEED_MORE)
            CHECK(used == len - off);
        else
            on_message(r, rc == REPRO_HTTP_DONE ? 'D' : 'M');
        /* A message may end without consuming, but never twice in a row. */
        zero = used == 0 ? zero + 1 : 0;
        CHECK(zero < 2);
        for (i = off; i < off + used; i++)
            r->crlf += p[i] == '\r' || p[i] == '\n';
        r->fed += used;
        off += used;
        check_framer(r);
    }
    free(p);
}

/* Feeds payload[a..b) cut as the plan says (or whole). */
static void feed_range(struct run *r, const uint8_t *payload, size_t a, size_t b)
{
    unsigned pattern = (r->pl->cfg >> 1) & 3;

    while (a < b) {
        size_t n = b - a;
        if (r->segmented) {
            if (pattern == 1)
                n = 1;
            else if (pattern == 2)
                n = 1 + (size_t)(next_rand(&r->rand) % 16);
            else if (pattern == 3)
                n = 1 + (size_t)(next_rand(&r->rand) % 512);
            if (n > b - a)
                n = b - a;
        }
        feed_segment(r, payload + a, n, (int64_t)a);
        a += n;
    }
}

static uint64_t run_framer(const struct plan *pl, enum repro_http_kind kind, const uint8_t *payload,
                           size_t len, int segmented)
{
    struct run r;
    size_t a = 0, i;

    memset(&r, 0, sizeof r);
    r.pl = pl;
    r.segmented = segmented;
    r.rand = pl->seed | 1;
    repro_http_framer_init(&r.f, kind, &pl->lim, pl->cfg & 1);
    CHECK(!repro_http_framer_busy(&r.f));
    for (i = 0; i < pl->n_gaps; i++) {
        feed_range(&r, payload, a, pl->gap_at[i]);
        a = pl->gap_at[i];
        r.gapped += pl->gap_len[i];
        if (repro_http_framer_gap(&r.f, pl->gap_len[i], (int64_t)a) == REPRO_HTTP_DONE) {
            CHECK(r.f.msg.flags & REPRO_HTTP_M_GAP);
            on_message(&r, 'g');
        }
        check_framer(&r);
    }
    feed_range(&r, payload, a, len);
    if (repro_http_framer_eof(&r.f, (int64_t)len) == REPRO_HTTP_DONE) {
        const struct repro_http_msg *m = repro_http_framer_msg(&r.f);
        CHECK((m->flags & REPRO_HTTP_M_TRUNCATED) ||
              (m->info != NULL && m->info->body == REPRO_HTTP_BODY_CLOSE));
        on_message(&r, 'e');
    }
    check_framer(&r);
    CHECK(!repro_http_framer_busy(&r.f));
    r.summary = mix(r.summary, r.f.skipped_bytes);
    r.summary = mix(r.summary, r.f.tunnel_bytes);
    r.summary = mix(r.summary, r.f.capped_bytes);
    r.summary = mix(r.summary, r.n_msgs);
    repro_http_framer_release(&r.f);
    return r.summary;
}

static void make_plan(struct plan *pl, const uint8_t *data, size_t size, size_t len)
{
    uint64_t s;
    size_t i;

    memset(pl, 0, sizeof *pl);
    pl->cfg = data[0];
    pl->seed = hash_bytes(0xcbf29ce484222325ull, data, size);
    s = pl->seed | 1;
    repro_http_limits_default(&pl->lim);
    switch ((pl->cfg >> 3) & 3) {
    case 1:
        pl->lim.max_head = 64;
        pl->lim.max_store = 32;
        pl->lim.max_trailer = 16;
        break;
    case 2:
        pl->lim.max_head = 256;
        pl->lim.max_store = 1024;
        pl->lim.max_trailer = 64;
        break;
    case 3:
        pl->lim.max_head = 1 + (size_t)(next_rand(&s) % 32);
        pl->lim.max_store = 0;
        pl->lim.max_trailer = 0;
        break;
    default: break;
    }
    if ((pl->cfg & 0x20) && len > 0) {
        pl->n_gaps = 1 + (size_t)(next_rand(&s) % MAX_EVENTS);
        for (i = 0; i < pl->n_gaps; i++) {
            pl->gap_at[i] = (size_t)(next_rand(&s) % (len + 1));
            pl->gap_len[i] = 1 + next_rand(&s) % 300;
        }
        /* ascending positions */
        for (i = 1; i < pl->n_gaps; i++) {
            size_t k = i;
            while (k > 0 && pl->gap_at[k - 1] > pl->gap_at[k]) {
                size_t t = pl->gap_at[k];
                pl->gap_at[k] = pl->gap_at[k - 1];
                pl->gap_at[k - 1] = t;
                k--;
            }
        }
    }
}

/* repro_http_head_field_quick() against repro_http_head_line() on every
 * line of p[0..len): when quick takes a line, the scanner must call it a
 * FIELD of the same name ending at the same offset. */
static void check_quick_lines(const uint8_t *p, size_t len)
{
    size_t off = 0;

    while (off < len) {
        struct repro_http_line l;
        struct repro_slice name = {NULL, 0};
        size_t q = repro_http_head_field_quick(p, len, off, &name), next;
        next = repro_http_head_line(p, len, off, &l);
        if (q > 0)
            CHECK(l.kind == REPRO_HTTP_LINE_FIELD && q == l.next && name.ptr == l.name.ptr &&
                  name.len == l.name.len);
        else
            CHECK(name.ptr == NULL);
        CHECK(next > off);
        off = next;
    }
}

/* What a parsed head says beyond its headers, by reference: every name's
 * bit is set, the value slices are the first Content-Type and the last
 * non-empty Content-Encoding, and no value holds a control byte. */
static void check_head_notes(const struct repro_http_head *h)
{
    const struct repro_slice none = {NULL, 0};
    struct repro_slice ct = none, ce = none;
    size_t i, k;

    for (i = 0; i < h->n_headers; i++) {
        const struct repro_http_header *hd = &h->headers[i];
        unsigned b = repro_http_name_bit(hd->name.ptr, hd->name.len);
        CHECK(b < 256 && ((h->name_bits[b >> 6] >> (b & 63)) & 1));
        if (ct.ptr == NULL && repro_slice_ieq(hd->name, "content-type"))
            ct = hd->value;
        if (repro_slice_ieq(hd->name, "content-encoding") && hd->value.len > 0)
            ce = hd->value;
        for (k = 0; k < hd->value.len; k++)
            CHECK(!((hd->value.ptr[k] < 0x20 && hd->value.ptr[k] != '\t') ||
                    hd->value.ptr[k] == 0x7f));
    }
    CHECK(h->content_type.ptr == ct.ptr && h->content_type.len == ct.len);
    CHECK(h->content_encoding.ptr == ce.ptr && h->content_encoding.len == ce.len);
}

static void check_head(enum repro_http_kind kind, const uint8_t *p, size_t len, size_t max_head)
{
    struct repro_http_head h, again;
    size_t err_off = (size_t)-1, i;
    const char *why = NULL;
    enum repro_http_outcome rc = repro_http_parse_head(&h, kind, p, len, max_head, &err_off, &why);

    if (rc == REPRO_HTTP_MALFORMED) {
        CHECK(why != NULL && err_off <= len && err_off <= max_head);
        return;
    }
    if (rc == REPRO_HTTP_NEED_MORE) {
        CHECK(len < max_head);
        return;
    }
    CHECK(rc == REPRO_HTTP_DONE);
    check_head_notes(&h);
    check_quick_lines(p, h.head_len);
    CHECK(h.head_len > 0 && h.head_len <= len && h.head_len <= max_head);
    CHECK(h.n_headers <= REPRO_HTTP_MAX_HEADERS);
    CHECK(h.content_length >= -1);
    if (kind == REPRO_HTTP_REQUEST)
        CHECK(h.method.len > 0 && h.target.len > 0);
    else
        CHECK(h.status >= 100 && h.status <= 999);
    for (i = 0; i < h.n_headers; i++)
        CHECK(h.headers[i].name.len > 0 && h.headers[i].name.ptr >= p &&
              h.headers[i].value.ptr + h.headers[i].value.len <= p + h.head_len);
    (void)repro_http_body_kind(&h, (struct repro_slice){(const uint8_t *)"HEAD", 4});
    /* The head alone parses the same. */
    CHECK(repro_http_parse_head(&again, kind, p, h.head_len, max_head, NULL, NULL) ==
              REPRO_HTTP_DONE &&
          again.head_len == h.head_len && again.n_headers == h.n_headers &&
          again.content_length == h.content_length && again.flags == h.flags);
    /* One byte less is never complete. */
    CHECK(repro_http_parse_head(&again, kind, p, h.head_len - 1, max_head, NULL, NULL) !=
          REPRO_HTTP_DONE);
}

static void check_chunked(const uint8_t *p, size_t len)
{
    struct repro_http_chunked whole, bytes;
    size_t used = 0, i, total = 0;
    enum repro_http_outcome rc, rb = REPRO_HTTP_NEED_MORE;
    struct repro_buf out;
    int drc;

    memset(&whole, 0, sizeof whole);
    memset(&bytes, 0, sizeof bytes);
    rc = repro_http_chunked_scan(&whole, p, len, 64 * 1024, &used);
    CHECK(used <= len);
    if (rc == REPRO_HTTP_NEED_MORE)
        CHECK(used == len);
    for (i = 0; i < len; i++) {
        size_t u = 0;
        rb = repro_http_chunked_scan(&bytes, p + i, 1, 64 * 1024, &u);
        CHECK(u <= 1);
        total = i + u;
        if (rb != REPRO_HTTP_NEED_MORE)
            break;
    }
    if (len == 0)
        rb = REPRO_HTTP_NEED_MORE;
    CHECK(rb == rc && (rc == REPRO_HTTP_NEED_MORE ? len : total) == used);

    repro_buf_init(&out, 1 << 20);
    drc = repro_http_dechunk(p, len, &out);
    CHECK(drc == (int)rc || drc == REPRO_E_LIMIT || drc == REPRO_E_NOMEM);
    CHECK(out.len <= len);
    repro_buf_release(&out);
}

/* A prefix's verdict never changes as more bytes arrive. */
static void check_start(enum repro_http_kind kind, const uint8_t *p, size_t len)
{
    int prev = -1;
    size_t k, n = len < 48 ? len : 48;
    for (k = 0; k <= n; k++) {
        int r = repro_http_looks_like_start(kind, p, k);
        CHECK(r >= -1 && r <= 1);
        CHECK(prev == -1 || r == prev);
        prev = r;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct plan pl;
    const uint8_t *payload;
    size_t len;
    uint8_t *copy;
    int kind;

    if (size == 0)
        return 0;
    payload = data + 1;
    len = size - 1;
    make_plan(&pl, data, size, len);

    for (kind = REPRO_HTTP_REQUEST; kind <= REPRO_HTTP_RESPONSE; kind++) {
        uint64_t a = run_framer(&pl, (enum repro_http_kind)kind, payload, len, 1);
        uint64_t b = run_framer(&pl, (enum repro_http_kind)kind, payload, len, 0);
        CHECK(a == b);
    }

    /* The pure parsers, on an exact-size copy. */
    copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, payload, len);
    check_quick_lines(copy, len);
    check_head(REPRO_HTTP_REQUEST, copy, len, 64 * 1024);
    check_head(REPRO_HTTP_RESPONSE, copy, len, 64 * 1024);
    check_head((enum repro_http_kind)(data[0] & 1), copy, len, 1 + data[0] % 64);
    check_start(REPRO_HTTP_REQUEST, copy, len);
    check_start(REPRO_HTTP_RESPONSE, copy, len);
    if (len <= 64 * 1024)
        check_chunked(copy, len);
    free(copy);
    return 0;
}
