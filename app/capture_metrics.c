/*
 * app/capture_metrics: the live agent's figures in Prometheus text format
 * (docs/metrics.md lists every family). Runs on the metrics server's thread
 * for each scrape; it reads one consistent snapshot of the capture loop
 * (repro_app_live_snapshot, under its mutex), so it never touches the
 * session itself.
 */
#include "app/capture_metrics.h"

#include "app/metrics.h"

#include <string.h>

struct family_writer {
    struct repro_buf *b;
    int rc;
};

static void family(struct family_writer *w, const char *name, enum repro_metrics_type t,
                   const char *help)
{
    if (w->rc == 0)
        w->rc = repro_metrics_family(w->b, name, t, help);
}

static void counter(struct family_writer *w, const char *name, const char *reason, uint64_t v)
{
    struct repro_metrics_label l = {"reason", reason};
    if (w->rc == 0)
        w->rc = repro_metrics_counter(w->b, name, reason ? &l : NULL, reason ? 1 : 0, v);
}

static void gauge(struct family_writer *w, const char *name, double v)
{
    if (w->rc == 0)
        w->rc = repro_metrics_gauge(w->b, name, NULL, 0, v);
}

static void one_counter(struct family_writer *w, const char *name, const char *help, uint64_t v)
{
    family(w, name, REPRO_METRICS_COUNTER, help);
    counter(w, name, NULL, v);
}

static void one_gauge(struct family_writer *w, const char *name, const char *help, double v)
{
    family(w, name, REPRO_METRICS_GAUGE, help);
    gauge(w, name, v);
}

/* A counter of seconds from nanoseconds (a fraction, so written as a
 * plain sample under a counter's TYPE line). */
static void one_seconds_counter(struct family_writer *w, const char *name, const char *help,
                                uint64_t ns)
{
    family(w, name, REPRO_METRICS_COUNTER, help);
    gauge(w, name, (double)ns / 1e9);
}

int repro_app_live_render_metrics(const struct repro_app_live_stats *s, struct repro_buf *out)
{
    struct family_writer w = {out, 0};
    const struct repro_capture_stats *c = &s->capture;

    one_counter(&w, "repro_capture_received_packets_total",
                "Packets the kernel handed to repro.", s->reader.packets);
    one_counter(&w, "repro_capture_received_bytes_total", "Bytes of those packets.",
                s->reader.bytes);
    family(&w, "repro_capture_dropped_packets_total", REPRO_METRICS_COUNTER,
           "Packets lost before parsing, by reason: kernel (its buffer was full), interface, "
           "queue_full (parsing fell behind by the whole queue), alloc (out of memory).");
    counter(&w, "repro_capture_dropped_packets_total", "kernel", s->reader.kernel_drops);
    counter(&w, "repro_capture_dropped_packets_total", "interface", s->reader.iface_drops);
    counter(&w, "repro_capture_dropped_packets_total", "queue_full", s->reader.queue_drops);
    counter(&w, "repro_capture_dropped_packets_total", "alloc", c->dropped_alloc_packets);
    one_counter(&w, "repro_capture_parsed_packets_total", "Packets handed to the parser.",
                c->packets);
    one_counter(&w, "repro_capture_malformed_packets_total", "Frames that could not be decoded.",
                c->malformed_packets);
    one_counter(&w, "repro_capture_connections_total", "TCP connections seen.", c->connections);
    one_counter(&w, "repro_capture_exchanges_total",
                "Request/response pairs the parser produced.", c->exchanges);
    one_counter(&w, "repro_capture_incomplete_exchanges_total",
                "Exchanges stored with an incompleteness flag (gap, truncated, unanswered, ...).",
                c->incomplete);
    family(&w, "repro_capture_dropped_bytes_total", REPRO_METRICS_COUNTER,
           "Bytes not stored, by reason: out_of_order_cap, body_cap, resync, never_captured.");
    counter(&w, "repro_capture_dropped_bytes_total", "out_of_order_cap", c->dropped_ooo_bytes);
    counter(&w, "repro_capture_dropped_bytes_total", "body_cap", c->dropped_body_bytes);
    counter(&w, "repro_capture_dropped_bytes_total", "resync", c->skipped_stream_bytes);
    counter(&w, "repro_capture_dropped_bytes_total", "never_captured", c->gap_bytes);
    counter(&w, "repro_capture_dropped_bytes_total", "memory", c->evicted_pressure_bytes);
    family(&w, "repro_capture_dropped_connections_total", REPRO_METRICS_COUNTER,
           "Connections not followed to their end, by reason: table_full, memory (closed "
           "oldest first to stay under --max-memory).");
    counter(&w, "repro_capture_dropped_connections_total", "table_full", c->dropped_connections);
    counter(&w, "repro_capture_dropped_connections_total", "memory",
            c->evicted_pressure_connections);
    one_counter(&w, "repro_capture_dropped_requests_total",
                "Pipelined requests beyond the per-connection cap.", c->dropped_pipeline);
    one_counter(&w, "repro_capture_stored_exchanges_total",
                "Exchanges committed to the database.", s->store.exchanges);
    one_counter(&w, "repro_store_busy_retries_total",
                "Attempts to write that found the database locked by another process.",
                s->store.busy_retries);
    one_counter(&w, "repro_store_blocked_seconds_total",
                "Time the writer waited for the database's write lock.",
                s->store.blocked_ms / 1000);
    one_counter(&w, "repro_store_pruned_exchanges_total",
                "Exchanges deleted by --max-db-mb or --retain.", s->store.pruned_exchanges);
    one_gauge(&w, "repro_store_queue_bytes", "Row bytes queued for the writer, not yet committed.",
              (double)s->store.queued_bytes);
    one_gauge(&w, "repro_store_used_bytes",
              "The database's used size at the last retention check (0 without retention).",
              (double)s->store.used_bytes);
    one_gauge(&w, "repro_capture_queue_bytes",
              "Packet bytes waiting between the reader and the parser.",
              (double)s->reader.queued_bytes);
    one_gauge(&w, "repro_capture_open_streams", "TCP connections being followed now.",
              (double)s->open_streams);
    one_gauge(&w, "repro_capture_memory_bytes",
              "Bytes the capture session holds under --max-memory (messages, out-of-order "
              "data, the connection table).",
              (double)s->session_bytes);
    one_gauge(&w, "repro_capture_resident_memory_bytes", "Resident memory of the agent.",
              (double)s->rss_bytes);
    one_gauge(&w, "repro_capture_cpu_idle_first",
              "1 while the parser and store writer run idle-first (SCHED_IDLE unless behind), "
              "0 at normal priority (--priority normal, or not permitted).",
              s->prio.active ? 1.0 : 0.0);
    one_gauge(&w, "repro_capture_cpu_level",
              "Where idle-first threads run now: 0 SCHED_IDLE, 1 raised to nice 10 (behind), "
              "2 raised to nice 0 (far behind).",
              (double)s->prio.level);
    family(&w, "repro_capture_cpu_raises_total", REPRO_METRICS_COUNTER,
           "Times idle-first threads were raised, by reason: behind (left SCHED_IDLE), "
           "far_behind (went on to nice 0).");
    counter(&w, "repro_capture_cpu_raises_total", "behind", s->prio.raises);
    counter(&w, "repro_capture_cpu_raises_total", "far_behind", s->prio.raises_far_behind);
    one_seconds_counter(&w, "repro_capture_cpu_raised_seconds_total",
                        "Time idle-first threads spent raised (off SCHED_IDLE).",
                        s->prio.raised_ns);
    one_gauge(&w, "repro_capture_deferring",
              "1 while the host is saturated and idle-first parsing is put off (packets go "
              "to the spool), else 0.",
              s->prio.deferring ? 1.0 : 0.0);
    one_counter(&w, "repro_capture_deferrals_total",
                "Times idle-first parsing was put off because the host was saturated.",
                s->prio.deferrals);
    one_seconds_counter(&w, "repro_capture_deferred_seconds_total",
                        "Time parsing was put off because the host was saturated.",
                        s->prio.deferred_ns);
    one_gauge(&w, "repro_capture_spool_bytes",
              "Packets in the spool (written while parsing was behind or deferred), not yet "
              "read back.",
              (double)s->reader.spooled_bytes);
    one_counter(&w, "repro_capture_spooled_batches_total",
                "Batches of packets written to the spool.", s->reader.spooled_batches);
    one_counter(&w, "repro_capture_spool_errors_total",
                "Spool writes and reads that failed (their packets count as dropped, "
                "reason queue_full).",
                s->reader.spool_errors);
    one_gauge(&w, "repro_capture_uptime_seconds", "Seconds since the capture started.",
              (double)s->uptime_ns / 1e9);
    return w.rc;
}
