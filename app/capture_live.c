/*
 * app/capture_live: the live agent's loop. Three threads, bounded queues
 * between them (docs/capture.md, "Live capture"):
 *
 *   reader (capture/source_reader.c): kernel ring -> batches of packets
 *   this loop: batches -> capture session -> rows for the store writer
 *   writer (store/writer.c): rows -> SQLite transactions
 *
 * This loop never blocks longer than 100 ms on the reader, so its clock
 * runs on a quiet interface: --duration ends on time, the writer commits at
 * least once a second, idle streams expire, and the status line (terminal)
 * or SIGUSR1 report comes on time.
 */
#include "app/capture_live.h"

#include "app/capture_metrics.h"
#include "app/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 100
#define TICK_NS 1000000000u
#define KICK_NS 250000000u
/* While deferring the loop looks again this often (the watcher decides every 100 ms). */
#define DEFER_PAUSE_MS 20

static volatile sig_atomic_t stop_requested, report_requested;
/* The writer a stop request interrupts when it waits for a lock another
 * process holds (set for the run's duration). */
static struct repro_store_writer *volatile active_writer;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
    repro_store_writer_interrupt(active_writer); /* one atomic store */
}

int repro_app_live_stop_requested(void)
{
    return stop_requested != 0;
}

void repro_app_live_set_writer(struct repro_store_writer *writer)
{
    active_writer = writer;
    if (writer && stop_requested) /* a stop that came before */
        repro_store_writer_interrupt(writer);
}

static void on_report(int sig)
{
    (void)sig;
    report_requested = 1;
}

static void catch_signals(int on)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on ? on_stop : SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* after the run a late status request must not kill the final flush */
    sa.sa_handler = on ? on_report : SIG_IGN;
    sigaction(SIGUSR1, &sa, NULL);
    if (on)
        stop_requested = report_requested = 0;
}

static uint64_t rss_bytes(void)
{
    unsigned long long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Copies the loop's view into the shared snapshot (for --metrics, read on
 * another thread). */
static void publish(struct repro_app_live *lv)
{
    struct repro_app_live_stats s;

    memset(&s, 0, sizeof s);
    repro_reader_stats(lv->reader, &s.reader);
    s.capture = *repro_capture_stats(lv->cap);
    s.open_streams = repro_capture_open_streams(lv->cap);
    s.session_bytes = repro_capture_memory(lv->cap);
    if (lv->writer)
        repro_store_writer_stats(lv->writer, &s.store);
    s.rss_bytes = rss_bytes();
    s.uptime_ns = repro_mono_ns() - lv->t0_ns;
    if (lv->prio_run)
        repro_app_prio_stats(lv->prio_run, &s.prio);
    else
        s.prio = lv->prio; /* the run's, once it ended */
    pthread_mutex_lock(&lv->mu);
    lv->snap = s;
    pthread_mutex_unlock(&lv->mu);
}

void repro_app_live_snapshot(struct repro_app_live *lv, struct repro_app_live_stats *out)
{
    pthread_mutex_lock(&lv->mu);
    *out = lv->snap;
    pthread_mutex_unlock(&lv->mu);
}

/* Where idle-first threads run, for the status line ("" when off). */
static const char *cpu_word(const struct repro_app_prio_stats *p)
{
    if (!p->active)
        return "";
    if (p->deferring)
        return "; cpu saturated: parsing deferred";
    switch (p->level) {
    case REPRO_PRIO_LOW: return "; cpu raised to nice 10";
    case REPRO_PRIO_NORMAL: return "; cpu raised to nice 0";
    default: return "; cpu idle-first";
    }
}

/* One status line: rates since the last one, drops, depth, memory, where
 * the idle-first threads run. */
static void status_line(struct repro_app_live *lv, int tty)
{
    char spool[48] = "";
    struct repro_app_live_stats s;
    uint64_t dt_ns;
    double secs;

    repro_app_live_snapshot(lv, &s);
    dt_ns = s.uptime_ns - lv->last_report.uptime_ns;
    if (s.reader.spooled_bytes > 0)
        snprintf(spool, sizeof spool, "; spool %.1f MiB", repro_mib(s.reader.spooled_bytes));
    secs = dt_ns ? (double)dt_ns / 1e9 : 1.0;
    fprintf(lv->log,
            "%srepro: %s: %.0f pkt/s, %.0f exchanges/s, %" PRIu64 " stored; drops: kernel %" PRIu64
            ", queue %" PRIu64 "; queue %.1f MiB; %" PRIu64 " open streams holding %.1f MiB; "
            "rss %.0f MiB%s%s%s%s",
            tty ? "\r\033[K" : "", lv->source_name,
            (double)(s.reader.packets - lv->last_report.reader.packets) / secs,
            (double)(s.capture.exchanges - lv->last_report.capture.exchanges) / secs,
            s.store.exchanges, s.reader.kernel_drops + s.reader.iface_drops,
            s.reader.queue_drops, repro_mib(s.reader.queued_bytes + s.store.queued_bytes),
            s.open_streams, repro_mib(s.session_bytes), repro_mib(s.rss_bytes), spool, cpu_word(&s.prio),
            s.store.busy_retries > lv->last_report.store.busy_retries
                ? "; database locked by another process, retrying"
                : "",
            tty ? "" : "\n");
    fflush(lv->log);
    lv->last_report = s;
    lv->status_shown = tty;
}

int repro_app_feed_batch(struct repro_capture *cap, int dlt, const struct repro_packet_batch *b,
                         uint64_t max, uint64_t *fed, struct repro_error *err)
{
    for (uint32_t i = 0; i < b->n; i++) {
        const struct repro_batch_pkt *p = &b->pkts[i];
        int rc;

        if (max > 0 && *fed >= max)
            return 0;
        rc = repro_capture_packet(cap, dlt, b->data + p->off, p->caplen, p->ts_us, p->record_no,
                                  err);
        (*fed)++;
        if (rc)
            return rc;
    }
    return 0;
}

/* Feeds one batch to the session; returns a sink error or 0. Stops at
 * --count packets. */
static int feed(struct repro_app_live *lv, const struct repro_packet_batch *b,
                struct repro_error *err)
{
    return repro_app_feed_batch(lv->cap, lv->dlt, b, lv->count > 0 ? (uint64_t)lv->count : 0,
                                &lv->n_fed, err);
}

int repro_app_live_init(struct repro_app_live *lv, struct repro_source *src,
                        struct repro_capture *cap, size_t max_queue_bytes,
                        struct repro_error *err)
{
    int rc;

    memset(lv, 0, sizeof *lv);
    lv->cap = cap;
    lv->dlt = repro_source_dlt(src);
    lv->t0_ns = repro_mono_ns();
    lv->max_queue_bytes = max_queue_bytes;
    snprintf(lv->source_name, sizeof lv->source_name, "%s", repro_source_name(src));
    pthread_mutex_init(&lv->mu, NULL);
    if ((rc = repro_reader_start(src, max_queue_bytes, &lv->reader, err)) != REPRO_OK) {
        pthread_mutex_destroy(&lv->mu);
        return rc;
    }
    publish(lv);
    /* before "listening on" is printed: a SIGINT or SIGUSR1 sent as soon
     * as it shows must not find the default action (terminate) */
    catch_signals(1);
    return REPRO_OK;
}

int repro_app_live_run(struct repro_app_live *lv, struct repro_store_writer *writer,
                       struct repro_error *err)
{
    uint64_t limit_ns = lv->duration_s > 0 ? (uint64_t)(lv->duration_s * 1e9) : 0;
    uint64_t last_tick = lv->t0_ns, last_kick = lv->t0_ns;
    int tty = lv->log && isatty(fileno(lv->log)) && !lv->quiet;
    int stopping = 0, rc = 0;

    lv->writer = writer;
    if (limit_ns)
        repro_store_writer_set_deadline(writer, lv->t0_ns + limit_ns);
    active_writer = writer;
    if (!lv->priority_normal) {
        struct repro_app_prio_limits pl;
        struct repro_error perr = {0};

        repro_app_prio_limits_default(&pl, lv->max_queue_bytes);
        if (lv->defer_max_s > 0) {
            pl.defer_max_ns = (uint64_t)(lv->defer_max_s * 1e9);
            if (lv->spooling) {
                pl.defer_spool = 1;
                pl.defer_room_bytes = lv->spool_max_bytes / 4 * 3;
            }
        }
        if (repro_app_prio_start(lv->reader, writer, &pl, &lv->prio_run, &perr) != REPRO_OK &&
            lv->log)
            fprintf(lv->log, "repro: warning: %s\n", perr.msg);
    }
    for (;;) {
        struct repro_packet_batch *b = NULL;
        int got = 0;
        uint64_t now;

        if (!stopping && repro_app_prio_deferring(lv->prio_run)) {
            /* the host is saturated: the batches wait (in the spool) */
            struct timespec pause = {0, DEFER_PAUSE_MS * 1000000L};
            nanosleep(&pause, NULL);
        } else {
            got = repro_reader_next(lv->reader, WAIT_MS, &b);
        }

        if (got < 0)
            break;
        if (got > 0) {
            rc = feed(lv, b, err);
            repro_reader_release(lv->reader, b);
            if (rc)
                break;
        }
        now = repro_mono_ns();
        repro_app_prio_heartbeat(lv->prio_run, now);
        if (!stopping && (stop_requested || (limit_ns && now - lv->t0_ns >= limit_ns) ||
                          (lv->count > 0 && lv->n_fed >= (uint64_t)lv->count))) {
            /* the reader hands over what the kernel holds, then ends; what
             * waits is parsed now, by the usual rules (no deferral) */
            repro_reader_stop(lv->reader);
            repro_app_prio_no_deferral(lv->prio_run);
            stopping = 1;
        }
        if (now - last_kick >= KICK_NS) {
            /* readers of the database see what was captured within about
             * a second; never waits for the commit (nor for a lock another
             * process holds: the writer retries, the queues take the slack) */
            last_kick = now;
            if ((rc = repro_store_writer_kick(writer, err)) != 0)
                break;
        }
        if (now - last_tick >= TICK_NS) {
            last_tick = now;
            /* A quiet interface still closes idle connections; only with
             * nothing queued (none taken this turn, none waiting: a
             * deferral leaves batches waiting), so that the clock never
             * runs ahead of packets still waiting to be parsed. */
            if (got == 0 && repro_reader_wait_ns(lv->reader, now) == 0 &&
                (rc = repro_capture_tick(lv->cap, repro_wall_us(), err)) != 0)
                break;
            publish(lv);
            if (tty)
                status_line(lv, 1);
        }
        if (report_requested) {
            report_requested = 0;
            publish(lv);
            if (lv->log)
                status_line(lv, 0);
        }
    }
    if (lv->status_shown)
        fputs("\r\033[K", lv->log);
    lv->stopped_by_signal = stop_requested;
    /* the final flush runs at normal priority */
    repro_app_prio_stop(lv->prio_run, &lv->prio);
    lv->prio_run = NULL;
    publish(lv);
    catch_signals(0);
    active_writer = NULL;
    return rc;
}

/* The metrics server's callback: one snapshot per scrape. */
static int render(void *ctx, struct repro_buf *out)
{
    struct repro_app_live_stats s;

    repro_app_live_snapshot(ctx, &s);
    return repro_app_live_render_metrics(&s, out);
}

int repro_app_live_serve_metrics(struct repro_app_live *lv, const char *hostport,
                                 struct repro_error *err)
{
    return repro_metrics_server_start(hostport, render, lv, &lv->metrics, err);
}

int repro_app_live_finish(struct repro_app_live *lv, struct repro_reader_stats *final,
                          struct repro_error *err)
{
    int rc;

    catch_signals(0); /* when repro_app_live_run() was not called */
    active_writer = NULL;

    repro_metrics_server_stop(lv->metrics);
    lv->metrics = NULL;
    if (lv->reader == NULL)
        return REPRO_OK;
    rc = repro_reader_finish(lv->reader, final, err);
    lv->reader = NULL;
    pthread_mutex_destroy(&lv->mu);
    return rc;
}
