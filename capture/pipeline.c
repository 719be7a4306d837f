/*
 * A capture session: decodes frames, feeds the reassembler (whose callbacks
 * run HTTP over each connection, http_conn.c) and keeps the counters the
 * summary shows. Bad packets are counted and logged with their record
 * number, never fatal. It also owns the session's two memory budgets (held
 * bytes, connection table) and how a memory size is split between them.
 */
#include "capture_int.h"

#include <stdio.h>
#include <string.h>

static const char *const xflag_names[] = {"gap",      "truncated", "unanswered",
                                          "no_request", "malformed", "redacted",
                                          "body_capped", "tunnel",   "interim",
                                          "pairing_uncertain", "body_dropped", "decoded"};

const char *repro_xflag_name(unsigned bit)
{
    unsigned i;
    for (i = 0; i < sizeof xflag_names / sizeof *xflag_names; i++)
        if (bit == (1u << i))
            return xflag_names[i];
    return NULL;
}

const char *repro_conn_end_name(int reason)
{
    static const char *const names[] = {"fin", "rst", "timeout", "eof", "evicted", "memory"};
    if (reason < 0 || reason >= (int)(sizeof names / sizeof *names))
        return NULL;
    return names[reason];
}

/* The least a connection costs the table: its reassembler entry (before
 * any payload) and its share of the hash table (at most two buckets). */
static size_t conn_min_cost(void)
{
    return sizeof(struct repro_tcp_conn) + REPRO__ALLOC_OVERHEAD + 2 * sizeof(void *);
}

void repro_capture_limits_default(struct repro_capture_limits *l)
{
    repro_http_limits_default(&l->http);
    l->max_pipeline = 64;
    l->idle_timeout_us = INT64_C(300) * 1000000;
    repro_capture_limits_from_memory(l, REPRO_CAPTURE_DEFAULT_MEMORY);
}

int repro_capture_limits_from_memory(struct repro_capture_limits *l, size_t bytes)
{
    if (bytes < REPRO_CAPTURE_MIN_MEMORY)
        return REPRO_E_INVAL;
    /* 3/8 held bytes, 3/8 table, 1/4 headroom: message buffers grow by
     * doubling, so the heap behind n held bytes is up to about 2n, and
     * redaction copies a message while storing it. */
    l->max_total = bytes / 8 * 3;
    l->max_table = bytes / 8 * 3;
    l->max_stream_ooo = l->max_total / 64;
    if (l->max_stream_ooo > 1024 * 1024)
        l->max_stream_ooo = 1024 * 1024;
    if (l->max_stream_ooo < 64 * 1024)
        l->max_stream_ooo = 64 * 1024;
    l->max_connections = l->max_table / conn_min_cost();
    return REPRO_OK;
}

struct repro_capture *repro_capture_new(const struct repro_capture_sink *sink,
                                        const struct repro_redact_rules *rules,
                                        const struct repro_capture_limits *limits)
{
    struct repro_capture *cap = repro_calloc(1, sizeof *cap);
    struct repro_reasm_cb cb = repro__http_conn_cb;

    if (cap == NULL)
        return NULL;
    if (sink)
        cap->sink = *sink;
    if (rules)
        cap->rules = *rules;
    repro__redact_filter_init(&cap->name_filter, &cap->rules);
    if (limits)
        cap->limits = *limits;
    else
        repro_capture_limits_default(&cap->limits);
    if (cap->limits.max_pipeline == 0)
        cap->limits.max_pipeline = 1;
    cap->budget.max = cap->limits.max_total;
    cap->table.max = cap->limits.max_table ? cap->limits.max_table : SIZE_MAX;
    repro_capture_set_source(cap, NULL);
    cb.ctx = cap;
    if (repro_reasm_init(&cap->reasm, &cb, cap->limits.max_stream_ooo,
                         cap->limits.max_connections, cap->limits.idle_timeout_us,
                         &cap->budget) != REPRO_OK) {
        repro_free(cap);
        return NULL;
    }
    repro_reasm_set_memory(&cap->reasm, &cap->table,
                           sizeof(struct repro_tcp_conn) + REPRO__ALLOC_OVERHEAD +
                               repro__http_conn_cost(),
                           repro__http_conn_cost(), repro__http_room_slack());
    return cap;
}

int repro__capture_may_warn(struct repro_capture *cap)
{
    if (cap->warnings < REPRO_CAPTURE_MAX_WARNINGS)
        return ++cap->warnings, 1;
    if (cap->warnings++ == REPRO_CAPTURE_MAX_WARNINGS)
        repro_log(REPRO_LOG_WARN, "capture", "%s: more input problems; they are counted in the summary",
                  cap->source);
    return 0;
}

void repro_capture_set_source(struct repro_capture *cap, const char *name)
{
    snprintf(cap->source, sizeof cap->source, "%s", name ? name : "input");
}

void repro_capture_free(struct repro_capture *cap)
{
    if (cap == NULL)
        return;
    /* Connections still open are dropped without reaching the sink: call
     * repro_capture_finish() first to store them. */
    cap->sink.conn_open = NULL;
    cap->sink.exchange = NULL;
    cap->sink.conn_close = NULL;
    repro_reasm_flush(&cap->reasm, REPRO_END_EOF, cap->last_ts_us);
    repro_reasm_release(&cap->reasm);
    while (cap->n_spare > 0)
        repro_buf_release(&cap->spare[--cap->n_spare]);
    repro_free(cap);
}

static void sync_stats(struct repro_capture *cap)
{
    const struct repro_reasm_stats *rs = &cap->reasm.stats;
    struct repro_capture_stats *st = &cap->stats;

    st->retransmitted_bytes = rs->retransmitted_bytes;
    st->overlap_bytes = rs->overlap_bytes;
    st->gaps = rs->gaps;
    st->gap_bytes = rs->gap_bytes;
    st->dropped_ooo_bytes = rs->dropped_ooo_bytes;
    st->dropped_connections = rs->evicted;
    st->evicted_pressure_connections = rs->evicted_pressure;
    st->evicted_pressure_bytes = rs->evicted_pressure_bytes;
    st->dropped_alloc_packets = rs->dropped_alloc_packets + cap->alloc_dropped;
}

static int sink_failed(struct repro_capture *cap, int rc, struct repro_error *err)
{
    if (rc == 0)
        return REPRO_OK;
    cap->failed = 1;
    if (err != NULL && err->code == 0)
        repro_error_set(err, rc < 0 ? rc : REPRO_E_IO, "capture stopped: the sink failed");
    return rc < 0 ? rc : REPRO_E_IO;
}

int repro_capture_packet(struct repro_capture *cap, int dlt, const uint8_t *p, size_t caplen,
                         int64_t ts_us, uint64_t record_no, struct repro_error *err)
{
    struct repro_pkt pkt;
    enum repro_skip_reason skip;
    const char *why;
    enum repro_decode_result r;

    if (cap->failed)
        return REPRO_E_INVAL;
    cap->stats.packets++;
    cap->stats.bytes += caplen;
    cap->last_ts_us = ts_us;
    r = repro_decode_packet(dlt, p, caplen, &pkt, &skip, &why);
    if (r == REPRO_DECODE_SKIP) {
        cap->stats.skipped[skip]++;
        return REPRO_OK;
    }
    if (r == REPRO_DECODE_MALFORMED) {
        char ex[48];
        cap->stats.malformed_packets++;
        cap->stats.errors++;
        if (repro__capture_may_warn(cap))
            repro_log(REPRO_LOG_WARN, "capture.decode", "%s record %llu: %s (%zu bytes: %s)",
                  cap->source, (unsigned long long)record_no, why, caplen,
                  repro_excerpt(ex, sizeof ex, p, caplen < 16 ? caplen : 16));
        return REPRO_OK;
    }
    cap->stats.tcp_packets++;
    pkt.ts_us = ts_us;
    cap->err = err;
    return sink_failed(cap, repro_reasm_packet(&cap->reasm, &pkt), err);
}

int repro_capture_finish(struct repro_capture *cap, struct repro_error *err)
{
    int rc;
    if (cap->failed)
        return REPRO_E_INVAL;
    cap->err = err;
    rc = repro_reasm_flush(&cap->reasm, REPRO_END_EOF, cap->last_ts_us);
    sync_stats(cap);
    return sink_failed(cap, rc, err);
}

int repro_capture_tick(struct repro_capture *cap, int64_t now_us, struct repro_error *err)
{
    if (cap->failed)
        return REPRO_E_INVAL;
    cap->err = err;
    /* Connections still open at the end close at the latest time known. */
    if (now_us > cap->last_ts_us)
        cap->last_ts_us = now_us;
    return sink_failed(cap, repro_reasm_expire(&cap->reasm, now_us), err);
}

size_t repro_capture_memory(const struct repro_capture *cap)
{
    return cap->budget.used + cap->table.used;
}

size_t repro_capture_open_streams(const struct repro_capture *cap)
{
    return cap->reasm.n_conns;
}

const struct repro_capture_stats *repro_capture_stats(const struct repro_capture *cap)
{
    sync_stats((struct repro_capture *)cap);
    return &cap->stats;
}

/* The summary's lines are laid out by hand (users and tests read them), so
 * a counter added to REPRO_CAPTURE_COUNTERS (capture.h) stops the build
 * here until it is placed in the summary (or left out on purpose) and this
 * count is raised. The stored counters follow the list by themselves. */
#define SUMMARY_COUNT_ONE(name, doc) +1
_Static_assert((0 REPRO_CAPTURE_COUNTERS(SUMMARY_COUNT_ONE)) == 30,
               "place the new capture counter in repro_capture_print_summary");
#undef SUMMARY_COUNT_ONE

void repro_capture_print_summary(const struct repro_capture *cap, FILE *f)
{
    const struct repro_capture_stats *st = repro_capture_stats(cap);
    unsigned bit;
    int any = 0;

    fprintf(f, "packets: %llu (%llu bytes), tcp %llu, skipped: not-ip %llu, not-tcp %llu, "
               "fragments %llu, other link types %llu, malformed %llu\n",
            (unsigned long long)st->packets, (unsigned long long)st->bytes,
            (unsigned long long)st->tcp_packets, (unsigned long long)st->skipped[REPRO_SKIP_NOT_IP],
            (unsigned long long)st->skipped[REPRO_SKIP_NOT_TCP],
            (unsigned long long)st->skipped[REPRO_SKIP_FRAGMENT],
            (unsigned long long)st->skipped[REPRO_SKIP_LINKTYPE],
            (unsigned long long)st->malformed_packets);
    fprintf(f, "connections: %llu (http %llu, other %llu: tls %llu, http/2 %llu)\n",
            (unsigned long long)st->connections, (unsigned long long)st->http_connections,
            (unsigned long long)st->non_http_connections, (unsigned long long)st->tls_connections,
            (unsigned long long)st->http2_connections);
    fprintf(f, "exchanges: %llu, complete %llu, incomplete %llu", (unsigned long long)st->exchanges,
            (unsigned long long)(st->exchanges - st->incomplete), (unsigned long long)st->incomplete);
    for (bit = 0; bit < REPRO_XF__BITS; bit++) {
        if (st->incomplete_by[bit] == 0)
            continue;
        fprintf(f, "%s%s %llu", any ? ", " : " (", repro_xflag_name(1u << bit),
                (unsigned long long)st->incomplete_by[bit]);
        any = 1;
    }
    fprintf(f, "%s, redacted %llu\n", any ? ")" : "", (unsigned long long)st->redacted);
    fprintf(f, "redaction: bodies decoded %llu, bodies not stored %llu; h2c upgrades %llu\n",
            (unsigned long long)st->bodies_decoded, (unsigned long long)st->bodies_dropped,
            (unsigned long long)st->h2c_upgrades);
    fprintf(f, "tcp: gaps %llu (%llu bytes), retransmitted %llu bytes, overlapping %llu bytes, "
               "resync skipped %llu bytes, tunnelled %llu bytes\n",
            (unsigned long long)st->gaps, (unsigned long long)st->gap_bytes,
            (unsigned long long)st->retransmitted_bytes, (unsigned long long)st->overlap_bytes,
            (unsigned long long)st->skipped_stream_bytes, (unsigned long long)st->tunnel_bytes);
    fprintf(f, "dropped by caps: out-of-order %llu bytes, message bodies %llu bytes, "
               "connections %llu, pipelined requests %llu\n",
            (unsigned long long)st->dropped_ooo_bytes, (unsigned long long)st->dropped_body_bytes,
            (unsigned long long)st->dropped_connections, (unsigned long long)st->dropped_pipeline);
    fprintf(f, "memory: connections closed to free held bytes %llu (%llu bytes), messages cut "
               "%llu, packets dropped for want of memory %llu\n",
            (unsigned long long)st->evicted_pressure_connections,
            (unsigned long long)st->evicted_pressure_bytes,
            (unsigned long long)st->capped_budget_messages,
            (unsigned long long)st->dropped_alloc_packets);
}
