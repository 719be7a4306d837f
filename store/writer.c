/*
 * The background store writer: one producer thread, one consumer (a writer
 * thread owning the store handle while it runs). Any domain's rows go
 * through it (struct repro_store_row): connections, exchanges, crashes.
 *
 * Each row is deep-copied into a batch: a fixed record (kind, size, the
 * row struct by value) followed by every string, slice and array the row
 * points to, the pointers rewritten as offsets from the record's start and
 * turned back into pointers by the writer thread. Three buffers rotate —
 * the one being filled, at most one queued, the one being written — so
 * memory stays at three batches whatever the traffic, and a slow disk slows
 * the producer down instead of growing a queue. The writer thread writes a
 * batch per transaction.
 *
 * Connections get their store ids in the writer thread; the producer refers
 * to them by its own id (local_id), mapped here.
 *
 * A batch is written in segments, each one transaction: the rows between
 * two crashes, or a crash alone. A segment starts by taking the write lock
 * (repro_store_begin); when another process holds it past the store's busy
 * timeout the segment is rolled back, the ids it mapped are undone, and it
 * is tried again after a pause (10 ms doubling to 1 s), indefinitely while
 * the capture runs and for finish_wait_ms once finish() is called. The
 * records themselves are never changed by applying them, so a segment can
 * be applied any number of times.
 *
 * Retention runs here too, between batches: repro_store_prune() in small
 * transactions, each giving way to a queued batch.
 *
 * Threads: everything the two threads share (the buffers, have_queued,
 * writing, stop, the error, the counters and settings) is read and written
 * under mu; failed is also read without the lock, so it is atomic and set
 * only after err is complete; fill_bytes is a relaxed atomic copy of the
 * producer's fill.len for repro_store_writer_stats() on any thread.
 */
#include "repro/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BATCH_BYTES ((size_t)4 << 20)
#define BATCH_ROWS 8192
/* Exchanges stored per statement: consecutive exchange records go in
 * together (repro_store_exchange_insert_many), which pays SQLite's
 * per-statement work once for the run (docs/store.md). */
#define RUN_MAX 256

/* A queued row; its variable bytes follow, at offsets from the record. */
struct rec {
    uint32_t kind;  /* enum repro_store_row_kind */
    uint32_t total; /* record + payload bytes, padded to 8 */
    union {
        struct repro_store_conn conn;
        struct repro_store_exchange x;
        struct repro_store_crash crash;
    } u;
};

struct id_node {
    uint64_t local;
    int64_t store_id;
    uint64_t gen; /* the segment that mapped it (undone with it) */
    struct id_node *next;
};

#define ID_BUCKETS 4096

struct repro_store_writer {
    struct repro_store *store;
    pthread_t thread;
    int tid; /* the thread's id, set (under mu) once it runs */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct repro_buf fill, queued, spare;
    int have_queued, writing, stop; /* under mu */
    atomic_int failed;              /* set (under mu) once err holds the first error */
    atomic_int lock_waiting;        /* the writer thread is retrying a locked database */
    atomic_int interrupted;         /* repro_store_writer_interrupt() was called */
    atomic_uint_fast64_t deadline_ns; /* repro_store_writer_set_deadline(), 0: none */
    atomic_uint_fast64_t handed_ns; /* since when rows handed over wait for a commit, 0: none */
    struct repro_error err;         /* under mu: the writer thread's first error */
    size_t max_row_bytes;
    unsigned fill_rows;             /* producer only */
    atomic_size_t fill_bytes;       /* fill.len, stored by the producer for stats */
    /* under mu: */
    size_t writing_bytes;           /* the batch being written */
    uint64_t finish_at_ns;          /* when finish() began, 0 before */
    unsigned finish_wait_ms;
    uint64_t max_db_bytes;          /* retention, 0: off */
    int64_t retain_us;              /* retention, 0: off */
    int prune_due;
    uint64_t prune_credit;          /* exchanges pruning may delete ahead of queued batches */
    uint64_t blocked_ns;
    struct repro_store_writer_stats st; /* the counters; the rest is filled when read */
    /* writer thread only: */
    struct id_node *ids[ID_BUCKETS];
    struct id_node *closed;         /* unmapped by the open segment */
    uint64_t gen;                   /* the open segment */
    struct repro_store_exchange run[RUN_MAX]; /* a run of exchanges, one INSERT */
};

/* ---- packing: the same code counts (base NULL) and copies ------------- */

struct packer {
    uint8_t *base; /* the record, or NULL to count only */
    size_t off;    /* next free offset */
};

static size_t pack_reserve(struct packer *p, size_t n)
{
    size_t o = (p->off + 7) & ~(size_t)7;
    p->off = o + n;
    return o;
}

/* Copies n bytes of src; returns its offset as a pointer (NULL for NULL). */
static const void *pack(struct packer *p, const void *src, size_t n)
{
    size_t o;
    if (src == NULL)
        return NULL;
    o = pack_reserve(p, n);
    if (p->base && n)
        memcpy(p->base + o, src, n);
    return (const void *)(uintptr_t)o;
}

static const char *pack_str(struct packer *p, const char *s)
{
    return s ? pack(p, s, strlen(s) + 1) : NULL;
}

static struct repro_slice pack_slice(struct packer *p, struct repro_slice v)
{
    struct repro_slice out = {NULL, v.ptr ? v.len : 0};
    out.ptr = v.ptr ? pack(p, v.ptr, v.len) : NULL;
    return out;
}

/* The element of a packed array, to fill in place (NULL when counting). */
static void *packed_at(struct packer *p, const void *enc)
{
    return p->base && enc ? p->base + (uintptr_t)enc : NULL;
}

static void pack_conn(struct packer *p, struct repro_store_conn *c)
{
    c->end_reason = pack_str(p, c->end_reason);
}

static void pack_exchange(struct packer *p, struct repro_store_exchange *x)
{
    x->method = pack_slice(p, x->method);
    x->uri = pack_slice(p, x->uri);
    x->host = pack_slice(p, x->host);
    x->reason = pack_slice(p, x->reason);
    x->request = pack_slice(p, x->request);
    x->response = pack_slice(p, x->response);
    x->http_version = pack_str(p, x->http_version);
    x->interim = pack_str(p, x->interim);
    x->note = pack_str(p, x->note);
}

static void pack_thread(struct packer *p, struct repro_store_crash_thread *t)
{
    const struct repro_store_crash_frame *src = t->frames;
    size_t k;

    t->name = pack_str(p, t->name);
    t->registers = pack_str(p, t->registers);
    t->frames = pack(p, src, t->n_frames * sizeof *src);
    for (k = 0; src && k < t->n_frames; k++) {
        struct repro_store_crash_frame *f = packed_at(p, t->frames), tmp = src[k];
        tmp.function = pack_str(p, src[k].function);
        tmp.file = pack_str(p, src[k].file);
        if (f)
            f[k] = tmp;
    }
}

static void pack_crash(struct packer *p, struct repro_store_crash *c)
{
    const struct repro_store_crash_module *mods = c->modules;
    const struct repro_store_crash_thread *ths = c->threads;
    size_t i;

    c->executable = pack_str(p, c->executable);
    c->cmdline = pack_str(p, c->cmdline);
    c->service = pack_str(p, c->service);
    c->hostname = pack_str(p, c->hostname);
    c->signal = pack_str(p, c->signal);
    c->source = pack_str(p, c->source);
    c->partial_reason = pack_str(p, c->partial_reason);
    c->signature = pack_str(p, c->signature);
    c->record_key = pack_str(p, c->record_key);
    c->conns = pack(p, c->conns, c->n_conns * sizeof *c->conns);
    c->modules = pack(p, mods, c->n_modules * sizeof *mods);
    for (i = 0; mods && i < c->n_modules; i++) {
        struct repro_store_crash_module *m = packed_at(p, c->modules), tmp = mods[i];
        tmp.path = pack_str(p, mods[i].path);
        tmp.build_id = pack_str(p, mods[i].build_id);
        if (m)
            m[i] = tmp;
    }
    c->threads = pack(p, ths, c->n_threads * sizeof *ths);
    for (i = 0; ths && i < c->n_threads; i++) {
        struct repro_store_crash_thread *t = packed_at(p, c->threads), tmp = ths[i];
        pack_thread(p, &tmp);
        if (t)
            t[i] = tmp;
    }
}

/* Packs row into r (the record's start, or NULL to count); returns the
 * record's total bytes, or 0 for an unknown kind. */
static size_t pack_row(uint8_t *r, const struct repro_store_row *row)
{
    struct packer p = {r, sizeof(struct rec)};
    struct rec tmp;
    /* Packed in place (the batch is 8-aligned: malloc'd, records padded to
     * 8); counting uses a stack copy. Only the member in use is written:
     * this runs twice per row on the capture thread. */
    struct rec *h = r ? (struct rec *)(void *)r : &tmp;

    h->kind = (uint32_t)row->kind;
    switch (row->kind) {
    case REPRO_ROW_CONN_OPEN:
    case REPRO_ROW_CONN_CLOSE:
        h->u.conn = *row->u.conn;
        pack_conn(&p, &h->u.conn);
        break;
    case REPRO_ROW_EXCHANGE:
        h->u.x = *row->u.exchange;
        pack_exchange(&p, &h->u.x);
        break;
    case REPRO_ROW_CRASH:
        h->u.crash = *row->u.crash;
        pack_crash(&p, &h->u.crash);
        break;
    default:
        return 0;
    }
    h->total = (uint32_t)((p.off + 7) & ~(size_t)7);
    return (p.off + 7) & ~(size_t)7;
}

/* ---- unpacking (writer thread): offsets back to pointers -------------- */

#define UNPACK(base, field)                                                 \
    ((field) = (field) ? (void *)((base) + (uintptr_t)(field)) : NULL)

static void unpack_slice(uint8_t *base, struct repro_slice *v)
{
    UNPACK(base, v->ptr);
}

static void unpack_crash(uint8_t *b, struct repro_store_crash *c)
{
    struct repro_store_crash_module *m;
    struct repro_store_crash_thread *t;
    size_t i, k;

    UNPACK(b, c->executable);
    UNPACK(b, c->cmdline);
    UNPACK(b, c->service);
    UNPACK(b, c->hostname);
    UNPACK(b, c->signal);
    UNPACK(b, c->source);
    UNPACK(b, c->partial_reason);
    UNPACK(b, c->signature);
    UNPACK(b, c->record_key);
    UNPACK(b, c->conns);
    UNPACK(b, c->modules);
    UNPACK(b, c->threads);
    m = (struct repro_store_crash_module *)c->modules;
    for (i = 0; m && i < c->n_modules; i++) {
        UNPACK(b, m[i].path);
        UNPACK(b, m[i].build_id);
    }
    t = (struct repro_store_crash_thread *)c->threads;
    for (i = 0; t && i < c->n_threads; i++) {
        struct repro_store_crash_frame *f;
        UNPACK(b, t[i].name);
        UNPACK(b, t[i].registers);
        UNPACK(b, t[i].frames);
        f = (struct repro_store_crash_frame *)t[i].frames;
        for (k = 0; f && k < t[i].n_frames; k++) {
            UNPACK(b, f[k].function);
            UNPACK(b, f[k].file);
        }
    }
}

static void unpack_row(struct rec *h)
{
    uint8_t *b = (uint8_t *)h;
    struct repro_store_exchange *x = &h->u.x;

    switch (h->kind) {
    case REPRO_ROW_CONN_OPEN:
    case REPRO_ROW_CONN_CLOSE:
        UNPACK(b, h->u.conn.end_reason);
        break;
    case REPRO_ROW_EXCHANGE:
        unpack_slice(b, &x->method);
        unpack_slice(b, &x->uri);
        unpack_slice(b, &x->host);
        unpack_slice(b, &x->reason);
        unpack_slice(b, &x->request);
        unpack_slice(b, &x->response);
        UNPACK(b, x->http_version);
        UNPACK(b, x->interim);
        UNPACK(b, x->note);
        break;
    case REPRO_ROW_CRASH:
        unpack_crash(b, &h->u.crash);
        break;
    }
}

/* ---- the writer thread ------------------------------------------------ */

/* Rows of a segment, counted as they are applied and added to the
 * writer's figures once the segment commits. */
struct seg_counts {
    uint64_t exchanges, connections, updates, crashes;
};

static struct id_node **id_slot(struct repro_store_writer *w, uint64_t local)
{
    struct id_node **pp = &w->ids[local % ID_BUCKETS];
    while (*pp != NULL && (*pp)->local != local)
        pp = &(*pp)->next;
    return pp;
}

static int remember_conn(struct repro_store_writer *w, uint64_t local, int64_t store_id,
                         struct repro_error *err)
{
    struct id_node *n = repro_malloc(sizeof *n);
    if (n == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot store a connection: out of memory");
    n->local = local;
    n->store_id = store_id;
    n->gen = w->gen;
    n->next = w->ids[local % ID_BUCKETS];
    w->ids[local % ID_BUCKETS] = n;
    return REPRO_OK;
}

/* The segment committed: the ids it mapped stay, those it closed go. */
static void ids_commit(struct repro_store_writer *w)
{
    while (w->closed != NULL) {
        struct id_node *n = w->closed;
        w->closed = n->next;
        repro_free(n);
    }
    w->gen++;
}

/* The segment was rolled back: the ids it mapped go (their rows are not
 * in the database), those it closed come back. */
static void ids_undo(struct repro_store_writer *w)
{
    size_t i;

    while (w->closed != NULL) {
        struct id_node *n = w->closed;
        w->closed = n->next;
        if (n->gen == w->gen) {
            repro_free(n);
        } else {
            n->next = w->ids[n->local % ID_BUCKETS];
            w->ids[n->local % ID_BUCKETS] = n;
        }
    }
    for (i = 0; i < ID_BUCKETS; i++) {
        struct id_node **pp = &w->ids[i];
        while (*pp != NULL) {
            struct id_node *n = *pp;
            if (n->gen == w->gen) {
                *pp = n->next;
                repro_free(n);
            } else {
                pp = &n->next;
            }
        }
    }
}

/* Records are never changed here (a segment may be applied again after a
 * rollback): what is resolved goes into copies. */
static int apply_conn(struct repro_store_writer *w, const struct rec *h, struct seg_counts *cnt,
                      struct repro_error *err)
{
    struct repro_store_conn c = h->u.conn;
    struct id_node **pp, *n;
    int64_t id = 0;
    int rc;

    if (h->kind == REPRO_ROW_CONN_OPEN) {
        rc = repro_store_conn_insert(w->store, &c, &id, err);
        if (rc == REPRO_OK && (rc = remember_conn(w, c.local_id, id, err)) == REPRO_OK)
            cnt->connections++;
        return rc;
    }
    if (c.id == 0) {
        pp = id_slot(w, c.local_id);
        if (*pp == NULL)
            return REPRO_OK; /* never opened: nothing stored */
        n = *pp;
        c.id = n->store_id;
        *pp = n->next;
        n->next = w->closed; /* freed at commit, back at a rollback */
        w->closed = n;
    }
    rc = repro_store_conn_update(w->store, &c, err);
    cnt->updates += rc == REPRO_OK;
    return rc;
}

static int apply_record(struct repro_store_writer *w, const struct rec *h, struct seg_counts *cnt,
                        struct repro_error *err)
{
    int rc;

    switch (h->kind) {
    case REPRO_ROW_CONN_OPEN:
    case REPRO_ROW_CONN_CLOSE:
        return apply_conn(w, h, cnt, err);
    case REPRO_ROW_CRASH:
        rc = repro_store_crash_add(w->store, &h->u.crash, NULL, err);
        cnt->crashes += rc == REPRO_OK;
        return rc;
    default:
        return repro_error_set(err, REPRO_E_INVAL, "corrupt writer record kind %u", h->kind);
    }
}

static const struct rec *rec_at(const struct repro_buf *b, size_t off)
{
    return (const struct rec *)(const void *)(b->data + off);
}

/* Stores the exchange records from *off on, up to end, the next other
 * record or RUN_MAX of them, in one statement; *off moves past them. */
static int apply_exchanges(struct repro_store_writer *w, const struct repro_buf *b, size_t *off,
                           size_t end, struct seg_counts *cnt, struct repro_error *err)
{
    size_t n = 0;
    int rc;

    for (; *off < end && n < RUN_MAX && rec_at(b, *off)->kind == REPRO_ROW_EXCHANGE;
         *off += rec_at(b, *off)->total) {
        struct repro_store_exchange *x = &w->run[n++];
        *x = rec_at(b, *off)->u.x;
        if (x->connection_id == 0) {
            struct id_node **pp = id_slot(w, x->conn_local_id);
            if (*pp == NULL)
                return repro_error_set(err, REPRO_E_INVAL, "exchange of unknown connection %llu",
                                       (unsigned long long)x->conn_local_id);
            x->connection_id = (*pp)->store_id;
        }
    }
    rc = repro_store_exchange_insert_many(w->store, w->run, n, NULL, err);
    if (rc == REPRO_OK)
        cnt->exchanges += n;
    return rc;
}

/* Where the segment starting at off ends: a crash alone (it takes a
 * transaction of its own), else every record up to the next crash. */
static size_t segment_end(const struct repro_buf *b, size_t off)
{
    if (rec_at(b, off)->kind == REPRO_ROW_CRASH)
        return off + rec_at(b, off)->total;
    while (off < b->len && rec_at(b, off)->kind != REPRO_ROW_CRASH)
        off += rec_at(b, off)->total;
    return off;
}

/* Applies records [off, end) in one transaction (a crash's own). */
static int apply_segment(struct repro_store_writer *w, const struct repro_buf *b, size_t off,
                         size_t end, struct seg_counts *cnt, struct repro_error *err)
{
    uint64_t t0 = repro_mono_ns();
    int rc = REPRO_OK;

    if (rec_at(b, off)->kind != REPRO_ROW_CRASH) {
        /* The write lock up front: every later statement of the batch
         * then runs without waiting, and a locked database shows here. */
        rc = repro_store_begin(w->store, err);
        pthread_mutex_lock(&w->mu);
        w->blocked_ns += repro_mono_ns() - t0;
        pthread_mutex_unlock(&w->mu);
    }
    while (rc == REPRO_OK && off < end) {
        if (rec_at(b, off)->kind == REPRO_ROW_EXCHANGE) {
            rc = apply_exchanges(w, b, &off, end, cnt, err);
        } else {
            rc = apply_record(w, rec_at(b, off), cnt, err);
            off += rec_at(b, off)->total;
        }
    }
    if (rc == REPRO_OK)
        rc = repro_store_flush(w->store, err);
    return rc;
}

static void add_counts(struct repro_store_writer *w, const struct seg_counts *c)
{
    pthread_mutex_lock(&w->mu);
    w->st.exchanges += c->exchanges;
    w->st.connections += c->connections;
    w->st.connection_updates += c->updates;
    w->st.crashes += c->crashes;
    w->st.transactions++;
    pthread_mutex_unlock(&w->mu);
}

/* After an attempt found the database locked: counts it, and returns 1
 * when the writer must give up (finish() has waited long enough). */
static int busy_give_up(struct repro_store_writer *w, uint64_t *waited_ms)
{
    int give_up;

    pthread_mutex_lock(&w->mu);
    w->st.busy_retries++;
    *waited_ms = w->finish_at_ns ? (repro_mono_ns() - w->finish_at_ns) / 1000000u : 0;
    give_up = w->finish_at_ns != 0 && *waited_ms >= w->finish_wait_ms;
    pthread_mutex_unlock(&w->mu);
    return give_up;
}

static void backoff(struct repro_store_writer *w, unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    uint64_t t0 = repro_mono_ns();

    nanosleep(&ts, NULL);
    pthread_mutex_lock(&w->mu);
    w->blocked_ns += repro_mono_ns() - t0;
    pthread_mutex_unlock(&w->mu);
}

/* Writes records [off, end), retrying for as long as the database is
 * locked (bounded once finish() is called). */
static int write_segment(struct repro_store_writer *w, const struct repro_buf *b, size_t off,
                         size_t end, struct repro_error *err)
{
    unsigned pause_ms = 10;
    uint64_t waited_ms, t0;

    for (;;) {
        struct repro_error e = {0};
        struct seg_counts cnt = {0};
        int rc;

        t0 = repro_mono_ns();
        rc = apply_segment(w, b, off, end, &cnt, &e);
        if (rc == REPRO_OK) {
            atomic_store(&w->lock_waiting, 0);
            ids_commit(w);
            add_counts(w, &cnt);
            return REPRO_OK;
        }
        repro_store_rollback(w->store);
        ids_undo(w);
        atomic_store(&w->lock_waiting, rc == REPRO_E_BUSY);
        if (rc != REPRO_E_BUSY) {
            repro_error_set(err, rc, "%s", e.msg);
            return rc;
        }
        if (rec_at(b, off)->kind == REPRO_ROW_CRASH) { /* its own BEGIN waited */
            pthread_mutex_lock(&w->mu);
            w->blocked_ns += repro_mono_ns() - t0;
            pthread_mutex_unlock(&w->mu);
        }
        if (busy_give_up(w, &waited_ms))
            return repro_error_set(err, REPRO_E_BUSY,
                                   "%s; gave up %llu ms after the writer was told to finish",
                                   e.msg, (unsigned long long)waited_ms);
        repro_log(REPRO_LOG_DEBUG, "store", "database locked: retrying in %u ms", pause_ms);
        backoff(w, pause_ms);
        pause_ms = pause_ms >= 500 ? 1000 : pause_ms * 2;
    }
}

static int write_batch(struct repro_store_writer *w, struct repro_buf *b, struct repro_error *err)
{
    size_t off, end;
    int rc = REPRO_OK;

    /* Offsets become pointers once: a segment may be applied twice. */
    for (off = 0; off < b->len; off += rec_at(b, off)->total)
        unpack_row((struct rec *)(void *)(b->data + off));
    for (off = 0; rc == REPRO_OK && off < b->len; off = end) {
        end = segment_end(b, off);
        rc = write_segment(w, b, off, end, err);
    }
    repro_log(REPRO_LOG_DEBUG, "store", "batch of %zu bytes %s", b->len,
              rc == REPRO_OK ? "committed" : "failed");
    return rc;
}

/* ---- retention (writer thread) ---------------------------------------- */

static int retention_on(const struct repro_store_writer *w)
{
    return w->max_db_bytes > 0 || w->retain_us > 0;
}

/* One prune transaction; called and returns with mu held. */
static void prune_step_locked(struct repro_store_writer *w)
{
    struct repro_store_prune req = {w->max_db_bytes, 0, REPRO_STORE_PRUNE_ROWS};
    struct repro_store_prune_result res;
    struct repro_error e = {0};
    int rc;

    if (w->retain_us > 0)
        req.before_us = repro_wall_us() - w->retain_us;
    pthread_mutex_unlock(&w->mu);
    rc = repro_store_prune(w->store, &req, &res, &e);
    pthread_mutex_lock(&w->mu);
    w->prune_credit -= w->prune_credit < res.exchanges ? w->prune_credit : res.exchanges;
    if (rc == REPRO_OK) {
        w->st.pruned_exchanges += res.exchanges;
        w->st.pruned_connections += res.connections;
        w->st.used_bytes = res.used_bytes;
    } else if (rc == REPRO_E_BUSY) {
        w->st.busy_retries++; /* tried again at the next check */
    } else {
        /* Retention is housekeeping: a failure is logged, capture goes on. */
        repro_log(REPRO_LOG_WARN, "store", "retention: %s", e.msg);
    }
    if (rc != REPRO_OK || !res.more) {
        w->prune_due = 0;
        w->prune_credit = 0; /* earned again by the next batch, not saved up */
    }
}

/* handed_ns (repro_store_writer_wait_ns): work that holds, or waits for,
 * the write lock starts the clock unless it runs already; once it is
 * done, a batch handed over meanwhile waits from now on (a lower bound).
 * Called with mu held. */
static void start_waiting(struct repro_store_writer *w)
{
    if (atomic_load_explicit(&w->handed_ns, memory_order_relaxed) == 0)
        atomic_store_explicit(&w->handed_ns, repro_mono_ns(), memory_order_relaxed);
}

static void done_waiting(struct repro_store_writer *w)
{
    atomic_store_explicit(&w->handed_ns, w->have_queued ? repro_mono_ns() : 0,
                          memory_order_relaxed);
}

/* Waits for work; with retention on, wakes at least once a second to
 * check the limits; while a commit waits to be synced to disk, wakes when
 * its sync is due (repro_store_sync, without mu: a sync takes a few ms).
 * Called and returns with mu held. */
static void wait_for_work(struct repro_store_writer *w)
{
    uint64_t prune_at = repro_mono_ns() + 1000000000u;

    while (!w->have_queued && !w->stop && !(w->prune_due && retention_on(w))) {
        uint64_t sync_ns = 0, now, until_ns = 0;
        struct timespec until;

        if (!atomic_load(&w->failed)) {
            pthread_mutex_unlock(&w->mu);
            sync_ns = repro_store_sync(w->store);
            pthread_mutex_lock(&w->mu);
            if (w->have_queued || w->stop || (w->prune_due && retention_on(w)))
                break;
        }
        now = repro_mono_ns();
        if (retention_on(w)) {
            if (now >= prune_at) {
                w->prune_due = 1;
                break;
            }
            until_ns = prune_at - now;
        }
        if (sync_ns > 0 && (until_ns == 0 || sync_ns < until_ns))
            until_ns = sync_ns;
        if (until_ns == 0) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        until = repro_deadline_ms(CLOCK_MONOTONIC, (int)(until_ns / 1000000u) + 1);
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
}

static void *writer_main(void *arg)
{
    struct repro_store_writer *w = arg;

    pthread_setname_np(pthread_self(), "repro-writer"); /* top -H, perf */

    pthread_mutex_lock(&w->mu);
    w->tid = repro_gettid();
    pthread_cond_broadcast(&w->cv);
    for (;;) {
        struct repro_error werr = {0};
        struct repro_buf b;
        uint64_t exchanges_before;
        int rc = REPRO_OK;

        wait_for_work(w);
        if (!w->have_queued && w->stop)
            break;
        /* Pruning gives way to queued batches, but only so far: under
         * constant traffic it gets its credit (twice what each batch
         * added) between batches, so a limit holds whatever the rate. */
        if (!w->have_queued || (w->prune_due && w->prune_credit > 0 && !w->stop)) {
            if (!atomic_load(&w->failed)) {
                /* a prune holds the database's write lock too: a starved
                 * one counts as waiting (repro_store_writer_wait_ns) */
                start_waiting(w);
                prune_step_locked(w);
                done_waiting(w);
            } else {
                w->prune_due = 0;
            }
            continue;
        }
        exchanges_before = w->st.exchanges;
        b = w->queued;
        repro_buf_init(&w->queued, b.max);
        w->have_queued = 0;
        w->writing = 1;
        w->writing_bytes = b.len;
        pthread_mutex_unlock(&w->mu);

        /* After a failure later batches are dropped, not written. */
        if (!atomic_load(&w->failed))
            rc = write_batch(w, &b, &werr);

        pthread_mutex_lock(&w->mu);
        if (retention_on(w))
            w->prune_credit += 2 * (w->st.exchanges - exchanges_before) + REPRO_STORE_PRUNE_ROWS;
        if (rc && !atomic_load(&w->failed)) {
            if (werr.code == 0)
                repro_error_set(&werr, rc, "the store writer failed: %s", repro_strerror(rc));
            w->err = werr;
            atomic_store(&w->failed, 1);
        }
        repro_buf_reset(&b);
        repro_buf_release(&w->spare);
        w->spare = b;
        done_waiting(w);
        w->writing = 0;
        w->writing_bytes = 0;
        w->prune_due = retention_on(w);
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- the producer's side ---------------------------------------------- */

int repro_store_writer_start(struct repro_store *s, size_t max_row_bytes,
                             struct repro_store_writer **out, struct repro_error *err)
{
    struct repro_store_writer *w = repro_calloc(1, sizeof *w);
    pthread_condattr_t ca;
    size_t cap;

    *out = NULL;
    if (w == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot start the store writer: out of memory");
    w->store = s;
    w->max_row_bytes = max_row_bytes;
    w->finish_wait_ms = REPRO_STORE_WRITER_FINISH_WAIT_MS;
    atomic_init(&w->failed, 0);
    atomic_init(&w->fill_bytes, 0);
    cap = BATCH_BYTES + sizeof(struct rec) + max_row_bytes;
    repro_buf_init(&w->fill, cap);
    repro_buf_init(&w->queued, cap);
    repro_buf_init(&w->spare, cap);
    pthread_mutex_init(&w->mu, NULL);
    /* Timed waits (retention's checks) on the monotonic clock. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    repro_store_set_batch(s, UINT32_MAX); /* the writer commits per batch */
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        int e = repro_error_sys(err, REPRO_E_IO, "cannot start the store writer thread");
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        repro_store_set_batch(s, 4096);
        repro_free(w);
        return e;
    }
    /* its thread id, for repro_store_writer_tid() */
    pthread_mutex_lock(&w->mu);
    while (w->tid == 0)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    *out = w;
    return REPRO_OK;
}

/* Copies the writer thread's first error into err; call with mu held. */
static int failure_locked(struct repro_store_writer *w, struct repro_error *err)
{
    repro_error_set(err, w->err.code, "%s", w->err.msg);
    return w->err.code;
}

static int writer_failure(struct repro_store_writer *w, struct repro_error *err)
{
    int rc;
    pthread_mutex_lock(&w->mu);
    rc = failure_locked(w, err);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Queues the filled batch for the writer thread; call with mu held and
 * no batch queued. */
static void hand_over_locked(struct repro_store_writer *w)
{
    struct repro_buf next = w->spare;

    repro_buf_init(&w->spare, w->fill.max);
    repro_buf_release(&w->queued);
    w->queued = w->fill;
    w->fill = next;
    w->have_queued = 1;
    start_waiting(w);
    w->fill_rows = 0;
    atomic_store_explicit(&w->fill_bytes, 0, memory_order_relaxed);
    pthread_cond_broadcast(&w->cv);
}

/* Hands the filled batch to the writer thread (waiting while one is
 * already queued). */
/* While the producer waits for a writer that is retrying a locked
 * database: whether it was asked to stop (a signal, or its deadline). */
static int stop_waiting(struct repro_store_writer *w)
{
    uint64_t dl = atomic_load(&w->deadline_ns);

    return atomic_load(&w->lock_waiting) &&
           (atomic_load(&w->interrupted) || (dl && repro_mono_ns() >= dl));
}

/* Waits (mu held) while the writer has a batch queued, or also one it
 * is writing (busy_too), in steps of 100 ms; REPRO_E_BUSY (mu released,
 * err set) when a stop came while another process holds the lock. */
static int wait_locked(struct repro_store_writer *w, int busy_too, struct repro_error *err)
{
    while ((w->have_queued || (busy_too && w->writing)) && !atomic_load(&w->failed)) {
        struct timespec until = repro_deadline_ms(CLOCK_MONOTONIC, 100);
        if (stop_waiting(w)) {
            unsigned long long ms = (unsigned long long)(w->blocked_ns / 1000000u);
            pthread_mutex_unlock(&w->mu);
            return repro_error_set(err, REPRO_E_BUSY,
                                   "stopped while the database was locked by another process "
                                   "(%llu ms so far): rows not yet committed are lost", ms);
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    return REPRO_OK;
}

static int submit(struct repro_store_writer *w, struct repro_error *err)
{
    int rc = REPRO_OK;

    pthread_mutex_lock(&w->mu);
    if ((rc = wait_locked(w, 0, err)) != REPRO_OK)
        return rc;
    if (atomic_load(&w->failed))
        rc = failure_locked(w, err);
    else if (w->fill.len > 0)
        hand_over_locked(w);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void repro_store_writer_interrupt(struct repro_store_writer *w)
{
    if (w)
        atomic_store(&w->interrupted, 1);
}

uint64_t repro_store_writer_wait_ns(struct repro_store_writer *w, uint64_t now_ns)
{
    uint64_t since = atomic_load_explicit(&w->handed_ns, memory_order_relaxed);
    return since && now_ns > since ? now_ns - since : 0;
}

int repro_store_writer_tid(const struct repro_store_writer *w)
{
    return w->tid;
}

void repro_store_writer_set_deadline(struct repro_store_writer *w, uint64_t mono_ns)
{
    atomic_store(&w->deadline_ns, mono_ns);
}

int repro_store_writer_kick(struct repro_store_writer *w, struct repro_error *err)
{
    int rc = REPRO_OK;

    pthread_mutex_lock(&w->mu);
    if (atomic_load(&w->failed))
        rc = failure_locked(w, err);
    else if (!w->have_queued && w->fill.len > 0)
        hand_over_locked(w);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int repro_store_writer_put(struct repro_store_writer *w, const struct repro_store_row *row,
                           struct repro_error *err)
{
    size_t total = pack_row(NULL, row);
    int rc;

    if (total == 0)
        return repro_error_set(err, REPRO_E_INVAL, "cannot queue a row of unknown kind %d",
                               (int)row->kind);
    if (total - sizeof(struct rec) > w->max_row_bytes)
        return repro_error_set(err, REPRO_E_LIMIT,
                               "cannot queue a row for the store: %zu bytes, more than %zu",
                               total, w->max_row_bytes);
    if (w->fill.len + total > BATCH_BYTES && w->fill.len > 0 && (rc = submit(w, err)) != 0)
        return rc;
    if (atomic_load(&w->failed))
        return writer_failure(w, err);
    rc = repro_buf_reserve(&w->fill, total);
    if (rc != REPRO_OK)
        return repro_error_set(err, rc, "cannot queue a row for the store: %s",
                               repro_strerror(rc));
    /* The padding between pieces is never read: no need to clear it. */
    pack_row(w->fill.data + w->fill.len, row);
    w->fill.len += total;
    atomic_store_explicit(&w->fill_bytes, w->fill.len, memory_order_relaxed);
    if (++w->fill_rows >= BATCH_ROWS)
        return submit(w, err);
    return REPRO_OK;
}

int repro_store_writer_flush(struct repro_store_writer *w, struct repro_error *err)
{
    int rc = submit(w, err);

    if (rc)
        return rc;
    pthread_mutex_lock(&w->mu);
    if ((rc = wait_locked(w, 1, err)) != REPRO_OK)
        return rc;
    if (atomic_load(&w->failed))
        rc = failure_locked(w, err);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void repro_store_writer_set_finish_wait(struct repro_store_writer *w, unsigned finish_wait_ms)
{
    pthread_mutex_lock(&w->mu);
    w->finish_wait_ms = finish_wait_ms;
    pthread_mutex_unlock(&w->mu);
}

void repro_store_writer_set_retention(struct repro_store_writer *w, uint64_t max_db_bytes,
                                      int64_t retain_us)
{
    pthread_mutex_lock(&w->mu);
    w->max_db_bytes = max_db_bytes;
    w->retain_us = retain_us > 0 ? retain_us : 0;
    w->prune_due = retention_on(w);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void repro_store_writer_stats(struct repro_store_writer *w, struct repro_store_writer_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    out->blocked_ms = w->blocked_ns / 1000000u;
    out->queued_bytes = atomic_load_explicit(&w->fill_bytes, memory_order_relaxed) +
                        (w->have_queued ? w->queued.len : 0) + w->writing_bytes;
    out->failed = atomic_load(&w->failed);
    snprintf(out->last_error, sizeof out->last_error, "%s", out->failed ? w->err.msg : "");
    pthread_mutex_unlock(&w->mu);
}

int repro_store_writer_finish_stats(struct repro_store_writer *w,
                                    struct repro_store_writer_stats *final,
                                    struct repro_error *err)
{
    int rc, i;

    if (w == NULL)
        return REPRO_OK;
    /* From now on a locked database is waited for at most finish_wait_ms. */
    pthread_mutex_lock(&w->mu);
    w->finish_at_ns = repro_mono_ns();
    pthread_mutex_unlock(&w->mu);
    rc = repro_store_writer_flush(w, err);
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (final)
        repro_store_writer_stats(w, final);
    for (i = 0; i < ID_BUCKETS; i++) {
        while (w->ids[i] != NULL) {
            struct id_node *n = w->ids[i];
            w->ids[i] = n->next;
            repro_free(n);
        }
    }
    repro_buf_release(&w->fill);
    repro_buf_release(&w->queued);
    repro_buf_release(&w->spare);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    repro_store_set_batch(w->store, 4096);
    repro_free(w);
    return rc;
}

int repro_store_writer_finish(struct repro_store_writer *w, struct repro_error *err)
{
    return repro_store_writer_finish_stats(w, NULL, err);
}
