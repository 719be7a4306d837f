/*
 * TCP stream reassembly, private to the capture component (tests include it
 * directly). See tcp_reasm.c for the policies.
 */
#ifndef REPRO_CAPTURE_TCP_REASM_H
#define REPRO_CAPTURE_TCP_REASM_H

#include "repro/capture.h"

/* What the allocator adds to every allocation, as the budgets count it
 * (glibc: an 8-byte header, sizes rounded up to 16). */
#define REPRO__ALLOC_OVERHEAD 16

struct repro_tcp_seg {
    struct repro_tcp_seg *next;
    uint32_t seq;
    uint32_t len;
    int64_t ts_us;
    int64_t ack;      /* the segment's ACK number, -1 when it had none */
    uint8_t data[];
};
/* What a queued segment of n bytes is charged to the budget: its bytes,
 * its header and the allocator's overhead (a flood of one-byte segments
 * costs what it really holds). */
#define REPRO__SEG_COST(n) (sizeof(struct repro_tcp_seg) + (size_t)(n) + REPRO__ALLOC_OVERHEAD)

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

/* Two lists a connection may be on besides the activity list, each least
 * recently active (or created) first. */
enum {
    REPRO__LIST_HELD = 0, /* holding bytes: closed first when held bytes run out */
    REPRO__LIST_BARE,     /* no payload seen yet (half-open, or idle from the
                             start): evicted first when the table is full */
    REPRO__LIST_COUNT
};
struct repro_tcp_conn;
struct repro_tcp_link {
    struct repro_tcp_conn *prev, *next;
    uint8_t on;
};
struct repro_tcp_list {
    struct repro_tcp_conn *head, *tail;
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
    struct repro_tcp_link link[REPRO__LIST_COUNT];
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
    /* Optional: 1 when the callbacks hold bytes for c (charged to the
     * budget), so that c may be closed to free them under pressure. */
    int (*holds)(void *ctx, const struct repro_tcp_conn *c);
};

struct repro_reasm_stats {
    uint64_t connections, retransmitted_bytes, overlap_bytes, gaps, gap_bytes;
    uint64_t dropped_ooo_bytes, evicted, ignored_packets;
    uint64_t evicted_pressure, evicted_pressure_bytes; /* closed to free held bytes */
    uint64_t dropped_alloc_packets; /* a new connection could not be allocated */
};

struct repro_reasm {
    struct repro_reasm_cb cb;
    struct repro_tcp_conn **buckets;
    size_t n_buckets, n_conns;
    struct repro_tcp_conn *lru_head, *lru_tail; /* least recently active first */
    uint64_t next_id;
    size_t max_stream_ooo, max_connections;
    int64_t idle_timeout_us;
    struct repro_budget *budget; /* borrowed, optional: held bytes */
    /* Pressure (repro_reasm_set_memory()): the table's budget (borrowed,
     * optional), what a new connection may need of it with its callbacks'
     * state, what the callbacks allocate at a connection's first payload,
     * and the held bytes a payload packet may need beyond its own length. */
    struct repro_budget *table;
    size_t conn_reserve, user_reserve, room_slack;
    int pressure; /* repro_reasm_set_memory() was called */
    struct repro_tcp_list list[REPRO__LIST_COUNT];
    struct repro_tcp_conn *cur; /* the packet's connection while it is processed */
    struct repro_reasm_stats stats;
};

int repro_reasm_init(struct repro_reasm *r, const struct repro_reasm_cb *cb, size_t max_stream_ooo,
                     size_t max_connections, int64_t idle_timeout_us, struct repro_budget *budget);
/*
 * Bounds memory (optional; without it only max_connections and the held
 * budget's refusals bound it). The table is charged for every connection
 * and the hash table; before a connection is created the least recently
 * active ones are closed (reason evicted) until conn_reserve bytes are
 * free, and before a payload reaches a connection without callback state
 * until user_reserve are; connections that never carried payload (a SYN
 * flood's half-open ones) go first, then the least recently active. Before a payload packet is processed, the least
 * recently active connections holding bytes (its own excepted) are closed
 * (reason memory) until the held budget has its length plus room_slack.
 * table is borrowed until repro_reasm_release().
 */
void repro_reasm_set_memory(struct repro_reasm *r, struct repro_budget *table, size_t conn_reserve,
                            size_t user_reserve, size_t room_slack);
/* Closes nothing: call repro_reasm_flush() first to report open streams. */
void repro_reasm_release(struct repro_reasm *r);
/* Processes one decoded segment. */
int repro_reasm_packet(struct repro_reasm *r, const struct repro_pkt *pkt);
/* Closes every open connection with the given reason (oldest first). */
int repro_reasm_flush(struct repro_reasm *r, int reason, int64_t ts_us);
/* Closes the connections idle for longer than idle_timeout_us at now_us
 * (reason timeout), oldest first. */
int repro_reasm_expire(struct repro_reasm *r, int64_t now_us);

#endif
