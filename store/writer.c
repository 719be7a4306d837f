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
 * Threads: everything the two threads share (the buffers, have_queued,
 * writing, stop, the error) is read and written under mu; failed is also
 * read without the lock, so it is atomic and set only after err is
 * complete.
 */
#include "repro/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define BATCH_BYTES ((size_t)4 << 20)
#define BATCH_ROWS 8192

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
    struct id_node *next;
};

#define ID_BUCKETS 4096

struct repro_store_writer {
    struct repro_store *store;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct repro_buf fill, queued, spare;
    int have_queued, writing, stop; /* under mu */
    atomic_int failed;              /* set (under mu) once err holds the first error */
    struct repro_error err;         /* under mu: the writer thread's first error */
    size_t max_row_bytes;
    unsigned fill_rows;             /* producer only */
    struct id_node *ids[ID_BUCKETS]; /* writer thread only */
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
    n->next = w->ids[local % ID_BUCKETS];
    w->ids[local % ID_BUCKETS] = n;
    return REPRO_OK;
}

static int apply_conn(struct repro_store_writer *w, struct rec *h, struct repro_error *err)
{
    struct repro_store_conn *c = &h->u.conn;
    struct id_node **pp, *n;
    int64_t id = 0;
    int rc;

    if (h->kind == REPRO_ROW_CONN_OPEN) {
        rc = repro_store_conn_insert(w->store, c, &id, err);
        return rc ? rc : remember_conn(w, c->local_id, id, err);
    }
    if (c->id == 0) {
        pp = id_slot(w, c->local_id);
        if (*pp == NULL)
            return REPRO_OK; /* never opened: nothing stored */
        n = *pp;
        c->id = n->store_id;
        *pp = n->next;
        repro_free(n);
    }
    return repro_store_conn_update(w->store, c, err);
}

static int apply_record(struct repro_store_writer *w, struct rec *h, struct repro_error *err)
{
    struct id_node **pp;

    unpack_row(h);
    switch (h->kind) {
    case REPRO_ROW_CONN_OPEN:
    case REPRO_ROW_CONN_CLOSE:
        return apply_conn(w, h, err);
    case REPRO_ROW_EXCHANGE:
        if (h->u.x.connection_id == 0) {
            pp = id_slot(w, h->u.x.conn_local_id);
            if (*pp == NULL)
                return repro_error_set(err, REPRO_E_INVAL, "exchange of unknown connection %llu",
                                       (unsigned long long)h->u.x.conn_local_id);
            h->u.x.connection_id = (*pp)->store_id;
        }
        return repro_store_exchange_insert(w->store, &h->u.x, NULL, err);
    case REPRO_ROW_CRASH:
        return repro_store_crash_add(w->store, &h->u.crash, NULL, err);
    default:
        return repro_error_set(err, REPRO_E_INVAL, "corrupt writer record kind %u", h->kind);
    }
}

static int write_batch(struct repro_store_writer *w, struct repro_buf *b, struct repro_error *err)
{
    size_t off = 0;
    int rc = REPRO_OK;

    while (rc == REPRO_OK && off < b->len) {
        struct rec *h = (struct rec *)(b->data + off);
        off += h->total;
        rc = apply_record(w, h, err);
    }
    if (rc == REPRO_OK)
        rc = repro_store_flush(w->store, err);
    repro_log(REPRO_LOG_DEBUG, "store", "batch of %zu bytes %s", b->len,
              rc == REPRO_OK ? "committed" : "failed");
    return rc;
}

static void *writer_main(void *arg)
{
    struct repro_store_writer *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        struct repro_error werr = {0};
        struct repro_buf b;
        int rc = REPRO_OK;

        while (!w->have_queued && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->have_queued)
            break;
        b = w->queued;
        repro_buf_init(&w->queued, b.max);
        w->have_queued = 0;
        w->writing = 1;
        pthread_mutex_unlock(&w->mu);

        /* After a failure later batches are dropped, not written. */
        if (!atomic_load(&w->failed))
            rc = write_batch(w, &b, &werr);

        pthread_mutex_lock(&w->mu);
        if (rc && !atomic_load(&w->failed)) {
            if (werr.code == 0)
                repro_error_set(&werr, rc, "the store writer failed: %s", repro_strerror(rc));
            w->err = werr;
            atomic_store(&w->failed, 1);
        }
        repro_buf_reset(&b);
        repro_buf_release(&w->spare);
        w->spare = b;
        w->writing = 0;
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
    size_t cap;

    *out = NULL;
    if (w == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot start the store writer: out of memory");
    w->store = s;
    w->max_row_bytes = max_row_bytes;
    atomic_init(&w->failed, 0);
    cap = BATCH_BYTES + sizeof(struct rec) + max_row_bytes;
    repro_buf_init(&w->fill, cap);
    repro_buf_init(&w->queued, cap);
    repro_buf_init(&w->spare, cap);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    repro_store_set_batch(s, UINT32_MAX); /* the writer commits per batch */
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        int e = repro_error_sys(err, REPRO_E_IO, "cannot start the store writer thread");
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        repro_store_set_batch(s, 4096);
        repro_free(w);
        return e;
    }
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

/* Hands the filled batch to the writer thread (waiting while one is
 * already queued). */
static int submit(struct repro_store_writer *w, struct repro_error *err)
{
    struct repro_buf next;
    int rc = REPRO_OK;

    pthread_mutex_lock(&w->mu);
    while (w->have_queued && !atomic_load(&w->failed))
        pthread_cond_wait(&w->cv, &w->mu);
    if (atomic_load(&w->failed)) {
        rc = failure_locked(w, err);
    } else if (w->fill.len > 0) {
        next = w->spare;
        repro_buf_init(&w->spare, w->fill.max);
        repro_buf_release(&w->queued);
        w->queued = w->fill;
        w->fill = next;
        w->have_queued = 1;
        w->fill_rows = 0;
        pthread_cond_broadcast(&w->cv);
    }
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
    while ((w->have_queued || w->writing) && !atomic_load(&w->failed))
        pthread_cond_wait(&w->cv, &w->mu);
    if (atomic_load(&w->failed))
        rc = failure_locked(w, err);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int repro_store_writer_finish(struct repro_store_writer *w, struct repro_error *err)
{
    int rc, i;

    if (w == NULL)
        return REPRO_OK;
    rc = repro_store_writer_flush(w, err);
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
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
