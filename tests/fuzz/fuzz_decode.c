/*
 * Fuzz target for capture/decode.c, feeding what decodes into the TCP
 * reassembler (capture/tcp_reasm.c) under small caps and a budget.
 *
 * Input: byte 0 picks the link type (low 3 bits) and the mode (bit 7).
 *   mode 0: the rest is one frame.
 *   mode 1: the rest is a sequence of records [len][ts step][len bytes],
 *           one frame each (a short last record takes what is left).
 * Every frame is copied into a buffer of its exact size so that ASan sees
 * any over-read. Invariants are checked and abort() on violation:
 *   - a TCP payload lies inside the frame and payload_len <= seg_len;
 *   - the reassembler's out-of-order queues are sorted, disjoint, within
 *     their cap, and the budget's used bytes equal what they hold;
 *   - after flush every opened connection was closed once, and after
 *     release the budget is back to 0.
 */
#include <pcap/dlt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../capture/tcp_reasm.h"

#define SEQ_GT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) > 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_decode: %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const int dlts[8] = {DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_NULL,
                            DLT_LOOP,   DLT_RAW,       DLT_IPV4,       DLT_IPV6};

struct fuzz_ctx {
    uint64_t opened, closed;
};

static int on_open(void *ctx, struct repro_tcp_conn *c)
{
    struct fuzz_ctx *f = ctx;
    FUZZ_CHECK(c->family == 4 || c->family == 6);
    f->opened++;
    return 0;
}

static int on_data(void *ctx, struct repro_tcp_conn *c, int dir, const uint8_t *p, size_t len,
                   int64_t ts_us)
{
    volatile uint8_t sink = 0;
    size_t i;
    FUZZ_CHECK(dir == 0 || dir == 1);
    FUZZ_CHECK(p != NULL && len > 0);
    for (i = 0; i < len; i++) /* every delivered byte must be readable */
        sink ^= p[i];
    (void)sink;
    return 0;
}

static int on_gap(void *ctx, struct repro_tcp_conn *c, int dir, uint64_t len, int64_t ts_us)
{
    FUZZ_CHECK(dir == 0 || dir == 1);
    FUZZ_CHECK(len > 0 && len < ((uint64_t)1 << 32));
    return 0;
}

static int on_close(void *ctx, struct repro_tcp_conn *c, int reason, int64_t ts_us)
{
    struct fuzz_ctx *f = ctx;
    FUZZ_CHECK(reason >= REPRO_END_FIN && reason <= REPRO_END_EVICTED);
    f->closed++;
    return 0;
}

static void check_reasm(const struct repro_reasm *r)
{
    const struct repro_tcp_conn *c;
    size_t n = 0, held = 0;
    int d;

    for (c = r->lru_head; c != NULL; c = c->lnext) {
        n++;
        for (d = 0; d < 2; d++) {
            const struct repro_tcp_half *h = &c->half[d];
            const struct repro_tcp_seg *s;
            size_t sum = 0;
            for (s = h->ooo; s != NULL; s = s->next) {
                FUZZ_CHECK(s->len > 0);
                FUZZ_CHECK(SEQ_GT(s->seq, h->next_seq));
                FUZZ_CHECK(s->next == NULL || SEQ_LEQ(s->seq + s->len, s->next->seq));
                sum += s->len;
                held += REPRO__SEG_COST(s->len); /* charged with its header */
            }
            FUZZ_CHECK(sum == h->ooo_bytes);
            FUZZ_CHECK(sum <= r->max_stream_ooo);
        }
    }
    FUZZ_CHECK(n == r->n_conns && n <= r->max_connections);
    FUZZ_CHECK(r->budget->used <= r->budget->max);
    FUZZ_CHECK(r->budget->used == held);
}

/* Decodes one frame (copied to an exact-size buffer) and feeds a TCP result
 * to the reassembler. */
static void one_frame(struct repro_reasm *r, int dlt, const uint8_t *data, size_t len, int64_t ts)
{
    uint8_t *buf = malloc(len ? len : 1);
    struct repro_pkt pkt;
    enum repro_skip_reason skip;
    const char *why;
    enum repro_decode_result res;

    FUZZ_CHECK(buf != NULL);
    if (len)
        memcpy(buf, data, len);
    res = repro_decode_packet(dlt, buf, len, &pkt, &skip, &why);
    switch (res) {
    case REPRO_DECODE_TCP:
        FUZZ_CHECK(pkt.payload >= buf && pkt.payload <= buf + len);
        FUZZ_CHECK(pkt.payload_len <= (size_t)(buf + len - pkt.payload));
        FUZZ_CHECK(pkt.payload_len <= pkt.seg_len);
        FUZZ_CHECK(pkt.family == 4 || pkt.family == 6);
        pkt.ts_us = ts;
        FUZZ_CHECK(repro_reasm_packet(r, &pkt) == 0);
        check_reasm(r);
        break;
    case REPRO_DECODE_SKIP: FUZZ_CHECK(skip > REPRO_SKIP_NONE && skip < REPRO_SKIP__COUNT); break;
    case REPRO_DECODE_MALFORMED: FUZZ_CHECK(why != NULL); break;
    default: FUZZ_CHECK(!"unknown decode result");
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct repro_reasm_cb cb0 = {NULL, on_open, on_data, on_gap, NULL, on_close, NULL};
    struct repro_reasm_cb cb = cb0;
    struct fuzz_ctx ctx = {0, 0};
    struct repro_budget budget = {0, 256, 0};
    struct repro_reasm r;
    int dlt;
    int64_t ts = 0;

    if (size < 1)
        return 0;
    dlt = dlts[data[0] & 7];
    cb.ctx = &ctx;
    FUZZ_CHECK(repro_reasm_init(&r, &cb, 64, 3, 1000, &budget) == REPRO_OK);
    if (!(data[0] & 0x80)) {
        one_frame(&r, dlt, data + 1, size - 1, 0);
    } else {
        size_t off = 1;
        while (off + 2 <= size) {
            size_t len = data[off];
            ts += data[off + 1] * 10; /* up to 2550 us: past the idle timeout */
            off += 2;
            if (len > size - off)
                len = size - off;
            one_frame(&r, dlt, data + off, len, ts);
            off += len;
        }
    }
    FUZZ_CHECK(repro_reasm_flush(&r, REPRO_END_EOF, ts + 1) == 0);
    FUZZ_CHECK(r.n_conns == 0);
    FUZZ_CHECK(ctx.opened == ctx.closed);
    FUZZ_CHECK(budget.used == 0);
    repro_reasm_release(&r);
    FUZZ_CHECK(budget.used == 0);
    return 0;
}
