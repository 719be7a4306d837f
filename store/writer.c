/*
 * The background store writer: one producer (the capture thread), one
 * consumer (a writer thread owning the SQLite handle while it runs).
 *
 * Records are serialised into batches: a fixed header followed by the
 * variable bytes (method, URI, raw request and response...). Three buffers
 * rotate — the one being filled, at most one queued, the one being
 * written — so memory stays at three batches whatever the traffic, and a
 * slow disk slows the capture down instead of growing a queue.
 *
 * Connections get their database ids in the writer thread; the capture
 * refers to them by capture-local id, mapped here.
 */
#include "repro/store.h"

#include <pthread.h>
#include <string.h>

enum { REC_OPEN = 1, REC_EXCHANGE, REC_CLOSE };

/* Serialised exchange fields: slices become offsets after the header. */
struct rec_hdr {
    uint32_t type;
    uint32_t total; /* header + payload bytes, padded to 8 */
    struct repro_conn_info conn;
    struct repro_exchange x; /* slice pointers rewritten on read */
    uint32_t len[6];         /* method, uri, host, reason, request, response */
    uint32_t note_len;
};

struct id_node {
    uint64_t local;
    int64_t store_id;
    struct id_node *next;
};

#define ID_BUCKETS 4096

struct repro_store_writer {
    struct repro_store *store;
    int64_t capture_id;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct repro_buf fill, queued, spare;
    int have_queued, writing, stop, failed;
    size_t batch_bytes;
    unsigned fill_rows;
    struct repro_error err; /* the writer thread's first error */
    struct id_node *ids[ID_BUCKETS];
};

static struct id_node **id_slot(struct repro_store_writer *w, uint64_t local)
{
    struct id_node **pp = &w->ids[local % ID_BUCKETS];
    while (*pp != NULL && (*pp)->local != local)
        pp = &(*pp)->next;
    return pp;
}

static int apply_record(struct repro_store_writer *w, struct rec_hdr *h, struct repro_error *err)
{
    struct id_node **pp, *n;
    const uint8_t *p = (const uint8_t *)(h + 1);
    struct repro_slice *sl[6];
    int i, rc;

    switch (h->type) {
    case REC_OPEN:
        rc = repro_store_conn_insert(w->store, w->capture_id, &h->conn, err);
        if (rc)
            return rc;
        n = repro_malloc(sizeof *n);
        if (n == NULL)
            return repro_error_set(err, REPRO_E_NOMEM, "cannot store a connection: out of memory");
        n->local = h->conn.id;
        n->store_id = h->conn.store_id;
        n->next = w->ids[n->local % ID_BUCKETS];
        w->ids[n->local % ID_BUCKETS] = n;
        return REPRO_OK;
    case REC_EXCHANGE:
        pp = id_slot(w, h->conn.id);
        if (*pp == NULL)
            return repro_error_set(err, REPRO_E_INVAL, "exchange of unknown connection %llu",
                                   (unsigned long long)h->conn.id);
        h->conn.store_id = (*pp)->store_id;
        sl[0] = &h->x.method;
        sl[1] = &h->x.uri;
        sl[2] = &h->x.host;
        sl[3] = &h->x.reason;
        sl[4] = &h->x.request;
        sl[5] = &h->x.response;
        for (i = 0; i < 6; i++) {
            sl[i]->ptr = h->len[i] ? p : NULL;
            sl[i]->len = h->len[i];
            p += h->len[i];
        }
        h->x.note = h->note_len ? (const char *)p : NULL;
        return repro_store_exchange_insert(w->store, w->capture_id, &h->conn, &h->x, NULL, err);
    case REC_CLOSE:
        pp = id_slot(w, h->conn.id);
        if (*pp == NULL)
            return REPRO_OK; /* never opened: nothing stored */
        n = *pp;
        h->conn.store_id = n->store_id;
        *pp = n->next;
        repro_free(n);
        return repro_store_conn_update(w->store, &h->conn, err);
    default:
        return repro_error_set(err, REPRO_E_INVAL, "corrupt writer record type %u", h->type);
    }
}

static int write_batch(struct repro_store_writer *w, struct repro_buf *b)
{
    size_t off = 0;
    int rc = REPRO_OK;

    while (rc == REPRO_OK && off < b->len) {
        struct rec_hdr *h = (struct rec_hdr *)(b->data + off);
        rc = apply_record(w, h, &w->err);
        off += h->total;
    }
    if (rc == REPRO_OK)
        rc = repro_store_flush(w->store, &w->err);
    return rc;
}

static void *writer_main(void *arg)
{
    struct repro_store_writer *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        struct repro_buf b;
        int rc;

        while (!w->have_queued && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->have_queued)
            break;
        b = w->queued;
        repro_buf_init(&w->queued, b.max);
        w->have_queued = 0;
        w->writing = 1;
        pthread_mutex_unlock(&w->mu);

        rc = w->failed ? REPRO_E_STORE : write_batch(w, &b);

        pthread_mutex_lock(&w->mu);
        if (rc)
            w->failed = 1;
        repro_buf_reset(&b);
        repro_buf_release(&w->spare);
        w->spare = b;
        w->writing = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int repro_store_writer_start(struct repro_store *s, int64_t capture_id, size_t max_record_bytes,
                             struct repro_store_writer **out, struct repro_error *err)
{
    struct repro_store_writer *w = repro_calloc(1, sizeof *w);
    size_t cap;

    *out = NULL;
    if (w == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot start the store writer: out of memory");
    w->store = s;
    w->capture_id = capture_id;
    w->batch_bytes = 4u << 20;
    cap = w->batch_bytes + max_record_bytes + sizeof(struct rec_hdr) + 64;
    repro_buf_init(&w->fill, cap);
    repro_buf_init(&w->queued, cap);
    repro_buf_init(&w->spare, cap);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    repro_store_set_batch(s, UINT32_MAX); /* the writer commits per batch */
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        repro_free(w);
        return repro_error_sys(err, REPRO_E_IO, "cannot start the store writer thread");
    }
    *out = w;
    return REPRO_OK;
}

static int writer_failure(struct repro_store_writer *w, struct repro_error *err)
{
    repro_error_set(err, w->err.code ? w->err.code : REPRO_E_STORE, "%s",
                    w->err.msg[0] ? w->err.msg : "the store writer failed");
    return w->err.code ? w->err.code : REPRO_E_STORE;
}

/* Hands the filled batch to the writer thread (waiting while one is
 * already queued). */
static int submit(struct repro_store_writer *w, struct repro_error *err)
{
    struct repro_buf next;

    pthread_mutex_lock(&w->mu);
    while (w->have_queued && !w->failed)
        pthread_cond_wait(&w->cv, &w->mu);
    if (w->failed) {
        pthread_mutex_unlock(&w->mu);
        return writer_failure(w, err);
    }
    if (w->fill.len > 0) {
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
    return REPRO_OK;
}

static int append_record(struct repro_store_writer *w, struct rec_hdr *h, const struct repro_slice *parts,
                         int n_parts, struct repro_error *err)
{
    size_t payload = 0, total;
    int i, rc;

    for (i = 0; i < n_parts; i++)
        payload += parts[i].len;
    total = (sizeof *h + payload + 7) & ~(size_t)7;
    h->total = (uint32_t)total;
    if (w->fill.len + total > w->batch_bytes && w->fill.len > 0) {
        rc = submit(w, err);
        if (rc)
            return rc;
    }
    if (w->failed)
        return writer_failure(w, err);
    rc = repro_buf_reserve(&w->fill, total);
    if (rc != REPRO_OK)
        return repro_error_set(err, rc, "cannot queue a record for the store: %s",
                               repro_strerror(rc));
    memcpy(w->fill.data + w->fill.len, h, sizeof *h);
    w->fill.len += sizeof *h;
    for (i = 0; i < n_parts; i++) {
        if (parts[i].len)
            memcpy(w->fill.data + w->fill.len, parts[i].ptr, parts[i].len);
        w->fill.len += parts[i].len;
    }
    w->fill.len += total - sizeof *h - payload;
    if (++w->fill_rows >= 8192)
        return submit(w, err);
    return REPRO_OK;
}

static int queue_conn(struct repro_store_writer *w, uint32_t type,
                      const struct repro_conn_info *c, struct repro_error *err)
{
    struct rec_hdr h;
    memset(&h, 0, sizeof h);
    h.type = type;
    h.conn = *c;
    return append_record(w, &h, NULL, 0, err);
}

int repro_store_writer_conn_open(struct repro_store_writer *w, const struct repro_conn_info *c,
                                 struct repro_error *err)
{
    return queue_conn(w, REC_OPEN, c, err);
}

int repro_store_writer_conn_close(struct repro_store_writer *w, const struct repro_conn_info *c,
                                  struct repro_error *err)
{
    return queue_conn(w, REC_CLOSE, c, err);
}

int repro_store_writer_exchange(struct repro_store_writer *w, const struct repro_conn_info *c,
                                const struct repro_exchange *x, struct repro_error *err)
{
    struct rec_hdr h;
    struct repro_slice parts[7];
    int i;

    memset(&h, 0, sizeof h);
    h.type = REC_EXCHANGE;
    h.conn = *c;
    h.x = *x;
    parts[0] = x->method;
    parts[1] = x->uri;
    parts[2] = x->host;
    parts[3] = x->reason;
    parts[4] = x->request;
    parts[5] = x->response;
    for (i = 0; i < 6; i++) {
        if (parts[i].ptr == NULL)
            parts[i].len = 0;
        h.len[i] = (uint32_t)parts[i].len;
    }
    /* The note is a C string: keep its NUL. */
    parts[6].ptr = (const uint8_t *)x->note;
    parts[6].len = x->note ? strlen(x->note) + 1 : 0;
    h.note_len = (uint32_t)parts[6].len;
    return append_record(w, &h, parts, 7, err);
}

int repro_store_writer_flush(struct repro_store_writer *w, struct repro_error *err)
{
    int rc = submit(w, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&w->mu);
    while ((w->have_queued || w->writing) && !w->failed)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return w->failed ? writer_failure(w, err) : REPRO_OK;
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
