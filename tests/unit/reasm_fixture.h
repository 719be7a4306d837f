/*
 * The fixture of the reassembly tests (test_tcp_reasm.c: the differential
 * test; test_tcp_reasm_cases.c: the policies one by one, the budget,
 * allocation failures): a seeded PRNG, packet builders, a recorder of
 * what the callbacks saw with per-connection content checks, the struct
 * invariants of tcp_reasm.h, and a small fixture for hand-written cases.
 * Included by those two files only; everything is static.
 */
#ifndef REPRO_TEST_REASM_FIXTURE_H
#define REPRO_TEST_REASM_FIXTURE_H

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

static inline uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint32_t rnd_below(uint32_t n)
{
    return n ? (uint32_t)(rnd() % n) : 0;
}

/* Byte off of direction tdir (0 client, 1 server) of the connection whose
 * client port is cport: every stream's content is a function of these, so
 * any delivered byte can be checked wherever it appears. */
static inline uint8_t content_byte(uint64_t salt, uint16_t cport, int tdir, uint32_t off)
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
static inline struct repro_pkt mkpkt(int family, int k, int tdir, uint32_t seq, uint32_t ack,
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

static inline void hash_bytes(struct rec *rec, const void *p, size_t n)
{
    const uint8_t *b = p;
    size_t i;
    for (i = 0; i < n; i++)
        rec->hash = (rec->hash ^ b[i]) * 1099511628211ull;
}

static inline void hash_event(struct rec *rec, int type, uint64_t id, int dir, uint64_t len)
{
    uint64_t v[4];
    v[0] = (uint64_t)type;
    v[1] = id;
    v[2] = (uint64_t)dir;
    v[3] = len;
    hash_bytes(rec, v, sizeof v);
}

static inline struct rec *rec_new(size_t max_id)
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

static inline void rec_free(struct rec *rec)
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

static inline void add_run(struct dir_rec *dr, int gap, uint64_t len)
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

static inline struct conn_rec *conn_of(struct rec *rec, const struct repro_tcp_conn *c)
{
    CHECK(c->id >= 1 && c->id <= rec->max_id);
    return &rec->c[c->id];
}

/* Checks that a callback's bytes start where the previous one ended. */
static inline void check_position(struct dir_rec *dr, uint32_t start, uint32_t end)
{
    if (dr->started)
        CHECK(start == dr->next);
    dr->started = 1;
    dr->next = end;
}

static inline int cb_open(void *ctx, struct repro_tcp_conn *c)
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

static inline void check_content(struct rec *rec, const struct repro_tcp_conn *c, int dir, uint32_t start,
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

static inline int cb_data(void *ctx, struct repro_tcp_conn *c, int dir, const uint8_t *p, size_t len,
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

static inline int cb_gap(void *ctx, struct repro_tcp_conn *c, int dir, uint64_t len, int64_t ts_us)
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

static inline int cb_fin(void *ctx, struct repro_tcp_conn *c, int dir, int64_t ts_us)
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

static inline int cb_close(void *ctx, struct repro_tcp_conn *c, int reason, int64_t ts_us)
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

static const struct repro_reasm_cb rec_callbacks = {NULL,   cb_open,  cb_data, cb_gap,
                                                    cb_fin, cb_close, NULL};

/* Renders one direction as text: data bytes as they are, gaps as
 * "[gap N]", the FIN as "|". */
static inline const char *render(const struct rec *rec, uint64_t id, int dir)
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

static inline void check_invariants(const struct repro_reasm *r)
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
                held += REPRO__SEG_COST(s->len); /* charged with its header */
            }
            CHECK(sum == h->ooo_bytes);
            CHECK(h->ooo_bytes <= r->max_stream_ooo);
        }
        /* on the holders' list exactly when it holds out-of-order data
         * (these callbacks hold nothing of their own); on the list of
         * connections without payload only while none was seen */
        CHECK(c->link[REPRO__LIST_HELD].on == (c->half[0].ooo != NULL || c->half[1].ooo != NULL));
        if (c->link[REPRO__LIST_BARE].on)
            CHECK(c->half[0].bytes + c->half[1].bytes == 0 && c->half[0].ooo == NULL &&
                  c->half[1].ooo == NULL);
    }
    CHECK(prev == r->lru_tail);
    for (d = 0; d < REPRO__LIST_COUNT; d++) {
        prev = NULL;
        for (c = r->list[d].head; c != NULL; prev = c, c = c->link[d].next) {
            CHECK(c->link[d].prev == prev);
            CHECK(c->link[d].on);
        }
        CHECK(prev == r->list[d].tail);
    }
    CHECK(n == r->n_conns);
    CHECK(n <= r->max_connections);
    if (r->budget != NULL) {
        CHECK(r->budget->used <= r->budget->max);
        CHECK(r->budget->used == held);
    }
}

/* ---- fixture for the hand-written cases -------------------------------- */

static inline const struct repro_tcp_conn *find_conn(const struct repro_reasm *r, uint64_t id)
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

static inline void fx_setup(struct fx *f, size_t max_ooo, size_t max_conns, int64_t idle_us,
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

static inline void fx_teardown(struct fx *f)
{
    assert_int_equal(repro_reasm_flush(&f->r, REPRO_END_EOF, f->ts + 1), 0);
    check_invariants(&f->r);
    assert_int_equal(f->r.n_conns, 0);
    assert_int_equal(f->budget.used, 0);
    assert_int_equal(f->rec->n_open, f->rec->n_close);
    repro_reasm_release(&f->r);
    rec_free(f->rec);
}

static inline int fx_raw(struct fx *f, int k, int tdir, uint32_t seq, uint32_t ack, uint8_t flags,
                  const void *p, uint32_t len, uint32_t seg_len)
{
    struct repro_pkt pk = mkpkt(f->family, k, tdir, seq, ack, flags, p, len, seg_len, ++f->ts);
    int rc = repro_reasm_packet(&f->r, &pk);
    check_invariants(&f->r);
    return rc;
}

/* Sends text (may be NULL) on connection k; ACK is set when ack != 0. */
static inline int fx_seg(struct fx *f, int k, int tdir, uint32_t seq, uint32_t ack, uint8_t flags,
                  const char *text)
{
    uint32_t n = text ? (uint32_t)strlen(text) : 0;
    if (ack != 0)
        flags |= REPRO_TCP_ACK;
    return fx_raw(f, k, tdir, seq, ack, flags, text, n, n);
}

/* Three-way handshake of connection k with the given ISNs. */
static inline void fx_handshake(struct fx *f, int k, uint32_t isn_c, uint32_t isn_s)
{
    assert_int_equal(fx_seg(f, k, 0, isn_c, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(fx_seg(f, k, 1, isn_s, isn_c + 1, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(fx_seg(f, k, 0, isn_c + 1, isn_s + 1, 0, NULL), 0);
}

#define C_ISN 1000u
#define S_ISN 5000u
#define C(off) (C_ISN + 1u + (off))
#define S(off) (S_ISN + 1u + (off))


#endif
