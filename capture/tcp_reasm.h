/*
 * TCP stream reassembly, private to the capture component (tests include it
 * directly). See tcp_reasm.c for the policies.
 */
#ifndef REPRO_CAPTURE_TCP_REASM_H
#define REPRO_CAPTURE_TCP_REASM_H

#include "repro/capture.h"

struct repro_tcp_seg {
    struct repro_tcp_seg *next;
    uint32_t seq;
    uint32_t len;
    int64_t ts_us;
    int64_t ack;      /* the segment's ACK number, -1 when it had none */
    uint8_t data[];
};

/*
 * One direction. Invariants: the out-of-order list is sorted by sequence
 * number, its segments do not overlap each other, every queued segment
 * starts after next_seq, and ooo_bytes is the sum of their lengths.
 */
struct repro_tcp_half {
    uint32_t next_seq;   /* next byte to deliver */
    uint32_t fin_seq;    /* sequence number of the FIN, when fin_seen */
    uint32_t max_ack;    /* highest ACK the peer sent for this direction */
    uint8_t seq_known, fin_seen, fin_done, ack_known;
    /* The ACK number carried by the segment whose bytes the data callback
     * is handed right now (valid during the callback when seg_ack_known):
     * what this side had received from the peer when it sent them. */
    uint32_t seg_ack;
    uint8_t seg_ack_known;
    struct repro_tcp_seg *ooo;
    size_t ooo_bytes;
    uint64_t bytes;      /* delivered */
    uint64_t gap_bytes;  /* declared missing */
};

struct repro_tcp_conn {
    uint64_t id;           /* 1-based, in order of creation */
    uint8_t family;
    uint8_t addr[2][16];   /* addr[d] sends direction d */
    uint16_t port[2];
    int syn_dir;           /* direction of the SYN, -1 if not seen */
    int mid_stream;        /* no SYN or SYN-ACK seen: sequence picked up mid-flow */
    struct repro_tcp_half half[2];
    int64_t first_us, last_us;
    void *user;            /* owned by the callbacks */
    uint32_t hash;
    struct repro_tcp_conn *hnext, *lprev, *lnext;
};

/* Callbacks; a non-zero return stops processing and is returned. The conn
 * pointer is valid until close() returns. */
struct repro_reasm_cb {
    void *ctx;
    int (*open)(void *ctx, struct repro_tcp_conn *c);
    int (*data)(void *ctx, struct repro_tcp_conn *c, int dir, const uint8_t *p, size_t len,
                int64_t ts_us);
    int (*gap)(void *ctx, struct repro_tcp_conn *c, int dir, uint64_t len, int64_t ts_us);
    int (*fin)(void *ctx, struct repro_tcp_conn *c, int dir, int64_t ts_us);
    int (*close)(void *ctx, struct repro_tcp_conn *c, int reason, int64_t ts_us);
};

struct repro_reasm_stats {
    uint64_t connections, retransmitted_bytes, overlap_bytes, gaps, gap_bytes;
    uint64_t dropped_ooo_bytes, evicted, ignored_packets;
};

struct repro_reasm {
    struct repro_reasm_cb cb;
    struct repro_tcp_conn **buckets;
    size_t n_buckets, n_conns;
    struct repro_tcp_conn *lru_head, *lru_tail; /* least recently active first */
    uint64_t next_id;
    size_t max_stream_ooo, max_connections;
    int64_t idle_timeout_us;
    struct repro_budget *budget; /* borrowed, optional */
    struct repro_reasm_stats stats;
};

int repro_reasm_init(struct repro_reasm *r, const struct repro_reasm_cb *cb, size_t max_stream_ooo,
                     size_t max_connections, int64_t idle_timeout_us, struct repro_budget *budget);
/* Closes nothing: call repro_reasm_flush() first to report open streams. */
void repro_reasm_release(struct repro_reasm *r);
/* Processes one decoded segment. */
int repro_reasm_packet(struct repro_reasm *r, const struct repro_pkt *pkt);
/* Closes every open connection with the given reason (oldest first). */
int repro_reasm_flush(struct repro_reasm *r, int reason, int64_t ts_us);

#endif
