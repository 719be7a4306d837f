/*
 * app/capture_run: the capture loop. Packets from a source (capture/) go
 * through a capture session whose sink (app/capture_rows.c) turns its
 * records into store rows for the store's background writer, so parsing
 * and SQLite run on two cores. A file import runs in the store's bulk mode
 * (it can be re-run); a live capture commits at least once a second so
 * readers see data, and keeps full WAL durability.
 */
#include "app/capture_run.h"

#include "app/capture_live.h"
#include "app/capture_rows.h"
#include "app/metrics.h"
#include "app/privilege.h"

#include <inttypes.h>
#include <pcap/pcap.h>
#include <string.h>
#include <sys/stat.h>

/* Reads a file to its end (or --count packets); returns 1 if the input
 * had a read error. */
static int read_file(struct repro_source *src, struct repro_capture *cap,
                     const struct repro_app_capture_opts *o, struct repro_error *err,
                     int *sink_rc)
{
    int dlt = repro_source_dlt(src);
    uint64_t n = 0;
    struct repro_error rerr = {0};

    for (;;) {
        const uint8_t *data;
        size_t caplen;
        int64_t ts;
        enum repro_source_next r = repro_source_next(src, &data, &caplen, &ts, &rerr);

        if (r == REPRO_SOURCE_END || r == REPRO_SOURCE_TIMEOUT)
            return 0;
        if (r == REPRO_SOURCE_ERROR) {
            if (o->log)
                fprintf(o->log, "repro: capture: %s; what was read before is stored\n", rerr.msg);
            return 1;
        }
        *sink_rc = repro_capture_packet(cap, dlt, data, caplen, ts, ++n, err);
        if (*sink_rc)
            return 0;
        if (o->count > 0 && (long long)n >= o->count)
            return 0;
    }
}

/* The live agent (app/capture_live.c); returns 1 if reading failed. */
static int read_live(struct repro_source *src, struct repro_capture *cap,
                     struct repro_store_writer *writer, const struct repro_app_capture_opts *o,
                     struct repro_app_capture_result *res, struct repro_error *err,
                     int *sink_rc)
{
    struct repro_app_live lv;
    struct repro_error rerr = {0};
    char spool_dir[4096], spool_name[256];
    const char *link = pcap_datalink_val_to_name(repro_source_dlt(src));
    int read_rc;

    /* the spool goes next to the database: a directory the agent checked
     * (not writable by others) on a disk sized for it */
    repro_app_dir_of(o->db, spool_dir, sizeof spool_dir);
    repro_app_spool_name(o->db, res->capture_id, spool_name, sizeof spool_name);
    if ((*sink_rc = repro_app_live_init(&lv, src, cap,
                                           (o->max_memory ? o->max_memory : (size_t)256 << 20) / 4,
                                           err)) != 0)
        return 0;
    lv.duration_s = o->duration_s;
    lv.count = o->count;
    lv.log = o->log;
    lv.quiet = o->quiet;
    lv.priority_normal = o->priority_normal;
    lv.defer_max_s = o->defer_max_s;
    lv.spool_max_bytes = o->spool_max_bytes;
    if (!o->priority_normal && o->defer_max_s > 0 && o->spool_max_bytes > 0) {
        /* before the recovery below: live packets wait in it meanwhile */
        if (repro_reader_spool(lv.reader, spool_dir, spool_name, res->capture_id,
                               o->spool_max_bytes, &rerr) == REPRO_OK)
            lv.spooling = 1;
        else if (o->log) /* deferral is then bounded by the packet queue */
            fprintf(o->log, "repro: warning: %s; deferring within the packet queue only\n",
                    rerr.msg);
        memset(&rerr, 0, sizeof rerr);
    }
    if (o->metrics && (*sink_rc = repro_app_live_serve_metrics(&lv, o->metrics, err)) != 0) {
        repro_app_live_finish(&lv, &res->reader, NULL);
        return 0;
    }
    if (o->log) {
        fprintf(o->log, "repro: listening on %s, link-type %s%s%s%s\n", o->src.iface,
                link ? link : "?", o->src.filter ? ", filter '" : "",
                o->src.filter ? o->src.filter : "", o->src.filter ? "'" : "");
        if (lv.metrics) {
            const char *colon = strrchr(o->metrics, ':');
            fprintf(o->log, "repro: metrics on http://%.*s:%d/metrics\n",
                    (int)(colon ? colon - o->metrics : 0), o->metrics,
                    repro_metrics_server_port(lv.metrics));
        }
        fflush(o->log);
    }
    /* what agents killed on this database left in their spools, first
     * (a stop interrupts the writer's flush there too) */
    repro_app_live_set_writer(writer);
    *sink_rc = repro_app_recover_spools(o->db, cap, repro_source_dlt(src), res->capture_id, writer,
                                        o->log, &res->recovery, err);
    if (*sink_rc == 0)
        *sink_rc = repro_app_live_run(&lv, writer, err);
    if (*sink_rc == REPRO_E_BUSY) /* stopped while another process held the lock */
        repro_store_writer_set_finish_wait(writer, 1000);
    res->prio = lv.prio;
    read_rc = repro_app_live_finish(&lv, &res->reader, &rerr);
    /* what the capture lost; the interface's own drops (frames for unknown
     * protocols or VLANs, rx_dropped) are reported apart */
    res->kernel_drops = res->reader.kernel_drops;
    if (read_rc && o->log)
        fprintf(o->log, "repro: capture: %s; what was read before is stored\n", rerr.msg);
    if (res->reader.spool_left_batches && o->log)
        fprintf(o->log,
                "repro: %" PRIu64 " batches of packets were not parsed; they stay in the spool "
                "%s/%s, and the next capture -i on %s parses them\n",
                res->reader.spool_left_batches, spool_dir, spool_name, o->db);
    return read_rc != 0;
}

/* Opens the store and records the capture's start (bulk mode for a file)
 * and starts the writer. */
static int start_store(const struct repro_app_capture_opts *o, struct repro_source *src,
                       struct repro_store **store, struct repro_app_store_sink *ss,
                       struct repro_error *err)
{
    struct repro_store_capture row;
    int rc;

    row.source_kind = o->src.file ? "file" : "live";
    row.source = o->src.file ? o->src.file : o->src.iface;
    row.filter = o->src.filter;
    row.link_type = repro_source_dlt(src);
    row.source_size = row.source_mtime_us = 0;
    struct stat sb;
    if (o->src.file && strcmp(o->src.file, "-") != 0 && stat(o->src.file, &sb) == 0 &&
        S_ISREG(sb.st_mode)) {
        row.source_size = (int64_t)sb.st_size;
        row.source_mtime_us = (int64_t)sb.st_mtim.tv_sec * 1000000 + sb.st_mtim.tv_nsec / 1000;
    }
    if ((rc = repro_store_open(o->db, 0, store, err)) != REPRO_OK)
        return rc;
    /* the same file again: say so rather than store every exchange twice */
    if (!o->force && (rc = repro_store_capture_find(*store, &row, &ss->already, err)) != REPRO_OK)
        return rc;
    if (ss->already)
        return REPRO_OK;
    if ((rc = repro_store_capture_begin(*store, &row, &ss->capture_id, err)) != REPRO_OK)
        return rc;
    /* A file can be imported again: do not wait for the disk on each
     * commit. A live capture keeps full WAL durability. */
    if (o->src.file && (rc = repro_store_bulk_begin(*store, err)) != REPRO_OK)
        return rc;
    ss->store = *store;
    ss->err = err;
    return repro_store_writer_start(
        *store, 4 * (o->limits->http.max_store + o->limits->http.max_head) + 65536, &ss->writer,
        err);
}

/* Ends the writer (if still running), keeping its last figures in ss. */
static int end_writer(struct repro_app_store_sink *ss, struct repro_error *err)
{
    int rc;

    if (ss->writer == NULL)
        return REPRO_OK;
    rc = repro_store_writer_finish_stats(ss->writer, &ss->committed, err);
    ss->writer = NULL;
    ss->have_committed = 1;
    return rc;
}

/* Everything after the read loop: the session's last exchanges, the
 * writer, bulk mode, the capture record. extra (n_extra of them, may be
 * NULL) are more counters for the record's stats_json. The record counts
 * what the writer committed. */
static int finish(const struct repro_app_capture_opts *o, struct repro_store *store,
                  struct repro_app_store_sink *ss, struct repro_app_capture_result *res,
                  int read_error, int sink_rc, const struct repro_store_counter *extra,
                  size_t n_extra, struct repro_error *err)
{
    const struct repro_capture_stats *st = repro_capture_stats(res->cap);
    struct repro_app_capture_outcome how = {NULL, NULL, &ss->committed, extra, n_extra};
    int rc;

    if (sink_rc == 0)
        sink_rc = repro_capture_finish(res->cap, err);
    if ((rc = end_writer(ss, err)) != REPRO_OK && sink_rc == 0)
        sink_rc = rc;
    if (sink_rc == 0 && o->src.file && (rc = repro_store_bulk_end(store, err)) != REPRO_OK)
        sink_rc = rc;
    if (sink_rc)
        return sink_rc;
    res->problems = read_error || st->errors > 0 || st->gaps > 0 || res->kernel_drops > 0 ||
                    res->reader.queue_drops > 0;
    how.status = res->problems ? "partial" : "complete";
    return repro_app_capture_end(store, ss->capture_id, st, &how, err);
}

/* A capture that failed: its record ends "failed" with the reason and
 * counts what was committed, and the log says how much of it was stored.
 * If even that cannot be written (the database still full or locked), the
 * log says so. */
static void record_failure(const struct repro_app_capture_opts *o, struct repro_store *store,
                           struct repro_app_store_sink *ss, struct repro_app_capture_result *res,
                           const struct repro_error *err)
{
    struct repro_app_capture_outcome how = {"failed", NULL, NULL, NULL, 0};
    const struct repro_capture_stats *st;
    struct repro_error e = {0};

    end_writer(ss, NULL);
    if (store == NULL || ss->capture_id == 0 || res->cap == NULL)
        return;
    st = repro_capture_stats(res->cap);
    how.error = err && err->code ? err->msg : "capture failed";
    if (ss->have_committed) {
        how.committed = &ss->committed;
        if (o->log && ss->committed.exchanges < st->exchanges)
            fprintf(o->log, "repro: only %llu of %llu exchanges were stored before the failure\n",
                    (unsigned long long)ss->committed.exchanges,
                    (unsigned long long)st->exchanges);
    }
    if (repro_app_capture_end(store, ss->capture_id, st, &how, &e) != REPRO_OK && o->log)
        fprintf(o->log, "repro: cannot mark capture %lld failed: %s\n", (long long)ss->capture_id,
                e.msg);
}

int repro_app_capture_run(const struct repro_app_capture_opts *o,
                          struct repro_app_capture_result *res, struct repro_error *err)
{
    struct repro_source *src = NULL;
    struct repro_store *store = NULL;
    struct repro_app_store_sink ss;
    struct repro_capture_sink sink = repro_app_store_sink(&ss);
    struct repro_capture_limits limits;
    int rc, read_error, sink_rc = 0;

    memset(res, 0, sizeof *res);
    memset(&ss, 0, sizeof ss);
    src = repro_source_open(&o->src, err);
    if (src == NULL)
        return err && err->code ? err->code : REPRO_E_PCAP;
    snprintf(res->source_name, sizeof res->source_name, "%s", repro_source_name(src));
    /* The live agent: root (or CAP_NET_RAW) only to open the interface, as
     * tcpdump -Z; its database where no other user can plant files. */
    if (o->src.iface && o->user && !o->priority_normal)
        repro_app_prio_keep_raisable(); /* idle-first raises its threads again as that user */
    if (o->src.iface && o->user && (rc = repro_app_drop_privileges(o->user, err)) != REPRO_OK)
        goto out;
    if (o->src.iface && (rc = repro_app_check_db_path(o->db, o->log, err)) != REPRO_OK)
        goto out;
    if ((rc = start_store(o, src, &store, &ss, err)) != REPRO_OK)
        goto out;
    if (ss.already) {
        res->already = ss.already;
        goto out;
    }
    res->capture_id = ss.capture_id;
    if (o->max_db_bytes || o->retain_us)
        repro_store_writer_set_retention(ss.writer, o->max_db_bytes, o->retain_us);
    limits = *o->limits;
    if (o->max_memory && repro_capture_limits_from_memory(
                             &limits, o->max_memory - o->max_memory / 4 -
                                          REPRO_APP_CAPTURE_WRITER_MEMORY) != REPRO_OK) {
        rc = repro_error_set(err, REPRO_E_INVAL, "--max-memory: at least 32M");
        goto out;
    }
    res->cap = repro_capture_new(&sink, o->rules, &limits);
    if (res->cap == NULL) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot start the capture: out of memory");
        goto out;
    }
    repro_capture_set_source(res->cap, repro_source_name(src));
    if (o->src.iface)
        read_error = read_live(src, res->cap, ss.writer, o, res, err, &sink_rc);
    else
        read_error = read_file(src, res->cap, o, err, &sink_rc);
    if (o->src.iface) {
        /* the live agent's own stages, next to the session's counters */
        struct repro_store_counter extra[] = {
            {"received_packets", res->reader.packets},
            {"received_bytes", res->reader.bytes},
            {"dropped_packets_kernel", res->reader.kernel_drops},
            {"dropped_packets_interface", res->reader.iface_drops},
            {"dropped_packets_queue_full", res->reader.queue_drops},
            {"dropped_bytes_queue_full", res->reader.queue_drop_bytes},
            {"reader_batches", res->reader.batches},
            {"reader_wakeups", res->reader.wakeups},
            {"cpu_idle_first", (uint64_t)res->prio.active},
            {"cpu_raises", res->prio.raises},
            {"cpu_raises_far_behind", res->prio.raises_far_behind},
            {"cpu_raised_ms", res->prio.raised_ns / 1000000},
            {"cpu_switch_failures", res->prio.failures},
            {"cpu_deferrals", res->prio.deferrals},
            {"cpu_deferred_ms", res->prio.deferred_ns / 1000000},
            {"spooled_batches", res->reader.spooled_batches},
            {"spool_peak_bytes", res->reader.spool_peak_bytes},
            {"spool_errors", res->reader.spool_errors},
            {"recovered_packets", res->recovery.packets},
            {"recovered_bytes", res->recovery.bytes},
            {"recovery_skipped_bytes", res->recovery.skipped_bytes},
        };
        rc = finish(o, store, &ss, res, read_error, sink_rc, extra, sizeof extra / sizeof *extra,
                    err);
    } else {
        rc = finish(o, store, &ss, res, read_error, sink_rc, NULL, 0, err);
    }
out:
    if (rc && err && err->code == 0)
        repro_error_set(err, rc, "capture failed: %s", repro_strerror(rc));
    if (rc)
        record_failure(o, store, &ss, res, err);
    repro_store_writer_finish(ss.writer, NULL);
    repro_store_close(store);
    repro_source_close(src);
    return rc;
}

void repro_app_capture_result_release(struct repro_app_capture_result *res)
{
    repro_capture_free(res->cap);
    res->cap = NULL;
}
