/*
 * app/capture_run: the capture loop. Packets from a source (capture/) go
 * through a capture session whose sink (app/capture_rows.c) turns its
 * records into store rows for the store's background writer, so parsing
 * and SQLite run on two cores. A file import runs in the store's bulk mode
 * (it can be re-run); a live capture commits at least once a second so
 * readers see data, and keeps full WAL durability.
 */
#include "app/capture_run.h"

#include "app/capture_rows.h"

#include <pcap/pcap.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

static volatile sig_atomic_t stop_requested;
static struct repro_source *active_source;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    repro_source_break(active_source);
}

/* Asked to stop (signal or --duration): a live source first gives what the
 * kernel already captured, so the last exchanges are not lost. Returns 1
 * to end the loop now. */
static int begin_drain(struct repro_source *src, const struct repro_app_capture_opts *o,
                       struct repro_error *rerr)
{
    return !o->src.iface || repro_source_drain(src, rerr) != REPRO_OK;
}

/* Runs the read loop; returns 1 if the input had a read error. */
static int read_loop(struct repro_source *src, struct repro_capture *cap,
                     struct repro_store_writer *writer, const struct repro_app_capture_opts *o,
                     struct repro_error *err, int *sink_rc)
{
    int dlt = repro_source_dlt(src);
    uint64_t n = 0, t0 = repro_mono_ns(), last_flush = t0;
    uint64_t limit_ns = o->duration_s > 0 ? (uint64_t)(o->duration_s * 1e9) : 0;
    struct repro_error rerr = {0};
    int draining = 0, break_seen = 0;

    for (;;) {
        const uint8_t *data;
        size_t caplen;
        int64_t ts;
        enum repro_source_next r;

        if (!draining && (stop_requested || (limit_ns && repro_mono_ns() - t0 >= limit_ns))) {
            if (begin_drain(src, o, &rerr))
                return 0;
            draining = 1;
        }
        r = repro_source_next(src, &data, &caplen, &ts, &rerr);
        if (r == REPRO_SOURCE_END && o->src.iface && stop_requested && !break_seen) {
            /* The signal handler's pcap_breakloop ended a blocking read:
             * that is the cue to drain, not the end of the data. */
            break_seen = 1;
            if (!draining && repro_source_drain(src, &rerr) != REPRO_OK)
                return 0;
            draining = 1;
            continue;
        }
        if (r == REPRO_SOURCE_END || (r == REPRO_SOURCE_TIMEOUT && draining))
            return 0;
        if (r == REPRO_SOURCE_ERROR) {
            if (o->log)
                fprintf(o->log, "repro: %s; what was read before is stored\n", rerr.msg);
            return 1;
        }
        if (r == REPRO_SOURCE_PACKET) {
            *sink_rc = repro_capture_packet(cap, dlt, data, caplen, ts, ++n, err);
            if (*sink_rc)
                return 0;
            if (o->count > 0 && (long long)n >= o->count)
                return 0;
        }
        if (o->src.iface && repro_mono_ns() - last_flush > 1000000000u) {
            last_flush = repro_mono_ns();
            if ((*sink_rc = repro_store_writer_flush(writer, err)) != 0)
                return 0;
        }
    }
}

static void catch_signals(struct repro_source *src, const struct repro_app_capture_opts *o)
{
    struct sigaction sa;
    const char *link = pcap_datalink_val_to_name(repro_source_dlt(src));

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    stop_requested = 0;
    active_source = src;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (o->log) {
        fprintf(o->log, "repro: listening on %s, link-type %s%s%s%s\n", o->src.iface,
                link ? link : "?", o->src.filter ? ", filter '" : "",
                o->src.filter ? o->src.filter : "", o->src.filter ? "'" : "");
        fflush(o->log);
    }
}

static void release_signals(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    active_source = NULL;
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

/* Everything after the read loop: the session's last exchanges, the
 * writer, bulk mode, the capture record. */
static int finish(const struct repro_app_capture_opts *o, struct repro_store *store,
                  struct repro_app_store_sink *ss, struct repro_app_capture_result *res,
                  int read_error, int sink_rc, struct repro_error *err)
{
    const struct repro_capture_stats *st = repro_capture_stats(res->cap);

    if (sink_rc == 0)
        sink_rc = repro_capture_finish(res->cap, err);
    if (repro_store_writer_finish(ss->writer, err) != REPRO_OK && sink_rc == 0)
        sink_rc = REPRO_E_STORE;
    ss->writer = NULL;
    if (sink_rc == 0 && o->src.file && repro_store_bulk_end(store, err) != REPRO_OK)
        sink_rc = REPRO_E_STORE;
    if (sink_rc)
        return sink_rc;
    res->problems = read_error || st->errors > 0 || st->gaps > 0 || res->kernel_drops > 0;
    return repro_app_capture_end(store, ss->capture_id, st, res->problems ? "partial" : "complete",
                                 err);
}

int repro_app_capture_run(const struct repro_app_capture_opts *o,
                          struct repro_app_capture_result *res, struct repro_error *err)
{
    struct repro_source *src = NULL;
    struct repro_store *store = NULL;
    struct repro_app_store_sink ss;
    struct repro_capture_sink sink = repro_app_store_sink(&ss);
    int rc, read_error, sink_rc = 0;

    memset(res, 0, sizeof *res);
    memset(&ss, 0, sizeof ss);
    src = repro_source_open(&o->src, err);
    if (src == NULL)
        return err && err->code ? err->code : REPRO_E_PCAP;
    snprintf(res->source_name, sizeof res->source_name, "%s", repro_source_name(src));
    if ((rc = start_store(o, src, &store, &ss, err)) != REPRO_OK)
        goto out;
    if (ss.already) {
        res->already = ss.already;
        goto out;
    }
    res->capture_id = ss.capture_id;
    res->cap = repro_capture_new(&sink, o->rules, o->limits);
    if (res->cap == NULL) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot start the capture: out of memory");
        goto out;
    }
    repro_capture_set_source(res->cap, repro_source_name(src));
    if (o->src.iface)
        catch_signals(src, o);
    read_error = read_loop(src, res->cap, ss.writer, o, err, &sink_rc);
    if (o->src.iface) {
        res->kernel_drops = repro_source_kernel_drops(src);
        release_signals();
    }
    rc = finish(o, store, &ss, res, read_error, sink_rc, err);
out:
    if (rc && err && err->code == 0)
        repro_error_set(err, rc, "capture failed: %s", repro_strerror(rc));
    if (rc && store && ss.capture_id && res->cap)
        repro_app_capture_end(store, ss.capture_id, repro_capture_stats(res->cap), "failed", NULL);
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
