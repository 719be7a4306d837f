/*
 * TCP stream reassembly (RFC 9293) for passive capture.
 *
 * Per direction, bytes are delivered in sequence order exactly once.
 * Policies:
 *  - Overlaps: the first bytes seen win. Data already delivered is never
 *    replaced; a new segment only fills holes between queued segments.
 *  - Sequence numbers compare in serial arithmetic, so wraparound at 2^32
 *    is transparent.
 *  - A direction without a SYN starts at the first data segment seen
 *    (streams picked up mid-connection).
 *  - A hole becomes a gap (reported with its length, then delivery goes on)
 *    when the peer acknowledges data or the FIN past it (the receiver had
 *    it, so the capture lost it), when the out-of-order queue exceeds its
 *    per-stream cap or the overall budget, and when the connection ends.
 *  - Data more than 2^30 bytes (the largest TCP window) ahead of the next
 *    byte is dropped and counted.
 *  - A connection ends on RST, when both FINs have been delivered, after
 *    idle_timeout_us of capture time without packets (checked at each
 *    packet and at repro_reasm_expire()), when evicted because the table is
 *    full (connections that never carried payload first, then the least
 *    recently active), when closed to free held bytes for
 *    newer traffic (least recently active holder first, never the packet's
 *    own connection), or at the end of the capture.
 *  - Memory: queued segments are charged to the held budget with their
 *    header and allocation overhead; connections and the hash table to the
 *    table budget (repro_reasm_set_memory()).
 *  - Pure ACKs and bare FIN/RST of connections not in the table are ignored
 *    (counted); only a SYN or payload creates a connection.
 *  - A segment's ACK is applied before its payload is delivered, so bytes
 *    the sender had received reach the callbacks before what it sent in
 *    reply; each delivery carries the ACK number of its segment
 *    (repro_tcp_half.seg_ack), the evidence capture pairs responses by.
 *
 * Expected workload: millions of segments, mostly in order; the in-order
 * path does no allocation and no copy.
 */
#include "tcp_reasm.h"

#include <string.h>

#define SEQ_LT(a, b) ((int32_t)((a) - (b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((a) - (b)) <= 0)
#define SEQ_GT(a, b) ((int32_t)((a) - (b)) > 0)
#define SEQ_GEQ(a, b) ((int32_t)((a) - (b)) >= 0)

/* No TCP window exceeds 2^30 bytes (RFC 7323 section 2.3); data further
 * ahead is not part of the stream, and serial comparisons across it would be
 * ambiguous. */
#define MAX_AHEAD ((uint64_t)1 << 30)

static uint32_t hash_endpoint(uint32_t h, const uint8_t *addr, size_t alen, uint16_t port)
{
    size_t i;
    for (i = 0; i < alen; i++)
        h = (h ^ addr[i]) * 16777619u;
    h = (h ^ (port & 0xff)) * 16777619u;
    h = (h ^ (port >> 8)) * 16777619u;
    return h;
}

/* Direction-independent hash of the 4-tuple. */
static uint32_t hash_tuple(int family, const uint8_t *a, uint16_t pa, const uint8_t *b,
                           uint16_t pb)
{
    size_t alen = family == 6 ? 16 : 4;
    uint32_t ha = hash_endpoint(2166136261u, a, alen, pa);
    uint32_t hb = hash_endpoint(2166136261u, b, alen, pb);
    return (ha ^ hb) * 2654435761u + (ha + hb);
}

int repro_reasm_init(struct repro_reasm *r, const struct repro_reasm_cb *cb, size_t max_stream_ooo,
                     size_t max_connections, int64_t idle_timeout_us, struct repro_budget *budget)
{
    memset(r, 0, sizeof *r);
    r->cb = *cb;
    r->n_buckets = 1024;
    r->buckets = repro_calloc(r->n_buckets, sizeof *r->buckets);
    if (r->buckets == NULL)
        return REPRO_E_NOMEM;
    r->max_stream_ooo = max_stream_ooo;
    r->max_connections = max_connections ? max_connections : 1;
    r->idle_timeout_us = idle_timeout_us;
    r->budget = budget;
    r->next_id = 1;
    return REPRO_OK;
}

static void free_ooo(struct repro_reasm *r, struct repro_tcp_half *h)
{
    struct repro_tcp_seg *s = h->ooo, *n;
    for (; s != NULL; s = n) {
        n = s->next;
        repro_budget_give(r->budget, REPRO__SEG_COST(s->len));
        repro_free(s);
    }
    h->ooo = NULL;
    h->ooo_bytes = 0;
}

/* Takes c out of the activity list. */
static void lru_unlink(struct repro_reasm *r, struct repro_tcp_conn *c)
{
    if (c->lprev)
        c->lprev->lnext = c->lnext;
    else
        r->lru_head = c->lnext;
    if (c->lnext)
        c->lnext->lprev = c->lprev;
    else
        r->lru_tail = c->lprev;
    c->lprev = c->lnext = NULL;
}

/* Puts c at the most recently active end of the list. */
static void lru_append(struct repro_reasm *r, struct repro_tcp_conn *c)
{
    c->lprev = r->lru_tail;
    c->lnext = NULL;
    if (r->lru_tail)
        r->lru_tail->lnext = c;
    r->lru_tail = c;
    if (r->lru_head == NULL)
        r->lru_head = c;
}

/* Takes c off list k (REPRO__LIST_*) if it is on it. */
static void list_remove(struct repro_reasm *r, struct repro_tcp_conn *c, int k)
{
    struct repro_tcp_link *l = &c->link[k];

    if (!l->on)
        return;
    if (l->prev)
        l->prev->link[k].next = l->next;
    else
        r->list[k].head = l->next;
    if (l->next)
        l->next->link[k].prev = l->prev;
    else
        r->list[k].tail = l->prev;
    l->prev = l->next = NULL;
    l->on = 0;
}

/* Puts c at the most recent end of list k. */
static void list_append(struct repro_reasm *r, struct repro_tcp_conn *c, int k)
{
    struct repro_tcp_link *l = &c->link[k];

    l->prev = r->list[k].tail;
    l->next = NULL;
    if (r->list[k].tail)
        r->list[k].tail->link[k].next = c;
    r->list[k].tail = c;
    if (r->list[k].head == NULL)
        r->list[k].head = c;
    l->on = 1;
}

/* After a packet of c: c goes to the most recently active end of the list
 * of connections holding bytes, or off it when it holds none. */
static void note_holding(struct repro_reasm *r, struct repro_tcp_conn *c)
{
    int holds = c->half[0].ooo != NULL || c->half[1].ooo != NULL ||
                (r->cb.holds != NULL && r->cb.holds(r->cb.ctx, c));

    list_remove(r, c, REPRO__LIST_HELD);
    if (holds)
        list_append(r, c, REPRO__LIST_HELD);
}

/* Whether budget b (optional) has n bytes free. */
static int has_room(const struct repro_budget *b, size_t n)
{
    return b == NULL || (b->used <= b->max && b->max - b->used >= n);
}

/* Charges n bytes that were made room for (or must be kept anyway). */
static void charge(struct repro_budget *b, size_t n)
{
    if (b != NULL)
        b->used += n;
}

static void unlink_conn(struct repro_reasm *r, struct repro_tcp_conn *c)
{
    struct repro_tcp_conn **pp = &r->buckets[c->hash & (r->n_buckets - 1)];
    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    lru_unlink(r, c);
    list_remove(r, c, REPRO__LIST_HELD);
    list_remove(r, c, REPRO__LIST_BARE);
    if (r->cur == c)
        r->cur = NULL;
    r->n_conns--;
}

static void free_conn(struct repro_reasm *r, struct repro_tcp_conn *c)
{
    free_ooo(r, &c->half[0]);
    free_ooo(r, &c->half[1]);
    repro_budget_give(r->table, sizeof *c + REPRO__ALLOC_OVERHEAD);
    repro_free(c);
}

/* The hash table's charge to the table budget. */
static size_t buckets_cost(size_t n_buckets)
{
    return n_buckets * sizeof(struct repro_tcp_conn *) + REPRO__ALLOC_OVERHEAD;
}

void repro_reasm_set_memory(struct repro_reasm *r, struct repro_budget *table, size_t conn_reserve,
                            size_t user_reserve, size_t room_slack)
{
    repro_budget_give(r->table, buckets_cost(r->n_buckets));
    r->table = table;
    charge(r->table, buckets_cost(r->n_buckets));
    r->conn_reserve = conn_reserve;
    r->user_reserve = user_reserve;
    r->room_slack = room_slack;
    r->pressure = 1;
}

void repro_reasm_release(struct repro_reasm *r)
{
    while (r->lru_head != NULL) {
        struct repro_tcp_conn *c = r->lru_head;
        unlink_conn(r, c);
        free_conn(r, c);
    }
    repro_budget_give(r->table, buckets_cost(r->n_buckets));
    repro_free(r->buckets);
    r->buckets = NULL;
}

static void touch(struct repro_reasm *r, struct repro_tcp_conn *c)
{
    if (r->lru_tail == c)
        return;
    lru_unlink(r, c);
    lru_append(r, c);
}

static void grow_table(struct repro_reasm *r)
{
    size_t nb = r->n_buckets * 2, i;
    struct repro_tcp_conn **b;

    /* Without room or memory, keep the smaller table: slower, still
     * correct. */
    if (!has_room(r->table, buckets_cost(nb)))
        return;
    b = repro_calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    charge(r->table, buckets_cost(nb));
    repro_budget_give(r->table, buckets_cost(r->n_buckets));
    for (i = 0; i < r->n_buckets; i++) {
        struct repro_tcp_conn *c = r->buckets[i], *n;
        for (; c != NULL; c = n) {
            n = c->hnext;
            c->hnext = b[c->hash & (nb - 1)];
            b[c->hash & (nb - 1)] = c;
        }
    }
    repro_free(r->buckets);
    r->buckets = b;
    r->n_buckets = nb;
}

/* Finds the connection of pkt; *dir is the packet's direction in it. */
static struct repro_tcp_conn *lookup(struct repro_reasm *r, const struct repro_pkt *pkt,
                                     uint32_t hash, int *dir)
{
    size_t alen = pkt->family == 6 ? 16 : 4;
    struct repro_tcp_conn *c = r->buckets[hash & (r->n_buckets - 1)];

    for (; c != NULL; c = c->hnext) {
        if (c->hash != hash || c->family != pkt->family)
            continue;
        if (c->port[0] == pkt->sport && c->port[1] == pkt->dport &&
            memcmp(c->addr[0], pkt->src, alen) == 0 && memcmp(c->addr[1], pkt->dst, alen) == 0) {
            *dir = 0;
            return c;
        }
        if (c->port[1] == pkt->sport && c->port[0] == pkt->dport &&
            memcmp(c->addr[1], pkt->src, alen) == 0 && memcmp(c->addr[0], pkt->dst, alen) == 0) {
            *dir = 1;
            return c;
        }
    }
    return NULL;
}

/* ack: the ACK number the segment carrying these bytes had, -1 when it had
 * none; kept in the half for the data callback (pairing evidence). */
static int deliver(struct repro_reasm *r, struct repro_tcp_conn *c, int d, const uint8_t *p,
                   size_t len, int64_t ts, int64_t ack)
{
    c->half[d].seg_ack_known = ack >= 0;
    c->half[d].seg_ack = ack >= 0 ? (uint32_t)ack : 0;
    c->half[d].next_seq += (uint32_t)len;
    c->half[d].bytes += len;
    return r->cb.data ? r->cb.data(r->cb.ctx, c, d, p, len, ts) : 0;
}

static int declare_gap(struct repro_reasm *r, struct repro_tcp_conn *c, int d, uint32_t upto,
                       int64_t ts)
{
    struct repro_tcp_half *h = &c->half[d];
    uint32_t n = upto - h->next_seq;

    if (!SEQ_GT(upto, h->next_seq))
        return 0;
    h->next_seq = upto;
    h->gap_bytes += n;
    r->stats.gaps++;
    r->stats.gap_bytes += n;
    return r->cb.gap ? r->cb.gap(r->cb.ctx, c, d, n, ts) : 0;
}

/* Delivers queued segments that have become contiguous, then the FIN. */
static int drain(struct repro_reasm *r, struct repro_tcp_conn *c, int d, int64_t ts)
{
    struct repro_tcp_half *h = &c->half[d];
    int rc = 0;

    while (rc == 0 && h->ooo != NULL && SEQ_LEQ(h->ooo->seq, h->next_seq)) {
        struct repro_tcp_seg *s = h->ooo;
        uint32_t skip = h->next_seq - s->seq;
        h->ooo = s->next;
        h->ooo_bytes -= s->len;
        if (skip < s->len)
            rc = deliver(r, c, d, s->data + skip, s->len - skip, s->ts_us, s->ack);
        repro_budget_give(r->budget, REPRO__SEG_COST(s->len));
        repro_free(s);
    }
    if (rc == 0 && h->fin_seen && !h->fin_done && SEQ_GEQ(h->next_seq, h->fin_seq)) {
        h->fin_done = 1;
        if (r->cb.fin)
            rc = r->cb.fin(r->cb.ctx, c, d, ts);
    }
    return rc;
}

/* Skips the hole before the first queued segment and drains. */
static int skip_hole(struct repro_reasm *r, struct repro_tcp_conn *c, int d, int64_t ts)
{
    struct repro_tcp_half *h = &c->half[d];
    int rc;
    if (h->ooo == NULL)
        return 0;
    rc = declare_gap(r, c, d, h->ooo->seq, ts);
    return rc ? rc : drain(r, c, d, ts);
}

/* The peer acknowledged the FIN of direction d: whatever is still missing
 * before it was received, so the capture lost it. */
static int fin_acked(struct repro_reasm *r, struct repro_tcp_conn *c, int d, int64_t ts)
{
    struct repro_tcp_half *h = &c->half[d];
    int rc = 0;

    if (!h->fin_seen || h->fin_done || !h->ack_known || !SEQ_GT(h->max_ack, h->fin_seq))
        return 0;
    while (rc == 0 && h->ooo != NULL)
        rc = skip_hole(r, c, d, ts);
    if (rc == 0)
        rc = declare_gap(r, c, d, h->fin_seq, ts);
    return rc ? rc : drain(r, c, d, ts);
}

/* Queues [seq, seq+len) where it is not already covered (first wins). */
static int queue_ooo(struct repro_reasm *r, struct repro_tcp_conn *c, int d, uint32_t seq,
                     const uint8_t *p, uint32_t len, int64_t ts, int64_t ack)
{
    struct repro_tcp_half *h = &c->half[d];
    struct repro_tcp_seg **pp = &h->ooo;
    uint32_t end = seq + len;

    while (SEQ_LT(seq, end)) {
        struct repro_tcp_seg *s;
        uint32_t piece_end = end, n;

        while (*pp != NULL && SEQ_LEQ((*pp)->seq + (*pp)->len, seq))
            pp = &(*pp)->next;
        if (*pp != NULL && SEQ_LEQ((*pp)->seq, seq)) {
            uint32_t covered = (*pp)->seq + (*pp)->len - seq;
            r->stats.overlap_bytes += SEQ_LT(end, seq + covered) ? end - seq : covered;
            p += covered;
            seq += covered;
            continue;
        }
        if (*pp != NULL && SEQ_LT((*pp)->seq, piece_end)) {
            r->stats.overlap_bytes += piece_end - (*pp)->seq;
            piece_end = (*pp)->seq;
        }
        n = piece_end - seq;
        if (h->ooo_bytes + n > r->max_stream_ooo ||
            !repro_budget_take(r->budget, REPRO__SEG_COST(n))) {
            /* Over a cap: give up on the oldest hole to make room, then
             * find this piece's place again (the queue's head changed). */
            int rc;
            if (h->ooo == NULL || SEQ_LEQ(seq, h->ooo->seq)) {
                r->stats.dropped_ooo_bytes += n;
                return 0;
            }
            rc = skip_hole(r, c, d, ts);
            if (rc)
                return rc;
            if (SEQ_GEQ(h->next_seq, seq))
                return 0; /* the hole moved past this piece; caller re-delivers */
            pp = &h->ooo;
            continue;
        }
        s = repro_malloc(sizeof *s + n);
        if (s == NULL) {
            repro_budget_give(r->budget, REPRO__SEG_COST(n));
            r->stats.dropped_ooo_bytes += n;
            return 0;
        }
        s->seq = seq;
        s->len = n;
        s->ts_us = ts;
        s->ack = ack;
        memcpy(s->data, p, n);
        s->next = *pp;
        *pp = s;
        h->ooo_bytes += n;
        pp = &s->next;
        p += n;
        seq += n;
    }
    return 0;
}

static int segment_data(struct repro_reasm *r, struct repro_tcp_conn *c, int d, uint32_t seq,
                        const uint8_t *p, uint32_t len, int64_t ts, int64_t ack)
{
    struct repro_tcp_half *h = &c->half[d];
    int rc;

    if (!h->seq_known) {
        h->seq_known = 1;
        h->next_seq = seq;
    }
    if (SEQ_LT(seq, h->next_seq)) {
        uint32_t old = h->next_seq - seq;
        if (old >= len) {
            r->stats.retransmitted_bytes += len;
            return 0;
        }
        r->stats.overlap_bytes += old;
        p += old;
        len -= old;
        seq += old;
    }
    while (seq == h->next_seq) {
        /* In order. Queued bytes it covers were seen first and win: deliver
         * up to the first queued segment, drain, then go on past it. */
        uint32_t n = len, old;
        if (h->ooo != NULL && SEQ_GT(h->ooo->seq, seq) && SEQ_LT(h->ooo->seq, seq + len))
            n = h->ooo->seq - seq;
        rc = deliver(r, c, d, p, n, ts, ack);
        if (rc == 0)
            rc = drain(r, c, d, ts);
        if (rc != 0 || n == len)
            return rc;
        p += n;
        len -= n;
        seq += n;
        old = h->next_seq - seq;
        if (old >= len) {
            r->stats.overlap_bytes += len;
            return 0;
        }
        r->stats.overlap_bytes += old;
        p += old;
        len -= old;
        seq += old;
    }
    if ((uint64_t)(uint32_t)(seq - h->next_seq) + len > MAX_AHEAD) {
        r->stats.dropped_ooo_bytes += len;
        return 0;
    }
    rc = queue_ooo(r, c, d, seq, p, len, ts, ack);
    if (rc == 0 && SEQ_GEQ(h->next_seq, seq) && SEQ_LT(h->next_seq, seq + len))
        return segment_data(r, c, d, h->next_seq, p + (h->next_seq - seq),
                            len - (h->next_seq - seq), ts, ack);
    return rc;
}

static int close_conn(struct repro_reasm *r, struct repro_tcp_conn *c, int reason, int64_t ts)
{
    int d, rc = 0;

    /* Whatever is still missing is a gap: up to the queued data, the FIN,
     * or the highest acknowledged byte. */
    for (d = 0; d < 2 && rc == 0; d++) {
        struct repro_tcp_half *h = &c->half[d];
        while (rc == 0 && h->ooo != NULL)
            rc = skip_hole(r, c, d, ts);
        if (rc == 0 && h->seq_known && h->fin_seen && !h->fin_done) {
            rc = declare_gap(r, c, d, h->fin_seq, ts);
            if (rc == 0)
                rc = drain(r, c, d, ts);
        } else if (rc == 0 && h->seq_known && h->ack_known && !h->fin_done &&
                   SEQ_GT(h->max_ack, h->next_seq)) {
            rc = declare_gap(r, c, d, h->max_ack, ts);
        }
    }
    if (rc == 0 && r->cb.close)
        rc = r->cb.close(r->cb.ctx, c, reason, ts);
    unlink_conn(r, c);
    free_conn(r, c);
    return rc;
}

int repro_reasm_flush(struct repro_reasm *r, int reason, int64_t ts_us)
{
    int rc = 0;
    while (rc == 0 && r->lru_head != NULL)
        rc = close_conn(r, r->lru_head, reason, ts_us);
    return rc;
}

/* The connection to evict from a full table, other than keep: the oldest
 * that never carried payload (a SYN flood then evicts itself, not the
 * established connections), else the least recently active. */
static struct repro_tcp_conn *table_victim(struct repro_reasm *r,
                                           const struct repro_tcp_conn *keep)
{
    struct repro_tcp_conn *v = r->list[REPRO__LIST_BARE].head;

    if (v != NULL && v == keep)
        v = v->link[REPRO__LIST_BARE].next;
    if (v != NULL)
        return v;
    v = r->lru_head;
    return v != NULL && v == keep ? v->lnext : v;
}

/* Closes connections (reason evicted; table_victim() chooses) until there
 * are fewer than max_conns and the table has need bytes free. */
static int make_table_room(struct repro_reasm *r, const struct repro_tcp_conn *keep,
                           size_t max_conns, size_t need, int64_t ts)
{
    int rc = 0;
    while (rc == 0 && (r->n_conns >= max_conns || !has_room(r->table, need))) {
        struct repro_tcp_conn *v = table_victim(r, keep);
        if (v == NULL)
            break;
        r->stats.evicted++;
        rc = close_conn(r, v, REPRO_END_EVICTED, ts);
    }
    return rc;
}

/* Closes the least recently active connections holding bytes but keep
 * (reason memory) until the held budget has need bytes free: new traffic
 * is stored rather than starved by connections that went quiet holding
 * part of a message. */
static int make_held_room(struct repro_reasm *r, const struct repro_tcp_conn *keep, size_t need,
                          int64_t ts)
{
    int rc = 0;
    while (rc == 0 && !has_room(r->budget, need)) {
        struct repro_tcp_conn *v = r->list[REPRO__LIST_HELD].head;
        size_t before = r->budget->used;
        if (v != NULL && v == keep)
            v = v->link[REPRO__LIST_HELD].next;
        if (v == NULL)
            break;
        r->stats.evicted_pressure++;
        rc = close_conn(r, v, REPRO_END_MEMORY, ts);
        if (before > r->budget->used)
            r->stats.evicted_pressure_bytes += before - r->budget->used;
    }
    return rc;
}

static struct repro_tcp_conn *create(struct repro_reasm *r, const struct repro_pkt *pkt,
                                     uint32_t hash, int *dir, int *rc)
{
    struct repro_tcp_conn *c;
    size_t alen = pkt->family == 6 ? 16 : 4;
    /* A SYN-ACK's sender is the server: make direction 0 the client's. */
    int flip = (pkt->tcp_flags & (REPRO_TCP_SYN | REPRO_TCP_ACK)) == (REPRO_TCP_SYN | REPRO_TCP_ACK);

    *rc = make_table_room(r, NULL, r->max_connections, r->conn_reserve, pkt->ts_us);
    if (*rc)
        return NULL;
    c = repro_calloc(1, sizeof *c);
    if (c == NULL) {
        r->stats.dropped_alloc_packets++;
        return NULL;
    }
    charge(r->table, sizeof *c + REPRO__ALLOC_OVERHEAD);
    c->id = r->next_id++;
    c->family = pkt->family;
    memcpy(c->addr[flip], pkt->src, alen);
    memcpy(c->addr[!flip], pkt->dst, alen);
    c->port[flip] = pkt->sport;
    c->port[!flip] = pkt->dport;
    c->syn_dir = -1;
    c->first_us = c->last_us = pkt->ts_us;
    c->hash = hash;
    c->hnext = r->buckets[hash & (r->n_buckets - 1)];
    r->buckets[hash & (r->n_buckets - 1)] = c;
    lru_append(r, c);
    list_append(r, c, REPRO__LIST_BARE);
    r->n_conns++;
    r->stats.connections++;
    *dir = flip;
    if (r->n_conns > r->n_buckets)
        grow_table(r);
    if (r->cb.open)
        *rc = r->cb.open(r->cb.ctx, c);
    return c;
}

int repro_reasm_expire(struct repro_reasm *r, int64_t now)
{
    int rc = 0;
    while (rc == 0 && r->lru_head != NULL && r->idle_timeout_us > 0 &&
           now - r->lru_head->last_us > r->idle_timeout_us)
        rc = close_conn(r, r->lru_head, REPRO_END_TIMEOUT, now);
    return rc;
}

static int packet(struct repro_reasm *r, const struct repro_pkt *pkt)
{
    uint32_t hash = hash_tuple(pkt->family, pkt->src, pkt->sport, pkt->dst, pkt->dport);
    int dir = 0, rc = repro_reasm_expire(r, pkt->ts_us);
    struct repro_tcp_conn *c;
    struct repro_tcp_half *h, *peer;
    uint8_t fl = pkt->tcp_flags;

    if (rc)
        return rc;
    c = lookup(r, pkt, hash, &dir);
    if (c != NULL && (fl & REPRO_TCP_SYN) && !(fl & REPRO_TCP_ACK) && c->half[dir].seq_known &&
        pkt->seq + 1 !=
            c->half[dir].next_seq - (uint32_t)(c->half[dir].bytes + c->half[dir].gap_bytes)) {
        /* A new SYN with another ISN on a known tuple: port reuse. (The
         * stream started at next_seq less what was delivered or declared
         * missing; a late copy of the first SYN matches that.) */
        rc = close_conn(r, c, REPRO_END_FIN, pkt->ts_us);
        if (rc)
            return rc;
        c = NULL;
    }
    if (c == NULL) {
        if (!(fl & REPRO_TCP_SYN) && pkt->payload_len == 0) {
            r->stats.ignored_packets++;
            return 0;
        }
        c = create(r, pkt, hash, &dir, &rc);
        if (c == NULL || rc != 0)
            return rc;
        c->mid_stream = !(fl & REPRO_TCP_SYN);
    }
    r->cur = c;
    c->last_us = pkt->ts_us;
    touch(r, c);
    if (pkt->payload_len > 0) {
        list_remove(r, c, REPRO__LIST_BARE);
        /* Room first, taken from the least recently active connections:
         * for the callbacks' state of a connection's first payload, then
         * for the bytes this packet may make it hold. */
        if (c->user == NULL)
            rc = make_table_room(r, c, SIZE_MAX, r->user_reserve, pkt->ts_us);
        if (rc == 0 && r->pressure && r->budget != NULL)
            rc = make_held_room(r, c, REPRO__SEG_COST(pkt->payload_len) + r->room_slack,
                                pkt->ts_us);
        if (rc)
            return rc;
    }
    h = &c->half[dir];
    peer = &c->half[!dir];

    if (fl & REPRO_TCP_SYN) {
        if (!(fl & REPRO_TCP_ACK))
            c->syn_dir = dir;
        /* Not with data queued: it must stay after next_seq. */
        if (!h->seq_known || (h->bytes == 0 && h->ooo == NULL)) {
            h->seq_known = 1;
            h->next_seq = pkt->seq + 1;
        }
    }
    /* The peer acknowledged bytes of this direction's opposite: if they lie
     * beyond a hole, the hole will never be filled. This comes before the
     * segment's own payload: the sender had received those bytes before it
     * sent this one, so delivering them first keeps cause before effect (a
     * request held behind a lost segment reaches the pairing before the
     * response that answers it). */
    if ((fl & REPRO_TCP_ACK) && peer->seq_known) {
        if (!peer->ack_known || SEQ_GT(pkt->ack, peer->max_ack)) {
            peer->max_ack = pkt->ack;
            peer->ack_known = 1;
        }
        while (rc == 0 && peer->ooo != NULL && SEQ_GEQ(pkt->ack, peer->ooo->seq + 1))
            rc = skip_hole(r, c, !dir, pkt->ts_us);
        if (rc == 0)
            rc = fin_acked(r, c, !dir, pkt->ts_us);
        if (rc)
            return rc;
    }
    if (pkt->payload_len > 0) {
        uint32_t seq = pkt->seq + ((fl & REPRO_TCP_SYN) ? 1 : 0);
        rc = segment_data(r, c, dir, seq, pkt->payload, pkt->payload_len, pkt->ts_us,
                          (fl & REPRO_TCP_ACK) ? (int64_t)pkt->ack : -1);
        if (rc)
            return rc;
    }
    if ((fl & REPRO_TCP_FIN) && !h->fin_seen) {
        h->fin_seen = 1;
        h->fin_seq = pkt->seq + ((fl & REPRO_TCP_SYN) ? 1 : 0) + pkt->seg_len;
        if (!h->seq_known) {
            h->seq_known = 1;
            h->next_seq = h->fin_seq;
        }
        rc = drain(r, c, dir, pkt->ts_us);
        if (rc == 0)
            rc = fin_acked(r, c, dir, pkt->ts_us);
        if (rc)
            return rc;
    }
    if (fl & REPRO_TCP_RST)
        return close_conn(r, c, REPRO_END_RST, pkt->ts_us);
    if (c->half[0].fin_done && c->half[1].fin_done)
        return close_conn(r, c, REPRO_END_FIN, pkt->ts_us);
    return 0;
}

int repro_reasm_packet(struct repro_reasm *r, const struct repro_pkt *pkt)
{
    int rc;

    r->cur = NULL;
    rc = packet(r, pkt);
    /* The packet's connection (unless it was closed) may hold bytes now,
     * or none any more. */
    if (r->cur != NULL)
        note_holding(r, r->cur);
    r->cur = NULL;
    return rc;
}
