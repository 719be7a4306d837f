/*
 * The spool file's format (docs/spool-format.md): the headers its writer
 * (source_reader.c) puts in front of the file and of each batch, and the
 * recovery reader that walks a spool left behind by a live agent that was
 * killed, lost its power or failed with batches unread.
 *
 * Why our own format and not pcap: the spool is written and read back
 * while it grows, batch by batch, with read batches punched out of it
 * (holes read as zeros) and a state word flipped in place; a reader after
 * a crash must tell unread batches from read ones and torn writes from
 * whole ones. A pcap file can do none of that. The checksums are CRC-32
 * from libdeflate (already linked; several GB/s with PCLMUL, so the writer
 * pays about a thousandth of a core at the benchmark's 40 MB/s); they are
 * checked against zlib's crc32 in tests/unit/test_spool_file.c.
 *
 * Trust: every byte comes from disk after a crash. A header is believed
 * only when its magic and checksum are right, and then it gives the next
 * header's offset; a batch is handed back only when its payload checksum
 * is right and every packet record lies within its data. The first wrong
 * header ends the walk (its size field cannot be trusted, so nothing after
 * it can be found): the rest is counted as torn.
 */
#include "capture/spool_format.h"

#include "repro/core.h"

#include <errno.h>
#include <libdeflate.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

void repro__spool_file_header(uint8_t out[REPRO_SPOOL_FILE_HEADER], int dlt, int64_t capture_id,
                              int64_t created_us, uint32_t pid)
{
    memset(out, 0, REPRO_SPOOL_FILE_HEADER);
    memcpy(out, REPRO_SPOOL_MAGIC, 8);
    put32(out + 8, REPRO_SPOOL_VERSION);
    put32(out + 12, (uint32_t)dlt);
    put32(out + 16, (uint32_t)sizeof(struct repro_batch_pkt));
    put64(out + 24, (uint64_t)capture_id);
    put64(out + 32, (uint64_t)created_us);
    put32(out + 40, pid);
    put32(out + 60, libdeflate_crc32(0, out, 60));
}

/* The header's checksum covers every field but the state, which the
 * consumer flips in place when it has read the batch. */
static uint32_t batch_header_crc(const uint8_t *h)
{
    uint32_t crc = libdeflate_crc32(0, h, 4);
    return libdeflate_crc32(crc, h + 8, 20);
}

void repro__spool_batch_header(uint8_t out[REPRO_SPOOL_BATCH_HEADER],
                               const struct repro_packet_batch *b, uint64_t seq)
{
    uint32_t crc = libdeflate_crc32(0, b->pkts, (size_t)b->n * sizeof *b->pkts);

    crc = libdeflate_crc32(crc, b->data, b->used);
    put32(out, REPRO_SPOOL_BATCH_MAGIC);
    put32(out + REPRO_SPOOL_STATE_OFF, REPRO_SPOOL_UNREAD);
    put32(out + 8, b->n);
    put32(out + 12, b->used);
    put64(out + 16, seq);
    put32(out + 24, crc);
    put32(out + 28, batch_header_crc(out));
}

/* An unread batch found by the walk. */
struct entry {
    uint64_t seq, off;
    uint32_t n, used, crc;
};

/* At most this many unread batches are indexed (32 bytes each, 32 MiB):
 * the writer's batches are up to about 1.4 MiB and one per half second
 * at least, so a day of spool is under 200,000; a file claiming more is
 * not one of the writer's. */
#define MAX_ENTRIES (1u << 20)

struct repro_spool_recovery {
    int fd;
    char name[300];
    uint64_t off, file_bytes, rec_size;
    struct entry *entries; /* unread batches, in packet order once walked */
    size_t n_entries, cap_entries, next;
    int64_t last_at; /* the offset of the batch last handed back, -1: none */
    struct repro_spool_recovery_stats st;
    char problem[400];
    struct repro_packet_batch batch;
};

static void note_problem(struct repro_spool_recovery *rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note_problem(struct repro_spool_recovery *rc, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (rc->problem[0])
        return; /* the first one says most */
    n = snprintf(rc->problem, sizeof rc->problem, "%s: ", rc->name);
    if (n < 0 || (size_t)n >= sizeof rc->problem)
        return;
    va_start(ap, fmt);
    vsnprintf(rc->problem + n, sizeof rc->problem - (size_t)n, fmt, ap);
    va_end(ap);
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Ends the walk at a header that cannot be trusted. */
static void torn(struct repro_spool_recovery *rc, const char *why)
{
    note_problem(rc, "%s at offset %llu; the last %llu bytes are not read", why,
                 (unsigned long long)rc->off, (unsigned long long)(rc->file_bytes - rc->off));
    rc->st.torn_bytes += rc->file_bytes - rc->off;
    rc->off = rc->file_bytes;
}

/* Reads the batch header at rc->off: 1 and the entry (or a read batch,
 * counted: *e's n is then 0), or 0 when the walk ends there. */
static int walk_one(struct repro_spool_recovery *rc, struct entry *e)
{
    uint8_t h[REPRO_SPOOL_BATCH_HEADER];
    uint32_t state;
    uint64_t payload;

    if (rc->file_bytes - rc->off < sizeof h || read_at(rc->fd, h, sizeof h, rc->off) != 0)
        return torn(rc, "a batch header cut short"), 0;
    if (get32(h) == 0 && get64(h + 8) == 0 && get64(h + 16) == 0 && get64(h + 24) == 0)
        return torn(rc, "zeros where a batch header should be"), 0; /* a torn or unwritten end */
    if (get32(h) != REPRO_SPOOL_BATCH_MAGIC || get32(h + 28) != batch_header_crc(h))
        return torn(rc, "a batch header with a wrong magic or checksum"), 0;
    e->n = get32(h + 8);
    e->used = get32(h + 12);
    e->seq = get64(h + 16);
    e->crc = get32(h + 24);
    e->off = rc->off;
    state = get32(h + REPRO_SPOOL_STATE_OFF);
    if (e->n == 0 || e->n > REPRO_SPOOL_MAX_PKTS || e->used > REPRO_SPOOL_MAX_DATA ||
        e->used % 8 != 0)
        return torn(rc, "a batch header with impossible sizes"), 0;
    if (state != REPRO_SPOOL_UNREAD && state != REPRO_SPOOL_READ)
        return torn(rc, "a batch header with an unknown state"), 0;
    payload = (uint64_t)e->n * rc->rec_size + e->used;
    if (payload > rc->file_bytes - rc->off - sizeof h)
        return torn(rc, "a batch cut short"), 0;
    rc->off += sizeof h + payload;
    if (state == REPRO_SPOOL_READ) {
        rc->st.read_batches++;
        e->n = 0;
    }
    return 1;
}

/* Orders unread batches by sequence number, then by offset. */
static int by_seq(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;

    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Walks every header, indexing the unread batches, and puts them in
 * packet order: the writer does not always write batches in that order
 * (a batch the full queue sends to the spool at once can overtake older
 * ones that wait in memory until they are half a second old). */
static int walk(struct repro_spool_recovery *rc, struct repro_error *err)
{
    struct entry e;

    while (rc->off < rc->file_bytes && walk_one(rc, &e)) {
        if (e.n == 0)
            continue;
        if (rc->n_entries == MAX_ENTRIES) {
            rc->off = e.off; /* this one is not fed: counted from here */
            torn(rc, "more batches than a spool holds");
            break;
        }
        if (rc->n_entries == rc->cap_entries) {
            size_t cap = rc->cap_entries ? rc->cap_entries * 2 : 64;
            struct entry *grown = repro_realloc(rc->entries, cap * sizeof *grown);
            if (grown == NULL)
                return repro_error_set(err, REPRO_E_NOMEM, "cannot recover spool %s: out of memory",
                                       rc->name);
            rc->entries = grown;
            rc->cap_entries = cap;
        }
        rc->entries[rc->n_entries++] = e;
    }
    if (rc->n_entries > 1)
        qsort(rc->entries, rc->n_entries, sizeof *rc->entries, by_seq);
    return REPRO_OK;
}

int repro_spool_recovery_open(int fd, const char *name, struct repro_spool_recovery **out,
                              struct repro_spool_info *info, struct repro_error *err)
{
    uint8_t h[REPRO_SPOOL_FILE_HEADER];
    struct repro_spool_recovery *rc;
    struct stat sb;
    int ret;

    *out = NULL;
    if (fstat(fd, &sb) != 0)
        return repro_error_set(err, REPRO_E_IO, "cannot read spool %s: %s", name, strerror(errno));
    if ((uint64_t)sb.st_size < REPRO_SPOOL_FILE_HEADER || read_at(fd, h, sizeof h, 0) != 0)
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "%s is not a spool: %lld bytes, shorter than its 64-byte header",
                               name, (long long)sb.st_size);
    if (memcmp(h, REPRO_SPOOL_MAGIC, 8) != 0)
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "%s is not a spool: its first 8 bytes are not '%s'", name,
                               REPRO_SPOOL_MAGIC);
    if (get32(h + 60) != libdeflate_crc32(0, h, 60))
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "spool %s: the file header's checksum is wrong (a damaged file, "
                               "or one written on a host of the other byte order)",
                               name);
    if (get32(h + 8) != REPRO_SPOOL_VERSION)
        return repro_error_set(err, REPRO_E_UNSUPPORTED,
                               "spool %s: version %u, this program reads version %u", name,
                               get32(h + 8), REPRO_SPOOL_VERSION);
    if (get32(h + 16) != sizeof(struct repro_batch_pkt))
        return repro_error_set(err, REPRO_E_UNSUPPORTED,
                               "spool %s: packet records of %u bytes, this program's are %zu "
                               "(written by another build?)",
                               name, get32(h + 16), sizeof(struct repro_batch_pkt));
    rc = repro_calloc(1, sizeof *rc);
    if (rc == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot recover spool %s: out of memory", name);
    rc->batch.pkts = repro_malloc(REPRO_SPOOL_MAX_PKTS * sizeof *rc->batch.pkts);
    rc->batch.data = repro_malloc(REPRO_SPOOL_MAX_DATA);
    if (rc->batch.pkts == NULL || rc->batch.data == NULL) {
        repro_spool_recovery_free(rc);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot recover spool %s: out of memory", name);
    }
    rc->fd = fd;
    rc->batch.spool_off = -1;
    snprintf(rc->name, sizeof rc->name, "%s", name);
    rc->off = REPRO_SPOOL_FILE_HEADER;
    rc->last_at = -1;
    rc->file_bytes = (uint64_t)sb.st_size;
    rc->rec_size = sizeof(struct repro_batch_pkt);
    if ((ret = walk(rc, err)) != REPRO_OK) {
        repro_spool_recovery_free(rc);
        return ret;
    }
    if (info) {
        info->dlt = (int)get32(h + 12);
        info->capture_id = (int64_t)get64(h + 24);
        info->created_us = (int64_t)get64(h + 32);
        info->pid = get32(h + 40);
    }
    *out = rc;
    return REPRO_OK;
}

/* Whether every packet record of the batch lies within its data. */
static int records_fit(const struct repro_packet_batch *b)
{
    for (uint32_t i = 0; i < b->n; i++) {
        const struct repro_batch_pkt *p = &b->pkts[i];
        if (p->caplen == 0 || p->off > b->used || p->caplen > b->used - p->off)
            return 0;
    }
    return 1;
}

int repro_spool_recovery_next(struct repro_spool_recovery *rc,
                              const struct repro_packet_batch **batch)
{
    *batch = NULL;
    while (rc->next < rc->n_entries) {
        const struct entry *e = &rc->entries[rc->next++];
        struct repro_packet_batch *b = &rc->batch;
        uint64_t records = (uint64_t)e->n * rc->rec_size, at = e->off + REPRO_SPOOL_BATCH_HEADER;
        uint64_t size = REPRO_SPOOL_BATCH_HEADER + records + e->used;
        uint32_t crc;

        if (read_at(rc->fd, b->pkts, records, at) != 0 ||
            read_at(rc->fd, b->data, e->used, at + records) != 0) {
            note_problem(rc, "cannot read the batch at offset %llu", (unsigned long long)e->off);
            rc->st.bad_batches++;
            rc->st.bad_bytes += size;
            continue;
        }
        b->n = e->n;
        b->used = e->used;
        crc = libdeflate_crc32(0, b->pkts, records);
        crc = libdeflate_crc32(crc, b->data, e->used);
        if (crc != e->crc || !records_fit(b)) {
            note_problem(rc, "the batch at offset %llu has %s; skipped",
                         (unsigned long long)e->off,
                         crc != e->crc ? "a wrong checksum (a torn write)"
                                       : "a packet outside its data");
            rc->st.bad_batches++;
            rc->st.bad_bytes += size;
            continue;
        }
        rc->st.batches++;
        rc->st.packets += e->n;
        for (uint32_t i = 0; i < e->n; i++)
            rc->st.bytes += b->pkts[i].caplen;
        rc->last_at = (int64_t)e->off;
        *batch = b;
        return 1;
    }
    return 0;
}

int repro_spool_recovery_mark_read(struct repro_spool_recovery *rc)
{
    uint32_t state = REPRO_SPOOL_READ;

    if (rc->last_at < 0)
        return REPRO_OK;
    if (pwrite(rc->fd, &state, sizeof state, (off_t)rc->last_at + REPRO_SPOOL_STATE_OFF) !=
        (ssize_t)sizeof state)
        return REPRO_E_IO;
    rc->last_at = -1;
    return REPRO_OK;
}

void repro_spool_recovery_stats(const struct repro_spool_recovery *rc,
                                struct repro_spool_recovery_stats *out)
{
    *out = rc->st;
}

const char *repro_spool_recovery_problem(const struct repro_spool_recovery *rc)
{
    return rc->problem;
}

void repro_spool_recovery_free(struct repro_spool_recovery *rc)
{
    if (rc == NULL)
        return;
    repro_free(rc->entries);
    repro_free(rc->batch.pkts);
    repro_free(rc->batch.data);
    repro_free(rc);
}
