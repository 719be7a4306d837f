/*
 * Unit tests for capture/tcp_reasm.c: a differential test against a slow
 * reference model (a flat byte array per direction, first write wins), with
 * and without loss. After every packet the struct invariants written in
 * tcp_reasm.h are checked. The policies one by one, the memory budget and
 * allocation failures: test_tcp_reasm_cases.c; the fixture: reasm_fixture.h.
 */
#include "reasm_fixture.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential_no_loss),
        cmocka_unit_test(test_differential_loss),
        cmocka_unit_test(test_differential_small_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
