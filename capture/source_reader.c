/*
 * The live reader: a thread of its own that empties the kernel's packet
 * ring into batches, so the packet reads never wait for parsing or for the
 * database (issue 11; docs/capture.md, "Live capture").
 *
 * Why this shape (measured in the closing note of issue 11):
 * - libpcap's buffered mode on Linux is TPACKET_V3: the kernel fills
 *   blocks of packets and hands a block over when it is full or when its
 *   retire timer (the pcap timeout, 50 ms here) fires. One wakeup per block
 *   instead of one per packet (immediate mode) is what stops the agent from
 *   taking the service's CPU.
 * - With TPACKET_V3 libpcap itself blocks in poll() without a timeout, and
 *   the kernel retires no empty block, so a quiet interface never returns
 *   (the `--duration` bug). The socket is therefore non-blocking and this
 *   thread polls it with its own 100 ms timeout: stop requests and clocks
 *   are looked at whatever the traffic.
 * - pcap_dispatch(-1) hands every packet of the retired blocks in one call;
 *   each is copied into a batch (ring memory must go back to the kernel
 *   at once). Batches come from a pool bounded by the queue budget; when the
 *   consumer falls behind and no batch is free, the packet is dropped and
 *   counted (queue_drops), never lost silently.
 * - With a spool (repro_reader_spool) a full pool does not drop: the batch
 *   is written to a file next to the database (spool_file.c says what is
 *   in it) and a shell (a batch without buffers, its spool_off >= 0) takes its
 *   place in the ready list; the consumer reads it back when it gets there.
 *   Once one batch is spooled every later one is too, until the consumer
 *   has read them all: the order of packets never changes, and a shell at
 *   the head always finds a free buffer (the pool's others were released).
 *   This is what lets the live agent put its parsing off while the host is
 *   saturated (app/live_priority.c, "deferral") with memory still bounded:
 *   the reader then costs about what tcpdump -w costs. What the consumer
 *   has read is marked read and punched out of the file at once
 *   (FALLOC_FL_PUNCH_HOLE), and the file starts over after its header once
 *   it has read everything; spool_max bounds the bytes not yet read. The
 *   invariant needs a consumer that gives each batch back before it asks
 *   for the next (as the live loop does).
 * - The spool survives the process: a thread syncs it to disk every half
 *   second while it is written (never the reader, whose ring must be
 *   emptied), each batch carries checksums, and the file is removed only
 *   when nothing in it is left unread. After a kill -9 or a power cut the
 *   next agent on the database parses what was not read back
 *   (app/spool_recover.c). So that a crash loses about a second, not a
 *   backlog, batches that wait half a second in memory go to the spool
 *   too (spool_waiting), in their place in the ready list. The file's
 *   order is then not always the packets' (a full pool spools a batch at
 *   once while older ones still wait in memory): each batch header holds
 *   its first packet's record number, and the recovery sorts by it.
 *
 * Threads: the reader thread owns the pcap handle while it runs. Everything
 * shared with the consumer (the ready and free lists, ended) is under mu;
 * counters are atomics so stats can be read from any thread.
 */
#include "source_int.h"

#include "capture/spool_format.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Data bytes per batch; must hold the largest packet (snap length). */
#define BATCH_DATA_BYTES REPRO_SPOOL_MAX_DATA
/* Packets per batch (the smallest frames are about 60 bytes). */
#define BATCH_MAX_PKTS REPRO_SPOOL_MAX_PKTS
/* How long the reader keeps reading after a stop request: the kernel hands
 * over the last, partly filled block when its 50 ms retire timer fires, so
 * every packet captured before the stop is readable 50 ms (plus a timer
 * tick) later; three times that is the margin. */
#define DRAIN_MS 150
#define POLL_MS 100
/* How often the spool is synced to disk while written: a power cut loses
 * at most about this much of it (plus the sync's own time). */
#define SPOOL_SYNC_MS 500
/* How long a batch waits in memory for the consumer before it goes to
 * the spool (when there is one): with the sync above, what a crash can
 * lose is about a second. */
#define SPOOL_AFTER_MS 500

struct repro_reader {
    struct repro_source *src;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    struct repro_packet_batch *ready_head, *ready_tail, *free_list;
    size_t n_batches, max_batches;
    int ended;
    struct repro_error err; /* the read error that ended the thread, if any */
    /* reader thread only */
    struct repro_packet_batch *cur;
    uint64_t cur_since_ns; /* when cur got its first packet (monotonic) */
    uint64_t record_no;
    /* any thread */
    atomic_int stop;
    atomic_uint_fast64_t packets, bytes, queue_drops, queue_drop_bytes, kernel_drops,
        iface_drops, queued_bytes, batches, wakeups;
    /* since when the head of the ready list has waited for the consumer
     * (monotonic ns), 0 while the list is empty; for repro_reader_wait_ns() */
    atomic_uint_fast64_t ready_since_ns;
    /* the spool: fd -1 when none (set under mu); n_shells under mu;
     * spool_end the reader thread's only (it writes at
     * spool_end, 0 meaning just after the file header, and starts over
     * when n_shells is 0) */
    int spool_fd, spool_dir_fd;
    char spool_name[256];
    uint64_t spool_max_bytes, spool_end;
    size_t n_shells;
    atomic_uint_fast64_t spooled_bytes, spooled_batches, spool_errors, spool_peak_bytes;
    /* the spool's sync thread: wakes every SPOOL_SYNC_MS (sync_cv, under
     * mu) and syncs the file when spool_dirty */
    pthread_t sync_thread;
    pthread_cond_t sync_cv;
    int sync_stop;
    atomic_int spool_dirty;
    atomic_int has_spool; /* spool_fd >= 0, readable without mu */
    /* since when the reader thread has waited for mu, 0 when it does not:
     * the consumer may hold it and be starved (it can run as SCHED_IDLE);
     * for repro_reader_blocked_ns() */
    atomic_uint_fast64_t blocked_since_ns;
};

/* The reader thread takes mu here: the wait, if any, is published for the
 * CPU policy, which raises a starved consumer holding it. */
static void reader_lock(struct repro_reader *r)
{
    if (pthread_mutex_trylock(&r->mu) == 0)
        return;
    atomic_store_explicit(&r->blocked_since_ns, repro_mono_ns(), memory_order_relaxed);
    pthread_mutex_lock(&r->mu);
    atomic_store_explicit(&r->blocked_since_ns, 0, memory_order_relaxed);
}

static struct repro_packet_batch *batch_new(void)
{
    struct repro_packet_batch *b = repro_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->spool_off = -1;
    b->pkts = repro_malloc(BATCH_MAX_PKTS * sizeof *b->pkts);
    b->data = repro_malloc(BATCH_DATA_BYTES);
    if (b->pkts == NULL || b->data == NULL) {
        repro_free(b->pkts);
        repro_free(b->data);
        repro_free(b);
        return NULL;
    }
    return b;
}

static void batch_free(struct repro_packet_batch *b)
{
    if (b == NULL)
        return;
    repro_free(b->pkts);
    repro_free(b->data);
    repro_free(b);
}

/* Puts b (a batch or a shell) at the end of the ready list and wakes the
 * consumer. Called with mu held. */
static void append_ready(struct repro_reader *r, struct repro_packet_batch *b)
{
    b->queued_ns = repro_mono_ns();
    if (r->ready_tail) {
        r->ready_tail->next = b;
    } else {
        r->ready_head = b;
        atomic_store_explicit(&r->ready_since_ns, b->queued_ns, memory_order_relaxed);
    }
    r->ready_tail = b;
    atomic_fetch_add(&r->batches, 1);
    pthread_cond_signal(&r->cv);
}

/* Bytes a batch takes in the spool: its header, its packet records, then
 * its data. */
static uint64_t spool_size(const struct repro_packet_batch *b)
{
    return REPRO_SPOOL_BATCH_HEADER + (uint64_t)b->n * sizeof *b->pkts + b->used;
}

/* The packets' bytes as captured (caplen), for the drop counts. */
static uint64_t caplen_sum(const struct repro_packet_batch *b)
{
    uint64_t bytes = 0;

    for (uint32_t i = 0; i < b->n; i++)
        bytes += b->pkts[i].caplen;
    return bytes;
}

/* Once the consumer has read every spooled batch, the file starts over
 * after its header (emptied: no disk or page cache held after a burst).
 * Reader thread (the only writer of the file), with mu held. */
static void spool_restart_if_read(struct repro_reader *r)
{
    if (r->spool_fd >= 0 && r->n_shells == 0 && r->spool_end > 0 &&
        ftruncate(r->spool_fd, REPRO_SPOOL_FILE_HEADER) == 0) {
        /* when it cannot, later batches go on at higher offsets (read
         * parts are punched out: unspool) */
        r->spool_end = 0;
        atomic_store_explicit(&r->spool_dirty, 1, memory_order_relaxed);
    }
}

/* Writes b at the spool's end and returns a shell for it (not yet in the
 * ready list; b stays the caller's), or NULL with *rc REPRO_E_LIMIT (the
 * spool holds spool_max_bytes not yet read), REPRO_E_IO (a write failed)
 * or REPRO_E_NOMEM (the shell). Reader thread, which alone moves
 * spool_end; restart the file first if all of it was read. */
static struct repro_packet_batch *spool_append(struct repro_reader *r,
                                               const struct repro_packet_batch *b, int *rc)
{
    struct repro_packet_batch *shell;
    uint64_t size = spool_size(b), off = r->spool_end ? r->spool_end : REPRO_SPOOL_FILE_HEADER;
    uint8_t head[REPRO_SPOOL_BATCH_HEADER];
    struct iovec iov[3] = {{head, sizeof head},
                           {b->pkts, (size_t)b->n * sizeof *b->pkts},
                           {b->data, b->used}};
    ssize_t w;

    *rc = REPRO_E_LIMIT;
    if (atomic_load(&r->spooled_bytes) + size > r->spool_max_bytes)
        return NULL;
    *rc = REPRO_E_NOMEM;
    shell = repro_calloc(1, sizeof *shell);
    if (shell == NULL)
        return NULL;
    repro__spool_batch_header(head, b, b->pkts[0].record_no);
    w = pwritev(r->spool_fd, iov, 3, (off_t)off);
    atomic_store_explicit(&r->spool_dirty, 1, memory_order_relaxed);
    if (w < 0 || (uint64_t)w != size) {
        atomic_fetch_add(&r->spool_errors, 1);
        repro_free(shell);
        *rc = REPRO_E_IO;
        return NULL;
    }
    *rc = REPRO_OK;
    shell->n = b->n;
    shell->used = b->used;
    shell->spool_off = (int64_t)off;
    shell->spool_caplen = caplen_sum(b);
    r->spool_end = off + size;
    {
        uint64_t now = atomic_fetch_add(&r->spooled_bytes, size) + size;
        uint64_t peak = atomic_load(&r->spool_peak_bytes);
        while (peak < now && !atomic_compare_exchange_weak(&r->spool_peak_bytes, &peak, now))
            ;
    }
    atomic_fetch_add(&r->spooled_batches, 1);
    return shell;
}

/* Writes b to the spool and queues a shell for it; b stays the reader's.
 * Returns spool_append's code: unless REPRO_OK the caller drops b's
 * packets. Reader thread. */
static int spool_batch(struct repro_reader *r, struct repro_packet_batch *b)
{
    struct repro_packet_batch *shell;
    int rc;

    reader_lock(r);
    spool_restart_if_read(r);
    pthread_mutex_unlock(&r->mu);
    if ((shell = spool_append(r, b, &rc)) == NULL)
        return rc;
    reader_lock(r);
    r->n_shells++;
    append_ready(r, shell);
    pthread_mutex_unlock(&r->mu);
    return REPRO_OK;
}

/* Batches that have waited SPOOL_AFTER_MS in memory for the consumer (a
 * deferral, a stalled loop) go to the spool in their place, and so does
 * the batch being filled once its first packet is that old (the consumer
 * busy, it is not handed over: publish_if_idle), so that a kill -9 or a
 * power cut loses only the last second or so of packets not yet parsed,
 * never a long backlog. Under mu, so the consumer cannot take a batch
 * while it is written (about a millisecond per batch, in the page cache).
 * Reader thread. */
static void spool_waiting(struct repro_reader *r)
{
    const uint64_t after_ns = (uint64_t)SPOOL_AFTER_MS * 1000000u;
    uint64_t since = atomic_load_explicit(&r->ready_since_ns, memory_order_relaxed);
    uint64_t now = repro_mono_ns(); /* after the poll: batches were queued during it */
    struct repro_packet_batch **link, *b;

    if (since == 0 || since > now || now - since < after_ns || !atomic_load(&r->has_spool))
        return;
    reader_lock(r);
    spool_restart_if_read(r);
    for (link = &r->ready_head; r->spool_fd >= 0 && (b = *link) != NULL; link = &(*link)->next) {
        struct repro_packet_batch *shell;
        int rc;

        if (b->queued_ns > now || now - b->queued_ns < after_ns)
            break;
        if (b->spool_off >= 0)
            continue;
        if ((shell = spool_append(r, b, &rc)) == NULL)
            break; /* it stays in memory: nothing lost yet */
        shell->queued_ns = b->queued_ns;
        shell->next = b->next;
        *link = shell;
        if (r->ready_tail == b)
            r->ready_tail = shell;
        r->n_shells++;
        atomic_fetch_sub(&r->queued_bytes, b->used);
        b->next = r->free_list;
        r->free_list = b;
    }
    if (r->spool_fd >= 0 && r->cur && r->cur->n > 0 && r->cur_since_ns <= now &&
        now - r->cur_since_ns >= after_ns) {
        struct repro_packet_batch *shell;
        int rc;

        if ((shell = spool_append(r, r->cur, &rc)) != NULL) {
            r->n_shells++;
            append_ready(r, shell);
            r->cur->n = 0; /* the reader fills it again */
            r->cur->used = 0;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* Whether b goes to the spool rather than the ready list: a spool exists
 * and either batches wait in it (order) or the pool would have no batch
 * left for the reader. Called with mu held. */
static int must_spool(const struct repro_reader *r)
{
    return r->spool_fd >= 0 &&
           (r->n_shells > 0 || (r->free_list == NULL && r->n_batches >= r->max_batches));
}

/* A batch to fill: from the free list, or a new one while under budget.
 * NULL when the queue is full. Called with mu held. */
static struct repro_packet_batch *take_free(struct repro_reader *r)
{
    struct repro_packet_batch *b = r->free_list;

    if (b) {
        r->free_list = b->next;
    } else if (r->n_batches < r->max_batches && (b = batch_new()) != NULL) {
        r->n_batches++;
    }
    if (b) {
        b->next = NULL;
        b->n = 0;
        b->used = 0;
    }
    return b;
}

/* Hands the batch being filled to the consumer (if it holds packets). */
static void publish(struct repro_reader *r)
{
    struct repro_packet_batch *b = r->cur;

    if (b == NULL || b->n == 0)
        return;
    reader_lock(r);
    if (must_spool(r)) {
        pthread_mutex_unlock(&r->mu);
        if (spool_batch(r, b) != REPRO_OK) {
            atomic_fetch_add_explicit(&r->queue_drops, b->n, memory_order_relaxed);
            atomic_fetch_add_explicit(&r->queue_drop_bytes, caplen_sum(b), memory_order_relaxed);
        }
        b->n = 0; /* the reader fills it again */
        b->used = 0;
        return;
    }
    r->cur = NULL;
    atomic_fetch_add(&r->queued_bytes, b->used);
    append_ready(r, b);
    pthread_mutex_unlock(&r->mu);
}

/* Hands a partly filled batch over only when the consumer has nothing to
 * do: while it is busy the batch goes on filling, so a stalled consumer
 * (a slow commit) holds full batches, not one small batch per wakeup, and
 * the queue budget counts bytes rather than wakeups. */
static void publish_if_idle(struct repro_reader *r)
{
    int idle;

    if (r->cur == NULL || r->cur->n == 0)
        return;
    reader_lock(r);
    idle = r->ready_head == NULL;
    pthread_mutex_unlock(&r->mu);
    if (idle)
        publish(r);
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    struct repro_reader *r = (struct repro_reader *)user;
    struct repro_packet_batch *b = r->cur;
    uint32_t len = h->caplen < BATCH_DATA_BYTES ? h->caplen : BATCH_DATA_BYTES;

    r->record_no++;
    atomic_fetch_add_explicit(&r->packets, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->bytes, h->caplen, memory_order_relaxed);
    if (b && (b->n == BATCH_MAX_PKTS || BATCH_DATA_BYTES - b->used < len)) {
        publish(r);
        b = r->cur; /* NULL, or the same batch emptied when it went to the spool */
    }
    if (b == NULL) {
        reader_lock(r);
        b = r->cur = take_free(r);
        pthread_mutex_unlock(&r->mu);
        if (b == NULL) {
            atomic_fetch_add_explicit(&r->queue_drops, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&r->queue_drop_bytes, h->caplen, memory_order_relaxed);
            return;
        }
    }
    if (b->n == 0)
        r->cur_since_ns = repro_mono_ns();
    b->pkts[b->n].ts_us = (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec;
    b->pkts[b->n].caplen = len;
    b->pkts[b->n].off = b->used;
    b->pkts[b->n].record_no = r->record_no;
    memcpy(b->data + b->used, bytes, len);
    b->used += (len + 7u) & ~7u;
    if (b->used > BATCH_DATA_BYTES)
        b->used = BATCH_DATA_BYTES;
    b->n++;
}

static void read_kernel_stats(struct repro_reader *r)
{
    struct pcap_stat st;
    if (pcap_stats(r->src->pcap, &st) != 0)
        return;
    atomic_store(&r->kernel_drops, st.ps_drop);
    atomic_store(&r->iface_drops, st.ps_ifdrop);
}

/* Reads every packet the kernel has handed over. Returns 0, or -1 on a
 * read error (r->err set). */
static int read_available(struct repro_reader *r)
{
    for (int round = 0; round < 1024; round++) {
        int n = pcap_dispatch(r->src->pcap, -1, on_packet, (u_char *)r);
        if (n == 0 || n == PCAP_ERROR_BREAK)
            return 0;
        if (n < 0) {
            repro_error_set(&r->err, REPRO_E_PCAP, "cannot read %s after packet %llu: %s",
                            r->src->name, (unsigned long long)r->record_no,
                            pcap_geterr(r->src->pcap));
            return -1;
        }
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct repro_reader *r = arg;
    struct pollfd pfd = {.fd = pcap_get_selectable_fd(r->src->pcap), .events = POLLIN};
    uint64_t drain_end = 0, last_stats = repro_mono_ns();

    pthread_setname_np(pthread_self(), "repro-reader"); /* top -H, perf */

    for (;;) {
        uint64_t now = repro_mono_ns();
        if (drain_end == 0 && atomic_load(&r->stop))
            drain_end = now + (uint64_t)DRAIN_MS * 1000000u;
        if (drain_end && now >= drain_end) {
            read_available(r); /* what was retired while this thread slept */
            break;
        }
        if (poll(&pfd, 1, drain_end ? 20 : POLL_MS) < 0 && errno != EINTR) {
            repro_error_set(&r->err, REPRO_E_IO, "cannot wait for packets on %s: %s",
                            r->src->name, strerror(errno));
            break;
        }
        atomic_fetch_add_explicit(&r->wakeups, 1, memory_order_relaxed);
        if (read_available(r) != 0)
            break;
        publish_if_idle(r);
        spool_waiting(r);
        /* spool_end is this thread's own; the lock (spool_fd, n_shells)
         * only when a spool was written and all of it has been read */
        if (r->spool_end > 0 && atomic_load(&r->spooled_bytes) == 0) {
            reader_lock(r);
            spool_restart_if_read(r);
            pthread_mutex_unlock(&r->mu);
        }
        if (now - last_stats >= 500000000u) {
            read_kernel_stats(r);
            last_stats = now;
        }
    }
    read_kernel_stats(r);
    publish(r);
    reader_lock(r);
    if (r->cur) { /* an empty batch being filled goes back */
        r->cur->next = r->free_list;
        r->free_list = r->cur;
        r->cur = NULL;
    }
    r->ended = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int repro_reader_start(struct repro_source *src, size_t max_queue_bytes,
                       struct repro_reader **out, struct repro_error *err)
{
    struct repro_reader *r;
    char ebuf[PCAP_ERRBUF_SIZE] = "";

    *out = NULL;
    if (!src->live)
        return repro_error_set(err, REPRO_E_INVAL, "%s is not a live source", src->name);
    if (pcap_get_selectable_fd(src->pcap) < 0)
        return repro_error_set(err, REPRO_E_PCAP, "%s cannot be polled", src->name);
    if (pcap_setnonblock(src->pcap, 1, ebuf) != 0)
        return repro_error_set(err, REPRO_E_PCAP, "cannot read %s without blocking: %s",
                               src->name, ebuf);
    r = repro_calloc(1, sizeof *r);
    if (r == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot start the reader: out of memory");
    r->src = src;
    r->spool_fd = r->spool_dir_fd = -1;
    r->max_batches = max_queue_bytes / (BATCH_DATA_BYTES + BATCH_MAX_PKTS * sizeof *r->cur->pkts);
    if (r->max_batches < 2)
        r->max_batches = 2;
    pthread_mutex_init(&r->mu, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->cv, &ca);
        pthread_cond_init(&r->sync_cv, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (pthread_create(&r->thread, NULL, reader_main, r) != 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        pthread_cond_destroy(&r->sync_cv);
        repro_free(r);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot start the reader thread");
    }
    *out = r;
    return REPRO_OK;
}

/* Reads the spooled batch of *shell into a buffer of the pool and puts
 * that in *shell's place; frees the shell. Returns 1, or 0 when it could
 * not (a read error or no buffer: its packets are counted as dropped).
 * Consumer thread. */
static int unspool(struct repro_reader *r, struct repro_packet_batch **shell)
{
    struct repro_packet_batch *s = *shell, *b;
    uint64_t size = spool_size(s);
    struct iovec iov[2];
    ssize_t got = -1;

    pthread_mutex_lock(&r->mu);
    b = take_free(r);
    pthread_mutex_unlock(&r->mu);
    if (b) {
        iov[0] = (struct iovec){b->pkts, (size_t)s->n * sizeof *b->pkts};
        iov[1] = (struct iovec){b->data, s->used};
        got = preadv(r->spool_fd, iov, 2, (off_t)(s->spool_off + REPRO_SPOOL_BATCH_HEADER));
    }
    if (got >= 0 && (uint64_t)got == size - REPRO_SPOOL_BATCH_HEADER) {
        /* read: marked so (a recovery after a crash skips it), then its
         * disk space and page cache go back at once. A lost mark (a power
         * cut) finds the payload punched: its checksum fails, skipped. */
        uint32_t state = REPRO_SPOOL_READ;
        if (pwrite(r->spool_fd, &state, sizeof state,
                   (off_t)(s->spool_off + REPRO_SPOOL_STATE_OFF)) != (ssize_t)sizeof state) {
            /* a recovery would parse it again; the punch below makes it fail its checksum */
        }
        if (fallocate(r->spool_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      s->spool_off + REPRO_SPOOL_BATCH_HEADER,
                      (off_t)(size - REPRO_SPOOL_BATCH_HEADER)) != 0) {
            /* no hole punching here: freed when the file starts over */
        }
        atomic_store_explicit(&r->spool_dirty, 1, memory_order_relaxed); /* the mark too */
        got = (ssize_t)size;
    }
    pthread_mutex_lock(&r->mu);
    r->n_shells--; /* after the read: until then the reader keeps the file */
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_sub(&r->spooled_bytes, size);
    if (b == NULL || got < 0 || (uint64_t)got != size) {
        atomic_fetch_add(&r->spool_errors, 1);
        atomic_fetch_add_explicit(&r->queue_drops, s->n, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->queue_drop_bytes, s->spool_caplen, memory_order_relaxed);
        if (b)
            repro_reader_release(r, b);
        repro_free(s);
        *shell = NULL;
        return 0;
    }
    b->n = s->n;
    b->used = s->used;
    repro_free(s);
    *shell = b;
    atomic_fetch_add(&r->queued_bytes, b->used);
    return 1;
}

/* The head of the ready list (maybe a shell), as repro_reader_next. */
static int next_item(struct repro_reader *r, int timeout_ms, struct repro_packet_batch **batch)
{
    struct timespec until = repro_deadline_ms(CLOCK_MONOTONIC, timeout_ms);
    int rc = 0;

    *batch = NULL;
    pthread_mutex_lock(&r->mu);
    while (r->ready_head == NULL && !r->ended) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    }
    if (r->ready_head) {
        *batch = r->ready_head;
        r->ready_head = (*batch)->next;
        if (r->ready_head == NULL)
            r->ready_tail = NULL;
        /* the next one has waited since it was queued: the deferral's
         * age limit and the CPU policy's waits are true ages */
        atomic_store_explicit(&r->ready_since_ns, r->ready_head ? r->ready_head->queued_ns : 0,
                              memory_order_relaxed);
        (*batch)->next = NULL;
        rc = 1;
    } else if (r->ended) {
        rc = -1;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int repro_reader_next(struct repro_reader *r, int timeout_ms, struct repro_packet_batch **batch)
{
    int rc;

    /* a spooled batch that cannot be read back is counted and skipped */
    while ((rc = next_item(r, timeout_ms, batch)) == 1 && (*batch)->spool_off >= 0 &&
           !unspool(r, batch))
        ;
    return rc;
}

uint64_t repro_reader_wait_ns(struct repro_reader *r, uint64_t now_ns)
{
    uint64_t since = atomic_load_explicit(&r->ready_since_ns, memory_order_relaxed);
    return since && now_ns > since ? now_ns - since : 0;
}

uint64_t repro_reader_blocked_ns(struct repro_reader *r, uint64_t now_ns)
{
    uint64_t since = atomic_load_explicit(&r->blocked_since_ns, memory_order_relaxed);
    return since && now_ns > since ? now_ns - since : 0;
}

void repro_reader_release(struct repro_reader *r, struct repro_packet_batch *b)
{
    if (b == NULL)
        return;
    atomic_fetch_sub(&r->queued_bytes, b->used);
    pthread_mutex_lock(&r->mu);
    b->next = r->free_list;
    r->free_list = b;
    pthread_mutex_unlock(&r->mu);
}

/* Syncs the spool to disk every SPOOL_SYNC_MS while it is written, so a
 * power cut loses about that much of it; a thread of its own, since a
 * sync of tens of MB must not hold up the reader. */
static void *spool_sync_main(void *arg)
{
    struct repro_reader *r = arg;
    struct timespec until;

    pthread_setname_np(pthread_self(), "repro-spool");
    pthread_mutex_lock(&r->mu);
    while (!r->sync_stop) {
        until = repro_deadline_ms(CLOCK_MONOTONIC, SPOOL_SYNC_MS);
        while (!r->sync_stop && pthread_cond_timedwait(&r->sync_cv, &r->mu, &until) != ETIMEDOUT)
            ;
        if (atomic_exchange(&r->spool_dirty, 0)) {
            int fd = r->spool_fd;
            pthread_mutex_unlock(&r->mu);
            fdatasync(fd); /* a failure shows at the next write, counted there */
            pthread_mutex_lock(&r->mu);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int repro_reader_spool(struct repro_reader *r, const char *dir, const char *name,
                       int64_t capture_id, uint64_t max_bytes, struct repro_error *err)
{
    uint8_t head[REPRO_SPOOL_FILE_HEADER];
    int fd, dfd;

    if (max_bytes == 0)
        return REPRO_OK;
    if (strlen(name) >= sizeof r->spool_name || strchr(name, '/') != NULL)
        return repro_error_set(err, REPRO_E_INVAL, "the spool's name '%s' is not a file name",
                               name);
    pthread_mutex_lock(&r->mu);
    fd = r->spool_fd;
    pthread_mutex_unlock(&r->mu);
    if (fd >= 0)
        return repro_error_set(err, REPRO_E_INVAL, "the reader has a spool already");
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return repro_error_set(err, REPRO_E_IO, "cannot create a spool in '%s': %s", dir,
                               strerror(errno));
    fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        close(dfd);
        return repro_error_set(err, REPRO_E_IO, "cannot create the spool '%s/%s': %s", dir, name,
                               strerror(e));
    }
    /* held while the reader lives: a recovery leaves a spool in use alone */
    repro__spool_file_header(head, repro_source_dlt(r->src), capture_id, repro_wall_us(),
                             (uint32_t)getpid());
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 ||
        pwrite(fd, head, sizeof head, 0) != (ssize_t)sizeof head || fdatasync(fd) != 0 ||
        fsync(dfd) != 0) { /* the name survives a power cut too */
        int e = errno;
        unlinkat(dfd, name, 0);
        close(fd);
        close(dfd);
        return repro_error_set(err, REPRO_E_IO, "cannot write the spool '%s/%s': %s", dir, name,
                               strerror(e));
    }
    pthread_mutex_lock(&r->mu);
    if (r->spool_fd >= 0) { /* a call that raced this one */
        pthread_mutex_unlock(&r->mu);
        unlinkat(dfd, name, 0);
        close(fd);
        close(dfd);
        return repro_error_set(err, REPRO_E_INVAL, "the reader has a spool already");
    }
    r->spool_max_bytes = max_bytes;
    if (pthread_create(&r->sync_thread, NULL, spool_sync_main, r) != 0) {
        pthread_mutex_unlock(&r->mu);
        unlinkat(dfd, name, 0);
        close(fd);
        close(dfd);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot start the spool's sync thread");
    }
    snprintf(r->spool_name, sizeof r->spool_name, "%s", name);
    r->spool_dir_fd = dfd;
    r->spool_fd = fd;
    atomic_store(&r->has_spool, 1);
    pthread_mutex_unlock(&r->mu);
    return REPRO_OK;
}

/* Stops the sync thread; then removes the spool, or keeps it (synced)
 * when batches in it were never read back: the next agent recovers them. */
static void spool_close(struct repro_reader *r, uint64_t left)
{
    if (r->spool_fd < 0)
        return;
    /* a spool always has its sync thread (repro_reader_spool) */
    pthread_mutex_lock(&r->mu);
    r->sync_stop = 1;
    pthread_cond_signal(&r->sync_cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->sync_thread, NULL);
    if (left)
        fdatasync(r->spool_fd);
    else
        unlinkat(r->spool_dir_fd, r->spool_name, 0);
    close(r->spool_fd); /* and its lock */
    close(r->spool_dir_fd);
    r->spool_fd = -1;
}

void repro_reader_stop(struct repro_reader *r)
{
    if (r)
        atomic_store(&r->stop, 1);
}

void repro_reader_stats(struct repro_reader *r, struct repro_reader_stats *out)
{
    out->packets = atomic_load(&r->packets);
    out->bytes = atomic_load(&r->bytes);
    out->kernel_drops = atomic_load(&r->kernel_drops);
    out->iface_drops = atomic_load(&r->iface_drops);
    out->queue_drops = atomic_load(&r->queue_drops);
    out->queue_drop_bytes = atomic_load(&r->queue_drop_bytes);
    out->queued_bytes = atomic_load(&r->queued_bytes);
    out->batches = atomic_load(&r->batches);
    out->wakeups = atomic_load(&r->wakeups);
    out->spooled_bytes = atomic_load(&r->spooled_bytes);
    out->spooled_batches = atomic_load(&r->spooled_batches);
    out->spool_errors = atomic_load(&r->spool_errors);
    out->spool_peak_bytes = atomic_load(&r->spool_peak_bytes);
}

int repro_reader_finish(struct repro_reader *r, struct repro_reader_stats *final,
                        struct repro_error *err)
{
    struct repro_packet_batch *b, *next;
    uint64_t left = 0;
    int rc;

    if (r == NULL)
        return REPRO_OK;
    repro_reader_stop(r);
    pthread_join(r->thread, NULL);
    if (final)
        repro_reader_stats(r, final);
    rc = r->err.code;
    if (rc && err)
        repro_error_set(err, rc, "%s", r->err.msg);
    for (b = r->ready_head; b; b = next) {
        next = b->next;
        if (b->spool_off >= 0)
            left++;
        batch_free(b);
    }
    spool_close(r, left);
    if (final)
        final->spool_left_batches = left;
    for (b = r->free_list; b; b = next) {
        next = b->next;
        batch_free(b);
    }
    batch_free(r->cur);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->sync_cv);
    pthread_cond_destroy(&r->cv);
    repro_free(r);
    return rc;
}
