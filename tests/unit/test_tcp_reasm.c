/*
 * Unit tests for capture/tcp_reasm.c: a differential test against a slow
 * reference model (a flat byte array per direction, first write wins), loss
 * with gaps, the documented policies one by one, the memory budget and
 * allocation failures. After every packet the struct invariants written in
 * tcp_reasm.h are checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/tcp_reasm.h"
#include "repro/core.h"

#define SEQ_GT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) > 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)

/* Seed of the random case being run, printed with every failure. */
static uint64_t g_seed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s:%d: check failed: %s (seed %llu)", __FILE__, __LINE__, #cond,             \
                     (unsigned long long)g_seed);                                                  \
    } while (0)

/* ---- deterministic PRNG (splitmix64) ---------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

/* Byte off of direction tdir (0 client, 1 server) of the connection whose
 * client port is cport: every stream's content is a function of these, so
 * any delivered byte can be checked wherever it appears. */
static uint8_t content_byte(uint64_t salt, uint16_t cport, int tdir, uint32_t off)
{
    uint64_t x = salt ^ ((uint64_t)cport << 33) ^ ((uint64_t)tdir << 32) ^ off;
    x *= 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 32;
    return (uint8_t)x;
}

/* ---- endpoints --------------------------------------------------------- */

#define CLIENT_PORT0 40000
#define SERVER_PORT 80
#define REC_PORTS 64

static const uint8_t client_ip4[4] = {10, 0, 0, 1};
static const uint8_t server_ip4[4] = {10, 0, 0, 2};
static const uint8_t client_ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t server_ip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

/* A segment of connection k (client port CLIENT_PORT0 + k) in direction
 * tdir (0: client to server). */
static struct repro_pkt mkpkt(int family, int k, int tdir, uint32_t seq, uint32_t ack,
                              uint8_t flags, const uint8_t *p, uint32_t len, uint32_t seg_len,
                              int64_t ts)
{
    struct repro_pkt pk;
    const uint8_t *cip = family == 6 ? client_ip6 : client_ip4;
    const uint8_t *sip = family == 6 ? server_ip6 : server_ip4;
    size_t alen = family == 6 ? 16 : 4;

    memset(&pk, 0, sizeof pk);
    pk.ts_us = ts;
    pk.family = (uint8_t)family;
    pk.tcp_flags = flags;
    memcpy(tdir ? pk.src : pk.dst, sip, alen);
    memcpy(tdir ? pk.dst : pk.src, cip, alen);
    pk.sport = tdir ? SERVER_PORT : (uint16_t)(CLIENT_PORT0 + k);
    pk.dport = tdir ? (uint16_t)(CLIENT_PORT0 + k) : SERVER_PORT;
    pk.seq = seq;
    pk.ack = ack;
    pk.payload = p;
    pk.payload_len = len;
    pk.seg_len = seg_len;
    return pk;
}

/* ---- recorder: what the callbacks saw ---------------------------------- */

struct run {
    int gap;
    uint64_t len;
};

struct dir_rec {
    uint8_t *data;
    size_t len, cap;
    struct run *runs;
    size_t n_runs, runs_cap;
    uint64_t gap_bytes;
    unsigned n_gaps, n_fins;
    uint64_t fin_at; /* data + gap bytes before the FIN */
    int started;
    uint32_t next; /* where the next data or gap has to start */
};

struct conn_rec {
    int opened, closed, reason, family;
    int mid_stream, syn_dir; /* as they were at close */
    int64_t close_ts;
    uint16_t port[2];
    uint8_t addr[2][16];
    struct dir_rec d[2];
};

#define REC_MAX 64 /* connections whose close order is kept */

struct rec {
    struct conn_rec *c; /* by connection id, 1..max_id */
    size_t max_id;
    int strict; /* no data after a FIN (off for garbage traffic) */
    unsigned n_open, n_close;
    uint64_t close_order[REC_MAX];
    int open_rc, data_rc; /* returned by the callbacks */
    /* Content checks: base sequence number and length per client port and
     * direction, for the streams made by content_byte(). */
    int check_content;
    uint64_t salt;
    uint32_t base[REC_PORTS][2], length[REC_PORTS][2];
    uint64_t hash; /* over every event, for determinism checks */
};

static void hash_bytes(struct rec *rec, const void *p, size_t n)
{
    const uint8_t *b = p;
    size_t i;
    for (i = 0; i < n; i++)
        rec->hash = (rec->hash ^ b[i]) * 1099511628211ull;
}

static void hash_event(struct rec *rec, int type, uint64_t id, int dir, uint64_t len)
{
    uint64_t v[4];
    v[0] = (uint64_t)type;
    v[1] = id;
    v[2] = (uint64_t)dir;
    v[3] = len;
    hash_bytes(rec, v, sizeof v);
}

static struct rec *rec_new(size_t max_id)
{
    struct rec *rec = calloc(1, sizeof *rec);
    assert_non_null(rec);
    rec->c = calloc(max_id + 1, sizeof *rec->c);
    assert_non_null(rec->c);
    rec->max_id = max_id;
    rec->strict = 1;
    rec->hash = 14695981039346656037ull;
    return rec;
}

static void rec_free(struct rec *rec)
{
    size_t i;
    int d;
    if (rec == NULL)
        return;
    for (i = 0; i <= rec->max_id; i++)
        for (d = 0; d < 2; d++) {
            free(rec->c[i].d[d].data);
            free(rec->c[i].d[d].runs);
        }
    free(rec->c);
    free(rec);
}

static void add_run(struct dir_rec *dr, int gap, uint64_t len)
{
    if (dr->n_runs > 0 && dr->runs[dr->n_runs - 1].gap == gap) {
        dr->runs[dr->n_runs - 1].len += len;
        return;
    }
    if (dr->n_runs == dr->runs_cap) {
        dr->runs_cap = dr->runs_cap ? dr->runs_cap * 2 : 8;
        dr->runs = realloc(dr->runs, dr->runs_cap * sizeof *dr->runs);
        assert_non_null(dr->runs);
    }
    dr->runs[dr->n_runs].gap = gap;
    dr->runs[dr->n_runs].len = len;
    dr->n_runs++;
}

static struct conn_rec *conn_of(struct rec *rec, const struct repro_tcp_conn *c)
{
    CHECK(c->id >= 1 && c->id <= rec->max_id);
    return &rec->c[c->id];
}

/* Checks that a callback's bytes start where the previous one ended. */
static void check_position(struct dir_rec *dr, uint32_t start, uint32_t end)
{
    if (dr->started)
        CHECK(start == dr->next);
    dr->started = 1;
    dr->next = end;
}

static int cb_open(void *ctx, struct repro_tcp_conn *c)
{
    struct rec *rec = ctx;
    struct conn_rec *cr = conn_of(rec, c);
    CHECK(!cr->opened);
    CHECK(c->user == NULL);
    cr->opened = 1;
    cr->family = c->family;
    cr->port[0] = c->port[0];
    cr->port[1] = c->port[1];
    memcpy(cr->addr, c->addr, sizeof cr->addr);
    rec->n_open++;
    hash_event(rec, 1, c->id, 0, 0);
    return rec->open_rc;
}

static void check_content(struct rec *rec, const struct repro_tcp_conn *c, int dir, uint32_t start,
                          const uint8_t *p, size_t len)
{
    int tdir = c->port[dir] == SERVER_PORT;
    uint16_t cport = tdir ? c->port[!dir] : c->port[dir];
    unsigned k = (unsigned)(cport - CLIENT_PORT0);
    uint32_t off;
    size_t i;

    CHECK(k < REC_PORTS);
    off = start - rec->base[k][tdir];
    CHECK(off < rec->length[k][tdir] && len <= rec->length[k][tdir] - off);
    for (i = 0; i < len; i++)
        CHECK(p[i] == content_byte(rec->salt, cport, tdir, off + (uint32_t)i));
}

static int cb_data(void *ctx, struct repro_tcp_conn *c, int dir, const uint8_t *p, size_t len,
                   int64_t ts_us)
{
    struct rec *rec = ctx;
    struct conn_rec *cr = conn_of(rec, c);
    struct dir_rec *dr;
    uint32_t start;

    CHECK(cr->opened && !cr->closed);
    CHECK(dir == 0 || dir == 1);
    CHECK(len > 0 && p != NULL);
    dr = &cr->d[dir];
    if (rec->strict)
        CHECK(dr->n_fins == 0);
    start = c->half[dir].next_seq - (uint32_t)len;
    check_position(dr, start, c->half[dir].next_seq);
    if (rec->check_content)
        check_content(rec, c, dir, start, p, len);
    if (dr->len + len > dr->cap) {
        dr->cap = (dr->len + len) * 2;
        dr->data = realloc(dr->data, dr->cap);
        assert_non_null(dr->data);
    }
    memcpy(dr->data + dr->len, p, len);
    dr->len += len;
    add_run(dr, 0, len);
    hash_event(rec, 2, c->id, dir, len);
    hash_bytes(rec, p, len);
    return rec->data_rc;
}

static int cb_gap(void *ctx, struct repro_tcp_conn *c, int dir, uint64_t len, int64_t ts_us)
{
    struct rec *rec = ctx;
    struct conn_rec *cr = conn_of(rec, c);
    struct dir_rec *dr;

    CHECK(cr->opened && !cr->closed);
    CHECK(len > 0 && len < (1u << 31));
    dr = &cr->d[dir];
    if (rec->strict)
        CHECK(dr->n_fins == 0);
    check_position(dr, c->half[dir].next_seq - (uint32_t)len, c->half[dir].next_seq);
    dr->gap_bytes += len;
    dr->n_gaps++;
    add_run(dr, 1, len);
    hash_event(rec, 3, c->id, dir, len);
    return 0;
}

static int cb_fin(void *ctx, struct repro_tcp_conn *c, int dir, int64_t ts_us)
{
    struct rec *rec = ctx;
    struct conn_rec *cr = conn_of(rec, c);
    struct dir_rec *dr = &cr->d[dir];

    CHECK(cr->opened && !cr->closed);
    CHECK(dr->n_fins == 0);
    CHECK(c->half[dir].fin_seen);
    if (dr->started && rec->strict)
        CHECK(dr->next == c->half[dir].fin_seq);
    dr->n_fins++;
    dr->fin_at = dr->len + dr->gap_bytes;
    hash_event(rec, 4, c->id, dir, 0);
    return 0;
}

static int cb_close(void *ctx, struct repro_tcp_conn *c, int reason, int64_t ts_us)
{
    struct rec *rec = ctx;
    struct conn_rec *cr = conn_of(rec, c);

    CHECK(cr->opened && !cr->closed);
    cr->closed = 1;
    cr->reason = reason;
    cr->close_ts = ts_us;
    cr->mid_stream = c->mid_stream;
    cr->syn_dir = c->syn_dir;
    if (rec->n_close < REC_MAX)
        rec->close_order[rec->n_close] = c->id;
    rec->n_close++;
    hash_event(rec, 5, c->id, reason, 0);
    return 0;
}

static const struct repro_reasm_cb rec_callbacks = {NULL,   cb_open, cb_data,
                                                    cb_gap, cb_fin,  cb_close};

/* Renders one direction as text: data bytes as they are, gaps as
 * "[gap N]", the FIN as "|". */
static const char *render(const struct rec *rec, uint64_t id, int dir)
{
    static char out[16384];
    const struct dir_rec *dr = &rec->c[id].d[dir];
    size_t o = 0, data = 0, i;

    for (i = 0; i < dr->n_runs; i++) {
        const struct run *ru = &dr->runs[i];
        if (ru->gap) {
            o += (size_t)snprintf(out + o, sizeof out - o, "[gap %llu]",
                                  (unsigned long long)ru->len);
        } else {
            assert_true(o + ru->len < sizeof out);
            memcpy(out + o, dr->data + data, ru->len);
            o += ru->len;
            data += ru->len;
        }
        assert_true(o < sizeof out - 32);
    }
    if (dr->n_fins)
        out[o++] = '|';
    out[o] = '\0';
    return out;
}

/* ---- invariants of struct repro_reasm ---------------------------------- */

static void check_invariants(const struct repro_reasm *r)
{
    const struct repro_tcp_conn *c, *prev = NULL;
    size_t n = 0, held = 0;
    int d;

    for (c = r->lru_head; c != NULL; prev = c, c = c->lnext) {
        const struct repro_tcp_conn *b = r->buckets[c->hash & (r->n_buckets - 1)];
        CHECK(c->lprev == prev);
        while (b != NULL && b != c)
            b = b->hnext;
        CHECK(b == c); /* reachable through its hash bucket */
        CHECK(c->family == 4 || c->family == 6);
        n++;
        for (d = 0; d < 2; d++) {
            const struct repro_tcp_half *h = &c->half[d];
            const struct repro_tcp_seg *s;
            size_t sum = 0;
            for (s = h->ooo; s != NULL; s = s->next) {
                CHECK(s->len > 0);
                CHECK(h->seq_known);
                CHECK(SEQ_GT(s->seq, h->next_seq));
                if (s->next != NULL)
                    CHECK(SEQ_LEQ(s->seq + s->len, s->next->seq));
                sum += s->len;
            }
            CHECK(sum == h->ooo_bytes);
            CHECK(h->ooo_bytes <= r->max_stream_ooo);
            held += sum;
        }
    }
    CHECK(prev == r->lru_tail);
    CHECK(n == r->n_conns);
    CHECK(n <= r->max_connections);
    if (r->budget != NULL) {
        CHECK(r->budget->used <= r->budget->max);
        CHECK(r->budget->used == held);
    }
}

/* ---- fixture for the hand-written cases -------------------------------- */

static const struct repro_tcp_conn *find_conn(const struct repro_reasm *r, uint64_t id)
{
    const struct repro_tcp_conn *c;
    for (c = r->lru_head; c != NULL; c = c->lnext)
        if (c->id == id)
            return c;
    fail_msg("connection %llu is not open", (unsigned long long)id);
    return NULL;
}

struct fx {
    struct repro_reasm r;
    struct repro_budget budget;
    struct rec *rec;
    int family;
    int64_t ts;
};

static void fx_setup(struct fx *f, size_t max_ooo, size_t max_conns, int64_t idle_us,
                     size_t budget_max)
{
    struct repro_reasm_cb cb = rec_callbacks;
    memset(f, 0, sizeof *f);
    f->rec = rec_new(4096);
    f->family = 4;
    f->budget.max = budget_max;
    cb.ctx = f->rec;
    assert_int_equal(repro_reasm_init(&f->r, &cb, max_ooo, max_conns, idle_us, &f->budget),
                     REPRO_OK);
}

static void fx_teardown(struct fx *f)
{
    assert_int_equal(repro_reasm_flush(&f->r, REPRO_END_EOF, f->ts + 1), 0);
    check_invariants(&f->r);
    assert_int_equal(f->r.n_conns, 0);
    assert_int_equal(f->budget.used, 0);
    assert_int_equal(f->rec->n_open, f->rec->n_close);
    repro_reasm_release(&f->r);
    rec_free(f->rec);
}

static int fx_raw(struct fx *f, int k, int tdir, uint32_t seq, uint32_t ack, uint8_t flags,
                  const void *p, uint32_t len, uint32_t seg_len)
{
    struct repro_pkt pk = mkpkt(f->family, k, tdir, seq, ack, flags, p, len, seg_len, ++f->ts);
    int rc = repro_reasm_packet(&f->r, &pk);
    check_invariants(&f->r);
    return rc;
}

/* Sends text (may be NULL) on connection k; ACK is set when ack != 0. */
static int fx_seg(struct fx *f, int k, int tdir, uint32_t seq, uint32_t ack, uint8_t flags,
                  const char *text)
{
    uint32_t n = text ? (uint32_t)strlen(text) : 0;
    if (ack != 0)
        flags |= REPRO_TCP_ACK;
    return fx_raw(f, k, tdir, seq, ack, flags, text, n, n);
}

/* Three-way handshake of connection k with the given ISNs. */
static void fx_handshake(struct fx *f, int k, uint32_t isn_c, uint32_t isn_s)
{
    assert_int_equal(fx_seg(f, k, 0, isn_c, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(fx_seg(f, k, 1, isn_s, isn_c + 1, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(fx_seg(f, k, 0, isn_c + 1, isn_s + 1, 0, NULL), 0);
}

#define C_ISN 1000u
#define S_ISN 5000u
#define C(off) (C_ISN + 1u + (off))
#define S(off) (S_ISN + 1u + (off))

/* ---- the differential test --------------------------------------------- */

enum { K_DATA, K_ACK, K_FIN, K_SYN, K_SYNACK };

struct tseg {
    int kind, tdir;    /* tdir: the stream it carries or acknowledges */
    uint32_t off, len; /* K_ACK: off is the acknowledged offset */
    uint64_t key;
    size_t idx;
};

struct diff_cfg {
    int lossy;      /* drop segments, add pure ACKs */
    int fin;        /* end with FIN both ways (else flush) */
    int mid_stream; /* no handshake */
    int small_caps; /* tiny out-of-order cap and budget: weaker checks */
    int family;
};

/* The reference: one state per byte (0 unseen, 1 captured, 2 gap); the
 * first state a byte gets is final. */
struct model_dir {
    uint32_t len;
    uint8_t *st;
    int known;       /* the reassembler knows this direction's sequence space */
    int64_t max_ack; /* offset, -1 before any */
    int fin_seen;
    uint32_t extent; /* end of the highest captured byte */
};

static void model_mark_gaps_below(struct model_dir *m, uint32_t end)
{
    uint32_t i;
    for (i = 0; i < end && i < m->len; i++)
        if (m->st[i] == 0)
            m->st[i] = 2;
}

/* The peer acknowledged the FIN: every byte before it was lost or captured. */
static void model_fin_rule(struct model_dir *m)
{
    if (m->fin_seen && m->max_ack > (int64_t)m->len)
        model_mark_gaps_below(m, m->len);
}

static void model_data(struct model_dir *m, uint32_t off, uint32_t len)
{
    uint32_t i;
    for (i = off; i < off + len; i++)
        if (m->st[i] == 0)
            m->st[i] = 1;
    if (off + len > m->extent)
        m->extent = off + len;
    m->known = 1;
}

/* An ACK of offset a: the holes before the last captured byte below a were
 * received by the peer, so the capture lost them. */
static void model_ack(struct model_dir *m, uint32_t a)
{
    uint32_t i, last = 0;
    int any = 0;

    if (!m->known)
        return;
    if ((int64_t)a > m->max_ack)
        m->max_ack = a;
    for (i = 0; i < a && i < m->len; i++)
        if (m->st[i] == 1) {
            last = i;
            any = 1;
        }
    if (any)
        model_mark_gaps_below(m, last);
    model_fin_rule(m);
}

static void model_fin(struct model_dir *m)
{
    m->fin_seen = 1;
    m->known = 1;
    model_fin_rule(m);
}

/* Closing: everything missing up to the FIN, or else up to the highest of
 * the captured data and the ACKs, is a gap. Returns the layout's end. */
static uint32_t model_close(struct model_dir *m)
{
    uint32_t end = m->extent;
    if (!m->known)
        return 0;
    if (m->fin_seen)
        end = m->len;
    else if (m->max_ack > (int64_t)end)
        end = (uint32_t)m->max_ack;
    model_mark_gaps_below(m, end);
    return end;
}

static int cmp_tseg(const void *a, const void *b)
{
    const struct tseg *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

struct seglist {
    struct tseg *v;
    size_t n, cap;
};

static void push(struct seglist *l, struct tseg s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    s.idx = l->n;
    l->v[l->n++] = s;
}

/* Generates the segments of direction d into l. The first cut segment is
 * returned in *first (for mid-stream pickups, which must see it first). */
static void gen_direction(struct seglist *l, int d, uint32_t len, const struct diff_cfg *cfg,
                          struct tseg *first, int *have_first)
{
    uint32_t maxseg, off = 0, window, drop_pct = cfg->lossy ? 5 + rnd_below(40) : 0;
    size_t start = l->n, n_cut, i, extra;
    int shuffle = rnd_below(3) == 0;

    switch (rnd_below(3)) {
    case 0: maxseg = 1 + rnd_below(8); break;
    case 1: maxseg = 1 + rnd_below(100); break;
    default: maxseg = 1 + rnd_below(1500); break;
    }
    switch (rnd_below(3)) {
    case 0: window = 0; break;
    case 1: window = 1 + rnd_below(100); break;
    default: window = 1 + rnd_below(5000); break;
    }
    *have_first = 0;
    while (off < len) {
        struct tseg s = {K_DATA, d, off, 1 + rnd_below(len - off < maxseg ? len - off : maxseg),
                         0,      0};
        push(l, s);
        off += s.len;
    }
    n_cut = l->n - start;
    /* Retransmissions of arbitrary ranges (same bytes), and duplicates. */
    extra = len ? rnd_below((uint32_t)n_cut / 2 + 2) : 0;
    for (i = 0; i < extra; i++) {
        uint32_t a = rnd_below(len), m = len - a < 2 * maxseg ? len - a : 2 * maxseg;
        struct tseg s = {K_DATA, d, a, 1 + rnd_below(m), 0, 0};
        push(l, s);
    }
    extra = n_cut ? rnd_below((uint32_t)n_cut / 4 + 1) : 0;
    for (i = 0; i < extra; i++)
        push(l, l->v[start + rnd_below((uint32_t)(l->n - start))]);
    /* Pure ACKs from the peer (only with loss: they declare holes). */
    extra = cfg->lossy ? rnd_below(8) : 0;
    for (i = 0; i < extra; i++) {
        struct tseg s = {K_ACK, d, rnd_below(len + 1 + (cfg->fin ? 1 : 0)), 0, 0, 0};
        push(l, s);
    }
    for (i = start; i < l->n; i++) {
        struct tseg *s = &l->v[i];
        s->key = shuffle ? rnd() : (uint64_t)s->off * 16 + rnd_below(window * 16 + 1);
    }
    if (cfg->mid_stream && n_cut > 0) {
        *first = l->v[start];
        *have_first = 1;
        l->v[start].len = 0; /* sent up front instead */
    }
    /* Loss: drop segments (never the mid-stream first one). */
    for (i = start; i < l->n; i++)
        if (l->v[i].kind == K_DATA && rnd_below(100) < drop_pct)
            l->v[i].len = 0;
}

static void send_tseg(struct repro_reasm *r, const struct diff_cfg *cfg, const struct tseg *s,
                      uint8_t *const orig[2], const uint32_t base[2], int64_t ts)
{
    struct repro_pkt pk;
    int d = s->tdir;

    switch (s->kind) {
    case K_SYN: pk = mkpkt(cfg->family, 0, 0, base[0] - 1, 0, REPRO_TCP_SYN, NULL, 0, 0, ts); break;
    case K_SYNACK:
        pk = mkpkt(cfg->family, 0, 1, base[1] - 1, base[0], REPRO_TCP_SYN | REPRO_TCP_ACK, NULL, 0,
                   0, ts);
        break;
    case K_DATA:
        pk = mkpkt(cfg->family, 0, d, base[d] + s->off, base[!d], REPRO_TCP_ACK | REPRO_TCP_PSH,
                   orig[d] + s->off, s->len, s->len, ts);
        break;
    case K_ACK:
        pk = mkpkt(cfg->family, 0, !d, base[!d], base[d] + s->off, REPRO_TCP_ACK, NULL, 0, 0, ts);
        break;
    default: /* K_FIN */
        pk = mkpkt(cfg->family, 0, d, base[d] + s->off, base[!d], REPRO_TCP_FIN | REPRO_TCP_ACK,
                   NULL, 0, 0, ts);
        break;
    }
    CHECK(repro_reasm_packet(r, &pk) == 0);
    check_invariants(r);
}

static void run_diff(uint64_t seed, const struct diff_cfg *cfg)
{
    struct rec *rec = rec_new(4);
    struct repro_reasm r;
    struct repro_reasm_cb cb = rec_callbacks;
    struct repro_budget budget = {0, 0, 0};
    struct model_dir md[2];
    struct seglist segs = {NULL, 0, 0};
    struct tseg first[2];
    int have_first[2], d, closed_before_flush, fins_acked = 0;
    uint8_t *orig[2];
    uint32_t len[2], base[2];
    size_t i;
    int64_t ts = 0;

    g_seed = seed;
    rng_state = seed;
    rec->check_content = 1;
    rec->salt = rnd();
    for (d = 0; d < 2; d++) {
        uint32_t j;
        len[d] = rnd_below(5) == 0 ? rnd_below(20) : rnd_below(3000);
        if (cfg->mid_stream && d == 0 && len[d] == 0)
            len[d] = 1; /* something has to open the connection */
        /* Mostly close to 2^32, so the stream wraps. */
        base[d] = rnd_below(3) == 0 ? (uint32_t)rnd() : 0xffffffffu - rnd_below(4000) + 1;
        orig[d] = malloc(len[d] + 1);
        assert_non_null(orig[d]);
        for (j = 0; j < len[d]; j++)
            orig[d][j] = content_byte(rec->salt, CLIENT_PORT0, d, j);
        rec->base[0][d] = base[d];
        rec->length[0][d] = len[d];
        memset(&md[d], 0, sizeof md[d]);
        md[d].len = len[d];
        md[d].st = calloc(len[d] + 1, 1);
        assert_non_null(md[d].st);
        md[d].max_ack = -1;
        md[d].known = !cfg->mid_stream;
    }
    for (d = 0; d < 2; d++)
        gen_direction(&segs, d, len[d], cfg, &first[d], &have_first[d]);
    if (segs.n > 0)
        qsort(segs.v, segs.n, sizeof *segs.v, cmp_tseg);

    cb.ctx = rec;
    budget.max = cfg->small_caps ? rnd_below(800) : (size_t)1 << 30;
    assert_int_equal(repro_reasm_init(&r, &cb,
                                      cfg->small_caps ? 1 + rnd_below(400) : (size_t)1 << 22, 4, 0,
                                      &budget),
                     REPRO_OK);

    /* Opening: handshake (either order) or the first segment of each side. */
    if (!cfg->mid_stream) {
        struct tseg syn = {K_SYN, 0, 0, 0, 0, 0}, synack = {K_SYNACK, 1, 0, 0, 0, 0};
        int swap = rnd_below(4) == 0;
        send_tseg(&r, cfg, swap ? &synack : &syn, orig, base, ++ts);
        send_tseg(&r, cfg, swap ? &syn : &synack, orig, base, ++ts);
    } else {
        int o = (int)rnd_below(2) && have_first[1];
        for (d = 0; d < 2; d++) {
            int dd = d ^ o;
            if (!have_first[dd])
                continue;
            send_tseg(&r, cfg, &first[dd], orig, base, ++ts);
            model_data(&md[dd], first[dd].off, first[dd].len);
            model_ack(&md[!dd], 0);
        }
    }
    for (i = 0; i < segs.n; i++) {
        const struct tseg *s = &segs.v[i];
        if (s->kind == K_DATA && s->len == 0)
            continue; /* lost */
        send_tseg(&r, cfg, s, orig, base, ++ts);
        if (s->kind == K_DATA) {
            model_data(&md[s->tdir], s->off, s->len);
            model_ack(&md[!s->tdir], 0);
        } else {
            model_ack(&md[s->tdir], s->off);
        }
    }
    if (cfg->fin) {
        int o = (int)rnd_below(2);
        for (d = 0; d < 2; d++) {
            struct tseg fin = {K_FIN, d ^ o, len[d ^ o], 0, 0, 0};
            send_tseg(&r, cfg, &fin, orig, base, ++ts);
            model_fin(&md[d ^ o]);
            model_ack(&md[!(d ^ o)], 0);
        }
        if (cfg->lossy && rnd_below(2)) { /* each side acknowledges the other's FIN */
            fins_acked = 1;
            for (d = 0; d < 2; d++) {
                struct tseg ack = {K_ACK, d, len[d] + 1, 0, 0, 0};
                send_tseg(&r, cfg, &ack, orig, base, ++ts);
                model_ack(&md[d], len[d] + 1);
            }
        }
    }
    closed_before_flush = rec->n_close > 0;
    CHECK(repro_reasm_flush(&r, REPRO_END_EOF, ++ts) == 0);
    check_invariants(&r);
    CHECK(r.n_conns == 0);
    CHECK(budget.used == 0);
    repro_reasm_release(&r);
    CHECK(rec->n_open == 1 && rec->n_close == 1);
    if (cfg->fin && !cfg->lossy && !cfg->small_caps) {
        CHECK(closed_before_flush);
        CHECK(rec->c[1].reason == REPRO_END_FIN);
    }
    if (fins_acked) {
        /* Both FINs acknowledged: every hole is final, so it closed. */
        CHECK(closed_before_flush);
        CHECK(rec->c[1].reason == REPRO_END_FIN);
    }
    if (!closed_before_flush)
        CHECK(rec->c[1].reason == REPRO_END_EOF);
    CHECK(rec->c[1].mid_stream == cfg->mid_stream);

    for (d = 0; d < 2; d++) {
        /* The reassembler's direction 0 is the side that opened. */
        int rd = rec->c[1].port[0] == SERVER_PORT ? !d : d;
        const struct dir_rec *dr = &rec->c[1].d[rd];
        uint32_t end = model_close(&md[d]);
        uint64_t total = dr->len + dr->gap_bytes;

        if (cfg->fin) {
            CHECK(dr->n_fins == 1);
            CHECK(dr->fin_at == len[d]);
        } else {
            CHECK(dr->n_fins == 0);
        }
        if (cfg->small_caps) {
            /* Bytes were checked against the stream where they were
             * delivered; with a FIN the layout covers the whole stream. */
            if (cfg->fin)
                CHECK(total == len[d]);
            continue;
        }
        if (!cfg->lossy) {
            CHECK(dr->gap_bytes == 0 && dr->n_gaps == 0);
            CHECK(dr->len == len[d]);
            CHECK(len[d] == 0 || memcmp(dr->data, orig[d], len[d]) == 0);
        }
        {
            /* Compare run by run with the model's layout over [0, end). */
            size_t ri = 0, data = 0;
            uint32_t p = 0;
            while (p < end) {
                uint32_t q = p;
                int gap = md[d].st[p] == 2;
                CHECK(md[d].st[p] != 0);
                while (q < end && (md[d].st[q] == 2) == gap)
                    q++;
                CHECK(ri < dr->n_runs);
                CHECK(dr->runs[ri].gap == gap);
                CHECK(dr->runs[ri].len == q - p);
                if (!gap) {
                    CHECK(memcmp(dr->data + data, orig[d] + p, q - p) == 0);
                    data += q - p;
                }
                ri++;
                p = q;
            }
            CHECK(ri == dr->n_runs);
            CHECK(total == end);
        }
    }
    for (d = 0; d < 2; d++) {
        free(orig[d]);
        free(md[d].st);
    }
    free(segs.v);
    rec_free(rec);
}

static void test_differential_no_loss(void **state)
{
    uint64_t i;
    (void)state;
    for (i = 0; i < 1500; i++) {
        struct diff_cfg cfg = {0, (int)(i % 2), (int)(i % 5 == 3), 0, i % 3 == 0 ? 6 : 4};
        run_diff(0x5eed0000u + i, &cfg);
    }
}

static void test_differential_loss(void **state)
{
    uint64_t i;
    (void)state;
    for (i = 0; i < 1500; i++) {
        struct diff_cfg cfg = {1, (int)(i % 2), (int)(i % 5 == 3), 0, 4};
        run_diff(0x1055000u + i, &cfg);
    }
}

/* Tiny caps: gaps appear where the model has none, so check only what must
 * hold anyway: every delivered byte is the stream's byte at its position,
 * delivery is monotonic, memory stays within the caps, a FIN closes the
 * layout at the stream's length. */
static void test_differential_small_caps(void **state)
{
    uint64_t i;
    (void)state;
    for (i = 0; i < 1500; i++) {
        struct diff_cfg cfg = {(int)(i % 3 == 0), 1, 0, 1, 4};
        run_diff(0xca95000u + i, &cfg);
    }
}

/* ---- policies, one case each ------------------------------------------- */

static void test_overlap_first_wins_delivered(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "AAAA"), 0);
    assert_string_equal(render(f.rec, 1, 0), "AAAA");
    /* Retransmission with other bytes: the delivered part stays, the new
     * tail is taken. */
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "BBBBBB"), 0);
    assert_string_equal(render(f.rec, 1, 0), "AAAABB");
    assert_int_equal(f.r.stats.overlap_bytes, 4);
    /* Entirely old: dropped, counted. */
    assert_int_equal(fx_seg(&f, 0, 0, C(1), S(0), 0, "zzz"), 0);
    assert_string_equal(render(f.rec, 1, 0), "AAAABB");
    assert_int_equal(f.r.stats.retransmitted_bytes, 3);
    fx_teardown(&f);
}

static void test_overlap_first_wins_queued(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);

    /* Queued, then an in-order segment covering it with other bytes. */
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(4), S(0), 0, "CCCC"), 0);
    assert_string_equal(render(f.rec, 1, 0), "");
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "XXXXXXXXXX"), 0);
    assert_string_equal(render(f.rec, 1, 0), "XXXXCCCCXX");

    /* Queued, then another out-of-order segment around it, then the head. */
    fx_handshake(&f, 1, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 1, 0, C(4), S(0), 0, "CC"), 0);
    assert_int_equal(fx_seg(&f, 1, 0, C(2), S(0), 0, "YYYYYY"), 0);
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 6);
    assert_int_equal(fx_seg(&f, 1, 0, C(0), S(0), 0, "ZZ"), 0);
    assert_string_equal(render(f.rec, 2, 0), "ZZYYCCYY");

    /* Several queued pieces under one long in-order segment. */
    fx_handshake(&f, 2, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 2, 0, C(2), S(0), 0, "a"), 0);
    assert_int_equal(fx_seg(&f, 2, 0, C(5), S(0), 0, "bb"), 0);
    assert_int_equal(fx_seg(&f, 2, 0, C(9), S(0), 0, "c"), 0);
    assert_int_equal(fx_seg(&f, 2, 0, C(0), S(0), 0, "------------"), 0);
    assert_string_equal(render(f.rec, 3, 0), "--a--bb--c--");
    fx_teardown(&f);
}

static void test_syn_ack_orientation(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);

    /* The capture starts at the SYN-ACK: the client is still direction 0. */
    assert_int_equal(fx_seg(&f, 0, 1, S_ISN, C(0), REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_open, 1);
    assert_int_equal(f.rec->c[1].port[0], CLIENT_PORT0);
    assert_int_equal(f.rec->c[1].port[1], SERVER_PORT);
    assert_memory_equal(f.rec->c[1].addr[0], client_ip4, 4);
    assert_memory_equal(f.rec->c[1].addr[1], server_ip4, 4);
    assert_int_equal(find_conn(&f.r, 1)->syn_dir, -1);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), REPRO_TCP_PSH, "GET"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(3), REPRO_TCP_PSH, "200"), 0);
    assert_string_equal(render(f.rec, 1, 0), "GET");
    assert_string_equal(render(f.rec, 1, 1), "200");
    assert_int_equal(find_conn(&f.r, 1)->mid_stream, 0);

    /* A normal handshake over IPv6: the SYN's sender is direction 0. */
    f.family = 6;
    fx_handshake(&f, 1, C_ISN, S_ISN);
    assert_int_equal(f.rec->c[2].family, 6);
    assert_int_equal(find_conn(&f.r, 2)->syn_dir, 0);
    assert_int_equal(f.rec->c[2].port[0], CLIENT_PORT0 + 1);
    assert_memory_equal(f.rec->c[2].addr[0], client_ip6, 16);
    assert_memory_equal(f.rec->c[2].addr[1], server_ip6, 16);
    assert_int_equal(fx_seg(&f, 1, 1, S(0), C(0), 0, "resp"), 0);
    assert_string_equal(render(f.rec, 2, 1), "resp");
    fx_teardown(&f);
}

static void test_mid_stream_pickup(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    /* No SYN: the server speaks first and becomes direction 0. */
    assert_int_equal(fx_seg(&f, 0, 1, 7000, 300, 0, "RESP"), 0);
    assert_int_equal(f.rec->n_open, 1);
    assert_int_equal(f.r.lru_tail->mid_stream, 1);
    assert_int_equal(f.rec->c[1].port[0], SERVER_PORT);
    /* Bytes before the pickup point are old. */
    assert_int_equal(fx_seg(&f, 0, 1, 6990, 300, 0, "0123456789"), 0);
    assert_int_equal(f.r.stats.retransmitted_bytes, 10);
    assert_int_equal(fx_seg(&f, 0, 1, 7004, 300, 0, "MORE"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, 7010, 300, 0, "X"), 0); /* after a hole */
    assert_int_equal(fx_seg(&f, 0, 0, 300, 7004, 0, "REQ"), 0);
    assert_string_equal(render(f.rec, 1, 0), "RESPMORE");
    assert_string_equal(render(f.rec, 1, 1), "REQ");
    assert_int_equal(repro_reasm_flush(&f.r, REPRO_END_EOF, 100), 0);
    assert_string_equal(render(f.rec, 1, 0), "RESPMORE[gap 2]X");
    assert_int_equal(f.rec->c[1].mid_stream, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_EOF);
    fx_teardown(&f);
}

static void test_rst_closes(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(5), S(0), 0, "late"), 0); /* queued */
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(0), REPRO_TCP_RST, NULL), 0);
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_RST);
    assert_int_equal(f.rec->c[1].close_ts, f.ts);
    assert_string_equal(render(f.rec, 1, 0), "[gap 5]late");
    assert_int_equal(f.r.n_conns, 0);
    /* Later packets of the closed connection without payload are ignored. */
    assert_int_equal(fx_seg(&f, 0, 0, C(9), S(0), 0, NULL), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(9), S(0), REPRO_TCP_RST, NULL), 0);
    assert_int_equal(f.r.stats.ignored_packets, 2);
    assert_int_equal(f.rec->n_open, 1);
    fx_teardown(&f);
}

static void test_fin_both_ways(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    /* The client's FIN overtakes its data. */
    assert_int_equal(fx_seg(&f, 0, 0, C(6), S(0), REPRO_TCP_FIN, NULL), 0);
    assert_int_equal(f.rec->c[1].d[0].n_fins, 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "GET / "), 0);
    assert_string_equal(render(f.rec, 1, 0), "GET / |");
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(7), 0, "OK"), 0);
    assert_int_equal(f.rec->n_close, 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(2), C(7), REPRO_TCP_FIN, "!"), 0);
    assert_string_equal(render(f.rec, 1, 1), "OK!|");
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_FIN);
    assert_int_equal(f.r.n_conns, 0);
    /* The last ACK finds no connection. */
    assert_int_equal(fx_seg(&f, 0, 0, C(7), S(4), 0, NULL), 0);
    assert_int_equal(f.r.stats.ignored_packets, 1);
    fx_teardown(&f);
}

static void test_idle_timeout(void **state)
{
    struct fx f;
    struct repro_pkt pk;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 1000000, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "a"), 0);
    /* Another connection exactly idle_timeout later: not yet. */
    pk = mkpkt(4, 1, 0, 1, 0, REPRO_TCP_SYN, NULL, 0, 0, f.ts + 1000000);
    assert_int_equal(repro_reasm_packet(&f.r, &pk), 0);
    assert_int_equal(f.rec->n_close, 0);
    pk = mkpkt(4, 1, 0, 2, 0, REPRO_TCP_ACK, (const uint8_t *)"x", 1, 1, f.ts + 1000001);
    assert_int_equal(repro_reasm_packet(&f.r, &pk), 0);
    check_invariants(&f.r);
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_TIMEOUT);
    assert_int_equal(f.rec->c[1].close_ts, f.ts + 1000001);
    assert_int_equal(f.rec->c[2].closed, 0);
    assert_int_equal(f.r.n_conns, 1);
    f.ts += 1000001;
    fx_teardown(&f);
}

static void test_eviction_oldest_first(void **state)
{
    struct fx f;
    int k;
    (void)state;
    fx_setup(&f, 1 << 16, 3, 0, 1 << 20);
    for (k = 0; k < 3; k++)
        assert_int_equal(fx_seg(&f, k, 0, C_ISN, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(fx_seg(&f, 3, 0, C_ISN, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->close_order[0], 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_EVICTED);
    assert_int_equal(f.r.stats.evicted, 1);
    /* Activity on connection 2 makes connection 3 the least recently active. */
    assert_int_equal(fx_seg(&f, 1, 0, C(0), 0, 0, "hi"), 0);
    assert_int_equal(fx_seg(&f, 4, 0, C_ISN, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_close, 2);
    assert_int_equal(f.rec->close_order[1], 3);
    assert_int_equal(f.rec->c[3].reason, REPRO_END_EVICTED);
    assert_int_equal(f.r.n_conns, 3);
    fx_teardown(&f);
}

static void test_ooo_cap_forces_gap(void **state)
{
    struct fx f;
    static const char big[] = "0123456789abcdef0123456789abcdef";
    (void)state;
    fx_setup(&f, 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(4), S(0), 0, "BBBBBBBB"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(16), S(0), 0, "DDDDDDDD"), 0);
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 16);
    /* Over the cap: the oldest hole is given up. */
    assert_int_equal(fx_seg(&f, 0, 0, C(28), S(0), 0, "FFFF"), 0);
    assert_string_equal(render(f.rec, 1, 0), "[gap 4]BBBBBBBB");
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 12);
    /* Larger than the cap on its own: every hole before it goes, then it is
     * dropped. */
    assert_int_equal(fx_raw(&f, 0, 0, C(100), S(0), REPRO_TCP_ACK, big, 32, 32), 0);
    assert_string_equal(render(f.rec, 1, 0), "[gap 4]BBBBBBBB[gap 4]DDDDDDDD[gap 4]FFFF");
    assert_int_equal(f.r.stats.dropped_ooo_bytes, 32);
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 0);
    fx_teardown(&f);
}

/* Regression: making room under the cap used to insert the new piece at the
 * head of the queue, in front of older queued segments (unsorted queue,
 * then captured bytes reported as a gap). */
static void test_ooo_cap_keeps_queue_sorted(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 20, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(10), S(0), 0, "AAAAAAAAAA"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(30), S(0), 0, "BBBBBBBBBB"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(50), S(0), 0, "CCCCC"), 0);
    assert_string_equal(render(f.rec, 1, 0), "[gap 10]AAAAAAAAAA");
    assert_int_equal(fx_seg(&f, 0, 0, C(20), S(0), 0, "xxxxxxxxxx"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(40), S(0), 0, "EEEEEEEEEE"), 0);
    assert_string_equal(render(f.rec, 1, 0),
                        "[gap 10]AAAAAAAAAAxxxxxxxxxxBBBBBBBBBBEEEEEEEEEECCCCC");
    assert_int_equal(f.r.stats.gap_bytes, 10);
    fx_teardown(&f);
}

static void test_ack_past_hole(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "0123456789"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(20), S(0), 0, "KLMNO"), 0);
    assert_string_equal(render(f.rec, 1, 0), "0123456789");
    /* The server acknowledges bytes past the hole: it had them. */
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(25), 0, NULL), 0);
    assert_string_equal(render(f.rec, 1, 0), "0123456789[gap 10]KLMNO");
    assert_int_equal(f.r.stats.gaps, 1);
    assert_int_equal(f.r.stats.gap_bytes, 10);
    /* The lost bytes arriving after all are old. */
    assert_int_equal(fx_seg(&f, 0, 0, C(10), S(0), 0, "abcdefghij"), 0);
    assert_string_equal(render(f.rec, 1, 0), "0123456789[gap 10]KLMNO");
    fx_teardown(&f);
}

/* An ACK of the FIN is past every hole before it: the gap is declared and
 * the connection closes normally once both FINs are through. */
static void test_ack_past_hole_before_fin(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "GET"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(3), 0, "HTTP/1.1 200"), 0);
    /* The response's last segment is lost; only a snap-length-cut copy
     * of the one before shows (5 of 10 bytes), then the FIN. */
    assert_int_equal(fx_raw(&f, 0, 1, S(12), C(3), REPRO_TCP_ACK, "abcde", 5, 10), 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(30), C(3), REPRO_TCP_FIN, NULL), 0);
    assert_string_equal(render(f.rec, 1, 1), "HTTP/1.1 200abcde");
    /* The client acknowledges the FIN: nothing before it can still come. */
    assert_int_equal(fx_seg(&f, 0, 0, C(3), S(31), 0, NULL), 0);
    assert_string_equal(render(f.rec, 1, 1), "HTTP/1.1 200abcde[gap 13]|");
    assert_int_equal(f.rec->n_close, 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(3), S(31), REPRO_TCP_FIN, NULL), 0);
    assert_string_equal(render(f.rec, 1, 0), "GET|");
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_FIN);
    fx_teardown(&f);
}

static void test_port_reuse(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "one"), 0);
    /* A retransmitted SYN with the same ISN, even after data, is the same
     * connection. */
    assert_int_equal(fx_seg(&f, 0, 0, C_ISN, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_close, 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(3), S(0), 0, "two"), 0);
    assert_string_equal(render(f.rec, 1, 0), "onetwo");
    /* A SYN with another ISN on the same tuple: a new connection. */
    assert_int_equal(fx_seg(&f, 0, 0, 90000, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].closed, 1);
    assert_int_equal(f.rec->n_open, 2);
    assert_int_equal(find_conn(&f.r, 2)->syn_dir, 0);
    assert_int_equal(fx_seg(&f, 0, 0, 90001, 0, 0, "new"), 0);
    assert_string_equal(render(f.rec, 2, 0), "new");
    assert_int_equal(f.r.n_conns, 1);
    fx_teardown(&f);
}

/* Regression (fuzzer find): a SYN-ACK with another ISN used to move
 * next_seq of a direction with queued data, leaving the queue behind it;
 * the next in-order delivery then read far past the packet. */
static void test_syn_keeps_queue_ahead(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 1, S(10), C(0), 0, "queued"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, 90000, C(0), REPRO_TCP_SYN | REPRO_TCP_FIN, "data"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(0), 0, "0123456789"), 0);
    assert_string_equal(render(f.rec, 1, 1), "0123456789queued");
    fx_teardown(&f);
}

/* Regression (fuzzer find): data queued almost 2^31 ahead put queued bytes
 * at or behind next_seq in serial arithmetic. Nothing beyond the largest
 * TCP window (2^30) is queued. */
static void test_far_ahead_dropped(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0x7ffffff0u), S(0), 0, "0123456789abcdefXYZ"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(0x40000000u), S(0), 0, "x"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(0x80000005u), S(0), 0, "behind"), 0);
    assert_int_equal(f.r.stats.dropped_ooo_bytes, 20);
    assert_int_equal(f.r.stats.retransmitted_bytes, 6);
    /* The furthest a window reaches is still queued. */
    assert_int_equal(fx_seg(&f, 0, 0, C(0x3ffffffcu), S(0), 0, "edge"), 0);
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 4);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "start"), 0);
    assert_string_equal(render(f.rec, 1, 0), "start");
    fx_teardown(&f);
}

static void test_unknown_pure_ack_ignored(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    assert_int_equal(fx_seg(&f, 0, 0, 10, 20, 0, NULL), 0);
    assert_int_equal(fx_seg(&f, 0, 1, 20, 10, REPRO_TCP_FIN, NULL), 0);
    assert_int_equal(fx_seg(&f, 0, 0, 10, 0, REPRO_TCP_RST, NULL), 0);
    assert_int_equal(f.r.stats.ignored_packets, 3);
    assert_int_equal(f.rec->n_open, 0);
    assert_int_equal(f.r.n_conns, 0);
    assert_int_equal(f.r.stats.connections, 0);
    fx_teardown(&f);
}

static void test_wraparound(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, 0xfffffff8u, 0xffffffffu);
    /* Client bytes 0..15 span 2^32; the second half arrives first. */
    assert_int_equal(fx_seg(&f, 0, 0, 0xfffffff9u + 8, 0, 0, "89abcdef"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, 0xfffffff9u, 0, 0, "01234567"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, 0, 0xfffffff9u + 16, 0, "reply"), 0);
    assert_string_equal(render(f.rec, 1, 0), "0123456789abcdef");
    assert_string_equal(render(f.rec, 1, 1), "reply");
    fx_teardown(&f);
}

/* Callbacks stop processing with their return code. */
static void test_callback_stops(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    f.rec->open_rc = 7;
    assert_int_equal(fx_seg(&f, 0, 0, C(0), 0, 0, "abc"), 7);
    assert_string_equal(render(f.rec, 1, 0), "");
    f.rec->open_rc = 0;
    f.rec->data_rc = 5;
    assert_int_equal(fx_seg(&f, 0, 0, C(3), 0, 0, "def"), 5);
    f.rec->data_rc = 0;
    fx_teardown(&f);
}

/* ---- budget ------------------------------------------------------------ */

static void test_budget(void **state)
{
    struct fx f;
    char buf[40];
    int k, i;
    (void)state;
    memset(buf, 'q', sizeof buf);

    /* Two streams share 64 bytes; each queues beyond a hole. */
    fx_setup(&f, 1000, 16, 0, 64);
    for (k = 0; k < 2; k++)
        fx_handshake(&f, k, C_ISN, S_ISN);
    assert_int_equal(fx_raw(&f, 0, 0, C(10), S(0), REPRO_TCP_ACK, buf, 40, 40), 0);
    assert_int_equal(f.budget.used, 40);
    /* The other stream cannot take 40 more, and has no hole of its own to
     * give up: dropped and counted. */
    assert_int_equal(fx_raw(&f, 1, 0, C(10), S(0), REPRO_TCP_ACK, buf, 40, 40), 0);
    assert_int_equal(f.budget.used, 40);
    assert_int_equal(f.r.stats.dropped_ooo_bytes, 40);
    assert_true(f.budget.refused >= 40);
    /* Stream 0 gives up its own hole to make room for more. */
    assert_int_equal(fx_raw(&f, 0, 0, C(60), S(0), REPRO_TCP_ACK, buf, 30, 30), 0);
    assert_string_equal(render(f.rec, 1, 0), "[gap 10]qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq");
    assert_int_equal(f.budget.used, 30);
    for (i = 0; i < 10; i++)
        assert_int_equal(
            fx_raw(&f, 1, 0, C(100 + 10 * (uint32_t)i), S(0), REPRO_TCP_ACK, buf, 5, 5), 0);
    assert_true(f.budget.used <= 64);
    fx_teardown(&f); /* flush: used back to 0 */

    /* Release without flush gives everything back too. */
    fx_setup(&f, 1000, 16, 0, 64);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_raw(&f, 0, 0, C(10), S(0), REPRO_TCP_ACK, buf, 40, 40), 0);
    assert_int_equal(f.budget.used, 40);
    repro_reasm_release(&f.r);
    assert_int_equal(f.budget.used, 0);
    rec_free(f.rec);
}

/* Random out-of-order traffic on several connections under a tiny budget. */
static void test_budget_random(void **state)
{
    uint64_t it;
    (void)state;
    for (it = 0; it < 200; it++) {
        struct fx f;
        uint8_t buf[256];
        int n;
        g_seed = 0xb0d9e7u + it;
        rng_state = g_seed;
        fx_setup(&f, 1 + rnd_below(200), 1 + rnd_below(4), 0, rnd_below(300));
        f.rec->strict = 0;
        for (n = 0; n < 300; n++) {
            int k = (int)rnd_below(5), tdir = (int)rnd_below(2);
            uint32_t len = rnd_below(100), off = rnd_below(1000);
            uint8_t fl = REPRO_TCP_ACK;
            memset(buf, 'a' + k, len);
            if (rnd_below(30) == 0)
                fl |= REPRO_TCP_SYN;
            if (rnd_below(50) == 0)
                fl |= REPRO_TCP_FIN;
            if (rnd_below(80) == 0)
                fl |= REPRO_TCP_RST;
            assert_int_equal(fx_raw(&f, k, tdir, C(off), C(rnd_below(1000)), fl, buf, len, len), 0);
            assert_true(f.budget.used <= f.budget.max);
        }
        fx_teardown(&f);
    }
}

/* ---- allocation failures ----------------------------------------------- */

/* One fixed scenario: five connections with reordered, overlapping data,
 * FINs and an RST. Returns the hash of every event seen. */
static uint64_t fault_scenario(int *init_failed)
{
    struct rec *rec = rec_new(1024);
    struct repro_reasm r;
    struct repro_reasm_cb cb = rec_callbacks;
    struct repro_budget budget = {0, 4096, 0};
    uint8_t stream[5][2][200];
    uint64_t h;
    int k, d, rc;
    uint32_t j;
    int64_t ts = 0;

    rng_state = 0xfa17;
    rec->check_content = 1;
    rec->salt = 99;
    cb.ctx = rec;
    for (k = 0; k < 5; k++)
        for (d = 0; d < 2; d++) {
            rec->base[k][d] = (d ? S_ISN : C_ISN) + 1 + (uint32_t)k * 0x40000000u;
            rec->length[k][d] = 200;
            for (j = 0; j < 200; j++)
                stream[k][d][j] = content_byte(rec->salt, (uint16_t)(CLIENT_PORT0 + k), d, j);
        }
    rc = repro_reasm_init(&r, &cb, 150, 4, 0, &budget);
    *init_failed = rc != REPRO_OK;
    if (rc != REPRO_OK) {
        assert_int_equal(rc, REPRO_E_NOMEM);
        rec_free(rec);
        return 0;
    }
    for (k = 0; k < 5; k++) {
        struct repro_pkt pk;
        int i;
        uint32_t bc = rec->base[k][0], bs = rec->base[k][1];
        pk = mkpkt(4, k, 0, bc - 1, 0, REPRO_TCP_SYN, NULL, 0, 0, ++ts);
        assert_int_equal(repro_reasm_packet(&r, &pk), 0);
        pk = mkpkt(4, k, 1, bs - 1, bc, REPRO_TCP_SYN | REPRO_TCP_ACK, NULL, 0, 0, ++ts);
        assert_int_equal(repro_reasm_packet(&r, &pk), 0);
        for (i = 0; i < 30; i++) {
            d = (int)rnd_below(2);
            j = rnd_below(180);
            pk = mkpkt(4, k, d, rec->base[k][d] + j, rec->base[k][!d], REPRO_TCP_ACK,
                       stream[k][d] + j, 1 + rnd_below(200 - j), 0, ++ts);
            pk.seg_len = pk.payload_len;
            assert_int_equal(repro_reasm_packet(&r, &pk), 0);
            check_invariants(&r);
        }
        if (k == 2) {
            pk = mkpkt(4, k, 1, bs + 200, bc, REPRO_TCP_RST, NULL, 0, 0, ++ts);
        } else {
            pk = mkpkt(4, k, 0, bc + 200, bs, REPRO_TCP_FIN | REPRO_TCP_ACK, NULL, 0, 0, ++ts);
            assert_int_equal(repro_reasm_packet(&r, &pk), 0);
            pk =
                mkpkt(4, k, 1, bs + 200, bc + 201, REPRO_TCP_FIN | REPRO_TCP_ACK, NULL, 0, 0, ++ts);
        }
        assert_int_equal(repro_reasm_packet(&r, &pk), 0);
        check_invariants(&r);
    }
    assert_int_equal(repro_reasm_flush(&r, REPRO_END_EOF, ++ts), 0);
    check_invariants(&r);
    assert_int_equal(budget.used, 0);
    repro_reasm_release(&r);
    assert_int_equal(rec->n_open, rec->n_close);
    for (k = 1; k <= (int)rec->max_id; k++)
        if (rec->c[k].opened)
            assert_true(rec->c[k].closed);
    h = rec->hash;
    rec_free(rec);
    return h;
}

static void test_alloc_failures(void **state)
{
    unsigned long n, made;
    uint64_t reference;
    int init_failed;
    (void)state;

    repro_alloc_fail_after(0);
    reference = fault_scenario(&init_failed);
    assert_false(init_failed);
    for (n = 1; n < 100000; n++) {
        uint64_t h1, h2;
        int f1, f2;
        repro_alloc_fail_after(n);
        h1 = fault_scenario(&f1);
        made = repro_alloc_fail_after(n);
        h2 = fault_scenario(&f2);
        repro_alloc_fail_after(0);
        /* Same failure point, same behaviour. */
        assert_int_equal(f1, f2);
        assert_true(h1 == h2);
        if (made < n) {
            /* Nothing failed: the full result. */
            assert_true(h1 == reference);
            break;
        }
        assert_int_equal(f1, n == 1);
    }
    assert_true(n > 2);
    assert_true(n < 100000);
}

/* Growing the hash table may fail: lookups keep working in the small one. */
static void test_table_grow_failure(void **state)
{
    struct fx f;
    unsigned long made;
    int k, fail;
    (void)state;

    for (fail = 0; fail < 2; fail++) {
        fx_setup(&f, 1 << 16, 5000, 0, 1 << 20);
        repro_alloc_fail_after(0);
        for (k = 0; k < 1024; k++)
            assert_int_equal(fx_raw(&f, k, 0, 1, 0, REPRO_TCP_ACK, "a", 1, 1), 0);
        /* The next connection's allocation succeeds, the table's fails. */
        repro_alloc_fail_after(fail ? 2 : 0);
        assert_int_equal(fx_raw(&f, 1024, 0, 1, 0, REPRO_TCP_ACK, "a", 1, 1), 0);
        made = repro_alloc_fail_after(0);
        assert_int_equal(made, 2);
        assert_int_equal(f.r.n_buckets, fail ? 1024 : 2048);
        for (k = 0; k <= 1024; k++)
            assert_int_equal(fx_raw(&f, k, 0, 2, 0, REPRO_TCP_ACK, "b", 1, 1), 0);
        assert_int_equal(f.r.n_conns, 1025);
        assert_string_equal(render(f.rec, 1, 0), "ab");
        assert_string_equal(render(f.rec, 64, 0), "ab");
        fx_teardown(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlap_first_wins_delivered),
        cmocka_unit_test(test_overlap_first_wins_queued),
        cmocka_unit_test(test_syn_ack_orientation),
        cmocka_unit_test(test_mid_stream_pickup),
        cmocka_unit_test(test_rst_closes),
        cmocka_unit_test(test_fin_both_ways),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_eviction_oldest_first),
        cmocka_unit_test(test_ooo_cap_forces_gap),
        cmocka_unit_test(test_ooo_cap_keeps_queue_sorted),
        cmocka_unit_test(test_ack_past_hole),
        cmocka_unit_test(test_ack_past_hole_before_fin),
        cmocka_unit_test(test_port_reuse),
        cmocka_unit_test(test_syn_keeps_queue_ahead),
        cmocka_unit_test(test_far_ahead_dropped),
        cmocka_unit_test(test_unknown_pure_ack_ignored),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_budget_random),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_table_grow_failure),
        cmocka_unit_test(test_differential_no_loss),
        cmocka_unit_test(test_differential_loss),
        cmocka_unit_test(test_differential_small_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
